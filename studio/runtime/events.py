"""What a job reports while it waits, runs and ends; the window and the CLI react to these."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from studio.formats.parameters import GenerationParams


@dataclass(frozen=True)
class JobQueued:
    job_id: str
    position: int  # jobs ahead of this one (the running one included); 0 = runs next


@dataclass(frozen=True)
class JobStarted:
    job_id: str


@dataclass(frozen=True)
class NodeStarted:
    job_id: str
    node_id: str
    title: str


@dataclass(frozen=True)
class NodeCached:
    """The node's result is up to date: its cached output is reused, or nothing needs it."""

    job_id: str
    node_id: str


@dataclass(frozen=True)
class NodeFinished:
    job_id: str
    node_id: str
    seconds: float


@dataclass(frozen=True)
class Progress:
    job_id: str
    node_id: str
    step: int  # steps done, 1-based
    total: int


@dataclass(frozen=True)
class Preview:
    """The running node's current estimate as a small RGB image (H x W x 3, uint8)."""

    job_id: str
    node_id: str
    image: np.ndarray = field(compare=False, repr=False)


@dataclass(frozen=True)
class JobFinished:
    job_id: str
    # What output nodes produced: (PIL image, its generation parameters, saved file or None).
    images: list[tuple[Image.Image, GenerationParams | None, Path | None]] = field(
        compare=False, repr=False
    )
    seconds: float = 0.0


@dataclass(frozen=True)
class JobFailed:
    job_id: str
    node_id: str | None  # the node to highlight, when one is to blame
    message: str  # one sentence for the user


@dataclass(frozen=True)
class JobCancelled:
    job_id: str


@dataclass(frozen=True)
class Notice:
    """Something the user should know that does not stop the job (a server dropped out...)."""

    job_id: str
    message: str  # one sentence


Event = (
    JobQueued
    | JobStarted
    | NodeStarted
    | NodeCached
    | NodeFinished
    | Progress
    | Preview
    | JobFinished
    | JobFailed
    | JobCancelled
    | Notice
)

# After one of these a job sends nothing more.
TERMINAL: tuple[type, ...] = (JobFinished, JobFailed, JobCancelled)


def is_terminal(event: Any) -> bool:
    return isinstance(event, TERMINAL)
