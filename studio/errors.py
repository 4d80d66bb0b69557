"""Every error a user can see derives from StudioError and reads as one sentence."""

from __future__ import annotations


class StudioError(Exception):
    """A problem the user can act on; str(error) is the sentence to show."""


class ModelError(StudioError):
    """A model file is missing, corrupt, unsafe or of an unknown kind."""


class ImageError(StudioError):
    """An input image or mask cannot be used."""


class ParameterError(StudioError):
    """A generation parameter is out of range or inconsistent."""


class WorkflowError(StudioError):
    """A workflow document is invalid."""


class OutOfMemoryError(StudioError):
    """The device ran out of memory."""


class Cancelled(StudioError):
    """The job was cancelled by the user."""

    def __init__(self, message: str = "Cancelled.") -> None:
        super().__init__(message)
