"""The window's generation rules, in one presentation model the panel, the node editor and the
canvas all go through: the mode and its workflow, what carries over between modes, the seed
policy, the model's native size and recommended CFG, the generation region and "masked area
only" on large pictures.

Widgets hold no state a job reads: a job reads the WorkflowDocument, and this model is what
keeps the document in step with the canvas and the user's choices.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from studio.engine.recommended import DEFAULT_CFG, recommended
from studio.engine.sizes import config_native_size, native_size
from studio.graph.document import Graph
from studio.graph.spec import random_seed
from studio.nodes.defaults import default_workflow

if TYPE_CHECKING:
    from studio.ui.main_window import MainWindow

log = logging.getLogger(__name__)

# A default workflow's name -> its mode (so undoing a mode switch brings the mode back too).
MODE_OF_NAME = {
    "Text to image": "txt2img",
    "Image to image": "img2img",
    "Inpaint": "inpaint",
    "Upscale": "upscale",
}
REGION_PARAMS = ("x", "y", "width", "height")
# What the user set that a mode switch keeps, by (node, param) of the default workflows, on
# top of every exposed parameter and the model node's (whether scaling a region to the model
# suits a mode is the mode's own business, so it is not carried).
CARRIED = {("region", name) for name in REGION_PARAMS}


class GenerationModel(QObject):
    """Signals: modeChanged(str)."""

    modeChanged = Signal(str)

    def __init__(self, window: MainWindow, mode: str) -> None:
        super().__init__(window)
        self.window = window
        self.mode = mode
        self.native: int | None = None  # the model's native size, once known
        self.recommended_cfg: float | None = None  # the model's CFG last put in the workflow
        self.needs_native_size = False
        self.size_by_hand = False  # once the user sets a size, models no longer reset it
        self.masked_only_by_hand = False
        self._masked_only_auto: bool | None = None  # the value last set automatically
        # The seed policy: a new random seed for every run, or the typed one.
        self.random_seed = False
        self.last_seed: int | None = None
        # Values carried between modes, even through a mode without them (upscale).
        self.carried: dict[tuple[str, str], Any] = {}
        self._switching = False
        self._picture_size: tuple[int, int] | None = None  # the canvas picture's, last seen

    # -- binding ----------------------------------------------------------------------------

    def bind(self) -> None:
        """Connect to the document and canvas (once both exist)."""
        window = self.window
        document = window.document
        document.paramChanged.connect(self._param_changed)
        document.structureChanged.connect(self._structure_changed)
        document.graphReplaced.connect(self._structure_changed)
        window.canvas.regionEdited.connect(self.set_region)
        window.canvas.imageChanged.connect(self._picture_changed)
        self._show_region()  # the workflow the window starts with

    def _param_changed(self, node_id: str, param: str, value: Any) -> None:
        node = self.window.document.graph.nodes.get(node_id)
        if node is None:
            return
        if node.type == "Region" and param in REGION_PARAMS:
            self._show_region()
        elif node.type == "CropToMask" and param == "enabled":
            if self._masked_only_auto is not None and value != self._masked_only_auto:
                self.masked_only_by_hand = True

    def _structure_changed(self) -> None:
        graph = self.window.document.graph
        mode = MODE_OF_NAME.get(graph.name, "")
        if not self._switching and mode != self.mode and self.window.panel is not None:
            # An undo or redo of a mode switch: the mode follows its workflow.
            self.mode = mode
            self.window.panel.set_mode(mode)
            self.modeChanged.emit(mode)
        self._show_region()

    # -- modes ------------------------------------------------------------------------------

    def remember(self, graph: Graph) -> None:
        """Note what the user set in `graph`, to carry it into the next mode's workflow."""
        exposed = {(e.node, e.param) for e in graph.exposed}
        for node in graph.nodes.values():
            for name, value in node.params.items():
                if (node.id, name) in exposed or (node.id, name) in CARRIED or node.id == "model":
                    self.carried[(node.id, name)] = value

    def fresh_workflow(self, mode: str, previous: Graph | None = None) -> Graph:
        """Mode `mode`'s default workflow, with what the user set before carried over.

        A workflow that makes a new image starts at the model's native size, unless the
        previous one made new images too (then its size carries over). With no previous one,
        it starts at the CFG scale the model recommends, if it recommends one.
        """
        graph = default_workflow(mode)
        if previous is not None:
            self.remember(previous)
            for node in graph.nodes.values():
                for name in list(node.params):
                    key = (node.id, name)
                    if key in self.carried and (name != "denoise" or mode != "inpaint"):
                        node.params[name] = self.carried[key]
        for node in graph.find("LoadCheckpoint"):
            if not node.params.get("path"):
                node.params["path"] = self.window.models.default_path(
                    self.window.settings.default_model
                )
        models = graph.find("LoadCheckpoint")
        if previous is None and models:
            self.recommended_cfg = recommended(models[0].params["path"]).get("cfg_scale")
            for sample in graph.find("Sample"):
                sample.params["cfg_scale"] = (
                    DEFAULT_CFG if self.recommended_cfg is None else self.recommended_cfg
                )
        # The window puts results on the canvas where they belong: only the changed area of an
        # inpainted photo comes back, not a copy of the whole photo.
        for node in graph.find("InpaintComposite"):
            node.params["output"] = "changed area"
        self.needs_native_size = bool(graph.find("EmptyLatent")) and not (
            previous is not None and previous.find("EmptyLatent")
        )
        if self.needs_native_size:
            size = self._known_native_size(graph)
            if size:
                for latent in graph.find("EmptyLatent"):
                    latent.params.update(width=size, height=size)
                self.needs_native_size = False
        self._set_masked_only(graph)
        return graph

    def switch_mode(self, mode: str) -> None:
        """Load the default workflow of `mode`, keeping prompts, model, seed and the like.

        One undo step on the workflow's history: undo brings the previous mode back."""
        window = self.window
        window.panel.set_mode(mode)
        if mode == self.mode:
            return
        graph = self.fresh_workflow(mode, window.document.graph)
        self._switching = True
        try:
            self.mode = mode
            window.panel.set_mode(mode)
            window.document.switch_graph(graph, f"Switch to {graph.name}")
        finally:
            self._switching = False
        self.modeChanged.emit(mode)
        if self.needs_native_size and self.model_path():
            # A single-file model: its size needs its weights' shapes, read off the GUI thread.
            self.size_by_hand = False
            self.apply_native_size(self.model_path())
        window.statusBar().showMessage(f"{graph.name} workflow", 3000)

    def load_graph(self, graph: Graph, mode: str = "") -> None:
        """Show `graph` (its edits start a new history); `mode` is the default workflow it is."""
        self._switching = True
        try:
            self.mode = mode
            self.window.panel.set_mode(mode)
            self.window.document.replace(graph)
        finally:
            self._switching = False
        self.modeChanged.emit(mode)

    def graph_replaced_from_elsewhere(self) -> None:
        # Another workflow came in (the node editor's Open): no mode is current.
        if not self._switching:
            self.mode = ""
            self.window.panel.set_mode("")

    # -- the model's size and CFG -----------------------------------------------------------

    def _known_native_size(self, graph: Graph) -> int | None:
        """The model's native size when its configs tell it (no weights read, no torch)."""
        for node in graph.find("LoadCheckpoint"):
            path, config = node.params.get("path", ""), node.params.get("config", "")
            size = None
            if config:
                size = config_native_size(config)
            elif path and Path(path).is_dir():
                size = config_native_size(path)
            if size:
                self.native = size
            return size
        return None

    def model_path(self) -> str:
        models = self.window.document.graph.find("LoadCheckpoint")
        return str(models[0].params.get("path", "")) if models else ""

    def apply_native_size(self, path: str) -> None:
        """Set the size to the model's native one, unless the user chose a size by hand."""
        document = self.window.document

        def done(size: int | None) -> None:
            if self.model_path() != path:
                return  # stale: the model changed meanwhile
            if size:
                self.native = size
                self.update_masked_only()
            if not size or self.size_by_hand:
                return
            for latent in document.graph.find("EmptyLatent"):
                document.set_param(latent.id, "width", size)
                document.set_param(latent.id, "height", size)

        if Path(path).is_dir():
            done(config_native_size(path))
        else:
            self.window.background.run(lambda: native_size(path), done)

    def apply_recommended(self, path: str) -> None:
        """Set the CFG scale the newly chosen model recommends. A model that recommends none
        gets the usual default back, unless the user changed the last model's value."""
        document = self.window.document
        cfg = recommended(path).get("cfg_scale")
        for sample in document.graph.find("Sample"):
            if cfg is not None:
                document.set_param(sample.id, "cfg_scale", cfg)
            elif self.recommended_cfg is not None:
                if document.param_value(sample.id, "cfg_scale") == self.recommended_cfg:
                    document.set_param(sample.id, "cfg_scale", DEFAULT_CFG)
        self.recommended_cfg = cfg

    # -- seeds ------------------------------------------------------------------------------

    def next_seed(self, current: int) -> int:
        """The seed for the next run: a fresh random one under the random policy, else `current`."""
        seed = random_seed() if self.random_seed else int(current)
        self.last_seed = seed
        return seed

    # -- the generation region --------------------------------------------------------------

    def region_nodes(self) -> list:
        return self.window.document.graph.find("Region")

    def set_region(self, region: tuple[int, int, int, int] | None) -> None:
        """The canvas frame moved: put it in the workflow (one undo step)."""
        nodes = self.region_nodes()
        if not nodes:
            return
        values = dict(zip(REGION_PARAMS, region or (0, 0, 0, 0), strict=True))
        document = self.window.document
        stack = document.undo_stack
        stack.beginMacro("Move generation region")
        for node in nodes:
            for name, value in values.items():
                document.set_param(node.id, name, int(value))
        stack.endMacro()
        for name, value in values.items():
            self.carried[("region", name)] = int(value)

    def _picture_changed(self) -> None:
        """Another picture, or the same one grown: a region set on the old size no longer says
        where to work, so the whole new picture is the region again."""
        size = self.window.canvas.image_size()
        if size != self._picture_size and self._picture_size is not None and size is not None:
            nodes = self.region_nodes()
            if nodes and any(int(nodes[0].params.get(name, 0)) for name in REGION_PARAMS):
                self.set_region(None)
        self._picture_size = size
        self.update_masked_only()

    def _show_region(self) -> None:
        nodes = self.region_nodes()
        params = nodes[0].params if nodes else {}
        region = tuple(int(params.get(name, 0)) for name in REGION_PARAMS)
        self.window.canvas.set_region(region if region[2] and region[3] else None)
        self.window.canvas.set_region_used(bool(nodes))

    # -- masked area only ---------------------------------------------------------------------

    def _picture_is_large(self) -> bool | None:
        size = self.window.canvas.image_size() if hasattr(self.window, "canvas") else None
        if size is None or not self.native:
            return None
        return max(size) > self.native

    def _set_masked_only(self, graph: Graph) -> None:
        large = self._picture_is_large()
        if large is None or self.masked_only_by_hand:
            return
        for node in graph.find("CropToMask"):
            node.params["enabled"] = large
        self._masked_only_auto = large

    def update_masked_only(self) -> None:
        """On a picture larger than the model, inpaint the masked area only (unless the user
        chose otherwise)."""
        large = self._picture_is_large()
        if large is None or self.masked_only_by_hand:
            return
        document = self.window.document
        self._masked_only_auto = large
        for node in document.graph.find("CropToMask"):
            if document.param_value(node.id, "enabled") != large:
                document.show_param(node.id, "enabled", large)
