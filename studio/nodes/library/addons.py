"""LoRA, CLIP skip and VAE nodes: add-ons to a loaded model, applied for one job's steps only."""

from __future__ import annotations

from pathlib import Path

from studio.errors import ModelError
from studio.graph.spec import FLOAT, INT, MODEL, PATH, NodeSpec, Param, Port
from studio.nodes.context import RunContext
from studio.nodes.registry import node

LORA_SUFFIXES = (".safetensors", ".pt", ".ckpt", ".bin")
VAE_SUFFIXES = (".safetensors", ".pt", ".ckpt", ".bin")
STRENGTH = {"minimum": -10.0, "maximum": 10.0, "step": 0.05}


def resolve_file(value: str, ctx: RunContext, kind: str, what: str, suffixes) -> Path:
    """A path as typed, or a name looked up in the model folders' `kind` subfolders."""
    from studio.engine.folders import find_file

    if not value:
        raise ModelError(f"No {what} chosen.")
    path = Path(value).expanduser()
    if path.exists():
        ctx.depends_on(path)
        return path
    if not path.is_absolute():
        found = find_file(value, kind, ctx.model_folders, suffixes)
        if found is not None:
            ctx.depends_on(found)
            return found
    raise ModelError(f"{what.capitalize()} not found: {value}.")


@node(
    NodeSpec(
        type="LoRA",
        title="LoRA",
        category="Models",
        inputs=(Port("model", MODEL),),
        outputs=(Port("model", MODEL),),
        params=(
            Param("path", PATH, "", label="LoRA", hints={"file_filter": "lora"}),
            Param("strength", FLOAT, 1.0, label="Strength", **STRENGTH),
            Param("text_strength", FLOAT, 1.0, label="Text encoder strength", **STRENGTH),
        ),
        description="A LoRA (kohya/A1111 or diffusers layout) on the UNet and text encoders, "
        "for this job only; chain several for several LoRAs.",
    )
)
def lora(ctx: RunContext, inputs, params):
    from studio.engine.addons import LoraUse, with_addons

    path = resolve_file(params["path"], ctx, "lora", "LoRA", LORA_SUFFIXES)
    use = LoraUse(path, float(params["strength"]), float(params["text_strength"]))
    model = with_addons(inputs["model"], loras=(use,))
    if use.unet or use.text:
        from studio.engine.loras import adapter_name

        # Read now, so a bad file fails this node (named) rather than the sampler.
        adapter_name(model.model, path)
    return {"model": model}


@node(
    NodeSpec(
        type="ClipSkip",
        title="CLIP skip",
        category="Models",
        inputs=(Port("model", MODEL),),
        outputs=(Port("model", MODEL),),
        params=(Param("clip_skip", INT, 1, minimum=1, maximum=12, label="Clip skip"),),
        description="Read the prompt from an earlier layer of the text encoder "
        "(A1111's numbering: 1 = the last layer, 2 = the one before, as many anime models want).",
    )
)
def clip_skip(ctx: RunContext, inputs, params):
    from studio.engine.addons import with_addons

    return {"model": with_addons(inputs["model"], clip_skip=int(params["clip_skip"]))}


@node(
    NodeSpec(
        type="LoadVAE",
        title="VAE",
        category="Models",
        inputs=(Port("model", MODEL),),
        outputs=(Port("model", MODEL),),
        params=(Param("path", PATH, "", label="VAE", hints={"file_filter": "vae"}),),
        description="A separate VAE (single file or diffusers folder) in place of the "
        "checkpoint's own, for this job only.",
    )
)
def load_vae(ctx: RunContext, inputs, params):
    from studio.engine.addons import base_model, with_addons
    from studio.engine.vae import load_vae as load

    path = resolve_file(params["path"], ctx, "vae", "VAE", VAE_SUFFIXES)
    loaded = base_model(inputs["model"])
    own = loaded.base.vae
    load(path, own.config, loaded.choice.device, own.dtype)  # fail here, named, if it does not fit
    return {"model": with_addons(inputs["model"], vae=path)}


