"""rknn-toolkit2 worker: load, build and export one ONNX model, then record what happened.

Runs in the rknn-toolkit2 venv (``python -I rknn_worker.py ARGS``), never in portlint's. The
toolkit returns -1 from some failures and raises on others, so each step's return code and
any exception (type, message, and the toolkit's own frame that raised) go into result.json.
The verbose log on stdout carries the layer table that says where each layer runs.
"""

import argparse
import json
import sys
import traceback


def _frame(exc):
    """The innermost frame inside the toolkit: file and function that raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if "rknn" in frame.filename:
            return {"file": frame.filename.split("site-packages/")[-1], "function": frame.name}
    if frames:
        return {"file": frames[-1].filename, "function": frames[-1].name}
    return {}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--platform", required=True)
    parser.add_argument("--quantize", type=int, default=0)
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--options", default="{}")
    parser.add_argument("--input-shapes", default="{}")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    result = {"steps": {}, "exception": None, "stage": None}

    def record():
        sys.stdout.flush()
        sys.stderr.flush()
        with open("result.json", "w") as f:
            json.dump(result, f)

    stage = "import"
    try:
        import rknn
        from rknn.api import RKNN

        result["version"] = getattr(rknn, "__version__", None)
        try:
            from importlib.metadata import version

            result["version"] = version("rknn-toolkit2")
        except Exception:
            pass
        toolkit = RKNN(verbose=True)
        options = json.loads(args.options)
        shapes = json.loads(args.input_shapes)
        for stage, call in (
            ("config", lambda: toolkit.config(target_platform=args.platform, **options)),
            (
                "load",
                lambda: toolkit.load_onnx(
                    model=args.model,
                    inputs=list(shapes) or None,
                    input_size_list=list(shapes.values()) or None,
                ),
            ),
            (
                "build",
                lambda: toolkit.build(do_quantization=bool(args.quantize), dataset=args.dataset),
            ),
            ("export", lambda: toolkit.export_rknn(args.output)),
        ):
            result["stage"] = stage
            code = call()
            result["steps"][stage] = code
            record()
            if code != 0:
                break
        else:
            result["stage"] = None
        toolkit.release()
    except BaseException as exc:  # the toolkit raises as often as it returns -1
        lines = str(exc).strip().splitlines()
        result["exception"] = {
            "type": type(exc).__name__,
            "message": lines[-1] if lines else "",
            "frame": _frame(exc),
        }
        result["stage"] = result["stage"] or stage
        traceback.print_exc()
    record()


if __name__ == "__main__":
    main()
