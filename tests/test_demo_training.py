"""The training command runs end to end, resumes, and writes models the app loads."""

from __future__ import annotations

import csv

import pytest

torch = pytest.importorskip("torch")


def test_training_writes_loadable_models_and_resumes(tmp_path):
    from studio.demo.train import main
    from studio.engine.detect import detect
    from studio.engine.upscale import load_upscale_model

    work, checkpoint = tmp_path / "work", tmp_path / "shapes"
    upscaler = tmp_path / "x4.safetensors"
    args = ["--work", str(work), "--checkpoint", str(checkpoint), "--upscaler", str(upscaler)]
    args += ["--pool", "64", "--threads", "1"]
    assert main([*args, "--scale", "0.001"]) == 0
    info = detect(checkpoint)
    assert info.family == "sd1" and info.layout == "diffusers"
    assert load_upscale_model(upscaler, device="cpu").scale == 4

    # A longer run continues from the saved steps instead of starting again.
    assert main([*args, "--scale", "0.002", "--stages", "upscaler"]) == 0
    rows = [r for r in csv.reader((work / "loss.csv").open()) if r[0] == "upscaler"]
    steps = [int(r[1]) for r in rows]
    assert steps == [2, 3]