def prompt_embeddings(text: str, ctx: RunContext) -> dict:
    """The embeddings a prompt names, from the embeddings folders ({} when none is named)."""
    from studio.engine.folders import folders_for, list_files

    if not ctx.model_folders:
        return {}
    # A word becomes an embedding when a file of its name appears: the folders' listings
    # (a folder's time changes when a file is added to it) are part of what this prompt's
    # encoding depends on, and so is each file used.
    files = list_files("embedding", ctx.model_folders, (".safetensors", ".pt", ".bin"))
    for folder in {*ctx.model_folders, *folders_for("embedding", ctx.model_folders)}:
        ctx.depends_on(Path(folder).expanduser())
    for parent in {path.parent for path in files}:
        ctx.depends_on(parent)
    by_name = {p.stem: p for p in files}
    if not by_name:
        return {}
    from studio.engine.embeddings import load_embedding
    from studio.engine.prompts import mentioned_embeddings

    used = mentioned_embeddings(text, by_name)
    for name in used:
        ctx.depends_on(by_name[name])
    return {name: load_embedding(by_name[name]) for name in used}


def prompt_loras(text: str, ctx: RunContext) -> tuple:
    """The LoRAs a prompt's `<lora:name:strength>` tags name, found in the LoRA folders."""
    from studio.engine.addons import LoraUse
    from studio.formats.prompt_syntax import extract_loras

    _, tags = extract_loras(text)
    uses = []
    for tag in tags:
        try:
            path = resolve_file(tag.name, ctx, "lora", "LoRA", LORA_SUFFIXES)
        except ModelError:
            raise ModelError(
                f'The prompt asks for the LoRA "{tag.name}", which is not in the model folders '
                "(File > Settings, or --models-dir)."
            ) from None
        uses.append(LoraUse(path, tag.unet_strength, tag.text))
    return tuple(uses)


def encode_with_addons(ctx: RunContext, model, text: str):
    """Encode a prompt with its embeddings, and with the LoRAs its tags ask for."""
    from dataclasses import replace

    from studio.engine.addons import with_addons
    from studio.engine.latents import encode_prompt

    loras = prompt_loras(text, ctx)
    if loras:
        model = with_addons(model, loras=loras)
    conditioning = encode_prompt(model, text, prompt_embeddings(text, ctx))
    return replace(conditioning, loras=loras) if loras else conditioning


def for_sampling(ctx: RunContext, model, positive, negative):
    """The model with the positive prompt's LoRA tags, and prompts of equal length for CFG.

    As in A1111, a `<lora:...>` tag in the prompt applies to the whole model, so the negative
    prompt is encoded again through the LoRA's text encoder weights.
    """
    from studio.engine.addons import with_addons
    from studio.engine.latents import same_length

    if positive.loras:
        model = with_addons(model, loras=positive.loras)
        if negative.loras != positive.loras:
            negative = encode_with_addons(ctx, model, negative.text)
    positive, negative = same_length(model, positive, negative)
    return model, positive, negative


def addon_extras(model, positive) -> dict[str, str]:
    """What the add-ons were, for the image's A1111 parameters (`Clip skip`, `VAE`,
    `Lora hashes` as A1111 writes them; `LoRAs` for those not named in the prompt)."""
    from studio.engine.addons import addons_of
    from studio.engine.model_files import lora_hash

    addons = addons_of(model)
    extras: dict[str, str] = {}
    if addons.clip_skip > 1:
        extras["Clip skip"] = str(addons.clip_skip)
    if addons.vae is not None:
        extras["VAE"] = addons.vae.name
    loras = addons.active_loras
    if loras:
        hashes = []
        for use in loras:
            try:
                hashes.append(f"{use.path.stem}: {lora_hash(use.path)}")
            except OSError:
                continue
        extras["Lora hashes"] = ", ".join(hashes)
    from_nodes = [u for u in loras if u not in positive.loras]
    if from_nodes:
        extras["LoRAs"] = ", ".join(f"{u.path.stem}:{u.unet:g}:{u.text:g}" for u in from_nodes)
    return extras
