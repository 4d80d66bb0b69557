"""Workflow files: versioned JSON, upgraded on load, written atomically."""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.errors import WorkflowError
from studio.graph.document import Exposed, Graph, Link, Node

FORMAT = "studio-workflow"
VERSION = 1
# Workflows are kilobytes; these bound what a hostile file can make us read and walk.
MAX_WORKFLOW_BYTES = 64 * 2**20
MAX_NESTING = 64
# Workflows hold tens of nodes; validation and ordering are quadratic in the worst case.
MAX_NODES = 1000
# MIGRATIONS[n] turns a version-n document into a version-(n + 1) one.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}

_UNNAMED = "The workflow"


def to_dict(graph: Graph) -> dict[str, Any]:
    """The workflow as plain JSON data (a fresh copy; parameters with sorted keys)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": graph.name,
        "nodes": [
            {
                "id": node.id,
                "type": node.type,
                "title": node.title,
                "position": [float(node.position[0]), float(node.position[1])],
                "params": _sorted(copy.deepcopy(node.params)),
            }
            for node in graph.nodes.values()
        ],
        "links": [[k.src, k.src_port, k.dst, k.dst_port] for k in graph.links],
        "exposed": [{"node": e.node, "param": e.param, "label": e.label} for e in graph.exposed],
    }


def from_dict(data: Any) -> Graph:
    """A workflow from JSON data, upgraded from older versions; WorkflowError if it is not one."""
    return _from_dict(data, _UNNAMED)


def dumps(graph: Graph) -> str:
    """The workflow as JSON text; the same workflow always gives the same text."""
    return json.dumps(to_dict(graph), indent=2, ensure_ascii=False)


def loads(text: str) -> Graph:
    return _loads(text, _UNNAMED)


def save(graph: Graph, path: str | os.PathLike[str]) -> None:
    """Write the workflow to `path` atomically: a crash leaves the old file or the new, whole."""
    path = Path(path)
    text = dumps(graph) + "\n"
    try:
        handle = tempfile.NamedTemporaryFile(
            "w",
            encoding="utf-8",
            dir=path.parent,
            prefix=f".{path.name}.",
            suffix=".tmp",
            delete=False,
        )
    except OSError as error:
        raise WorkflowError(_cannot(path, "saved", error)) from error
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes the file private; a saved workflow is an ordinary document.
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(handle.name, mode)
        os.replace(handle.name, path)
    except OSError as error:
        Path(handle.name).unlink(missing_ok=True)
        raise WorkflowError(_cannot(path, "saved", error)) from error


def load(path: str | os.PathLike[str]) -> Graph:
    """Read a workflow file; WorkflowError naming the file if it cannot be used."""
    path = Path(path)
    subject = f'The workflow file "{path}"'
    try:
        if path.stat().st_size > MAX_WORKFLOW_BYTES:
            raise WorkflowError(
                f"{subject} is larger than {MAX_WORKFLOW_BYTES // 2**20} MB, too large for a "
                "workflow."
            )
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise WorkflowError(f"{subject} is not a text file, so not a workflow.") from error
    except OSError as error:
        raise WorkflowError(_cannot(path, "read", error)) from error
    return _loads(text, subject)


# -- reading -------------------------------------------------------------------------------


def _loads(text: str, subject: str) -> Graph:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise WorkflowError(
            f"{subject} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})."
        ) from error
    except RecursionError:
        raise WorkflowError(f"{subject} is nested too deeply to be a workflow.") from None
    return _from_dict(data, subject)


def check_depth(data: Any, subject: str, limit: int = MAX_NESTING) -> None:
    """Refuse JSON nested deeper than any workflow is (copying or hashing it would recurse)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            raise WorkflowError(f"{subject} is nested too deeply to be a workflow.")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def _from_dict(data: Any, subject: str) -> Graph:
    check_depth(data, subject)
    if _looks_like_comfyui(data):
        raise WorkflowError(
            f"{subject} is a ComfyUI workflow, not a Studio one; import it instead of opening it."
        )
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise WorkflowError(f"{subject} is not a Studio workflow.")
    data = _upgrade(copy.deepcopy(data), subject)
    try:
        return _build(data)
    except _Damaged as error:
        raise WorkflowError(f"{subject} is damaged: {error}.") from None


