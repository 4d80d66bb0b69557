"""Starting the window: the QApplication, the theme, the qasync loop, and screenshot mode.

Import cost matters here: `studio` with no arguments must show the window fast, so this
module and everything the window imports stay free of torch and diffusers (the worker thread
imports them when the first job runs).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

SCREENSHOT_SIZE = (1400, 860)


def run(
    *,
    screenshot: Path | None = None,
    workflow: Path | None = None,
    image: Path | None = None,
    mask: Path | None = None,
    mode: str = "txt2img",
    exit_when_shown: bool = False,
) -> int:
    """Open the window and run until it closes; with `screenshot`, save a PNG of it and exit."""
    if screenshot is not None or exit_when_shown:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from studio.settings import Settings
    from studio.ui.main_window import MainWindow
    from studio.ui.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Studio")
    app.setApplicationDisplayName("Studio")
    settings = Settings.load()
    apply_theme(app, settings.theme)
    window = MainWindow(settings, mode=mode)
    if workflow is not None:
        load_workflow(window, workflow)
    if image is not None:
        window.session.open_path(str(image))
    if mask is not None:
        from studio.formats.images import load_mask

        window.canvas.set_mask(load_mask(mask))
    if screenshot is not None:
        return save_screenshot(app, window, screenshot)
    _report_uncaught_errors(window)
    window.collector.collect_on_stop = False  # see _leave: the process ends with the window
    window.show()
    if not exit_when_shown:
        from studio.ui.warmup import warm_up

        # After the first paint: the engine and the model load on the worker meanwhile.
        QTimer.singleShot(0, lambda: warm_up(window))
    if exit_when_shown:
        # For bench/ui_latency.py: when the window has been laid out and shown, report and quit.
        def report() -> None:
            print(f"shown-at {time.time():.6f} torch-imported {'torch' in sys.modules}", flush=True)
            window.close()

        QTimer.singleShot(0, report)
    code = _run_loop(app)
    _leave(window, code)
    return code


# After the window closed: how long the cancelled job may take to reach its next step.
WORKER_GRACE_SECONDS = 0.5


def _leave(window, code: int) -> None:
    """End the process promptly once the window is closed.

    Closing cancelled the job; one denoising step is usually far shorter than the grace time.
    A model still loading cannot be interrupted: rather than keep a closed window's process
    alive for seconds, it is abandoned. The interpreter's own teardown (torch, thread pools)
    takes seconds too, so the process ends here either way: nothing of the user's is lost,
    results were saved as they came, settings when they changed, the window's state at close.
    """
    runtime = window.bridge.runtime
    if not runtime.shutdown(WORKER_GRACE_SECONDS):
        log.info("Leaving the worker behind (a model was still loading)")
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(code)


def _report_uncaught_errors(window) -> None:
    """An unexpected error in a slot: the traceback to the log file, one sentence to the user."""
    from studio.logs import log_file

    def hook(kind, error, trace) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, error, trace)
            return
        log.error("Unexpected error in the window", exc_info=(kind, error, trace))
        try:
            window.show_message(
                f"Something went wrong ({kind.__name__}); the details are in {log_file()}."
            )
        except RuntimeError:  # the window is already gone
            pass

    sys.excepthook = hook


def _run_loop(app) -> int:
    """Run Qt's loop under qasync, so asyncio code (plugins, future async APIs) works in it."""
    import qasync

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = asyncio.Event()
    app.lastWindowClosed.connect(closed.set)
    with loop:
        loop.run_until_complete(closed.wait())
    return 0


def load_workflow(window, path: Path) -> None:
    """Open a workflow file (Studio JSON, ComfyUI API JSON or a ComfyUI PNG) in the window."""
    from studio.nodes.workflow_files import is_studio_workflow
    from studio.ui.menus import import_workflow

    if is_studio_workflow(path):
        # The node editor shows any problem itself; the panel then shows the workflow's fields.
        window.node_editor.open_workflow(str(path))
    else:
        import_workflow(window, str(path))


def wait(milliseconds: int) -> None:
    """Run Qt's loop for a while. Not QTest.qWait: PySide6 keeps the GIL there, which starves
    the background threads that make thumbnails."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(milliseconds, loop.quit)
    loop.exec()


def save_screenshot(app, window, path: Path) -> int:
    """Lay the window out offscreen, let thumbnails arrive, save a PNG of it, and close."""
    window.resize(*SCREENSHOT_SIZE)
    window.show()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        wait(50)
        if not window.models.scanning and window.gallery.count():
            break
    wait(300)  # the last thumbnails come from the background pool
    window.canvas.fit()
    wait(50)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok = window.grab().save(str(path), "PNG")
    window.close()
    app.processEvents()
    if not ok:
        log.error("Could not save the screenshot to %s", path)
        return 1
    return 0
