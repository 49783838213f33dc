"""Cross-check portlint's Rockchip profiles against the real RKNN-Toolkit2 compiler.

Builds small probe ONNX models on both sides of the limits in targets/rk3588.yaml (plus the
shipped fixtures), converts each one with rknn-toolkit2 for every Rockchip target whose
profile exists under targets/, runs ``portlint check`` on the same model and target, and
writes a markdown agreement table.

rknn-toolkit2 lives in its own venv (it pins torch, onnx and numpy); this script runs it in a
subprocess, one conversion per process, with a timeout::

    python3 -m venv /tmp/rknn && /tmp/rknn/bin/pip install rknn-toolkit2
    python dev/rknn_crosscheck.py --rknn-python /tmp/rknn/bin/python \
        --out /tmp/rknn_crosscheck --markdown /tmp/rknn_crosscheck/table.md

Run it with a Python that has portlint and onnx installed (the dev venv). Nothing is
downloaded. What rknn-toolkit2 says is read from its verbose log: ``E`` lines on failure,
and the "Network Layer Information Table" the compiler prints after a successful build,
whose Target column says which layers it placed on the NPU and which on the CPU.

Modes: ``fp16`` is ``build(do_quantization=False)``; ``int8`` is
``build(do_quantization=True)`` with a one-sample random dataset. The mode compared with
portlint is fp16 for rk3588/rk3566 and int8 for rv1106 (an int8-only NPU).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE_TARGETS = ("rk3588", "rk3566", "rv1106")
PRIMARY_MODE = {"rk3588": "fp16", "rk3566": "fp16", "rv1106": "int8"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
FALLBACK_WORDS = re.compile(r"cpu|fallback|not support|unsupport", re.IGNORECASE)
NOISE = re.compile(
    r"need parameter qtype|invalid tensor reset size|mean_values is None|"
    r"std_values is None|Restore temperate env"
)

# --------------------------------------------------------------------------------------
# worker: runs inside the rknn-toolkit2 venv, imports nothing from portlint
# --------------------------------------------------------------------------------------


def worker(model: str, platform: str, mode: str, result_path: str, workdir: str) -> None:
    import numpy as np

    result: dict = {"load": None, "build": None, "exception": None}
    try:
        from rknn.api import RKNN

        rknn = RKNN(verbose=True)
        result["config"] = rknn.config(target_platform=platform)
        result["load"] = rknn.load_onnx(model=model)
        if result["load"] == 0:
            dataset = None
            if mode == "int8":
                import onnx

                m = onnx.load(model, load_external_data=False)
                inits = {i.name for i in m.graph.initializer}
                files = []
                rng = np.random.default_rng(0)
                for k, inp in enumerate(i for i in m.graph.input if i.name not in inits):
                    tt = inp.type.tensor_type
                    shape = [d.dim_value if d.dim_value > 0 else 1 for d in tt.shape.dim]
                    dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
                    path = os.path.join(workdir, f"in{k}.npy")
                    np.save(path, rng.random(shape).astype(dtype))
                    files.append(path)
                dataset = os.path.join(workdir, "dataset.txt")
                Path(dataset).write_text(" ".join(files) + "\n")
            result["build"] = rknn.build(do_quantization=mode == "int8", dataset=dataset)
        rknn.release()
    except BaseException as exc:  # the toolkit raises as often as it returns -1
        result["exception"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1:]}"
    sys.stdout.flush()
    sys.stderr.flush()
    Path(result_path).write_text(json.dumps(result))


# --------------------------------------------------------------------------------------
# probe models (onnx.helper; run in the portlint venv)
# --------------------------------------------------------------------------------------


def build_probes(out: Path) -> dict[str, tuple[Path, str]]:
    """Write the probe models; returns name -> (path, what it probes)."""
    import numpy as np
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(0)
    probes: dict[str, tuple[Path, str]] = {}

    def w(name, shape):
        return nh.from_array((rng.standard_normal(shape) * 0.01).astype(np.float32), name)

    def save(name, what, nodes, inputs, inits=(), opset=17, outputs=None, check=True):
        outs = outputs or [h.make_tensor_value_info("y", T.FLOAT, None)]
        g = h.make_graph(nodes, name, inputs, outs, list(inits))
        m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)], producer_name="probe")
        m.ir_version = 8
        m = onnx.shape_inference.infer_shapes(m)
        if check:
            onnx.checker.check_model(m)
        path = out / f"{name}.onnx"
        onnx.save(m, path)
        probes[name] = (path, what)

    def x(shape=(1, 16, 64, 64), name="x", elem=T.FLOAT):
        return h.make_tensor_value_info(name, elem, list(shape))

    def relu():
        # a leading Relu keeps the probed op off the first layer (first-layer rules)
        return h.make_node("Relu", ["x"], ["r"], name="lead_relu")

    def conv(name, what, k=3, s=1, p=0, d=1, cin=16, cout=16, hw=64, group=1, first=False):
        kw = {"kernel_shape": [k, k], "strides": [s, s], "pads": [p] * 4, "dilations": [d, d]}
        if group != 1:
            kw["group"] = group
        src = "x" if first else "r"
        nodes = [] if first else [relu()]
        nodes.append(h.make_node("Conv", [src, "W"], ["y"], name="probe_conv", **kw))
        hh, ww = hw if isinstance(hw, tuple) else (hw, hw)
        save(name, what, nodes, [x((1, cin, hh, ww))], [w("W", (cout, cin // group, k, k))])

    conv("conv_k3", "Conv 3x3 baseline")
    conv("conv_k31", "Conv kernel 31 (limit 31)", k=31)
    conv("conv_k33", "Conv kernel 33 (limit 31)", k=33)
    conv("conv_s7", "Conv stride 7 (limit 7)", s=7)
    conv("conv_s8", "Conv stride 8 (limit 7)", s=8)
    conv("conv_p15", "Conv pads 15 (limit 15)", p=15)
    conv("conv_p16", "Conv pads 16 (limit 15)", p=16)
    conv("conv_d31", "Conv dilation 31 (limit 31)", d=31, hw=128)
    conv("conv_d32", "Conv dilation 32 (limit 31)", d=32, hw=128)
    conv("conv_oc8184", "Conv out_channels 8184 (limit 8184)", k=1, cout=8184, hw=8)
    conv("conv_oc8185", "Conv out_channels 8185 (limit 8184)", k=1, cout=8185, hw=8)
    conv("conv_ic8192", "Conv in_channels 8192 (limit 8192)", k=1, cin=8192, hw=8)
    conv("conv_ic8193", "Conv in_channels 8193 (limit 8192)", k=1, cin=8193, hw=8)
    conv("dwconv_k7", "depthwise Conv kernel 7 (limit 8)", k=7, group=16)
    conv("dwconv_k8", "depthwise Conv kernel 8 (limit 8)", k=8, group=16)
    conv("dwconv_k9", "depthwise Conv kernel 9 (limit 8)", k=9, group=16)
    # first-layer input-size restrictions (1.4.0)
    conv(
        "first_conv_k11", "first-layer Conv 11x11 on 3ch (kh*kw=121 < 128)", k=11, cin=3, first=True
    )
    conv(
        "first_conv_k13",
        "first-layer Conv 13x13 on 3ch (kh*kw=169 >= 128)",
        k=13,
        cin=3,
        first=True,
    )
    conv(
        "first_conv_w2389",
        "first-layer Conv 3x3, W=2389 (W*kh=7167 < 7168)",
        cin=3,
        hw=(8, 2389),
        first=True,
    )
    conv(
        "first_conv_w2390",
        "first-layer Conv 3x3, W=2390 (W*kh=7170 >= 7168)",
        cin=3,
        hw=(8, 2390),
        first=True,
    )
    for wd in (7167, 7168):
        save(
            f"first_relu_w{wd}",
            f"first-layer Relu on 3ch, W={wd} (limit W < 7168)",
            [h.make_node("Relu", ["x"], ["y"])],
            [x((1, 3, 4, wd))],
        )

    def convt(name, what, s, k=None):
        k = k or 2 * s
        save(
            name,
            what,
            [
                relu(),
                h.make_node(
                    "ConvTranspose",
                    ["r", "W"],
                    ["y"],
                    kernel_shape=[k, k],
                    strides=[s, s],
                    pads=[0] * 4,
                ),
            ],
            [x((1, 16, 32, 32))],
            [w("W", (16, 16, k, k))],
        )

    convt("convT_s2", "ConvTranspose stride 2 (one of 2/4/8)", 2)
    convt("convT_s3", "ConvTranspose stride 3 (one of 2/4/8)", 3)
    convt("convT_s4", "ConvTranspose stride 4 (one of 2/4/8)", 4)

    def pool(name, what, op="MaxPool", k=3, s=1, p=0, hw=64, **attrs):
        save(
            name,
            what,
            [
                relu(),
                h.make_node(
                    op, ["r"], ["y"], kernel_shape=[k, k], strides=[s, s], pads=[p] * 4, **attrs
                ),
            ],
            [x((1, 16, hw, hw))],
        )

    pool("maxpool_k3", "MaxPool 3x3 s1 baseline")
    pool("maxpool_k7", "MaxPool kernel 7 (limit 7)", k=7)
    pool("maxpool_k8", "MaxPool kernel 8 (limit 7)", k=8)
    pool("maxpool_s8", "MaxPool stride 8 (limit 8)", s=8)
    pool("maxpool_s9", "MaxPool stride 9 (limit 8)", s=9)
    pool("maxpool_k3_p1", "MaxPool pads 1 (limit 7)", p=1)
    pool("maxpool_k9_p7", "MaxPool kernel 9, pads 7 (pads limit 7; kernel over 7)", k=9, p=7)
    pool("maxpool_k9_p8", "MaxPool kernel 9, pads 8 (pads limit 7; kernel over 7)", k=9, p=8)
    pool("maxpool_ceil0", "MaxPool k3 s2 ceil_mode 0", s=2, ceil_mode=0)
    pool("maxpool_ceil1", "MaxPool k3 s2 ceil_mode 1 (limit 0)", s=2, ceil_mode=1)
    pool("maxpool_dil2", "MaxPool dilation 2 (limit 1)", dilations=[2, 2])
    pool(
        "avgpool_k7",
        "AveragePool kernel 7 (limit 7; count_include_pad 1)",
        op="AveragePool",
        k=7,
        count_include_pad=1,
    )
    pool(
        "avgpool_k8",
        "AveragePool kernel 8 (limit 7; count_include_pad 1)",
        op="AveragePool",
        k=8,
        count_include_pad=1,
    )
    pool(
        "avgpool_k3_nopad",
        "AveragePool 3x3, no pads, count_include_pad 0 (ONNX default)",
        op="AveragePool",
    )
    pool(
        "avgpool_cip1",
        "AveragePool pads 1, count_include_pad 1",
        op="AveragePool",
        p=1,
        count_include_pad=1,
    )
    pool(
        "avgpool_cip0",
        "AveragePool pads 1, count_include_pad 0 (limit 1)",
        op="AveragePool",
        p=1,
        count_include_pad=0,
    )
    for hw in (343, 344):
        save(
            f"gap_{hw}",
            f"GlobalAveragePool over {hw}x{hw} (limit 343)",
            [relu(), h.make_node("GlobalAveragePool", ["r"], ["y"])],
            [x((1, 16, hw, hw))],
        )

    def resize(name, what, mode, scale, hw=16, **attrs):
        scales = nh.from_array(np.array([1, 1, scale, scale], dtype=np.float32), "scales")
        save(
            name,
            what,
            [relu(), h.make_node("Resize", ["r", "", "scales"], ["y"], mode=mode, **attrs)],
            [x((1, 16, hw, hw))],
            [scales],
        )

    resize("resize_nearest_x2", "Resize nearest x2", "nearest", 2)
    resize("resize_linear_x2", "Resize linear x2", "linear", 2)
    resize("resize_cubic_x2", "Resize cubic x2 (modes nearest/linear)", "cubic", 2)
    resize("resize_nearest_x8", "Resize nearest x8 (limit 8)", "nearest", 8)
    resize("resize_nearest_x16", "Resize nearest x16 (limit 8)", "nearest", 16)
    resize("resize_linear_x16", "Resize linear x16 (limit 8)", "linear", 16)

    for axis in (1, 3):
        save(
            f"softmax_axis{axis}",
            f"Softmax axis {axis} (one of [1])",
            [relu(), h.make_node("Softmax", ["r"], ["y"], axis=axis)],
            [x()],
        )
    for axis in (0, 1, 2):
        save(
            f"concat_axis{axis}",
            f"Concat axis {axis} (one of 1/2/3)",
            [
                relu(),
                h.make_node("Sigmoid", ["x"], ["s"]),
                h.make_node("Concat", ["r", "s"], ["y"], axis=axis),
            ],
            [x()],
        )

    # unsupported ops (absent from the 2.1.0 table)
    k = nh.from_array(np.array([5], dtype=np.int64), "k")
    save(
        "topk",
        "TopK (unsupported)",
        [relu(), h.make_node("TopK", ["r", "k"], ["y", "idx"], axis=-1)],
        [x()],
        [k],
        outputs=[
            h.make_tensor_value_info("y", T.FLOAT, None),
            h.make_tensor_value_info("idx", T.INT64, None),
        ],
    )
    save(
        "nonzero",
        "NonZero (unsupported)",
        [relu(), h.make_node("NonZero", ["r"], ["y"])],
        [x((1, 16, 8, 8))],
        outputs=[h.make_tensor_value_info("y", T.INT64, None)],
    )
    boxes = h.make_tensor_value_info("boxes", T.FLOAT, [1, 100, 4])
    scores = h.make_tensor_value_info("scores", T.FLOAT, [1, 1, 100])
    nms_c = [
        nh.from_array(np.array([10], dtype=np.int64), "max_out"),
        nh.from_array(np.array([0.5], dtype=np.float32), "iou"),
        nh.from_array(np.array([0.1], dtype=np.float32), "score_th"),
    ]
    save(
        "nms",
        "NonMaxSuppression (unsupported)",
        [
            h.make_node("Relu", ["boxes"], ["b"]),
            h.make_node("Sigmoid", ["scores"], ["sc"]),
            h.make_node("NonMaxSuppression", ["b", "sc", "max_out", "iou", "score_th"], ["y"]),
        ],
        [boxes, scores],
        nms_c,
        outputs=[h.make_tensor_value_info("y", T.INT64, None)],
    )
    grid = h.make_tensor_value_info("grid", T.FLOAT, [1, 32, 32, 2])
    save(
        "gridsample",
        "GridSample (unsupported)",
        [relu(), h.make_node("GridSample", ["r", "grid"], ["y"])],
        [x(), grid],
    )
    save(
        "groupnorm",
        "GroupNormalization (unsupported; opset 18)",
        [
            relu(),
            h.make_node("GroupNormalization", ["r", "gs", "gb"], ["y"], num_groups=4, epsilon=1e-5),
        ],
        [x()],
        [nh.from_array(np.ones(4, np.float32), "gs"), nh.from_array(np.zeros(4, np.float32), "gb")],
        opset=18,
        outputs=[h.make_tensor_value_info("y", T.FLOAT, [1, 16, 64, 64])],
        check=False,
    )
    # (onnx >= 1.19's checker calls the opset-18 GroupNormalization deprecated; it is valid 18)
    save(
        "range_dynamic",
        "Range with a data-dependent limit (unsupported)",
        [
            relu(),
            h.make_node("ReduceMax", ["r"], ["mx"], keepdims=0),
            h.make_node("Range", ["start", "mx", "delta"], ["rg"]),
            h.make_node("Add", ["rg", "mx"], ["y"]),
        ],
        [x((1, 16, 8, 8))],
        [
            nh.from_array(np.array(0, np.float32), "start"),
            nh.from_array(np.array(1, np.float32), "delta"),
        ],
    )

    # ops new in the 2.1.0 table (Not Supported in 1.6.0)
    ln_params = [
        nh.from_array(np.ones(128, np.float32), "ls"),
        nh.from_array(np.zeros(128, np.float32), "lb"),
    ]
    save(
        "layernorm",
        "LayerNormalization, epsilon set (2.1.0+)",
        [
            relu(),
            h.make_node("LayerNormalization", ["r", "ls", "lb"], ["y"], axis=-1, epsilon=1e-5),
        ],
        [x((1, 64, 128))],
        ln_params,
    )
    save(
        "layernorm_default_eps",
        "LayerNormalization, epsilon left to its default",
        [relu(), h.make_node("LayerNormalization", ["r", "ls", "lb"], ["y"], axis=-1)],
        [x((1, 64, 128))],
        ln_params,
    )
    save(
        "mish",
        "Mish (2.1.0+; opset 18)",
        [relu(), h.make_node("Mish", ["r"], ["y"])],
        [x()],
        opset=18,
    )
    save("erf", "Erf (2.1.0+)", [relu(), h.make_node("Erf", ["r"], ["y"])], [x()])

    # other per-op limits
    sl = [
        nh.from_array(np.array(v, dtype=np.int64), n)
        for v, n in (([0], "st"), ([64], "en"), ([3], "ax"), ([2], "sp"))
    ]
    save(
        "slice_step2",
        "Slice step 2 (limit 1)",
        [relu(), h.make_node("Slice", ["r", "st", "en", "ax", "sp"], ["y"])],
        [x()],
        sl,
    )
    pads = nh.from_array(np.array([0, 0, 2, 2, 0, 0, 2, 2], dtype=np.int64), "pads")
    for mode in ("constant", "reflect"):
        save(
            f"pad_{mode}",
            f"Pad mode {mode} (limit constant)",
            [relu(), h.make_node("Pad", ["r", "pads"], ["y"], mode=mode)],
            [x()],
            [pads],
        )
    save(
        "cast_int32",
        "Cast to int32 and back (dtype one of bool/int8/float)",
        [
            relu(),
            h.make_node("Cast", ["r"], ["c"], to=T.INT32),
            h.make_node("Cast", ["c"], ["y"], to=T.FLOAT),
        ],
        [x()],
    )

    # batch
    def conv_batch(name, what, batch, op="Relu"):
        nodes = [relu(), h.make_node("Conv", ["r", "W"], ["c"], kernel_shape=[3, 3], pads=[1] * 4)]
        nodes.append(h.make_node(op, ["c"], ["y"], **({"axis": 1} if op == "Softmax" else {})))
        save(name, what, nodes, [x((batch, 16, 64, 64))], [w("W", (16, 16, 3, 3))])

    conv_batch("dynamic_batch", "Conv+Relu, batch dim 'N' (dynamic)", "N")
    conv_batch("batch2", "Conv+Relu, batch 2", 2)
    conv_batch(
        "batch2_softmax", "Conv+Softmax(axis 1), batch 2 (Softmax batch 1 only)", 2, op="Softmax"
    )
    return probes


# --------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------


def discover_targets() -> list[tuple[str, str]]:
    """(portlint target name, rknn target_platform) for the Rockchip profiles present."""
    found = []
    for base in BASE_TARGETS:
        for path in sorted((ROOT / "targets").glob(f"{base}*.yaml")):
            stem = path.stem
            if stem == base or stem.startswith(f"{base}@"):
                found.append((stem, base))
    return found


def onnx_names(model: Path) -> frozenset[str]:
    """Node and tensor names of a model, to tell its layers from ones the toolkit inserts."""
    import onnx

    m = onnx.load(model, load_external_data=False)
    names = {i.name for i in m.graph.input}
    for n in m.graph.node:
        names.add(n.name)
        names.update(n.output)
    return frozenset(names)


def parse_rknn_log(log: str, result: dict, names: frozenset[str] = frozenset()) -> dict:
    text = ANSI.sub("", log)
    lines = text.splitlines()
    errors = []
    for i, ln in enumerate(lines):
        if not ln.startswith("E ") or "rknn-toolkit2 version" in ln:
            continue
        if ln.rstrip().endswith("Traceback (most recent call last):"):
            exc = next(
                (x for x in lines[i + 1 :] if re.match(r"^[\w.]+(Error|Exception)\b", x)), ""
            )
            ln = ln.replace("Traceback (most recent call last):", exc.strip())
        errors.append(ln.strip())
    warnings = [
        ln.strip()
        for ln in lines
        if re.match(r"^W ", ln) and FALLBACK_WORDS.search(ln) and not NOISE.search(ln)
    ]
    layers = []
    in_table = False
    for ln in lines:
        body = re.sub(r"^D RKNN: \[[^\]]*\] ?", "", ln)
        if "Network Layer Information Table" in body:
            in_table, layers = True, []
            continue
        if in_table:
            if body.startswith("<<<<") or body.startswith(">>>>"):
                in_table = False
                continue
            m = re.match(r"^(\d+)\s+(\S+)\s+(\S+)\s+(NPU|CPU)\s+.*\s(\S+)\s*$", body)
            if m:
                layers.append(
                    {
                        "op": m.group(2),
                        "dtype": m.group(3),
                        "target": m.group(4),
                        "name": m.group(5),
                    }
                )
    cpu = [
        x
        for x in layers
        if x["target"] == "CPU" and x["op"] not in ("InputOperator", "OutputOperator")
    ]
    ok = result.get("load") == 0 and result.get("build") == 0 and not result.get("exception")
    if not ok:
        reason = errors[0] if errors else str(result.get("exception") or "no error line")
        reason = re.sub(r"^E (RKNN: \[[^\]]*\] )?", "", reason)
        status, summary = "failed", f"failed: {reason}"
    elif cpu:
        for x in cpu:
            tensor = re.sub(r"#\d+$", "", x["name"].split(":", 1)[-1])
            # 2.2.0 prefixes the ONNX op type ("TopK:TopK_y" for tensor y); 2.5.0 does not
            unprefixed = tensor.split("_", 1)[-1]
            x["inserted"] = bool(names) and tensor not in names and unprefixed not in names
        listed = ", ".join(f"{x['name']}{' [inserted]' * x['inserted']}" for x in cpu[:4])
        more = f" +{len(cpu) - 4}" if len(cpu) > 4 else ""
        status, summary = "cpu", f"converted with CPU ops ({listed}{more})"
    else:
        ops = [x["op"] for x in layers if x["op"] not in ("InputOperator", "OutputOperator")]
        listing = f": {' '.join(ops)}" if len(ops) <= 5 else ""
        status, summary = (
            "npu",
            f"converted, {len(ops)} layer{'s' * (len(ops) != 1)} all NPU{listing}",
        )
    return {
        "status": status,
        "summary": summary,
        "errors": errors[-3:],
        "warnings": warnings[:5],
        "layers": layers,
        "cpu_layers": cpu,
    }


def run_rknn(args, model: Path, platform: str, mode: str) -> dict:
    key = f"{model.stem}.{platform}.{mode}"
    logdir = args.out / "logs"
    work = args.out / "work" / key
    work.mkdir(parents=True, exist_ok=True)
    result_path = work / "result.json"
    result_path.unlink(missing_ok=True)
    cmd = [
        args.rknn_python,
        str(Path(__file__).resolve()),
        "--worker",
        str(model.resolve()),
        platform,
        mode,
        str(result_path),
        str(work),
    ]
    t0 = time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=work)
        log = proc.stdout + proc.stderr
        if result_path.is_file():
            result = json.loads(result_path.read_text())
        else:
            stage = "build" if "rknn building" in log else "load_onnx"
            why = (
                f"killed by signal {-proc.returncode}"
                if proc.returncode < 0
                else f"exited {proc.returncode}"
            )
            result = {"exception": f"{stage}: toolkit process crashed ({why})"}
    except subprocess.TimeoutExpired as exc:
        log = (
            (exc.stdout or b"").decode(errors="replace")
            if isinstance(exc.stdout, bytes)
            else (exc.stdout or "")
        )
        result = {"exception": f"timeout after {args.timeout}s"}
    (logdir / f"{key}.log").write_text(log)
    parsed = parse_rknn_log(log, result, onnx_names(model))
    if "timeout" in str(result.get("exception")):
        parsed["status"], parsed["summary"] = "failed", f"failed: timeout ({args.timeout}s)"
    parsed["seconds"] = round(time.time() - t0, 1)
    parsed["raw"] = result
    shutil.rmtree(work, ignore_errors=True)
    return parsed


def run_portlint(args, model: Path, target: str) -> dict:
    cmd = [args.portlint, "check", str(model), "--target", target, "--format", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode not in (0, 1):
        return {
            "verdict": f"error (exit {proc.returncode})",
            "codes": [],
            "detail": proc.stderr.strip()[-300:],
        }
    report = json.loads(proc.stdout)
    t = report["models"][0]["targets"][0]
    codes = []
    for f in t["findings"]:
        loc = f.get("location") or {}
        tag = f"{f['rule']}{'!' if f['severity'] == 'error' else ''}"
        what = loc.get("op_type") or loc.get("kind") or ""
        item = f"{tag}({what})" if what else tag
        if item not in codes:
            codes.append(item)
    return {
        "verdict": t["verdict"],
        "codes": codes,
        "findings": t["findings"],
        "nodes": t.get("nodes"),
    }


VERDICT_STATUS = {"runs": "npu", "runs with CPU fallback": "cpu", "does not compile": "failed"}


def compare(rows: list[dict], old_rows: list[dict], version: str) -> list[str]:
    """Rows whose toolkit result or agreement differs from an earlier run's."""
    old = {(r["model"], r["target"]): r for r in old_rows}
    out = [
        f"\n### Differences from the compared run ({old_rows[0]['rknn_version']} -> {version})\n"
        if old_rows and "rknn_version" in old_rows[0]
        else f"\n### Differences from the compared run (-> {version})\n",
        "| model | target | earlier toolkit | this toolkit | agree (earlier -> now) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        o = old.get((r["model"], r["target"]))
        if not o or (o["rknn"]["status"] == r["rknn"]["status"] and o["agree"] == r["agree"]):
            continue
        out.append(
            f"| {md_cell(r['model'])} | {r['target']} | {md_cell(o['rknn']['summary'])} | "
            f"{md_cell(r['rknn']['summary'])} | {'yes' if o['agree'] else 'no'} -> "
            f"{'yes' if r['agree'] else 'no'} |"
        )
    return out


def md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--rknn-python",
        default="/tmp/rknn/bin/python",
        help="python of the venv holding rknn-toolkit2",
    )
    ap.add_argument("--portlint", default=shutil.which("portlint") or "portlint")
    ap.add_argument("--out", type=Path, default=Path("/tmp/rknn_crosscheck"))
    ap.add_argument("--markdown", type=Path, help="write the agreement table here too")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per conversion")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--modes", default="fp16,int8", help="fp16,int8 or one of them")
    ap.add_argument("--only", help="regex on model names")
    ap.add_argument("--no-fixtures", action="store_true")
    ap.add_argument(
        "--compare",
        type=Path,
        help="results.json of an earlier run (e.g. another toolkit version): list what differs",
    )
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logs").mkdir(exist_ok=True)
    models_dir = args.out / "models"
    models_dir.mkdir(exist_ok=True)
    probes = build_probes(models_dir)
    if not args.no_fixtures:
        for f in sorted((ROOT / "fixtures").glob("*.onnx")):
            probes[f"fixture:{f.stem}"] = (f, "shipped fixture")
    if args.only:
        probes = {k: v for k, v in probes.items() if re.search(args.only, k)}
    targets = discover_targets()
    modes = [m for m in args.modes.split(",") if m]
    version = subprocess.run(
        [
            args.rknn_python,
            "-c",
            "import importlib.metadata as m;print(m.version('rknn-toolkit2'))",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(
        f"rknn-toolkit2 {version}; targets {[t for t, _ in targets]}; {len(probes)} models; "
        f"modes {modes}",
        flush=True,
    )

    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        platforms = sorted({p for _, p in targets})
        for name, (path, _) in probes.items():
            for platform in platforms:
                for mode in modes:
                    jobs[(name, platform, mode)] = pool.submit(run_rknn, args, path, platform, mode)
        rknn = {}
        for key, fut in jobs.items():
            rknn[key] = fut.result()
            print(
                f"  rknn {key}: {rknn[key]['summary'][:150]} ({rknn[key]['seconds']}s)", flush=True
            )

    rows = []
    for name, (path, what) in probes.items():
        for target, platform in targets:
            pl = run_portlint(args, path, target)
            primary = PRIMARY_MODE[platform] if PRIMARY_MODE[platform] in modes else modes[0]
            rk = rknn[(name, platform, primary)]
            other = {m: rknn[(name, platform, m)] for m in modes if m != primary}
            agree = VERDICT_STATUS.get(pl["verdict"]) == rk["status"]
            rows.append(
                {
                    "model": name,
                    "what": what,
                    "target": target,
                    "platform": platform,
                    "mode": primary,
                    "rknn": rk,
                    "other": other,
                    "portlint": pl,
                    "agree": agree,
                    "rknn_version": version,
                }
            )

    header = (
        f"| model | probes | target | rknn-toolkit2 {version} (compared mode; other mode) "
        "| portlint verdict + rules | agree? |"
    )
    lines = [header, "|---|---|---|---|---|---|"]
    for r in rows:
        rk = f"**{r['mode']}**: {r['rknn']['summary']}"
        for m, o in r["other"].items():
            rk += f"<br>{m}: {o['summary']}"
        pl = r["portlint"]["verdict"] + (
            f": {', '.join(r['portlint']['codes'])}" if r["portlint"]["codes"] else ""
        )
        lines.append(
            f"| {md_cell(r['model'])} | {md_cell(r['what'])} | {r['target']} | "
            f"{md_cell(rk)} | {md_cell(pl)} | {'yes' if r['agree'] else '**no**'} |"
        )
    totals = [f"\nTotal: {sum(r['agree'] for r in rows)}/{len(rows)} agree."]
    for target, _ in targets:
        sub = [r for r in rows if r["target"] == target]
        totals.append(f"- {target}: {sum(r['agree'] for r in sub)}/{len(sub)} agree")
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    totals.append(f"\nportlint tree: {commit}; rknn-toolkit2 {version}")
    if args.compare:
        totals += compare(rows, json.loads(args.compare.read_text()), version)
    text = "\n".join(lines + totals) + "\n"
    print(text)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1, default=str))
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
