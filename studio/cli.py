"""The `studio` command line: generate, upscale, list models, read an image's parameters."""

from __future__ import annotations

import argparse
import logging
import math
import random
import sys
from pathlib import Path

from studio import __version__
from studio.errors import ParameterError, StudioError

log = logging.getLogger("studio")

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line that points at --help, not the whole usage text."""

    def error(self, message: str):
        from studio.logs import one_line

        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {one_line(message)} (see --help).\n")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512x768, not '{text}'") from None


def _sides(text: str) -> tuple[int, int, int, int]:
    """--outpaint: "L,T,R,B" pixels, or one number for every side."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 4
    if len(values) != 4:
        raise argparse.ArgumentTypeError(
            f"--outpaint takes LEFT,TOP,RIGHT,BOTTOM pixels (e.g. 0,0,128,0) or one number, "
            f"not '{text}'"
        )
    return values[0], values[1], values[2], values[3]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="studio", description="Native, offline image generation.")
    parser.add_argument("--version", action="version", version=f"studio {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="open the window offscreen, generate one image with the bundled model, check it",
    )
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    gen = sub.add_parser("generate", help="text-to-image, image-to-image or inpainting")
    gen.add_argument("prompt", nargs="?", default="", help="what to draw (may be empty)")
    gen.add_argument("--model", type=Path, help="checkpoint file or diffusers folder")
    gen.add_argument("--config", type=Path, help="diffusers config folder for a non-standard model")
    gen.add_argument("--negative", default="", help="what to avoid")
    gen.add_argument("--steps", type=int, default=20)
    gen.add_argument(
        "--cfg",
        type=float,
        help="classifier-free guidance scale (default: the model's recommendation, else 7)",
    )
    gen.add_argument("--rescale", type=float, default=0.0, help="guidance rescale (0-1)")
    gen.add_argument("--pag", type=float, default=0.0, help="perturbed-attention guidance scale")
    gen.add_argument("--cfg-cutoff", type=float, default=1.0, help="fraction of steps with CFG")
    gen.add_argument("--sampler", default="Euler a")
    gen.add_argument("--seed", type=int, help="random when not given")
    gen.add_argument("--size", type=_size, help="WxH (default: the model's native size)")
    gen.add_argument(
        "--batch", type=int, default=1, help="how many images (seeds seed, seed+1, ...)"
    )
    gen.add_argument("--init", type=Path, help="input image for image-to-image or inpainting")
    gen.add_argument("--strength", type=float, help="how much to change the input image (0-1)")
    gen.add_argument("--mask", type=Path, help="mask image: white = repaint")
    gen.add_argument("--grow", type=int, default=0, help="grow the mask by N pixels")
    gen.add_argument("--feather", type=int, default=8, help="feather the mask edge by N pixels")
    gen.add_argument(
        "--outpaint",
        type=_sides,
        metavar="L,T,R,B",
        help="grow the --init picture by these pixels a side and paint the new area",
    )
    gen.add_argument(
        "--masked-only",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="inpaint a crop around the mask (default: on when the picture is larger than "
        "the model)",
    )
    gen.add_argument(
        "--padding", type=int, default=32, help="context around the mask (masked-only)"
    )
    gen.add_argument(
        "--color-match",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="match the new pixels' colours to the picture around them (default: on)",
    )
    _device_args(gen)
    _memory_args(gen)
    _server_args(gen)
    gen.add_argument("-o", "--output", type=Path, help="output PNG (never overwritten)")

    _addon_args(gen)

    up = sub.add_parser("upscale", help="super-resolution")
    up.add_argument("image", type=Path)
    up.add_argument(
        "--model",
        type=Path,
        help="upscale model (ESRGAN, SwinIR, ...) or x4 diffusion upscaler "
        "(default: the bundled x4 model)",
    )
    up.add_argument("--scale", type=float, help="factor for a plain Lanczos resize instead")
    up.add_argument("--tile", type=int, default=512)
    up.add_argument("--overlap", type=int, default=32)
    up.add_argument("--prompt", default="", help="prompt for the diffusion upscaler")
    up.add_argument("--noise-level", type=int, default=20, help="diffusion upscaler noise level")
    up.add_argument("--steps", type=int, default=20, help="diffusion upscaler steps")
    up.add_argument("--seed", type=int, default=0)
    _device_args(up)
    up.add_argument("-o", "--output", type=Path)

    run = sub.add_parser("run", help="run a workflow file (Studio JSON, ComfyUI API JSON or PNG)")
    run.add_argument("workflow", type=Path)
    run.add_argument(
        "--set", action="append", metavar="NODE.PARAM=VALUE", help="change a parameter"
    )
    run.add_argument("--image", type=Path, help="the canvas image the workflow uses")
    run.add_argument("--mask", type=Path, help="the canvas mask the workflow uses")
    _addon_args(run)
    _device_args(run)
    _memory_args(run)
    _server_args(run)

    models = sub.add_parser(
        "models", help="list checkpoints, LoRAs, embeddings, VAEs and upscalers with their family"
    )
    models.add_argument("folders", nargs="*", type=Path)

    info = sub.add_parser("info", help="print the generation parameters stored in an image")
    info.add_argument("image", type=Path)

    gui = sub.add_parser("gui", help="open the window (what `studio` alone does)")
    gui.add_argument("--screenshot", type=Path, help="save a PNG of the window offscreen and exit")
    gui.add_argument("--workflow", type=Path, help="open this workflow (JSON or ComfyUI PNG)")
    gui.add_argument("--image", type=Path, help="open this image on the canvas")
    gui.add_argument("--mask", type=Path, help="use this mask on the canvas (white = repaint)")
    gui.add_argument(
        "--mode", default="txt2img", choices=("txt2img", "img2img", "inpaint", "upscale")
    )
    # For bench/ui_latency.py: print when the window was shown, then quit.
    gui.add_argument("--exit-when-shown", action="store_true", help=argparse.SUPPRESS)
    return parser


