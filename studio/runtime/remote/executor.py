"""The remote executor: runs a workflow's generating part on ComfyUI servers, the rest here.

It has the local executor's interface (`run(graph, ctx, emit, job_id)`), so the worker, its
queue, events, cancel and saving do not care where a graph runs. The workflow is cut in two
(split.py): the server's part becomes one node of a local graph, which the local executor runs
with its cache and events as usual; that node's run function is a `RemoteJob`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence

from studio.graph.document import Graph
from studio.graph.validate import check
from studio.nodes.context import RunContext
from studio.nodes.registry import NodeType
from studio.runtime.cache import OutputCache
from studio.runtime.events import Event, NodeCached, NodeFinished, NodeStarted
from studio.runtime.executor import Executor, NodeFailed
from studio.runtime.remote.job import RemoteJob
from studio.runtime.remote.pool import ServerPool
from studio.runtime.remote.server import RemoteError, Server
from studio.runtime.remote.split import (
    MODEL_INFO_SPEC,
    MODEL_INFO_TYPE,
    PART_TYPE,
    Split,
    exportable_types,
    server_model,
    split,
)

log = logging.getLogger(__name__)


class _Types(Mapping[str, NodeType]):
    """The node library plus, while a job runs, the node standing for the server's part."""

    def __init__(self, base: Mapping[str, NodeType] | None) -> None:
        self._base = base
        self.part: NodeType | None = None

    @property
    def base(self) -> Mapping[str, NodeType]:
        if self._base is None:
            from studio.nodes.registry import node_types

            self._base = node_types()
        return self._base

    def __getitem__(self, key: str) -> NodeType:
        if key == PART_TYPE and self.part is not None:
            return self.part
        if key == MODEL_INFO_TYPE:
            return _MODEL_INFO
        return self.base[key]

    def __iter__(self) -> Iterator[str]:
        yield from self.base
        yield MODEL_INFO_TYPE
        if self.part is not None:
            yield PART_TYPE

    def __len__(self) -> int:
        return len(self.base) + 1 + (self.part is not None)


_MODEL_INFO = NodeType(MODEL_INFO_SPEC, server_model)


class RemoteExecutor:
    """Runs workflows on the user's ComfyUI servers (one or several), pixel work locally."""

    def __init__(
        self,
        servers: Sequence[Server],
        *,
        node_types: Mapping[str, NodeType] | None = None,
        cache: OutputCache | None = None,
        idle_timeout: float = 120.0,
        connect_timeout: float = 10.0,
        restart_grace: float = 10.0,
    ) -> None:
        self.pool = ServerPool(servers, connect_timeout=connect_timeout)
        # Seconds of silence from a server running our job before we give up on it.
        self.idle_timeout = idle_timeout
        # How long a lone server that dropped out may take to come back (a restart).
        self.restart_grace = restart_grace
        self._types = _Types(node_types)
        self._local = Executor(self._types, cache)
        self.cache = self._local.cache
        self.runs = self._local.runs  # local node runs by type; the server's part counts too

    @property
    def servers(self) -> list[Server]:
        return self.pool.servers

    @property
    def node_types(self) -> Mapping[str, NodeType]:
        return self._types.base

    def run(
        self, graph: Graph, ctx: RunContext, emit: Callable[[Event], None], job_id: str
    ) -> None:
        """Run the workflow; raise NodeFailed, WorkflowError, RemoteError or Cancelled."""
        base = self._types.base
        specs = {name: t.spec for name, t in base.items()}
        check(graph, specs)  # the whole workflow, before it is cut in two
        part = split(graph, specs, exportable_types())
        if part is None:  # nothing needs a model: it all runs here
            self._local.run(graph, ctx, emit, job_id)
            return
        job = RemoteJob(self, graph, part, ctx, emit, job_id)
        self._types.part = NodeType(part.spec, job.run)
        try:
            self._local.run(part.local, ctx, _Translate(graph, part, emit, job_id), job_id)
        except NodeFailed as error:
            cause = error.__cause__
            if not isinstance(cause, RemoteError) or error.node_id not in part.local.nodes:
                raise
            if part.local.nodes[error.node_id].type != PART_TYPE:
                raise
            if cause.node_id:
                raise NodeFailed(cause.node_id, str(cause)) from cause
            raise cause from None
        finally:
            self._types.part = None


class _Translate:
    """The part node's own events become events of the Studio nodes it stands for."""

    def __init__(
        self, graph: Graph, part: Split, emit: Callable[[Event], None], job_id: str
    ) -> None:
        self._part_ids = {i for i, n in part.local.nodes.items() if n.type == PART_TYPE}
        # Nodes of ours the user's workflow does not have: their own events are not shown.
        self._ours = self._part_ids | {
            i for i, n in part.local.nodes.items() if n.type == MODEL_INFO_TYPE
        }
        self._remote = part.remote
        self._emit = emit
        self._job_id = job_id

    def __call__(self, event: Event) -> None:
        node_id = getattr(event, "node_id", None)
        if node_id not in self._ours:
            self._emit(event)
        elif isinstance(event, NodeCached) and node_id in self._part_ids:
            for remote in self._remote:
                self._emit(NodeCached(self._job_id, remote))
        elif isinstance(event, NodeStarted | NodeFinished | NodeCached):
            pass  # the job reports each server node as the server runs it
        else:
            self._emit(event)
