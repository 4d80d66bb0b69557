"""Images in and out: files, the canvas, resizing, upscaling, saving and previewing."""

from __future__ import annotations

from pathlib import Path

from studio.errors import ImageError
from studio.graph.spec import (
    ENUM,
    FLOAT,
    IMAGE,
    INT,
    MASK,
    PATH,
    STRING,
    UPSCALE_MODEL,
    NodeSpec,
    Param,
    Port,
)
from studio.nodes.context import RunContext
from studio.nodes.registry import node
from studio.nodes.values import Picture

RESAMPLING = ("lanczos", "bicubic", "bilinear", "nearest")


@node(
    NodeSpec(
        type="LoadImage",
        title="Load image",
        category="Image",
        outputs=(Port("image", IMAGE), Port("mask", MASK)),
        params=(Param("path", PATH, "", label="Image", hints={"file_filter": "image"}),),
        description="An image file; its transparent parts become the mask.",
    )
)
def load_image(ctx: RunContext, inputs, params):
    from PIL import Image

    from studio.engine.masks import from_alpha
    from studio.formats.images import load_image as load

    path = Path(params["path"]).expanduser()
    image = load(path)
    try:
        with Image.open(path) as raw:
            raw.load()
            mask = from_alpha(raw)
    except (ImageError, ValueError, OSError):
        mask = Image.new("L", image.size, 0)
    return {"image": (Picture(image),), "mask": mask}


@node(
    NodeSpec(
        type="CanvasImage",
        title="Canvas image",
        category="Canvas",
        outputs=(Port("image", IMAGE),),
        params=(Param("slot", STRING, "image", hints={"advanced": True}),),
        description="The image on the canvas.",
    )
)
def canvas_image(ctx: RunContext, inputs, params):
    image = ctx.inputs.get(params["slot"])
    if image is None:
        raise ImageError("This workflow needs an image from the canvas: open or paste one first.")
    return {"image": (Picture(image if image.mode == "RGB" else image.convert("RGB")),)}


@node(
    NodeSpec(
        type="CanvasMask",
        title="Canvas mask",
        category="Canvas",
        outputs=(Port("mask", MASK),),
        params=(Param("slot", STRING, "mask", hints={"advanced": True}),),
        description="The mask painted on the canvas (white = repaint).",
    )
)
def canvas_mask(ctx: RunContext, inputs, params):
    mask = ctx.inputs.get(params["slot"])
    if mask is None:
        raise ImageError("This workflow needs a mask: paint the area to repaint first.")
    return {"mask": mask if mask.mode == "L" else mask.convert("L")}


@node(
    NodeSpec(
        type="Resize",
        title="Resize",
        category="Image",
        inputs=(Port("image", IMAGE),),
        outputs=(Port("image", IMAGE),),
        params=(
            Param("scale", FLOAT, 2.0, minimum=0.05, maximum=16, step=0.05),
            Param("width", INT, 0, minimum=0, maximum=16384, hints={"zero": "from scale"}),
            Param("height", INT, 0, minimum=0, maximum=16384, hints={"zero": "from scale"}),
            Param("method", ENUM, "lanczos", choices=RESAMPLING),
        ),
    )
)
def resize(ctx: RunContext, inputs, params):
    from PIL import Image

    from studio.engine.budget import check_upscale

    method = {
        "lanczos": Image.LANCZOS,
        "bicubic": Image.BICUBIC,
        "bilinear": Image.BILINEAR,
        "nearest": Image.NEAREST,
    }[params["method"]]
    out = []
    for picture in inputs["image"]:
        w, h = picture.image.size
        width = params["width"] or max(1, round(w * params["scale"]))
        height = params["height"] or max(1, round(h * params["scale"]))
        check_upscale(w, h, max(width / w, height / h), model=False)
        image = picture.image.resize((width, height), method)
        out.append(picture.with_image(image, upscaler=params["method"], width=width, height=height))
    return {"image": tuple(out)}


@node(
    NodeSpec(
        type="UpscaleWithModel",
        title="Upscale with model",
        category="Image",
        inputs=(Port("upscale_model", UPSCALE_MODEL), Port("image", IMAGE)),
        outputs=(Port("image", IMAGE),),
        params=(
            Param("tile", INT, 512, minimum=64, maximum=4096, step=32),
            Param("overlap", INT, 32, minimum=0, maximum=256, step=8),
        ),
    )
)
def upscale_with_model(ctx: RunContext, inputs, params):
    from studio.engine.budget import check_upscale
    from studio.engine.upscale import upscale_tiled

    model = inputs["upscale_model"]
    for picture in inputs["image"]:  # every picture is refused or fits, before any work
        check_upscale(*picture.image.size, model.scale, model=True)
    out = []
    for picture in inputs["image"]:
        image = upscale_tiled(
            model,
            picture.image,
            tile=params["tile"],
            overlap=params["overlap"],
            progress=ctx.progress,
            cancel=ctx.cancel,
        )
        out.append(
            picture.with_image(
                image,
                upscaler=model.name,
                upscale_factor=model.scale,
                width=image.width,
                height=image.height,
            )
        )
    return {"image": tuple(out)}


@node(
    NodeSpec(
        type="SaveImage",
        title="Save image",
        category="Output",
        inputs=(Port("image", IMAGE),),
        params=(
            Param("prefix", STRING, "studio"),
            Param("folder", PATH, "", hints={"directory": True, "empty": "the output folder"}),
            Param("filename", STRING, "", hints={"advanced": True, "empty": "prefix-seed.png"}),
        ),
        output_node=True,
        description="Writes PNGs carrying the workflow and parameters; never overwrites.",
    )
)
def save_image(ctx: RunContext, inputs, params):
    from studio.engine.device import software_versions
    from studio.formats.files import check_output_path, save_image

    folder = Path(params["folder"]).expanduser() if params["folder"] else ctx.output_dir
    versions = software_versions(ctx.device)
    for picture in inputs["image"]:
        if params["filename"]:
            name = params["filename"]
        else:
            stem = params["prefix"] or "studio"
            if picture.params is not None:
                stem = f"{stem}-{picture.params.seed}"
            name = f"{stem}.png"
        # Never overwrites: a taken name gets a -0001, -0002... suffix. The extension picks the
        # format (PNG, JPEG, WebP); check_output_path refuses others.
        path = save_image(
            picture.image,
            check_output_path(folder / name),
            picture.params,
            ctx.workflow or None,
            versions,
        )
        ctx.results.append((picture.image, picture.params, path))
    return {}


@node(
    NodeSpec(
        type="PreviewImage",
        title="Preview image",
        category="Output",
        inputs=(Port("image", IMAGE),),
        output_node=True,
        description="Shows the result without saving it.",
    )
)
def preview_image(ctx: RunContext, inputs, params):
    for picture in inputs["image"]:
        ctx.results.append((picture.image, picture.params, None))
    return {}
