"""Where each node of a workflow runs when a ComfyUI server does the generating.

Nodes that hold or need the model (checkpoint, prompts, latents, sampler, VAE, upscale model)
run on the server; everything that only touches pixels and masks (canvas inputs, grow and
feather, the masked-area crop, the composite that keeps pixels outside the mask, colour match,
saving) runs here, before and after. The server's part is collapsed into one node of a local
graph, so the local executor runs the rest exactly as it would without a server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from studio.errors import WorkflowError
from studio.graph.document import Graph, Node
from studio.graph.order import topological_order
from studio.graph.spec import (
    CONDITIONING,
    IMAGE,
    LATENT,
    MASK,
    MODEL,
    REGION,
    STRING,
    UPSCALE_MODEL,
    NodeSpec,
    Param,
    Port,
)
from studio.graph.validate import node_name

PART_ID = "comfyui"
PART_TYPE = "ComfyUIServerPart"
# Stands for the server's model where a node here only wants to know its size.
MODEL_INFO_TYPE = "ComfyUIServerModel"
# Values that only exist where the model is loaded.
SERVER_TYPES = frozenset({MODEL, CONDITIONING, LATENT, UPSCALE_MODEL})
# Plain values computed here that set parameters of a server node: (node type, input) -> how.
SETTINGS_FROM_HERE: dict[tuple[str, str], str] = {("EmptyLatent", "region"): REGION}


@dataclass(frozen=True)
class Crossing:
    """A value that crosses between this computer and the server: output `src_port` of `src`,
    seen by the part node as its port `port`."""

    src: str
    src_port: str
    type: str
    port: str


@dataclass(frozen=True)
class Split:
    remote: tuple[str, ...]  # the server's nodes, in order
    inputs: tuple[Crossing, ...]  # pictures and masks uploaded to the server
    outputs: tuple[Crossing, ...]  # pictures downloaded from it
    local: Graph  # the workflow with the server's part as one node (PART_ID)
    spec: NodeSpec  # that node's spec


def exportable_types() -> frozenset[str]:
    """Studio node types the ComfyUI exporter knows (its table grows with the node library)."""
    from studio.nodes import comfyui_export

    return frozenset(comfyui_export._EXPORTERS)


def runs_on_server(spec: NodeSpec, exportable: Collection[str]) -> bool:
    """A node runs on the server if it makes a model-side value or cannot work without one;
    a node that only reads the model for its size (crop, region) works on pixels, here."""
    if spec.type not in exportable:
        return False
    needs = [p for p in spec.inputs if not p.optional]
    return any(p.type in SERVER_TYPES for p in (*needs, *spec.outputs))


def split(graph: Graph, specs: Mapping[str, NodeSpec], exportable: Collection[str]) -> Split | None:
    """The workflow cut into the server's part and ours; None when nothing needs the server."""
    targets = [i for i, n in graph.nodes.items() if specs[n.type].output_node]
    order = topological_order(graph, targets)
    on_server = {i for i in order if runs_on_server(specs[graph.nodes[i].type], exportable)}
    if not on_server:
        return None
    _between(graph, specs, order, on_server, exportable)
    remote = [i for i in order if i in on_server]
    needed = set(order)

    inputs: dict[tuple[str, str], Crossing] = {}
    outputs: dict[tuple[str, str], Crossing] = {}
    local = graph.copy()
    for node_id in graph.nodes:
        if node_id in on_server or node_id not in needed:
            local.remove(node_id)
    part_id = PART_ID
    while part_id in graph.nodes:
        part_id += "_"

    for link in graph.links:
        if link.dst not in needed or link.src not in needed:
            continue
        src_remote, dst_remote = link.src in on_server, link.dst in on_server
        if src_remote == dst_remote:
            continue
        port_type = _port_type(graph, specs, link.src, link.src_port)
        if dst_remote:
            setting = (graph.nodes[link.dst].type, link.dst_port)
            if port_type not in (IMAGE, MASK) and SETTINGS_FROM_HERE.get(setting) != port_type:
                raise WorkflowError(_cannot_cross(graph, specs, link.src, link.dst, port_type))
            key = (link.src, link.src_port)
            if key not in inputs:
                inputs[key] = Crossing(link.src, link.src_port, port_type, f"in{len(inputs)}")
            local.connect(link.src, link.src_port, part_id, inputs[key].port)
            continue
        dst = graph.nodes[link.dst]
        port = specs[dst.type].input(link.dst_port)
        if port_type == MODEL and port is not None and port.optional:
            # The region or crop asks the model its size: a stand-in, named like the checkpoint.
            info = f"{part_id}_model"
            if info not in local.nodes:
                name = _checkpoint_name(graph, link.src)
                local.add(Node(info, MODEL_INFO_TYPE, {"name": name}, title="Server model"))
            local.connect(info, "model", link.dst, link.dst_port)
            continue
        if port_type != IMAGE:
            raise WorkflowError(_cannot_cross(graph, specs, link.dst, link.src, port_type))
        key = (link.src, link.src_port)
        if key not in outputs:
            outputs[key] = Crossing(link.src, link.src_port, port_type, f"out{len(outputs)}")
        local.connect(part_id, outputs[key].port, link.dst, link.dst_port)

    spec = NodeSpec(
        type=PART_TYPE,
        title="ComfyUI server",
        inputs=tuple(Port(c.port, c.type) for c in inputs.values()),
        outputs=tuple(Port(c.port, c.type) for c in outputs.values()),
        params=(Param("workflow", STRING, ""),),
    )
    # The part's cache key: what the server is asked to do (its nodes, their settings, links).
    described = {
        "nodes": {i: [graph.nodes[i].type, graph.nodes[i].params] for i in remote},
        "links": sorted(
            [k.src, k.src_port, k.dst, k.dst_port] for k in graph.links if k.dst in on_server
        ),
    }
    local.add(
        Node(
            part_id,
            PART_TYPE,
            {"workflow": json.dumps(described, sort_keys=True, default=str)},
            title="ComfyUI server",
        )
    )
    return Split(tuple(remote), tuple(inputs.values()), tuple(outputs.values()), local, spec)


