"""Output files: unique names, never overwritten, written atomically with their settings."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from studio.errors import StudioError
from studio.formats import files
from studio.formats.files import atomic_write_bytes, save_png, unique_path
from studio.formats.metadata import read_metadata
from studio.formats.parameters import GenerationParams


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_unique_path(tmp_path: Path) -> None:
    target = tmp_path / "image.png"
    assert unique_path(target) == target
    target.write_bytes(b"1")
    assert unique_path(target) == tmp_path / "image-0001.png"
    (tmp_path / "image-0001.png").write_bytes(b"2")
    assert unique_path(target) == tmp_path / "image-0002.png"


def test_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    assert atomic_write_bytes(target, b"first") == target
    second = atomic_write_bytes(target, b"second")
    assert second == tmp_path / "out-0001.bin"
    assert target.read_bytes() == b"first" and second.read_bytes() == b"second"
    assert _names(tmp_path) == ["out-0001.bin", "out.bin"]


def test_overwrite_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "settings.json"
    target.write_bytes(b"old")
    assert atomic_write_bytes(target, b"new", overwrite=True) == target
    assert target.read_bytes() == b"new" and _names(tmp_path) == ["settings.json"]


def test_missing_folders_are_created(tmp_path: Path) -> None:
    target = tmp_path / "outputs" / "2024-06-01" / "a.png"
    assert save_png(Image.new("RGB", (4, 4)), target) == target
    assert Image.open(target).size == (4, 4)


def test_new_files_follow_the_umask(tmp_path: Path) -> None:
    if os.name != "posix":
        pytest.skip("permission bits are POSIX only")
    umask = os.umask(0)
    os.umask(umask)
    written = atomic_write_bytes(tmp_path / "x.bin", b"x")
    assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~umask


def test_failed_save_leaves_nothing(tmp_path: Path) -> None:
    image = Image.new("RGB", (64, 64))

    def half_then_fail(stream: object, *args: object, **kwargs: object) -> None:
        stream.write(b"\x89PNG partial")  # type: ignore[attr-defined]
        raise RuntimeError("disk pulled out")

    image.save = half_then_fail  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        save_png(image, tmp_path / "out.png", GenerationParams())
    assert _names(tmp_path) == []


def test_disk_error_is_a_studio_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", no_space)
    with pytest.raises(StudioError, match=r"out\.bin could not be written in .*: no space left"):
        atomic_write_bytes(tmp_path / "out.bin", b"data")
    assert _names(tmp_path) == []


def test_race_with_another_writer_takes_the_next_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_link = os.link
    target = tmp_path / "race.png"

    def other_writer_first(source: str, destination: str) -> None:
        if Path(destination) == target and not target.exists():
            target.write_bytes(b"theirs")  # appears between our name check and our link
        real_link(source, destination)

    monkeypatch.setattr(files.os, "link", other_writer_first)
    written = atomic_write_bytes(target, b"ours")
    assert written == tmp_path / "race-0001.png"
    assert target.read_bytes() == b"theirs" and written.read_bytes() == b"ours"
    assert _names(tmp_path) == ["race-0001.png", "race.png"]


def test_without_hard_links_still_no_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(source: str, destination: str) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(files.os, "link", unsupported)
    (tmp_path / "fat.png").write_bytes(b"keep")
    written = atomic_write_bytes(tmp_path / "fat.png", b"new")
    assert written.name == "fat-0001.png" and (tmp_path / "fat.png").read_bytes() == b"keep"
    assert _names(tmp_path) == ["fat-0001.png", "fat.png"]


def test_unwritable_folder_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"a file where a folder should be")
    with pytest.raises(StudioError, match="blocker"):
        atomic_write_bytes(blocker / "out.png", b"x")

    def denied(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files.os, "open", denied)
    with pytest.raises(StudioError, match=rf"folder {tmp_path} cannot be written to: permission"):
        atomic_write_bytes(tmp_path / "out.png", b"x")


def test_save_png_embeds_both_chunks(tmp_path: Path) -> None:
    params = GenerationParams(prompt="château at dusk", seed=9)
    path = save_png(Image.new("RGB", (4, 4)), tmp_path / "a.png", params, {"nodes": []})
    with Image.open(path) as image:
        text = image.text
    assert text["parameters"].startswith("château at dusk\nSteps: 20")
    assert isinstance(text["parameters"], PngImagePlugin.iTXt)  # non-ASCII goes in iTXt
    assert '"format": "studio"' in text["studio"]
    plain = save_png(Image.new("RGB", (4, 4)), tmp_path / "b.png", GenerationParams(prompt="cat"))
    with Image.open(plain) as image:
        assert not isinstance(image.text["parameters"], PngImagePlugin.iTXt)


def test_save_png_without_params_has_no_chunks(tmp_path: Path) -> None:
    path = save_png(Image.new("RGB", (4, 4)), tmp_path / "a.png")
    assert read_metadata(path) is None


def test_large_workflow_still_opens(tmp_path: Path) -> None:
    # Over PIL's 1 MB limit for compressed text, so it must be stored uncompressed.
    workflow = {"nodes": [{"id": i, "note": f"node number {i} " * 4} for i in range(16000)]}
    path = save_png(Image.new("RGB", (4, 4)), tmp_path / "big.png", GenerationParams(), workflow)
    found = read_metadata(path)
    assert found is not None and found.workflow == workflow


def test_other_modes_are_saved_as_rgb(tmp_path: Path) -> None:
    path = save_png(Image.new("CMYK", (4, 4), (0, 0, 0, 0)), tmp_path / "c.png")
    with Image.open(path) as image:
        assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)
