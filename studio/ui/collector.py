"""Python's cyclic garbage collector, run on the GUI thread only while the window is open.

Why: when the collector runs on whatever thread happens to allocate (the worker, mostly), it
can free a Qt widget that sat in a reference cycle (a graphics item and the lambdas its fields
connect, say) on that thread. Qt widgets must die on the GUI thread: elsewhere the destructor
waits for the GUI thread, which may itself be waiting for that worker (a hang), or crashes.
So automatic collection is switched off and a timer collects on the GUI thread instead, with
the same generation thresholds Python uses.

While the engine is imported and the model loaded in the background, the heap grows by
hundreds of thousands of long-lived objects; collecting them on the GUI thread stalled the
window for up to 250 ms at a time. So the window holds collections during that load and then
freezes what it made (`gc.freeze`): later collections no longer walk torch's objects, and the
last collector to stop unfreezes them for its final collection.
"""

from __future__ import annotations

import gc
import logging

from PySide6.QtCore import QObject, QTimer

log = logging.getLogger(__name__)

INTERVAL_MS = 500
_active = 0  # collectors running; automatic collection is back on when the last one stops
_was_enabled = True


def collect_if_due() -> None:
    """Collect the generations whose thresholds are passed (cheap when nothing is due), as
    automatic collection would, on the thread that calls this."""
    counts, thresholds = gc.get_count(), gc.get_threshold()
    for generation in (2, 1, 0):
        if thresholds[generation] and counts[generation] > thresholds[generation]:
            gc.collect(generation)  # collects the younger generations too
            return


class GuiThreadCollector(QObject):
    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        global _active, _was_enabled
        if _active == 0:
            _was_enabled = gc.isenabled()
        _active += 1
        gc.disable()
        self._running = True
        # studio.ui.app turns this off: the process ends right after the window, so a full
        # collection at close (about half a second with torch loaded) would only delay it.
        self.collect_on_stop = True
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect_if_due)
        self._timer.start()
        self._held = False

    def collect_if_due(self) -> None:
        if not self._held:
            collect_if_due()

    def hold(self) -> None:
        """No collections until `settle` (a background load is filling the heap)."""
        self._held = True

    def settle(self) -> None:
        """The load is over: move everything alive to the permanent generation, collect again."""
        if self._running:
            gc.freeze()
        self._held = False

    def stop(self) -> None:
        """Collect what the window left behind (here, on the GUI thread), then hand back."""
        global _active
        if not self._running:
            return
        self._running = False
        self._timer.stop()
        if _active == 1:
            gc.unfreeze()
        if self.collect_on_stop:
            gc.collect()
        _active -= 1
        if _active == 0 and _was_enabled:
            gc.enable()
