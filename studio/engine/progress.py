"""Progress reports and cancellation shared by every long-running engine call."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from studio.errors import Cancelled


@dataclass(frozen=True)
class Step:
    """One finished unit of work: a denoising step, or a tile of an upscale."""

    step: int  # steps done so far, 1-based
    total: int
    # Small RGB preview of the current estimate (H x W x 3, uint8), or None.
    preview: np.ndarray | None = None


ProgressCallback = Callable[[Step], None]


class CancelToken:
    """Set from any thread; checked by the engine between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    def reset(self) -> None:
        self._event.clear()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()
