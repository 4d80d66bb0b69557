"""Hostile and careless input, as a tester tried it (issue 15): each case must end in one line on
stderr with no traceback, the right exit code, no file left behind or changed, and bounded memory.

Most cases run `studio.cli.main` in this process (a subprocess per case would import torch each
time); peak memory is the resident set sampled while the case runs, above what it was before.
A few cases run in a subprocess under `resource.setrlimit(RLIMIT_AS)`, where a process-level
ceiling is the point. Crafted files come from tests/hostile_files.py, built per test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from studio.cli import main
from tests import hostile_files as h

MB = 2**20
# What a refused case may use above the process's resident set before it: files are checked
# before anything they declare is allocated. Every bomb here would need a gigabyte or more.
CEILING = 200 * MB
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def heavy_imports():
    """Import what the cases would import anyway, so a first import is not counted as theirs."""
    import diffusers  # noqa: F401
    import spandrel  # noqa: F401
    import torch  # noqa: F401

    import studio.engine.catalog  # noqa: F401
    import studio.engine.checkpoint  # noqa: F401
    import studio.engine.upscale  # noqa: F401
    import studio.nodes.comfyui  # noqa: F401
    import studio.runtime.worker  # noqa: F401


class PeakMemory:
    """Highest resident set size while the block runs, above the size when it started."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss - self.base)
            self._stop.wait(0.002)

    def __enter__(self) -> PeakMemory:
        self.base = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss - self.base)


@dataclass
class Place:
    """A test's folders: inputs in `work`, the output folder, and the log folder."""

    root: Path
    work: Path
    out: Path
    logs: Path

    def file(self, name: str, data: bytes | str = b"") -> Path:
        path = self.work / name
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
        return path


@pytest.fixture
def place(tmp_path, monkeypatch) -> Place:
    work, out, logs = tmp_path / "work", tmp_path / "out", tmp_path / "logs"
    for folder in (work, out, logs):
        folder.mkdir()
    config = Path(os.environ["STUDIO_CONFIG_DIR"])
    (config / "settings.json").write_text(
        json.dumps({"output_folder": str(out), "device": "cpu"}), encoding="utf-8"
    )
    monkeypatch.setenv("STUDIO_LOG_DIR", str(logs))
    return Place(tmp_path, work, out, logs)


def snapshot(*folders: Path) -> dict[str, tuple[int, int]]:
    """Every file (hidden ones too) with its size and modification time."""
    found = {}
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                stat = path.stat()
                found[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return found


def run_case(capsys, place: Place, argv: list, code: int = 2, needle: str = "") -> str:
    """Run `studio ARGV` in this process and check everything a user would see; stderr back."""
    capsys.readouterr()
    before = snapshot(place.work, place.out)
    with PeakMemory() as memory:
        result = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert result == code, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and "\x1b" not in err
    assert lines[0].startswith(("error:", "studio")), err
    assert needle.lower() in lines[0].lower(), lines[0]
    assert not lines[0].rstrip().endswith(".."), lines[0]
    assert snapshot(place.work, place.out) == before, "a file was left behind or changed"
    assert memory.peak < CEILING, f"{memory.peak / MB:.0f} MB"
    return lines[0]


# -- the bad-input corpus ------------------------------------------------------------------------
# Each case: (id, a function of the Place giving argv, the words the message must contain).

Case = tuple[str, Callable[[Place], list], str]


def _model(maker: Callable[[Path], Path], name: str) -> Callable[[Place], Path]:
    return lambda p: maker(p.work / name)


BAD_MODELS: list[tuple[str, Callable[[Place], Path], str]] = [
    ("missing", lambda p: p.work / "missing.safetensors", "not found"),
    ("folder", lambda p: (p.work / "folder.ckpt").mkdir() or p.work / "folder.ckpt", "folder"),
    ("random-safetensors", _model(h.random_bytes, "r.safetensors"), "r.safetensors"),
    ("safetensors-huge-header", _model(h.safetensors_huge_header, "hh.safetensors"), "hh"),
    ("safetensors-lying", _model(h.safetensors_lying_offsets, "lo.safetensors"), "lo"),
    ("random-ckpt", _model(h.random_bytes, "r.ckpt"), "r.ckpt"),
    ("truncated-pth", _model(h.truncated_pth, "t.pth"), "t.pth"),
    ("legacy-keyerror", _model(h.legacy_keyerror_pth, "k.ckpt"), "k.ckpt"),
    ("legacy-huge-storage", _model(h.legacy_huge_storage_pth, "l.pth"), "l.pth"),
    ("deflate-bomb", _model(h.deflate_bomb_pth, "bomb.pth"), "compressed"),
    ("lying-zip", _model(h.lying_zip_pth, "lie.pth"), "lie.pth"),
    ("code-pickle", _model(h.code_pickle_pth, "code.pth"), "code.pth"),
    ("wrong-extension", lambda p: p.file("notes.txt", "hello"), "notes.txt"),
    ("empty", lambda p: p.file("empty.safetensors"), "empty.safetensors"),
]


@pytest.mark.parametrize(
    "make, needle", [c[1:] for c in BAD_MODELS], ids=[c[0] for c in BAD_MODELS]
)
def test_generate_with_a_bad_model(capsys, place, make, needle):
    model = make(place)
    run_case(capsys, place, ["generate", "x", "--model", model, "--steps", 1], needle=needle)


@pytest.mark.parametrize(
    "make, needle", [c[1:] for c in BAD_MODELS], ids=[c[0] for c in BAD_MODELS]
)
def test_upscale_with_a_bad_model(capsys, place, make, needle):
    model = make(place)
    image = h.png(place.work / "in.png", (16, 16))
    run_case(capsys, place, ["upscale", image, "--model", model], needle=needle)


def test_a_diffusers_folder_with_a_bomb_inside_is_refused(capsys, place):
    folder = place.work / "model"
    (folder / "text_encoder").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}", encoding="utf-8")
    h.deflate_bomb_pth(folder / "text_encoder" / "pytorch_model.bin")
    argv = ["generate", "x", "--model", folder, "--steps", 1]
    run_case(capsys, place, argv, needle="pytorch_model.bin holds compressed data")


