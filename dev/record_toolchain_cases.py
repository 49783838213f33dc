"""Record real compiler runs for the replay tests in tests/test_toolchains.py.

Runs each case's model through a toolchain adapter (the real compiler, in its own venv) and
writes, per case, under ``tests/data/toolchains/<toolchain>/``: ``CASE.log`` (what the
compiler printed), ``CASE.json`` (the request, the worker's raw result file, the toolkit
version, and what the adapter made of it). The tests parse the log again and compare.
Small probe models are built here and committed beside the logs (a few KB each)::

    python dev/record_toolchain_cases.py --python ~/.venvs/rknn/bin/python
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from portlint.toolchains import TOOLCHAINS
from portlint.toolchains.run import compile_model

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "toolchains"


def _model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "probe", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def _value(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _conv_weight(name, cout, cin, seed):
    data = np.random.default_rng(seed).standard_normal((cout, cin, 3, 3)).astype(np.float32)
    return numpy_helper.from_array(data * 0.1, name)


def probes() -> dict[str, onnx.ModelProto]:
    """Small models whose compiler outcome the replay tests pin down."""
    x = _value("x", [1, 8, 16, 16])
    erf = _model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Erf", ["c"], ["e"], name="erf"),
            helper.make_node("Relu", ["e"], ["y"], name="relu"),
        ],
        [x],
        [_value("y", [1, 8, 16, 16])],
        [_conv_weight("w", 8, 8, 0)],
    )
    nonzero = _model(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("NonZero", ["r"], ["y"], name="nonzero"),
        ],
        [x],
        [_value("y", [4, None], TensorProto.INT64)],
    )
    dynamic = _model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [_value("x", ["N", 8, 16, 16])],
        [_value("y", ["N", 8, 16, 16])],
    )
    return {"erf_cpu": erf, "nonzero": nonzero, "dynamic_input": dynamic}


VELA = "tests/data/toolchains/vela"
ESP = "tests/data/toolchains/esp-ppq"
CASES_BY_TOOLCHAIN = {
    "esp-ppq": {
        # exports and loads; no backend (If); exports ops ESP-DL cannot load (Erf)
        "conv_relu_s3": (f"{ESP}/conv_relu.onnx", "esp32-s3"),
        "if_s3": (f"{ESP}/if.onnx", "esp32-s3"),
        "gelu_erf_s3": (f"{ESP}/gelu_erf.onnx", "esp32-s3"),
        "nms_s3": (f"{ESP}/nms.onnx", "esp32-s3"),
        "grouped_conv4_s3": (f"{ESP}/grouped_conv4.onnx", "esp32-s3"),
    },
    "vela": {
        # Arm's probes: a CPU op, a converter gap, a compiler crash, float ops with wrappers
        "topk_u55": (f"{VELA}/topk.onnx", "ethos-u55"),
        "castlike_u55": (f"{VELA}/castlike.onnx", "ethos-u55"),
        "conv_stride4_u55": (f"{VELA}/conv_stride4.onnx", "ethos-u55"),
        "sin_u55": (f"{VELA}/sin.onnx", "ethos-u55"),
        "conv_stride2_dil2_u55": (f"{VELA}/conv_stride2_dil2.onnx", "ethos-u55"),
    },
}
RKNN_CASES = {
    # case: (model file relative to ROOT, or a probe name; target)
    "yolov8n_rk3588": ("fixtures/yolov8n.onnx", "rk3588"),
    "dfl_head_rk3588": ("tests/data/toolchains/rknn/yolov8n_dfl_head.onnx", "rk3588"),
    "erf_cpu_rk3566": ("erf_cpu", "rk3566"),
    "nonzero_rk3588": ("nonzero", "rk3588"),
    "dynamic_input_rk3588": ("dynamic_input", "rk3588"),
    "erf_cpu_rv1106": ("erf_cpu", "rv1106"),
    # LeViT's two heads (fuse_conv_conv_add crashes) and a RepVGG pair of Convs (converts)
    "gemm_pair_rk3588": ("tests/data/toolchains/rknn/gemm_pair.onnx", "rk3588"),
    "gemm_pair_rv1106": ("tests/data/toolchains/rknn/gemm_pair.onnx", "rv1106"),
    "conv_pair_rk3588": ("tests/data/toolchains/rknn/conv_pair.onnx", "rk3588"),
    # DeiT-Tiny's first qkv projection as --reduce cut it out: its zero (uniform) bias crashes
    # seperate_exmatmul_rs_split; the same with a random bias converts
    "qkv_uniform_bias_rk3588": ("tests/data/toolchains/rknn/qkv_uniform_bias.onnx", "rk3588"),
    "qkv_varied_bias_rk3588": ("tests/data/toolchains/rknn/qkv_varied_bias.onnx", "rk3588"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", required=True, help="the toolchain venv's interpreter")
    parser.add_argument("--toolchain", default="rknn")
    parser.add_argument("--only", nargs="*", help="record only these cases")
    args = parser.parse_args()
    toolchain = TOOLCHAINS[args.toolchain]
    folder = OUT / toolchain.name
    folder.mkdir(parents=True, exist_ok=True)
    built = probes()
    cases = {"rknn": RKNN_CASES, **CASES_BY_TOOLCHAIN}[toolchain.name]
    for case, (source, target) in cases.items():
        if args.only and case not in args.only:
            continue
        if source in built:
            path = folder / f"{source}.onnx"
            onnx.save(built[source], path)
        else:
            path = ROOT / source
        result = compile_model(toolchain, path, target, args.python)
        (folder / f"{case}.log").write_text(result.log, encoding="utf-8")
        record = {
            "model": str(path.relative_to(ROOT)),
            "target": target,
            "raw": result.raw,
            "recorded": {
                k: v
                for k, v in result.to_json(with_log=False).items()
                if k not in ("raw", "seconds")
            },
            "seconds": round(result.seconds, 1),
        }
        (folder / f"{case}.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"{case}: {result.outcome} {result.error or ''} ({result.seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
