"""The open workflow as a Qt object: one Graph, edited through undoable commands.

The prompt panel and the node editor are both views of this object. They never keep a
copy of a parameter: they call the editing methods here and redraw on its signals, so an
edit in one view shows in the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from studio.graph.document import Graph, Link, Node
from studio.graph.spec import NodeSpec

# Merge ids for QUndoCommand.mergeWith: typing into a field is one undo step, not one per key.
_PARAM_MERGE_ID = 1


class WorkflowDocument(QObject):
    """Owns the workflow graph and its undo stack.

    Signals:
    - paramChanged(node_id, param, value): one parameter changed (either view, or undo).
    - structureChanged(): nodes, links, positions, titles or exposed parameters changed.
    - graphReplaced(): a different workflow was loaded (mode switch, file opened).
    """

    paramChanged = Signal(str, str, object)
    structureChanged = Signal()
    graphReplaced = Signal()

    def __init__(
        self, graph: Graph, specs: Mapping[str, NodeSpec], parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._graph = graph
        self.specs = specs
        self.undo_stack = QUndoStack(self)

    @property
    def graph(self) -> Graph:
        """The live graph. Read it freely; change it only through this object's methods."""
        return self._graph

    def spec(self, node_id: str) -> NodeSpec | None:
        node = self._graph.nodes.get(node_id)
        return self.specs.get(node.type) if node else None

    def param_value(self, node_id: str, name: str) -> Any:
        """The parameter's value, or its spec default when the node does not set it."""
        node = self._graph.nodes[node_id]
        if name in node.params:
            return node.params[name]
        spec = self.specs.get(node.type)
        param = spec.param(name) if spec else None
        return param.default if param else None

    # -- replacing the whole document -------------------------------------------------------

    def replace(self, graph: Graph, *, keep_undo: bool = False) -> None:
        """Show another workflow (mode switch, file opened); its edits start a new history."""
        self._graph = graph
        if not keep_undo:
            self.undo_stack.clear()
        self.graphReplaced.emit()

    def switch_graph(self, graph: Graph, text: str) -> None:
        """Replace the workflow with `graph` as one undo step (a mode switch)."""
        self.undo_stack.push(_Snapshot(self, text, self._graph.copy(), graph.copy()))

    # -- parameter edits -------------------------------------------------------------------

    def show_param(self, node_id: str, name: str, value: Any) -> None:
        """Set a parameter the window decides (a seed drawn for a run, an automatic default)
        without an undo step: it is not an edit the user made."""
        if node_id in self._graph.nodes and self.param_value(node_id, name) != value:
            self._apply_param(node_id, name, value)

    def set_param(self, node_id: str, name: str, value: Any) -> None:
        """Change one parameter (undoable; consecutive edits of one field merge)."""
        if node_id not in self._graph.nodes:
            raise KeyError(f"no node {node_id!r}")
        if self.param_value(node_id, name) == value and name in self._graph.nodes[node_id].params:
            return
        self.undo_stack.push(_SetParam(self, node_id, name, value))

    def _apply_param(self, node_id: str, name: str, value: Any, present: bool = True) -> None:
        params = self._graph.nodes[node_id].params
        if present:
            params[name] = value
        else:
            params.pop(name, None)
        self.paramChanged.emit(node_id, name, self.param_value(node_id, name))

    # -- structure edits (snapshot based: graphs are small) ----------------------------------

    def add_node(self, node_type: str, position: tuple[float, float] = (0.0, 0.0)) -> str:
        spec = self.specs[node_type]
        prefix = "".join(c for c in node_type.lower() if c.isalnum()) or "n"
        node_id = self._graph.new_id(prefix)
        node = Node(node_id, node_type, spec.defaults(), position, spec.title)

        def edit(graph: Graph) -> None:
            graph.add(Node(node.id, node.type, dict(node.params), node.position, node.title))

        self._edit(f"Add {spec.title}", edit)
        return node_id

    def add_nodes(self, nodes: list[Node], links: list[tuple[str, str, str, str]]) -> list[str]:
        """Add copies of nodes (fresh ids) and the links among them; returns the new ids."""
        mapping: dict[str, str] = {}
        taken = set(self._graph.nodes)
        for node in nodes:
            prefix = "".join(c for c in node.type.lower() if c.isalnum()) or "n"
            index = 1
            while f"{prefix}{index}" in taken:
                index += 1
            mapping[node.id] = f"{prefix}{index}"
            taken.add(mapping[node.id])

        def edit(graph: Graph) -> None:
            for node in nodes:
                graph.add(
                    Node(mapping[node.id], node.type, dict(node.params), node.position, node.title)
                )
            for src, sport, dst, dport in links:
                if src in mapping and dst in mapping:
                    graph.connect(mapping[src], sport, mapping[dst], dport)

        self._edit(f"Paste {len(nodes)} node(s)", edit)
        return [mapping[n.id] for n in nodes]

    def remove_nodes(self, node_ids: list[str]) -> None:
        ids = [i for i in node_ids if i in self._graph.nodes]
        if not ids:
            return

        def edit(graph: Graph) -> None:
            for node_id in ids:
                graph.remove(node_id)

        self._edit(f"Delete {len(ids)} node(s)", edit)

    def move_nodes(self, positions: dict[str, tuple[float, float]]) -> None:
        def edit(graph: Graph) -> None:
            for node_id, pos in positions.items():
                if node_id in graph.nodes:
                    graph.nodes[node_id].position = (float(pos[0]), float(pos[1]))

        self._edit("Move", edit)

    def set_title(self, node_id: str, title: str) -> None:
        self._edit("Rename", lambda graph: setattr(graph.nodes[node_id], "title", title))

    def connect_ports(self, src: str, src_port: str, dst: str, dst_port: str) -> str | None:
        """Link an output to an input; returns why it was refused, or None when linked."""
        reason = self.link_refusal(src, src_port, dst, dst_port)
        if reason is None and Link(src, src_port, dst, dst_port) in self._graph.links:
            return None  # already linked: an undo step that changes nothing would confuse
        if reason is None:
            self._edit("Connect", lambda graph: graph.connect(src, src_port, dst, dst_port))
        return reason

    def disconnect_port(self, dst: str, dst_port: str) -> None:
        if dst_port in self._graph.inputs_of(dst):
            self._edit("Disconnect", lambda graph: graph.disconnect(dst, dst_port))

    def link_refusal(self, src: str, src_port: str, dst: str, dst_port: str) -> str | None:
        """Why output src.src_port cannot feed input dst.dst_port (one sentence), or None."""
        src_spec, dst_spec = self.spec(src), self.spec(dst)
        if src_spec is None or dst_spec is None:
            return "Both ends of a link must be nodes of a known type."
        out_port, in_port = src_spec.output(src_port), dst_spec.input(dst_port)
        if out_port is None or in_port is None:
            return "A link goes from an output to an input."
        if src == dst:
            return "A node cannot feed itself."
        if out_port.type != in_port.type:
            return (
                f"{in_port.title} of {dst_spec.title} takes {in_port.type}, "
                f"but {out_port.title} of {src_spec.title} gives {out_port.type}."
            )
        if dst in _upstream(self._graph, src):
            return "That link would make a loop: a node would depend on its own result."
        return None

    def set_exposed(self, node_id: str, param: str, exposed: bool, label: str = "") -> None:
        """Show (or hide) a node parameter in the prompt panel."""
        is_exposed = any(e.node == node_id and e.param == param for e in self._graph.exposed)
        if exposed == is_exposed:
            return
        if exposed:
            self._edit("Expose", lambda graph: graph.expose(node_id, param, label))
        else:
            self._edit("Unexpose", lambda graph: graph.unexpose(node_id, param))

    def is_exposed(self, node_id: str, param: str) -> bool:
        return any(e.node == node_id and e.param == param for e in self._graph.exposed)

    def _edit(self, text: str, change) -> None:
        before = self._graph.copy()
        after = self._graph.copy()
        change(after)
        self.undo_stack.push(_Snapshot(self, text, before, after))

    def _restore(self, snapshot: Graph) -> None:
        # Keep the same Graph object: views and the runtime bridge hold a reference to it.
        copy = snapshot.copy()
        self._graph.nodes = copy.nodes
        self._graph.links = copy.links
        self._graph.exposed = copy.exposed
        self._graph.name = copy.name
        self.structureChanged.emit()


