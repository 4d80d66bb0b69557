"""LoRAs, embeddings, VAE, clip skip and A1111 prompt syntax, through the graph executor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.engine.checkpoint import ModelCache
from studio.engine.progress import CancelToken
from studio.nodes.context import RunContext
from studio.nodes.defaults import default_workflow, set_params
from studio.nodes.model_addons import LoraChoice, add_model_addons, parse_lora_flag
from studio.runtime.executor import Executor, NodeFailed
from tests.tiny_addons import (
    write_code_pickle,
    write_embedding,
    write_lora,
    write_vae,
)
from tests.tiny_models import CLIP_L_WIDTH, OPEN_CLIP_G_WIDTH, build_tiny_pipeline

LONG = ", ".join(["a small red circle in the top left on a blue background"] * 9)


@pytest.fixture(scope="module")
def models():
    return ModelCache()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A user's A1111 install: LoRAs, embeddings and a VAE in their usual subfolders."""
    root = tmp_path_factory.mktemp("webui")
    pipe = build_tiny_pipeline("sd1")
    write_lora(pipe, root / "models" / "Lora" / "kohya_style.safetensors", "kohya")
    write_lora(pipe, root / "models" / "Lora" / "sub" / "peft_style.safetensors", "diffusers")
    write_embedding(root / "embeddings" / "shinyword.pt", {"any": CLIP_L_WIDTH})
    write_vae("sd1", root / "models" / "VAE" / "other.vae.safetensors")
    return root


def run(graph, tiny, cpu, models, tmp_path, folder=None, executor=None):
    from studio.graph.serialize import to_dict

    ctx = RunContext(
        models=models,
        device=cpu,
        cancel=CancelToken(),
        output_dir=tmp_path,
        model_folders=[folder] if folder else [],
        workflow=to_dict(graph),
    )
    (executor or Executor()).run(graph, ctx, lambda event: None, "job")
    return np.asarray(ctx.results[0][0])


def graph_for(tiny, prompt="a red circle", **values):
    base = {
        "model.path": str(tiny.single_file),
        "model.config": str(tiny.config_folder),
        "positive.text": prompt,
        "negative.text": "blurry",
        "sample.steps": 2,
        "sample.seed": 5,
        "latent.width": 64,
        "latent.height": 64,
    }
    return set_params(default_workflow("txt2img"), {**base, **values})


def pixels(tiny, cpu, models, tmp_path, prompt="a red circle", folder=None, **addons):
    graph = add_model_addons(graph_for(tiny, prompt), **addons)
    return run(graph, tiny, cpu, models, tmp_path, folder)


# --------------------------------------------------------------------------- prompts


def test_a_prompt_without_syntax_encodes_exactly_as_diffusers_does(sd1_model):
    from studio.engine.latents import encode_prompt
    from studio.engine.prompts import encode_chunked
    from studio.formats.prompt_syntax import parse_prompt

    text = "a red circle on a blue background"
    ours = encode_prompt(sd1_model, text).embeds
    theirs, _ = sd1_model.base.encode_prompt(text, sd1_model.choice.device, 1, False)
    assert torch.equal(ours, theirs)
    # The chunked path (long and weighted prompts) computes the same for the same tokens.
    chunked, _ = encode_chunked(sd1_model.base, "sd1", parse_prompt(text), "cpu")
    assert torch.equal(chunked, theirs)


def test_a_full_chunk_is_cut_after_its_last_comma():
    """As A1111 does: a phrase that would straddle two 75-token chunks moves to the second
    whole when a comma lies within 20 tokens of the end; otherwise the cut is at 75."""
    from studio.engine.configs import clip_tokenizer
    from studio.engine.prompts import CHUNK, _chunks
    from studio.formats.prompt_syntax import parse_prompt

    tokenizer = clip_tokenizer()
    comma = tokenizer(",", add_special_tokens=False)["input_ids"][-1]

    def lengths(text):
        return [len(c) for c in _chunks(tokenizer, parse_prompt(text), {})]

    words = " ".join(["cat"] * 70)  # "cat" is one token
    assert lengths(words + ", " + " ".join(["dog"] * 10)) == [71, 10]
    chunks = _chunks(tokenizer, parse_prompt(words + ", " + " ".join(["dog"] * 10)), {})
    assert chunks[0][-1].id == comma
    # No comma near the end: cut at 75.
    assert lengths(" ".join(["cat"] * 80)) == [CHUNK, 5]
    # A comma too far back (30 tokens before the end) is not used.
    assert lengths(" ".join(["cat"] * 45) + ", " + " ".join(["dog"] * 40)) == [CHUNK, 11]


