"""The PySide6 window: canvas, prompt panel, node editor, gallery. The only package that imports Qt."""
