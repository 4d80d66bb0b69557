"""The main window: canvas and node editor in the centre, prompt panel, gallery, progress.

The window is a view and editor of one workflow graph (the WorkflowDocument) and submits it to
the runtime through the RuntimeBridge. Nothing here imports torch: the window appears first,
and the worker thread imports torch when the first job needs the device.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QLabel,
    QMainWindow,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.graph.document import Graph
from studio.nodes.registry import specs
from studio.runtime.remote.backend import servers_or_problem
from studio.settings import Settings, config_dir
from studio.ui.background import Background
from studio.ui.bridge import RuntimeBridge
from studio.ui.canvas import Canvas
from studio.ui.collector import GuiThreadCollector
from studio.ui.document import WorkflowDocument
from studio.ui.gallery import Gallery
from studio.ui.generation import GenerationModel
from studio.ui.layers_panel import LayersPanel
from studio.ui.menus import build_menus
from studio.ui.models import ModelList
from studio.ui.node_editor import NodeEditor
from studio.ui.progress import ProgressStrip
from studio.ui.prompt_panel import PromptPanel
from studio.ui.session import Session

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    def __init__(
        self, settings: Settings | None = None, mode: str = "txt2img", parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Studio")
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else Settings.load()
        self._closing = False
        self._nodes_fitted = False
        self.panel: PromptPanel | None = None
        self.generation = GenerationModel(self, mode)
        self.collector = GuiThreadCollector(self)
        self.background = Background(self)
        self.models = ModelList(self.background, self)
        self.document = WorkflowDocument(self.fresh_workflow(mode), specs(), self)
        self.bridge = RuntimeBridge(
            device=self.settings.device,
            precision=self.settings.precision or None,
            memory_mode=self.settings.memory_mode,
            output_dir=self.settings.output_path,
            model_folders=[Path(f) for f in self.settings.model_folders],
            servers=servers_or_problem(self.settings)[0],
            parent=self,
        )
        self.bridge.previews_enabled = self.settings.preview != "none"

        self.canvas = Canvas(self)
        self.node_editor = NodeEditor(self.document, self)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.canvas, "Canvas")
        self.tabs.addTab(self.node_editor, "Nodes")
        self.message = QLabel()
        self.message.setObjectName("message")
        self.message.setWordWrap(True)
        self.message.setVisible(False)
        self.message.setStyleSheet(
            "QLabel#message { background: #6b2b2b; color: white; padding: 6px; border-radius: 3px; }"
        )
        self.message.setCursor(Qt.CursorShape.PointingHandCursor)
        self.message.mousePressEvent = lambda event: self.message.setVisible(False)
        centre = QWidget()
        column = QVBoxLayout(centre)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.message)
        column.addWidget(self.tabs, 1)
        self.setCentralWidget(centre)

        self.panel = PromptPanel(self.document, self.models, self.generation)
        self.panel.set_mode(mode)
        self.panel.setMinimumWidth(340)
        self.panel_dock = self._dock(
            "Prompt", "prompt", self.panel, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.gallery = Gallery(self.background)
        self.gallery.setMinimumWidth(140)
        self.gallery_dock = self._dock(
            "Gallery", "gallery", self.gallery, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.layers_panel = LayersPanel(self.canvas)
        self.layers_dock = self._dock(
            "Layers", "layers", self.layers_panel, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.resizeDocks(
            [self.panel_dock, self.gallery_dock], [360, 170], Qt.Orientation.Horizontal
        )
        self.progress = ProgressStrip()
        self.statusBar().addPermanentWidget(self.progress)

        self.session = Session(self)
        build_menus(self)
        self._connect()
        self.generation.bind()
        self.models.scan(self.settings.model_folders)
        self.models.scan_servers(self.bridge.servers)
        self.gallery.load(self.settings.output_path)
        if self.generation.needs_native_size and self.generation.model_path():
            self.apply_native_size(self.generation.model_path())
        elif self.generation.model_path():
            self.generation.apply_native_size(self.generation.model_path())
        self._restore_geometry()

    # -- building --------------------------------------------------------------------------

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(area, dock)
        return dock

    def _connect(self) -> None:
        session, bridge = self.session, self.bridge
        self.panel.modeRequested.connect(self.switch_mode)
        self.document.graphReplaced.connect(self._graph_replaced)
        self.panel.generateRequested.connect(session.generate)
        self.panel.cancelRequested.connect(session.cancel)
        self.panel.modelChosen.connect(self.apply_native_size)
        self.panel.modelChosen.connect(self.generation.apply_recommended)
        self.progress.cancelRequested.connect(session.cancel)
        self.gallery.openRequested.connect(session.open_path)
        self.gallery.restoreRequested.connect(session.restore_parameters)
        self.canvas.fileDropped.connect(session.open_path)
        self.canvas.stagingChanged.connect(session.staging_changed)
        self.node_editor.message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        bridge.busyChanged.connect(session.busy_changed)
        bridge.nodeStarted.connect(session.node_started)
        bridge.progress.connect(session.progress)
        bridge.preview.connect(session.preview)
        bridge.finished.connect(session.finished)
        bridge.failed.connect(session.failed)
        bridge.cancelled.connect(session.cancelled)
        bridge.notice.connect(lambda text: self.statusBar().showMessage(text, 10000))
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(session.generate)
        escape = QShortcut(QKeySequence("Esc"), self)
        escape.activated.connect(session.cancel)
        # Staged results answer these wherever focus is (plain Enter and Backspace only in the
        # canvas, so they never edit the prompt instead).
        for keys, slot in (
            (("Alt+Return", "Alt+Enter"), self.canvas.accept_staged),
            (("Alt+Backspace", "Alt+Delete"), self.canvas.discard_staged),
            (("Alt+Right",), self.canvas.next_staged),
            (("Alt+Left",), self.canvas.previous_staged),
        ):
            for key in keys:
                shortcut = QShortcut(QKeySequence(key), self)
                shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
                shortcut.activated.connect(slot)
        self.tabs.currentChanged.connect(self._tab_changed)
        self.tabs.currentChanged.connect(lambda _: self._follow_focus())
        QApplication.instance().focusChanged.connect(self._focus_changed)
        self._focus_connected = True

    def _focus_changed(self, old: QWidget | None, new: QWidget | None) -> None:
        if not self._closing:
            self._follow_focus()

    def _follow_focus(self) -> None:
        """Edit > Undo acts on what the user works on: the canvas, or the workflow."""
        focus = QApplication.focusWidget()
        on_workflow = self.tabs.currentWidget() is self.node_editor or (
            focus is not None and self.panel.isAncestorOf(focus)
        )
        stack = self.document.undo_stack if on_workflow else self.canvas.undo_stack
        self.undo_group.setActiveStack(stack)

    # -- the workflow ----------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self.generation.mode

    def fresh_workflow(self, mode: str, previous: Graph | None = None) -> Graph:
        return self.generation.fresh_workflow(mode, previous)

    def switch_mode(self, mode: str) -> None:
        """Load the default workflow of `mode`, keeping prompts, model, seed and the like."""
        self.generation.switch_mode(mode)

    def load_graph(self, graph: Graph, mode: str = "") -> None:
        """Show `graph` in the panel and node editor; `mode` is the default workflow it is, if any."""
        self.generation.load_graph(graph, mode)

    def _graph_replaced(self) -> None:
        self.generation.graph_replaced_from_elsewhere()

    def apply_native_size(self, path: str) -> None:
        """Set the size to the model's native one, unless the user chose a size by hand."""
        self.generation.apply_native_size(path)

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.node_editor and not self._nodes_fitted:
            # The first look at the graph shows all of it.
            self._nodes_fitted = True
            self.node_editor.fit()

    def show_message(self, text: str, error: bool = True) -> None:
        """Tell the user something without a modal dialog: a banner and the status bar."""
        self.statusBar().showMessage(text, 10000)
        if error:
            self.message.setText(text)
            self.message.setVisible(True)

    def apply_settings(self, settings: Settings) -> None:
        old, self.settings = self.settings, settings
        if settings.output_path != old.output_path:
            self.bridge.set_output_dir(settings.output_path)
            self.gallery.load(settings.output_path)
        if settings.model_folders != old.model_folders:
            self.bridge.set_model_folders([Path(f) for f in settings.model_folders])
            self.models.scan(settings.model_folders)
        if settings.theme != old.theme:
            from studio.ui.theme import apply_theme

            apply_theme(QApplication.instance(), settings.theme)
        self.bridge.previews_enabled = settings.preview != "none"
        self.bridge.set_memory_mode(settings.memory_mode)
        if (settings.backend, settings.servers, settings.server_tokens) != (
            old.backend,
            old.servers,
            old.server_tokens,
        ):
            from studio.ui.servers import apply_servers

            apply_servers(self, settings)
        if (settings.device, settings.precision) != (old.device, old.precision):
            if self.bridge.use_device(settings.device, settings.precision):
                self.statusBar().showMessage(f"The next job runs on '{settings.device}'.", 6000)
            else:
                self.show_message("A job is running: the new device is used after a restart.")

    # -- lifetime ---------------------------------------------------------------------------

    def _window_settings(self) -> QSettings:
        return QSettings(str(config_dir() / "window.ini"), QSettings.Format.IniFormat)

    def _restore_geometry(self) -> None:
        stored = self._window_settings()
        geometry, state = stored.value("geometry"), stored.value("state")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 860)
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        self._closing = True
        if self._focus_connected:  # a second close (a test's, say) has nothing to disconnect
            self._focus_connected = False
            QApplication.instance().focusChanged.disconnect(self._focus_changed)
        stored = self._window_settings()
        stored.setValue("geometry", self.saveGeometry())
        stored.setValue("state", self.saveState())
        stored.sync()
        # Cancel the running job (it stops within a step) without waiting for it here: a model
        # still loading cannot be interrupted, and the GUI thread must not block on it.
        # studio.ui.app waits a moment for the worker after the loop, then leaves it behind.
        self.bridge.shutdown(timeout=0.0)
        self.background.close()
        self.collector.stop()
        event.accept()

    # -- drops on the window (outside the canvas) ---------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt's name)
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt's name)
        """A PNG dropped on the window restores its parameters; other images open."""
        urls = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if not urls:
            return
        event.acceptProposedAction()
        self.session.drop_file(urls[0])
