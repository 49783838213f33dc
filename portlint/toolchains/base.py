"""What every toolchain adapter answers, in one small interface.

A toolchain adapter runs a vendor compiler (rknn-toolkit2, Vela, ESP-PPQ, ...) on an ONNX
model and says what it did: converts or not, the error, the node it names, and where each
layer ended up. The vendor packages pin their own onnx, numpy, protobuf and torch, so they
never run inside portlint's interpreter: each adapter ships a worker script that runs in the
toolchain's own Python (``portlint.toolchains.isolation``), and parses what it printed.
Parsing is a pure function of the log and the worker's result file, so it is tested on
recorded logs without the compiler installed.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

NPU, CPU = "npu", "cpu"
CONVERTS, REFUSES, CRASHED, TIMED_OUT = "converts", "refuses", "crashed", "timed out"
CONVERTER_FAILED = "converter failed"
"""Outcomes. ``crashed``: the compiler died (signal, out of memory, an exception inside its own
code); for a user that is a failure like a refusal. ``timed out``: no verdict at all.
``converter failed``: the format converter in front of the compiler (onnx2tf for Vela)
failed, so the compiler never saw the model: the model does not deploy, but that is no
verdict on the NPU's profile."""

_NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_HEX = re.compile(r"0x[0-9a-fA-F]+")


@dataclass(frozen=True)
class Layer:
    """One layer of the compiled model, as the toolchain's own table lists it."""

    name: str
    op: str
    placement: str  # npu | cpu
    onnx_node: str | None = None  # the ONNX node it came from, when the name resolves to one
    inserted: bool = False  # a layer the toolchain created itself (no ONNX node or tensor)
    onnx_op: str | None = None  # the ONNX op type, where only the op (not the node) is known


@dataclass
class CompileResult:
    """What one compiler run did with one model for one target."""

    toolchain: str
    version: str
    target: str
    outcome: str  # converts | refuses | crashed | timed out
    stage: str | None = None  # where it stopped: load, build, export, convert, ...
    error: str | None = None  # one line, the toolchain's own words
    error_kind: str | None = None  # exception type or the toolchain's error class
    failing_nodes: tuple[str, ...] = ()  # ONNX node names the log blames, when it names any
    layers: tuple[Layer, ...] = ()
    suggested_options: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    log: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)  # the worker's result file, as written
    warnings: tuple[str, ...] = ()  # what converts but will not work as exported

    @property
    def converts(self) -> bool:
        return self.outcome == CONVERTS

    @property
    def has_verdict(self) -> bool:
        return self.outcome != TIMED_OUT

    @property
    def judges_profile(self) -> bool:
        """Whether the compiler itself ran, so its outcome can confirm or refute the profile."""
        return self.outcome not in (TIMED_OUT, CONVERTER_FAILED)

    @property
    def cpu_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.placement == CPU]

    def signature(self) -> str:
        """The shape of a failure, to tell 'fails the same way' from 'fails differently'.

        Names, numbers and addresses are blanked out, because a cut-down model fails on
        differently named tensors of different sizes, but the same exception in the same
        compiler stage (and fuse rule, where the toolchain names one) is the same defect.
        """
        if self.converts:
            return CONVERTS
        parts = [self.outcome, self.stage or "", self.error_kind or ""]
        rule = self.details.get("fuse_rule")
        if rule:
            parts.append(str(rule))
        else:
            text = _HEX.sub("#", _QUOTED.sub("'…'", self.error or ""))
            parts.append(_NUMBER.sub("#", text))
        return " | ".join(parts)

    def to_json(self, with_log: bool = True) -> dict[str, Any]:
        data = asdict(self)
        data["converts"] = self.converts
        data["failing_nodes"] = list(self.failing_nodes)
        data["layers"] = [asdict(layer) for layer in self.layers]
        if not with_log:
            data.pop("log")
        return data


@dataclass(frozen=True)
class CompileRequest:
    """One compiler run: the model (already copied into the run's own folder), the target and
    how to treat it. ``options`` are the toolchain's own (e.g. rknn's ``disable_rules``)."""

    model: Path
    target: str  # portlint target name
    platform: str  # the toolchain's name for the chip
    quantize: bool
    input_shapes: Mapping[str, list[int]] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)


class Toolchain(ABC):
    """A vendor compiler behind portlint's one interface.

    Subclasses declare which package they run, which portlint targets they cover (and the
    chip name the toolchain uses for each), how to install it, and how to read its output.
    """

    name: str  # short key: rknn, vela, esp-ppq
    package: str  # the pip distribution that carries the compiler
    display_name: str
    install_hint: str  # one line a user can copy
    platforms: Mapping[str, str]  # portlint base target name -> the toolchain's chip name
    worker: Path  # script run by the toolchain's interpreter; imports nothing from portlint
    option_names: tuple[str, ...] = ()
    list_options: tuple[str, ...] = ()  # options that take a list (``disable_rules=a,b``)

    def platform_for(self, target: str) -> str | None:
        """The chip name for a portlint target (``rk3588@1.6`` uses rk3588's)."""
        return self.platforms.get(target.split("@", 1)[0])

    @abstractmethod
    def quantize_for(self, target: str, ops: frozenset[str] = frozenset()) -> bool:
        """Whether a build for this target must be quantized (some NPUs are int8 only);
        ``ops``: the model's op types (a model that is quantized already is not again)."""

    @abstractmethod
    def worker_args(self, request: CompileRequest, workdir: Path) -> list[str]:
        """Command-line arguments for the worker script (after the script path)."""

    parse: Callable[[CompileRequest, str, Mapping[str, Any], Mapping[str, str]], CompileResult]
    """Turn the worker's log and result file into a ``CompileResult`` (pure): the request,
    the log, the result file, and every node and output tensor name -> its node."""


def one_line(text: str, limit: int = 400) -> str:
    """The toolchain's message on one line, for a terminal."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