def test_weights_and_long_prompts_reach_the_image(tiny_sd1, cpu, models, tmp_path):
    plain = pixels(tiny_sd1, cpu, models, tmp_path, "cat")
    assert np.array_equal(pixels(tiny_sd1, cpu, models, tmp_path, "(cat:1.0)"), plain)
    assert not np.array_equal(pixels(tiny_sd1, cpu, models, tmp_path, "(cat:1.5)"), plain)
    # Past 75 tokens: the words at the end of a 150-token prompt change the picture.
    a = pixels(tiny_sd1, cpu, models, tmp_path, LONG + ", green")
    b = pixels(tiny_sd1, cpu, models, tmp_path, LONG + ", purple")
    assert not np.array_equal(a, b)


def test_sdxl_long_weighted_prompt_pads_the_negative(tiny_sdxl, cpu, models, tmp_path):
    from studio.engine.latents import encode_prompt

    image = pixels(tiny_sdxl, cpu, models, tmp_path, "(red:1.3) BREAK " + LONG)
    assert image.shape == (64, 64, 3)
    model = models.get(tiny_sdxl.single_file, cpu, config=tiny_sdxl.config_folder)
    conditioning = encode_prompt(model, "(red:1.3) BREAK " + LONG)
    assert conditioning.embeds.shape[1] == 77 * 3 and conditioning.pooled is not None


# --------------------------------------------------------------------------- LoRA


@pytest.mark.parametrize("name", ["kohya_style.safetensors", "sub/peft_style.safetensors"])
def test_lora_changes_pixels_and_leaves_the_cached_model_as_it_was(
    name, tiny_sd1, cpu, models, folder, tmp_path
):
    path = str(folder / "models" / "Lora" / name)
    before = pixels(tiny_sd1, cpu, models, tmp_path)
    loads = models.loads
    off = pixels(tiny_sd1, cpu, models, tmp_path, loras=[LoraChoice(path, 0.0)])
    assert np.array_equal(off, before)
    on = pixels(tiny_sd1, cpu, models, tmp_path, loras=[LoraChoice(path, 1.0)])
    assert not np.array_equal(on, before)
    unet_only = pixels(tiny_sd1, cpu, models, tmp_path, loras=[LoraChoice(path, 1.0, 0.0)])
    assert not np.array_equal(unet_only, on) and not np.array_equal(unet_only, before)
    # The next job without the LoRA (a fresh executor: nothing from its cache) is the same
    # image as before any LoRA, and the checkpoint was never read again.
    assert np.array_equal(pixels(tiny_sd1, cpu, models, tmp_path), before)
    assert models.loads == loads


def test_lora_by_name_and_in_the_prompt(tiny_sd1, cpu, models, folder, tmp_path):
    by_node = pixels(
        tiny_sd1, cpu, models, tmp_path, folder=folder, loras=[LoraChoice("kohya_style", 0.8)]
    )
    by_tag = pixels(
        tiny_sd1, cpu, models, tmp_path, "a red circle <lora:kohya_style:0.8>", folder=folder
    )
    assert np.array_equal(by_node, by_tag)
    with pytest.raises(NodeFailed, match='LoRA "nowhere"'):
        pixels(tiny_sd1, cpu, models, tmp_path, "<lora:nowhere:1> x", folder=folder)


def test_a_file_that_is_not_a_lora_is_one_sentence(tiny_sd1, cpu, models, tmp_path):
    from safetensors.torch import save_file

    bogus = tmp_path / "notalora.safetensors"
    save_file({"weight": torch.zeros(2)}, str(bogus))
    with pytest.raises(NodeFailed, match="notalora.safetensors is not a LoRA"):
        pixels(tiny_sd1, cpu, models, tmp_path, loras=[LoraChoice(str(bogus))])


def test_lora_flag_parsing():
    assert parse_lora_flag("a.safetensors") == LoraChoice("a.safetensors", 1.0)
    assert parse_lora_flag("a.safetensors:0.6") == LoraChoice("a.safetensors", 0.6)
    assert parse_lora_flag("C:\\l\\a.safetensors:0.6:0.2") == LoraChoice(
        "C:\\l\\a.safetensors", 0.6, 0.2
    )


# --------------------------------------------------------------------------- embeddings


def test_embedding_by_name_changes_pixels(tiny_sd1, cpu, models, folder, tmp_path):
    plain = pixels(tiny_sd1, cpu, models, tmp_path, "a shinyword circle")
    used = pixels(tiny_sd1, cpu, models, tmp_path, "a shinyword circle", folder=folder)
    assert not np.array_equal(plain, used)


