"""The default workflows run through the executor on tiny models: caching, files, inpainting."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.engine.checkpoint import ModelCache
from studio.engine.progress import CancelToken
from studio.errors import Cancelled
from studio.formats.metadata import read_metadata
from studio.nodes.context import RunContext
from studio.nodes.defaults import default_workflow, set_params


@pytest.fixture(scope="module")
def models():
    return ModelCache()


@pytest.fixture
def executor():
    from studio.runtime.executor import Executor

    return Executor()


def run(executor, graph, cpu, models, tmp_path, inputs=None, cancel=None):
    from studio.graph.serialize import to_dict

    ctx = RunContext(
        models=models,
        device=cpu,
        cancel=cancel or CancelToken(),
        inputs=inputs or {},
        output_dir=tmp_path,
        workflow=to_dict(graph),
    )
    events = []
    executor.run(graph, ctx, events.append, "job")
    return ctx, events


def tiny_graph(mode, tiny, **values):
    base = {
        "model.path": str(tiny.single_file),
        "model.config": str(tiny.config_folder),
        "positive.text": "a red circle",
        "negative.text": "blurry",
        "sample.steps": 3,
        "sample.seed": 11,
    }
    if mode in ("txt2img", "hires-fix"):
        base.update({"latent.width": 64, "latent.height": 64})
    return set_params(default_workflow(mode), {**base, **values})


def test_reruns_only_what_changed(executor, tiny_sd1, cpu, models, tmp_path):
    graph = tiny_graph("txt2img", tiny_sd1)
    run(executor, graph, cpu, models, tmp_path)
    first = dict(executor.runs)
    assert first == {
        "LoadCheckpoint": 1,
        "Prompt": 2,
        "Region": 1,
        "EmptyLatent": 1,
        "Sample": 1,
        "Decode": 1,
        "ScaleToRegion": 1,
        "SaveImage": 1,
    }

    def delta(graph):
        before = dict(executor.runs)
        run(executor, graph, cpu, models, tmp_path)
        return {k: v - before.get(k, 0) for k, v in executor.runs.items() if v - before.get(k, 0)}

    assert delta(graph) == {"SaveImage": 1}  # nothing changed: nothing recomputed
    graph.set_param("sample", "seed", 12)
    assert delta(graph) == {"Sample": 1, "Decode": 1, "ScaleToRegion": 1, "SaveImage": 1}
    graph.set_param("positive", "text", "a blue square")
    assert delta(graph) == {
        "Prompt": 1,
        "Sample": 1,
        "Decode": 1,
        "ScaleToRegion": 1,
        "SaveImage": 1,
    }
    assert models.loads == 1


def test_hires_fix_upscale_change_reruns_only_the_second_pass(
    executor, tiny_sd1, cpu, models, tmp_path
):
    graph = tiny_graph("hires-fix", tiny_sd1, **{"refine.steps": 2, "resize.scale": 1.5})
    run(executor, graph, cpu, models, tmp_path)
    before = dict(executor.runs)
    graph.set_param("resize", "scale", 2.0)
    ctx, _ = run(executor, graph, cpu, models, tmp_path)
    changed = {k: v - before.get(k, 0) for k, v in executor.runs.items() if v - before.get(k, 0)}
    assert changed == {"Resize": 1, "EncodeImage": 1, "Sample": 1, "Decode": 1, "SaveImage": 1}
    assert ctx.results[0][0].size == (128, 128)


def test_saved_png_carries_parameters_and_the_workflow(executor, tiny_sd1, cpu, models, tmp_path):
    from studio.graph.serialize import from_dict

    graph = tiny_graph("txt2img", tiny_sd1, **{"latent.batch_size": 2})
    ctx, events = run(executor, graph, cpu, models, tmp_path)
    paths = [path for _, _, path in ctx.results]
    assert len(paths) == 2 and all(p.exists() for p in paths)
    meta = read_metadata(paths[1])
    assert meta.params.seed == 12 and meta.params.prompt == "a red circle"
    assert meta.params.negative_prompt == "blurry" and meta.params.steps == 3
    restored = from_dict(meta.workflow)
    assert restored.nodes["sample"].params["seed"] == 11


def test_inpaint_workflow_keeps_pixels_outside_the_mask(executor, tiny_sd1, cpu, models, tmp_path):
    photo = Image.new("RGB", (160, 120), (40, 90, 160))
    ImageDraw.Draw(photo).ellipse((10, 10, 70, 70), fill=(220, 40, 40))
    mask = Image.new("L", photo.size, 0)
    ImageDraw.Draw(mask).rectangle((100, 40, 130, 80), fill=255)
    for masked_only in (False, True):
        graph = tiny_graph(
            "inpaint", tiny_sd1, **{"feather.pixels": 4, "crop.enabled": masked_only}
        )
        ctx, _ = run(executor, graph, cpu, models, tmp_path, {"image": photo, "mask": mask})
        out = np.asarray(ctx.results[0][0])
        before = np.asarray(photo)
        keep = np.ones(before.shape[:2], bool)
        keep[40 - 5 : 80 + 6, 100 - 5 : 130 + 6] = False
        assert out.shape == before.shape
        assert np.array_equal(out[keep], before[keep])
        assert (out[45:75, 105:125] != before[45:75, 105:125]).any()


def test_cancel_mid_sample_then_run_again(executor, tiny_sd1, cpu, models, tmp_path):
    from studio.runtime.events import Progress

    graph = tiny_graph("txt2img", tiny_sd1, **{"sample.steps": 30})
    token = CancelToken()
    seen = []

    def progress_watch(event):
        if isinstance(event, Progress):
            seen.append(event.step)
            if event.step == 2:
                token.cancel()

    from studio.graph.serialize import to_dict

    ctx = RunContext(
        models=models, device=cpu, cancel=token, output_dir=tmp_path, workflow=to_dict(graph)
    )
    with pytest.raises(Cancelled):
        executor.run(graph, ctx, progress_watch, "job")
    assert seen == [1, 2]
    graph.set_param("sample", "steps", 3)
    ctx, _ = run(executor, graph, cpu, models, tmp_path)
    assert ctx.results[0][2].exists()


def test_an_image_file_edited_on_disk_is_read_again(executor, tiny_sd1, cpu, models, tmp_path):
    from studio.graph.document import Node

    source = tmp_path / "in.png"
    Image.new("RGB", (64, 64), (200, 0, 0)).save(source)
    graph = tiny_graph("img2img", tiny_sd1, **{"sample.steps": 2})
    graph.remove("image")
    graph.add(Node("image", "LoadImage", {"path": str(source)}))
    graph.connect("image", "image", "encode", "image")
    run(executor, graph, cpu, models, tmp_path)
    assert executor.runs["LoadImage"] == 1
    run(executor, graph, cpu, models, tmp_path)
    assert executor.runs["LoadImage"] == 1  # unchanged file: cached
    import os

    Image.new("RGB", (64, 64), (0, 0, 200)).save(source)
    os.utime(source, ns=(1, 10**18))
    before = executor.runs["Sample"]
    run(executor, graph, cpu, models, tmp_path)
    assert executor.runs["LoadImage"] == 2 and executor.runs["Sample"] == before + 1
