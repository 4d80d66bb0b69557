"""Where messages go: one line per problem on stderr for the user, details in a log file.

Third-party warnings (diffusers' FutureWarnings, torch's pickle notices...) are details: they go
to the log file, and to stderr only with --verbose. An unexpected error's traceback is written
to the log file, and the user is told where it is.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
from pathlib import Path

APP_NAME = "Studio"
_CONSOLE_FORMAT = "%(levelname)s: %(message)s"
_FILE_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s: %(message)s"
# Terminal control sequences in file names or metadata must not reach the terminal raw.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def log_dir() -> Path:
    """STUDIO_LOG_DIR, else beside a STUDIO_CONFIG_DIR (tests, the self-test), else the
    platform's log folder."""
    override = os.environ.get("STUDIO_LOG_DIR")
    if override:
        return Path(override)
    config = os.environ.get("STUDIO_CONFIG_DIR")
    if config:
        return Path(config) / "logs"
    import platformdirs

    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def log_file() -> Path:
    return log_dir() / "studio.log"


class _QuietFileHandler(logging.handlers.RotatingFileHandler):
    """A log file that is created on the first record, and never complains about itself."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, maxBytes=2 * 2**20, backupCount=1, encoding="utf-8", delay=True)

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is None:
            # Where the log goes is decided at the first record: the self-test moves
            # STUDIO_CONFIG_DIR into its sandbox after logging was set up.
            self.baseFilename = os.path.abspath(log_file())
            try:
                Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
            except OSError:
                return
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        pass  # an unwritable log folder must not print a traceback of its own


class _NotWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != "py.warnings"


class _NoTracebacks(logging.Filter):
    """A record carrying a traceback is for the log file; the user gets the one sentence."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.exc_info


_handlers: list[logging.Handler] = []


def setup(verbose: bool = False) -> None:
    """Console (warnings and errors of Studio's own; all with verbose) and the log file."""
    root = logging.getLogger()
    for handler in _handlers:
        root.removeHandler(handler)
        handler.close()
    _handlers.clear()
    console = logging.StreamHandler()
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter(_CONSOLE_FORMAT))
    console.addFilter(_NoTracebacks())
    if not verbose:
        console.addFilter(_NotWarnings())
    file = _QuietFileHandler(log_file())
    file.setLevel(logging.INFO if verbose else logging.WARNING)
    file.setFormatter(logging.Formatter(_FILE_FORMAT))
    for handler in (console, file):
        root.addHandler(handler)
        _handlers.append(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # Off, then on: captureWarnings(True) does nothing when it was on before, even if
    # something (a warnings.catch_warnings block) has put another showwarning back since.
    logging.captureWarnings(False)
    logging.captureWarnings(True)
    if not verbose:
        # diffusers and transformers print their warnings through their own handlers.
        os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        # Their "Loading weights" bars are not Studio's progress: keep stderr for ours.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        for name in ("diffusers", "transformers"):
            _quiet_library(name)


def _quiet_library(name: str) -> None:
    """A library imported already (tests, the window) keeps its level: set it here too."""
    import sys

    module = sys.modules.get(f"{name}.utils.logging")
    if module is not None:
        for quiet in ("set_verbosity_error", "disable_progress_bar"):
            if hasattr(module, quiet):
                getattr(module, quiet)()


def one_line(text: object) -> str:
    """A message as one printable line: control characters escaped, '..' at the end made '.'."""
    line = " ".join(str(text).split("\n")).strip()
    line = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), line)
    while line.endswith(".."):
        line = line[:-1]
    return line


def printable(text: str) -> str:
    """Text from an untrusted source with control characters escaped; newlines and tabs kept."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