def _addon_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="PATH[:STRENGTH]",
        help="apply a LoRA (file, or a name in the model folders); repeat for several",
    )
    parser.add_argument("--vae", help="a separate VAE (file, folder or name) for the model's own")
    parser.add_argument("--clip-skip", type=int, help="read the prompt from an earlier CLIP layer")
    parser.add_argument(
        "--models-dir",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="a model folder, A1111 or ComfyUI install to find LoRAs, embeddings and VAEs in",
    )


def _with_addons(graph, args):
    """Add LoRA, VAE and CLIP-skip nodes for the flags, after checking the files exist."""
    from dataclasses import replace

    from studio.engine.folders import find_file
    from studio.nodes.library.addons import LORA_SUFFIXES, VAE_SUFFIXES
    from studio.nodes.model_addons import add_model_addons, parse_lora_flag

    folders = _model_folders(args)

    def located(value: str, kind: str, flag: str, suffixes) -> str:
        path = Path(value).expanduser()
        if path.exists():
            return str(path)
        found = None if path.is_absolute() else find_file(value, kind, folders, suffixes)
        if found is None:
            raise ParameterError(
                f"{flag} {value}: no such file, and none of that name in the model folders."
            )
        return str(found)

    loras = []
    for value in args.lora:
        try:
            choice = parse_lora_flag(value)
        except ValueError as exc:
            raise ParameterError(f"--lora: {exc}.") from None
        loras.append(replace(choice, path=located(choice.path, "lora", "--lora", LORA_SUFFIXES)))
    if args.clip_skip is not None and not 1 <= args.clip_skip <= 12:
        raise ParameterError(
            f"--clip-skip must be 1 to 12 (1 = the last layer), not {args.clip_skip}."
        )
    vae = located(args.vae, "vae", "--vae", VAE_SUFFIXES) if args.vae else None
    return add_model_addons(graph, loras=loras, vae=vae, clip_skip=args.clip_skip)


def _model_folders(args) -> list[Path]:
    """--models-dir folders first, then the ones in Settings."""
    from studio.settings import Settings

    given = [p.expanduser() for p in getattr(args, "models_dir", None) or []]
    for folder in given:
        if not folder.exists():
            raise ParameterError(f"--models-dir {folder}: folder not found.")
    return given + [Path(p) for p in Settings.load().model_folders]


def _device_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="auto, cuda, mps or cpu")
    parser.add_argument("--precision", default=None, help="fp16, bf16 or fp32")


def _memory_mode(text: str) -> str:
    from studio.settings import MEMORY_MODES

    mode = " ".join(text.strip().lower().replace("-", " ").replace("_", " ").split())
    if mode not in MEMORY_MODES:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a memory mode: use one of {', '.join(MEMORY_MODES)}."
        )
    return mode


