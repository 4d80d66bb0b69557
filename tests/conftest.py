"""Shared fixtures: headless Qt, no network, tiny models built once per session."""

from __future__ import annotations

import gc
import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


class NetworkBlocked(RuntimeError):
    pass


def _refuse(*args, **kwargs):
    raise NetworkBlocked(f"a test tried to reach the network: {args!r}")


# Tests may talk to servers they start themselves on the loopback address (the fake ComfyUI
# server); a name ("localhost") or any other address is refused, so nothing is ever resolved.
LOOPBACK = ("127.0.0.1", "::1")


def _loopback_only(original, host_of):
    def guarded(*args, **kwargs):
        if host_of(args, kwargs) not in LOOPBACK:
            _refuse(*args, **kwargs)
        return original(*args, **kwargs)

    return guarded


def _host_of_address(args, kwargs):
    # socket.connect(self, address) / create_connection(address, ...): address = (host, port...)
    address = args[1] if len(args) > 1 and isinstance(args[0], socket.socket) else args[0]
    return address[0] if isinstance(address, tuple) and address else None


@pytest.fixture(scope="session", autouse=True)
def no_network():
    """The whole session (model building and loading included) runs with connections refused,
    except to 127.0.0.1 and ::1."""
    with pytest.MonkeyPatch.context() as patch:
        for owner, name in (
            (socket.socket, "connect"),
            (socket.socket, "connect_ex"),
            (socket, "create_connection"),
        ):
            patch.setattr(owner, name, _loopback_only(getattr(owner, name), _host_of_address))
        patch.setattr(
            socket,
            "getaddrinfo",
            _loopback_only(socket.getaddrinfo, lambda a, k: a[0] if a else k.get("host")),
        )
        yield


@pytest.fixture(scope="session", autouse=True)
def collector_on_the_main_thread():
    """The window's rule for the whole session: Python's cyclic collector never runs on a
    worker thread (where it could free a Qt object left over from an earlier test); it runs
    on the main thread between tests instead (studio.ui.collector)."""
    was_enabled = gc.isenabled()
    gc.disable()
    yield
    if was_enabled:
        gc.enable()


@pytest.fixture(autouse=True)
def collect_between_tests(collector_on_the_main_thread):
    yield
    from studio.ui.collector import collect_if_due

    collect_if_due()


@pytest.fixture(autouse=True)
def isolated_config(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("STUDIO_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))


def _tiny(family: str, tmp_path_factory):
    from tests.tiny_models import make_tiny_checkpoint

    return make_tiny_checkpoint(family, tmp_path_factory.mktemp(family))


@pytest.fixture(scope="session")
def tiny_sd1(tmp_path_factory):
    return _tiny("sd1", tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_sd1_inpaint(tmp_path_factory):
    return _tiny("sd1-inpaint", tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_sd2v(tmp_path_factory):
    return _tiny("sd2-v", tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory):
    return _tiny("sdxl", tmp_path_factory)


@pytest.fixture
def window(qtbot, tmp_path):
    """The main window with its defaults (no model loaded); test files may define their own."""
    from studio.settings import Settings
    from studio.ui.main_window import MainWindow

    win = MainWindow(Settings(output_folder=str(tmp_path / "out"), device="cpu"))
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


@pytest.fixture(scope="session")
def cpu():
    from studio.engine.device import choose_device

    return choose_device("cpu")


@pytest.fixture(scope="session")
def sd1_model(tiny_sd1, cpu):
    """The tiny SD1 model loaded the way a user's checkpoint is: from its single file."""
    from studio.engine.checkpoint import load_model

    return load_model(tiny_sd1.single_file, cpu, config=tiny_sd1.config_folder)
