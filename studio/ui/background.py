"""Work the GUI thread must not do (model scans, file reads, thumbnails), done on a thread pool.

Why not `await asyncio.to_thread(...)`: the same widgets run under the qasync loop in the app
and under pytest-qt (which drives Qt without an asyncio loop) in the tests; a thread pool whose
results come back through a queued Qt signal behaves the same in both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

log = logging.getLogger(__name__)


class Background(QObject):
    """Runs callables off the GUI thread; their results are delivered back on it."""

    _done = Signal(object, object, object)  # callback, result, error callback + error

    def __init__(self, parent: QObject | None = None, workers: int = 2) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="studio-ui")
        self._closed = False
        self._done.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def run(
        self,
        function: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Future | None:
        """Call `function()` on a pool thread, then `on_done(result)` on the GUI thread."""
        if self._closed:
            return None
        future = self._pool.submit(function)

        def finished(done: Future) -> None:
            if self._closed or done.cancelled():
                return
            error = done.exception()
            try:
                if error is None:
                    self._done.emit(on_done, done.result(), None)
                else:
                    self._done.emit(None, None, (on_error, error))
            except RuntimeError:  # the QObject is gone: the window closed meanwhile
                pass

        future.add_done_callback(finished)
        return future

    def _deliver(self, callback: Any, result: Any, failure: Any) -> None:
        if self._closed:
            return
        if failure is not None:
            on_error, error = failure
            if on_error is None:
                log.error("Background task failed", exc_info=error)
            else:
                on_error(error)
            return
        callback(result)

    def close(self) -> None:
        """Drop queued work; running work finishes on its own (threads are not killed)."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