def test_an_embedding_bomb_is_refused(place):
    from studio.engine.embeddings import read_tensors
    from studio.errors import ModelError

    path = h.deflate_bomb_pth(place.work / "style.pt")
    with PeakMemory() as memory, pytest.raises(ModelError, match="compressed"):
        read_tensors(path, "embedding")
    assert memory.peak < CEILING


def _init(maker) -> Callable[[Place], list]:
    return lambda p: ["--init", maker(p)]


GENERATE: list[Case] = [
    ("steps-zero", lambda p: ["--steps", 0], '"steps" must be at least 1'),
    ("steps-negative", lambda p: ["--steps", -5], "steps"),
    ("steps-not-a-number", lambda p: ["--steps", "abc"], "invalid int value"),
    ("size-too-large", lambda p: ["--size", "20000x20000"], "20000x20000"),
    ("size-too-small", lambda p: ["--size", "10x10"], "10x10"),
    ("size-garbage", lambda p: ["--size", "big"], "512x768"),
    ("seed-too-large", lambda p: ["--seed", 2**70], "18446744073709551615"),
    ("seed-negative", lambda p: ["--seed", -1], "seed"),
    ("batch-zero", lambda p: ["--batch", 0], "batch"),
    ("batch-huge", lambda p: ["--batch", 100000], "batch"),
    ("sampler-unknown", lambda p: ["--sampler", "Nope"], "sampler"),
    ("cfg-nan", lambda p: ["--cfg", "nan"], "cfg"),
    (
        "strength-above-one",
        lambda p: [*_init(lambda q: h.png(q.work / "i.png"))(p), "--strength", 2],
        "denoise",
    ),
    ("init-missing", _init(lambda p: p.work / "nothing.png"), "not found"),
    ("init-text-file", _init(lambda p: p.file("notes.png", "not an image")), "notes.png"),
    ("init-truncated", _init(lambda p: h.truncated_png(p.work / "half.png")), "half.png"),
    ("init-1x1", _init(lambda p: h.png(p.work / "dot.png", (1, 1))), "1x1"),
    (
        "init-bomb-header",
        _init(lambda p: h.png_claiming_size(p.work / "b.png", 60000, 60000)),
        "b.png",
    ),
    ("init-huge-text", _init(lambda p: h.png_huge_text(p.work / "t.png")), "t.png"),
    ("init-folder", _init(lambda p: p.work), "folder"),
    ("mask-without-init", lambda p: ["--mask", h.png(p.work / "m.png")], "--mask needs --init"),
    (
        "mask-wrong-size",
        lambda p: ["--init", h.png(p.work / "i.png"), "--mask", h.png(p.work / "m.png", (32, 32))],
        "32x32",
    ),
    (
        "mask-all-black",
        lambda p: ["--init", h.png(p.work / "i.png"), "--mask", h.png(p.work / "m.png", mode="L")],
        "all black",
    ),
    ("output-gif", lambda p: ["-o", p.out / "x.gif"], ".png, .jpg or .webp"),
    ("output-no-extension", lambda p: ["-o", p.out / "x"], "no extension"),
    ("device-unknown", lambda p: ["--device", "tpu9"], "tpu9"),
    ("precision-unknown", lambda p: ["--precision", "fp64"], "fp64"),
    (
        "batch-with-init",
        lambda p: [*_init(lambda q: h.png(q.work / "i.png"))(p), "--batch", 2],
        "--batch",
    ),
]


@pytest.mark.parametrize("make, needle", [c[1:] for c in GENERATE], ids=[c[0] for c in GENERATE])
def test_generate_bad_input(capsys, place, make, needle):
    run_case(capsys, place, ["generate", "a red circle", "--steps", 1, *make(place)], needle=needle)


