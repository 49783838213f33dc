"""ESP-PPQ worker: quantize one ONNX model for ESP-DL (ESP32-S3 / ESP32-P4), export the .espdl,
and record what happened.

Runs in the esp-ppq venv (``python -I esppq_worker.py ARGS``) with its private run folder as
cwd, never in portlint's; it imports nothing from portlint. ``espdl_quantize_onnx`` does
everything in one call (onnxsim, load, dispatch, calibration by running the whole graph in
PyTorch, export), so the worker wraps the exporter to tell a quantize failure from an export
failure, and prints a marker line when each stage starts. Notes:

* esp-ppq overwrites ``onnx_import_file`` with its onnxsim-simplified model: portlint already
  passes a private copy, so the worker uses it as is (and lists its op types afterwards).
* the exporter writes ``model.json`` (quantization config) and ``model.info`` (a text dump of
  the whole model, every weight value included, minutes on 10M+ parameters); the dump is
  stubbed to leave the weight values out unless ``--full-info`` is given.
* the calibration data is random (uniform [0, 1)), ``--samples`` batches of batch 1; every
  unknown dim (dynamic batch included) is pinned to 1 unless ``--input-shapes`` says otherwise.
* stderr is joined to stdout (one ordered log); tqdm's progress bars are switched off.
* onnxruntime (onnxsim runs the model in it) 1.32 has Microsoft 1DS telemetry: it writes
  ~/.cache/Microsoft/DeveloperTools/.onnxruntime/{deviceid,onnxruntime.db}, ~/.ses, and may
  resolve/POST to mobile.events.data.microsoft.com; ORT_DISABLE_TELEMETRY=1 turns it off.
"""

import argparse
import contextlib
import json
import os
import re
import sys
import time
import traceback

os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # before onnxruntime is loaded

MARK = "=== portlint stage: {} ==="
_OP_ERROR = re.compile(r"Op Execution Error: (.*)\(Type: (\w+), Num of Input")
_LAYOUT_ERROR = re.compile(r"Can not reset (\w+):(.*) layout")
EXPORT_FILE = "model.espdl"


