"""The workflow document: the single source of truth that the panel, editor and runtime share."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Node:
    id: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    position: tuple[float, float] = (0.0, 0.0)
    title: str = ""


@dataclass(frozen=True)
class Link:
    """Output `src_port` of node `src` feeds input `dst_port` of node `dst`."""

    src: str
    src_port: str
    dst: str
    dst_port: str


@dataclass(frozen=True)
class Exposed:
    """A node parameter shown in the prompt panel."""

    node: str
    param: str
    label: str = ""


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    exposed: list[Exposed] = field(default_factory=list)
    name: str = ""

    # -- editing ---------------------------------------------------------------------------

    def new_id(self, prefix: str = "n") -> str:
        index = len(self.nodes) + 1
        while f"{prefix}{index}" in self.nodes:
            index += 1
        return f"{prefix}{index}"

    def add(self, node: Node) -> Node:
        if node.id in self.nodes:
            raise ValueError(f"node id {node.id!r} is already used")
        self.nodes[node.id] = node
        return node

    def remove(self, node_id: str) -> None:
        self.nodes.pop(node_id, None)
        self.links = [k for k in self.links if node_id not in (k.src, k.dst)]
        self.exposed = [e for e in self.exposed if e.node != node_id]

    def connect(self, src: str, src_port: str, dst: str, dst_port: str) -> Link:
        """Link an output to an input, replacing whatever fed that input before."""
        self.links = [k for k in self.links if not (k.dst == dst and k.dst_port == dst_port)]
        link = Link(src, src_port, dst, dst_port)
        self.links.append(link)
        return link

    def disconnect(self, dst: str, dst_port: str) -> None:
        self.links = [k for k in self.links if not (k.dst == dst and k.dst_port == dst_port)]

    def set_param(self, node_id: str, name: str, value: Any) -> None:
        self.nodes[node_id].params[name] = value

    def expose(self, node_id: str, param: str, label: str = "") -> None:
        if not any(e.node == node_id and e.param == param for e in self.exposed):
            self.exposed.append(Exposed(node_id, param, label))

    def unexpose(self, node_id: str, param: str) -> None:
        self.exposed = [e for e in self.exposed if not (e.node == node_id and e.param == param)]

    # -- reading ---------------------------------------------------------------------------

    def inputs_of(self, node_id: str) -> dict[str, Link]:
        """Incoming links of a node, by input port name."""
        return {k.dst_port: k for k in self.links if k.dst == node_id}

    def consumers_of(self, node_id: str) -> list[Link]:
        return [k for k in self.links if k.src == node_id]

    def find(self, node_type: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.type == node_type]

    def copy(self) -> Graph:
        return copy.deepcopy(self)
