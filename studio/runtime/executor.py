"""Runs a workflow: validate, order, then each node from cache or by its run function."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from studio.errors import Cancelled, OutOfMemoryError, StudioError
from studio.graph.document import Graph, Node
from studio.graph.keys import graph_keys
from studio.graph.order import topological_order
from studio.graph.spec import PATH, NodeSpec
from studio.graph.validate import check, effective_params, node_name
from studio.nodes.context import RunContext
from studio.nodes.registry import NodeType
from studio.runtime.cache import OutputCache
from studio.runtime.events import (
    Event,
    NodeCached,
    NodeFinished,
    NodeStarted,
    Preview,
    Progress,
)

if TYPE_CHECKING:
    from studio.engine.progress import Step

log = logging.getLogger(__name__)


class NodeFailed(StudioError):
    """A node could not run; str() names the node, `node_id` says which one to highlight."""

    def __init__(self, node_id: str, message: str) -> None:
        super().__init__(message)
        self.node_id = node_id


class Executor:
    """Runs workflows one at a time, reusing the outputs of nodes whose inputs did not change.

    Output nodes (save, preview) always run: submitting again means "save again".
    A node that reads the job's `ctx.inputs` (canvas image, mask) is keyed by the values it
    read as well, so a changed canvas reruns it and what follows it.
    """

    def __init__(
        self,
        node_types: Mapping[str, NodeType] | None = None,
        cache: OutputCache | None = None,
    ) -> None:
        self._node_types = node_types
        self.cache = cache if cache is not None else OutputCache()
        # Actual (not cached) runs by node type, for tests and benchmarks.
        self.runs: Counter[str] = Counter()
        # Cache key -> the ctx.inputs slots that node read when it last ran (only non-empty).
        self._reads: dict[str, frozenset[str]] = {}
        # Cache key -> files and folders it noted with ctx.depends_on when it last ran.
        self._files: dict[str, frozenset[str]] = {}

    @property
    def node_types(self) -> Mapping[str, NodeType]:
        if self._node_types is None:
            from studio.nodes.registry import node_types

            self._node_types = node_types()
        return self._node_types

    def run(
        self, graph: Graph, ctx: RunContext, emit: Callable[[Event], None], job_id: str
    ) -> None:
        """Run every node an output node needs; raise NodeFailed, WorkflowError or Cancelled."""
        types = self.node_types
        specs = {name: t.spec for name, t in types.items()}
        check(graph, specs)
        targets = [i for i, n in graph.nodes.items() if specs[n.type].output_node]
        order = topological_order(graph, targets)
        base_keys = graph_keys(graph, specs, order)
        slots = _SlotDigests(ctx.inputs)
        stamps = _file_stamps(graph, order, specs)
        keys = self._keys(graph, order, base_keys, slots, stamps)
        outputs = self._plan(graph, order, keys, specs)

        for node_id in order:
            node = graph.nodes[node_id]
            if node_id in outputs:
                emit(NodeCached(job_id, node_id))
                continue
            ctx.cancel.raise_if_cancelled()
            spec = specs[node.type]
            inputs = self._gather(graph, node, spec, outputs)
            emit(NodeStarted(job_id, node_id, node.title or spec.title))
            started = time.perf_counter()
            result, read, files = self._call(
                types[node.type], node, spec, ctx, inputs, emit, job_id
            )
            seconds = time.perf_counter() - started
            self.runs[node.type] += 1
            # A node that returned because it was interrupted may hold a partial result.
            ctx.cancel.raise_if_cancelled()
            outputs[node_id] = result
            if not spec.output_node:
                base = base_keys[node_id]
                known_read = self._reads.get(base, frozenset())
                known_files = self._files.get(base, frozenset())
                if read != known_read or files != known_files:
                    for noted, value in ((self._reads, read), (self._files, files)):
                        if value:
                            noted[base] = value
                        else:
                            noted.pop(base, None)
                    keys = self._keys(graph, order, base_keys, slots, stamps)
                self.cache.put(keys[node_id], result)
            emit(NodeFinished(job_id, node_id, seconds))

    def _keys(
        self,
        graph: Graph,
        order: list[str],
        base: dict[str, str],
        slots: _SlotDigests,
        stamps: dict[str, list],
    ) -> dict[str, str]:
        """Graph keys, salted for nodes that read job inputs or files, and everything downstream."""
        keys: dict[str, str] = {}
        for node_id in order:
            read = sorted(self._reads.get(base[node_id], ()))
            files = [[path, *_stamp(path)] for path in sorted(self._files.get(base[node_id], ()))]
            changed = sorted(
                (port, keys[link.src], link.src_port)
                for port, link in graph.inputs_of(node_id).items()
                if keys[link.src] != base[link.src]
            )
            stamp = stamps.get(node_id)
            if not read and not changed and not stamp and not files:
                keys[node_id] = base[node_id]
                continue
            payload = [base[node_id], [(s, slots.digest(s)) for s in read], changed, stamp]
            if files:
                payload.append(files)
            text = json.dumps(payload, separators=(",", ":"))
            keys[node_id] = hashlib.sha256(text.encode()).hexdigest()
        return keys

    def _plan(
        self, graph: Graph, order: list[str], keys: dict[str, str], specs: Mapping[str, NodeSpec]
    ) -> dict[str, dict[str, Any]]:
        """Outputs reused from the cache, held for this job; nodes absent here will run.

        Walking back from the output nodes, a node is needed only if a node that runs takes
        its output: with the sampler cached, the model loader and prompt encoders do not run.
        """
        needed = {i for i in order if specs[graph.nodes[i].type].output_node}
        reused: dict[str, dict[str, Any]] = {}
        skipped: set[str] = set()
        for node_id in reversed(order):
            if node_id not in needed:
                skipped.add(node_id)
                continue
            is_output = specs[graph.nodes[node_id].type].output_node
            cached = None if is_output else self.cache.get(keys[node_id])
            if cached is not None:
                reused[node_id] = cached
            else:
                needed.update(link.src for link in graph.inputs_of(node_id).values())
        # Unneeded nodes are up to date too; an empty dict marks them as not to run.
        return {**dict.fromkeys(skipped, {}), **reused}

    def _gather(
        self, graph: Graph, node: Node, spec: NodeSpec, outputs: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        inputs = {}
        for port, link in graph.inputs_of(node.id).items():
            source = outputs[link.src]
            if link.src_port not in source:
                src = graph.nodes[link.src]
                raise NodeFailed(
                    node.id,
                    f'Node {node_name(node, spec)}: input "{port}" got nothing, because node '
                    f'{node_name(src)} gave no "{link.src_port}" output.',
                )
            inputs[port] = source[link.src_port]
        return inputs

    def _call(
        self,
        node_type: NodeType,
        node: Node,
        spec: NodeSpec,
        ctx: RunContext,
        inputs: dict[str, Any],
        emit: Callable[[Event], None],
        job_id: str,
    ) -> tuple[dict[str, Any], frozenset[str], frozenset[str]]:
        """Run one node; its outputs, the ctx.inputs slots and the files it read."""
        node_id = node.id

        def progress(step: Step) -> None:
            emit(Progress(job_id, node_id, step.step, step.total))
            if step.preview is not None:
                emit(Preview(job_id, node_id, step.preview))

        job_inputs, job_progress = ctx.inputs, ctx.progress
        recorder = _ReadRecorder(job_inputs)
        ctx.node_id, ctx.progress, ctx.inputs = node_id, progress, recorder
        ctx.files_read = set()
        name = node_name(node, spec)
        try:
            result = node_type.run(ctx, inputs, effective_params(node, spec))
        except Cancelled:
            raise
        except StudioError as error:
            raise NodeFailed(node_id, f"Node {name}: {error}") from error
        except Exception as error:
            if _is_out_of_memory(error):
                _free_device_memory(ctx)
                sentence = OutOfMemoryError(
                    "The device ran out of memory; try a smaller size, fewer images or the CPU."
                )
                raise NodeFailed(node_id, f"Node {name}: {sentence}") from error
            log.exception("Node %s failed", name)
            detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
            what = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
            raise NodeFailed(
                node_id, f"Node {name} failed unexpectedly ({what}); the log has details."
            ) from error
        finally:
            ctx.node_id, ctx.progress, ctx.inputs = "", job_progress, job_inputs
        if not isinstance(result, dict):
            raise NodeFailed(
                node_id, f"Node {name} returned {type(result).__name__} instead of its outputs."
            )
        return result, frozenset(recorder.read), frozenset(ctx.files_read)


class _ReadRecorder(Mapping[str, Any]):
    """ctx.inputs as a node sees it: a read-only view that notes which slots were read."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        self.read.update(self._values)
        return iter(self._values)

    def __len__(self) -> int:
        self.read.update(self._values)
        return len(self._values)