def _versions():
    from importlib import metadata

    found = {}
    for name in ("esp-ppq", "torch", "onnx", "onnxsim", "onnxruntime", "numpy", "mmcv"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def _onnx_info(path):
    """Graph inputs (name, dims, elem type) and node op types of an ONNX file."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = []
    for value in graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.dim_value > 0 else None for d in tensor.shape.dim]
        inputs.append({"name": value.name, "dims": dims, "elem_type": tensor.elem_type})
    ops = []
    for node in graph.node:
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        ops.append(op)
    return inputs, ops


def _shapes(inputs, pins):
    shapes = []
    for value in inputs:
        dims = pins.get(value["name"]) or [d or 1 for d in value["dims"]]
        shapes.append([int(d) for d in dims])
    return shapes


def _calibration(inputs, shapes, samples):
    """``samples`` calibration batches: a tensor per batch (one input) or a list (several)."""
    import numpy as np
    import torch
    from onnx import helper

    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(samples):
        batch = []
        for value, shape in zip(inputs, shapes, strict=True):
            dtype = helper.tensor_dtype_to_np_dtype(value["elem_type"] or 1)
            if np.issubdtype(dtype, np.floating):
                batch.append(torch.rand(shape, generator=generator))
            elif dtype == np.bool_:
                batch.append(torch.rand(shape, generator=generator) > 0.5)
            else:
                batch.append(torch.randint(0, 2, shape, generator=generator))
        batches.append(batch[0] if len(batch) == 1 else batch)
    return batches


def _espdl_ops(path):
    """Op types of the nodes in an exported .espdl (16-byte EDL2 header + FlatBuffers Model)."""
    import FlatBuffers.Dl.Model as Model
    from esp_ppq.parser.espdl import helper  # puts esp_ppq's FlatBuffers package on sys.path

    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"EDL2":
        raise ValueError(f"not an EDL2 file: {data[:4]!r}")
    if int.from_bytes(data[4:8], "little"):
        raise ValueError("encrypted .espdl")
    graph = Model.Model.GetRootAs(data[16:], 0).Graph()
    return [helper._to_str(graph.Node(i).OpType()) for i in range(graph.NodeLength())]


def _grouped_convs(path):
    """Conv nodes with 1 < group < C_in: esp-ppq exports them as they are, but the ESP-DL
    runtime treats every group != 1 as depthwise (dl_module_conv.hpp)."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    weights = {t.name: list(t.dims) for t in graph.initializer}
    found = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        dims = weights.get(node.input[1]) if len(node.input) > 1 else None
        if group > 1 and dims:
            in_channels = dims[1] * group
            if group != in_channels:
                found.append(
                    {
                        "name": node.name,
                        "group": group,
                        "in_channels": in_channels,
                        "outputs": list(node.output),
                    }
                )
    return found


def _no_backend(ops, target, bits):
    """Op types esp-ppq's executor has no forward function for (on the target's quantized
    platform nor FP32), and those whose forward imports a package that is not installed."""
    import importlib.util

    from esp_ppq.api.espdl_interface import get_target_platform
    from esp_ppq.core import TargetPlatform
    from esp_ppq.executor.base import OPERATION_FORWARD_TABLE

    platform = get_target_platform(target, bits)
    known = set(OPERATION_FORWARD_TABLE[platform]) | set(
        OPERATION_FORWARD_TABLE[TargetPlatform.FP32]
    )
    missing = []
    needs_mmcv = {"NonMaxSuppression", "MMCVRoiAlign"}
    has_mmcv = importlib.util.find_spec("mmcv") is not None
    for op in dict.fromkeys(ops):
        if op not in known:
            missing.append({"op": op, "reason": "no backend"})
        elif op in needs_mmcv and not has_mmcv:
            missing.append({"op": op, "reason": "needs mmcv (not installed)"})
    return missing


def _exception(exc):
    """The exception and its causes, innermost last, with the innermost esp_ppq frame."""
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append({"type": type(exc).__name__, "message": str(exc)[-1500:]})
        exc = exc.__cause__ or exc.__context__
    return chain


def _frame(exc):
    while exc.__cause__ is not None:
        exc = exc.__cause__
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if "esp_ppq" in frame.filename:
            return {
                "file": frame.filename.split("site-packages/")[-1],
                "function": frame.name,
                "line": frame.lineno,
            }
    return {}


def _keeping(result, level, original):
    """A NaiveLogger method that also keeps what it logs in the result (200 lines at most)."""

    def logged(self, msg):
        found = result.setdefault(f"log_{level}s", [])
        if len(found) < 200:
            found.append(
                {"logger": self._name, "stage": result["stage"], "message": str(msg)[:500]}
            )
        return original(self, msg)

    return logged


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--target", required=True, choices=("esp32s3", "esp32p4", "esp32s31", "c"))
    parser.add_argument("--bits", type=int, default=8, choices=(8, 16))
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--input-shapes", default="{}", help='JSON {"input": [1,3,224,224]}')
    parser.add_argument("--full-info", action="store_true", help="keep the .info weight dump")
    args = parser.parse_args()

    os.dup2(1, 2)  # one ordered log on stdout
    sys.stderr = sys.stdout
    os.environ.setdefault("TQDM_DISABLE", "1")
    result = {"steps": {}, "stage": None, "exception": None, "versions": {}, "unsupported": []}
    started = time.monotonic()

    def record():
        sys.stdout.flush()
        result["seconds"] = round(time.monotonic() - started, 2)
        with open("result.json", "w") as f:
            json.dump(result, f, indent=1)

    try:
        result["stage"] = "load"
        result["versions"] = _versions()
        inputs, ops = _onnx_info(args.model)
        result["onnx_ops"] = ops
        shapes = _shapes(inputs, json.loads(args.input_shapes))
        result["inputs"] = {v["name"]: s for v, s in zip(inputs, shapes, strict=True)}
        result["dynamic_pinned"] = [v["name"] for v in inputs if None in v["dims"] or not v["dims"]]
        record()

        import esp_ppq.parser.espdl_exporter as exporter_module
        from esp_ppq.log import NaiveLogger

        # keep esp-ppq's own ERROR/WARNING lines (they still print): the exporter logs the op
        # it cannot lay out before it crashes on it
        for level in ("error", "warning"):
            setattr(NaiveLogger, level, _keeping(result, level, getattr(NaiveLogger, level)))
        from esp_ppq.api import espdl_quantize_onnx

        calibration = _calibration(inputs, shapes, args.samples)

        exporter = exporter_module.EspdlExporter
        original_export = exporter.export

        def export(self, *a, **k):
            result["steps"]["quantize"] = 0
            result["stage"] = "export"
            result["quantize_seconds"] = round(time.monotonic() - started, 2)
            record()
            print(MARK.format("export"), flush=True)
            return original_export(self, *a, **k)

        exporter.export = export
        if not args.full_info:
            printable = exporter_module.helper.printable_graph

            def no_values(model, prefix="", **_):
                return printable(model, prefix, print_value_info=True)

            exporter_module.helper.printable_graph = no_values

        result["stage"] = "quantize"
        record()
        print(MARK.format("quantize"), flush=True)
        espdl_quantize_onnx(
            onnx_import_file=args.model,
            espdl_export_file=EXPORT_FILE,
            calib_dataloader=calibration,
            calib_steps=len(calibration),
            input_shape=shapes[0] if len(shapes) == 1 else shapes,
            inputs=None,
            target=args.target,
            num_of_bits=args.bits,
            device="cpu",
            error_report=False,
        )
        sys.stdout.flush()
        print(MARK.format("done"), flush=True)
        result["steps"]["quantize"] = 0
        if not os.path.isfile(EXPORT_FILE):
            result["stage"] = "export"
            result["steps"]["export"] = 1
            result["exception"] = {"type": "MissingOutput", "message": f"no {EXPORT_FILE} written"}
            return
        result["steps"]["export"] = 0
        result["stage"] = None
        result["espdl_bytes"] = os.path.getsize(EXPORT_FILE)
        result["exported_ops"] = _espdl_ops(EXPORT_FILE)
        result["grouped_convs"] = _grouped_convs(args.model)
    except BaseException as exc:  # everything the toolkit raises is its verdict
        traceback.print_exc(file=sys.stdout)
        stage = result["stage"] or "load"
        if stage in ("quantize", "export"):
            result["steps"].setdefault(stage, 1)
        chain = _exception(exc)
        result["exception"] = dict(chain[-1])
        result["exception"]["outer"] = chain[0] if len(chain) > 1 else None
        result["exception"]["chain"] = chain
        result["exception"]["frame"] = _frame(exc)
        for item in chain:  # the node esp-ppq's executor was running when it failed
            match = _OP_ERROR.search(item["message"])
            if match:
                result["failing_op"] = {"name": match.group(1), "type": match.group(2)}
                break
        else:  # the exporter names it in an ERROR line before it crashes
            for item in result.get("log_errors", []):
                match = _LAYOUT_ERROR.search(item["message"])
                if match and item["stage"] == stage:
                    result["failing_op"] = {"name": match.group(2), "type": match.group(1)}
                    break
    finally:
        # the simplified model esp-ppq wrote over its input (or the input itself, if it failed
        # before): what it actually quantized
        with contextlib.suppress(Exception):
            result["simplified_onnx_ops"] = _onnx_info(args.model)[1]
        with contextlib.suppress(Exception):
            # ops esp-ppq cannot run at all, in what it ran (onnxsim folds some away, e.g. Ceil)
            result["unsupported"] = _no_backend(
                result.get("simplified_onnx_ops") or result.get("onnx_ops") or [],
                args.target,
                args.bits,
            )
        with contextlib.suppress(Exception):
            if result.get("failing_op"):
                # onnxsim names unnamed nodes (<OpType>_<index>); the node's tensors let the
                # caller find it in the original model
                import onnx

                for node in onnx.load(args.model, load_external_data=False).graph.node:
                    if node.name == result["failing_op"]["name"]:
                        result["failing_op"]["inputs"] = list(node.input)
                        result["failing_op"]["outputs"] = list(node.output)
                        break
        if "exported_ops" not in result:
            result["exported_ops"] = []
        result["files"] = sorted(
            os.path.join(root, name)[2:] for root, _, names in os.walk(".") for name in names
        )
        record()


if __name__ == "__main__":
    main()
