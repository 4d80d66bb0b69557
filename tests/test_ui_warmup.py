"""No cold start: the window loads its model in the background once shown."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from studio.settings import Settings  # noqa: E402
from tests.test_ui_window import JOB_TIMEOUT, generate_and_wait, use_tiny_model  # noqa: E402


@pytest.fixture
def window(qtbot, tmp_path, tiny_sd1):
    from studio.ui.main_window import MainWindow

    win = MainWindow(Settings(output_folder=str(tmp_path / "out"), device="cpu"))
    qtbot.addWidget(win)
    win.show()
    use_tiny_model(win, tiny_sd1)
    yield win
    win.close()


def test_the_model_loads_in_the_background_and_the_first_job_reuses_it(qtbot, window):
    from studio.ui.warmup import warm_up

    warmup = warm_up(window)
    assert warmup.job is not None
    qtbot.waitUntil(lambda: warmup.state == "ready", timeout=JOB_TIMEOUT)
    assert "is loaded" in window.statusBar().currentMessage()
    runtime = window.bridge.runtime
    assert runtime.models.loads == 1

    shown: list[str] = []
    window.bridge.busyChanged.connect(lambda busy: busy and shown.append(window.progress.label.text()))
    generate_and_wait(qtbot, window)
    assert shown == ["Starting…"]  # not "Loading the model…": it is loaded
    assert not window.message.isVisible(), window.message.text()
    assert runtime.models.loads == 1  # the job found the model loaded
    assert window.canvas.staged_count() == 1


def test_a_job_submitted_while_loading_waits_for_the_load(qtbot, window):
    from studio.ui.warmup import warm_up

    warmup = warm_up(window)
    generate_and_wait(qtbot, window)  # queued behind the load
    assert warmup.state == "ready"
    assert window.bridge.runtime.models.loads == 1
    assert window.canvas.staged_count() == 1


def test_no_model_chosen_loads_nothing(qtbot, window):
    from studio.ui.warmup import ModelWarmup

    window.document.set_param("model", "path", "")
    assert not ModelWarmup(window).start()


def test_collections_wait_for_the_load_then_skip_what_it_made(qtbot, window):
    import gc
    import sys

    from studio.ui.warmup import warm_up

    interval = sys.getswitchinterval()
    collector = window.collector
    warmup = warm_up(window)
    assert collector._held  # no collection walks the heap while the engine is imported
    qtbot.waitUntil(lambda: warmup.state == "ready", timeout=JOB_TIMEOUT)
    assert not collector._held
    assert gc.get_freeze_count() > 0  # the engine's objects are no longer walked
    assert sys.getswitchinterval() == interval  # the load put the interval back
    window.close()
    assert gc.get_freeze_count() == 0  # the last window's final collection sees them again


def test_a_cancelled_load_says_so_and_collections_resume(qtbot, window):
    from studio.runtime.events import JobCancelled
    from studio.ui.warmup import warm_up

    warmup = warm_up(window)
    warmup.job.cancel()  # as when the window closes during the load
    qtbot.waitUntil(lambda: warmup.state in ("cancelled", "ready"), timeout=JOB_TIMEOUT)
    assert not window.collector._held
    window.collector.hold()
    warmup._on_event(JobCancelled(warmup.job.id))
    assert warmup.state == "cancelled"
    assert not window.collector._held
    assert not window.statusBar().currentMessage().startswith("Loading ")
