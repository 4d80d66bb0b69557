"""The generation region and outpainting: working on part of a larger picture, or beyond it."""

from __future__ import annotations

from studio.errors import ImageError
from studio.graph.spec import BOOL, IMAGE, INT, MASK, MODEL, REGION, NodeSpec, Param, Port
from studio.nodes.context import RunContext
from studio.nodes.registry import node
from studio.nodes.values import Picture

_COORD = {"minimum": 0, "maximum": 65536}


@node(
    NodeSpec(
        type="Region",
        title="Generation region",
        category="Canvas",
        inputs=(
            Port("image", IMAGE, optional=True),
            Port("mask", MASK, optional=True),
            Port("model", MODEL, optional=True),
        ),
        outputs=(Port("image", IMAGE), Port("mask", MASK), Port("region", REGION)),
        params=(
            Param("x", INT, 0, **_COORD),
            Param("y", INT, 0, **_COORD),
            Param("width", INT, 0, **_COORD, hints={"zero": "the whole picture"}),
            Param("height", INT, 0, **_COORD, hints={"zero": "the whole picture"}),
            Param("scale", BOOL, True, label="Scale to model size"),
            Param(
                "resolution",
                INT,
                512,
                minimum=64,
                maximum=4096,
                step=8,
                hints={"advanced": True, "note": "used when no model is connected"},
            ),
        ),
        description="The part of the canvas a job works on: cut out, scaled to the model's "
        "size (aspect kept), and scaled back into place afterwards.",
    )
)
def region(ctx: RunContext, inputs, params):
    from studio.engine.region import cut, region_box, region_for

    picture, mask = inputs.get("image"), inputs.get("mask")
    source = picture[0] if picture else None
    size = source.image.size if source is not None else None
    if size is None and mask is not None:
        size = mask.size
    if source is not None and mask is not None and mask.size != size:
        raise ImageError(
            f"The mask is {mask.width}x{mask.height} but the picture is {size[0]}x{size[1]}; "
            "they must be the same size."
        )
    box = region_box(params["x"], params["y"], params["width"], params["height"], size)
    if box is None:
        return {"image": picture, "mask": mask, "region": None}
    model = inputs.get("model")
    target = None
    if params["scale"]:
        target = model.native_size if model is not None else params["resolution"]
    area = region_for(box, target)
    out_image = None
    if source is not None:
        part = cut(source.image, area)
        origin = (source.origin[0] + box[0], source.origin[1] + box[1])
        out_image = (Picture(part, source.params, origin),)
    out_mask = cut(mask, area, mask=True) if mask is not None else None
    return {"image": out_image, "mask": out_mask, "region": area}


@node(
    NodeSpec(
        type="ScaleToRegion",
        title="Place in region",
        category="Canvas",
        inputs=(Port("image", IMAGE), Port("region", REGION, optional=True)),
        outputs=(Port("image", IMAGE),),
        description="Scales generated images back to the size of the generation region, and "
        "records where on the canvas they go.",
    )
)
def scale_to_region(ctx: RunContext, inputs, params):
    from studio.engine.region import scale_back

    area = inputs.get("region")
    if area is None:
        return {"image": inputs["image"]}
    left, top = area.box[0], area.box[1]
    width, height = area.box_size
    out = []
    for picture in inputs["image"]:
        image = scale_back(picture.image, area)
        out.append(
            picture.with_image(
                image, width=width, height=height, canvas_region=(left, top, width, height)
            )
        )
    return {"image": tuple(out)}


@node(
    NodeSpec(
        type="ExpandImage",
        title="Outpaint: expand",
        category="Canvas",
        inputs=(Port("image", IMAGE),),
        outputs=(Port("image", IMAGE), Port("mask", MASK)),
        params=(
            Param("left", INT, 0, minimum=0, maximum=8192, step=8),
            Param("top", INT, 0, minimum=0, maximum=8192, step=8),
            Param("right", INT, 0, minimum=0, maximum=8192, step=8),
            Param("bottom", INT, 0, minimum=0, maximum=8192, step=8),
        ),
        description="Grows the picture on any side; the new area is filled from the edge and "
        "becomes the mask to inpaint.",
    )
)
def expand_image(ctx: RunContext, inputs, params):
    from studio.engine.region import expand

    picture = inputs["image"][0]
    image, mask = expand(
        picture.image, params["left"], params["top"], params["right"], params["bottom"]
    )
    return {"image": (Picture(image, picture.params),), "mask": mask}
