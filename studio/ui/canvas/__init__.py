"""The image canvas: layers, the inpainting mask, live previews and staged results.

`Canvas` is the widget the window embeds; the modules beside it are its parts:
`layers` (the picture model), `mask` (mask pixels and the brush), `commands` (undo
steps), `view` (zoom, pan, strokes), `toolbar` (controls), `convert` (PIL <-> QImage).
"""

from __future__ import annotations

from studio.ui.canvas.widget import Canvas

__all__ = ["Canvas"]
