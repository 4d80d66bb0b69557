"""The runtime with fake node types: caching, queue, cancel, errors, events, asyncio. No torch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from studio.engine.progress import CancelToken, Step
from studio.errors import ParameterError
from studio.graph.document import Graph, Node
from studio.graph.spec import INT, STRING, NodeSpec, Param, Port
from studio.nodes.context import RunContext
from studio.nodes.registry import NodeType
from studio.runtime import (
    Executor,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobQueued,
    JobStarted,
    NodeCached,
    NodeFailed,
    NodeFinished,
    NodeStarted,
    OutputCache,
    Preview,
    Progress,
    Runtime,
    estimate_bytes,
)
from tests.test_layering import imported_after

NUMBER = "NUMBER"
TIMEOUT = 5.0


class Fakes:
    """Fake node types sharing a gate (blocks "Gate" nodes) and a log of collected values."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.collected: list[int] = []
        self.types = {t.spec.type: t for t in self._build()}

    def _build(self) -> list[NodeType]:
        def spec(type_, inputs=(), params=(), output=True, output_node=False):
            outputs = (Port("value", NUMBER),) if output else ()
            ports = tuple(Port(n, NUMBER, optional=n.startswith("opt")) for n in inputs)
            return NodeSpec(type_, type_, inputs=ports, outputs=outputs, params=params,
                            output_node=output_node)  # fmt: skip

        def source(ctx, inputs, params):
            return {"value": params["value"]}

        def add(ctx, inputs, params):
            return {"value": inputs["a"] + inputs.get("opt_b", 0) + params["amount"]}

        def slow(ctx, inputs, params):
            done = 0
            for step in range(1, params["steps"] + 1):
                # Like diffusers' interrupt: stop early and return what there is.
                if ctx.cancel.cancelled:
                    break
                time.sleep(params["delay_ms"] / 1000)
                done = step
                preview = np.full((4, 4, 3), step, dtype=np.uint8)
                ctx.progress(Step(step, params["steps"], preview))
            return {"value": inputs["a"] + done}

        def gate(ctx, inputs, params):
            while not self.gate.wait(0.005):
                ctx.cancel.raise_if_cancelled()
            return {"value": inputs["a"]}

        def fail(ctx, inputs, params):
            raise ParameterError("The seed must be positive.")

        def boom(ctx, inputs, params):
            return {"value": 1 // 0}

        def canvas(ctx, inputs, params):
            image = ctx.inputs.get(params["slot"])
            return {"value": 0 if image is None else int(np.asarray(image).sum())}

        def big(ctx, inputs, params):
            return {"value": np.zeros(params["bytes"], dtype=np.uint8)}

        def size(ctx, inputs, params):
            return {"value": int(inputs["a"].nbytes) + params["amount"]}

        def collect(ctx, inputs, params):
            self.collected.append(inputs["a"])
            ctx.results.append((inputs["a"], None, None))
            return {}

        value = Param("value", INT, 1)
        amount = Param("amount", INT, 0)
        return [
            NodeType(spec("Source", params=(value,)), source),
            NodeType(spec("Add", ("a", "opt_b"), (amount,)), add),
            NodeType(
                spec("Slow", ("a",), (Param("steps", INT, 5), Param("delay_ms", INT, 0))), slow
            ),
            NodeType(spec("Gate", ("a",)), gate),
            NodeType(spec("Fail", ("a",)), fail),
            NodeType(spec("Boom", ("a",)), boom),
            NodeType(spec("Canvas", params=(Param("slot", STRING, "image"),)), canvas),
            NodeType(spec("Big", params=(Param("bytes", INT, 1000),)), big),
            NodeType(spec("Size", ("a",), (amount,)), size),
            NodeType(spec("Collect", ("a",), output=False, output_node=True), collect),
        ]


def chain(*types: str, **params: dict) -> Graph:
    """A linear graph n1 -> n2 -> ... of the given types; params by node id."""
    graph = Graph()
    previous = None
    for index, type_ in enumerate(types, start=1):
        node_id = f"n{index}"
        graph.add(Node(node_id, type_, dict(params.get(node_id, {}))))
        if previous is not None:
            graph.connect(previous, "value", node_id, "a")
        previous = node_id
    return graph


def context(inputs: dict | None = None) -> RunContext:
    return RunContext(models=None, device=None, cancel=CancelToken(), inputs=inputs or {})  # type: ignore[arg-type]


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


@pytest.fixture
def runtime(fakes):
    device = SimpleNamespace(device="fake", dtype="fake", label="fake")
    runtime = Runtime(Executor(fakes.types), device=device, models=SimpleNamespace())
    yield runtime
    fakes.gate.set()
    assert runtime.shutdown(TIMEOUT)


def run(executor: Executor, graph: Graph, inputs: dict | None = None):
    events: list = []
    ctx = context(inputs)
    executor.run(graph, ctx, events.append, "job")
    return events, ctx


def types_of(events) -> list[str]:
    return [type(e).__name__ for e in events]


def terminal(job) -> object:
    assert job.done.wait(TIMEOUT), "the job did not end"
    return job.outcome


# -- executor: caching ---------------------------------------------------------------------


def test_unchanged_graph_reruns_only_output_nodes(fakes):
    executor = Executor(fakes.types)
    graph = chain("Source", "Add", "Collect", n1={"value": 2}, n2={"amount": 3})

    events, ctx = run(executor, graph)
    assert ctx.results == [(5, None, None)]
    assert executor.runs == {"Source": 1, "Add": 1, "Collect": 1}
    assert types_of(events) == ["NodeStarted", "NodeFinished"] * 3

    events, ctx = run(executor, graph)
    assert ctx.results == [(5, None, None)]
    assert executor.runs == {"Source": 1, "Add": 1, "Collect": 2}
    assert [e.node_id for e in events if isinstance(e, NodeCached)] == ["n1", "n2"]


def test_changed_param_reruns_that_node_and_downstream_only(fakes):
    executor = Executor(fakes.types)
    graph = chain("Source", "Add", "Add", "Collect", n1={"value": 1})
    run(executor, graph)
    assert executor.runs == {"Source": 1, "Add": 2, "Collect": 1}

    graph.set_param("n3", "amount", 10)
    _, ctx = run(executor, graph)
    assert ctx.results == [(11, None, None)]
    assert executor.runs == {"Source": 1, "Add": 3, "Collect": 2}

    graph.set_param("n1", "value", 5)
    _, ctx = run(executor, graph)
    assert ctx.results == [(15, None, None)]
    assert executor.runs == {"Source": 2, "Add": 5, "Collect": 3}

    # Back to a combination seen before: every intermediate result is still cached.
    graph.set_param("n1", "value", 1)
    _, ctx = run(executor, graph)
    assert ctx.results == [(11, None, None)]
    assert executor.runs == {"Source": 2, "Add": 5, "Collect": 4}


def test_nodes_not_feeding_an_output_do_not_run(fakes):
    executor = Executor(fakes.types)
    graph = chain("Source", "Collect")
    graph.add(Node("lonely", "Boom"))
    graph.connect("n1", "value", "lonely", "a")
    run(executor, graph)
    assert executor.runs == {"Source": 1, "Collect": 1}


def test_output_too_big_to_cache_still_runs_and_is_skipped_when_not_needed(fakes):
    executor = Executor(fakes.types, OutputCache(budget_bytes=10_000))
    graph = chain("Big", "Size", "Collect", n1={"bytes": 50_000})
    _, ctx = run(executor, graph)
    assert ctx.results == [(50_000, None, None)]
    assert len(executor.cache) == 1  # only Size's small output

    # Size is cached, so its big input is not needed: Big does not run again.
    run(executor, graph)
    assert executor.runs == {"Big": 1, "Size": 1, "Collect": 2}

    graph.set_param("n2", "amount", 1)
    _, ctx = run(executor, graph)
    assert ctx.results == [(50_001, None, None)]
    assert executor.runs == {"Big": 2, "Size": 2, "Collect": 3}


def test_job_inputs_read_by_a_node_are_part_of_its_key(fakes):
    executor = Executor(fakes.types)
    graph = chain("Canvas", "Add", "Collect")
    red = Image.new("RGB", (2, 2), (1, 0, 0))

    _, ctx = run(executor, graph, {"image": red, "mask": "unused"})
    assert ctx.results == [(4, None, None)]
    # Same pixels in a new image object, and a change to a slot the node does not read.
    _, ctx = run(executor, graph, {"image": red.copy(), "mask": "changed"})
    assert ctx.results == [(4, None, None)]
    assert executor.runs == {"Canvas": 1, "Add": 1, "Collect": 2}

    _, ctx = run(executor, graph, {"image": Image.new("RGB", (2, 2), (2, 0, 0))})
    assert ctx.results == [(8, None, None)]
    assert executor.runs == {"Canvas": 2, "Add": 2, "Collect": 3}

    _, ctx = run(executor, graph, {})
    assert ctx.results == [(0, None, None)]
    assert executor.runs == {"Canvas": 3, "Add": 3, "Collect": 4}


# -- executor: events and errors -----------------------------------------------------------


def test_progress_and_previews_are_tagged_with_the_node(fakes):
    executor = Executor(fakes.types)
    graph = chain("Source", "Slow", "Collect", n2={"steps": 3})
    events, _ = run(executor, graph)
    assert types_of(events) == [
        "NodeStarted", "NodeFinished",
        "NodeStarted", *["Progress", "Preview"] * 3, "NodeFinished",
        "NodeStarted", "NodeFinished",
    ]  # fmt: skip
    steps = [(e.node_id, e.step, e.total) for e in events if isinstance(e, Progress)]
    assert steps == [("n2", 1, 3), ("n2", 2, 3), ("n2", 3, 3)]
    previews = [e for e in events if isinstance(e, Preview)]
    assert [int(p.image[0, 0, 0]) for p in previews] == [1, 2, 3]
    started = [e for e in events if isinstance(e, NodeStarted)]
    assert [(e.node_id, e.title) for e in started] == [
        ("n1", "Source"),
        ("n2", "Slow"),
        ("n3", "Collect"),
    ]
    assert all(e.seconds >= 0 for e in events if isinstance(e, NodeFinished))


def test_studio_error_names_the_node(fakes):
    executor = Executor(fakes.types)
    graph = chain("Source", "Fail", "Collect")
    graph.nodes["n2"].title = "Sample"
    with pytest.raises(NodeFailed) as caught:
        run(executor, graph)
    assert caught.value.node_id == "n2"
    assert str(caught.value) == 'Node "Sample" (n2): The seed must be positive.'


def test_unexpected_error_is_short_and_logged(fakes, caplog):
    executor = Executor(fakes.types)
    with caplog.at_level(logging.ERROR), pytest.raises(NodeFailed) as caught:
        run(executor, chain("Source", "Boom", "Collect"))
    assert caught.value.node_id == "n2"
    assert str(caught.value).startswith('Node "Boom" (n2) failed unexpectedly (ZeroDivisionError')
    assert "Traceback" not in str(caught.value)
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


# -- the cache -----------------------------------------------------------------------------


def test_output_cache_is_lru_within_its_budget():
    cache = OutputCache(budget_bytes=3000)
    cache.put("a", {"v": np.zeros(1000, np.uint8)})
    cache.put("b", {"v": np.zeros(1000, np.uint8)})
    assert cache.get("a") is not None  # now b is the least recently used
    cache.put("c", {"v": np.zeros(1500, np.uint8)})
    assert "a" in cache and "c" in cache and "b" not in cache
    assert not cache.put("huge", {"v": np.zeros(5000, np.uint8)})
    assert "huge" not in cache and "a" in cache
    assert cache.get("b") is None
    assert (cache.hits, cache.misses) == (1, 1)
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


def test_estimate_bytes():
    @dataclass
    class Pair:
        first: object
        second: object

    class Model:
        nbytes = 12345

    array = np.zeros((10, 10), np.float32)
    image = Image.new("RGBA", (10, 20))
    assert estimate_bytes(array) == 400
    assert estimate_bytes(image) == 800
    assert estimate_bytes(Model()) == 12345
    assert estimate_bytes({"x": (array, [image])}) >= 1200
    assert estimate_bytes(Pair(array, array)) < 500  # the same object is counted once


def test_estimate_bytes_of_tensors():
    torch = pytest.importorskip("torch")
    assert estimate_bytes(torch.zeros(10, 10, dtype=torch.float16)) == 200
    assert estimate_bytes(torch.nn.Linear(10, 10)) == (100 + 10) * 4


# -- the runtime ---------------------------------------------------------------------------


def test_job_events_in_order(runtime):
    job = runtime.submit(chain("Source", "Slow", "Collect", n2={"steps": 2}))
    events = list(job.events(timeout=TIMEOUT))
    # A reader that comes late or reads slowly gets the newest preview only; nothing else is lost.
    assert [t for t in types_of(events) if t != "Preview"] == [
        "JobQueued", "JobStarted",
        "NodeStarted", "NodeFinished",
        "NodeStarted", "Progress", "Progress", "NodeFinished",
        "NodeStarted", "NodeFinished",
        "JobFinished",
    ]  # fmt: skip
    previews = [e for e in events if isinstance(e, Preview)]
    assert 1 <= len(previews) <= 2 and int(previews[-1].image[0, 0, 0]) == 2
    assert all(e.job_id == job.id for e in events)
    assert events[-1].images == [(3, None, None)]
    assert job.outcome is events[-1]


def test_jobs_run_in_order_and_clear_queue_cancels_waiting_ones(runtime, fakes):
    first = runtime.submit(chain("Source", "Gate", "Collect", n1={"value": 1}))
    second = runtime.submit(chain("Source", "Collect", n1={"value": 2}))
    third = runtime.submit(chain("Source", "Collect", n1={"value": 3}))
    positions = [next(j.events()).position for j in (first, second, third)]
    assert positions == [0, 1, 2]
    fakes.gate.set()
    for job in (first, second, third):
        assert isinstance(terminal(job), JobFinished)
    assert fakes.collected == [1, 2, 3]

    fakes.gate.clear()
    blocked = runtime.submit(chain("Source", "Gate", "Collect", n1={"value": 4}))
    next(e for e in blocked.events(timeout=TIMEOUT) if isinstance(e, NodeStarted))
    waiting = [runtime.submit(chain("Source", "Collect", n1={"value": v})) for v in (5, 6)]
    assert runtime.clear_queue() == 2
    for job in waiting:
        assert types_of(job.events(timeout=TIMEOUT)) == ["JobQueued", "JobCancelled"]
    fakes.gate.set()
    assert isinstance(terminal(blocked), JobFinished)
    assert fakes.collected == [1, 2, 3, 4]


def test_cancel_mid_run_then_run_again(runtime, fakes):
    graph = chain("Source", "Slow", "Collect", n2={"steps": 100, "delay_ms": 3})
    job = runtime.submit(graph)
    events = []
    for event in job.events(timeout=TIMEOUT):
        events.append(event)
        if isinstance(event, Progress):
            runtime.cancel()
    assert isinstance(events[-1], JobCancelled)
    assert sum(isinstance(e, Progress) for e in events) < 100
    assert runtime.executor.runs["Collect"] == 0

    # The interrupted Slow node returned a partial result: it must not have been cached.
    job = runtime.submit(graph)
    assert isinstance(terminal(job), JobFinished)
    assert job.outcome.images == [(101, None, None)]
    assert runtime.executor.runs["Slow"] == 2

    job = runtime.submit(chain("Source", "Gate", "Collect"))
    job.cancel()
    assert isinstance(terminal(job), JobCancelled)
    assert runtime.executor.runs["Collect"] == 1


def test_a_failing_job_does_not_stop_the_next(runtime):
    failing = runtime.submit(chain("Source", "Fail", "Collect"))
    crashing = runtime.submit(chain("Source", "Boom", "Collect"))
    missing = chain("Source", "Add", "Collect")
    missing.disconnect("n2", "a")
    invalid = runtime.submit(missing)
    good = runtime.submit(chain("Source", "Collect", n1={"value": 7}))

    outcome = terminal(failing)
    assert isinstance(outcome, JobFailed)
    assert outcome.node_id == "n2"
    assert outcome.message == 'Node "Fail" (n2): The seed must be positive.'
    outcome = terminal(crashing)
    assert isinstance(outcome, JobFailed) and outcome.node_id == "n2"
    assert "ZeroDivisionError" in outcome.message
    outcome = terminal(invalid)
    assert isinstance(outcome, JobFailed)
    assert outcome.node_id == "n2" and '"a" is not connected' in outcome.message
    assert isinstance(terminal(good), JobFinished)
    assert good.outcome.images == [(7, None, None)]


def test_submit_takes_a_copy_of_the_graph(runtime, fakes):
    graph = chain("Source", "Gate", "Collect", n1={"value": 1})
    job = runtime.submit(graph)
    graph.set_param("n1", "value", 99)
    graph.remove("n3")
    fakes.gate.set()
    assert terminal(job).images == [(1, None, None)]


def test_runtime_builds_the_context(fakes, tmp_path):
    seen = {}

    def inspect(ctx, inputs, params):
        seen.update(vars(ctx))
        return {}

    fakes.types["Inspect"] = NodeType(
        NodeSpec("Inspect", "Inspect", inputs=(Port("a", NUMBER),), output_node=True), inspect
    )
    device, models = SimpleNamespace(label="fake"), SimpleNamespace()
    runtime = Runtime(Executor(fakes.types), device=device, models=models, output_dir=tmp_path)
    try:
        terminal(runtime.submit(chain("Source", "Inspect"), {"image": "pixels"}))
    finally:
        runtime.shutdown(TIMEOUT)
    assert seen["device"] is device and seen["models"] is models
    assert seen["output_dir"] == tmp_path and seen["node_id"] == "n2"
    assert seen["inputs"]["image"] == "pixels"
    assert [n["type"] for n in seen["workflow"]["nodes"]] == ["Source", "Inspect"]


def test_shutdown_cancels_everything_and_joins_promptly(runtime):
    running = runtime.submit(chain("Source", "Slow", "Collect", n2={"steps": 1000, "delay_ms": 10}))
    queued = runtime.submit(chain("Source", "Collect"))
    next(e for e in running.events(timeout=TIMEOUT) if isinstance(e, Progress))
    started = time.perf_counter()
    assert runtime.shutdown(TIMEOUT)
    assert time.perf_counter() - started < 1.0
    assert isinstance(terminal(running), JobCancelled)
    assert isinstance(terminal(queued), JobCancelled)
    with pytest.raises(RuntimeError):
        runtime.submit(chain("Source", "Collect"))


# -- the asyncio API -----------------------------------------------------------------------


def test_async_run_yields_events_in_order(runtime):
    async def main():
        graph = chain("Source", "Slow", "Collect", n2={"steps": 3})
        return [event async for event in runtime.run(graph)]

    events = asyncio.run(main())
    assert isinstance(events[0], JobQueued) and isinstance(events[1], JobStarted)
    assert isinstance(events[-1], JobFinished) and events[-1].images == [(4, None, None)]
    assert [e.step for e in events if isinstance(e, Progress)] == [1, 2, 3]
    assert sum(isinstance(e, NodeFinished) for e in events) == 3


def test_async_slow_consumer_gets_the_latest_preview_and_every_other_event(runtime):
    steps = 60

    async def main():
        events = []
        async for event in runtime.run(chain("Source", "Slow", "Collect", n2={"steps": steps})):
            events.append(event)
            await asyncio.sleep(0.002)  # slower than the node reports
        return events

    events = asyncio.run(main())
    previews = [e for e in events if isinstance(e, Preview)]
    assert 1 <= len(previews) < steps
    assert int(previews[-1].image[0, 0, 0]) == steps  # the latest frame wins
    assert [e.step for e in events if isinstance(e, Progress)] == list(range(1, steps + 1))
    assert types_of(events)[:2] == ["JobQueued", "JobStarted"]
    assert sum(isinstance(e, NodeStarted) for e in events) == 3
    assert isinstance(events[-1], JobFinished)


def test_async_consumer_leaving_early_cancels_the_job(runtime):
    graph = chain("Source", "Slow", "Collect", n2={"steps": 1000, "delay_ms": 10})

    async def leave_after_first_progress():
        async with contextlib.aclosing(runtime.run(graph)) as events:
            async for event in events:
                if isinstance(event, Progress):
                    break

    async def cancel_the_task():
        async def consume():
            async for _ in runtime.run(graph):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    for leave in (leave_after_first_progress, cancel_the_task):
        asyncio.run(leave())
        deadline = time.monotonic() + TIMEOUT
        while runtime.busy and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not runtime.busy
    assert runtime.executor.runs["Collect"] == 0


# -- layering ------------------------------------------------------------------------------


def test_importing_the_runtime_loads_neither_torch_nor_qt():
    modules = imported_after("import studio.runtime; studio.runtime.Runtime().executor.node_types")
    assert "torch" not in modules and "PySide6" not in modules
