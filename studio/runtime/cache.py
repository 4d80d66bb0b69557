"""Node outputs kept between jobs, so that what did not change does not run again."""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
from collections import OrderedDict
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_BUDGET_BYTES = 1 << 30  # intermediate results (latents, conditioning, images) are small
_SMALL = 64  # what a number, a string or an unknown object is taken to cost


def estimate_bytes(value: Any) -> int:
    """Rough memory held by a node output; each object is counted once."""
    return _estimate(value, set())


def _estimate(value: Any, seen: set[int]) -> int:
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return len(value) if isinstance(value, (str, bytes)) else _SMALL
    if id(value) in seen:
        return 0
    seen.add(id(value))

    # Only modules already imported can have made the value: no import happens here.
    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        if isinstance(value, torch.nn.Module):
            tensors = [*value.parameters(), *value.buffers()]
            return sum(t.numel() * t.element_size() for t in tensors)
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(value, pil.Image):
        return value.width * value.height * len(value.getbands())
    # numpy arrays, LoadedModel, Picture, Latent, Conditioning...
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int) and not isinstance(nbytes, bool):
        return nbytes
    if isinstance(value, dict):
        return sum(_estimate(k, seen) + _estimate(v, seen) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return sum(_estimate(item, seen) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(_estimate(getattr(value, f.name, None), seen) for f in dataclasses.fields(value))
    return _SMALL


class OutputCache:
    """Node outputs by cache key, least recently used dropped first, within a byte budget."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[str, tuple[dict[str, Any], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> dict[str, Any] | None:
        """The outputs stored under `key` (now the most recently used), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def put(self, key: str, outputs: dict[str, Any]) -> bool:
        """Keep `outputs`, dropping older entries to make room; False if it alone is too big."""
        size = estimate_bytes(outputs)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.budget_bytes:
                log.debug(
                    "Not caching %s: %d bytes is over the %d budget", key, size, self.budget_bytes
                )
                return False
            while self._entries and self._bytes + size > self.budget_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped
            self._entries[key] = (outputs, size)
            self._bytes += size
            return True

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        """Estimated bytes held now."""
        return self._bytes

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)
