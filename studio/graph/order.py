"""The order nodes run in: every node after the nodes that feed it."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable

from studio.errors import WorkflowError
from studio.graph.document import Graph, Node


def topological_order(graph: Graph, targets: Iterable[str] | None = None) -> list[str]:
    """Node ids in dependency order, ties broken by insertion order; only ancestors of `targets`."""
    position = {node_id: index for index, node_id in enumerate(graph.nodes)}
    if targets is None:
        wanted: Collection[str] = position
    else:
        wanted = ancestors(graph, targets)
    edges = _edges(graph, wanted)

    waiting = dict.fromkeys(wanted, 0)
    for _src, dst in edges:
        waiting[dst] += 1
    feeds: dict[str, list[str]] = {node_id: [] for node_id in wanted}
    for src, dst in edges:
        feeds[src].append(dst)

    ready = [position[node_id] for node_id, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    ids = list(graph.nodes)
    order: list[str] = []
    while ready:
        node_id = ids[heapq.heappop(ready)]
        order.append(node_id)
        for dst in feeds[node_id]:
            waiting[dst] -= 1
            if waiting[dst] == 0:
                heapq.heappush(ready, position[dst])

    if len(order) < len(wanted):
        stuck = set(wanted) - set(order)
        loops = find_cycles(graph, among=stuck)
        names = loops[0] if loops else sorted(stuck, key=position.__getitem__)
        raise WorkflowError(cycle_sentence([_name(graph.nodes[n]) for n in names]))
    return order


def ancestors(graph: Graph, targets: Iterable[str]) -> set[str]:
    """The targets and every node that feeds them, directly or not."""
    found: set[str] = set()
    stack: list[str] = []
    for target in targets:
        if target not in graph.nodes:
            raise WorkflowError(f'Node "{target}" is not in the workflow.')
        stack.append(target)
    while stack:
        node_id = stack.pop()
        if node_id in found:
            continue
        found.add(node_id)
        stack.extend(k.src for k in graph.links if k.dst == node_id and k.src in graph.nodes)
    return found


def find_cycles(graph: Graph, among: Collection[str] | None = None) -> list[list[str]]:
    """Groups of nodes that depend on each other (a node linked to itself counts), in graph order.

    Each group is a strongly connected component: every node in it reaches every other.
    """
    nodes = [n for n in graph.nodes if among is None or n in among]
    edges = _edges(graph, set(nodes))
    feeds: dict[str, list[str]] = {node_id: [] for node_id in nodes}
    for src, dst in edges:
        feeds[src].append(dst)

    # Workflows hold tens of nodes, so a search from each node is cheap and obviously right.
    reach = {node_id: _reachable(node_id, feeds.__getitem__) for node_id in nodes}
    groups: list[list[str]] = []
    placed: set[str] = set()
    for node_id in nodes:
        if node_id in placed or node_id not in reach[node_id]:
            continue
        group = [other for other in nodes if other in reach[node_id] and node_id in reach[other]]
        placed.update(group)
        groups.append(group)
    return groups


def cycle_sentence(names: list[str]) -> str:
    """One sentence naming the nodes of a cycle, e.g. `Nodes "A" (n1) and "B" (n2) form a cycle…`."""
    if len(names) == 1:
        return f"Node {names[0]} is linked to itself, which forms a cycle."
    listed = ", ".join(names[:-1]) + " and " + names[-1]
    return f"Nodes {listed} form a cycle; a node cannot depend on its own output."


def _name(node: Node) -> str:
    return f'"{node.title or node.type}" ({node.id})'


def _edges(graph: Graph, among: Collection[str]) -> list[tuple[str, str]]:
    # Links to or from missing nodes are the validator's to report; here they are ignored.
    return [(k.src, k.dst) for k in graph.links if k.src in among and k.dst in among]


def _reachable(start: str, feeds: Callable[[str], list[str]]) -> set[str]:
    """Nodes reachable from `start` through at least one link."""
    seen: set[str] = set()
    stack = list(feeds(start))
    while stack:
        node_id = stack.pop()
        if node_id not in seen:
            seen.add(node_id)
            stack.extend(feeds(node_id))
    return seen