def _memory_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--memory-mode",
        type=_memory_mode,
        default=None,
        metavar="MODE",
        help="how sampling saves memory: auto (default: from the free memory), none, "
        "attention-slicing, model-offload or sequential-offload (offloads need a CUDA GPU)",
    )


def _server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        action="append",
        metavar="URL",
        help="run on this ComfyUI server (repeat for several); default: Settings' choice",
    )
    parser.add_argument(
        "--token",
        action="append",
        help="bearer token for the server(s): one for all, or one per --server "
        "(or set STUDIO_COMFYUI_TOKEN)",
    )


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure is one line on stderr (exit 2: bad input, 1: our fault)."""
    from studio import logs

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error (one line, see _Parser)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USER_ERROR
    logs.setup(verbose=args.verbose)
    try:
        if args.self_test:
            from studio.selftest import run_self_test

            return run_self_test()
        _clean_output_folder()
        if args.command is None:
            return cmd_gui(parser.parse_args(["gui"]))
        return {
            "gui": cmd_gui,
            "generate": cmd_generate,
            "run": cmd_run,
            "upscale": cmd_upscale,
            "models": cmd_models,
            "info": cmd_info,
        }[args.command](args)
    except StudioError as exc:
        print(f"error: {logs.one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return 130
    except RecursionError:
        log.debug("Input nested too deeply", exc_info=True)
        print("error: the input is nested too deeply to be read.", file=sys.stderr)
        return EXIT_USER_ERROR
    except MemoryError:
        log.debug("Out of memory", exc_info=True)
        print(
            "error: Studio ran out of memory: use a smaller picture, size or factor.",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    except Exception as exc:  # a bug of ours: the details go to the log file, not the terminal
        log.error("Unexpected error in `studio %s`", args.command or "", exc_info=True)
        print(
            f"error: Studio failed unexpectedly ({type(exc).__name__}); "
            f"the details are in {logs.log_file()}.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL_ERROR


def _clean_output_folder() -> None:
    """Temporary files left by a save that was killed are removed at start-up."""
    from studio.formats.files import remove_stale_temporaries
    from studio.settings import Settings

    remove_stale_temporaries(Settings.load().output_path)


class _ProgressBar:
    def __init__(self, desc: str) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.bar = None
        self.desc = desc

    def __call__(self, step) -> None:
        if self.bar is None:
            # Windowed frozen apps have no stderr; tqdm must not crash there.
            self.bar = self._tqdm(
                total=step.total,
                desc=self.desc,
                unit="step",
                file=sys.stderr,
                disable=sys.stderr is None,
            )
        self.bar.update(step.step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _choice(args):
    from studio.engine.device import choose_device
    from studio.settings import Settings

    settings = Settings.load()
    return choose_device(
        args.device or settings.device, args.precision or settings.precision or None
    )


def _default_model() -> Path:
    """The user's default model, else the small model that ships with Studio."""
    from studio.paths import DEMO_CHECKPOINT
    from studio.settings import Settings

    settings = Settings.load()
    if settings.default_model:
        return Path(settings.default_model)
    if DEMO_CHECKPOINT.is_dir():
        return DEMO_CHECKPOINT
    raise ParameterError(
        "No model given and the bundled model is missing: pass --model PATH "
        "(a .safetensors checkpoint or diffusers folder)."
    )


def _output_path(args, default_stem: str) -> Path:
    from studio.formats.files import check_output_path, remove_stale_temporaries

    if args.output is not None:
        remove_stale_temporaries(args.output.parent)
        return check_output_path(args.output)
    from studio.settings import Settings

    return Settings.load().output_path / f"{default_stem}.png"


