"""The window on a ComfyUI server: chosen in Settings, its models listed, a job from the panel."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import Qt  # noqa: E402

from studio.runtime.remote import Server  # noqa: E402
from studio.settings import Settings  # noqa: E402
from tests.fake_comfyui import Behaviour, FakeComfyUI, seed_colour  # noqa: E402

JOB_TIMEOUT = 60_000  # ms


@pytest.fixture
def fake():
    server = FakeComfyUI(token="tok").start()
    yield server
    server.close()


def test_settings_move_the_window_onto_a_server_and_back(qtbot, window, fake, tmp_path):
    from studio.ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(window.settings, window.background, window)
    dialog.backend.setCurrentIndex(dialog.backend.findData("comfyui"))
    dialog.servers.setPlainText(fake.url)
    dialog.token.setText("tok")
    dialog.check_servers()
    qtbot.waitUntil(lambda: "answers" in dialog.server_state.text(), timeout=10_000)
    assert "2 checkpoint(s)" in dialog.server_state.text()
    settings = dialog.result_settings()
    window.apply_settings(settings)
    assert window.bridge.servers == [Server(fake.url, "tok")]
    name = fake.url.split("//")[1]
    # The server's checkpoints join the model list as "NAME (on SERVER)".
    qtbot.waitUntil(
        lambda: any(c.label.endswith(f"(on {name})") for c in window.models.choices()),
        timeout=10_000,
    )
    labels = [c.label for c in window.models.choices()]
    assert f"sd_xl_base_1.0.safetensors (on {name})" in labels
    # And the servers' LoRAs join the panel's "Add LoRA" list.
    from studio.ui.loras import ModelAddonsBox

    box = window.findChild(ModelAddonsBox)
    box.add_lora.showPopup()  # opening the list fills it
    box.add_lora.hidePopup()
    offered = {
        box.add_lora.itemText(i): box.add_lora.itemData(i) for i in range(box.add_lora.count())
    }
    assert offered[f"detail.safetensors (on {name})"] == "detail.safetensors"

    # A job from the panel, as a user runs it: previews arrive, the result is staged and saved.
    fake.behaviour = Behaviour(step_delay=0.01)
    window.document.set_param("model", "path", "sd_xl_base_1.0.safetensors")
    window.document.set_param("sample", "seed", 42)
    window.panel.field("sample", "steps").widget.setValue(3)
    previews = []
    window.bridge.preview.connect(lambda image: previews.append(image))
    with qtbot.waitSignal(window.bridge.busyChanged, timeout=10_000):
        qtbot.mouseClick(window.panel.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.bridge.busy, timeout=JOB_TIMEOUT)
    assert not window.message.isVisible(), window.message.text()
    assert previews and previews[-1].shape[2] == 3
    saved = list((tmp_path / "out").glob("*.png"))
    assert len(saved) == 1
    staged = np.asarray(window.canvas.staged_image().convert("RGB"))
    assert tuple(staged[0, 0]) == seed_colour(42)
    assert len(fake.prompts) == 1

    window.apply_settings(Settings(output_folder=str(tmp_path / "out"), device="cpu"))
    assert window.bridge.servers == []
    qtbot.waitUntil(lambda: not any("(on " in c.label for c in window.models.choices()))
    from studio.ui.servers import server_files

    assert server_files("loras") == []


def test_a_broken_server_setting_is_one_sentence_and_jobs_stay_here(qtbot, window, tmp_path):
    window.apply_settings(
        Settings(output_folder=str(tmp_path / "out"), device="cpu", backend="comfyui")
    )
    assert window.bridge.servers == []
    assert window.message.isVisible()
    assert "name none" in window.message.text() and "\n" not in window.message.text()


def test_cancel_in_the_window_stops_the_job_on_the_server(qtbot, window, fake, tmp_path):
    window.apply_settings(
        Settings(
            output_folder=str(tmp_path / "out"),
            device="cpu",
            backend="comfyui",
            servers=[fake.url],
            server_tokens={fake.url: "tok"},
        )
    )
    fake.behaviour = Behaviour(step_delay=0.05)
    window.document.set_param("model", "path", "sd_xl_base_1.0.safetensors")
    window.panel.field("sample", "steps").widget.setValue(200)
    steps = []
    window.bridge.progress.connect(lambda node, step, total, left: steps.append(step))
    with qtbot.waitSignal(window.bridge.busyChanged, timeout=10_000):
        qtbot.mouseClick(window.panel.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(steps) >= 2, timeout=JOB_TIMEOUT)
    qtbot.mouseClick(window.panel.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.bridge.busy, timeout=10_000)
    assert len(fake.interrupts) == 1
    assert window.canvas.staged_count() == 0
    assert not list((tmp_path / "out").glob("*.png"))
