"""Run a workflow in one call, through the same runtime and executor as the window and the CLI.

For tests, benchmarks and scripts: `run_workflow("txt2img", {"positive.text": "a red circle",
"sample.seed": 3, "model.path": path})` fills a default workflow (resources/workflows) with
"node.param" values, runs it on a worker thread and returns the images it made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import Cancelled, StudioError
from studio.graph.document import Graph
from studio.runtime.events import Event, JobCancelled, JobFailed, JobFinished, NodeFinished
from studio.runtime.worker import Runtime


class WorkflowFailed(StudioError):
    """The job failed; str() is the sentence the window would show, `node_id` the node."""

    def __init__(self, message: str, node_id: str | None) -> None:
        super().__init__(message)
        self.node_id = node_id


@dataclass
class WorkflowResult:
    """What one run made: images with their parameters, saved paths, and every event."""

    images: list[Any] = field(default_factory=list)  # PIL images
    params: list[Any] = field(default_factory=list)  # GenerationParams (or None) per image
    paths: list[Path | None] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    seconds: float = 0.0  # the job's own time, from the worker

    def node_seconds(self, node_id: str) -> float:
        """Time the node ran in this job (0 when it came from the cache)."""
        return sum(
            e.seconds for e in self.events if isinstance(e, NodeFinished) and e.node_id == node_id
        )


def prepare_workflow(
    workflow: str | Graph, values: Mapping[str, Any] | None = None, *, save: bool = False
) -> Graph:
    """A default workflow (by mode) or a copy of `workflow`, with "node.param" values set.

    Unless `save`, image-saving nodes become preview nodes: the images come back, no file is
    written.
    """
    from studio.nodes.defaults import default_workflow, set_params

    graph = default_workflow(workflow) if isinstance(workflow, str) else workflow.copy()
    set_params(graph, dict(values or {}))
    if not save:
        for node in graph.find("SaveImage"):
            node.type, node.params = "PreviewImage", {}
    return graph


def run_workflow(
    workflow: str | Graph,
    values: Mapping[str, Any] | None = None,
    *,
    inputs: Mapping[str, Any] | None = None,
    runtime: Runtime | None = None,
    device: Any = "auto",
    precision: str | None = None,
    memory_mode: str = "auto",
    models: Any = None,
    save: bool = False,
    output_dir: str | Path | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> WorkflowResult:
    """Run a workflow to the end; raise WorkflowFailed with the job's message, or Cancelled.

    `runtime` reuses a runtime (its loaded models and cached node outputs, like the window's
    second job); without one a runtime is made for this call (`device`, `precision`,
    `memory_mode`, `models`: a ModelCache to share loaded models between calls) and shut down
    after it. `on_event` is called on the worker thread with each event as it happens (a test
    may cancel from it).
    """
    graph = prepare_workflow(workflow, values, save=save)
    own = runtime is None
    if runtime is None:
        runtime = Runtime(
            device=device,
            precision=precision,
            memory_mode=memory_mode,
            models=models,
            output_dir=output_dir,
        )
    result = WorkflowResult()

    def listen(event: Event) -> None:
        result.events.append(event)
        if on_event is not None:
            on_event(event)

    try:
        outcome = runtime.submit(graph, dict(inputs or {}), listener=listen).wait()
    finally:
        if own:
            runtime.shutdown()
    if isinstance(outcome, JobFailed):
        raise WorkflowFailed(outcome.message, outcome.node_id)
    if isinstance(outcome, JobCancelled) or not isinstance(outcome, JobFinished):
        raise Cancelled()
    for image, params, path in outcome.images:
        result.images.append(image)
        result.params.append(params)
        result.paths.append(path)
    result.seconds = outcome.seconds
    return result
