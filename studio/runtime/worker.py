"""The sampling worker: one thread owns the device and runs queued jobs one at a time.

Callers submit a graph and read the job's events: `job.events()` blocks (CLI), while
`async for event in runtime.run(graph)` suits an asyncio loop (the window, through qasync).
torch is imported on the worker thread, when the first job needs the device.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from studio.engine.progress import CancelToken
from studio.errors import Cancelled, StudioError
from studio.graph.document import Graph
from studio.nodes.context import RunContext
from studio.runtime.courtesy import courteous_loading
from studio.runtime.events import (
    Event,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobQueued,
    JobStarted,
    Notice,
    Preview,
    is_terminal,
)
from studio.runtime.executor import Executor, NodeFailed

log = logging.getLogger(__name__)

Listener = Callable[[Event], None]


class _Inbox:
    """Events waiting for one consumer. A newer Preview replaces a waiting one of the same node,
    so a slow consumer gets the latest frame; no other event is ever dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: deque[Event] = deque()

    def _add(self, event: Event) -> None:
        # Called with the lock held.
        if isinstance(event, Preview):
            for index, waiting in enumerate(self._items):
                if isinstance(waiting, Preview) and waiting.node_id == event.node_id:
                    del self._items[index]
                    break
        self._items.append(event)


class _SyncInbox(_Inbox):
    def __init__(self) -> None:
        super().__init__()
        self._ready = threading.Condition(self._lock)

    def push(self, event: Event) -> None:
        with self._lock:
            self._add(event)
            self._ready.notify_all()

    def get(self, timeout: float | None = None) -> Event | None:
        with self._lock:
            if not self._ready.wait_for(lambda: bool(self._items), timeout):
                return None
            return self._items.popleft()


class _AsyncInbox(_Inbox):
    """Filled from the worker thread, emptied on the loop; one wake-up is pending at most."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self._ready = asyncio.Event()
        self._wake_pending = False

    def push(self, event: Event) -> None:
        with self._lock:
            self._add(event)
            wake = not self._wake_pending
            self._wake_pending = True
        if wake:
            try:
                self._loop.call_soon_threadsafe(self._ready.set)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                pass

    async def get(self) -> Event:
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                self._ready.clear()
                self._wake_pending = False
            await self._ready.wait()


class Job:
    """One submitted run of a graph; its events can be read by any number of consumers."""

    def __init__(
        self,
        job_id: str,
        graph: Graph,
        inputs: dict[str, Any],
        cancel: Callable[[Job], None],
    ) -> None:
        self.id = job_id
        self.graph = graph
        self.inputs = inputs
        self.done = threading.Event()
        self.token = CancelToken()
        # (model path, config folder) when this job only loads a model ahead of time.
        self.preload: tuple[str, str] | None = None
        self.outcome: Event | None = None  # JobFinished, JobFailed or JobCancelled, once done
        self._cancel = cancel
        self._lock = threading.Lock()
        self._history: list[Event] = []  # every event but superseded previews
        self._listeners: list[Listener] = []

    def cancel(self) -> None:
        """Stop this job: at once if queued, within one step if running."""
        self._cancel(self)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every event so far, then with each new one; returns unsubscribe.

        The listener runs on the thread that emits (usually the worker): it must be quick.
        """
        with self._lock:
            for event in self._history:
                listener(event)
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Block and yield this job's events until the last one (JobFinished/Failed/Cancelled).

        With `timeout`, stop quietly if no event comes for that many seconds.
        """
        inbox = _SyncInbox()
        unsubscribe = self.subscribe(inbox.push)
        try:
            while True:
                event = inbox.get(timeout)
                if event is None:
                    return
                yield event
                if is_terminal(event):
                    return
        finally:
            unsubscribe()

    def wait(self, timeout: float | None = None) -> Event | None:
        """The job's last event once it is done, or None on timeout."""
        self.done.wait(timeout)
        return self.outcome

    def emit(self, event: Event) -> None:
        with self._lock:
            if self.outcome is not None:
                return  # nothing follows the end (a late cancel of a finished job, say)
            if isinstance(event, Preview):
                self._history = [
                    e
                    for e in self._history
                    if not (isinstance(e, Preview) and e.node_id == event.node_id)
                ]
            self._history.append(event)
            if is_terminal(event):
                self.outcome = event
            for listener in self._listeners:
                try:
                    listener(event)
                except Exception:  # a broken consumer must not stop the job or the worker
                    log.exception("An event listener of job %s failed", self.id)
        if is_terminal(event):
            self.done.set()

    def __repr__(self) -> str:
        return f"Job({self.id!r}, done={self.done.is_set()})"


