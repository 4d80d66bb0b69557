"""Background loading leaves the GUI thread the GIL (studio.runtime.courtesy)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
import types

import pytest

from studio.runtime import courtesy
from studio.runtime.courtesy import courteous_loading

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="dlopen through ctypes: Linux")


def test_the_block_shortens_the_switch_interval_and_puts_everything_back():
    interval, meta_path, dlopen = sys.getswitchinterval(), list(sys.meta_path), ctypes._dlopen
    with courteous_loading():
        assert sys.getswitchinterval() == pytest.approx(courtesy.SWITCH_INTERVAL_S)
    assert sys.getswitchinterval() == interval
    assert sys.meta_path == meta_path
    assert ctypes._dlopen is dlopen


def test_everything_is_put_back_when_the_load_fails():
    interval, meta_path, dlopen = sys.getswitchinterval(), list(sys.meta_path), ctypes._dlopen
    with pytest.raises(RuntimeError), courteous_loading():
        raise RuntimeError("the model is damaged")
    assert (sys.getswitchinterval(), sys.meta_path, ctypes._dlopen) == (interval, meta_path, dlopen)


@linux_only
def test_libraries_and_modules_load_as_usual_inside_the_block():
    name = ctypes.util.find_library("m")
    assert name
    original = ctypes._dlopen
    with courteous_loading():
        assert ctypes._dlopen is not original  # the stand-in is in place
        libm = ctypes.CDLL(name)
        libm.cos.restype = ctypes.c_double
        libm.cos.argtypes = [ctypes.c_double]
        assert libm.cos(0.0) == 1.0
        sys.modules.pop("json.tool", None)
        import json.tool  # noqa: F401 (an import through the finder)
        # A missing library still fails with ctypes' own message.
        with pytest.raises(OSError, match="no-such-library"):
            ctypes.CDLL("libstudio-no-such-library.so")


@linux_only
def test_only_the_loading_thread_uses_the_gil_free_dlopen(monkeypatch, tmp_path):
    calls: list[tuple[bytes, int]] = []

    def fake_dlopen(name, mode):
        calls.append((name, mode))
        return 1234

    finder = courtesy._Courtesy(fake_dlopen)
    original_calls: list[str] = []
    load = finder.ctypes_dlopen(lambda name, mode: original_calls.append(name) or 99)
    assert load("/lib/x.so", 0) == 1234
    assert calls and calls[0][1] & ctypes.RTLD_GLOBAL == 0
    other = threading.Thread(target=lambda: load("/lib/y.so", 0))
    other.start()
    other.join()
    assert original_calls == ["/lib/y.so"]

    # torch's native libraries are loaded just before torch._C, from torch's own folder.
    package = tmp_path / "torch"
    (package / "lib").mkdir(parents=True)
    (package / "lib" / courtesy.TORCH_NATIVE).write_bytes(b"")
    fake_torch = types.SimpleNamespace(__file__=str(package / "__init__.py"))
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    calls.clear()
    assert finder.find_spec("torch._C") is None  # finds nothing: the import goes on as usual
    assert calls == [(str(package / "lib" / courtesy.TORCH_NATIVE).encode(), os.RTLD_NOW)]
    calls.clear()
    assert finder.find_spec("torch.nn") is None
    assert calls == []
