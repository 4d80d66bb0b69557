"""Encoded prompts and latent images: what flows between text encoding, sampling and decoding."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from PIL import Image

from studio.engine.checkpoint import LoadedModel
from studio.engine.device import trim_heap
from studio.formats.parameters import GenerationParams


@dataclass(frozen=True, eq=False)
class Conditioning:
    """A prompt encoded by the model's text encoder(s)."""

    text: str
    embeds: torch.Tensor
    pooled: torch.Tensor | None = None  # SDXL's pooled text embedding
    # LoRAs the prompt asked for with <lora:name:strength> (studio.engine.addons.LoraUse):
    # the sampler applies them to the UNet as the encoder applied them to the text.
    loras: tuple = ()

    @property
    def nbytes(self) -> int:
        tensors = [self.embeds] + ([self.pooled] if self.pooled is not None else [])
        return sum(t.numel() * t.element_size() for t in tensors)


def empty_negative(model: LoadedModel, negative: Conditioning) -> Conditioning:
    """SDXL was trained with zeros, not the encoding of "", as the empty negative prompt."""
    if (
        model.info.family == "sdxl"
        and not negative.text
        and model.base.config.get("force_zeros_for_empty_prompt", False)
    ):
        return Conditioning(
            "", torch.zeros_like(negative.embeds), torch.zeros_like(negative.pooled)
        )
    return negative


@dataclass(frozen=True, eq=False)
class Latent:
    """Latent images, or just the size of empty ones that sampling will fill with seeded noise."""

    width: int
    height: int
    batch_size: int = 1
    # Scaled latents, one (1, C, h, w) tensor per image; empty for an empty latent.
    samples: tuple[torch.Tensor, ...] = ()
    # The pixels that were encoded, which inpainting needs alongside the mask.
    source: Image.Image | None = None
    # Where sampling may change the image (white = repaint); None = everywhere.
    mask: Image.Image | None = None
    # What produced each sample, once sampled.
    params: tuple[GenerationParams, ...] = ()

    def with_(self, **changes) -> Latent:
        return replace(self, **changes)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.samples)


def encode_prompt(model: LoadedModel, text: str, embeddings=None) -> Conditioning:
    """Run the text encoder(s) once; the result is reused for every seed and step.

    A1111's syntax is understood (weights, BREAK, `<lora:...>` tags are taken out), prompts
    of any length are encoded in 77-token chunks, and `embeddings` ({name: Embedding}) are
    used where the prompt names them. A prompt without any of that (and without clip skip)
    goes through diffusers' own encoding exactly as before, so its pixels do not change.
    """
    from studio.engine.addons import addons_of, applied
    from studio.engine.prompts import CHUNK, encode_chunked, mentioned_embeddings, token_count
    from studio.formats.prompt_syntax import parse_prompt

    pipe = model.base
    device = model.choice.device
    parsed = parse_prompt(text)
    clip_skip = addons_of(model).clip_skip
    used = mentioned_embeddings(text, embeddings or {})
    plain = parsed.plain_text
    tokenizer = pipe.tokenizer if pipe.tokenizer is not None else pipe.tokenizer_2
    with applied(model), torch.no_grad():
        if plain is not None and not used and clip_skip <= 1:
            if token_count(tokenizer, plain) <= CHUNK:
                if model.info.family == "sdxl":
                    embeds, _, pooled, _ = pipe.encode_prompt(
                        prompt=plain,
                        device=device,
                        num_images_per_prompt=1,
                        do_classifier_free_guidance=False,
                    )
                    return Conditioning(text, embeds, pooled)
                embeds, _ = pipe.encode_prompt(plain, device, 1, False)
                return Conditioning(text, embeds)
        vectors = _embedding_vectors(model, used, embeddings or {})
        embeds, pooled = encode_chunked(
            pipe, model.info.family, parsed, device, clip_skip=clip_skip, embeddings=vectors
        )
        return Conditioning(text, embeds, pooled)


def _embedding_vectors(model, names, embeddings) -> dict:
    pipe = model.base
    widths = [
        e.config.hidden_size
        for e in (pipe.text_encoder, getattr(pipe, "text_encoder_2", None))
        if e is not None
    ]
    return {name: embeddings[name].for_model(widths, model.info.label) for name in names}


