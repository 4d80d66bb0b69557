"""Loading checkpoints and upscale models."""

from __future__ import annotations

from pathlib import Path

from studio.errors import ModelError
from studio.graph.spec import MODEL, PATH, UPSCALE_MODEL, NodeSpec, Param, Port
from studio.nodes.context import RunContext
from studio.nodes.registry import node
from studio.paths import DEMO_UPSCALER


def resolve_model_path(value: str, ctx: RunContext, what: str) -> Path:
    """A path as typed, or a file name looked up in the configured model folders."""
    if not value:
        raise ModelError(f"No {what} chosen: pick one in the Model field.")
    path = Path(value).expanduser()
    if path.exists():
        return path
    if not path.is_absolute():
        for folder in ctx.model_folders:
            for candidate in (Path(folder) / value, *Path(folder).rglob(path.name)):
                if candidate.exists():
                    return candidate
    raise ModelError(f"Model file not found: {value}.")


@node(
    NodeSpec(
        type="LoadCheckpoint",
        title="Load checkpoint",
        category="Models",
        outputs=(Port("model", MODEL),),
        params=(
            Param("path", PATH, "", label="Model", hints={"file_filter": "checkpoint"}),
            Param("config", PATH, "", label="Config folder", hints={"advanced": True}),
        ),
        description="A Stable Diffusion checkpoint (.safetensors) or diffusers folder.",
    )
)
def load_checkpoint(ctx: RunContext, inputs, params):
    path = resolve_model_path(params["path"], ctx, "model")
    config = Path(params["config"]).expanduser() if params["config"] else None
    return {"model": ctx.models.get(path, ctx.device, config=config)}


@node(
    NodeSpec(
        type="LoadUpscaleModel",
        title="Load upscale model",
        category="Models",
        outputs=(Port("upscale_model", UPSCALE_MODEL),),
        params=(
            Param(
                "path",
                PATH,
                "",
                label="Upscaler",
                hints={"file_filter": "upscaler", "empty": "the built-in x4 model"},
            ),
        ),
        description="ESRGAN, SwinIR, HAT and other super-resolution models "
        "(empty: the x4 model that ships with Studio).",
    )
)
def load_upscale_model(ctx: RunContext, inputs, params):
    from studio.engine.upscale import load_upscale_model as load

    if not params["path"] and DEMO_UPSCALER.is_file():
        path = DEMO_UPSCALER
    else:
        path = resolve_model_path(params["path"], ctx, "upscale model")
    return {"upscale_model": load(path, device=ctx.device.device)}
