"""Copying nodes (and the links among them) through the system clipboard as workflow JSON."""

from __future__ import annotations

from PySide6.QtCore import QMimeData

from studio.errors import WorkflowError
from studio.graph import serialize
from studio.graph.document import Graph, Node
from studio.ui.document import WorkflowDocument

MIME_TYPE = "application/x-studio-nodes"


def copy_nodes(graph: Graph, node_ids: list[str]) -> QMimeData | None:
    """The chosen nodes and the links among them, as clipboard data; None if none are chosen."""
    ids = [i for i in node_ids if i in graph.nodes]
    if not ids:
        return None
    part = Graph(name=graph.name)
    for node_id in ids:
        part.nodes[node_id] = graph.nodes[node_id]
    part.links = [k for k in graph.links if k.src in part.nodes and k.dst in part.nodes]
    text = serialize.dumps(part)
    data = QMimeData()
    data.setData(MIME_TYPE, text.encode("utf-8"))
    return data


def can_paste(data: QMimeData | None) -> bool:
    return data is not None and data.hasFormat(MIME_TYPE)


def paste_nodes(
    document: WorkflowDocument, data: QMimeData | None, offset: tuple[float, float]
) -> list[str]:
    """Add copies of the clipboard's nodes, shifted by `offset`; returns their new ids."""
    if not can_paste(data):
        return []
    try:
        part = serialize.loads(bytes(data.data(MIME_TYPE)).decode("utf-8"))
    except (WorkflowError, UnicodeDecodeError):
        return []
    # A node type this Studio does not know could not be edited or run; leave it out.
    nodes = [
        Node(
            n.id,
            n.type,
            dict(n.params),
            (n.position[0] + offset[0], n.position[1] + offset[1]),
            n.title,
        )
        for n in part.nodes.values()
        if n.type in document.specs
    ]
    if not nodes:
        return []
    links = [(k.src, k.src_port, k.dst, k.dst_port) for k in part.links]
    return document.add_nodes(nodes, links)
