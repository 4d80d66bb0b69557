"""The sampling worker, its job queue, the graph executor and its output cache. No Qt.

Importing this package does not import torch: the worker thread imports it when the first
job needs the device.
"""

from __future__ import annotations

from studio.runtime.cache import OutputCache, estimate_bytes
from studio.runtime.events import (
    Event,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobQueued,
    JobStarted,
    NodeCached,
    NodeFinished,
    NodeStarted,
    Notice,
    Preview,
    Progress,
    is_terminal,
)
from studio.runtime.executor import Executor, NodeFailed
from studio.runtime.worker import Job, Runtime

__all__ = [
    "Event",
    "Executor",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobFinished",
    "JobQueued",
    "JobStarted",
    "NodeCached",
    "NodeFailed",
    "NodeFinished",
    "NodeStarted",
    "Notice",
    "OutputCache",
    "Preview",
    "Progress",
    "Runtime",
    "estimate_bytes",
    "is_terminal",
]