def test_a_cached_prompt_sees_an_embedding_file_added_or_changed(tiny_sd1, cpu, models, tmp_path):
    """The Prompt node's cached encoding is reused only while the embedding files it depends on
    (and the folders that would hold one) stay as they were."""
    import os

    root = tmp_path / "webui"
    (root / "embeddings").mkdir(parents=True)
    executor = Executor()
    graph = graph_for(tiny_sd1, "a newword circle")

    def job():
        return run(graph, tiny_sd1, cpu, models, tmp_path, folder=root, executor=executor)

    plain = job()
    encoded = executor.runs["Prompt"]
    assert np.array_equal(job(), plain) and executor.runs["Prompt"] == encoded  # cached
    path = write_embedding(root / "embeddings" / "newword.pt", {"any": CLIP_L_WIDTH}, seed=1)
    with_word = job()  # the word is an embedding now
    assert executor.runs["Prompt"] > encoded and not np.array_equal(with_word, plain)
    encoded = executor.runs["Prompt"]
    assert np.array_equal(job(), with_word) and executor.runs["Prompt"] == encoded
    write_embedding(path, {"any": CLIP_L_WIDTH}, seed=2)  # the file replaced in place
    stamp = path.stat()
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000))
    assert not np.array_equal(job(), with_word)


def test_a_pickle_that_runs_code_never_runs(tiny_sd1, cpu, models, tmp_path):
    root = tmp_path / "comfy"
    (root / "models" / "embeddings").mkdir(parents=True)
    marker = tmp_path / "ran.txt"
    write_code_pickle(root / "models" / "embeddings" / "evil.pt", marker)
    with pytest.raises(NodeFailed, match="evil.pt was refused"):
        pixels(tiny_sd1, cpu, models, tmp_path, "an evil circle", folder=root)
    assert not marker.exists()


def test_sdxl_two_encoder_embedding(tiny_sdxl, cpu, models, tmp_path):
    from studio.engine.embeddings import load_embedding
    from studio.engine.latents import encode_prompt

    path = write_embedding(
        tmp_path / "xlword.safetensors", {"clip_l": CLIP_L_WIDTH, "clip_g": OPEN_CLIP_G_WIDTH}
    )
    model = models.get(tiny_sdxl.single_file, cpu, config=tiny_sdxl.config_folder)
    with_it = encode_prompt(model, "an xlword", {"xlword": load_embedding(path)})
    without = encode_prompt(model, "an xlword")
    assert with_it.embeds.shape == without.embeds.shape
    assert not torch.equal(with_it.embeds, without.embeds)
    assert not torch.equal(with_it.pooled, without.pooled)


# --------------------------------------------------------------------------- VAE, clip skip


def test_vae_and_clip_skip_change_pixels_for_that_job_only(tiny_sd1, cpu, models, folder, tmp_path):
    before = pixels(tiny_sd1, cpu, models, tmp_path)
    vae = pixels(tiny_sd1, cpu, models, tmp_path, folder=folder, vae="other.vae")
    skip = pixels(tiny_sd1, cpu, models, tmp_path, clip_skip=2)
    assert not np.array_equal(vae, before) and not np.array_equal(skip, before)
    assert np.array_equal(pixels(tiny_sd1, cpu, models, tmp_path), before)


def test_a_vae_that_does_not_fit_is_one_sentence(tiny_sd1, cpu, models, tmp_path):
    from safetensors.torch import load_file, save_file

    path = write_vae("sd1", tmp_path / "wide.vae.safetensors")
    state = load_file(str(path))
    state["encoder.conv_in.weight"] = torch.zeros(7, 3, 3, 3)  # another family's width
    save_file(state, str(path))
    with pytest.raises(NodeFailed, match="wide.vae.safetensors does not fit"):
        pixels(tiny_sd1, cpu, models, tmp_path, vae=str(path))


# --------------------------------------------------------------------------- other programs


def addon_graph(tiny, folder):
    lora = str(folder / "models" / "Lora" / "kohya_style.safetensors")
    return add_model_addons(
        graph_for(tiny),
        loras=[LoraChoice(lora, 0.7, 0.4)],
        vae=str(folder / "models" / "VAE" / "other.vae.safetensors"),
        clip_skip=2,
    )