def server_graph(
    graph: Graph,
    part: Split,
    uploads: Mapping[str, str],
    values: Mapping[str, Any],
    batch_index: int,
) -> tuple[Graph, dict[str, str], dict[str, str]]:
    """The server's part as a graph of its own, ready for the ComfyUI exporter.

    Pictures and masks become Load image nodes of the uploaded files (`uploads`: part port ->
    server file name), other values from here set parameters (`values`: part port -> value),
    outputs become Save image nodes. One image of a batch: batch size 1, seed + `batch_index`,
    as Studio numbers the images of a batch. Returns the graph, ComfyUI node id -> Studio node
    id, and ComfyUI id of each Save image node -> part output port.
    """
    sub = Graph(name=graph.name)
    renamed: dict[str, str] = {}
    for node_id in part.remote:
        node = graph.nodes[node_id]
        params = dict(node.params)
        if node.type == "EmptyLatent":
            params["batch_size"] = 1
        if node.type == "Sample" and batch_index:
            params["seed"] = int(params.get("seed", 0)) + batch_index
        for port, link in graph.inputs_of(node_id).items():
            crossing = _crossing(part, link.src, link.src_port)
            if crossing is not None and crossing.type not in (IMAGE, MASK):
                params.update(_setting(node.type, port, values.get(crossing.port)))
        renamed[node_id] = f"c{len(renamed) + 1}"
        sub.add(Node(renamed[node_id], node.type, params, title=node.title))
    loaders: dict[str, str] = {}
    for crossing in part.inputs:
        if crossing.type not in (IMAGE, MASK):
            continue
        loader = f"c{len(renamed) + len(loaders) + 1}"
        loaders[crossing.port] = loader
        sub.add(Node(loader, "LoadImage", {"path": uploads[crossing.port]}))
    for link in graph.links:
        if link.dst not in renamed:
            continue
        if link.src in renamed:
            sub.connect(renamed[link.src], link.src_port, renamed[link.dst], link.dst_port)
            continue
        crossing = _crossing(part, link.src, link.src_port)
        if crossing is None or crossing.port not in loaders:
            continue  # a setting, applied above
        port = "mask" if crossing.type == MASK else "image"
        sub.connect(loaders[crossing.port], port, renamed[link.dst], link.dst_port)
    saves: dict[str, str] = {}
    for crossing in part.outputs:
        save = f"c{len(renamed) + len(loaders) + len(saves) + 1}"
        saves[save[1:]] = crossing.port
        sub.add(Node(save, "SaveImage", {"prefix": "studio"}))
        sub.connect(renamed[crossing.src], crossing.src_port, save, "image")
    comfy_ids = {value[1:]: key for key, value in renamed.items()}
    return sub, comfy_ids, saves


