"""The gallery: thumbnails of the images in the output folder, newest first.

It is the history: it reads the output folder (so it survives restarts), and each image's
metadata is what "Restore parameters" uses. Listing and thumbnails are made off the GUI thread.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QMimeData, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QImage, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem, QMenu, QWidget

from studio.ui.background import Background

log = logging.getLogger(__name__)

THUMBNAIL = 112
MAX_ITEMS = 500  # the newest; older images stay in the folder
_PATH_ROLE = Qt.ItemDataRole.UserRole


def list_images(folder: Path, limit: int = MAX_ITEMS) -> list[Path]:
    """PNG files in `folder`, newest first."""
    try:
        files = [p for p in folder.glob("*.png") if p.is_file()]
    except OSError:
        return []
    files.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return files[:limit]


def make_thumbnail(path: Path, size: int = THUMBNAIL) -> QImage | None:
    """A small QImage of the file (safe to call off the GUI thread); None if unreadable."""
    from PIL import Image

    from studio.ui.canvas.convert import qimage_from_pil

    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))
            image.thumbnail((size, size))
            return qimage_from_pil(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        log.info("No thumbnail for %s: %s", path, exc)
        return None


class Gallery(QListWidget):
    """Signals: openRequested(path), restoreRequested(path)."""

    openRequested = Signal(str)
    restoreRequested = Signal(str)

    def __init__(self, background: Background, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._background = background
        self.folder: Path | None = None
        self._generation = 0  # bumps on reload, so a stale listing is ignored
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
        self.setGridSize(QSize(THUMBNAIL + 12, THUMBNAIL + 12))
        self.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.setMovement(QListWidget.Movement.Static)
        self.setUniformItemSizes(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self.itemDoubleClicked.connect(lambda item: self.openRequested.emit(item.data(_PATH_ROLE)))

    # -- filling -------------------------------------------------------------------------------

    def load(self, folder: Path) -> None:
        """Show the images of `folder` (listing and thumbnails happen in the background)."""
        self.folder = Path(folder)
        self._generation += 1
        generation = self._generation
        self.clear()

        def work() -> list[tuple[Path, QImage | None]]:
            return [(p, make_thumbnail(p)) for p in list_images(Path(folder))]

        def done(found: list[tuple[Path, QImage | None]]) -> None:
            if generation != self._generation:
                return
            known = set(self.paths())
            for path, thumbnail in found:
                if str(path) not in known:
                    self._append(path, thumbnail)

        self._background.run(work, done)

    def add(self, path: Path) -> None:
        """Put a new result first (its thumbnail follows from the background)."""
        item = QListWidgetItem()
        self._describe(item, Path(path))
        self.insertItem(0, item)

        def done(thumbnail: QImage | None) -> None:
            if thumbnail is not None and self.row(item) >= 0:
                item.setIcon(QPixmap.fromImage(thumbnail))

        self._background.run(lambda: make_thumbnail(Path(path)), done)

    def paths(self) -> list[str]:
        return [self.item(i).data(_PATH_ROLE) for i in range(self.count())]

    def _append(self, path: Path, thumbnail: QImage | None) -> None:
        item = QListWidgetItem()
        self._describe(item, path)
        if thumbnail is not None:
            item.setIcon(QPixmap.fromImage(thumbnail))
        self.addItem(item)

    def _describe(self, item: QListWidgetItem, path: Path) -> None:
        item.setData(_PATH_ROLE, str(path))
        item.setToolTip(path.name)
        item.setSizeHint(QSize(THUMBNAIL + 8, THUMBNAIL + 8))
        if self.iconSize().width() and item.icon().isNull():
            blank = QPixmap(THUMBNAIL, THUMBNAIL)
            blank.fill(Qt.GlobalColor.transparent)
            item.setIcon(blank)

    # -- acting ----------------------------------------------------------------------------

    def mimeData(self, items: list[QListWidgetItem]) -> QMimeData:  # noqa: N802 (Qt's name)
        # Dragged thumbnails are plain file URLs, so the canvas (or any program) can take them.
        data = QMimeData()
        data.setUrls([QUrl.fromLocalFile(item.data(_PATH_ROLE)) for item in items])
        return data

    def _menu(self, position) -> None:
        item = self.itemAt(position)
        if item is None:
            return
        path = item.data(_PATH_ROLE)
        menu = QMenu(self)
        menu.addAction("Open on canvas", lambda: self.openRequested.emit(path))
        menu.addAction("Restore parameters", lambda: self.restoreRequested.emit(path))
        menu.addSeparator()
        menu.addAction(
            "Show in folder",
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent))),
        )
        menu.exec(self.viewport().mapToGlobal(position))