def test_generate_refuses_a_size_over_the_memory_budget(capsys, place, monkeypatch):
    monkeypatch.setenv("STUDIO_MEMORY_LIMIT", "1G")
    argv = ["generate", "x", "--size", "8192x8192", "--steps", 1]
    line = run_case(capsys, place, argv, needle="1.0 GB")
    assert "8192x8192" in line and "even decoded in tiles" in line and "smaller size" in line


@pytest.mark.parametrize("tiling, refused", [("auto", False), ("off", True)])
def test_a_size_that_fits_only_in_tiles_is_refused_only_without_tiles(monkeypatch, tiling, refused):
    from studio.engine.budget import check_job
    from studio.errors import ParameterError
    from studio.nodes.defaults import default_workflow, set_params

    # In tiles: the picture as floats (0.2 GB) and one 512x512 tile's decode (1.5 GB).
    monkeypatch.setenv("STUDIO_MEMORY_LIMIT", "2G")
    graph = set_params(
        default_workflow("txt2img"),
        {"latent.width": 2048, "latent.height": 2048, "decode.tiling": tiling},
    )
    if refused:
        with pytest.raises(ParameterError, match="2048x2048 would need about 24.0 GB"):
            check_job(graph, {})
    else:
        check_job(graph, {})


def test_a_full_resolution_picture_over_the_memory_budget_is_refused(capsys, place, monkeypatch):
    """Without a generation region scaled to the model, the VAE sees the whole picture."""
    monkeypatch.setenv("STUDIO_MEMORY_LIMIT", "1G")
    document = {**STUDIO_DOC, "nodes": [{"id": "image", "type": "CanvasImage"}]}
    workflow = place.file("full.json", json.dumps(document))
    image = h.png(place.work / "big.png", (2048, 2048))
    line = run_case(capsys, place, ["run", workflow, "--image", image], needle="1.0 GB")
    assert "2048x2048" in line


UPSCALE: list[Case] = [
    ("image-missing", lambda p: [p.work / "none.png", "--scale", 2], "not found"),
    ("image-not-an-image", lambda p: [p.file("x.png", "text"), "--scale", 2], "x.png"),
    ("scale-zero", lambda p: [h.png(p.work / "i.png"), "--scale", 0], "positive"),
    ("scale-negative", lambda p: [h.png(p.work / "i.png"), "--scale", -2], "positive"),
    ("scale-nan", lambda p: [h.png(p.work / "i.png"), "--scale", "nan"], "positive"),
    ("scale-inf", lambda p: [h.png(p.work / "i.png"), "--scale", "inf"], "positive"),
    (
        "scale-1000",
        lambda p: [h.png(p.work / "i.png", (256, 256)), "--scale", 1000],
        "256000x256000",
    ),
    ("tile-tiny", lambda p: [h.png(p.work / "i.png"), "--tile", 4], "tile"),
    ("overlap-too-large", lambda p: [h.png(p.work / "i.png"), "--overlap", 1000], "overlap"),
    (
        "output-bmp",
        lambda p: [h.png(p.work / "i.png"), "--scale", 2, "-o", p.out / "x.bmp"],
        ".bmp",
    ),
    (
        "bomb-image",
        lambda p: [h.png_claiming_size(p.work / "b.png", 60000, 60000), "--scale", 2],
        "b.png",
    ),
    ("huge-text-image", lambda p: [h.png_huge_text(p.work / "t.png"), "--scale", 2], "t.png"),
    (
        "diffusion-checkpoint-as-upscaler",
        lambda p: [h.png(p.work / "i.png"), "--model", p.work],
        "not a file",
    ),
]


@pytest.mark.parametrize("make, needle", [c[1:] for c in UPSCALE], ids=[c[0] for c in UPSCALE])
def test_upscale_bad_input(capsys, place, make, needle):
    run_case(capsys, place, ["upscale", *make(place)], needle=needle)


def test_upscale_with_the_bundled_model_refuses_an_output_over_the_budget(
    capsys, place, monkeypatch
):
    monkeypatch.setenv("STUDIO_MEMORY_LIMIT", "64M")
    image = h.png(place.work / "i.png", (1024, 1024))
    run_case(capsys, place, ["upscale", image], needle="4096x4096")


def _workflow_file(text: str, name: str = "w.json") -> Callable[[Place], Path]:
    return lambda p: p.file(name, text)


STUDIO_DOC = {"format": "studio-workflow", "version": 1, "nodes": [], "links": []}