def test_a1111_png_round_trip_with_a_lora(tiny_sd1, cpu, models, folder, tmp_path):
    from PIL import Image

    from studio.formats.a1111 import from_a1111
    from studio.nodes.model_addons import folder_finder, restore_addons

    original = run(addon_graph(tiny_sd1, folder), tiny_sd1, cpu, models, tmp_path, folder)
    (saved,) = [p for p in tmp_path.glob("*.png")]
    text = Image.open(saved).text["parameters"]
    assert "Clip skip: 2" in text and "VAE: other.vae.safetensors" in text
    assert "Lora hashes:" in text and "kohya_style:0.7:0.4" in text
    params = from_a1111(text)
    fresh = graph_for(tiny_sd1, params.prompt)
    assert restore_addons(fresh, params.prompt, params.extra, folder_finder([folder])) == []
    assert np.array_equal(run(fresh, tiny_sd1, cpu, models, tmp_path, folder), original)
    # Without the files: the user is told which are missing.
    elsewhere = graph_for(tiny_sd1)
    notes = restore_addons(
        elsewhere, "x <lora:gone:1>", params.extra, folder_finder([tmp_path / "none"])
    )
    assert any("'gone'" in n for n in notes) and any("'kohya_style'" in n for n in notes)
    assert any("other.vae.safetensors" in n for n in notes)
    assert not elsewhere.find("LoRA") and not elsewhere.find("LoadVAE")
    assert elsewhere.find("ClipSkip")


def test_comfyui_export_and_import_keep_the_add_ons(tiny_sd1, cpu, models, folder, tmp_path):
    from studio.nodes.comfyui import import_comfyui
    from studio.nodes.comfyui_export import export_comfyui

    graph = addon_graph(tiny_sd1, folder)
    original = run(graph, tiny_sd1, cpu, models, tmp_path, folder)
    exported = export_comfyui(graph)
    by_type = {n["class_type"]: (cid, n["inputs"]) for cid, n in exported.items()}
    assert {"LoraLoader", "CLIPSetLastLayer", "VAELoader"} <= set(by_type)
    ckpt = by_type["CheckpointLoaderSimple"][0]
    lora_id, lora = by_type["LoraLoader"]
    assert lora["model"] == [ckpt, 0] and lora["clip"] == [ckpt, 1]
    assert (lora["strength_model"], lora["strength_clip"]) == (0.7, 0.4)
    skip_id, skip = by_type["CLIPSetLastLayer"]
    assert skip["stop_at_clip_layer"] == -2
    assert by_type["CLIPTextEncode"][1]["clip"] == [skip_id, 0]
    assert by_type["KSampler"][1]["model"] == [lora_id, 0]
    assert by_type["VAEDecode"][1]["vae"] == [by_type["VAELoader"][0], 0]

    imported = import_comfyui(exported)
    assert {"LoRA", "ClipSkip", "LoadVAE"} <= {n.type for n in imported.nodes.values()}
    (loader,) = imported.find("LoadCheckpoint")
    loader.params.update(path=str(tiny_sd1.single_file), config=str(tiny_sd1.config_folder))
    assert np.array_equal(run(imported, tiny_sd1, cpu, models, tmp_path, folder), original)


def test_comfyui_lora_loader_model_only_and_a_split_clip_chain():
    from studio.errors import WorkflowError
    from studio.nodes.comfyui import import_comfyui

    workflow = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
        "2": {
            "class_type": "LoraLoaderModelOnly",
            "inputs": {"model": ["1", 0], "lora_name": "a.safetensors", "strength_model": 0.5},
        },
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "x"}},
        "4": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1},
        },
        "5": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["2", 0],
                "positive": ["3", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "seed": 1,
                "steps": 2,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "x"}},
    }
    graph = import_comfyui(workflow)
    (lora,) = graph.find("LoRA")
    assert lora.params["strength"] == 0.5 and lora.params["text_strength"] == 0.0
    split = {
        **workflow,
        "8": {
            "class_type": "CLIPSetLastLayer",
            "inputs": {"clip": ["1", 1], "stop_at_clip_layer": -2},
        },
        "2": {
            "class_type": "LoraLoader",
            "inputs": {
                "model": ["1", 0],
                "clip": ["8", 0],
                "lora_name": "a.safetensors",
                "strength_model": 1.0,
                "strength_clip": 1.0,
            },
        },
    }
    with pytest.raises(WorkflowError, match="CLIP from another node"):
        import_comfyui(split)


