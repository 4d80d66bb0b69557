"""Masks and compositing for inpainting: what the user keeps stays exactly as it was."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from studio.engine import masks
from studio.engine.latents import Latent
from studio.engine.progress import CancelToken
from studio.errors import ImageError, ParameterError
from studio.nodes.context import RunContext
from studio.nodes.registry import NodeType, node_types
from studio.nodes.values import Picture
from studio.runtime.executor import Executor, NodeFailed
from studio.runtime.one_call import prepare_workflow

WIDTH, HEIGHT = 600, 400
CENTER = (430, 160)
RADIUS = 25
GAIN = np.array([1.08, 0.92, 1.06])
OFFSET = np.array([12.0, -12.0, 10.0])


def photo(width: int = WIDTH, height: int = HEIGHT, seed: int = 0) -> np.ndarray:
    """A photo-like image: smooth shading, edges and sensor noise, kept clear of clipping."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 120 + 70 * np.sin(x / 70) * np.cos(y / 50)
    g = 80 + 0.2 * x + 30 * np.sin(y / 30)
    b = 150 - 0.15 * y + 40 * np.cos((x + y) / 90)
    a = np.stack([r, g, b], axis=-1)
    a[(x > 100) & (x < 220) & (y > 60) & (y < 300)] += 35  # a hard-edged object
    a += rng.normal(0, 6, a.shape)
    return np.clip(np.rint(a), 20, 215).astype(np.uint8)


