"""Ask ``check`` again what each recorded probe asked the compiler.

No compiler is needed: the recipe rebuilds the probe model (its hash proves it is the model
the compiler saw) and ``check`` predicts from the profile. Where the prediction and the
recorded outcome differ, the profile contradicts the compiler version that describes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from portlint.probe.evidence import Evidence, Record
from portlint.probe.judge import agrees, prediction
from portlint.probe.recipes import build_recipe, model_hash
from portlint.target import Target, load_target, shipped_target_names
from portlint.toolchains.run import ToolchainError

WORDS = {
    "reject": "the build fails",
    "cpu": "it runs on the CPU",
    "slow": "it runs on the NPU with layers the toolchain adds on the CPU",
    "npu": "it runs on the NPU",
}


@dataclass(frozen=True)
class Replayed:
    record: Record
    predicted: str | None  # None: the probe model is no longer the recorded one
    problem: str | None  # one line, or None when check agrees
    runtime: bool = False  # a limit the device's runtime enforces: the converter cannot judge it


def profile_for(evidence: Evidence) -> Target:
    """The profile that describes the evidence's toolchain version: the target itself or
    its ``@version`` variant; an error when none does (the evidence would test nothing)."""
    base = evidence.target.split("@", 1)[0]
    names = [n for n in shipped_target_names() if n == base or n.startswith(f"{base}@")]
    for name in names:
        target = load_target(name)
        if target.toolchain_version == evidence.version:
            return target
    raise ToolchainError(
        f"{evidence.path}: no profile of {base} describes {evidence.toolchain} "
        f"{evidence.version} (profiles: {', '.join(names) or 'none'})"
    )


def replay(record: Record, evidence: Evidence, target: Target) -> Replayed:
    model = build_recipe(record.recipe)
    if model_hash(model) != record.sha256:
        return Replayed(
            record,
            None,
            f"{record.id}: the probe model is not the one recorded (factory changed?); "
            f"record {evidence.target} again with portlint probe --record",
        )
    said, runtime = prediction(model, target)
    if agrees(said, record.compiler, runtime) is not False:  # agreement, or no verdict to hold
        return Replayed(record, said, None, runtime)
    words = f" ({record.message})" if record.message else ""
    return Replayed(
        record,
        said,
        f"{target.name} {record.id} [{record.fact}]: with {evidence.toolchain} "
        f"{evidence.version} {WORDS[record.compiler]}{words}; check predicts {WORDS[said]}",
    )
