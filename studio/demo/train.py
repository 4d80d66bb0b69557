"""Train the bundled default model from scratch: `python -m studio.demo.train`.

Four stages, each resumable from its last checkpoint in the work folder:

1. ``vae``: a small AutoencoderKL (64x64 RGB <-> 4x16x16 latents), on crops.
2. ``unet``: a small UNet2DConditionModel and CLIP text encoder (behind the real CLIP tokenizer
   from resources/), trained together on cached latents of the scenes, captions dropped 10 %
   of the time so classifier-free guidance works. Zero terminal SNR and v-prediction (see
   ZERO_SNR_V_PREDICTION). Weights are exported from an EMA copy.
3. ``decoder``: the VAE decoder sharpened on whole images, the encoder frozen.
4. ``upscaler``: a Real-ESRGAN "Compact" network (loaded by spandrel) for x4 super-resolution.

The result is a diffusers-format Stable Diffusion 1.x folder and a spandrel .safetensors file,
so the app loads them through the same code as a user's checkpoints. Everything is seeded:
the same command on the same machine gives the same weights. The loss log is a CSV in the
work folder. With no arguments it fits in under an hour on an idle 2-core CPU; a GPU is used
when there is one."""

from __future__ import annotations

import argparse
import copy
import csv
import json
import logging
import math
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import studio.engine  # noqa: F401  (forces Hugging Face libraries offline before they load)
from studio.demo.scenes import caption, draw, sample_scene
from studio.paths import DEMO_CHECKPOINT, DEMO_UPSCALER, MODEL_CONFIGS

log = logging.getLogger("studio.demo.train")

SIDE = 64  # pixels; the model's native size
LATENT_SIDE = 16
TEXT_WIDTH = 64
CFG_DROP = 0.1
# SD 1.x's schedule leaves some signal at its last timestep. On 16x16 latents that is enough
# for the model to read the layout (where the shape goes, the background) from the starting
# noise, that is from the seed, instead of from the prompt. Rescaled to zero terminal SNR the
# last step is pure noise; epsilon is then meaningless there, so the UNet predicts v.
ZERO_SNR_V_PREDICTION = {"rescale_betas_zero_snr": True, "prediction_type": "v_prediction"}


@dataclass(frozen=True)
class Plan:
    """Steps and batch sizes of each stage (defaults sized for a 2-core CPU)."""

    pool: int = 24000  # scenes drawn once and reused, each with fresh captions
    vae_steps: int = 3000
    vae_batch: int = 32
    vae_crop: int = 32  # the autoencoder is convolutional: it learns as well from crops, faster
    unet_steps: int = 5000
    unet_batch: int = 32
    decoder_steps: int = 1500
    decoder_batch: int = 16
    upscaler_steps: int = 1500
    upscaler_batch: int = 8
    seed: int = 0


# -- the networks --------------------------------------------------------------------------


def make_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=SIDE,
    )


def make_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=TEXT_WIDTH,
        intermediate_size=TEXT_WIDTH * 4,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act="quick_gelu",  # OpenAI CLIP's activation: the folder is detected as SD 1.x
        projection_dim=TEXT_WIDTH,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )
    return CLIPTextModel(config)


def make_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=LATENT_SIDE,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64, 96),
        layers_per_block=1,
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=8,
        norm_num_groups=16,
    )


def make_upscaler():
    from spandrel.architectures.Compact import Compact

    return Compact(num_in_ch=3, num_out_ch=3, num_feat=32, num_conv=8, upscale=4)


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


# -- checkpoints and logging ----------------------------------------------------------------