RUN: list[Case] = [
    ("missing", lambda p: [p.work / "none.json"], "not found"),
    ("folder", lambda p: [p.work], "folder"),
    ("not-json", lambda p: [_workflow_file("{nope")(p)], "not a readable workflow"),
    ("binary", lambda p: [h.random_bytes(p.work / "b.json")], "b.json"),
    ("a-list", lambda p: [_workflow_file("[1, 2]")(p)], "comfyui"),
    ("a-number", lambda p: [_workflow_file("3")(p)], "comfyui"),
    ("nested-200000", lambda p: [_workflow_file(h.nested_json(200_000))(p)], "nested too deeply"),
    ("nested-object-500", lambda p: [_workflow_file(h.nested_object(500))(p)], "nested too deeply"),
    (
        "comfy-nested-params",
        lambda p: [
            _workflow_file(
                json.dumps(
                    {"1": {"class_type": "KSampler", "inputs": json.loads(h.nested_object(300))}}
                )
            )(p)
        ],
        "nested too deeply",
    ),
    (
        "comfy-chain-5000",
        lambda p: [_workflow_file(json.dumps(h.comfy_chain(5000)))(p)],
        "5005 nodes",
    ),
    (
        "comfy-unknown-node",
        lambda p: [_workflow_file(json.dumps({"1": {"class_type": "Magic", "inputs": {}}}))(p)],
        "Magic",
    ),
    (
        "comfy-ui-format",
        lambda p: [_workflow_file(json.dumps({"nodes": [], "links": []}))(p)],
        "API",
    ),
    (
        "comfy-bad-link",
        lambda p: [
            _workflow_file(
                json.dumps(
                    {
                        "1": {
                            "class_type": "VAEDecode",
                            "inputs": {"samples": ["9", 0], "vae": ["8", 2]},
                        }
                    }
                )
            )(p)
        ],
        "node 9",
    ),
    (
        "studio-version-99",
        lambda p: [_workflow_file(json.dumps({**STUDIO_DOC, "version": 99}))(p)],
        "version",
    ),
    (
        "studio-nodes-not-a-list",
        lambda p: [_workflow_file(json.dumps({**STUDIO_DOC, "nodes": 5}))(p)],
        "nodes",
    ),
    (
        "studio-too-many-nodes",
        lambda p: [
            _workflow_file(
                json.dumps(
                    {
                        **STUDIO_DOC,
                        "nodes": [{"id": f"n{i}", "type": "Prompt"} for i in range(1500)],
                    }
                )
            )(p)
        ],
        "1500 nodes",
    ),
    ("studio-no-output", lambda p: [_workflow_file(json.dumps(STUDIO_DOC))(p)], "workflow"),
    ("png-huge-text", lambda p: [h.png_huge_text(p.work / "c.png", key="prompt")], "text chunk"),
    ("png-without-workflow", lambda p: [h.png(p.work / "plain.png")], "no ComfyUI workflow"),
    ("png-not-an-image", lambda p: [p.file("fake.png", "text")], "fake.png"),
    (
        "set-without-equals",
        lambda p: [ROOT / "resources/workflows/txt2img.json", "--set", "sample.steps"],
        "NODE.PARAM=VALUE",
    ),
    (
        "set-unknown-node",
        lambda p: [ROOT / "resources/workflows/txt2img.json", "--set", "nosuch.steps=3"],
        "nosuch",
    ),
    (
        "set-seed-too-large",
        lambda p: [ROOT / "resources/workflows/txt2img.json", "--set", f"sample.seed={2**70}"],
        "18446744073709551615",
    ),
    (
        "image-1x1",
        lambda p: [
            ROOT / "resources/workflows/img2img.json",
            "--image",
            h.png(p.work / "dot.png", (1, 1)),
        ],
        "1x1",
    ),
    (
        "image-huge-text",
        lambda p: [
            ROOT / "resources/workflows/img2img.json",
            "--image",
            h.png_huge_text(p.work / "t.png"),
        ],
        "t.png",
    ),
]


@pytest.mark.parametrize("make, needle", [c[1:] for c in RUN], ids=[c[0] for c in RUN])
def test_run_bad_input(capsys, place, make, needle):
    run_case(capsys, place, ["run", *make(place)], needle=needle)


def test_run_refuses_a_workflow_file_over_the_size_limit(capsys, place):
    path = place.work / "huge.json"
    with open(path, "wb") as stream:  # sparse: no disk or memory used
        stream.truncate(65 * MB)
    run_case(capsys, place, ["run", path], needle="64 MB")


INFO: list[Case] = [
    ("missing", lambda p: [p.work / "none.png"], "not found"),
    ("not-an-image", lambda p: [p.file("x.png", "text")], "x.png"),
    ("folder", lambda p: [p.work], "folder"),
    ("huge-text", lambda p: [h.png_huge_text(p.work / "t.png")], "text chunk"),
    ("empty-file", lambda p: [p.file("empty.png")], "empty.png"),
    (
        "studio-chunk-nested",
        lambda p: [h.png(p.work / "n.png", studio=h.nested_json(100_000))],
        "not valid JSON",
    ),
    ("comfy-chunk-broken", lambda p: [h.png(p.work / "c.png", prompt="{broken")], "not valid JSON"),
]


@pytest.mark.parametrize("make, needle", [c[1:] for c in INFO], ids=[c[0] for c in INFO])
def test_info_bad_input(capsys, place, make, needle):
    run_case(capsys, place, ["info", *make(place)], needle=needle)


