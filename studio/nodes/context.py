"""What a node's run function may use while a job runs. No torch at import time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from studio.engine.checkpoint import ModelCache
    from studio.engine.device import DeviceChoice
    from studio.engine.progress import CancelToken, Step


@dataclass
class RunContext:
    """Shared by every node of one job; built by the runtime's executor."""

    models: ModelCache
    device: DeviceChoice
    cancel: CancelToken
    # Reports a step of the running node (the executor tags it with the node id).
    progress: Callable[[Step], None] = lambda step: None
    # Values the window supplies: {"image": PIL image, "mask": PIL "L" image, ...}.
    inputs: dict[str, Any] = field(default_factory=dict)
    output_dir: Path = Path(".")
    model_folders: list[Path] = field(default_factory=list)
    # The workflow being run, as saved JSON, for PNG metadata.
    workflow: dict[str, Any] = field(default_factory=dict)
    # Images output nodes produced: (image, params, path or None).
    results: list[tuple[Any, Any, Path | None]] = field(default_factory=list)
    # Id of the node now running (set by the executor).
    node_id: str = ""
    # Files and folders the running node read that its parameters do not name (an embedding
    # found by name, a folder listed): the executor reruns the node when one of them changes.
    files_read: set[str] = field(default_factory=set)
    # How sampling saves memory: "auto" or a mode of engine/memory_modes.py (from the settings).
    memory_mode: str = "auto"
    # Tells the user something that does not stop the job (a Notice event; one sentence).
    notice: Callable[[str], None] = lambda message: None

    def depends_on(self, path: str | Path) -> None:
        """Note that the running node's output depends on this file or folder."""
        self.files_read.add(str(path))
