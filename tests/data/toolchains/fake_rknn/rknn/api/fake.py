"""Behaves like rknn-toolkit2 2.5.0 where the tests need it, printing its log format:

- a Conv whose output is reshaped and then split (Split, or two Slices of one tensor) crashes
  the fuse rule ``seperate_conv_rs_split`` with IndexError, unless it is in ``disable_rules``;
- a NonZero is refused from the logger (``need to be constant``);
- symbolic input dims are refused at load;
- a Loop hangs (for timeouts), an Abs segfaults the process (for crashes);
- Erf runs on the CPU; everything else converts onto the NPU, listed in the layer table;
- every build leaves a file in the working folder, as the real toolkit's caches do.
"""

import os
import signal
import sys
import time
import traceback

import onnx

HINT = (
    "You can add disable_rules=['seperate_conv_rs_split'] in rknn.config() "
    "to temporarily disable the error rule!"
)
RULE_FRAME = (
    '  File "rknn/api/rules/conv.py", line 4860, in rknn.api.rules.conv._p_seperate_conv_rs_split'
)


HINT = (
    "You can add disable_rules=['seperate_conv_rs_split'] in rknn.config() "
    "to temporarily disable the error rule!"
)
RULE_FRAME = (
    '  File "rknn/api/rules/conv.py", line 4860, in rknn.api.rules.conv._p_seperate_conv_rs_split'
)


class _Logged(ValueError):
    pass


def _log(level, text):
    print(f"{level} {text}")
    sys.stdout.flush()


TABLE_END = "RW(KB)  FullName"


class RKNN:
    def __init__(self, verbose=False):
        self.disabled = set()
        self.platform = None
        self.model = None

    def config(self, target_platform=None, disable_rules=None, **options):
        self.platform = target_platform
        self.disabled = set(disable_rules or [])
        return 0

    def load_onnx(self, model, inputs=None, input_size_list=None, **_):
        self.model = onnx.load(model)
        pinned = dict(zip(inputs or [], input_size_list or [], strict=False))
        for value in self.model.graph.input:
            dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
            if value.name not in pinned and any(isinstance(d, str) for d in dims):
                return self._error(
                    "load_onnx", f"The input shape {dims} of {value.name!r} is not support!"
                )
        return 0

    def _error(self, stage, message):
        try:
            raise _Logged(message)
        except _Logged:
            _log("E", f"{stage}: Traceback (most recent call last):")
            print('  File "rknn/api/rknn_log.py", line 95, in rknn.api.rknn_log.RKNNLog.e')
            print(f"ValueError: {message}")
        raise ValueError(message)

    def build(self, do_quantization=False, dataset=None, **_):
        if self.platform == "rv1106" and not do_quantization:
            return self._error(
                "build", "Current target_platform(rv1106) not support do_quantization = False!"
            )
        with open("leftover.cache", "w") as leftover:
            leftover.write("the toolkit leaves files in its working folder")
        graph = self.model.graph
        ops = [n.op_type for n in graph.node]
        if "Loop" in ops:
            time.sleep(3600)
        if "Abs" in ops:
            os.kill(os.getpid(), signal.SIGSEGV)
        consumers = {}
        for node in graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
        for node in graph.node:
            if node.op_type == "NonZero":
                return self._error(
                    "build",
                    f"The input 0 of NonZero('{node.output[0]}') need to be constant! "
                    "It will cause the graph to be a dynamic graph!",
                )
        if "seperate_conv_rs_split" not in self.disabled:
            for node in graph.node:
                if node.op_type != "Conv":
                    continue
                after = consumers.get(node.output[0], [])
                if len(after) != 1 or after[0].op_type != "Reshape":
                    continue
                ends = consumers.get(after[0].output[0], [])
                if (
                    any(e.op_type == "Split" for e in ends)
                    or sum(e.op_type == "Slice" for e in ends) >= 2
                ):
                    _log("W", "build: Show op fuse match nodes:")
                    print("Rule: seperate_conv_rs_split\nSubgraph:")
                    for member in (node, after[0], *ends):
                        print(f"Op type: {member.op_type}\nOp name: {member.name}_2sp\n  Output:")
                        for out in member.output:
                            print(f"    {out} : [1, 4, 8]")
                    _log("W", HINT)
                    _log("E", "build: Traceback (most recent call last):")
                    print('  File "rknn/api/rknn_base.py", line 2083, in build')
                    print(RULE_FRAME)
                    print("IndexError: list index out of range")
                    raise ValueError(traceback.format_exc() + "IndexError: list index out of range")
        _log("D", "RKNN: [10:00:00.000]              Network Layer Information Table")
        _log("D", "RKNN: [10:00:00.000] ID   OpType   DataType Target  Shapes  FullName")
        rows = [("InputOperator", "CPU", f"InputOperator:{graph.input[0].name}")]
        rows += [
            (
                n.op_type,
                "CPU" if n.op_type == "Erf" else "NPU",
                f"{n.op_type}:{n.name or n.output[0]}",
            )
            for n in graph.node
        ]
        rows.append(("Reshape", "CPU", "Reshape:inserted_by_toolkit_rs"))
        rows.append(("OutputOperator", "NPU", f"OutputOperator:{graph.output[0].name}"))
        for i, (op, where, name) in enumerate(rows):
            row = f"{i:<4} {op:<18} FLOAT16  {where}    (1,8)  (1,8)  0/0/0  4  {name}"
            _log("D", f"RKNN: [10:00:00.000] {row}")
        _log("D", "RKNN: [10:00:00.000] <<<<<<<< end: rknn::RKNNModelRegCmdbuildPass")
        return 0

    def export_rknn(self, path):
        with open(path, "wb") as out:
            out.write(b"rknn")
        return 0

    def release(self):
        pass
