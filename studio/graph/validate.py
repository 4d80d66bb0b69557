"""What is wrong with a workflow, in sentences a user can act on, before anything runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from studio.errors import WorkflowError
from studio.graph.document import Graph, Link, Node
from studio.graph.order import cycle_sentence, find_cycles
from studio.graph.spec import NodeSpec


@dataclass(frozen=True)
class GraphProblem:
    """One thing wrong with a workflow; `message` is a sentence naming the node by title and id."""

    node_id: str | None
    port_or_param: str | None
    message: str


class GraphInvalid(WorkflowError):
    """A workflow that cannot run; str() is the first problem, `problems` holds all of them."""

    def __init__(self, problems: list[GraphProblem]) -> None:
        super().__init__(problems[0].message)
        self.problems = list(problems)


def effective_params(node: Node, spec: NodeSpec) -> dict[str, Any]:
    """The node's parameters: the spec's defaults overlaid with what the node sets."""
    return {**spec.defaults(), **node.params}


def node_name(node: Node, spec: NodeSpec | None = None) -> str:
    """How messages name a node: `"Sample" (n4)`."""
    title = node.title or (spec.title if spec is not None else "") or node.type
    return f'"{title}" ({node.id})'


def check(graph: Graph, specs: Mapping[str, NodeSpec]) -> None:
    """Raise GraphInvalid (a WorkflowError) if the workflow has any problem."""
    problems = validate(graph, specs)
    if problems:
        raise GraphInvalid(problems)


def validate(graph: Graph, specs: Mapping[str, NodeSpec]) -> list[GraphProblem]:
    """Every problem with the workflow, in a stable order; empty if it can run."""
    problems: list[GraphProblem] = []
    for node in graph.nodes.values():
        problems += _node_problems(node, specs.get(node.type))
    for link in graph.links:
        problems += _link_problems(graph, specs, link)
    for node in graph.nodes.values():
        spec = specs.get(node.type)
        if spec is not None:
            problems += _input_problems(graph, node, spec)
    for group in find_cycles(graph):
        names = [node_name(graph.nodes[n], specs.get(graph.nodes[n].type)) for n in group]
        problems.append(GraphProblem(group[0], None, cycle_sentence(names)))
    problems += _exposed_problems(graph, specs)
    problems += _output_problems(graph, specs)
    return problems


def _node_problems(node: Node, spec: NodeSpec | None) -> list[GraphProblem]:
    name = node_name(node, spec)
    if spec is None:
        return [GraphProblem(node.id, None, f'Node {name} has an unknown type "{node.type}".')]
    problems = []
    for key, value in node.params.items():
        param = spec.param(key)
        if param is None:
            message = f'Node {name} has no parameter "{key}".'
        else:
            reason = param.check(value)
            if reason is None:
                continue
            message = f'Node {name}: parameter "{key}" {reason}.'
        problems.append(GraphProblem(node.id, key, message))
    return problems


def _link_problems(graph: Graph, specs: Mapping[str, NodeSpec], link: Link) -> list[GraphProblem]:
    src, dst = graph.nodes.get(link.src), graph.nodes.get(link.dst)
    if dst is None:
        if src is None:
            message = (
                f'A link joins nodes "{link.src}" and "{link.dst}", which are not in the workflow.'
            )
            return [GraphProblem(None, None, message)]
        message = (
            f'Node {node_name(src, specs.get(src.type))}: output "{link.src_port}" '
            f'is linked to node "{link.dst}", which is not in the workflow.'
        )
        return [GraphProblem(src.id, link.src_port, message)]
    dst_spec = specs.get(dst.type)
    dst_name = node_name(dst, dst_spec)
    if src is None:
        message = (
            f'Node {dst_name}: input "{link.dst_port}" is linked from node "{link.src}", '
            "which is not in the workflow."
        )
        return [GraphProblem(dst.id, link.dst_port, message)]

    src_spec = specs.get(src.type)
    src_name = node_name(src, src_spec)
    problems = []
    # An unknown node type is reported once, by _node_problems; its ports cannot be checked.
    out_port = src_spec.output(link.src_port) if src_spec else None
    in_port = dst_spec.input(link.dst_port) if dst_spec else None
    if src_spec is not None and out_port is None:
        message = (
            f'Node {src_name} has no output "{link.src_port}" (it is linked to node {dst_name}).'
        )
        problems.append(GraphProblem(src.id, link.src_port, message))
    if dst_spec is not None and in_port is None:
        message = (
            f'Node {dst_name} has no input "{link.dst_port}" (it is linked from node {src_name}).'
        )
        problems.append(GraphProblem(dst.id, link.dst_port, message))
    if out_port is not None and in_port is not None and out_port.type != in_port.type:
        message = (
            f'Node {dst_name}: input "{in_port.name}" takes {in_port.type} but is linked to '
            f'output "{out_port.name}" of node {src_name}, which gives {out_port.type}.'
        )
        problems.append(GraphProblem(dst.id, in_port.name, message))
    return problems


def _input_problems(graph: Graph, node: Node, spec: NodeSpec) -> list[GraphProblem]:
    fed = Counter(k.dst_port for k in graph.links if k.dst == node.id)
    name = node_name(node, spec)
    problems = []
    for port in spec.inputs:
        if fed[port.name] == 0 and not port.optional:
            message = f'Node {name}: input "{port.name}" is not connected.'
        elif fed[port.name] > 1:
            message = (
                f'Node {name}: input "{port.name}" is linked from {fed[port.name]} outputs; '
                "it takes one."
            )
        else:
            continue
        problems.append(GraphProblem(node.id, port.name, message))
    return problems


def _exposed_problems(graph: Graph, specs: Mapping[str, NodeSpec]) -> list[GraphProblem]:
    problems = []
    for entry in graph.exposed:
        node = graph.nodes.get(entry.node)
        if node is None:
            message = (
                f'The prompt panel shows parameter "{entry.param}" of node "{entry.node}", '
                "which is not in the workflow."
            )
            problems.append(GraphProblem(entry.node, entry.param, message))
            continue
        spec = specs.get(node.type)
        if spec is not None and spec.param(entry.param) is None:
            message = (
                f"Node {node_name(node, spec)}: the prompt panel shows parameter "
                f'"{entry.param}", which this node does not have.'
            )
            problems.append(GraphProblem(node.id, entry.param, message))
    return problems


def _output_problems(graph: Graph, specs: Mapping[str, NodeSpec]) -> list[GraphProblem]:
    for node in graph.nodes.values():
        spec = specs.get(node.type)
        if spec is not None and spec.output_node:
            return []
    titles = [spec.title for spec in specs.values() if spec.output_node]
    if not titles:
        return [GraphProblem(None, None, "The workflow has no output node.")]
    listed = titles[0] if len(titles) == 1 else ", ".join(titles[:-1]) + " or " + titles[-1]
    return [GraphProblem(None, None, f"The workflow has no output node ({listed}).")]