class Runtime:
    """The job queue and the worker thread that owns the device.

    `device` is a preference ("auto", "cuda", "mps", "cpu") resolved on the worker thread, or
    a ready DeviceChoice; `models` is a ModelCache kept across jobs (made when first needed).
    Tests pass stand-ins for both so that no torch is needed.
    """

    def __init__(
        self,
        executor: Executor | None = None,
        *,
        device: Any = "auto",
        precision: str | None = None,
        models: Any = None,
        output_dir: str | Path | None = None,
        model_folders: list[Path] | None = None,
        cpu_threads: int | None = None,
        memory_mode: str = "auto",
    ) -> None:
        self.executor = executor if executor is not None else Executor()
        # How sampling saves memory (engine/memory_modes.py): "auto" chooses per job.
        self.memory_mode = memory_mode
        # Threads for CPU jobs (None: every core); applied when the worker picks the device.
        self.cpu_threads = cpu_threads
        self._device = device
        self._precision = precision
        self._choice: Any = None if isinstance(device, str) else device
        self.models = models
        self.output_dir = Path(output_dir) if output_dir is not None else Path(".")
        self.model_folders = [Path(p) for p in model_folders or []]
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self._queue: deque[Job] = deque()
        self._running: Job | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- submitting ------------------------------------------------------------------------

    def submit(
        self, graph: Graph, inputs: dict[str, Any] | None = None, listener: Listener | None = None
    ) -> Job:
        """Queue a run of a copy of `graph` (later edits do not affect it).

        `listener`, if given, is subscribed before the job is queued, so it sees every event.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("The runtime has been shut down.")
            job = Job(f"job-{next(self._ids)}", graph.copy(), dict(inputs or {}), self._cancel)
            if listener is not None:
                job.subscribe(listener)
            position = len(self._queue) + (self._running is not None)
            self._queue.append(job)
            # Emitted before the worker can see the job, so JobQueued always comes first.
            job.emit(JobQueued(job.id, position))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="studio-worker", daemon=True
                )
                self._thread.start()
            self._lock.notify_all()
        return job

    def preload(self, model_path: str, config: str = "") -> Job:
        """Queue loading a model (and importing the engine) before any job needs it.

        The window calls this once it is shown, so the first Generate waits only for what is
        left of the load; a job submitted meanwhile queues behind it.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("The runtime has been shut down.")
            job = Job(f"job-{next(self._ids)}", Graph(), {}, self._cancel)
            job.preload = (model_path, config)
            self._queue.append(job)
            job.emit(JobQueued(job.id, len(self._queue) - 1 + (self._running is not None)))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="studio-worker", daemon=True
                )
                self._thread.start()
            self._lock.notify_all()
        return job

    async def run(self, graph: Graph, inputs: dict[str, Any] | None = None) -> AsyncIterator[Event]:
        """Submit `graph` and yield its events on the running loop, ending with the last one.

        Previews a slow consumer has not taken yet are replaced by newer ones. Leaving early
        (aclose, break then aclose, task cancelled) cancels the job.
        """
        inbox = _AsyncInbox(asyncio.get_running_loop())
        job = self.submit(graph, inputs)
        unsubscribe = job.subscribe(inbox.push)
        ended = False
        try:
            while True:
                event = await inbox.get()
                ended = is_terminal(event)
                yield event
                if ended:
                    return
        finally:
            unsubscribe()
            if not ended:
                job.cancel()

    # -- cancelling ------------------------------------------------------------------------

    def cancel(self, job_id: str | None = None) -> None:
        """Cancel the running job (or the job `job_id`, running or queued)."""
        with self._lock:
            if job_id is None:
                job = self._running
            else:
                candidates = [*self._queue, *([self._running] if self._running else [])]
                job = next((j for j in candidates if j.id == job_id), None)
        if job is not None:
            self._cancel(job)

    def clear_queue(self) -> int:
        """Cancel every job waiting to run (not the running one); how many there were."""
        with self._lock:
            dropped = list(self._queue)
            self._queue.clear()
        for job in dropped:
            job.token.cancel()
            job.emit(JobCancelled(job.id))
        return len(dropped)

    def _cancel(self, job: Job) -> None:
        job.token.cancel()
        with self._lock:
            queued = job in self._queue
            if queued:
                self._queue.remove(job)
        if queued:
            job.emit(JobCancelled(job.id))

    @property
    def busy(self) -> bool:
        """Whether a job is running or waiting."""
        with self._lock:
            return self._running is not None or bool(self._queue)

    def shutdown(self, timeout: float | None = 5.0) -> bool:
        """Cancel everything and wait for the worker to stop; False if it did not in time."""
        with self._lock:
            self._closed = True
            running = self._running
            thread = self._thread
            self._lock.notify_all()
        self.clear_queue()
        if running is not None:
            running.cancel()
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    # -- the worker thread -----------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._lock.wait()
                if not self._queue:
                    return
                job = self._running = self._queue.popleft()
            try:
                self._run_job(job)
            except Exception:  # never let the worker die with a job half reported
                log.exception("The worker failed while running job %s", job.id)
                job.emit(
                    JobFailed(job.id, None, "The job failed unexpectedly; the log has details.")
                )
            finally:
                with self._lock:
                    self._running = None

    def _run_job(self, job: Job) -> None:
        if job.token.cancelled:
            job.emit(JobCancelled(job.id))
            return
        job.emit(JobStarted(job.id))
        started = time.perf_counter()
        # A background load shares the GIL with the window (runtime/courtesy.py).
        courtesy = courteous_loading() if job.preload is not None else nullcontext()
        try:
            with courtesy:
                ctx = RunContext(
                    models=self._model_cache(),
                    device=self._device_choice(),
                    cancel=job.token,
                    inputs=job.inputs,
                    output_dir=self.output_dir,
                    model_folders=list(self.model_folders),
                    workflow=_workflow(job.graph),
                    memory_mode=self.memory_mode,
                    notice=lambda message: job.emit(Notice(job.id, message)),
                )
                if job.preload is not None:
                    _preload(ctx, *job.preload)
                else:
                    _check_budget(job, ctx.device)
                    self.executor.run(job.graph, ctx, job.emit, job.id)
        except Cancelled:
            job.emit(JobCancelled(job.id))
        except NodeFailed as error:
            job.emit(JobFailed(job.id, error.node_id, str(error)))
        except StudioError as error:
            # Validation names its first problem's node; other errors name none.
            problems = getattr(error, "problems", None)
            node_id = getattr(problems[0], "node_id", None) if problems else None
            job.emit(JobFailed(job.id, node_id, str(error)))
        except Exception as error:
            log.exception("Job %s failed", job.id)
            job.emit(
                JobFailed(
                    job.id,
                    None,
                    f"The job failed unexpectedly ({type(error).__name__}); the log has details.",
                )
            )
        else:
            seconds = time.perf_counter() - started
            log.info("Job %s finished in %.1f s", job.id, seconds)
            job.emit(JobFinished(job.id, list(ctx.results), seconds))

    def _device_choice(self) -> Any:
        if self._choice is None:
            from studio.engine.device import choose_device

            self._choice = choose_device(self._device, self._precision)
            if self._choice.device.type == "cpu":
                from studio.engine.device import use_cpu_threads

                use_cpu_threads(self.cpu_threads)
        return self._choice

    def _model_cache(self) -> Any:
        if self.models is None:
            from studio.engine.checkpoint import ModelCache

            self.models = ModelCache()
        return self.models


def _preload(ctx: RunContext, model_path: str, config: str) -> None:
    """Load a model into the runtime's cache the way the LoadCheckpoint node will ask for it."""
    from pathlib import Path

    from studio.nodes.library.models import resolve_model_path

    path = resolve_model_path(model_path, ctx, "model")
    ctx.models.get(path, ctx.device, config=Path(config).expanduser() if config else None)


def _check_budget(job: Job, choice: Any) -> None:
    """Refuse, before any work, a job whose pictures would not fit in the device's memory."""
    device = getattr(choice, "device", None)
    if device is None:
        return  # a stand-in device (tests): nothing to measure
    from studio.engine.budget import check_job

    half = "16" in str(getattr(choice, "dtype", ""))
    check_job(job.graph, job.inputs, device=device, half=half)


def _workflow(graph: Graph) -> dict[str, Any]:
    """The graph as saved JSON, for the metadata of saved images."""
    try:
        from studio.graph.serialize import to_dict
    except ImportError:
        return {}
    try:
        return to_dict(graph)
    except Exception:  # metadata is worth less than the image: save without it
        log.warning("Could not serialise the workflow for metadata", exc_info=True)
        return {}