def _port_type(graph: Graph, specs: Mapping[str, NodeSpec], node_id: str, port: str) -> str:
    out = specs[graph.nodes[node_id].type].output(port)
    return out.type if out is not None else ""


def _cannot_cross(
    graph: Graph, specs: Mapping[str, NodeSpec], here: str, there: str, port_type: str
) -> str:
    local, remote = graph.nodes[here], graph.nodes[there]
    return (
        f"Node {node_name(local, specs[local.type])} has no ComfyUI counterpart, so it runs on this "
        f"computer, but it is linked to node {node_name(remote, specs[remote.type])} on the server "
        f"by a {port_type.lower()}, which cannot cross; run this workflow on this computer."
    )


@dataclass(frozen=True)
class ServerModel:
    """The server's checkpoint as a node here sees it: its name, and the size it was trained at
    as far as the name tells (Studio cannot read a server model's weights): "xl" means SDXL's
    1024, "768" SD 2's 768, anything else 512."""

    name: str

    @property
    def native_size(self) -> int:
        name = self.name.lower()
        return 1024 if "xl" in name else 768 if "768" in name else 512


MODEL_INFO_SPEC = NodeSpec(
    type=MODEL_INFO_TYPE,
    title="Server model",
    outputs=(Port("model", MODEL),),
    params=(Param("name", STRING, ""),),
)


def server_model(ctx: Any, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Run function of the stand-in node."""
    return {"model": ServerModel(params["name"])}


def _checkpoint_name(graph: Graph, node_id: str) -> str:
    """The file name of the checkpoint behind a model output (through LoRAs and the like)."""
    seen: set[str] = set()
    while node_id in graph.nodes and node_id not in seen:
        seen.add(node_id)
        node = graph.nodes[node_id]
        if node.type == "LoadCheckpoint":
            return re.split(r"[\\/]", str(node.params.get("path", "")))[-1]
        link = graph.inputs_of(node_id).get("model")
        if link is None:
            return ""
        node_id = link.src
    return ""


def _between(
    graph: Graph,
    specs: Mapping[str, NodeSpec],
    order: list[str],
    on_server: set[str],
    exportable: Collection[str],
) -> None:
    """Pixel work between two server steps (the resize of a hires fix) runs on the server too,
    if ComfyUI has it: one trip there and back, not a loop."""
    feeds: dict[str, set[str]] = {i: set() for i in order}
    for link in graph.links:
        if link.src not in feeds or link.dst not in feeds:
            continue
        port = specs[graph.nodes[link.dst].type].input(link.dst_port)
        asks_size = port is not None and port.optional and port.type == MODEL
        if asks_size and link.dst not in on_server:
            continue  # the crop or region asking the model its size gets a stand-in here
        feeds[link.src].add(link.dst)
    after_server: set[str] = set()  # nodes fed, directly or not, by a server node
    for node_id in order:
        if node_id in on_server or node_id in after_server:
            after_server.update(feeds[node_id])
    before_server: set[str] = set()  # nodes that feed a server node, directly or not
    for node_id in reversed(order):
        if any(d in on_server or d in before_server for d in feeds[node_id]):
            before_server.add(node_id)
    for node_id in order:
        if node_id in on_server or node_id not in after_server or node_id not in before_server:
            continue
        node = graph.nodes[node_id]
        if node.type not in exportable:
            raise WorkflowError(
                f"Node {node_name(node, specs[node.type])} has no ComfyUI counterpart and sits "
                "between two steps on the server; run this workflow on this computer."
            )
        on_server.add(node_id)


def _crossing(part: Split, src: str, src_port: str) -> Crossing | None:
    return next((c for c in part.inputs if (c.src, c.src_port) == (src, src_port)), None)


def _setting(node_type: str, port: str, value: Any) -> dict[str, Any]:
    """Parameters of a server node set by a value computed here."""
    if (node_type, port) == ("EmptyLatent", "region") and value is not None:
        width, height = value.work_size  # the generation region's shape at the model's size
        return {"width": int(width), "height": int(height)}
    return {}
