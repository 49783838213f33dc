"""portlint: will this ONNX model run on that NPU, and what do I change so that it does.

The Python API is what the command line uses::

    import portlint

    report = portlint.check("model.onnx", targets=["rk3588", "hailo8"])
    for finding in report.findings:
        print(finding.rule, finding.location, finding.message)

    run = portlint.fix("model.onnx", target="hailo8", unsafe=True)
    print(run.written, run.outcome.after.verdict)

``check`` returns a ``portlint.results.Report`` and ``fix`` a ``portlint.api.FixRun``;
both raise ``portlint.errors.PortlintError`` (one-line message) on bad input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["__version__", "check", "fix"]

if TYPE_CHECKING:
    from portlint.api import check, fix


def __getattr__(name: str):
    """Import the API on first use, so ``import portlint`` (and the CLI's start) stays cheap."""
    if name in ("check", "fix"):
        from portlint import api

        return getattr(api, name)
    raise AttributeError(f"module 'portlint' has no attribute {name!r}")
