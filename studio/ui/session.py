"""What the window does: generate and cancel, follow a job, open, paste, export, restore.

Kept apart from MainWindow (which builds and lays out the widgets) so each stays readable.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QFileDialog

from studio.errors import StudioError
from studio.ui import placement, restore
from studio.ui.loras import restore_addons_into

if TYPE_CHECKING:
    from studio.ui.main_window import MainWindow

log = logging.getLogger(__name__)

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff *.ora);;All files (*)"


class Session:
    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.last_results: list[tuple[Any, Any, Path | None]] = []
        # Where previews and results of the last submitted job go on the canvas (None: over
        # the whole image).
        self.result_rect: tuple[int, int, int, int] | None = None
        self._fit_preview = False
        self._names = ""  # what accepted results are called: the prompt
        self._first_job = True
        self._staged_saved = True  # whether every staged result was saved to the gallery

    # -- running ---------------------------------------------------------------------------

    def generate(self) -> None:
        """Submit the workflow with the canvas image and mask it needs; say so if one is missing."""
        window = self.window
        canvas, graph = window.canvas, window.document.graph
        inputs: dict[str, Any] = {}
        for node in graph.find("CanvasImage"):
            image = canvas.generation_image() if canvas.has_image() else None
            if image is None:
                window.show_message(
                    "This workflow starts from the canvas image: open, paste or drop an image first."
                )
                return
            inputs[node.params.get("slot", "image")] = image
        for node in graph.find("CanvasMask"):
            mask = canvas.mask()
            if mask is None or mask.getbbox() is None:
                window.show_message(
                    "Paint the area to repaint on the canvas first (the mask is empty)."
                )
                return
            inputs[node.params.get("slot", "mask")] = mask
        graph = graph.copy()
        seeds = []
        for node_id, param, field in window.panel.seed_fields():
            seed = field.next_seed(window.document.param_value(node_id, param))
            # The panel, the node editor and the job all show the seed that is used.
            window.document.show_param(node_id, param, seed)
            graph.set_param(node_id, param, seed)
            seeds.append(seed)
        self._resolve_region(graph)
        window.message.setVisible(False)
        window.node_editor.clear_status()
        self.result_rect = self._result_rect(graph)
        try:
            preview_rect, clip = placement.preview_area(graph, canvas, inputs.get("mask"), window)
        except StudioError as error:  # a region off the picture, typed in the node editor
            window.show_message(str(error))
            return
        canvas.set_preview_rect(preview_rect)
        canvas.set_preview_clip(clip)
        self._fit_preview = not canvas.has_image()
        self._names = placement.layer_names(graph)
        window.bridge.submit(graph, inputs)
        seed_note = f" (seed {seeds[0]})" if seeds else ""
        window.statusBar().showMessage(f"Generating{seed_note}…")

    def _resolve_region(self, graph) -> None:
        """Write the region the job works on as numbers, so its PNG says exactly what was done."""
        size = self.window.canvas.image_size()
        for node in graph.find("Region"):
            if size is not None and not (node.params.get("width") and node.params.get("height")):
                node.params.update(x=0, y=0, width=size[0], height=size[1])

    def _result_rect(self, graph) -> tuple[int, int, int, int] | None:
        # A new image with no region (an empty canvas, or a workflow without one) has its own
        # size: show it at that size from the top left corner.
        if graph.find("Region") and self.window.canvas.has_image():
            return None
        for node in graph.find("EmptyLatent"):
            width = int(node.params.get("width", 512))
            height = int(node.params.get("height", 512))
            if self.window.canvas.image_size() != (width, height):
                return (0, 0, width, height)
        return None

    def staging_changed(self) -> None:
        """Results accepted or discarded: the status bar no longer says they wait."""
        bar = self.window.statusBar()
        if self.window.canvas.staged_count() == 0 and "staged" in bar.currentMessage():
            bar.clearMessage()

    def cancel(self) -> None:
        if self.window.bridge.busy:
            self.window.progress.cancelling()
            self.window.bridge.cancel()

    def busy_changed(self, busy: bool) -> None:
        window = self.window
        window.panel.set_busy(busy)
        if busy:
            # The first job imports the engine and loads the model before its first step,
            # unless the background load (ui/warmup.py) already did.
            warmup = getattr(window, "warmup", None)
            loaded = warmup is not None and warmup.state == "ready"
            loading = self._first_job and not loaded
            window.progress.start("Loading the model…" if loading else "Starting…")
            self._first_job = False
        else:
            window.progress.stop()
            window.node_editor.set_running(None)
            window.canvas.show_preview(None)

    def preview(self, image: Any) -> None:
        self.window.canvas.show_preview(image)
        if self._fit_preview:
            # On an empty canvas the first preview is all there is to see: bring it into view.
            self._fit_preview = False
            self.window.canvas.fit()

    def node_started(self, node_id: str, title: str) -> None:
        self.window.progress.node(title)
        self.window.node_editor.set_running(node_id)

    def progress(self, node_id: str, step: int, total: int, seconds_left: float) -> None:
        self.window.progress.step(step, total, seconds_left)
        self.window.node_editor.set_node_progress(node_id, step, total)

    def finished(self, results: list) -> None:
        window = self.window
        self.last_results = results
        window.canvas.show_preview(None)
        images = [image for image, _params, _path in results]
        for _image, _params, path in reversed(results):
            if path is not None:
                window.gallery.add(path)
        if images and not placement.placed(results) and self._is_enlargement(images[0]):
            # An upscale replaces the picture with a bigger one (undoable) rather than staging
            # a result that would be squeezed back into the old picture's size.
            dropped = self._dropped_results_note()
            window.canvas.open_image(images[0], "Upscaled")
            window.tabs.setCurrentWidget(window.canvas)
            width, height = images[0].size
            window.statusBar().showMessage(
                f"Upscaled to {width}x{height} (Undo brings the original back).{dropped}", 10000
            )
        elif images:
            self._staged_saved = all(path is not None for _image, _params, path in results)
            rect = placement.result_rect(results, self.result_rect)
            names = [placement.layer_name(params, self._names) for _i, params, _p in results]
            window.canvas.stage(images, rect, names)
            window.tabs.setCurrentWidget(window.canvas)
            window.statusBar().showMessage(
                f"{len(images)} result(s) staged: accept to keep on the canvas, or discard.", 10000
            )
        else:
            window.statusBar().showMessage("Done: the workflow produced no image.", 6000)

    def _is_enlargement(self, image: Any) -> bool:
        size = self.window.canvas.image_size()
        if self.result_rect is not None or size is None:
            return False
        return image.width >= 1.5 * size[0] and image.height >= 1.5 * size[1]

    def failed(self, node_id: str | None, message: str) -> None:
        self.window.node_editor.set_node_error(node_id, message)
        self.window.show_message(message)

    def cancelled(self) -> None:
        self.window.statusBar().showMessage("Cancelled.", 5000)

    # -- images in and out -----------------------------------------------------------------

    def open_path(self, path: str) -> None:
        from studio.formats.images import load_image

        if path.lower().endswith(".ora"):
            from studio.ui.canvas_actions import open_layered

            open_layered(self.window, path)
            return
        if path.lower().endswith(".json"):  # a workflow: Studio's own or ComfyUI's API format
            from studio.ui.menus import import_workflow

            import_workflow(self.window, path)
            return

        try:
            image = load_image(Path(path))
        except StudioError as error:
            self.window.show_message(str(error))
            return
        dropped = self._dropped_results_note()
        self.window.canvas.open_image(image, Path(path).name)
        self.window.tabs.setCurrentWidget(self.window.canvas)
        self.window.statusBar().showMessage(f"Opened {Path(path).name}.{dropped}", 8000)

    def _dropped_results_note(self) -> str:
        """What replacing the picture does to staged results (it discards them), for the user."""
        count = self.window.canvas.staged_count()
        if not count:
            return ""
        kept = (
            "; the gallery keeps them"
            if self._staged_saved
            else "; the workflow did not save them all"
        )
        return f" {count} staged result(s) discarded{kept}."

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.window, "Open image", str(self.window.settings.output_path), IMAGE_FILTER
        )
        if path:
            self.open_path(path)

    def drop_file(self, path: str) -> None:
        """A file dropped outside the canvas: restore its parameters if it has any, else open it."""
        from studio.formats.metadata import read_metadata

        try:
            found = read_metadata(path) if path.lower().endswith(".png") else None
        except StudioError:
            found = None
        if found is not None:
            self.restore_parameters(path)
        else:
            self.open_path(path)

    def paste(self) -> None:
        """Open the clipboard's image on the canvas (a copied file arrives as fileDropped)."""
        data = QApplication.clipboard().mimeData()
        if data is None or not (data.hasImage() or data.hasUrls()):
            self.window.statusBar().showMessage("The clipboard holds no image.", 4000)
            return
        self.window.canvas.paste()
        self.window.tabs.setCurrentWidget(self.window.canvas)

    def export(self, path: str | None = None) -> Path | None:
        """Save the flattened canvas as a PNG; an existing file is never overwritten."""
        from studio.formats.files import save_png

        canvas = self.window.canvas
        if not canvas.has_image():
            self.window.show_message("There is nothing on the canvas to export.")
            return None
        if path is None:
            start = str(self.window.settings.output_path / "canvas.png")
            path, _ = QFileDialog.getSaveFileName(
                self.window,
                "Export image",
                start,
                "PNG image (*.png)",
                options=QFileDialog.Option.DontConfirmOverwrite,
            )
            if not path:
                return None
        image = canvas.flattened()
        if isinstance(image, QImage):
            from studio.ui.canvas.convert import pil_from_qimage

            image = pil_from_qimage(image)
        target = Path(path).with_suffix(".png")
        try:
            saved = save_png(image, target)
        except (StudioError, OSError) as error:
            self.window.show_message(f"Could not export to {target}: {error}")
            return None
        note = "" if saved == target else f" ({target.name} exists, so a new name was used)"
        self.window.statusBar().showMessage(f"Exported {saved.name}{note}", 8000)
        return saved

    # -- restoring parameters ----------------------------------------------------------------

    def restore_parameters(self, path: str) -> bool:
        """Put the parameters stored in the image at `path` into the workflow."""
        from studio.formats.metadata import read_metadata

        window = self.window
        name = Path(path).name
        try:
            found = read_metadata(path)
        except StudioError as error:
            window.show_message(str(error))
            return False
        if found is None:
            window.show_message(f"{name} holds no generation parameters.")
            return False
        mode = restore.mode_of(found.params)
        if found.workflow:
            from studio.graph.serialize import from_dict

            try:
                graph = from_dict(found.workflow)
            except StudioError as error:
                log.info("Stored workflow unusable (%s); restoring parameters only", error)
            else:
                window.load_graph(graph, mode)
                window.statusBar().showMessage(f"Restored the workflow of {name}.", 6000)
                return True
        if mode != window.mode:
            window.switch_mode(mode)
        values, notes = restore.values_for(
            window.document.graph,
            window.document.specs,
            found.params,
            restore.model_finder(window.models.choices()),
        )
        window.document.undo_stack.beginMacro("Restore parameters")  # one undo step for both
        restore.apply(window.document, values)
        notes += restore_addons_into(window.document, found.params)  # LoRAs, VAE, clip skip
        window.document.undo_stack.endMacro()
        if any(key[1] in ("width", "height") for key in values):
            window.panel.size_by_hand = True
        source = {"studio": "Studio", "a1111": "A1111", "comfyui": "ComfyUI"}.get(found.source, "")
        text = f"Restored {source} parameters from {name}."
        window.statusBar().showMessage(" ".join([text, *notes]), 10000)
        return True