class _SlotDigests:
    """Fingerprints of a job's ctx.inputs values, computed when first needed."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values
        self._digests: dict[str, str] = {}

    def digest(self, slot: str) -> str:
        if slot not in self._digests:
            value = self._values.get(slot, _ABSENT)
            self._digests[slot] = "absent" if value is _ABSENT else _fingerprint(value)
        return self._digests[slot]


_ABSENT = object()


def _file_stamps(graph: Graph, order: list[str], specs: Mapping[str, NodeSpec]) -> dict[str, list]:
    """Size and modification time of the files nodes read, so an edited file is read again."""
    stamps: dict[str, list] = {}
    for node_id in order:
        node = graph.nodes[node_id]
        found = []
        for param in specs[node.type].params:
            value = node.params.get(param.name, param.default)
            if param.kind != PATH or not value or not isinstance(value, str):
                continue
            try:
                info = os.stat(os.path.expanduser(value))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                found.append([param.name, info.st_size, info.st_mtime_ns])
        if found:
            stamps[node_id] = found
    return stamps


def _stamp(path: str) -> list[int]:
    """Size and modification time of a file or folder ([] when it is gone): a folder's time
    changes when a file is added, removed or renamed in it."""
    try:
        info = os.stat(path)
    except OSError:
        return []
    return [info.st_size, info.st_mtime_ns]


def _fingerprint(value: Any) -> str:
    h = hashlib.sha256()
    pil = sys.modules.get("PIL.Image")
    np = sys.modules.get("numpy")
    if pil is not None and isinstance(value, pil.Image):
        h.update(f"image:{value.mode}:{value.size}:".encode())
        h.update(value.tobytes())
    elif np is not None and isinstance(value, np.ndarray):
        h.update(f"array:{value.dtype}:{value.shape}:".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif value is None or isinstance(value, (bool, int, float, str, bytes)):
        h.update(repr(value).encode())
    else:
        # Unknown kinds cannot be compared by content: a new object reruns its node.
        h.update(f"object:{type(value).__qualname__}:{id(value)}".encode())
    return h.hexdigest()


def _is_out_of_memory(error: BaseException) -> bool:
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom is not None and isinstance(error, oom):
        return True
    return isinstance(error, MemoryError)


def _free_device_memory(ctx: RunContext) -> None:
    device = getattr(ctx.device, "device", None)
    if device is None or "studio.engine.device" not in sys.modules:
        return
    try:
        from studio.engine.device import free_device_memory

        free_device_memory(device)
    except Exception:  # freeing is best effort; the error being reported matters more
        log.debug("Could not free device memory", exc_info=True)