def test_info_escapes_terminal_control_sequences(capsys, place):
    hostile = "a cat\x1b]0;pwned\x07\x1b[2J\rSteps: 5\x9b"
    image = h.png(place.work / "esc.png", parameters=f"{hostile}\nSteps: 20, Seed: 3")
    assert main(["info", str(image)]) == 0
    out, err = capsys.readouterr()
    assert not any(ch in out for ch in "\x1b\x07\r\x9b"), repr(out)
    assert "\\x1b]0;pwned" in out and "Steps: 20" in out and err == ""


MODELS: list[Case] = [
    ("missing-folder", lambda p: [p.work / "nowhere"], "nowhere"),
    ("file-not-folder", lambda p: [h.png(p.work / "i.png")], "i.png"),
]


@pytest.mark.parametrize("make, needle", [c[1:] for c in MODELS], ids=[c[0] for c in MODELS])
def test_models_bad_input(capsys, place, make, needle):
    run_case(capsys, place, ["models", *make(place)], needle=needle)


def test_models_lists_every_file_when_some_are_hostile(capsys, place):
    folder = place.work / "models"
    folder.mkdir()
    for maker, name in (
        (h.legacy_keyerror_pth, "keyerror.ckpt"),
        (h.deflate_bomb_pth, "bomb.pth"),
        (h.legacy_huge_storage_pth, "huge.pth"),
        (h.code_pickle_pth, "code.pth"),
        (h.random_bytes, "random.safetensors"),
        (h.truncated_pth, "truncated.pt"),
    ):
        maker(folder / name)
    (folder / "esc\x1b[31mred.safetensors").write_bytes(b"\0" * 8)
    before = snapshot(place.work, place.out)
    with PeakMemory() as memory:
        code = main(["models", str(folder)])
    out, err = capsys.readouterr()
    assert code == 0 and err == "" and memory.peak < CEILING, (err, memory.peak / MB)
    lines = out.strip().splitlines()
    assert len(lines) == 7 and all(line.startswith("unusable") for line in lines), out
    assert "\x1b" not in out and "\\x1b[31mred" in out
    assert snapshot(place.work, place.out) == before


ARGUMENTS: list[Case] = [
    ("unknown-command", lambda p: ["paint"], "invalid choice"),
    ("unknown-flag", lambda p: ["generate", "--wings"], "unrecognized arguments"),
    ("missing-value", lambda p: ["generate", "--steps"], "expected one argument"),
    ("upscale-without-image", lambda p: ["upscale"], "required"),
]


@pytest.mark.parametrize("make, needle", [c[1:] for c in ARGUMENTS], ids=[c[0] for c in ARGUMENTS])
def test_bad_arguments(capsys, place, make, needle):
    run_case(capsys, place, make(place), needle=needle)


# -- settings: a bad file is read field by field, with one warning per bad field ------------------

BAD_SETTINGS = [
    ("a-list", "[1, 2, 3]", "not a JSON object"),
    (
        "wrong-types",
        json.dumps({"model_folders": "x", "device": 5, "output_folder": 3}),
        "model_folders",
    ),
    ("not-json", "{", "unreadable"),
    ("nested", h.nested_json(100_000), "unreadable"),
    ("bad-choice", json.dumps({"device": "tpu", "precision": "fp64"}), "device"),
]


@pytest.mark.parametrize(
    "text, needle", [c[1:] for c in BAD_SETTINGS], ids=[c[0] for c in BAD_SETTINGS]
)
def test_a_bad_settings_file_does_not_stop_commands(capsys, place, text, needle):
    from studio import settings as settings_module

    settings_module._warned.clear()
    (Path(os.environ["STUDIO_CONFIG_DIR"]) / "settings.json").write_text(text, encoding="utf-8")
    image = h.png(place.work / "i.png", parameters="a cat\nSteps: 20, Seed: 3")
    assert main(["info", str(image)]) == 0
    assert main(["info", str(image)]) == 0
    out, err = capsys.readouterr()
    assert "a cat" in out and "Traceback" not in err
    warnings = [line for line in err.splitlines() if line.strip()]
    assert warnings and needle.lower() in err.lower(), err
    assert len(warnings) == len(set(warnings)), "a warning was repeated"


# -- temporary files ------------------------------------------------------------------------------


def test_stale_temporary_files_are_removed_at_start_up_and_fresh_ones_kept(capsys, place):
    stale = place.out / ".studio-3.png.0123abcd.tmp"
    fresh = place.out / ".studio-4.png.89abcdef.tmp"
    mine = place.out / ".notes.txt.0123abcd.tmp"  # not ours: Studio writes images and JSON
    for path in (stale, fresh, mine):
        path.write_bytes(b"")
    os.utime(stale, (1_000_000_000, 1_000_000_000))
    os.utime(mine, (1_000_000_000, 1_000_000_000))
    image = h.png(place.work / "i.png", parameters="a cat\nSteps: 20, Seed: 3")
    assert main(["info", str(image)]) == 0
    assert not stale.exists() and fresh.exists() and mine.exists()