def _upgrade(data: dict[str, Any], subject: str) -> dict[str, Any]:
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise WorkflowError(f"{subject} is damaged: it has no version number.")
    if version > VERSION:
        raise WorkflowError(
            f"{subject} was saved by a newer Studio (workflow version {version}); "
            f"this one reads up to {VERSION}."
        )
    while version < VERSION:
        migrate = MIGRATIONS.get(version)
        if migrate is None:
            raise WorkflowError(
                f"{subject} is in workflow version {version}, which this Studio cannot upgrade."
            )
        try:
            data = migrate(data)
        except WorkflowError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            raise WorkflowError(
                f"{subject} could not be upgraded from workflow version {version} ({error!r})."
            ) from error
        if not isinstance(data, dict):
            raise WorkflowError(f"{subject} could not be upgraded from workflow version {version}.")
        version += 1
        data["version"] = version
    return data


class _Damaged(Exception):
    """What is wrong with the structure, as the end of a sentence."""


def _build(data: dict[str, Any]) -> Graph:
    name = _field(data, "name", str, "the workflow", default="")
    graph = Graph(name=name)
    nodes = _field(data, "nodes", list, "the workflow")
    links = _field(data, "links", list, "the workflow", default=[])
    if len(nodes) > MAX_NODES or len(links) > 8 * MAX_NODES:
        raise _Damaged(f"it has {len(nodes)} nodes, more than the {MAX_NODES} Studio reads")
    for index, item in enumerate(nodes, 1):
        where = f"node {index}"
        if not isinstance(item, dict):
            raise _Damaged(f"{where} is not an object")
        node_id = _field(item, "id", str, where)
        if node_id in graph.nodes:
            raise _Damaged(f'node id "{node_id}" is used twice')
        position = _field(item, "position", list, where, default=[0.0, 0.0])
        if len(position) != 2 or not all(_is_number(v) for v in position):
            raise _Damaged(f'{where} has a "position" that is not two numbers')
        graph.nodes[node_id] = Node(
            id=node_id,
            type=_field(item, "type", str, where),
            params=_field(item, "params", dict, where, default={}),
            position=(float(position[0]), float(position[1])),
            title=_field(item, "title", str, where, default=""),
        )
    for index, item in enumerate(links, 1):
        if not (
            isinstance(item, list) and len(item) == 4 and all(isinstance(v, str) for v in item)
        ):
            raise _Damaged(f"link {index} is not four names (node, output, node, input)")
        graph.links.append(Link(*item))
    for index, item in enumerate(_field(data, "exposed", list, "the workflow", default=[]), 1):
        where = f"prompt panel entry {index}"
        if not isinstance(item, dict):
            raise _Damaged(f"{where} is not an object")
        graph.exposed.append(
            Exposed(
                node=_field(item, "node", str, where),
                param=_field(item, "param", str, where),
                label=_field(item, "label", str, where, default=""),
            )
        )
    return graph


_MISSING = object()
_KIND_NAMES = {str: "text", list: "a list", dict: "an object"}


def _field(data: dict[str, Any], key: str, kind: type, where: str, default: Any = _MISSING) -> Any:
    value = data.get(key, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise _Damaged(f'{where} has no "{key}"')
        return default
    if not isinstance(value, kind):
        raise _Damaged(f'{where} has a "{key}" that is not {_KIND_NAMES[kind]}')
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _looks_like_comfyui(data: Any) -> bool:
    if not isinstance(data, dict) or "format" in data:
        return False
    # The editor's format: nodes with widget values, links as id lists, a last node id.
    if "last_node_id" in data or "last_link_id" in data:
        return True
    nodes = data.get("nodes")
    if isinstance(nodes, list) and any(
        isinstance(n, dict) and "widgets_values" in n for n in nodes
    ):
        return True
    # The API format ("prompt"): node id -> {"class_type": ..., "inputs": {...}}.
    values = list(data.values())
    return bool(values) and all(isinstance(v, dict) and "class_type" in v for v in values)


def _sorted(value: Any) -> Any:
    """Dicts with sorted keys, all the way down, so equal workflows write equal text."""
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _cannot(path: Path, verb: str, error: OSError) -> str:
    reason = error.strerror or str(error)
    return f'The workflow file "{path}" cannot be {verb}: {reason}.'
