"""Train the bundled default model from scratch: `python -m studio.demo.train`.

Four stages, each resumable from its last checkpoint in the work folder:

1. ``vae``: a small AutoencoderKL (64x64 RGB <-> 4x16x16 latents), on crops.
2. ``unet``: a small CLIP text encoder (behind the real CLIP tokenizer from resources/) first
   learns to read every scene attribute back from a caption (see AttributeHeads); then it and a
   small UNet2DConditionModel train together on cached latents of the scenes, captions dropped
   10 % of the time so classifier-free guidance works. Zero terminal SNR and v-prediction (see
   ZERO_SNR_V_PREDICTION). Weights are exported from an EMA copy.
3. ``decoder``: the VAE decoder sharpened on whole images, the encoder frozen.
4. ``upscaler``: a Real-ESRGAN "Compact" network (loaded by spandrel) for x4 super-resolution.

The result is a diffusers-format Stable Diffusion 1.x folder and a spandrel .safetensors file,
so the app loads them through the same code as a user's checkpoints. Everything is seeded:
the same command on the same machine gives the same weights. The loss log is a CSV in the
work folder. With no arguments it takes about an hour (61 minutes) on an idle 2-core CPU; a GPU
is used when there is one."""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import studio.engine  # noqa: F401  (forces Hugging Face libraries offline before they load)
from studio.demo.networks import (
    SIDE,
    AttributeHeads,
    make_text_encoder,
    make_unet,
    make_upscaler,
    make_vae,
)
from studio.demo.scenes import caption, caption_labels, draw, sample_scene
from studio.demo.stage import Stage, run_stage
from studio.engine.recommended import SETTINGS_FILE
from studio.paths import DEMO_CHECKPOINT, DEMO_UPSCALER, MODEL_CONFIGS

log = logging.getLogger("studio.demo.train")

CFG_DROP = 0.1
AUX_WEIGHT = 0.1  # of the attribute read-out loss next to the diffusion loss (AttributeHeads)
# SD 1.x's schedule leaves some signal at its last timestep. On 16x16 latents that is enough
# for the model to read the layout (where the shape goes, the background) from the starting
# noise, that is from the seed, instead of from the prompt. Rescaled to zero terminal SNR the
# last step is pure noise; epsilon is then meaningless there, so the UNet predicts v.
ZERO_SNR_V_PREDICTION = {"rescale_betas_zero_snr": True, "prediction_type": "v_prediction"}
# Written beside the model (studio.engine.recommended). Measured with bench/shapes_eval.py: at
# SD's usual CFG 7 colours and shapes overshoot (shape kind 71 %, shape colour 82 %); at 3 they
# read 91 % and 97.5 %. A second scene set agrees (shape kind 89 / 85 / 82 % at CFG 2 / 3 / 4).
RECOMMENDED = {"cfg_scale": 3.0}


@dataclass(frozen=True)
class Plan:
    """Steps and batch sizes of each stage (defaults sized for a 2-core CPU)."""

    pool: int = 24000  # scenes drawn once and reused, each with fresh captions
    vae_steps: int = 3000
    vae_batch: int = 32
    vae_crop: int = 32  # the autoencoder is convolutional: it learns as well from crops, faster
    text_steps: int = 400  # the text encoder alone, before the UNet (see AttributeHeads)
    text_batch: int = 64
    unet_steps: int = 7000
    unet_batch: int = 32
    decoder_steps: int = 1500
    decoder_batch: int = 16
    upscaler_steps: int = 1500
    upscaler_batch: int = 8
    seed: int = 0


