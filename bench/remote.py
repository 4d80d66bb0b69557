"""Studio's own overhead per remote job, and the preview latency from the websocket to the window.

Against the fake ComfyUI server of the tests (tests/fake_comfyui.py, on 127.0.0.1) answering
instantly: one sampling step, no model. Prints the median time of a whole remote job (text to
image, and inpainting with its uploads and local composite), the parts of it (cutting and
exporting the graph, uploading, queue-to-finished over the websocket, downloading, saving), and
how long a preview frame takes from the server's websocket to the bridge's `preview` signal
(what the canvas draws), with the window's 20 Hz throttle.

    python bench/remote.py                   # 512x512, 20 jobs
    python bench/remote.py --size 1024 --jobs 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"{statistics.median(values) * 1000:8.1f} {p95 * 1000:8.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()

    import numpy as np
    from PIL import Image, ImageDraw

    from studio.engine.device import choose_device
    from studio.formats.files import save_png
    from studio.formats.parameters import GenerationParams
    from studio.graph.serialize import to_dict
    from studio.nodes.comfyui_export import export_comfyui
    from studio.nodes.registry import specs
    from studio.runtime.events import JobFinished
    from studio.runtime.remote import RemoteExecutor, Server
    from studio.runtime.remote.client import Client
    from studio.runtime.remote.pool import fit
    from studio.runtime.remote.split import exportable_types, server_graph, split
    from studio.runtime.worker import Runtime
    from tests.fake_comfyui import Behaviour, FakeComfyUI
    from tests.test_remote import inpaint, txt2img

    size = args.size
    fake = FakeComfyUI().start()
    server = Server.parse(fake.url)
    out = Path(tempfile.mkdtemp(prefix="studio-bench-remote-"))
    cpu = choose_device("cpu")
    rng = np.random.default_rng(0)
    canvas = Image.fromarray(rng.integers(0, 255, (size, size, 3), np.uint8))
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=255)
    rows: list[tuple[str, list[float]]] = []

    # -- whole jobs through the runtime (what the window and the CLI do) ---------------------
    runtime = Runtime(RemoteExecutor([server]), device=cpu, models=object(), output_dir=out)
    for name, make, inputs in (
        ("text to image, whole job", lambda s: txt2img(seed=s, steps=1, size=size), None),
        (
            "inpaint, whole job",
            lambda s: inpaint(seed=s, steps=1),
            {"image": canvas, "mask": mask},
        ),
    ):
        times = []
        for seed in range(args.jobs + 1):
            started = time.perf_counter()
            outcome = runtime.submit(make(seed), inputs).wait(60)
            assert isinstance(outcome, JobFinished), outcome
            if seed:  # the first job imports what saving needs
                times.append(time.perf_counter() - started)
        rows.append((name, times))
    runtime.shutdown()

    # -- the parts -----------------------------------------------------------------------------
    graph = inpaint(seed=1, steps=1)
    library = specs()

    async def info() -> dict:
        async with Client(server) as client:
            return await client.object_info()

    object_info = asyncio.run(info())
    times = []
    for _ in range(args.jobs):
        started = time.perf_counter()
        part = split(graph, library, exportable_types())
        sub, ids, _ = server_graph(graph, part, {"in0": "a.png", "in1": "b.png"}, {}, 0)
        fit(export_comfyui(sub), object_info, server, ids)
        times.append(time.perf_counter() - started)
    rows.append(("cut, export, check against /object_info", times))

    async def uploads() -> list[float]:
        found = []
        async with Client(server) as client:
            for index in range(args.jobs):
                started = time.perf_counter()
                name = await client.upload(canvas, f"bench-{index}.png")
                layer = Image.new("RGBA", mask.size)
                layer.putalpha(mask.point(lambda v: 255 - v))
                await client.upload(layer, f"bench-{index}-mask.png", mask_of=name)
                found.append(time.perf_counter() - started)
        return found

    rows.append((f"upload {size}x{size} image + mask", asyncio.run(uploads())))

    prompt = export_comfyui(
        server_graph(
            txt2img(steps=1, size=size), split(txt2img(), library, exportable_types()), {}, {}, 0
        )[0]
    )

    async def round_trips() -> tuple[list[float], list[float]]:
        queued, downloads = [], []
        async with Client(server) as client:
            feed = await client.feed("bench")
            for _ in range(args.jobs):
                started = time.perf_counter()
                prompt_id = await client.submit(prompt, "bench")
                image = None
                while True:
                    message = await feed.next(10)
                    if message.type == "executed" and message.data.get("prompt_id") == prompt_id:
                        image = message.data["output"]["images"][0]
                    if (
                        message.type == "execution_success"
                        and message.data["prompt_id"] == prompt_id
                    ):
                        break
                queued.append(time.perf_counter() - started)
                started = time.perf_counter()
                data = await client.view(image)
                import io

                Image.open(io.BytesIO(data)).convert("RGB")
                downloads.append(time.perf_counter() - started)
            await feed.close()
        return queued, downloads

    queued, downloads = asyncio.run(round_trips())
    rows.append(("queue to finished over the websocket*", queued))
    rows.append((f"download + decode {size}x{size} PNG*", downloads))

    picture = Image.new("RGB", (size, size), (10, 20, 30))
    workflow = to_dict(graph)
    times = []
    for index in range(args.jobs):
        started = time.perf_counter()
        save_png(picture, out / f"save-{index}.png", GenerationParams(), workflow, {"studio": "x"})
        times.append(time.perf_counter() - started)
    rows.append((f"save {size}x{size} PNG with metadata", times))

    # -- previews: websocket -> bridge.preview ------------------------------------------------
    from PySide6.QtWidgets import QApplication

    from studio.ui.bridge import RuntimeBridge

    app = QApplication.instance() or QApplication([])
    fake.behaviour = Behaviour(step_delay=0.01, mark_previews=True)
    bridge = RuntimeBridge(servers=[server], device="cpu", output_dir=out)
    bridge.runtime = Runtime(RemoteExecutor([server]), device=cpu, models=object(), output_dir=out)
    shown: list[tuple[float, int]] = []
    bridge.preview.connect(lambda image: shown.append((time.perf_counter(), int(image[0, 0, 0]))))
    bridge.submit(txt2img(seed=99, steps=200, size=size))
    while bridge.busy:
        app.processEvents()
        time.sleep(0.0005)
    sent = {step * 8 % 256: when for when, step in fake.preview_sent}
    latencies = []
    for when, red in shown:
        mark = min(sent, key=lambda value: abs(value - red))
        # The mark repeats every 32 steps: take the newest send of it before it was shown.
        candidates = [t for t, s in fake.preview_sent if s * 8 % 256 == mark and t <= when]
        if candidates:
            latencies.append(when - max(candidates))
    bridge.shutdown()
    rows.append(
        (
            f"preview frame: websocket -> window ({len(shown)}/{len(sent) and len(fake.preview_sent)} shown)",
            latencies,
        )
    )

    fake.close()
    print(
        f"Remote jobs against the fake ComfyUI server on 127.0.0.1 ({size}x{size}, {args.jobs} runs each)"
    )
    print(f"{'':58} {'median':>8} {'p95':>8}  (ms)")
    for name, values in rows:
        print(f"{name:58} {_ms(values)}")
    print(
        "* includes the fake server's own work (queueing, a PNG encode); a real server adds its GPU time"
    )


if __name__ == "__main__":
    main()
