"""DESIGN.md's layer rules, checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_graph_and_formats_import_neither_torch_nor_qt():
    modules = imported_after(
        "import studio.formats.metadata, studio.formats.images, studio.formats.files"
    )
    assert "torch" not in modules and "PySide6" not in modules and "diffusers" not in modules


def test_engine_imports_no_qt():
    modules = imported_after(
        "import studio.engine.sampling, studio.engine.upscale, studio.engine.catalog, studio.cli"
    )
    assert "torch" in modules and "PySide6" not in modules


def test_cli_starts_without_torch():
    assert "torch" not in imported_after("import studio.cli; studio.cli.build_parser()")