def cmd_generate(args) -> int:
    """Fill a default workflow from the arguments and run it: the same path as the window."""
    from studio.engine.recommended import recommended_cfg
    from studio.formats.images import load_image, load_mask
    from studio.graph.validate import check
    from studio.nodes.defaults import default_workflow, set_params
    from studio.nodes.registry import specs

    if args.mask is not None and args.init is None:
        raise ParameterError("--mask needs --init: the image to inpaint.")
    if args.outpaint and args.init is None:
        raise ParameterError("--outpaint needs --init: the picture to grow.")
    if args.outpaint and args.mask is not None:
        raise ParameterError(
            "--outpaint paints the new area it adds, so it takes no --mask: leave one out."
        )
    if args.size:
        _check_typed_size(args.size)
    target = _output_path(args, "studio")  # a format Studio cannot write is refused first
    init = load_image(args.init) if args.init else None
    mask = load_mask(args.mask, size=init.size) if args.mask else None
    if mask is not None and mask.getextrema()[1] == 0:
        raise ParameterError(
            f"The mask {args.mask.name} is all black, so nothing would change: "
            "paint the area to repaint white."
        )
    if args.outpaint:
        _check_outpaint(init, args.outpaint)
    inpainting = mask is not None or bool(args.outpaint)
    mode = "inpaint" if inpainting else "img2img" if init is not None else "txt2img"
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    model = args.model or _default_model()

    values = {
        "model.path": str(model),
        "model.config": str(args.config or ""),
        "positive.text": args.prompt,
        "negative.text": args.negative,
        "sample.seed": seed,
        "sample.steps": args.steps,
        "sample.sampler": args.sampler,
        "sample.cfg_scale": args.cfg if args.cfg is not None else recommended_cfg(model),
        "sample.guidance_rescale": args.rescale,
        "sample.pag_scale": args.pag,
        "sample.cfg_cutoff": args.cfg_cutoff,
    }
    inputs = {}
    if mode == "txt2img":
        width, height = args.size or (0, 0)
        values.update({"latent.batch_size": args.batch})
        if args.size:
            values.update(
                {"latent.width": _round_note(width), "latent.height": _round_note(height)}
            )
    else:
        if args.size:
            init = init.resize((_round_note(args.size[0]), _round_note(args.size[1])))
            mask = mask.resize(init.size) if mask is not None else None
        inputs = {"image": init, "mask": mask}
        if args.strength is not None:
            values["sample.denoise"] = args.strength
        elif mode == "img2img":
            values["sample.denoise"] = 0.75
    if mode == "inpaint":
        values.update(
            {
                "grow.pixels": args.grow,
                "feather.pixels": args.feather,
                "crop.enabled": _masked_only(args, model, init.size),
                "crop.padding": args.padding,
                "composite.color_match": args.color_match,
            }
        )
    if args.output is None:
        target = _output_path(args, f"studio-{seed}")
    values.update({"save.folder": str(target.parent), "save.filename": target.name})
    if args.batch > 1 and mode != "txt2img":
        raise ParameterError("--batch works for text-to-image; run image-to-image once per seed.")
    graph = _with_addons(set_params(default_workflow(mode), values), args)
    if args.outpaint:
        _add_outpaint(graph, args.outpaint)
    # Bad values are reported before the (slow) model load.
    check(graph, specs())
    if mode == "txt2img" and not args.size:
        _use_native_size(graph, args)
    return _run_graph(graph, inputs, args)


def _check_outpaint(init, sides: tuple[int, int, int, int]) -> None:
    """The grown picture must be one Studio would open, checked before any model loads."""
    from studio.engine.region import MAX_EXPAND
    from studio.formats.images import DEFAULT_MAX_PIXELS

    left, top, right, bottom = sides
    if not any(sides) or not all(0 <= side <= MAX_EXPAND for side in sides):
        raise ParameterError(
            f"--outpaint adds 0 to {MAX_EXPAND} pixels a side, and at least one side must grow."
        )
    width, height = init.width + left + right, init.height + top + bottom
    if width * height > DEFAULT_MAX_PIXELS:
        raise ParameterError(
            f"--outpaint would make a {width}x{height} picture: the most is "
            f"{DEFAULT_MAX_PIXELS // 2**20} megapixels."
        )


def _masked_only(args, model, size: tuple[int, int]) -> bool:
    """--masked-only as given; by default on when the picture is larger than the model."""
    if args.masked_only is not None:
        return args.masked_only
    from studio.engine.sizes import native_size

    width, height = size
    if args.outpaint:
        left, top, right, bottom = args.outpaint
        width, height = width + left + right, height + top + bottom
    native = native_size(model, args.config or None) or 512
    return max(width, height) > native


def _add_outpaint(graph, sides: tuple[int, int, int, int]) -> None:
    """The inpaint workflow with an Outpaint node between the picture and the region: the
    grown picture is inpainted where it grew (no canvas mask)."""
    from studio.graph.document import Node

    left, top, right, bottom = sides
    params = {"left": left, "top": top, "right": right, "bottom": bottom}
    graph.add(Node("expand", "ExpandImage", params, title="Outpaint: expand"))
    graph.remove("mask")
    graph.connect("image", "image", "expand", "image")
    graph.connect("expand", "image", "region", "image")
    graph.connect("expand", "mask", "region", "mask")


