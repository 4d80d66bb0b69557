"""Reading any workflow a user may hand us: Studio JSON, ComfyUI API JSON, or a ComfyUI PNG."""

from __future__ import annotations

import json
import os
from pathlib import Path

from studio.errors import WorkflowError
from studio.graph.document import Graph
from studio.graph.serialize import MAX_WORKFLOW_BYTES


def load_any_workflow(path: str | os.PathLike[str]) -> Graph:
    """The workflow in `path`, ours or ComfyUI's (imported); WorkflowError if it is neither."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        from studio.nodes.comfyui import import_comfyui_png

        return import_comfyui_png(path)
    try:
        if path.stat().st_size > MAX_WORKFLOW_BYTES:
            raise WorkflowError(
                f"{path.name} is larger than {MAX_WORKFLOW_BYTES // 2**20} MB, "
                "too large for a workflow file."
            )
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkflowError(f"Workflow file not found: {path}.") from None
    except IsADirectoryError:
        raise WorkflowError(f"{path} is a folder, not a workflow file.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkflowError(f"{path.name} is not a readable workflow file: {exc}.") from None
    except RecursionError:
        raise WorkflowError(f"{path.name} is nested too deeply to be a workflow.") from None
    if isinstance(data, dict) and data.get("format") == "studio-workflow":
        from studio.graph.serialize import from_dict

        return from_dict(data)
    from studio.nodes.comfyui import import_comfyui

    return import_comfyui(data, name=path.stem)


def is_studio_workflow(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is (or tries to be) Studio's own workflow JSON, not ComfyUI's."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        return False
    try:
        if path.stat().st_size > MAX_WORKFLOW_BYTES:
            return True  # the ordinary loader names the problem
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return True
    from studio.graph.serialize import _looks_like_comfyui

    return not _looks_like_comfyui(data)
