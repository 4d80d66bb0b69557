"""Every module in this package defines node types; importing the package registers them all.

Adding a node type is adding one module here.
"""

from __future__ import annotations

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
