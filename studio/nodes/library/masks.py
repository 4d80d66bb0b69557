"""Mask operations and putting inpainted pixels back."""

from __future__ import annotations

from studio.graph.spec import BOOL, ENUM, IMAGE, INT, MASK, MODEL, REGION, NodeSpec, Param, Port
from studio.nodes.context import RunContext
from studio.nodes.registry import node
from studio.nodes.values import Picture

OUTPUTS = ("whole image", "changed area")


def _mask_node(type_: str, title: str, *params: Param, description: str = "") -> NodeSpec:
    return NodeSpec(
        type=type_,
        title=title,
        category="Mask",
        inputs=(Port("mask", MASK),),
        outputs=(Port("mask", MASK),),
        params=params,
        description=description,
    )


@node(_mask_node("GrowMask", "Grow mask", Param("pixels", INT, 0, minimum=-256, maximum=256)))
def grow_mask(ctx: RunContext, inputs, params):
    from studio.engine.masks import grow

    return {"mask": grow(inputs["mask"], params["pixels"])}


@node(
    _mask_node(
        "FeatherMask",
        "Feather mask",
        Param("pixels", INT, 8, minimum=0, maximum=256),
        description="Softens the edge; pixels farther than this from the mask stay untouched.",
    )
)
def feather_mask(ctx: RunContext, inputs, params):
    from studio.engine.masks import feather

    return {"mask": feather(inputs["mask"], params["pixels"])}


@node(_mask_node("InvertMask", "Invert mask"))
def invert_mask(ctx: RunContext, inputs, params):
    from studio.engine.masks import invert

    return {"mask": invert(inputs["mask"])}


@node(
    NodeSpec(
        type="MaskFromAlpha",
        title="Mask from alpha",
        category="Mask",
        inputs=(Port("image", IMAGE),),
        outputs=(Port("mask", MASK),),
        description="The transparent parts of an image become the area to repaint.",
    )
)
def mask_from_alpha(ctx: RunContext, inputs, params):
    from studio.engine.masks import from_alpha

    return {"mask": from_alpha(inputs["image"][0].image)}


@node(
    NodeSpec(
        type="CropToMask",
        title="Crop to mask",
        category="Mask",
        inputs=(Port("image", IMAGE), Port("mask", MASK), Port("model", MODEL, optional=True)),
        outputs=(Port("image", IMAGE), Port("mask", MASK), Port("region", REGION)),
        params=(
            Param("enabled", BOOL, False, label="Masked area only"),
            Param("padding", INT, 32, minimum=0, maximum=1024),
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
        description="For a small mask on a large photo: generate a crop around the mask at the "
        "model's resolution, then paste it back.",
    )
)
def crop_to_mask(ctx: RunContext, inputs, params):
    from studio.engine.masks import crop_for_work, masked_region

    picture, mask = inputs["image"][0], inputs["mask"]
    model = inputs.get("model")
    target = model.native_size if model is not None else params["resolution"]
    if params["enabled"]:
        region = masked_region(mask, picture.image.size, padding=params["padding"], target=target)
    else:
        # The whole picture, at the model's size: a large photo costs what a small one does.
        from studio.engine.region import region_for

        region = region_for((0, 0, *picture.image.size), target)
    image, work_mask = crop_for_work(picture.image, mask, region)
    return {
        "image": (Picture(image, picture.params, picture.origin),),
        "mask": work_mask,
        "region": region,
    }


@node(
    NodeSpec(
        type="InpaintComposite",
        title="Inpaint composite",
        category="Mask",
        inputs=(
            Port("original", IMAGE),
            Port("generated", IMAGE),
            Port("mask", MASK),
            Port("region", REGION, optional=True),
        ),
        outputs=(Port("image", IMAGE),),
        params=(
            Param(
                "color_match",
                BOOL,
                True,
                label="Colour match",
                hints={
                    "tooltip": "Match the new pixels' colours to the picture around the mask, "
                    "so the feathered edge shows no light or dark ring"
                },
            ),
            Param(
                "output",
                ENUM,
                "whole image",
                choices=OUTPUTS,
                hints={
                    "advanced": True,
                    "tooltip": "'changed area': only the generated part, placed on the canvas "
                    "where it belongs (fast on large photos)",
                },
            ),
        ),
        description="Pastes the generated pixels into the original through the mask; "
        "everything outside the mask stays exactly as it was.",
    )
)
def inpaint_composite(ctx: RunContext, inputs, params):
    from studio.engine.masks import MaskedRegion, composite, match_colors, paste_back

    source = inputs["original"][0]
    original = source.image if source.image.mode == "RGB" else source.image.convert("RGB")
    mask, region = inputs["mask"], inputs.get("region")
    changed_only = params["output"] == "changed area" and region is not None
    place = region
    if changed_only:
        # Outside the region's box every pixel is the original's: work on the box alone, so a
        # small mask on a large photo never copies the whole photo.
        original, mask = original.crop(region.box), mask.crop(region.box)
        place = MaskedRegion((0, 0, *original.size), region.work_size)
    out = []
    for picture in inputs["generated"]:
        if region is not None:
            image = paste_back(
                original, picture.image, mask, place, feather=0, color_match=params["color_match"]
            )
        else:
            generated = picture.image.convert("RGB")
            if generated.size != original.size:
                generated = generated.resize(original.size)
            if params["color_match"]:
                generated = match_colors(generated, original, mask)
            image = composite(original, generated, mask)
        left, top = source.origin
        if changed_only:
            left, top = left + region.box[0], top + region.box[1]
        out.append(
            picture.with_image(
                image,
                mode="inpaint",
                width=image.width,
                height=image.height,
                color_match=params["color_match"],
                canvas_region=(left, top, image.width, image.height),
            )
        )
    return {"image": tuple(out)}
