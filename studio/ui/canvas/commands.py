"""Undo steps for the canvas: mask edits, mask inversion, and whole-picture changes."""

from __future__ import annotations

from PySide6.QtGui import QUndoCommand

from studio.ui.canvas.layers import Picture, PictureState
from studio.ui.canvas.mask import MaskPatch


class EditMask(QUndoCommand):
    """A brush stroke, a cleared mask or a mask set from outside: only the changed box is kept."""

    def __init__(self, picture: Picture, patch: MaskPatch, text: str) -> None:
        super().__init__(text)
        self._picture = picture
        self._patch = patch

    def redo(self) -> None:
        # The stroke is already on the mask when pushed; writing it again is cheap and harmless.
        self._picture.apply_patch(self._patch)

    def undo(self) -> None:
        self._picture.apply_patch(self._patch, undo=True)


class InvertMask(QUndoCommand):
    """Inverting is its own inverse, so nothing is stored."""

    def __init__(self, picture: Picture) -> None:
        super().__init__("Invert mask")
        self._picture = picture

    def redo(self) -> None:
        self._picture.invert_mask()

    def undo(self) -> None:
        self._picture.invert_mask()


class ChangePicture(QUndoCommand):
    """Open an image or accept a result: layers, size and mask change together, as one step."""

    def __init__(
        self, picture: Picture, before: PictureState, after: PictureState, text: str
    ) -> None:
        super().__init__(text)
        self._picture = picture
        self._before = before
        self._after = after

    def redo(self) -> None:
        self._picture.restore(self._after)

    def undo(self) -> None:
        self._picture.restore(self._before)