def test_a_failed_save_leaves_no_temporary_file(place):
    from PIL import Image

    from studio.formats.files import save_image

    class Exploding:
        mode = "RGB"

        def save(self, *args, **kwargs):
            raise OSError(28, "No space left on device")

    with pytest.raises(Exception, match="(?i)no space left"):
        save_image(Exploding(), place.out / "x.png")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="not a valid file name"):
        save_image(Image.new("RGB", (4, 4)), place.out / "\0bad.png")
    assert list(place.out.rglob("*")) == []


@pytest.mark.parametrize("suffix, kind", [(".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP")])
def test_the_output_format_follows_the_extension(capsys, place, suffix, kind):
    from PIL import Image

    from studio.formats.metadata import read_metadata

    target = place.out / f"up{suffix}"
    code = main(
        ["upscale", str(h.png(place.work / "i.png", (8, 8))), "--scale", "2", "-o", str(target)]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    with Image.open(out.strip()) as image:
        assert image.format == kind and image.size == (16, 16)
    assert read_metadata(out.strip()).params.upscaler == "Lanczos"


def test_a_generated_image_is_saved_in_the_format_its_name_asks_for(capsys, place):
    """Through the Save node (the window's and `studio run`'s path too), not only the CLI."""
    from PIL import Image

    from studio.formats.metadata import read_metadata

    target = place.out / "shape.webp"
    argv = ["generate", "a red circle", "--steps", 2, "--seed", 5, "-o", target]
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    with Image.open(out.strip()) as image:
        assert image.format == "WEBP"
    params = read_metadata(out.strip()).params
    assert params.prompt == "a red circle" and params.seed == 5


# -- internal errors: one line naming the log file, the traceback in it ---------------------------


def test_an_internal_error_gives_one_line_and_the_log_file(capsys, place, monkeypatch):
    import studio.cli

    def broken(args):
        raise KeyError("oops")

    monkeypatch.setattr(studio.cli, "cmd_info", broken)
    code = main(["info", "x.png"])
    err = capsys.readouterr().err
    log_file = place.logs / "studio.log"
    assert code == 1 and len(err.strip().splitlines()) == 1 and str(log_file) in err
    assert "Traceback" in log_file.read_text(encoding="utf-8")


def test_third_party_warnings_go_to_the_log_not_the_terminal(capsys, place):
    import warnings

    import studio.cli

    def noisy(args):
        warnings.warn("`torch_dtype` is deprecated", FutureWarning, stacklevel=1)
        return 0

    original = studio.cli.cmd_info
    studio.cli.cmd_info = noisy
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            assert main(["info", "x.png"]) == 0
    finally:
        studio.cli.cmd_info = original
    assert capsys.readouterr().err == ""
    assert "torch_dtype" in (place.logs / "studio.log").read_text(encoding="utf-8")


# -- the model scanner -----------------------------------------------------------------------------

# A .safetensors header that lies about its data is only caught when the data is read: the
# scanner reads names and shapes (and may call it an embedding), so it is left out here.
SCANNED = [
    c
    for c in BAD_MODELS
    if c[0] not in ("missing", "wrong-extension", "folder", "safetensors-lying")
]


@pytest.mark.parametrize("make", [c[1] for c in SCANNED], ids=[c[0] for c in SCANNED])
def test_the_model_scanner_describes_hostile_files(place, make):
    from studio.engine.catalog import describe

    path = make(place)
    with PeakMemory() as memory:
        entry = describe(path)
    assert entry.kind == "unusable" and "\n" not in entry.label, entry
    assert memory.peak < CEILING


# -- a process-level ceiling: the file must be refused, not the address space exhausted -----------

_LIMITED = """
import resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from studio.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _run_limited(limit: int, argv: list, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _LIMITED, str(limit), *map(str, argv)],
        capture_output=True,
        text=True,
        env={**os.environ, "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1", **env},
        cwd=ROOT,
        timeout=300,
    )


@pytest.mark.parametrize(
    "argv, needle, limit",
    [
        # torch and spandrel reserve about 3.5 GB of address space; the bomb would add 3.75 GB.
        (
            lambda p: [
                "upscale",
                h.png(p.work / "i.png", (8, 8)),
                "--model",
                h.deflate_bomb_pth(p.work / "b.pth"),
            ],
            "compressed",
            5 * 2**30,
        ),
        # No torch on this path: a huge text chunk is refused well inside 1 GB.
        (lambda p: ["info", h.png_huge_text(p.work / "t.png", megabytes=512)], "text chunk", 2**30),
    ],
    ids=["deflate-bomb-upscaler", "huge-text-chunk-info"],
)
def test_under_an_address_space_limit(place, argv, needle, limit):
    args = argv(place)
    before = snapshot(place.work, place.out)
    result = _run_limited(
        limit,
        args,
        {"STUDIO_CONFIG_DIR": os.environ["STUDIO_CONFIG_DIR"], "STUDIO_LOG_DIR": str(place.logs)},
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert needle in lines[0] and "Traceback" not in result.stderr
    assert snapshot(place.work, place.out) == before


# -- the window's loaders: open, drop, restore, import, gui --workflow, settings -------------------


@pytest.fixture(scope="module")
def shared_window(qapp, tmp_path_factory):
    """One window for the loader cases (building one per case would cost seconds each)."""
    from studio.settings import Settings
    from studio.ui.main_window import MainWindow

    win = MainWindow(Settings(output_folder=str(tmp_path_factory.mktemp("out")), device="cpu"))
    yield win
    win.close()


@pytest.fixture
def window(shared_window, place):
    shared_window.message.clear()
    shared_window.message.setVisible(False)
    return shared_window


def _shown(window) -> str:
    # The banner (the window is not shown in these tests, so "not hidden" rather than visible).
    return window.message.text() if not window.message.isHidden() else ""


WINDOW_FILES: list[tuple[str, Callable[[Place], Path], str]] = [
    ("missing", lambda p: p.work / "none.png", "not found"),
    ("folder", lambda p: p.work, "folder"),
    ("text-file", lambda p: p.file("notes.png", "not an image"), "notes.png"),
    ("empty", lambda p: p.file("empty.png"), "empty.png"),
    ("truncated", lambda p: h.truncated_png(p.work / "half.png"), "half.png"),
    ("bomb-header", lambda p: h.png_claiming_size(p.work / "b.png", 60000, 60000), "b.png"),
    ("huge-text", lambda p: h.png_huge_text(p.work / "t.png"), "t.png"),
]


@pytest.mark.parametrize("loader", ["open_path", "drop_file"])
@pytest.mark.parametrize(
    "make, needle", [c[1:] for c in WINDOW_FILES], ids=[c[0] for c in WINDOW_FILES]
)
def test_the_window_opens_hostile_pictures_with_one_sentence(window, place, loader, make, needle):
    path = make(place)
    before = snapshot(place.work, place.out)
    with PeakMemory() as memory:
        getattr(window.session, loader)(str(path))
    text = _shown(window)
    assert needle.lower() in text.lower() and "\n" not in text, text
    assert snapshot(place.work, place.out) == before and memory.peak < CEILING


RESTORE: list[tuple[str, Callable[[Place], Path], str]] = [
    ("huge-text", lambda p: h.png_huge_text(p.work / "t.png"), "text chunk"),
    ("studio-nested", lambda p: h.png(p.work / "n.png", studio=h.nested_json(100_000)), "JSON"),
    ("comfy-broken", lambda p: h.png(p.work / "c.png", prompt="{broken"), "JSON"),
    ("no-parameters", lambda p: h.png(p.work / "plain.png"), "no generation parameters"),
    ("not-an-image", lambda p: p.file("x.png", "text"), "x.png"),
    (
        "workflow-nested",
        lambda p: h.png(
            p.work / "w.png",
            studio=json.dumps(
                {
                    "format": "studio",
                    "version": 1,
                    "params": {"prompt": "kept"},
                    "workflow": json.loads(h.nested_object(300)),
                }
            ),
        ),
        "",
    ),
]


@pytest.mark.parametrize("make, needle", [c[1:] for c in RESTORE], ids=[c[0] for c in RESTORE])
def test_restore_parameters_from_hostile_pictures(window, place, make, needle):
    path = make(place)
    before = snapshot(place.work, place.out)
    with PeakMemory() as memory:
        window.session.restore_parameters(str(path))
    text = _shown(window)
    assert needle.lower() in text.lower() and "\n" not in text, text
    assert snapshot(place.work, place.out) == before and memory.peak < CEILING


IMPORT: list[tuple[str, Callable[[Place], Path], str]] = [
    ("chain-5000", lambda p: p.file("c.json", json.dumps(h.comfy_chain(5000))), "5005 nodes"),
    ("nested-200000", lambda p: p.file("n.json", h.nested_json(200_000)), "nested too deeply"),
    ("ui-format", lambda p: p.file("u.json", json.dumps({"nodes": [], "links": []})), "API"),
    ("not-json", lambda p: p.file("x.json", "{"), "x.json"),
    ("huge-text-png", lambda p: h.png_huge_text(p.work / "t.png", key="prompt"), "text chunk"),
    ("png-without-workflow", lambda p: h.png(p.work / "plain.png"), "no ComfyUI workflow"),
]


@pytest.mark.parametrize("make, needle", [c[1:] for c in IMPORT], ids=[c[0] for c in IMPORT])
def test_import_refuses_hostile_comfyui_files(window, place, make, needle):
    from studio.ui.menus import import_workflow

    path = make(place)
    nodes_before = dict(window.document.graph.nodes)
    with PeakMemory() as memory:
        assert import_workflow(window, str(path)) is False
    text = _shown(window)
    assert needle.lower() in text.lower() and "\n" not in text, text
    assert window.document.graph.nodes == nodes_before and memory.peak < CEILING


@pytest.mark.parametrize("as_png", [False, True], ids=["json", "png"])
def test_gui_workflow_imports_a_comfyui_workflow(window, place, as_png):
    """`studio gui --workflow` (studio.ui.app.load_workflow) takes what ComfyUI saves."""
    from studio.ui.app import load_workflow

    prompt = json.dumps(h.comfy_chain(2))
    path = (
        h.png(place.work / "comfy.png", prompt=prompt)
        if as_png
        else place.file("comfy.json", prompt)
    )
    load_workflow(window, path)
    graph = window.document.graph
    assert len(graph.find("Sample")) == 2 and graph.find("LoadCheckpoint"), _shown(window)


@pytest.mark.parametrize("loader", ["open_path", "drop_file"])
def test_a_workflow_dropped_on_the_window_is_imported(window, place, loader):
    """A ComfyUI API JSON dropped on the window (or on its canvas) is imported, not refused as
    a picture; a broken one is refused in one sentence and the workflow stays."""
    broken = place.file("broken.json", "{")
    nodes_before = dict(window.document.graph.nodes)
    getattr(window.session, loader)(str(broken))
    assert "broken.json" in _shown(window) and window.document.graph.nodes == nodes_before
    path = place.file("comfy.json", json.dumps(h.comfy_chain(2)))
    getattr(window.session, loader)(str(path))
    graph = window.document.graph
    assert len(graph.find("Sample")) == 2 and graph.find("LoadCheckpoint"), _shown(window)


@pytest.mark.parametrize("text", [c[1] for c in BAD_SETTINGS], ids=[c[0] for c in BAD_SETTINGS])
def test_the_window_starts_with_a_bad_settings_file(qtbot, place, text):
    from studio.settings import Settings
    from studio.ui.main_window import MainWindow

    (Path(os.environ["STUDIO_CONFIG_DIR"]) / "settings.json").write_text(text, encoding="utf-8")
    win = MainWindow(Settings.load())
    qtbot.addWidget(win)
    assert win.settings.device in ("auto", "cpu")
    win.close()


# -- closing the window: the GUI thread never waits; a loading model is abandoned -----------------


class _StuckExecutor:
    """Stands for a model that is still loading: it ignores cancel until released."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()

    def run(self, graph, ctx, emit, job_id):
        self.started.set()
        self.release.wait(30)


def test_closing_the_window_does_not_wait_for_a_loading_model(qtbot, place, monkeypatch):
    import studio.ui.app as app
    from studio.graph.document import Graph
    from studio.runtime.worker import Runtime
    from studio.settings import Settings
    from studio.ui.main_window import MainWindow

    win = MainWindow(Settings(output_folder=str(place.out), device="cpu"))
    qtbot.addWidget(win)
    stuck = _StuckExecutor()
    win.bridge.runtime = Runtime(executor=stuck, device=object())
    win.bridge.runtime.submit(Graph())
    assert stuck.started.wait(30)
    win.close()  # returns although the worker cannot stop: nothing joined it
    thread = win.bridge.runtime._thread
    assert thread.is_alive()
    exits: list[int] = []
    monkeypatch.setattr(app, "WORKER_GRACE_SECONDS", 0.01)
    monkeypatch.setattr(app.os, "_exit", exits.append)
    app._leave(win, 0)  # what `studio gui` does after the loop: abandon the worker, exit now
    assert exits == [0]
    stuck.release.set()
    thread.join(30)


def test_leaving_after_the_worker_stopped_exits_at_once(qtbot, place, monkeypatch):
    import studio.ui.app as app
    from studio.settings import Settings
    from studio.ui.main_window import MainWindow

    win = MainWindow(Settings(output_folder=str(place.out), device="cpu"))
    qtbot.addWidget(win)
    win.close()
    exits: list[int] = []
    monkeypatch.setattr(app.os, "_exit", exits.append)
    app._leave(win, 3)  # the interpreter's teardown is skipped, the exit code kept
    assert exits == [3] and not win.bridge.busy


def test_an_unexpected_error_in_the_window_is_one_sentence_and_a_log_entry(qtbot, place):
    import studio.ui.app as app
    from studio import logs
    from studio.settings import Settings
    from studio.ui.main_window import MainWindow

    logs.setup()  # what `studio gui` does first, through studio.cli.main
    win = MainWindow(Settings(output_folder=str(place.out), device="cpu"))
    qtbot.addWidget(win)
    previous = sys.excepthook
    try:
        app._report_uncaught_errors(win)
        try:
            {}["missing"]
        except KeyError as error:
            sys.excepthook(KeyError, error, error.__traceback__)
    finally:
        sys.excepthook = previous
    text = _shown(win)
    assert "KeyError" in text and str(place.logs / "studio.log") in text and "\n" not in text
    assert "Traceback" in (place.logs / "studio.log").read_text(encoding="utf-8")
    win.close()
