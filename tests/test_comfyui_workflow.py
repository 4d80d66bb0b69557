"""ComfyUI API-format workflows imported as Studio graphs, and exported back."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from studio.errors import WorkflowError
from studio.graph.document import Graph, Node
from studio.nodes.comfyui import import_comfyui, import_comfyui_png
from studio.nodes.comfyui_export import export_comfyui

# What ComfyUI's default graph looks like after "Export (API)".
TXT2IMG: dict[str, Any] = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 156680208700286,
            "steps": 25,
            "cfg": 6.5,
            "sampler_name": "dpmpp_2m",
            "scheduler": "karras",
            "denoise": 1,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
        "_meta": {"title": "KSampler"},
    },
    "4": {
        "class_type": "CheckpointLoaderSimple",
        "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"},
    },
    "5": {
        "class_type": "EmptyLatentImage",
        "inputs": {"width": 768, "height": 512, "batch_size": 2},
    },
    "6": {
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "a lighthouse at dusk", "clip": ["4", 1]},
        "_meta": {"title": "Positive"},
    },
    "7": {
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "blurry, watermark", "clip": ["4", 1]},
    },
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}


def _without(workflow: dict[str, Any], *ids: str) -> dict[str, Any]:
    out = copy.deepcopy(workflow)
    for cid in ids:
        del out[cid]
    return out


IMG2IMG = {
    **_without(TXT2IMG, "5"),
    "10": {"class_type": "LoadImage", "inputs": {"image": "photo.png", "upload": "image"}},
    "12": {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}},
}
IMG2IMG["3"]["inputs"].update(
    latent_image=["12", 0], denoise=0.6, sampler_name="euler_ancestral", scheduler="normal"
)

INPAINT = {
    **_without(TXT2IMG, "5"),
    "10": {"class_type": "LoadImage", "inputs": {"image": "photo.png", "upload": "image"}},
    "11": {
        "class_type": "VAEEncodeForInpaint",
        "inputs": {"pixels": ["10", 0], "vae": ["4", 2], "mask": ["10", 1], "grow_mask_by": 6},
    },
}
INPAINT["3"]["inputs"]["latent_image"] = ["11", 0]

UPSCALE: dict[str, Any] = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "small.png"}},
    "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
    "3": {
        "class_type": "ImageUpscaleWithModel",
        "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]},
    },
    "4": {
        "class_type": "ImageScale",
        "inputs": {
            "upscale_method": "nearest-exact",
            "width": 2048,
            "height": 1536,
            "crop": "disabled",
            "image": ["3", 0],
        },
    },
    "5": {
        "class_type": "ImageScaleBy",
        "inputs": {"upscale_method": "lanczos", "scale_by": 0.5, "image": ["4", 0]},
    },
    "6": {
        "class_type": "SaveImage",
        "inputs": {"filename_prefix": "up/scaled", "images": ["5", 0]},
    },
}

HIRES = {
    **copy.deepcopy(TXT2IMG),
    "10": {
        "class_type": "LatentUpscaleBy",
        "inputs": {"upscale_method": "bislerp", "scale_by": 1.5, "samples": ["3", 0]},
    },
    "11": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 1,
            "steps": 12,
            "cfg": 6.5,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 0.5,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["10", 0],
        },
    },
}
HIRES["8"]["inputs"]["samples"] = ["11", 0]

# Port types of our nodes, as the node library declares them (kept here so this test does
# not depend on the library).
OUTPUTS = {
    "LoadCheckpoint": {"model": "MODEL"},
    "Prompt": {"conditioning": "CONDITIONING"},
    "EmptyLatent": {"latent": "LATENT"},
    "EncodeImage": {"latent": "LATENT"},
    "SetLatentMask": {"latent": "LATENT"},
    "Sample": {"latent": "LATENT"},
    "Decode": {"image": "IMAGE"},
    "LoadImage": {"image": "IMAGE", "mask": "MASK"},
    "GrowMask": {"mask": "MASK"},
    "InvertMask": {"mask": "MASK"},
    "InpaintComposite": {"image": "IMAGE"},
    "LoadUpscaleModel": {"upscale_model": "UPSCALE_MODEL"},
    "UpscaleWithModel": {"image": "IMAGE"},
    "Resize": {"image": "IMAGE"},
    "LatentUpscale": {"latent": "LATENT"},
}
INPUTS = {
    "Prompt": {"model": "MODEL"},
    "EncodeImage": {"model": "MODEL", "image": "IMAGE"},
    "SetLatentMask": {"latent": "LATENT", "mask": "MASK"},
    "Sample": {
        "model": "MODEL",
        "positive": "CONDITIONING",
        "negative": "CONDITIONING",
        "latent": "LATENT",
    },
    "Decode": {"model": "MODEL", "latent": "LATENT"},
    "GrowMask": {"mask": "MASK"},
    "InvertMask": {"mask": "MASK"},
    "InpaintComposite": {"original": "IMAGE", "generated": "IMAGE", "mask": "MASK"},
    "UpscaleWithModel": {"upscale_model": "UPSCALE_MODEL", "image": "IMAGE"},
    "Resize": {"image": "IMAGE"},
    "LatentUpscale": {"latent": "LATENT"},
    "SaveImage": {"image": "IMAGE"},
    "PreviewImage": {"image": "IMAGE"},
}


def check_links(graph: Graph) -> None:
    """Every link joins ports of the same type, and every input is fed exactly once."""
    for link in graph.links:
        src, dst = graph.nodes[link.src], graph.nodes[link.dst]
        assert OUTPUTS[src.type][link.src_port] == INPUTS[dst.type][link.dst_port], link
    for node_id, node in graph.nodes.items():
        fed = [k.dst_port for k in graph.links if k.dst == node_id]
        assert sorted(fed) == sorted(INPUTS.get(node.type, {})), node


def feeds(graph: Graph, node_id: str) -> dict[str, tuple[str, str]]:
    return {port: (k.src, k.src_port) for port, k in graph.inputs_of(node_id).items()}


def exposed(graph: Graph) -> dict[str, tuple[str, str]]:
    return {e.label: (e.node, e.param) for e in graph.exposed}


def canonical(graph: Graph, details: bool = True) -> tuple[list[str], list[str]]:
    """The graph with node ids replaced by what the nodes are and what feeds them."""

    def signature(node_id: str) -> str:
        node = graph.nodes[node_id]
        sources = sorted(
            (port, k.src_port, signature(k.src)) for port, k in graph.inputs_of(node_id).items()
        )
        if not details:
            return repr((node.type, sources))
        return repr((node.type, node.title, json.dumps(node.params, sort_keys=True), sources))

    nodes = sorted(signature(n) for n in graph.nodes)
    shown = sorted(repr((signature(e.node), e.param, e.label)) for e in graph.exposed)
    return nodes, shown


# --- import -----------------------------------------------------------------------------------


def test_txt2img_nodes_params_and_links() -> None:
    graph = import_comfyui(TXT2IMG)
    assert {n: graph.nodes[n].type for n in graph.nodes} == {
        "c3": "Sample",
        "c4": "LoadCheckpoint",
        "c5": "EmptyLatent",
        "c6": "Prompt",
        "c7": "Prompt",
        "c8": "Decode",
        "c9": "SaveImage",
    }
    sample = graph.nodes["c3"].params
    assert sample["sampler"] == "DPM++ 2M Karras"
    assert (sample["seed"], sample["steps"], sample["cfg_scale"], sample["denoise"]) == (
        156680208700286,
        25,
        6.5,
        1.0,
    )
    assert graph.nodes["c4"].params["path"] == "v1-5-pruned-emaonly.safetensors"
    assert {k: graph.nodes["c5"].params[k] for k in ("width", "height", "batch_size")} == {
        "width": 768,
        "height": 512,
        "batch_size": 2,
    }
    assert graph.nodes["c6"].params["text"] == "a lighthouse at dusk"
    assert graph.nodes["c9"].params["prefix"] == "ComfyUI"
    # CLIP (output 1), VAE (output 2) and MODEL (output 0) all come from the one checkpoint.
    assert feeds(graph, "c3") == {
        "model": ("c4", "model"),
        "positive": ("c6", "conditioning"),
        "negative": ("c7", "conditioning"),
        "latent": ("c5", "latent"),
    }
    assert feeds(graph, "c6") == {"model": ("c4", "model")}
    assert feeds(graph, "c8") == {"model": ("c4", "model"), "latent": ("c3", "latent")}
    assert feeds(graph, "c9") == {"image": ("c8", "image")}
    check_links(graph)


def test_txt2img_exposes_the_usual_settings() -> None:
    graph = import_comfyui(json.dumps(TXT2IMG))
    assert exposed(graph) == {
        "Prompt": ("c6", "text"),
        "Negative prompt": ("c7", "text"),
        "Model": ("c4", "path"),
        "Sampler": ("c3", "sampler"),
        "Steps": ("c3", "steps"),
        "CFG scale": ("c3", "cfg_scale"),
        "Seed": ("c3", "seed"),
        "Width": ("c5", "width"),
        "Height": ("c5", "height"),
        "Batch count": ("c5", "batch_size"),
    }
    # A title the user gave is kept; ComfyUI's default ones are not.
    assert graph.nodes["c6"].title == "Positive"
    assert graph.nodes["c7"].title == "Negative prompt"
    assert graph.nodes["c3"].title == ""


def test_layout_runs_left_to_right_without_overlaps() -> None:
    graph = import_comfyui(TXT2IMG)
    positions = {n: graph.nodes[n].position for n in graph.nodes}
    assert len(set(positions.values())) == len(positions)
    for link in graph.links:
        assert positions[link.src][0] < positions[link.dst][0]
    assert positions["c4"] == (0.0, 0.0)
    assert positions["c9"][0] == 4 * 260.0
    assert all(x % 260 == 0 and y % 160 == 0 for x, y in positions.values())


def test_img2img() -> None:
    graph = import_comfyui(IMG2IMG)
    assert graph.nodes["c10"].type == "LoadImage"
    assert graph.nodes["c10"].params["path"] == "photo.png"
    assert graph.nodes["c12"].type == "EncodeImage"
    assert feeds(graph, "c12") == {"model": ("c4", "model"), "image": ("c10", "image")}
    assert feeds(graph, "c3")["latent"] == ("c12", "latent")
    assert graph.nodes["c3"].params["denoise"] == 0.6
    assert graph.nodes["c3"].params["sampler"] == "Euler a"
    shown = exposed(graph)
    assert shown["Strength"] == ("c3", "denoise")
    assert shown["Image"] == ("c10", "path")
    assert "Width" not in shown
    check_links(graph)


def test_inpaint_splits_vae_encode_for_inpaint() -> None:
    graph = import_comfyui(INPAINT)
    types = {n: graph.nodes[n].type for n in ("c11_encode", "c11_grow", "c11")}
    assert types == {"c11_encode": "EncodeImage", "c11_grow": "GrowMask", "c11": "SetLatentMask"}
    assert graph.nodes["c11_grow"].params["pixels"] == 6
    assert feeds(graph, "c11_encode") == {"model": ("c4", "model"), "image": ("c10", "image")}
    assert feeds(graph, "c11_grow") == {"mask": ("c10", "mask")}
    assert feeds(graph, "c11") == {"latent": ("c11_encode", "latent"), "mask": ("c11_grow", "mask")}
    assert feeds(graph, "c3")["latent"] == ("c11", "latent")
    assert exposed(graph)["Mask grow"] == ("c11_grow", "pixels")
    check_links(graph)


def test_upscale_and_resize_methods() -> None:
    graph = import_comfyui(UPSCALE)
    assert graph.nodes["c2"].type == "LoadUpscaleModel"
    assert graph.nodes["c2"].params["path"] == "4x-UltraSharp.pth"
    assert graph.nodes["c3"].type == "UpscaleWithModel"
    assert feeds(graph, "c3") == {
        "upscale_model": ("c2", "upscale_model"),
        "image": ("c1", "image"),
    }
    resize = graph.nodes["c4"].params
    assert graph.nodes["c4"].type == "Resize"
    assert (resize["width"], resize["height"], resize["method"]) == (2048, 1536, "nearest")
    by = graph.nodes["c5"].params
    assert (by["scale"], by["width"], by["height"], by["method"]) == (0.5, 0, 0, "lanczos")
    # ComfyUI's subfolder in the prefix has no place in Studio's file names.
    assert graph.nodes["c6"].params["prefix"] == "scaled"
    assert exposed(graph) == {"Image": ("c1", "path"), "Upscaler": ("c2", "path")}
    check_links(graph)


def test_hires_fix_exposes_the_first_pass() -> None:
    graph = import_comfyui(HIRES)
    assert graph.nodes["c10"].type == "LatentUpscale"
    assert graph.nodes["c10"].params["scale"] == 1.5
    assert graph.nodes["c10"].params["method"] == "bilinear"  # bislerp's nearest match
    assert feeds(graph, "c11")["latent"] == ("c10", "latent")
    assert exposed(graph)["Seed"] == ("c3", "seed")
    assert exposed(graph)["Width"] == ("c5", "width")
    check_links(graph)


def test_advanced_sampler_start_step_becomes_strength() -> None:
    workflow = copy.deepcopy(IMG2IMG)
    workflow["3"] = {
        "class_type": "KSamplerAdvanced",
        "inputs": {
            "add_noise": "enable",
            "noise_seed": 42,
            "steps": 20,
            "cfg": 7,
            "sampler_name": "euler",
            "scheduler": "normal",
            "start_at_step": 5,
            "end_at_step": 10000,
            "return_with_leftover_noise": "disable",
            **{k: IMG2IMG["3"]["inputs"][k] for k in ("model", "positive", "negative")},
            "latent_image": ["12", 0],
        },
    }
    sample = import_comfyui(workflow).nodes["c3"].params
    assert (sample["seed"], sample["denoise"], sample["cfg_scale"]) == (42, 0.75, 7.0)
    workflow["3"]["inputs"]["end_at_step"] = 10
    with pytest.raises(WorkflowError, match=r"KSamplerAdvanced \(node 3\) stops at step 10 of 20"):
        import_comfyui(workflow)


def test_model_patches_become_sampler_settings() -> None:
    workflow = copy.deepcopy(TXT2IMG)
    workflow["20"] = {"class_type": "RescaleCFG", "inputs": {"model": ["4", 0], "multiplier": 0.7}}
    workflow["21"] = {
        "class_type": "PerturbedAttentionGuidance",
        "inputs": {"model": ["20", 0], "scale": 3},
    }
    workflow["3"]["inputs"]["model"] = ["21", 0]
    graph = import_comfyui(workflow)
    assert "c20" not in graph.nodes and "c21" not in graph.nodes
    assert feeds(graph, "c3")["model"] == ("c4", "model")
    assert graph.nodes["c3"].params["guidance_rescale"] == 0.7
    assert graph.nodes["c3"].params["pag_scale"] == 3.0


def test_primitive_values_are_read_through() -> None:
    workflow = copy.deepcopy(TXT2IMG)
    workflow["30"] = {"class_type": "PrimitiveInt", "inputs": {"value": 1234}}
    workflow["3"]["inputs"]["seed"] = ["30", 0]
    graph = import_comfyui(workflow)
    assert graph.nodes["c3"].params["seed"] == 1234
    assert "c30" not in graph.nodes


def test_unsupported_nodes_are_all_named_in_one_sentence() -> None:
    workflow = copy.deepcopy(TXT2IMG)
    workflow["12"] = {"class_type": "ControlNetApply", "inputs": {"conditioning": ["6", 0]}}
    workflow["10"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "x"}}
    with pytest.raises(WorkflowError) as error:
        import_comfyui(workflow)
    assert str(error.value) == (
        "This ComfyUI workflow uses nodes Studio does not have: "
        "ControlNetLoader (node 10), ControlNetApply (node 12)."
    )


def test_settings_studio_cannot_follow_are_reported() -> None:
    workflow = copy.deepcopy(TXT2IMG)
    workflow["3"]["inputs"]["steps"] = ["4", 0]  # a number taken from a node with no value
    workflow["8"]["inputs"]["samples"] = ["99", 0]
    with pytest.raises(WorkflowError) as error:
        import_comfyui(workflow)
    message = str(error.value)
    assert message.startswith("Studio cannot import this ComfyUI workflow: ")
    assert "the steps of KSampler (node 3) comes from node 4, which Studio cannot read" in message
    assert "the samples of VAEDecode (node 8) links to node 99, which is not in the workflow" in (
        message
    )

    workflow = copy.deepcopy(UPSCALE)
    workflow["4"]["inputs"].update(height=0, crop="center")
    with pytest.raises(
        WorkflowError, match="keeps the aspect ratio.*ImageScale \\(node 4\\) crops"
    ):
        import_comfyui(workflow)


def test_ui_format_is_refused_with_directions() -> None:
    ui = {
        "last_node_id": 9,
        "nodes": [{"id": 3, "type": "KSampler", "widgets_values": [1, "fixed", 20]}],
        "links": [[1, 4, 0, 3, 0, "MODEL"]],
        "version": 0.4,
    }
    with pytest.raises(WorkflowError, match=r"editor's format.*Export \(API\)"):
        import_comfyui(ui)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a ComfyUI workflow"),
        ({}, "has no nodes"),
        ({"3": {"inputs": {}}}, "Node 3 .* not an API-format workflow"),
    ],
)
def test_malformed_workflows(data: Any, message: str) -> None:
    with pytest.raises(WorkflowError, match=message):
        import_comfyui(data)


def test_prompt_request_body_is_accepted() -> None:
    graph = import_comfyui({"prompt": TXT2IMG, "client_id": "abc"})
    assert graph.nodes["c3"].type == "Sample"


# --- PNG --------------------------------------------------------------------------------------


def _png(path: Path, **texts: str) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, text in texts.items():
        info.add_text(key, text)
    Image.new("RGB", (8, 8), "gray").save(path, pnginfo=info)
    return path


def test_png_import(tmp_path: Path) -> None:
    path = _png(tmp_path / "ComfyUI_00001_.png", prompt=json.dumps(INPAINT), workflow="{}")
    graph = import_comfyui_png(path)
    assert graph.name == "ComfyUI_00001_"
    assert graph.nodes["c11"].type == "SetLatentMask"
    assert canonical(graph) == canonical(import_comfyui(INPAINT))


def test_png_without_workflow(tmp_path: Path) -> None:
    path = _png(tmp_path / "plain.png", parameters="a cat\nSteps: 20")
    with pytest.raises(WorkflowError, match="plain.png holds no ComfyUI workflow"):
        import_comfyui_png(path)
    with pytest.raises(WorkflowError, match="missing.png was not found"):
        import_comfyui_png(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(WorkflowError, match="notes.png is not an image"):
        import_comfyui_png(tmp_path / "notes.png")


# --- export -----------------------------------------------------------------------------------


def test_export_txt2img_matches_comfyui() -> None:
    exported = export_comfyui(import_comfyui(TXT2IMG))
    assert list(exported) == ["3", "4", "5", "6", "7", "8", "9"]
    for cid, node in TXT2IMG.items():
        assert exported[cid]["class_type"] == node["class_type"]
        assert exported[cid]["inputs"] == node["inputs"], cid
    assert exported["6"]["_meta"] == {"title": "Positive"}


def _handmade() -> Graph:
    graph = Graph(name="handmade")
    graph.add(Node("model", "LoadCheckpoint", {"path": "/home/me/models/dream.safetensors"}))
    graph.add(Node("image", "LoadImage", {"path": "C:\\pictures\\cat.png"}))
    graph.add(Node("pos", "Prompt", {"text": "a cat"}))
    graph.add(Node("neg", "Prompt", {"text": ""}))
    graph.add(Node("grow", "GrowMask", {"pixels": 4}))
    graph.add(Node("invert", "InvertMask", {}))
    graph.add(Node("encode", "EncodeImage", {}))
    graph.add(Node("setmask", "SetLatentMask", {}))
    sample = {"seed": 7, "steps": 30, "sampler": "DPM++ SDE Karras", "cfg_scale": 5.0}
    graph.add(Node("sample", "Sample", {**sample, "denoise": 0.8, "guidance_rescale": 0.5}))
    graph.add(Node("up", "LatentUpscale", {"width": 1024, "height": 768, "method": "bicubic"}))
    graph.add(Node("decode", "Decode", {}))
    graph.add(Node("composite", "InpaintComposite", {"color_match": False}))
    graph.add(Node("resize", "Resize", {"scale": 1.5, "method": "nearest"}))
    graph.add(Node("preview", "PreviewImage", {}))
    for src, src_port, dst, dst_port in (
        ("model", "model", "pos", "model"),
        ("model", "model", "neg", "model"),
        ("image", "mask", "grow", "mask"),
        ("grow", "mask", "invert", "mask"),
        ("model", "model", "encode", "model"),
        ("image", "image", "encode", "image"),
        ("encode", "latent", "setmask", "latent"),
        ("invert", "mask", "setmask", "mask"),
        ("model", "model", "sample", "model"),
        ("pos", "conditioning", "sample", "positive"),
        ("neg", "conditioning", "sample", "negative"),
        ("setmask", "latent", "sample", "latent"),
        ("sample", "latent", "up", "latent"),
        ("model", "model", "decode", "model"),
        ("up", "latent", "decode", "latent"),
        ("image", "image", "composite", "original"),
        ("decode", "image", "composite", "generated"),
        ("invert", "mask", "composite", "mask"),
        ("composite", "image", "resize", "image"),
        ("resize", "image", "preview", "image"),
    ):
        graph.connect(src, src_port, dst, dst_port)
    return graph


def test_export_maps_every_node_and_output_index() -> None:
    graph = _handmade()
    exported = export_comfyui(graph)
    by_type = {node["class_type"]: (cid, node["inputs"]) for cid, node in exported.items()}
    assert sorted(exported, key=int) == [str(i) for i in range(1, 16)]
    ckpt, ckpt_inputs = by_type["CheckpointLoaderSimple"]
    assert ckpt_inputs == {"ckpt_name": "dream.safetensors"}  # ComfyUI lists bare file names
    load, load_inputs = by_type["LoadImage"]
    assert load_inputs == {"image": "cat.png"}
    sampler = by_type["KSampler"][1]
    assert (sampler["sampler_name"], sampler["scheduler"]) == ("dpmpp_sde", "karras")
    assert (sampler["seed"], sampler["steps"], sampler["cfg"], sampler["denoise"]) == (
        7,
        30,
        5.0,
        0.8,
    )
    rescale, rescale_inputs = by_type["RescaleCFG"]
    assert rescale_inputs == {"model": [ckpt, 0], "multiplier": 0.5}
    assert sampler["model"] == [rescale, 0]
    assert by_type["CLIPTextEncode"][1]["clip"] == [ckpt, 1]
    assert by_type["VAEEncode"][1] == {"pixels": [load, 0], "vae": [ckpt, 2]}
    assert by_type["VAEDecode"][1]["vae"] == [ckpt, 2]
    assert by_type["GrowMask"][1] == {"mask": [load, 1], "expand": 4, "tapered_corners": True}
    assert by_type["SetLatentNoiseMask"][1]["mask"] == [by_type["InvertMask"][0], 0]
    assert by_type["LatentUpscale"][1]["upscale_method"] == "bicubic"
    assert (by_type["LatentUpscale"][1]["width"], by_type["LatentUpscale"][1]["height"]) == (
        1024,
        768,
    )
    assert by_type["ImageScaleBy"][1]["upscale_method"] == "nearest-exact"
    assert by_type["ImageScaleBy"][1]["scale_by"] == 1.5
    composite = by_type["ImageCompositeMasked"][1]
    assert composite["destination"] == [load, 0]
    assert composite["source"] == [by_type["VAEDecode"][0], 0]


def test_export_refuses_nodes_without_equivalents() -> None:
    graph = Graph()
    graph.add(Node("canvas", "CanvasImage", {"slot": "image"}))
    graph.add(Node("mask", "CanvasMask", {"slot": "mask"}))
    graph.add(Node("feather", "FeatherMask", {"pixels": 8}))
    graph.add(Node("preview", "PreviewImage", {}))
    graph.connect("canvas", "image", "preview", "image")
    with pytest.raises(WorkflowError) as error:
        export_comfyui(graph)
    message = str(error.value)
    assert message.startswith("This workflow uses nodes ComfyUI does not have: ")
    assert "Canvas image (node canvas)" in message and "Feather mask (node feather)" in message
    assert "Load image" in message


def test_export_refuses_settings_without_equivalents() -> None:
    graph = import_comfyui(TXT2IMG)
    graph.set_param("c3", "cfg_cutoff", 0.5)
    graph.disconnect("c8", "latent")
    with pytest.raises(WorkflowError) as error:
        export_comfyui(graph)
    assert "the CFG cut-off of Sample (node c3) has no ComfyUI equivalent" in str(error.value)
    assert "Decode (node c8) has nothing connected to its latent input" in str(error.value)


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("workflow", [TXT2IMG, IMG2IMG, INPAINT, UPSCALE, HIRES])
def test_round_trip_of_imported_workflows(workflow: dict[str, Any]) -> None:
    graph = import_comfyui(workflow)
    again = import_comfyui(export_comfyui(graph))
    assert canonical(again) == canonical(graph)
    # Exporting again gives the same ComfyUI workflow.
    assert export_comfyui(again) == export_comfyui(import_comfyui(export_comfyui(again)))


def test_round_trip_keeps_comfyui_ids_and_layout() -> None:
    graph = import_comfyui(TXT2IMG)
    again = import_comfyui(export_comfyui(graph))
    assert {n: (v.type, v.params, v.position, v.title) for n, v in again.nodes.items()} == {
        n: (v.type, v.params, v.position, v.title) for n, v in graph.nodes.items()
    }
    assert set(again.links) == set(graph.links)
    assert again.exposed == graph.exposed


def test_round_trip_of_a_studio_graph() -> None:
    graph = _handmade()
    # Folders are not part of what ComfyUI stores; everything else survives.
    graph.set_param("model", "path", "dream.safetensors")
    graph.set_param("image", "path", "cat.png")
    again = import_comfyui(export_comfyui(graph))
    assert canonical(again, details=False)[0] == canonical(graph, details=False)[0]
    for node in graph.nodes.values():
        matches = [
            n
            for n in again.nodes.values()
            if n.type == node.type and node.params.items() <= n.params.items()
        ]
        assert matches, node
    # The imported graph is a fixed point of the round trip.
    assert canonical(import_comfyui(export_comfyui(again))) == canonical(again)


def test_imported_graphs_pass_validation() -> None:
    validate = pytest.importorskip("studio.graph.validate")
    registry = pytest.importorskip("studio.nodes.registry")
    specs = registry.specs()
    for workflow in (TXT2IMG, IMG2IMG, INPAINT, UPSCALE, HIRES):
        assert validate.validate(import_comfyui(workflow), specs) == []
    assert validate.validate(import_comfyui(export_comfyui(_handmade())), specs) == []
