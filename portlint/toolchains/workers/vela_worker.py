"""Arm Vela worker: ONNX -> full-integer TFLite (onnx2tf) -> Vela, then record what happened.

Runs in the venv that holds ethos-u-vela and onnx2tf (``python -I vela_worker.py ARGS``),
never in portlint's. Vela reads TFLite, not ONNX, so the model goes through onnx2tf first;
a failure there is the converter's, and is recorded as such. onnx2tf downloads a sample
array for its own accuracy check unless one lies in the working folder, and overwrites its
input: both are handled here, in the private folder portlint gives each run. Each stage's
output goes to stdout between marker lines, which portlint's parser splits on.
"""

import argparse
import contextlib
import glob
import json
import os
import subprocess
import sys

SAMPLE_NAME = "calibration_image_sample_data_20x128x128x3_float32.npy"
MARK = "=== portlint stage: {} ==="


def _versions():
    from importlib import metadata

    found = {}
    for name in ("ethos-u-vela", "onnx2tf", "tensorflow"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def _inputs(model):
    import onnx

    graph = onnx.load(model, load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    inputs = []
    for value in graph.input:
        if value.name in initializers:
            continue
        dims = [d.dim_value if d.dim_value > 0 else None for d in value.type.tensor_type.shape.dim]
        inputs.append((value.name, dims))
    return inputs


def _calibration(inputs, samples):
    """Random NHWC samples per input (onnx2tf's -cind), and its own sample file."""
    import numpy as np

    rng = np.random.default_rng(0)
    np.save(SAMPLE_NAME, rng.random((20, 128, 128, 3), dtype=np.float32))
    args, dynamic = [], False
    for k, (name, dims) in enumerate(inputs):
        dynamic = dynamic or not dims or dims[0] is None
        dims = [d or 1 for d in dims]
        nhwc = [dims[0], *dims[2:], dims[1]] if len(dims) >= 3 else dims
        path = os.path.abspath(f"calib_{k}.npy")
        np.save(path, rng.random([samples * nhwc[0], *nhwc[1:]], dtype=np.float32))
        args += ["-cind", name, path, "[0.0]", "[1.0]"]
    return args, dynamic


def _run(stage, command):
    print(MARK.format(stage), flush=True)
    proc = subprocess.run(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    sys.stdout.write(proc.stdout)
    sys.stdout.flush()
    return proc.returncode, proc.stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--accelerator", required=True)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--options", default="{}")
    args = parser.parse_args()
    result = {"steps": {}, "stage": None, "versions": _versions()}
    bin_dir = os.path.dirname(os.path.abspath(sys.executable))
    # onnx2tf runs the venv's `onnxsim` command; without the venv on PATH it skips it silently
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    try:
        result["stage"] = "convert"
        calibration, dynamic = _calibration(_inputs(args.model), args.samples)
        command = [os.path.join(bin_dir, "onnx2tf"), "-i", args.model, "-o", "tflite", "-oiqt"]
        command += calibration + (["-b", "1"] if dynamic else [])
        result["steps"]["convert"] = _run("onnx2tf", command)[0]
        tflite = sorted(glob.glob(os.path.join("tflite", "*_full_integer_quant.tflite")))
        if not tflite:  # onnx2tf can exit 0 without writing it
            result["steps"]["convert"] = result["steps"]["convert"] or 1
            return
        result["stage"] = "vela"
        options = json.loads(args.options)
        command = [
            os.path.join(bin_dir, "vela"),
            tflite[0],
            "--accelerator-config",
            args.accelerator,
            "--output-dir",
            "vela_out",
        ]
        for key in ("system_config", "memory_mode", "config"):
            if options.get(key):
                command += [f"--{key.replace('_', '-')}", str(options[key])]
        code, text = _run("vela", [*command, "--show-cpu-operations"])
        if code != 0 and "stats_writer" in text:
            # Vela 5.2 crashes writing its CPU-operation report on some models (ArgMax);
            # the compile itself works without the report
            result["cpu_report_failed"] = True
            code, text = _run("vela", command)
        result["steps"]["vela"] = code
        if result["steps"]["vela"] == 0:
            result["stage"] = None
    except BaseException as exc:
        result["exception"] = {"type": type(exc).__name__, "message": str(exc)[-500:]}
    finally:
        with open("result.json", "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