def _check_typed_size(size: tuple[int, int]) -> None:
    """The size as typed must be in range (a message about its rounded value would confuse)."""
    from studio.nodes.library.sampling import SIZE

    for value in size:
        if not SIZE["minimum"] <= value <= SIZE["maximum"]:
            raise ParameterError(
                f"--size {size[0]}x{size[1]}: each side must be at least {SIZE['minimum']} "
                f"and at most {SIZE['maximum']} pixels."
            )


def _round_note(value: int) -> int:
    from studio.formats.parameters import round_to_8

    rounded = round_to_8(value)
    if rounded != value:
        print(f"note: {value} is not a multiple of 8: using {rounded}.", file=sys.stderr)
    return rounded


def _use_native_size(graph, args) -> None:
    """Without --size, generate at the size the model was trained at."""
    from studio.engine.sizes import native_size

    node = graph.nodes["model"].params
    size = native_size(node["path"], node.get("config") or None) or 512
    graph.set_param("latent", "width", size)
    graph.set_param("latent", "height", size)


def _run_graph(graph, inputs: dict, args) -> int:
    from studio.nodes.registry import specs
    from studio.runtime.events import JobCancelled, JobFailed, JobFinished, Notice, Progress
    from studio.runtime.worker import Runtime
    from studio.settings import Settings

    settings = Settings.load()
    runtime = Runtime(
        _executor(args, settings),
        device=args.device or settings.device,
        precision=args.precision or settings.precision or None,
        memory_mode=getattr(args, "memory_mode", None) or settings.memory_mode,
        output_dir=settings.output_path,
        model_folders=_model_folders(args),
    )
    bars: dict[str, _ProgressBar] = {}
    try:
        job = runtime.submit(graph, inputs)
        for event in job.events():
            if isinstance(event, Progress):
                if event.node_id not in bars:
                    node = graph.nodes[event.node_id]
                    bars[event.node_id] = _ProgressBar(node.title or specs()[node.type].title)
                bar = bars[event.node_id]
                bar(event)
            elif isinstance(event, JobFinished):
                for bar in bars.values():
                    bar.close()
                for _, _, path in event.images:
                    if path is not None:
                        print(path)
                return 0
            elif isinstance(event, JobFailed):
                raise _JobError(event.message)
            elif isinstance(event, JobCancelled):
                raise _JobError("Cancelled.")
            elif isinstance(event, Notice):
                from tqdm import tqdm  # on a line of its own, above any progress bar

                tqdm.write(f"note: {event.message}", file=sys.stderr)
    finally:
        for bar in bars.values():
            bar.close()
        runtime.shutdown()
    return 1


class _JobError(StudioError):
    pass


def _executor(args, settings):
    """The remote executor for --server (or Settings' servers); None runs on this computer."""
    from studio.runtime.remote.backend import make_executor, servers_from, servers_in_settings

    urls = getattr(args, "server", None)
    if urls:
        return make_executor(servers_from(urls, getattr(args, "token", None) or ()))
    if getattr(args, "token", None):
        raise ParameterError("--token needs --server: the ComfyUI server it is for.")
    return make_executor(servers_in_settings(settings))


def cmd_run(args) -> int:
    """Run a workflow file (ours, or ComfyUI's API format / PNG), with NODE.PARAM=VALUE changes."""
    import json

    from studio.formats.images import load_image, load_mask
    from studio.nodes.defaults import set_params

    graph = _load_any_workflow(args.workflow)
    values = {}
    for item in args.set or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ParameterError(f"--set needs NODE.PARAM=VALUE, not '{item}'.")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    set_params(graph, values)
    _with_addons(graph, args)
    inputs = {}
    if args.image:
        inputs["image"] = load_image(args.image)
    if args.mask:
        inputs["mask"] = load_mask(
            args.mask, size=inputs["image"].size if "image" in inputs else None
        )
    return _run_graph(graph, inputs, args)


def _load_any_workflow(path: Path):
    from studio.nodes.workflow_files import load_any_workflow

    return load_any_workflow(path)


