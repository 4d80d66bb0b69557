"""Prompts, latents, the sampler and the VAE."""

from __future__ import annotations

from studio.formats.parameters import SAMPLERS, GenerationParams
from studio.graph.spec import (
    CONDITIONING,
    ENUM,
    FLOAT,
    IMAGE,
    INT,
    LATENT,
    MASK,
    MODEL,
    REGION,
    SEED,
    TEXT,
    NodeSpec,
    Param,
    Port,
)
from studio.nodes.context import RunContext
from studio.nodes.registry import node
from studio.nodes.values import Picture

SIZE = {"minimum": 64, "maximum": 8192, "step": 8}


@node(
    NodeSpec(
        type="Prompt",
        title="Prompt",
        category="Conditioning",
        inputs=(Port("model", MODEL),),
        outputs=(Port("conditioning", CONDITIONING),),
        params=(Param("text", TEXT, "", hints={"multiline": True}),),
    )
)
def prompt(ctx: RunContext, inputs, params):
    from studio.nodes.library.addons import encode_with_addons

    return {"conditioning": encode_with_addons(ctx, inputs["model"], params["text"])}


@node(
    NodeSpec(
        type="EmptyLatent",
        title="Empty latent",
        category="Latent",
        inputs=(Port("region", REGION, optional=True),),
        outputs=(Port("latent", LATENT),),
        params=(
            Param("width", INT, 512, **SIZE),
            Param("height", INT, 512, **SIZE),
            Param("batch_size", INT, 1, minimum=1, maximum=100, label="Batch count"),
        ),
    )
)
def empty_latent(ctx: RunContext, inputs, params):
    from studio.engine.latents import Latent

    area = inputs.get("region")
    # A generation region decides the size: its shape at the model's size.
    width, height = area.work_size if area is not None else (params["width"], params["height"])
    return {"latent": Latent(width, height, params["batch_size"])}


@node(
    NodeSpec(
        type="EncodeImage",
        title="Encode image",
        category="Latent",
        inputs=(Port("model", MODEL), Port("image", IMAGE)),
        outputs=(Port("latent", LATENT),),
    )
)
def encode_image(ctx: RunContext, inputs, params):
    from studio.engine.latents import encode_image as encode

    pictures = inputs["image"]
    return {"latent": encode(inputs["model"], pictures[0].image)}


@node(
    NodeSpec(
        type="SetLatentMask",
        title="Set latent mask",
        category="Latent",
        inputs=(Port("latent", LATENT), Port("mask", MASK)),
        outputs=(Port("latent", LATENT),),
        description="Only the white part of the mask is repainted.",
    )
)
def set_latent_mask(ctx: RunContext, inputs, params):
    from PIL import Image

    from studio.engine.masks import require_painted

    latent, mask = inputs["latent"], require_painted(inputs["mask"])
    size = (latent.width, latent.height)
    if mask.size != size:
        mask = mask.resize(size, Image.BILINEAR)
    return {"latent": latent.with_(mask=mask)}


@node(
    NodeSpec(
        type="LatentUpscale",
        title="Upscale latent",
        category="Latent",
        inputs=(Port("latent", LATENT),),
        outputs=(Port("latent", LATENT),),
        params=(
            Param("scale", FLOAT, 2.0, minimum=0.25, maximum=8, step=0.05),
            Param("width", INT, 0, minimum=0, maximum=8192, step=8, hints={"zero": "from scale"}),
            Param("height", INT, 0, minimum=0, maximum=8192, step=8, hints={"zero": "from scale"}),
            Param(
                "method", ENUM, "nearest-exact", choices=("nearest-exact", "bilinear", "bicubic")
            ),
        ),
    )
)
def latent_upscale(ctx: RunContext, inputs, params):
    from studio.engine.latents import upscale_latent

    latent = inputs["latent"]
    width = params["width"] or round(latent.width * params["scale"])
    height = params["height"] or round(latent.height * params["scale"])
    return {"latent": upscale_latent(latent, width, height, params["method"])}