@pytest.mark.parametrize("family", ["sd2v", "sdxl"])
@pytest.mark.parametrize("layout", ["kohya", "diffusers"])
def test_sd2_and_sdxl_loras_load_apply_and_come_off(family, layout, request, cpu, models, tmp_path):
    from studio.engine.addons import LoraUse, applied, with_addons
    from studio.engine.latents import encode_prompt
    from studio.engine.loras import loaded_adapters

    tiny = request.getfixturevalue(f"tiny_{family}")
    model = models.get(tiny.single_file, cpu, config=tiny.config_folder)
    pipe = build_tiny_pipeline(tiny.family)  # the same modules, not yet wrapped by PEFT
    path = write_lora(pipe, tmp_path / f"{family}-{layout}.safetensors", layout)

    def base_weights():  # PEFT wraps layers (".base_layer") and adds its own ("lora_")
        named = model.base.unet.named_parameters()
        return {n.replace(".base_layer", ""): p for n, p in named if "lora_" not in n}

    unet_weights = {n: p.clone() for n, p in base_weights().items()}
    before = encode_prompt(model, "a red circle")
    patched = with_addons(model, loras=(LoraUse(path, 1.0, 1.0),))
    during = encode_prompt(patched, "a red circle")
    assert not torch.equal(during.embeds, before.embeds)
    with applied(patched):  # the UNet's LoRA layers are on inside, off outside
        assert loaded_adapters(model) >= 1
    after = encode_prompt(model, "a red circle")
    assert torch.equal(after.embeds, before.embeds)
    if before.pooled is not None:
        assert torch.equal(after.pooled, before.pooled)
    base = base_weights()
    assert base.keys() == unet_weights.keys()
    assert all(torch.equal(base[n], w) for n, w in unet_weights.items())


def test_several_loras_and_a_unet_only_one(tiny_sd1, cpu, models, tmp_path):
    from safetensors.torch import load_file, save_file

    from studio.engine.addons import LoraUse, with_addons
    from studio.engine.latents import encode_prompt

    model = models.get(tiny_sd1.single_file, cpu, config=tiny_sd1.config_folder)
    pipe = build_tiny_pipeline("sd1")
    full = write_lora(pipe, tmp_path / "full.safetensors", "diffusers", seed=7)
    unet_only = tmp_path / "unet_only.safetensors"
    state = load_file(str(full))
    save_file({k: v for k, v in state.items() if k.startswith("unet.")}, str(unet_only))
    text = write_lora(pipe, tmp_path / "text.safetensors", "kohya", seed=8)

    def encode(*uses):
        return encode_prompt(with_addons(model, loras=uses), "a red circle").embeds

    plain = encode()
    one = encode(LoraUse(text))
    assert not torch.equal(one, plain)
    # A LoRA with no text encoder weights, right after one with: the text encoder is plain.
    assert torch.equal(encode(LoraUse(unet_only)), plain)
    both = encode(LoraUse(text), LoraUse(full))
    assert not torch.equal(both, one) and not torch.equal(both, encode(LoraUse(full)))
    assert torch.equal(encode(), plain)


def test_a_lora_of_another_family_is_one_sentence_and_leaves_nothing(
    tiny_sd1, cpu, models, tmp_path
):
    from studio.engine.loras import loaded_adapters

    before = pixels(tiny_sd1, cpu, models, tmp_path)
    model = models.get(tiny_sd1.single_file, cpu, config=tiny_sd1.config_folder)
    xl = write_lora(build_tiny_pipeline("sdxl"), tmp_path / "xl_style.safetensors", "kohya")
    with pytest.raises(
        NodeFailed, match="xl_style.safetensors does not fit .*another model family"
    ):
        pixels(tiny_sd1, cpu, models, tmp_path, loras=[LoraChoice(str(xl))])
    present = {name for names in model.base.get_list_adapters().values() for name in names}
    assert len(present) == loaded_adapters(model)  # no half-loaded adapter stays behind
    assert np.array_equal(pixels(tiny_sd1, cpu, models, tmp_path), before)


def test_a_locon_lora_on_convolutions_changes_pixels(tiny_sd1, cpu, models, tmp_path):
    from safetensors.torch import save_file

    conv = build_tiny_pipeline("sd1").unet.down_blocks[0].resnets[0].conv1
    key = "lora_unet_down_blocks_0_resnets_0_conv1"
    generator = torch.Generator().manual_seed(3)
    path = tmp_path / "locon.safetensors"
    save_file(
        {
            f"{key}.lora_down.weight": torch.randn(2, conv.in_channels, 3, 3, generator=generator),
            f"{key}.lora_up.weight": torch.randn(conv.out_channels, 2, 1, 1, generator=generator),
            f"{key}.alpha": torch.tensor(2.0),
        },
        str(path),
    )
    before = pixels(tiny_sd1, cpu, models, tmp_path)
    assert not np.array_equal(
        pixels(tiny_sd1, cpu, models, tmp_path, loras=[LoraChoice(str(path))]), before
    )
