"""The ``tamis`` command line: one command per public job, each writing a manifest beside its output.

Every module in this package registers its commands on the app in ``app.py``; adding an area means
adding a module here, nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil

from tamis.cli.app import app

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("app", "__main__"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["app"]

if __name__ == "__main__":  # pragma: no cover
    app()