def same_length(
    model: LoadedModel, positive: Conditioning, negative: Conditioning
) -> tuple[Conditioning, Conditioning]:
    """Pad the shorter of two chunked prompts with empty-prompt chunks, as CFG needs."""
    if positive.embeds.shape[1] == negative.embeds.shape[1]:
        return positive, negative
    from studio.engine.prompts import pad_to_same_length

    empty = encode_prompt(model, "").embeds
    a, b = pad_to_same_length(positive.embeds, negative.embeds, empty)
    return (
        Conditioning(positive.text, a, positive.pooled),
        Conditioning(negative.text, b, negative.pooled),
    )


def _needs_fp32(vae) -> bool:
    return vae.dtype == torch.float16 and vae.config.get("force_upcast", False)


def encode_image(model: LoadedModel, image: Image.Image) -> Latent:
    """VAE-encode an RGB image (deterministically: the distribution's mode)."""
    from studio.engine.addons import applied

    with applied(model, loras=False):  # the VAE only
        return _encode_image(model, image)


def _encode_image(model: LoadedModel, image: Image.Image) -> Latent:
    pipe = model.base
    vae = pipe.vae
    if _needs_fp32(vae):
        vae.to(torch.float32)
    pixels = pipe.image_processor.preprocess(image.convert("RGB"))
    with torch.no_grad():
        dist = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist
        latents = dist.mode()
    config = vae.config
    stats = _latent_stats(config, latents)
    if stats is not None:
        mean_t, std_t = stats
        latents = (latents - mean_t) * config.scaling_factor / std_t
    else:
        latents = (latents - (config.get("shift_factor") or 0.0)) * config.scaling_factor
    height, width = pixels.shape[-2:]
    return Latent(int(width), int(height), 1, (latents.to(model.choice.dtype),), source=image)


def decode_latents(pipe, latents: torch.Tensor) -> list[Image.Image]:
    """VAE-decode latents to PIL images, retrying in fp32 if half precision overflows."""
    import logging

    vae = pipe.vae
    if _needs_fp32(vae):
        vae.to(torch.float32)
    image = _vae_decode(vae, latents)
    if not torch.isfinite(image).all() and vae.dtype != torch.float32:
        logging.getLogger(__name__).warning(
            "The VAE overflowed in half precision; decoding in fp32 from now on"
        )
        vae.to(torch.float32)
        image = _vae_decode(vae, latents)
    return pipe.image_processor.postprocess(image.float(), output_type="pil")


def decode(model: LoadedModel, latent: Latent) -> list[Image.Image]:
    from studio.engine.addons import applied
    with applied(model, loras=False):  # the VAE only
        images = [decode_latents(model.base, samples)[0] for samples in latent.samples]
    trim_heap()  # the decoder's activations, so the next job's peak does not stack on them
    return images


def _latent_stats(config, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Per-channel latent mean and std for VAEs that normalise with them (None for SD/SDXL)."""
    mean, std = config.get("latents_mean"), config.get("latents_std")
    if mean is None or std is None:
        return None
    shape = (1, latents.shape[1], 1, 1)
    return torch.tensor(mean).view(shape).to(latents), torch.tensor(std).view(shape).to(latents)


def _vae_decode(vae, latents: torch.Tensor) -> torch.Tensor:
    latents = latents.to(vae.device, vae.dtype)
    config = vae.config
    stats = _latent_stats(config, latents)
    if stats is not None:
        mean_t, std_t = stats
        latents = latents * std_t / config.scaling_factor + mean_t
    else:
        latents = latents / config.scaling_factor + (config.get("shift_factor") or 0.0)
    with torch.no_grad():
        return vae.decode(latents, return_dict=False)[0]


def upscale_latent(
    latent: Latent, width: int, height: int, method: str = "nearest-exact"
) -> Latent:
    """Resize latent samples to a new pixel size (multiple of 8)."""
    width, height = max(8, width // 8 * 8), max(8, height // 8 * 8)
    mode = {"nearest-exact": "nearest-exact", "bilinear": "bilinear", "bicubic": "bicubic"}[method]
    size = (height // 8, width // 8)
    samples = tuple(
        torch.nn.functional.interpolate(s.float(), size=size, mode=mode).to(s.dtype)
        for s in latent.samples
    )
    source = latent.source.resize((width, height), Image.LANCZOS) if latent.source else None
    mask = latent.mask.resize((width, height), Image.BILINEAR) if latent.mask else None
    return latent.with_(width=width, height=height, samples=samples, source=source, mask=mask)
