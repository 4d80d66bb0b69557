"""No cold start: once the window is shown, the engine is imported and the selected model
loaded on the worker thread, so the first Generate waits only for what is left of the load.

The GUI thread only queues the load (Runtime.preload) and reads its events; torch is imported
on the worker. A job submitted meanwhile runs after it, and the status bar says what it waits
for.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from studio.runtime.events import JobCancelled, JobFailed, JobFinished, JobStarted

log = logging.getLogger(__name__)


class ModelWarmup(QObject):
    """Loads the window's selected model in the background and reports it in the status bar."""

    # Emitted on the GUI thread: "loading" (name), "ready" (name), "failed" (message),
    # "cancelled" (name).
    changed = Signal(str, str)
    _event = Signal(object)

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.state = "idle"
        self.job: Any = None
        self._name = ""
        self._event.connect(self._on_event, Qt.ConnectionType.QueuedConnection)

    def start(self) -> bool:
        """Queue the load of the model the workflow names; False when there is nothing to do."""
        bridge = self.window.bridge
        if bridge.servers or bridge.busy:
            return False  # a remote server runs the jobs, or a job is already loading it
        node = self.window.document.graph.nodes.get("model")
        path = str(node.params.get("path", "")) if node is not None else ""
        if not path:
            return False
        self._name = Path(path).name
        self.job = bridge.runtime.preload(path, str(node.params.get("config", "") or ""))
        collector = getattr(self.window, "collector", None)
        if collector is not None:
            # The load fills the heap with long-lived objects: collect after, not during.
            collector.hold()
            self.changed.connect(lambda state, _text: state != "loading" and collector.settle())
        self.job.subscribe(self._event.emit)  # worker thread -> queued to the GUI thread
        return True

    def _on_event(self, event: Any) -> None:
        bar = self.window.statusBar()
        if isinstance(event, JobStarted):
            self.state = "loading"
            bar.showMessage(f"Loading {self._name} in the background…")
            self.changed.emit("loading", self._name)
        elif isinstance(event, JobFinished):
            self.state = "ready"
            if bar.currentMessage().startswith("Loading "):
                bar.showMessage(f"{self._name} is loaded ({event.seconds:.1f} s).", 5000)
            self.changed.emit("ready", self._name)
        elif isinstance(event, JobFailed):
            # The job that needs the model will say what is wrong; nothing is lost here.
            self.state = "failed"
            log.info("Loading %s ahead of time failed: %s", self._name, event.message)
            if bar.currentMessage().startswith("Loading "):
                bar.clearMessage()
            self.changed.emit("failed", event.message)
        elif isinstance(event, JobCancelled):
            self.state = "cancelled"  # the next job loads the model itself
            if bar.currentMessage().startswith("Loading "):
                bar.clearMessage()
            self.changed.emit("cancelled", self._name)


def warm_up(window: Any) -> ModelWarmup:
    """Start loading the window's model in the background (call once it is shown)."""
    warmup = ModelWarmup(window)
    window.warmup = warmup
    warmup.start()
    return warmup