def _upstream(graph: Graph, node_id: str) -> set[str]:
    seen: set[str] = set()
    stack = [node_id]
    while stack:
        current = stack.pop()
        for link in graph.inputs_of(current).values():
            if link.src not in seen:
                seen.add(link.src)
                stack.append(link.src)
    return seen


class _SetParam(QUndoCommand):
    def __init__(self, doc: WorkflowDocument, node_id: str, name: str, value: Any) -> None:
        spec = doc.spec(node_id)
        param = spec.param(name) if spec else None
        super().__init__(f"Change {param.title if param else name}")
        self.doc, self.node_id, self.name, self.value = doc, node_id, name, value
        params = doc.graph.nodes[node_id].params
        self.had_old = name in params
        self.old = params.get(name)

    def redo(self) -> None:
        self.doc._apply_param(self.node_id, self.name, self.value)

    def undo(self) -> None:
        self.doc._apply_param(self.node_id, self.name, self.old, present=self.had_old)

    def id(self) -> int:
        return _PARAM_MERGE_ID

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 (Qt's name)
        if not isinstance(other, _SetParam) or (other.node_id, other.name) != (
            self.node_id,
            self.name,
        ):
            return False
        # Only free text merges: each change of a number or choice is its own step.
        if not isinstance(self.value, str) or not isinstance(other.value, str):
            return False
        self.value = other.value
        return True


class _Snapshot(QUndoCommand):
    def __init__(self, doc: WorkflowDocument, text: str, before: Graph, after: Graph) -> None:
        super().__init__(text)
        self.doc, self.before, self.after = doc, before, after

    def redo(self) -> None:
        self.doc._restore(self.after)

    def undo(self) -> None:
        self.doc._restore(self.before)