def cmd_upscale(args) -> int:
    from studio.engine.budget import check_upscale
    from studio.formats.files import save_image
    from studio.formats.images import load_image
    from studio.formats.parameters import GenerationParams

    if args.scale is not None and not (args.scale > 0 and math.isfinite(args.scale)):
        raise ParameterError(f"--scale must be a positive factor such as 2 (got {args.scale:g}).")
    target = _output_path(args, f"{args.image.stem}-upscaled")
    if args.scale is not None:
        # Refused from the file's header, before the picture is decoded or torch imported.
        size = _claimed_size(args.image)
        if size is not None:
            check_upscale(*size, args.scale, model=False)
    image = load_image(args.image)
    from studio.engine import upscale

    params = GenerationParams(mode="upscale", width=image.width, height=image.height)
    if args.model is None and args.scale is None:
        from studio.paths import DEMO_UPSCALER

        # No model and no factor: the bundled x4 model, like a user's default upscaler.
        args.model = DEMO_UPSCALER if DEMO_UPSCALER.is_file() else None
    if args.model is None:
        factor = 2.0 if args.scale is None else args.scale
        check_upscale(image.width, image.height, factor, model=False)
        result = upscale.lanczos_resize(image, factor=factor)
        params = params.with_(upscaler="Lanczos", upscale_factor=factor)
        versions = {"studio": __version__}
    else:
        from studio.engine.detect import is_diffusion_checkpoint
        from studio.engine.device import software_versions

        choice = _choice(args)
        versions = software_versions(choice)
        bar = _ProgressBar("upscaling")
        try:
            if is_diffusion_checkpoint(args.model):
                from studio.engine.checkpoint import load_model

                check_upscale(image.width, image.height, 4, model=True)
                model = load_model(args.model, choice)
                if model.info.family != "sd-x4-upscaler":
                    raise ParameterError(
                        f"{args.model.name} is a {model.info.label} checkpoint, not an upscale model."
                    )
                result = upscale.upscale_with_diffusion(
                    model.base,
                    image,
                    prompt=args.prompt,
                    steps=args.steps,
                    noise_level=args.noise_level,
                    seed=args.seed,
                    progress=bar,
                )
                params = params.with_(
                    upscaler=args.model.name,
                    upscale_factor=4,
                    noise_level=args.noise_level,
                    prompt=args.prompt,
                    steps=args.steps,
                    seed=args.seed,
                )
            else:
                model = upscale.load_upscale_model(args.model, device=choice.device)
                check_upscale(image.width, image.height, model.scale, model=True)
                result = upscale.upscale_tiled(
                    model, image, tile=args.tile, overlap=args.overlap, progress=bar
                )
                params = params.with_(upscaler=args.model.name, upscale_factor=model.scale)
        finally:
            bar.close()
    params = params.with_(width=result.width, height=result.height)
    print(save_image(result, target, params, versions=versions))
    return 0


def _claimed_size(path: Path) -> tuple[int, int] | None:
    """The size an image file's header claims, or None (load_image then names the problem)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except Exception:  # anything unreadable is load_image's to explain
        return None


def cmd_gui(args) -> int:
    # Imported here: the other commands must not pay for Qt, nor the window for argparse users.
    from studio.ui.app import run

    return run(
        screenshot=args.screenshot,
        workflow=args.workflow,
        image=args.image,
        mask=args.mask,
        mode=args.mode,
        exit_when_shown=args.exit_when_shown,
    )


def cmd_models(args) -> int:
    from studio.engine.catalog import scan_models
    from studio.settings import Settings

    missing = [folder for folder in args.folders if not folder.expanduser().is_dir()]
    if missing:
        raise ParameterError(f"Folder not found: {missing[0]}.")
    folders = args.folders or [Path(p) for p in Settings.load().model_folders]
    if not folders:
        raise ParameterError("No folders given and none configured: run `studio models FOLDER`.")
    found = scan_models(folders)
    if not found:
        print("No models found.")
    from studio.logs import one_line

    for entry in found:
        print(one_line(f"{entry.kind:<10}  {entry.label:<44}  {entry.path}"))
    return 0


def cmd_info(args) -> int:
    from studio.formats.metadata import read_metadata, to_a1111
    from studio.logs import one_line, printable

    meta = read_metadata(args.image)
    if meta is None:
        print(f"{one_line(args.image.name)} holds no generation parameters.")
        return 1
    print(f"# from {meta.source} metadata")
    # Metadata comes from whoever made the file: no terminal escape sequence gets through.
    print(printable(to_a1111(meta.params)))
    return 0
