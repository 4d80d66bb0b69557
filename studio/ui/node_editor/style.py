"""How the node editor looks: port-type colours, node metrics and fonts, in one place."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont

from studio.graph import spec as graph_spec

# One colour per port type, used for ports, links and the drag curve alike, so a user can
# tell at a glance which output fits which input.
PORT_COLORS: dict[str, QColor] = {
    graph_spec.MODEL: QColor("#b39ddb"),
    graph_spec.CONDITIONING: QColor("#ffb74d"),
    graph_spec.LATENT: QColor("#f06292"),
    graph_spec.IMAGE: QColor("#64b5f6"),
    graph_spec.MASK: QColor("#81c784"),
    graph_spec.UPSCALE_MODEL: QColor("#4db6ac"),
    graph_spec.REGION: QColor("#fff176"),
}
UNKNOWN_PORT_COLOR = QColor("#9e9e9e")

# Title bars are tinted by category so a workflow reads as stages (models, text, sampling...).
CATEGORY_COLORS: dict[str, QColor] = {
    "Models": QColor("#4a3f66"),
    "Conditioning": QColor("#5c4a2a"),
    "Latent": QColor("#5a2f42"),
    "Sampling": QColor("#3d4f2a"),
    "Image": QColor("#2b4a66"),
    "Canvas": QColor("#2b5550"),
    "Mask": QColor("#2f5233"),
    "Output": QColor("#5a3a2a"),
}
DEFAULT_TITLE_COLOR = QColor("#444a52")

SCENE_BACKGROUND = QColor("#1e1f22")
GRID_MINOR = QColor("#26282c")
GRID_MAJOR = QColor("#2e3035")
NODE_BODY = QColor("#2c2e33")
NODE_BORDER = QColor("#55585f")
NODE_SELECTED = QColor("#e8e8e8")
NODE_RUNNING = QColor("#4fc3f7")
NODE_ERROR = QColor("#ef5350")
ERROR_BACKGROUND = QColor("#4a1f1f")
TEXT = QColor("#e6e6e6")
DIM_TEXT = QColor("#a8abb0")
EXPOSED_MARK = QColor("#ffd54f")
NOTICE_BACKGROUND = QColor("#3a2a12")
NOTICE_BORDER = QColor("#ffb74d")

# Metrics in scene units (pixels at 100 % zoom).
NODE_WIDTH = 172
WIDE_NODE_WIDTH = 240
TITLE_HEIGHT = 26
PORT_ROW_HEIGHT = 20
PORT_RADIUS = 5.5
CORNER_RADIUS = 6.0
BODY_PADDING = 6
PROGRESS_HEIGHT = 4
GRID_STEP = 20


def port_color(port_type: str) -> QColor:
    return PORT_COLORS.get(port_type, UNKNOWN_PORT_COLOR)


def title_color(category: str) -> QColor:
    return CATEGORY_COLORS.get(category, DEFAULT_TITLE_COLOR)


def ui_font(point_size: float = 9.0, bold: bool = False) -> QFont:
    font = QFont()
    font.setPointSizeF(point_size)
    font.setBold(bold)
    return font
