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


def test_attribute_heads_read_the_end_of_text_tokens_and_skip_unnamed_attributes():
    import torch.nn.functional as F

    from studio.demo.networks import END_OF_TEXT, TEXT_WIDTH, AttributeHeads

    torch.manual_seed(0)
    heads = AttributeHeads()
    ids = torch.tensor([[49406, 320, 736, END_OF_TEXT, END_OF_TEXT, END_OF_TEXT]])
    hidden = torch.randn(1, ids.shape[1], TEXT_WIDTH)
    labels = [{name: None for name in heads.heads} | {"shape": 2}]
    loss = heads(hidden, ids, labels)
    # Only the named attribute counts, read from the mean of the end-of-text tokens.
    expected = F.cross_entropy(heads.heads["shape"](hidden[:, 3:].mean(1)), torch.tensor([2]))
    assert torch.allclose(loss, expected)
    # The prompt's own tokens reach the read-out only through attention, not directly.
    changed = hidden.clone()
    changed[:, :3] += 5.0
    assert torch.allclose(heads(changed, ids, labels), loss)
