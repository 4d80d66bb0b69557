"""The one way events from the runtime reach the window: Qt signals on the GUI thread.

The bridge owns the window's single `Runtime` (kept for the window's life, so the executor's
output cache and loaded models survive between jobs). It listens to each job with
`job.subscribe()`: the listener runs on the worker thread and only appends to an inbox and,
if none is pending, posts one queued wake-up to the GUI thread, which then drains the inbox.

Why not `async for event in runtime.run(...)` as DESIGN.md sketches: that needs a *running*
asyncio loop, which qasync provides in the app but pytest-qt (which drives Qt's loop itself)
does not, so the window would behave differently under test. The inbox here has the same
semantics as the runtime's async inbox: a newer preview replaces a waiting one, no other event
is dropped, and at most one wake-up is in flight.

Previews are latest-frame-wins and drawn at most `PREVIEW_HZ` times a second: as often as a
screen refreshes, so every step's preview is drawn unless steps come faster than that.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal

from studio.graph.document import Graph
from studio.runtime.events import (
    JobCancelled,
    JobFailed,
    JobFinished,
    JobQueued,
    JobStarted,
    NodeCached,
    NodeFinished,
    NodeStarted,
    Notice,
    Preview,
    Progress,
)
from studio.runtime.worker import Job, Runtime

log = logging.getLogger(__name__)

PREVIEW_HZ = 60


class RuntimeBridge(QObject):
    """Submits graphs to the runtime and re-emits its events as Qt signals.

    Signals (all on the GUI thread):
    - busyChanged(bool): a job is running or waiting.
    - jobStarted(job_id)
    - nodeStarted(node_id, title), nodeFinished(node_id)
    - progress(node_id, step, total, seconds_left): seconds_left < 0 while unknown.
    - preview(ndarray): the newest preview, at most PREVIEW_HZ per second.
    - finished(results): [(PIL image, GenerationParams | None, Path | None)].
    - failed(node_id or None, message), cancelled().
    - notice(message): something to tell the user that does not stop the job.
    """

    busyChanged = Signal(bool)
    jobQueued = Signal(str, int)
    jobStarted = Signal(str)
    nodeStarted = Signal(str, str)
    nodeFinished = Signal(str)
    progress = Signal(str, int, int, float)
    preview = Signal(object)
    finished = Signal(object)
    failed = Signal(object, str)
    cancelled = Signal()
    notice = Signal(str)
    _wake = Signal()

    def __init__(
        self,
        *,
        device: str = "auto",
        precision: str | None = None,
        memory_mode: str = "auto",
        output_dir: str | Path = ".",
        model_folders: list[Path] | None = None,
        runtime: Runtime | None = None,
        servers: list[Any] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.servers = list(servers or [])  # ComfyUI servers to run on; none: this computer
        self._device = (device, precision or None)
        self.runtime = runtime or Runtime(
            _executor(self.servers),
            device=device,
            precision=precision or None,
            memory_mode=memory_mode,
            output_dir=output_dir,
            model_folders=model_folders,
            cpu_threads=window_cpu_threads(),
        )
        self.previews_enabled = True
        self._lock = threading.Lock()
        self._inbox: deque[Any] = deque()
        self._wake_pending = False
        self._closed = False
        self._jobs: dict[str, tuple[Job, Any]] = {}  # id -> (job, unsubscribe)
        self._node_started = 0.0
        self._latest_preview: Any = None
        self._last_drawn = 0.0
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.timeout.connect(self._draw_preview)
        self._wake.connect(self._drain, Qt.ConnectionType.QueuedConnection)

    # -- commands (GUI thread) ----------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return bool(self._jobs)

    def submit(self, graph: Graph, inputs: dict[str, Any] | None = None) -> Job:
        """Queue a run of (a copy of) `graph`; its events arrive as this object's signals."""
        was_busy = self.busy
        job = self.runtime.submit(graph, inputs)
        self._jobs[job.id] = (job, None)
        self._jobs[job.id] = (job, job.subscribe(self._listen))
        if not was_busy:
            self.busyChanged.emit(True)
        return job

    def cancel(self) -> None:
        """Cancel the running job and everything queued (the running one stops within a step)."""
        self.runtime.clear_queue()
        self.runtime.cancel()

    def set_output_dir(self, folder: Path) -> None:
        self.runtime.output_dir = Path(folder)

    def set_model_folders(self, folders: list[Path]) -> None:
        self.runtime.model_folders = [Path(f) for f in folders]

    def set_memory_mode(self, mode: str) -> None:
        """How later jobs' sampling saves memory ("auto" or a mode of engine/memory_modes).

        Outputs cached under the old mode are dropped: a sample records the mode it ran in.
        """
        if mode != self.runtime.memory_mode:
            self.runtime.memory_mode = mode
            self.runtime.executor.cache.clear()

    def use_device(self, device: str, precision: str | None) -> bool:
        """Run later jobs on another device; False (nothing changed) while a job runs.

        A fresh Runtime: its worker resolves the device when the next job starts, and loaded
        models and cached outputs of the old device are dropped with the old one.
        """
        if self.busy:
            return False
        old = self.runtime
        self._device = (device, precision or None)
        self.runtime = Runtime(
            _executor(self.servers),
            device=device,
            precision=precision or None,
            memory_mode=old.memory_mode,
            output_dir=old.output_dir,
            model_folders=old.model_folders,
            cpu_threads=window_cpu_threads(),
        )
        old.shutdown(timeout=5.0)
        return True

    def use_servers(self, servers: list[Any]) -> bool:
        """Run later jobs on these ComfyUI servers (none: this computer); False while busy."""
        if self.busy:
            return False
        old = self.runtime
        self.servers = list(servers)
        self.runtime = Runtime(
            _executor(self.servers),
            device=self._device[0],
            precision=self._device[1],
            memory_mode=old.memory_mode,
            output_dir=old.output_dir,
            model_folders=old.model_folders,
            cpu_threads=window_cpu_threads(),
        )
        old.shutdown(timeout=5.0)
        return True

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Cancel everything and stop the worker; False if it did not stop in time."""
        self._closed = True
        self._preview_timer.stop()
        for _job, unsubscribe in list(self._jobs.values()):
            if unsubscribe is not None:
                unsubscribe()
        self._jobs.clear()
        stopped = self.runtime.shutdown(timeout)
        if not stopped and timeout > 0:
            log.warning("The worker did not stop within %.1f s; leaving it behind", timeout)
        return stopped

    # -- the worker side --------------------------------------------------------------------

    def _listen(self, event: Any) -> None:
        # Runs on the worker thread with the job's lock held: be quick, touch no widget.
        with self._lock:
            if self._closed:
                return
            if isinstance(event, Preview):
                for index, waiting in enumerate(self._inbox):
                    if isinstance(waiting, Preview):
                        del self._inbox[index]
                        break
            self._inbox.append(event)
            wake = not self._wake_pending
            self._wake_pending = True
        if wake:
            try:
                self._wake.emit()
            except RuntimeError:  # the bridge was deleted: the window is gone
                pass

    # -- the GUI side -----------------------------------------------------------------------

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._inbox:
                    self._wake_pending = False
                    return
                event = self._inbox.popleft()
            if self._closed:
                continue
            try:
                self._handle(event)
            except Exception:  # one broken slot must not stop later events
                log.exception("Handling %r failed", event)

    def _handle(self, event: Any) -> None:
        if isinstance(event, Preview):
            self._offer_preview(event.image)
        elif isinstance(event, Progress):
            done = max(event.step, 1)
            elapsed = time.perf_counter() - self._node_started
            left = elapsed / done * (event.total - event.step) if event.step else -1.0
            self.progress.emit(event.node_id, event.step, event.total, left)
        elif isinstance(event, NodeStarted):
            self._node_started = time.perf_counter()
            self.nodeStarted.emit(event.node_id, event.title)
        elif isinstance(event, NodeFinished | NodeCached):
            self.nodeFinished.emit(event.node_id)
        elif isinstance(event, JobQueued):
            self.jobQueued.emit(event.job_id, event.position)
        elif isinstance(event, JobStarted):
            self.jobStarted.emit(event.job_id)
        elif isinstance(event, JobFinished | JobFailed | JobCancelled):
            self._end(event)
        elif isinstance(event, Notice):
            self.notice.emit(event.message)

    def _end(self, event: Any) -> None:
        entry = self._jobs.pop(event.job_id, None)
        if entry is not None and entry[1] is not None:
            entry[1]()
        # A late preview of this job must not be drawn over its result.
        self._latest_preview = None
        self._preview_timer.stop()
        if isinstance(event, JobFinished):
            self.finished.emit(list(event.images))
        elif isinstance(event, JobFailed):
            self.failed.emit(event.node_id, event.message)
        else:
            self.cancelled.emit()
        if not self._jobs:
            self.busyChanged.emit(False)

    def _offer_preview(self, image: Any) -> None:
        if not self.previews_enabled:
            return
        self._latest_preview = image
        if self._preview_timer.isActive():
            return  # the pending draw will take the newest frame
        wait = 1.0 / PREVIEW_HZ - (time.perf_counter() - self._last_drawn)
        if wait <= 0:
            self._draw_preview()
        else:
            self._preview_timer.start(max(1, int(wait * 1000)))

    def _draw_preview(self) -> None:
        image, self._latest_preview = self._latest_preview, None
        if image is None or self._closed:
            return
        self._last_drawn = time.perf_counter()
        self.preview.emit(image)


def window_cpu_threads() -> int | None:
    """Threads for the window's CPU jobs: None, every core, as for the CLI.

    Measured with bench/ui_latency.py --threads N on the 2-core machine (bundled model, 64x64,
    20 steps, warm jobs): when it was quiet, 2 threads 0.83-0.88 s with GUI gaps p99 15 ms,
    1 thread 0.94-1.11 s and 14-24 ms; and a full-size SD 1.5 step takes 2.7 s at 2 threads
    against about 5 s at 1. While other programs kept both cores busy, 1 thread did better
    (0.7-1.4 s against 2.8-14 s), but that is the other programs' doing, not the window's.
    """
    return None


def _executor(servers: list[Any]) -> Any:
    """The remote executor for ComfyUI servers; None (the local one) when there are none."""
    from studio.runtime.remote.backend import make_executor

    return make_executor(servers)
