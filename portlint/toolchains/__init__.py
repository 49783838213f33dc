"""Vendor compilers behind one interface, each run in its own interpreter.

Optional by design: ``check`` never imports this package, and nothing here imports a vendor
package. ``portlint toolchains`` lists what is found; ``portlint verify`` runs one.
"""

from __future__ import annotations

from portlint.toolchains.base import Toolchain
from portlint.toolchains.esppq import EspPpq
from portlint.toolchains.rknn import Rknn
from portlint.toolchains.vela import Vela

TOOLCHAINS: dict[str, Toolchain] = {t.name: t for t in (Rknn(), Vela(), EspPpq())}


def for_target(*names: str) -> tuple[Toolchain, str] | None:
    """The adapter whose compiler builds for the first of ``names`` it knows (a target's
    name, then the profiles it extends), with that name."""
    for name in names:
        for toolchain in TOOLCHAINS.values():
            if toolchain.platform_for(name):
                return toolchain, name
    return None


def covered_targets() -> list[str]:
    return sorted({name for t in TOOLCHAINS.values() for name in t.platforms})