def new_content(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """What the model paints at image coordinates (x, y): a violet pattern unlike the photo."""
    r = 170 + 15 * np.sin(x / 9)
    g = 60 + 10 * np.cos(y / 7)
    b = 150 + 0 * x
    return np.stack([r, g, b], axis=-1)


def image_content() -> np.ndarray:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    return new_content(x, y)


def vae_shift(a: np.ndarray, seed: int = 1) -> np.ndarray:
    """A strong global colour shift plus noise, as a VAE round trip might add."""
    rng = np.random.default_rng(seed)
    shifted = a.astype(np.float64) * GAIN + OFFSET + rng.normal(0, 3, a.shape)
    return np.clip(np.rint(shifted), 0, 255).astype(np.uint8)


def distance_to_center() -> np.ndarray:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    return np.hypot(x - CENTER[0], y - CENTER[1])


def disc_mask() -> Image.Image:
    return Image.fromarray(np.where(distance_to_center() <= RADIUS, 255, 0).astype(np.uint8))


def rgb(a: np.ndarray) -> Image.Image:
    return Image.fromarray(a.astype(np.uint8), "RGB")


@dataclass
class InpaintRun:
    """What the inpaint workflow's nodes handed each other (the model's work simulated)."""

    image: Image.Image | None = None  # the sampler's input image (crop output)
    mask: Image.Image | None = None  # the sampler's mask (crop output)
    region: masks.MaskedRegion | None = None
    blend_mask: Image.Image | None = None  # the full-size feathered mask the composite uses

    @property
    def work_size(self) -> tuple[int, int]:
        return self.image.size


def simulate_pipeline(job: InpaintRun) -> Image.Image:
    """The model's output at the work size: new content where asked, everything shifted."""
    work = np.asarray(job.image, dtype=np.float64)
    repaint = np.asarray(job.mask)[..., None] >= 128
    # The content belongs to the scene, so it is drawn at the image position of each pixel.
    region = job.region or masks.MaskedRegion((0, 0, WIDTH, HEIGHT), (WIDTH, HEIGHT))
    left, top, right, bottom = region.box
    (work_w, work_h), (box_w, box_h) = job.work_size, region.box_size
    y, x = np.mgrid[0:work_h, 0:work_w].astype(np.float64)
    content = new_content(
        left + (x + 0.5) * box_w / work_w - 0.5, top + (y + 0.5) * box_h / work_h - 0.5
    )
    return rgb(vae_shift(np.where(repaint, content, work)))


def _simulated_node_types(job: InpaintRun) -> dict[str, NodeType]:
    """The library's node types, with the model's part of the inpaint workflow simulated."""
    real = node_types()

    def recorded(name: str, record):
        def run(ctx, inputs, params):
            outputs = real[name].run(ctx, inputs, params)
            record(outputs)
            return outputs

        return run

    def crop(outputs):
        job.image, job.mask, job.region = (
            outputs["image"][0].image,
            outputs["mask"],
            outputs["region"],
        )

    def feather(outputs):
        job.blend_mask = outputs["mask"]

    def decode(ctx, inputs, params):
        return {"image": (Picture(simulate_pipeline(job)),)}

    fakes = {
        "LoadCheckpoint": lambda ctx, i, p: {"model": SimpleNamespace(native_size=512)},
        "Prompt": lambda ctx, i, p: {"conditioning": None},
        "EncodeImage": lambda ctx, i, p: {"latent": Latent(*i["image"][0].image.size)},
        "Sample": lambda ctx, i, p: {"latent": None},
        "Decode": decode,
        "CropToMask": recorded("CropToMask", crop),
        "FeatherMask": recorded("FeatherMask", feather),
    }
    return {name: NodeType(t.spec, fakes[name]) if name in fakes else t for name, t in real.items()}


def run_inpaint(
    masked_only: bool,
    color_match: bool = False,
    grow: int = 3,
    feather: int = 8,
    image: Image.Image | None = None,
    mask: Image.Image | None = None,
    output: str = "whole image",
):
    """The default inpaint workflow, run by the executor, with the model simulated."""
    original = photo()
    job = InpaintRun()
    graph = prepare_workflow(
        "inpaint",
        {
            "grow.pixels": grow,
            "feather.pixels": feather,
            "crop.enabled": masked_only,
            "crop.padding": 32,
            "composite.color_match": color_match,
            "composite.output": output,
        },
    )
    inputs = {"image": image or rgb(original), "mask": mask or disc_mask()}
    ctx = RunContext(models=None, device=None, cancel=CancelToken(), inputs=inputs)
    Executor(_simulated_node_types(job)).run(graph, ctx, lambda event: None, "job-1")
    ((out, _, _),) = ctx.results
    return original, job, simulate_pipeline(job), out


@pytest.mark.parametrize("masked_only", [False, True])
def test_pixels_beyond_grow_plus_feather_are_bit_identical(masked_only: bool) -> None:
    grow, feather = 3, 8
    original, job, _, out = run_inpaint(masked_only, grow=grow, feather=feather)
    assert out.size == (WIDTH, HEIGHT) and out.mode == "RGB"
    result = np.asarray(out)
    far = distance_to_center() > RADIUS + grow + feather
    assert np.array_equal(result[far], original[far])
    # Only pixels the blend mask covers may differ, and the generated content did land.
    changed = np.any(result != original, axis=-1)
    assert changed.any()
    assert not changed[np.asarray(job.blend_mask) == 0].any()


@pytest.mark.parametrize("masked_only", [False, True])
def test_generated_content_appears_inside_the_mask(masked_only: bool) -> None:
    grow, feather = 3, 8
    original, job, generated, out = run_inpaint(masked_only, grow=grow, feather=feather)
    # The feathered blend is 255 where the whole square of half-width `feather` is masked.
    core = distance_to_center() <= RADIUS + grow - feather * 1.5
    result = np.asarray(out).astype(np.float64)
    if not masked_only:
        # The whole picture may be generated at another size; the composite resizes it back.
        if generated.size != out.size:
            generated = generated.resize(out.size, Image.Resampling.LANCZOS)
        assert np.array_equal(np.asarray(out)[core], np.asarray(generated)[core])
    painted = image_content() * GAIN + OFFSET
    assert np.abs(result[core] - painted[core]).mean() < 6
    assert np.abs(result[core] - original[core]).mean() > 40


@pytest.mark.parametrize("color_match", [False, True])
def test_the_changed_area_is_the_whole_result_cut_to_the_box(color_match: bool) -> None:
    """"changed area" returns exactly the whole image's pixels inside the crop box."""
    _, job, _, whole = run_inpaint(True, color_match=color_match)
    _, _, _, part = run_inpaint(True, color_match=color_match, output="changed area")
    assert part.size == job.region.box_size
    assert np.array_equal(np.asarray(part), np.asarray(whole.crop(job.region.box)))


def test_masked_only_works_at_model_resolution() -> None:
    _, job, _, _ = run_inpaint(masked_only=True)
    width, height = job.work_size
    assert width % 8 == 0 and height % 8 == 0
    assert 0.8 < width * height / 512**2 < 1.25
    assert job.image.size == job.mask.size == job.work_size
    box_w, box_h = job.region.box_size
    assert box_w < WIDTH and box_h < HEIGHT  # a crop, upscaled for detail


@pytest.mark.parametrize("masked_only", [False, True])
def test_color_match_removes_the_shift(masked_only: bool) -> None:
    grow, feather = 3, 8
    core = distance_to_center() <= RADIUS + grow - feather * 1.5
    truth = image_content()[core]
    _, _, _, plain = run_inpaint(masked_only, color_match=False)
    _, _, _, matched = run_inpaint(masked_only, color_match=True)
    error_plain = np.abs(np.asarray(plain, dtype=np.float64)[core] - truth).mean()
    error_matched = np.abs(np.asarray(matched, dtype=np.float64)[core] - truth).mean()
    assert error_plain > 15
    assert error_matched < 5
    assert error_matched < error_plain / 3


def test_color_match_needs_unmasked_pixels() -> None:
    image = rgb(photo(64, 64))
    full = Image.new("L", (64, 64), 255)
    assert masks.match_colors(image, rgb(photo(64, 64, seed=3)), full) is image


def test_color_match_clamps_instead_of_wrapping() -> None:
    original = photo(100, 80)
    faded = np.rint(original * 0.7 + 10).astype(np.uint8)
    faded[30:50, 40:60] = (250, 3, 128)  # would map far above 255 and below 0
    mask = box_mask((100, 80), (40, 30, 60, 50))
    out = np.asarray(masks.match_colors(rgb(faded), rgb(original), mask)).astype(int)
    assert np.abs(out[mask_array(mask) == 0] - original[mask_array(mask) == 0]).mean() < 1.5
    assert tuple(out[40, 50][:2]) == (255, 0)
    assert abs(out[40, 50][2] - (128 - 10) / 0.7) < 2


def mask_array(mask: Image.Image) -> np.ndarray:
    return np.asarray(mask)


def box_mask(size: tuple[int, int], bbox: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, bbox)
    return mask


@pytest.mark.parametrize(
    ("image_size", "bbox"),
    [
        ((600, 400), (400, 140, 460, 190)),  # small, away from the edges
        ((600, 400), (0, 0, 30, 20)),  # in a corner
        ((600, 400), (580, 150, 600, 170)),  # on the right edge
        ((600, 400), (20, 195, 580, 205)),  # a long thin stroke
        ((600, 100), (250, 30, 350, 70)),  # a wide strip of an image
        ((2000, 1500), (900, 700, 940, 760)),  # a small mask on a large image
        ((600, 400), (0, 0, 600, 400)),  # everything
    ],
)
@pytest.mark.parametrize("target", [512, 1024, (512, 768), (768, 512), (500, 500)])
def test_masked_region_is_undistorted_and_inside(image_size, bbox, target) -> None:
    padding = 32
    region = masks.masked_region(
        box_mask(image_size, bbox), image_size, padding=padding, target=target
    )
    left, top, right, bottom = region.box
    assert 0 <= left < right <= image_size[0] and 0 <= top < bottom <= image_size[1]
    assert left <= max(0, bbox[0] - padding) and top <= max(0, bbox[1] - padding)
    assert right >= min(image_size[0], bbox[2] + padding)
    assert bottom >= min(image_size[1], bbox[3] + padding)
    work_w, work_h = region.work_size
    assert work_w % 8 == 0 and work_h % 8 == 0
    box_w, box_h = region.box_size
    # Same aspect ratio within a pixel of the box, or within rounding when the box is the
    # whole image and cannot change shape.
    whole = region.box == (0, 0, *image_size)
    tolerance = 8 / min(work_w, work_h) if whole else 1.5 / min(box_w, box_h)
    assert abs((box_w / box_h) / (work_w / work_h) - 1) <= tolerance
    area = target * target if isinstance(target, int) else target[0] * target[1]
    assert 0.75 < work_w * work_h / area < 1.33
    if not isinstance(target, int) and not whole and (box_w, box_h) != image_size:
        if box_w < image_size[0] and box_h < image_size[1]:
            assert region.work_size == tuple(-(-side // 8) * 8 for side in target)  # 500 -> 504


def test_crop_for_work_gives_work_sized_image_and_mask() -> None:
    image, mask = rgb(photo()), disc_mask()
    region = masks.masked_region(mask, image.size, padding=16, target=256)
    work_image, work_mask = masks.crop_for_work(image, mask, region)
    assert work_image.size == work_mask.size == region.work_size
    assert (work_image.mode, work_mask.mode) == ("RGB", "L")


def test_paste_back_keeps_everything_outside_the_feathered_mask() -> None:
    original = rgb(photo())
    mask = disc_mask()
    region = masks.masked_region(mask, original.size, padding=20, target=256)
    generated = Image.new("RGB", region.work_size, (255, 0, 255))
    out = np.asarray(masks.paste_back(original, generated, mask, region, feather=6))
    far = distance_to_center() > RADIUS + 6
    assert np.array_equal(out[far], np.asarray(original)[far])
    assert tuple(out[CENTER[1], CENTER[0]]) == (255, 0, 255)


def dot(size: int = 101) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    mask.putpixel((size // 2, size // 2), 255)
    return mask


def test_grown_dot_is_a_disc_of_that_radius() -> None:
    grown = np.asarray(masks.grow(dot(), 5)) > 0
    y, x = np.mgrid[0:101, 0:101]
    assert np.array_equal(grown, (x - 50) ** 2 + (y - 50) ** 2 <= 25)
    assert grown.sum() == 81  # lattice points in a disc of radius 5


def test_shrink_pulls_edges_in_and_keeps_the_image_border() -> None:
    shrunk = np.asarray(masks.grow(box_mask((100, 100), (40, 40, 60, 60)), -3)) > 0
    assert np.array_equal(shrunk, np.asarray(box_mask((100, 100), (43, 43, 57, 57))) > 0)
    at_border = np.asarray(masks.grow(box_mask((100, 100), (0, 0, 30, 100)), -4)) > 0
    assert np.array_equal(at_border, np.asarray(box_mask((100, 100), (0, 0, 26, 100))) > 0)
    assert masks.grow(dot(), 0).tobytes() == dot().tobytes()


def test_feather_reach_is_exactly_its_radius() -> None:
    radius = 6
    mask = box_mask((100, 100), (30, 30, 70, 70))
    soft = np.asarray(masks.feather(mask, radius)).astype(int)
    y, x = np.mgrid[0:100, 0:100] + 0.0
    dx = np.maximum(np.maximum(30 - x, x - 69), 0)
    dy = np.maximum(np.maximum(30 - y, y - 69), 0)
    outside = np.hypot(dx, dy)
    assert (soft[outside > radius] == 0).all()
    assert soft[50, 24] > 0  # exactly `radius` outside the edge still receives a little
    inside = np.minimum(np.minimum(x - 30, 69 - x), np.minimum(y - 30, 69 - y))
    assert (soft[inside >= radius] == 255).all()
    assert 100 < soft[50, 30] < 200 and 50 < soft[50, 29] < 156  # soft across the edge
    row = soft[50, 20:50]
    assert (np.diff(row) >= 0).all()
    # Feathering a dot keeps it within its radius too.
    soft_dot = np.asarray(masks.feather(dot(), radius)) > 0
    yy, xx = np.mgrid[0:101, 0:101]
    assert not soft_dot[(xx - 50) ** 2 + (yy - 50) ** 2 > radius**2].any()


def test_composite_is_exact_at_both_ends() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    m = rng.choice(np.array([0, 255, 128], dtype=np.uint8), (30, 40))
    out = np.asarray(masks.composite(rgb(a), rgb(b), Image.fromarray(m, "L"))).astype(int)
    assert np.array_equal(out[m == 0], a[m == 0])
    assert np.array_equal(out[m == 255], b[m == 255])
    mid = m == 128
    expected = (a[mid].astype(int) * 127 + b[mid].astype(int) * 128) / 255
    assert np.abs(out[mid] - expected).max() <= 0.5


def test_empty_mask_is_refused() -> None:
    empty = Image.new("L", (WIDTH, HEIGHT), 0)
    message = "The mask is empty: paint the area to repaint."
    with pytest.raises(NodeFailed, match=message):
        run_inpaint(masked_only=False, mask=empty)
    with pytest.raises(ParameterError, match=message):
        masks.masked_region(empty, (WIDTH, HEIGHT), padding=8, target=512)
    with pytest.raises(NodeFailed, match="shrunk by 30 pixels"):
        run_inpaint(masked_only=True, grow=-30)


def test_mask_of_another_size_names_both_sizes() -> None:
    with pytest.raises(NodeFailed) as caught:
        run_inpaint(masked_only=True, mask=Image.new("L", (300, 200), 255))
    assert "300x200" in str(caught.value) and "600x400" in str(caught.value)
    region = masks.MaskedRegion((0, 0, 300, 200), (304, 200))
    with pytest.raises(ImageError, match="300x200"):
        masks.crop_for_work(rgb(photo()), Image.new("L", (300, 200), 255), region)


def test_other_mask_and_image_modes_are_converted() -> None:
    strokes = Image.new("RGBA", (WIDTH, HEIGHT), (0, 0, 0, 0))
    strokes.paste((255, 0, 0, 255), (420, 150, 440, 170))
    image = rgb(photo()).convert("RGBA")
    for mask in (strokes, disc_mask().convert("1"), disc_mask().convert("RGB")):
        grown = masks.grow(mask, 0)
        region = masks.masked_region(grown, image.size, padding=32, target=512)
        work_image, work_mask = masks.crop_for_work(image, grown, region)
        assert work_image.mode == "RGB" and work_mask.mode == "L"
        assert masks.feather(grown, 2).getbbox() is not None


def test_simple_mask_operations() -> None:
    mask = box_mask((20, 10), (5, 2, 9, 6))
    assert np.array_equal(np.asarray(masks.invert(mask)), 255 - np.asarray(mask))
    soft = Image.fromarray(np.array([[0, 127, 128, 255]], dtype=np.uint8), "L")
    assert list(np.asarray(masks.binarize(soft))[0]) == [0, 0, 255, 255]
    assert masks.is_empty(Image.new("L", (4, 4), 0)) and not masks.is_empty(mask)
    layer = Image.new("RGBA", (4, 4), (9, 9, 9, 255))
    layer.putpixel((1, 1), (9, 9, 9, 0))
    erased = np.asarray(masks.from_alpha(layer))
    assert erased[1, 1] == 255 and erased.sum() == 255
    painted = np.asarray(masks.from_alpha(layer, transparent_is_repaint=False))
    assert painted[1, 1] == 0 and painted[0, 0] == 255
    with pytest.raises(ImageError, match="no transparency"):
        masks.from_alpha(Image.new("RGB", (4, 4)))
