"""Every rewrite pass, bound to its code, in the order ``fix`` runs them.

The declarations are ``portlint.pass_catalog``; importing this module imports every pass
module (and graphsurgeon), which only ``fix`` and its tests need.
"""

from __future__ import annotations

from importlib import import_module

from portlint.errors import suggest
from portlint.pass_catalog import CATALOG, PassInfo
from portlint.passes.base import Pass, Rewrite


def _bind(info: PassInfo) -> Pass:
    module, attribute = info.implementation.split(":", 1)
    rewrite = getattr(import_module(module), attribute)
    if not isinstance(rewrite, Rewrite):
        raise TypeError(f"{info.implementation} is not a Rewrite")
    return Pass.bound(info, rewrite)


PASSES: dict[str, Pass] = {name: _bind(info) for name, info in CATALOG.items()}


def get_pass(name: str) -> Pass:
    if name not in PASSES:
        raise suggest(name, list(PASSES), "pass")
    return PASSES[name]
