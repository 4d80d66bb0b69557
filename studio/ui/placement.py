"""Where a job's previews and results go on the canvas, and what its layers are called.

The graph decides the work (region, masked-area crop); the window only needs to know where
that work sits on the picture, so the live preview covers exactly the part that will change
and the accepted result lands where it belongs. The same engine functions the nodes use
find the area (numpy and PIL, no torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

    from studio.graph.document import Graph
    from studio.ui.canvas import Canvas
    from studio.ui.main_window import MainWindow

Rect = tuple[int, int, int, int]  # x, y, width, height in canvas pixels
_NAME_LENGTH = 40


def _region_box(graph: Graph, size: tuple[int, int]) -> tuple[int, int, int, int]:
    from studio.engine.region import region_box

    for node in graph.find("Region"):
        p = node.params
        box = region_box(p.get("x", 0), p.get("y", 0), p.get("width", 0), p.get("height", 0), size)
        if box is not None:
            return box
    return (0, 0, size[0], size[1])


def _param(graph: Graph, node_type: str, name: str, default: Any) -> Any:
    nodes = graph.find(node_type)
    return nodes[0].params.get(name, default) if nodes else default


def preview_area(
    graph: Graph, canvas: Canvas, mask: Image.Image | None, window: MainWindow
) -> tuple[Rect | None, np.ndarray | None]:
    """The canvas rect previews cover, and for inpainting the mask that clips them there."""
    size = canvas.image_size()
    if size is None or not graph.find("Region"):
        return None, None
    box = _region_box(graph, size)
    left, top = box[0], box[1]
    if mask is None or not graph.find("CropToMask"):
        return (left, top, box[2] - box[0], box[3] - box[1]), None
    from studio.engine import masks
    from studio.engine.region import region_for

    part = mask.crop(box)
    grown = masks.grow(part, int(_param(graph, "GrowMask", "pixels", 0)))
    blend = masks.feather(grown, int(_param(graph, "FeatherMask", "pixels", 0)))
    if masks.is_empty(blend):
        return None, None
    target = window.generation.native or int(_param(graph, "CropToMask", "resolution", 512))
    if _param(graph, "CropToMask", "enabled", False):
        padding = int(_param(graph, "CropToMask", "padding", 32))
        work = masks.masked_region(blend, part.size, padding=padding, target=target)
    else:
        work = region_for((0, 0, *part.size), target)
    x0, y0, x1, y1 = work.box
    clip = np.asarray(blend.crop(work.box), dtype=np.uint8)
    return (left + x0, top + y0, x1 - x0, y1 - y0), clip


def result_rect(results: list, fallback: Rect | None) -> Rect | None:
    """Where the results go: the place their parameters record, else `fallback`."""
    for _image, params, _path in results:
        region = getattr(params, "canvas_region", None)
        if region is not None:
            return tuple(int(v) for v in region)  # type: ignore[return-value]
    return fallback


def placed(results: list) -> bool:
    """Whether the results say where on the canvas they go (a region's output)."""
    return result_rect(results, None) is not None


def layer_names(graph: Graph) -> str:
    """The prompt the layers of this job's results are named after."""
    for node in graph.find("Prompt"):
        if node.id == "positive" or len(graph.find("Prompt")) == 1:
            return str(node.params.get("text", "")).strip()
    return ""


def layer_name(params: Any, prompt: str) -> str:
    """A result's layer name: its prompt (shortened) and its seed."""
    text = " ".join(str(getattr(params, "prompt", "") or prompt).split())
    if len(text) > _NAME_LENGTH:
        text = text[: _NAME_LENGTH - 1].rstrip() + "…"
    seed = getattr(params, "seed", None)
    if params is None or seed is None:
        return text
    return f"{text} (seed {seed})" if text else f"Seed {seed}"