@node(
    NodeSpec(
        type="Sample",
        title="Sample",
        category="Sampling",
        inputs=(
            Port("model", MODEL),
            Port("positive", CONDITIONING),
            Port("negative", CONDITIONING),
            Port("latent", LATENT),
        ),
        outputs=(Port("latent", LATENT),),
        params=(
            Param("seed", SEED, 0, hints={"randomize": True}),
            Param("steps", INT, 20, minimum=1, maximum=1000),
            Param("sampler", ENUM, "Euler a", choices=SAMPLERS),
            Param(
                "cfg_scale",
                FLOAT,
                GenerationParams.cfg_scale,
                minimum=0,
                maximum=100,
                step=0.5,
                label="CFG scale",
            ),
            Param(
                "guidance_rescale",
                FLOAT,
                0.0,
                minimum=0,
                maximum=1,
                step=0.05,
                hints={"advanced": True},
            ),
            Param(
                "pag_scale",
                FLOAT,
                0.0,
                minimum=0,
                maximum=20,
                step=0.5,
                label="PAG scale",
                hints={"advanced": True},
            ),
            Param(
                "cfg_cutoff",
                FLOAT,
                1.0,
                minimum=0.05,
                maximum=1,
                step=0.05,
                label="CFG cut-off",
                hints={"advanced": True},
            ),
            Param("denoise", FLOAT, 1.0, minimum=0.01, maximum=1, step=0.01, label="Strength"),
        ),
    )
)
def sample(ctx: RunContext, inputs, params):
    from studio.engine.memory_modes import plan_for
    from studio.engine.sampling import check_params, out_of_memory_as_error
    from studio.engine.sampling import sample as run_sampler

    latent = inputs["latent"]
    settings, _ = check_params(
        GenerationParams(
            mode="img2img" if latent.samples or latent.mask is not None else "txt2img",
            steps=params["steps"],
            sampler=params["sampler"],
            cfg_scale=params["cfg_scale"],
            guidance_rescale=params["guidance_rescale"],
            pag_scale=params["pag_scale"],
            cfg_cutoff=params["cfg_cutoff"],
            seed=params["seed"],
            strength=params["denoise"],
            width=max(64, latent.width),
            height=max(64, latent.height),
        )
    )
    model = inputs["model"]
    from studio.engine.addons import applied  # LoRAs and VAE on for this step only
    from studio.nodes.library.addons import addon_extras, for_sampling

    model, positive, negative = for_sampling(ctx, model, inputs["positive"], inputs["negative"])
    settings = settings.with_(extra={**settings.extra, **addon_extras(model, positive)})
    plan = plan_for(
        model, settings.width, settings.height, ctx.memory_mode, cfg=settings.cfg_scale > 1
    )
    if plan.message:
        ctx.notice(plan.message)
    if plan.mode != "none":
        # The job says how it was made, as the Decode node does for a tiled VAE.
        settings = settings.with_(extra={**settings.extra, "memory": plan.mode})
    with out_of_memory_as_error(model, latent.width, latent.height), applied(model):
        result = run_sampler(
            model,
            positive,
            negative,
            latent,
            settings,
            progress=ctx.progress,
            cancel=ctx.cancel,
            memory=plan.mode,
        )
    return {"latent": result}


@node(
    NodeSpec(
        type="Decode",
        title="Decode",
        category="Latent",
        inputs=(Port("model", MODEL), Port("latent", LATENT)),
        outputs=(Port("image", IMAGE),),
        params=(
            Param(
                "tiling",
                ENUM,
                "auto",
                choices=("auto", "on", "off"),
                label="Tiled VAE",
                hints={
                    "advanced": True,
                    "tooltip": "auto: in tiles when the picture is too big to decode whole "
                    "in the free memory",
                },
            ),
        ),
    )
)
def decode(ctx: RunContext, inputs, params):
    from studio.engine.latents import decode as run_decode
    from studio.engine.memory import should_tile_vae, vae_tiling

    latent, model = inputs["latent"], inputs["model"]
    tiled = should_tile_vae(
        latent.width, latent.height, model.choice.dtype, model.choice.device, params["tiling"]
    )
    with vae_tiling(model.base.vae, tiled):
        images = run_decode(model, latent)
    made = latent.params or (None,) * len(images)
    if tiled:
        # The job says how it was made: tiles blend their seams, a whole decode does not.
        made = tuple(p.with_(extra={**p.extra, "vae": "tiled"}) if p else p for p in made)
    return {"image": tuple(Picture(image, p) for image, p in zip(images, made, strict=True))}
