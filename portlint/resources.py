"""Find the shipped ``rules/`` and ``targets/`` folders.

In a wheel they are the packages ``portlint.rules`` and ``portlint.targets`` (a setuptools
``package-dir`` mapping; namespace packages, as they hold only YAML); in a checkout or an
editable install they are the top-level folders next to ``portlint/``. Both must work.
"""

from __future__ import annotations

import importlib
from pathlib import Path


def data_dir(kind: str) -> Path:
    """Return the folder holding the shipped ``kind`` data ("rules" or "targets")."""
    try:
        module = importlib.import_module(f"portlint.{kind}")
        for entry in getattr(module, "__path__", ()):
            path = Path(entry)
            if any(path.glob("*.yaml")):
                return path
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / kind
