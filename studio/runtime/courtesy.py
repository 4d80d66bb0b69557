"""Background loading that leaves the GUI thread its turn at the GIL.

Importing the engine (torch, diffusers, transformers: thousands of modules and a few large
native libraries) on the worker thread starved the window. Measured with the bundled model
(`bench/ui_latency.py --warmup`, a 10 ms GUI timer), three causes:

- Loading a native library holds the GIL for its whole `dlopen`, static initialisers
  included: about 270 ms for torch's libraries (`torch._C`), 35 ms for triton's, 60-160 ms
  for the CUDA libraries torch preloads with ctypes.
- The import system releases the GIL around every stat and file read and takes it back at
  once. A thread waiting for the GIL asks for it only after a whole switch interval (5 ms)
  without a release, so the waiting GUI thread sat out tens of milliseconds at a time.
- The GUI thread's own garbage collections (handled in `studio.ui.collector`).

`courteous_loading` answers the first two for the thread that enters it:

- libraries loaded through ctypes, torch's native libraries before `torch._C` is imported
  and triton's extension before it is imported are loaded by a `dlopen` made through ctypes,
  which releases the GIL around foreign calls; the import then finds them loaded;
- Python's switch interval is 1 ms instead of 5 while inside (it is process-wide; it is put
  back on leaving), so a waiting thread asks for the GIL sooner.

GUI timer gaps over 16 ms during a ~7 s background load on the 2-core machine: 33 of 680
before; 13-15 with the collector held and the GIL-free loads; 2-7 with the switch interval
too (p99 12.5-14 ms; the longest gap 70-150 ms, the CLIP tokenizer's construction in Rust,
down from 280-530 ms).
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.001

# Native code loaded without the GIL before these modules are imported: torch's libraries
# (what `torch._C` pulls in) and triton's extension (LLVM), the two that held the GIL longest.
# Their static initialisers do not touch Python.
TORCH_NATIVE = "libtorch.so"
PRELOADED_EXTENSIONS = ("triton._C.libtriton",)


def _gil_free_dlopen():
    """libc's dlopen as a ctypes function (ctypes releases the GIL around foreign calls)."""
    if sys.platform != "linux":
        return None
    try:
        function = ctypes.CDLL(None).dlopen
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_void_p
    function.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return function


class _Courtesy:
    """A meta-path finder that never finds anything: on its thread, it loads the native code
    of a few known modules without the GIL just before they are imported."""

    def __init__(self, dlopen) -> None:
        self.thread_id = threading.get_ident()
        self.dlopen = dlopen

    def find_spec(self, name, path=None, target=None):  # noqa: ARG002 (finder protocol)
        if threading.get_ident() == self.thread_id:
            if name == "torch._C":
                self._preload_torch()
            elif name in PRELOADED_EXTENSIONS:
                self._preload_extension(name, path)
        return None

    def invalidate_caches(self) -> None:
        pass

    def _preload_torch(self) -> None:
        location = getattr(sys.modules.get("torch"), "__file__", None)
        if location:
            self._load(Path(location).parent / "lib" / TORCH_NATIVE, os.RTLD_NOW)

    def _preload_extension(self, name: str, path) -> None:
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            self._load(Path(spec.origin), sys.getdlopenflags())

    def _load(self, library: Path, mode: int) -> None:
        # A failure is left to the import, which reports it the usual way.
        if library.is_file() and not self.dlopen(os.fsencode(library), mode):
            log.debug("Loading %s ahead of its import failed", library)

    def ctypes_dlopen(self, original):
        """A stand-in for ctypes' internal dlopen: the GIL-free call on this thread."""

        def load(name, mode=ctypes.DEFAULT_MODE):
            if name and threading.get_ident() == self.thread_id:
                handle = self.dlopen(os.fsencode(name), mode | os.RTLD_NOW)
                if handle:
                    return handle
            return original(name, mode)  # other threads, or the error message ctypes gives

        return load


@contextmanager
def courteous_loading() -> Iterator[None]:
    """Imports and native library loads on this thread leave other threads the GIL."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, SWITCH_INTERVAL_S))
    dlopen = _gil_free_dlopen()
    if dlopen is None:  # not Linux: only the switch interval
        try:
            yield
        finally:
            sys.setswitchinterval(interval)
        return
    finder = _Courtesy(dlopen)
    original = ctypes._dlopen
    ctypes._dlopen = finder.ctypes_dlopen(original)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        ctypes._dlopen = original
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
