"""The multi-node patterns profiles may name, declared apart from the code that finds them.

Profiles are loaded and validated before any graph is read, so the loader needs the names
(and the docs the descriptions) without the graph code: ``portlint.patterns`` finds the
fused patterns (declared in ``portlint.graph_patterns``) and ``portlint.defect_patterns`` the
defect patterns, each for exactly the names declared here (they check so when imported).
"""

from __future__ import annotations

FUSED_PATTERNS: dict[str, str] = {
    "SiLU": "Mul(x, Sigmoid(x)): SiLU as exporters write it",
    "HardSwish": "Mul(x, HardSigmoid(x)) with alpha 1/6, beta 0.5: HardSwish as exporters write it",
    "GeluErf": "x · 0.5 · (1 + Erf(x / √2)): exact GELU as exporters write it",
    "DecomposedLayerNorm": (
        "(x − mean(x)) / √(mean((x − mean(x))²) + ε) [· scale] [+ bias] as ReduceMean, Sub, "
        "Pow, ReduceMean, Add, Sqrt, Div [, Mul, Add]: LayerNormalization as exporters before "
        "opset 17 (and portlint's decompose) write it"
    ),
}
"""Patterns a profile may list under ``patterns`` (or ``ops``): a toolchain that fuses one runs
it as one layer, so rules judge its nodes together."""

DEFECT_PATTERNS: dict[str, str] = {
    "dfl-split": (
        "a detector's DFL convolution (softmax over the distance bins, then a 1×1 Conv "
        "with arange weights) that reads the Concat of the heads' outputs and whose output "
        "is reshaped and split into the two box corners (Split, or two Slices of one "
        "tensor): Ultralytics YOLOv8/v5u/11 exports"
    ),
    "qkv-split": (
        "a transformer's qkv projection (MatMul with constant weights, then a bias Add whose "
        "values are all equal, as in an untrained export) reshaped "
        "to [1, tokens, 3, heads, dim], transposed and split into q, k and v (Split, "
        "Gather or Slice): ViT/DeiT blocks, Swin's last stage (one window)"
    ),
    "attention-transposed": (
        "self-attention that multiplies the values by the transposed attention "
        "probabilities (q·k MatMul, Softmax, Transpose, MatMul), as Ultralytics' "
        "Attention block (C2PSA in YOLO11, PSA in YOLOv10, YOLO26) computes v @ attnᵀ"
    ),
    "attention": (
        "scaled dot-product attention: a MatMul of two activations (q·kᵀ), optionally scaled "
        "by a constant Mul or Div, a Softmax, and a MatMul of the probabilities with another "
        "activation (the values): ViT/DeiT/Swin blocks, MobileViT, LeViT"
    ),
    "gemm-pair-add": (
        "two Gemm (fully connected) layers reading the same tensor, each optionally after "
        "its own BatchNormalization, whose outputs are added: LeViT's classifier and "
        "distillation heads"
    ),
}
"""Patterns a profile's ``defects`` may name: graphs given toolchain versions fail on."""


def check_implemented(kind: str, declared: dict[str, str], implemented: set[str]) -> None:
    """Fail at import when a finder module and this catalogue disagree on the names."""
    if set(declared) != implemented:
        raise RuntimeError(
            f"{kind} patterns declared and implemented differ: "
            f"{sorted(set(declared) ^ implemented)}"
        )
