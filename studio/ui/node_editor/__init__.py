"""The node-style pipeline editor: the workflow graph as boxes and links, edited in place."""

from __future__ import annotations

from studio.ui.node_editor.editor import NodeEditor

__all__ = ["NodeEditor"]
