"""Studio: a native desktop image-generation studio."""

from __future__ import annotations

__version__ = "0.1.0"
