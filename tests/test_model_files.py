"""Model folders as people have them: layouts, kinds and families from headers, the scan cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from studio.engine import model_files
from studio.engine.folders import find_file, folders_for


def fake(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    """A .safetensors file with these names and shapes (zeros): only its header matters."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.zeros(s) for k, s in shapes.items()}, str(path))
    return path


UNET_K = "down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"


@pytest.fixture
def webui(tmp_path, tiny_sd1):
    """An A1111 install with one file of each kind, and a ComfyUI folder via extra_model_paths."""
    root = tmp_path / "stable-diffusion-webui"
    ckpt = root / "models" / "Stable-diffusion" / "tiny.safetensors"
    ckpt.parent.mkdir(parents=True)
    os.link(tiny_sd1.single_file, ckpt)
    fake(
        root / "models" / "Lora" / "xl_style.safetensors",
        {
            f"lora_unet_{UNET_K}.lora_down.weight": (4, 2048),
            f"lora_unet_{UNET_K}.lora_up.weight": (640, 4),
        },
    )
    fake(
        root / "models" / "Lora" / "sd1_detail.safetensors",
        {
            "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (4, 768),
        },
    )
    fake(
        root / "models" / "Lora" / "flux_thing.safetensors",
        {
            "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": (4, 3072),
        },
    )
    fake(root / "embeddings" / "easynegative.safetensors", {"emb_params": (8, 768)})
    fake(root / "embeddings" / "xl_neg.safetensors", {"clip_l": (2, 768), "clip_g": (2, 1280)})
    fake(
        root / "models" / "VAE" / "sdxl_vae.safetensors",
        {
            "encoder.conv_in.weight": (128, 3, 3, 3),
            "decoder.conv_in.weight": (512, 4, 3, 3),
            "decoder.conv_out.weight": (3, 128, 3, 3),
        },
    )
    fake(
        root / "models" / "Stable-diffusion" / "flux1-dev.safetensors",
        {
            "double_blocks.0.img_attn.qkv.weight": (9, 3),
        },
    )
    fake(
        root / "models" / "Stable-diffusion" / "sd3_medium.safetensors",
        {
            "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight": (9, 3),
        },
    )
    (root / "models" / "Stable-diffusion" / "broken.safetensors").write_bytes(b"\xff" * 20)
    (root / "venv").mkdir()
    fake(root / "venv" / "never_scanned.safetensors", {"x": (1,)})

    comfy = tmp_path / "ComfyUI"
    fake(
        comfy / "models" / "loras" / "comfy_lora.safetensors",
        {
            "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (4, 1024),
        },
    )
    (root / "extra_model_paths.yaml").write_text(
        f"comfyui:\n    base_path: {comfy}\n    loras: |\n        models/loras\n", "utf-8"
    )
    return root


def kinds(entries):
    return {e.path.name: (e.kind, e.label) for e in entries}


def test_an_a1111_install_is_found_with_kinds_and_families(webui, tmp_path):
    found = kinds(model_files.scan_folders([webui], cache_file=tmp_path / "scan.json"))
    assert found["tiny.safetensors"] == ("checkpoint", "SD 1.x (non-standard size)")
    assert found["xl_style.safetensors"] == ("lora", "LoRA for SDXL")
    assert found["sd1_detail.safetensors"] == ("lora", "LoRA for SD 1.x")
    assert found["comfy_lora.safetensors"] == ("lora", "LoRA for SD 2.x")
    assert found["flux_thing.safetensors"][0] == "unsupported"
    assert "Flux" in found["flux_thing.safetensors"][1]
    assert found["easynegative.safetensors"] == ("embedding", "embedding for SD 1.x")
    assert found["xl_neg.safetensors"] == ("embedding", "embedding for SDXL")
    assert found["sdxl_vae.safetensors"] == ("vae", "VAE for SD 1.x/2.x/SDXL")
    assert found["flux1-dev.safetensors"][0] == "unsupported"
    assert found["flux1-dev.safetensors"][1].startswith("Flux checkpoint")
    assert found["sd3_medium.safetensors"][1].startswith("SD3 checkpoint")
    assert found["broken.safetensors"][0] == "unusable"
    assert "never_scanned.safetensors" not in found  # the install's own files are left alone


def test_a_second_scan_reads_only_changed_files(webui, tmp_path, monkeypatch):
    cache = tmp_path / "scan.json"
    first = model_files.scan_folders([webui], cache_file=cache)
    opened = []
    real = model_files.describe
    monkeypatch.setattr(model_files, "describe", lambda p: opened.append(p.name) or real(p))
    assert kinds(model_files.scan_folders([webui], cache_file=cache)) == kinds(first)
    assert opened == []
    changed = webui / "models" / "Lora" / "xl_style.safetensors"
    fake(changed, {"emb_params": (3, 1024)})
    again = kinds(model_files.scan_folders([webui], cache_file=cache))
    assert opened == ["xl_style.safetensors"]
    assert again["xl_style.safetensors"] == ("embedding", "embedding for SD 2.x")


def test_names_resolve_in_the_kind_folders(webui):
    assert find_file("xl_style", "lora", [webui], (".safetensors",)).name == "xl_style.safetensors"
    assert find_file("comfy_lora", "lora", [webui], (".safetensors",)) is not None
    assert find_file("easynegative", "lora", [webui], (".safetensors",)) is None
    assert webui not in folders_for("checkpoint", [webui])  # an install's root is not searched
