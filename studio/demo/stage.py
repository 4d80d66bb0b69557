"""One resumable training stage: modules, optimiser, learning-rate schedule, an EMA copy of
the weights, checkpoints in the work folder and the loss log."""

from __future__ import annotations

import copy
import csv
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

log = logging.getLogger("studio.demo.train")


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