class Stage:
    """One resumable training stage: modules, optimiser, step counter and loss log."""

    def __init__(
        self, name: str, work: Path, modules: dict, lr: float, total: int, ema: bool = False
    ) -> None:
        self.name, self.work, self.modules, self.total = name, work, modules, total
        params = [p for m in modules.values() for p in m.parameters()]
        # Fused: the text encoder's token table alone is 3 M weights, updated every step.
        self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4, fused=True)
        self.lr = lr
        self.step = 0
        # An exponential moving average of the weights, exported instead of the live ones.
        self.ema = {k: copy.deepcopy(m).eval() for k, m in modules.items()} if ema else {}
        self.path = work / f"{name}.pt"
        if self.path.exists():
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            for key, module in modules.items():
                module.load_state_dict(state["modules"][key])
            for key, module in self.ema.items():
                module.load_state_dict(state["ema"][key])
            self.optimizer.load_state_dict(state["optimizer"])
            self.step = int(state["step"])
            log.info("Resuming %s at step %d", name, self.step)
        self._log = (work / "loss.csv").open("a", newline="")
        self._csv = csv.writer(self._log)
        self._started = time.perf_counter()

    @property
    def done(self) -> bool:
        return self.step >= self.total

    def learning_rate(self) -> float:
        warmup = min(200, self.total // 10)
        if self.step < warmup:
            return self.lr * (self.step + 1) / warmup
        progress = (self.step - warmup) / max(1, self.total - warmup)
        return self.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    def update(self, loss: torch.Tensor) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for m in self.modules.values() for p in m.parameters()]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        self.optimizer.step()
        self.step += 1
        if self.ema:
            self._average()
        value = float(loss.detach())
        if self.step % 25 == 0 or self.done:
            seconds = time.perf_counter() - self._started
            self._csv.writerow([self.name, self.step, f"{value:.6f}", f"{seconds:.1f}"])
            self._log.flush()
        return value

    @torch.no_grad()
    def _average(self, decay: float = 0.999) -> None:
        # Warmed up, so that the random initial weights fade quickly in a short run.
        d = min(decay, (1 + self.step) / (10 + self.step))
        for key, live in self.modules.items():
            for avg, cur in zip(self.ema[key].parameters(), live.parameters(), strict=True):
                avg.lerp_(cur.detach(), 1 - d)

    def save(self) -> None:
        state = {
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "ema": {k: m.state_dict() for k, m in self.ema.items()},
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
        }
        temporary = self.path.with_suffix(".tmp")
        torch.save(state, temporary)
        temporary.replace(self.path)


def run_stage(stage: Stage, train_step: Callable[[int], torch.Tensor], every: int = 250) -> None:
    from tqdm import tqdm

    bar = tqdm(total=stage.total, initial=stage.step, desc=stage.name, unit="step", file=sys.stderr)
    while not stage.done:
        # Each step's randomness comes from its number, so a resumed run continues exactly.
        torch.manual_seed(stage.step * 7919 + len(stage.name))
        loss = stage.update(train_step(stage.step))
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")
        if stage.step % every == 0 or stage.done:
            stage.save()
    bar.close()


# -- stage 1: the autoencoder ----------------------------------------------------------------


def _edge_loss(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between image gradients: pixel losses alone let a small shape blur into a blob."""
    dx = F.l1_loss(recon.diff(dim=-1), target.diff(dim=-1))
    return dx + F.l1_loss(recon.diff(dim=-2), target.diff(dim=-2))


def train_vae(plan: Plan, pool: np.ndarray, work: Path, device: torch.device):
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


def train_unet(plan: Plan, latents: torch.Tensor, scenes: list, scale: float, work: Path, device):
    from diffusers import DDPMScheduler

    from studio.engine.configs import clip_tokenizer

    tokenizer = clip_tokenizer()
    unet, text_encoder = make_unet().to(device), make_text_encoder().to(device)
    modules = {"unet": unet, "text_encoder": text_encoder}
    stage = Stage("unet", work, modules, lr=5e-4, total=plan.unet_steps, ema=True)
    noise_schedule = DDPMScheduler.from_pretrained(
        MODEL_CONFIGS / "sd1" / "scheduler", **ZERO_SNR_V_PREDICTION
    )

    def step(index: int) -> torch.Tensor:
        rng = random.Random(plan.seed * 1_000_003 + index)
        picks = [rng.randrange(len(scenes)) for _ in range(plan.unet_batch)]
        texts = ["" if rng.random() < CFG_DROP else caption(scenes[i], rng) for i in picks]
        x0 = latents[picks].to(device) * scale
        noise = torch.randn_like(x0)
        t = torch.randint(0, noise_schedule.config.num_train_timesteps, (len(picks),))
        noisy = noise_schedule.add_noise(x0, noise, t)
        context = text_encoder(tokenize(tokenizer, texts).to(device))[0]
        predicted = unet(noisy, t.to(device), encoder_hidden_states=context).sample
        return F.mse_loss(predicted, noise_schedule.get_velocity(x0, noise, t.to(device)))

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
    plan = Plan(
        vae_steps=max(1, round(defaults.vae_steps * args.scale)),
        unet_steps=max(1, round(defaults.unet_steps * args.scale)),
        decoder_steps=max(1, round(defaults.decoder_steps * args.scale)),
        upscaler_steps=max(1, round(defaults.upscaler_steps * args.scale)),
        pool=args.pool or defaults.pool,
    )
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(plan.seed)
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
