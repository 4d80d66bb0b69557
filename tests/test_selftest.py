"""`studio --self-test`: what the packaged app runs to prove it works (see packaging/build.sh)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from studio.paths import DEMO_CHECKPOINT
from studio.selftest import Report, check_image

SELF_TEST_TIMEOUT = 1200  # s: normally under a minute; a CPU shared with other work is slow


def _report() -> tuple[Report, io.StringIO]:
    out = io.StringIO()
    return Report(out=out), out


def test_a_flat_image_fails_and_says_why():
    report, out = _report()
    check_image(Image.new("RGB", (64, 64), (40, 70, 215)), report, expected_background=None)
    assert not report.passed
    assert "FAIL  contents" in out.getvalue() and "flat" in out.getvalue()


def test_a_wrong_mode_or_size_fails():
    report, out = _report()
    noise = np.random.default_rng(0).integers(0, 255, (32, 48), dtype=np.uint8)
    check_image(Image.fromarray(noise, "L"), report, expected_background=None)
    assert "FAIL  format     L 48x32" in out.getvalue()


def test_no_image_fails():
    report, out = _report()
    check_image(None, report, expected_background=None)
    assert not report.passed and "FAIL  image" in out.getvalue()


def test_a_drawn_scene_passes():
    from studio.demo.scenes import draw, parse_prompt

    scene = parse_prompt("a large red circle in the center on a blue background")
    report, out = _report()
    check_image(draw(scene, 64), report, expected_background="blue")
    assert report.passed, out.getvalue()


@pytest.mark.skipif(
    not (DEMO_CHECKPOINT / "model_index.json").is_file(),
    reason="the bundled model (resources/models/studio-shapes) has not been trained yet",
)
def test_self_test_passes_and_writes_nothing_outside_its_temp_folder(tmp_path):
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "STUDIO_", "HF_"))}
    env.update(HOME=str(home), TMPDIR=str(temp), QT_QPA_PLATFORM="offscreen")
    done = subprocess.run(
        [sys.executable, "-m", "studio", "--self-test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=SELF_TEST_TIMEOUT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "self-test passed"
    for check in ("window", "generate", "format", "contents", "scene", "saved"):
        assert any(line.startswith("ok") and f" {check} " in f"{line} " for line in lines), check
    # Settings, outputs and caches went to the temporary folder, which is gone again.
    assert list(temp.iterdir()) == []
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == []
