"""The prompt panel's LoRA list, VAE and clip-skip fields, and prompt name completion."""

from __future__ import annotations

import pytest
import torch
from PySide6.QtWidgets import QPlainTextEdit
from safetensors.torch import save_file

from studio.formats.parameters import GenerationParams
from studio.graph import serialize
from studio.nodes.defaults import WORKFLOWS
from studio.nodes.registry import specs
from studio.settings import Settings
from studio.ui.document import WorkflowDocument
from studio.ui.loras import ModelAddonsBox, attach_completion, restore_addons_into


@pytest.fixture
def webui(tmp_path):
    root = tmp_path / "webui"
    for relative in ("models/Lora/detail.safetensors", "models/VAE/clear.safetensors"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        save_file({"x": torch.zeros(1)}, str(root / relative))
    Settings(model_folders=[str(root)]).save()
    return root


@pytest.fixture
def box(qtbot, webui):
    document = WorkflowDocument(serialize.load(WORKFLOWS / "txt2img.json"), specs())
    widget = ModelAddonsBox(document)
    qtbot.addWidget(widget)
    return widget


def model_source(document, node_id="sample"):
    return document.graph.inputs_of(node_id)["model"].src


def test_add_set_and_remove_a_lora(box, webui):
    document = box.document
    box.add_lora.showPopup()  # opening the list fills it
    box.add_lora.hidePopup()
    index = box.add_lora.findText("detail")
    assert index > 0
    box.add_lora.activated.emit(index)
    (lora,) = document.graph.find("LoRA")
    assert lora.params["path"] == str(webui / "models" / "Lora" / "detail.safetensors")
    assert model_source(document) == lora.id and model_source(document, "positive") == lora.id
    spin, slider = box._spins[lora.id]
    spin.setValue(0.6)
    assert lora.params["strength"] == 0.6 and lora.params["text_strength"] == 0.6
    assert slider.value() == 60
    document.set_param(lora.id, "strength", 0.25)  # as the node editor would
    assert box._spins[lora.id][0].value() == 0.25
    box._remove(lora.id)
    assert not document.graph.find("LoRA") and model_source(document) == "model"
    document.undo_stack.undo()
    assert document.graph.find("LoRA") and box.rows.count() == 1


def test_vae_and_clip_skip_fields(box, webui):
    document = box.document
    box.vae.showPopup()
    box.vae.hidePopup()
    box.vae.activated.emit(box.vae.findText("clear.safetensors"))
    (vae,) = document.graph.find("LoadVAE")
    assert model_source(document, "decode") == vae.id
    box.clip_skip.setValue(2)
    (skip,) = document.graph.find("ClipSkip")
    assert skip.params["clip_skip"] == 2
    box.clip_skip.setValue(3)
    assert document.graph.find("ClipSkip")[0].params["clip_skip"] == 3
    box.clip_skip.setValue(1)
    box.vae.activated.emit(0)
    assert not document.graph.find("ClipSkip") and not document.graph.find("LoadVAE")
    assert model_source(document, "decode") == "model"


def test_restore_names_what_is_missing(box, webui):
    params = GenerationParams(
        prompt="a cat <lora:detail:0.5> <lora:gone:1>",
        extra={"Clip skip": "2", "VAE": "clear.safetensors"},
    )
    notes = restore_addons_into(box.document, params)
    assert notes == ["LoRA 'gone' (in the prompt) is not in the model folders."]
    assert box.document.graph.find("ClipSkip") and box.document.graph.find("LoadVAE")
    assert box.clip_skip.value() == 2 and box.vae.currentText() == "clear.safetensors"
    box.document.undo_stack.undo()
    assert not box.document.graph.find("ClipSkip")


def test_completion_of_lora_and_embedding_names(qtbot):
    edit = QPlainTextEdit()
    qtbot.addWidget(edit)
    edit.show()
    completer = attach_completion(edit, lambda: (["detail_tweaker", "style"], ["easynegative"]))
    edit.insertPlainText("a cat <lora:det")
    assert completer.popup().isVisible()
    assert completer.currentCompletion() == "detail_tweaker"
    completer.activated.emit("detail_tweaker")
    assert edit.toPlainText() == "a cat <lora:detail_tweaker:1>"
    edit.insertPlainText(", easy")
    assert completer.currentCompletion() == "easynegative"
    completer.activated.emit("easynegative")
    assert edit.toPlainText().endswith(", easynegative")


def test_the_box_is_hidden_for_a_workflow_without_a_checkpoint(box):
    assert not box.isHidden()
    box.document.replace(serialize.load(WORKFLOWS / "upscale.json"))
    assert box.isHidden()
    box.document.replace(serialize.load(WORKFLOWS / "txt2img.json"))
    assert not box.isHidden()