# -- data -------------------------------------------------------------------------------------


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """RGB images -> N x 3 x H x W in [-1, 1]."""
    array = np.stack([np.asarray(im, dtype=np.uint8) for im in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def draw_pool(count: int, seed: int, work: Path) -> tuple[np.ndarray, list]:
    """`count` training scenes, drawn once and cached in the work folder."""
    cache = work / f"pool-{count}-{seed}.npz"
    rng = random.Random(seed)
    scenes = [sample_scene(rng) for _ in range(count)]
    if cache.exists():
        return np.load(cache)["images"], scenes
    from tqdm import tqdm

    images = np.stack(
        [np.asarray(draw(s, SIDE)) for s in tqdm(scenes, desc="drawing scenes", file=sys.stderr)]
    )
    np.savez(cache, images=images)
    return images, scenes


# -- stage 1: the autoencoder ----------------------------------------------------------------


def _edge_loss(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between image gradients: pixel losses alone let a small shape blur into a blob."""
    dx = F.l1_loss(recon.diff(dim=-1), target.diff(dim=-1))
    return dx + F.l1_loss(recon.diff(dim=-2), target.diff(dim=-2))


def train_vae(plan: Plan, pool: np.ndarray, work: Path, device: torch.device):
    torch.manual_seed(plan.seed)  # each stage seeds its own initial weights: stages can resume
    vae = make_vae().to(device)
    stage = Stage("vae", work, {"vae": vae}, lr=2e-3, total=plan.vae_steps)

    def step(index: int) -> torch.Tensor:
        rng = np.random.default_rng(plan.seed * 1000 + index)
        # Crops aligned to the 4-pixel latent grid, so the encoder sees the same phases as
        # on whole images.
        top, left = (int(v) * 4 for v in rng.integers(0, (SIDE - plan.vae_crop) // 4 + 1, 2))
        batch = pool[rng.integers(0, len(pool), plan.vae_batch)]
        batch = torch.from_numpy(batch[:, top : top + plan.vae_crop, left : left + plan.vae_crop])
        x = (batch.permute(0, 3, 1, 2).float() / 127.5 - 1.0).to(device)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        # L1 keeps edges crisp; the small KL term keeps the latent space smooth for diffusion.
        return F.l1_loss(recon, x) + F.mse_loss(recon, x) + 1e-6 * posterior.kl().mean()

    vae.train()
    run_stage(stage, step)
    vae.eval()
    return vae


@torch.no_grad()
def encode_pool(vae, pool: np.ndarray, plan: Plan, work: Path, device) -> torch.Tensor:
    """Latent means of every pool image, cached; the VAE's scaling factor is set from them."""
    # Named by the VAE's training length, so a longer-trained VAE never reuses stale latents.
    cache = work / f"latents-{len(pool)}-{plan.vae_steps}.pt"
    if cache.exists():
        latents = torch.load(cache, weights_only=True)
    else:
        chunks = []
        for start in range(0, len(pool), 256):
            x = torch.from_numpy(pool[start : start + 256]).permute(0, 3, 1, 2).float()
            chunks.append(vae.encode((x / 127.5 - 1.0).to(device)).latent_dist.mean.cpu())
        latents = torch.cat(chunks)
        torch.save(latents, cache)
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    return latents


def tune_decoder(plan: Plan, vae, latents: torch.Tensor, pool: np.ndarray, work: Path, device):
    """Sharpen the decoder on whole images from the latents the UNet learned to produce.

    The encoder is frozen, so the latent space (and so the trained UNet) stays valid.
    """
    decoder = torch.nn.ModuleDict({"decoder": vae.decoder, "post_quant_conv": vae.post_quant_conv})
    stage = Stage("decoder", work, {"decoder": decoder}, lr=3e-4, total=plan.decoder_steps)

    def step(index: int) -> torch.Tensor:
        rng = np.random.default_rng(plan.seed * 3000 + index)
        picks = rng.integers(0, len(pool), plan.decoder_batch)
        x = torch.from_numpy(pool[picks]).permute(0, 3, 1, 2).float().to(device) / 127.5 - 1.0
        recon = vae.decode(latents[picks].to(device)).sample
        return F.l1_loss(recon, x) + F.mse_loss(recon, x) + _edge_loss(recon, x)

    decoder.train()
    run_stage(stage, step)
    vae.eval()
    return vae


# -- stage 2: text encoder + UNet --------------------------------------------------------------


def tokenize(tokenizer, texts: list[str]) -> torch.Tensor:
    return tokenizer(
        texts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def captions(scenes: list, rng: random.Random, count: int) -> tuple[list, list, list]:
    """`count` random scenes' captions and their attribute labels."""
    picks = [rng.randrange(len(scenes)) for _ in range(count)]
    texts = [caption(scenes[i], rng) for i in picks]
    return picks, texts, [caption_labels(scenes[i], t) for i, t in zip(picks, texts, strict=True)]


def train_text(plan: Plan, scenes: list, text_encoder, heads, work: Path, device) -> None:
    """Teach the text encoder the caption grammar before the UNet listens to it."""
    from studio.engine.configs import clip_tokenizer

    tokenizer = clip_tokenizer()
    modules = {"text_encoder": text_encoder, "heads": heads}
    stage = Stage("text", work, modules, lr=1e-3, total=plan.text_steps)

    def step(index: int) -> torch.Tensor:
        rng = random.Random(plan.seed * 5_000_011 + index)
        _, texts, labels = captions(scenes, rng, plan.text_batch)
        ids = tokenize(tokenizer, texts).to(device)
        return heads(text_encoder(ids)[0], ids, labels)

    text_encoder.train()
    run_stage(stage, step)


def train_unet(plan: Plan, latents: torch.Tensor, scenes: list, scale: float, work: Path, device):
    from diffusers import DDPMScheduler

    from studio.engine.configs import clip_tokenizer

    tokenizer = clip_tokenizer()
    torch.manual_seed(plan.seed + 1)
    unet, text_encoder = make_unet().to(device), make_text_encoder().to(device)
    heads = AttributeHeads().to(device)
    train_text(plan, scenes, text_encoder, heads, work, device)
    modules = {"unet": unet, "text_encoder": text_encoder, "heads": heads}
    stage = Stage("unet", work, modules, lr=5e-4, total=plan.unet_steps, ema=True)
    noise_schedule = DDPMScheduler.from_pretrained(
        MODEL_CONFIGS / "sd1" / "scheduler", **ZERO_SNR_V_PREDICTION
    )

    def step(index: int) -> torch.Tensor:
        rng = random.Random(plan.seed * 1_000_003 + index)
        picks, texts, labels = captions(scenes, rng, plan.unet_batch)
        kept = [rng.random() >= CFG_DROP for _ in picks]  # the others learn the empty prompt
        texts = [text if keep else "" for text, keep in zip(texts, kept, strict=True)]
        x0 = latents[picks].to(device) * scale
        noise = torch.randn_like(x0)
        t = torch.randint(0, noise_schedule.config.num_train_timesteps, (len(picks),))
        noisy = noise_schedule.add_noise(x0, noise, t)
        ids = tokenize(tokenizer, texts).to(device)
        context = text_encoder(ids)[0]
        predicted = unet(noisy, t.to(device), encoder_hidden_states=context).sample
        loss = F.mse_loss(predicted, noise_schedule.get_velocity(x0, noise, t.to(device)))
        rows = [i for i, keep in enumerate(kept) if keep]
        aux = heads(context[rows], ids[rows], [labels[i] for i in rows])
        return loss + AUX_WEIGHT * aux

    unet.train()
    text_encoder.train()
    run_stage(stage, step)
    return stage.ema["unet"], stage.ema["text_encoder"]


# -- stage 3: the x4 upscaler -------------------------------------------------------------------


def upscaler_pair(rng: random.Random, side: int = SIDE) -> tuple[Image.Image, Image.Image]:
    """A held-out-style scene at 4x resolution and its low-resolution version."""
    high = draw(sample_scene(rng, allow_held_out=True), side * 4, supersample=2)
    return high.resize((side, side), Image.Resampling.LANCZOS), high


def train_upscaler(plan: Plan, work: Path, device):
    torch.manual_seed(plan.seed + 2)
    model = make_upscaler().to(device)
    stage = Stage("upscaler", work, {"upscaler": model}, lr=1e-3, total=plan.upscaler_steps)

    def step(index: int) -> torch.Tensor:
        rng = random.Random(plan.seed * 7_000_001 + index)
        pairs = [upscaler_pair(rng) for _ in range(plan.upscaler_batch)]
        low = (to_tensor([p[0] for p in pairs]).to(device) + 1) / 2
        high = (to_tensor([p[1] for p in pairs]).to(device) + 1) / 2
        # Squared error: with L1 on mostly flat scenes, "add nothing" (the median) wins and the
        # network never learns the edges, which are all that upscaling is about here.
        return F.mse_loss(model(low), high)

    model.train()
    run_stage(stage, step)
    return model.eval()


# -- export ------------------------------------------------------------------------------------


def export_checkpoint(vae, unet, text_encoder, target: Path) -> None:
    """Write a diffusers StableDiffusionPipeline folder (fp16 weights, no tokenizer files:
    Studio supplies the bundled CLIP tokenizer to every SD 1.x model)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    # The samplers Studio builds from this config keep its zero-SNR betas and v-prediction.
    scheduler = DDIMScheduler.from_pretrained(
        MODEL_CONFIGS / "sd1" / "scheduler", timestep_spacing="trailing", **ZERO_SNR_V_PREDICTION
    )
    from studio.engine.configs import clip_tokenizer

    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.to(torch.float16)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    pipe.save_pretrained(staging, safe_serialization=True)
    shutil.rmtree(staging / "tokenizer", ignore_errors=True)
    pipe.to(torch.float32)
    (staging / SETTINGS_FILE).write_text(json.dumps({"recommended": RECOMMENDED}, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.replace(target)


def export_upscaler(model, target: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    temporary = target.with_suffix(".partial")
    save_file(state, str(temporary), metadata={"studio": "x4 upscaler for studio-shapes"})
    temporary.replace(target)


# -- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m studio.demo.train", description="Train Studio's bundled default model."
    )
    parser.add_argument("--work", type=Path, default=Path("build/demo-training"))
    parser.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT)
    parser.add_argument("--upscaler", type=Path, default=DEMO_UPSCALER)
    parser.add_argument("--stages", default="vae,unet,decoder,upscaler")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every stage's steps")
    parser.add_argument("--pool", type=int, help="how many scenes to draw (default: the plan's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s: %(message)s")

    defaults = Plan()
    steps = {
        name: max(1, round(getattr(defaults, name) * args.scale))
        for name in defaults.__dataclass_fields__
        if name.endswith("_steps")
    }
    plan = Plan(**steps, pool=args.pool or defaults.pool)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "plan.json").write_text(json.dumps(plan.__dict__, indent=2))
    stages = set(args.stages.split(","))
    started = time.perf_counter()

    if stages & {"vae", "unet", "decoder"}:
        # A stage whose checkpoint is complete just loads it, so later stages can run alone.
        pool, scenes = draw_pool(plan.pool, plan.seed, args.work)
        vae = train_vae(plan, pool, args.work, device)
        latents = encode_pool(vae, pool, plan, args.work, device)
        if stages & {"unet", "decoder"}:
            scale = vae.config.scaling_factor
            unet, text_encoder = train_unet(plan, latents, scenes, scale, args.work, device)
            if "decoder" in stages:
                vae = tune_decoder(plan, vae, latents, pool, args.work, device)
            export_checkpoint(vae.cpu(), unet.cpu(), text_encoder.cpu(), args.checkpoint)
            log.info("Wrote %s", args.checkpoint)
    if "upscaler" in stages:
        export_upscaler(train_upscaler(plan, args.work, device).cpu(), args.upscaler)
        log.info("Wrote %s", args.upscaler)
    log.info("Trained in %.1f minutes", (time.perf_counter() - started) / 60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
