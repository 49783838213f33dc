"""Write models so that a crash, a full disk or a typo never costs the user a file.

Everything goes to a temporary file in the destination folder first and is renamed over
the destination only once complete (a rename within one folder is atomic). External data
goes beside the output, renamed into place before the model that refers to it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import onnx

from portlint.errors import PortlintError
from portlint.model_io import copy_model

EXTERNAL_DATA_THRESHOLD = 1024
"""Tensors above this many bytes go to the external data file when one is written."""
PROTOBUF_SAFE_BYTES = 2**31 - 2**24
"""Above this a model cannot be one protobuf: its weights must go to external data."""


class OutputError(PortlintError):
    """The output path cannot be written (or would overwrite the input unasked)."""


def default_output(model_path: Path) -> Path:
    """``yolo.onnx`` -> ``yolo.portlint.onnx``, beside the input."""
    return model_path.with_name(f"{model_path.stem}.portlint.onnx")


def tail_output(output: Path) -> Path:
    """``yolo.portlint.onnx`` -> ``yolo.portlint.post.onnx``: the CPU-side tail of a cut."""
    return output.with_name(f"{output.stem}.post.onnx")


def check_destinations(output: Path, inputs: list[Path], in_place: bool) -> None:
    """Refuse every write that would land on an input file (the model or its external data)
    unless ``--in-place`` allows it for the model itself, and outputs that cannot be written.
    """
    if output.is_dir():
        raise OutputError(f"{output}: is a directory; give a file name with -o")
    tail = tail_output(output)
    writes = [output, _data_file(output), tail, _data_file(tail)]
    allowed = {output.resolve(), _data_file(output).resolve()} if in_place else set()
    protected = {p.resolve() for p in inputs}
    for target in writes:
        if target.resolve() in protected and target.resolve() not in allowed:
            is_model = target.resolve() == inputs[0].resolve()
            what = "the input model" if is_model else f"the external data of {inputs[0]}"
            raise OutputError(
                f"{target}: refusing to overwrite {what}; choose another -o, or pass "
                "--in-place to replace the input"
            )
    folder = output.resolve().parent
    if not folder.is_dir():
        raise OutputError(f"{output}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{output}: folder {folder} is not writable")


def _data_file(output: Path) -> Path:
    return output.with_name(f"{output.name}.data")


def write_model(model: onnx.ModelProto, output: Path, external_data: bool = False) -> list[Path]:
    """Write ``model`` to ``output`` atomically; return the files written.

    ``external_data`` (or a model too big for one protobuf) writes the weights to
    ``<output name>.data`` beside it.
    """
    output = Path(output)
    external = external_data or model.ByteSize() > PROTOBUF_SAFE_BYTES
    data_name = f"{output.name}.data"
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.resolve().parent))
    if external:  # saving to external data rewrites the tensors in place: keep ours intact
        model = copy_model(model)
    try:
        staged = staging / output.name
        with _working_directory(staging):  # onnx resolves `location` against the cwd too
            onnx.save_model(
                model,
                str(staged),
                save_as_external_data=external,
                all_tensors_to_one_file=True,
                location=data_name,
                size_threshold=EXTERNAL_DATA_THRESHOLD,
            )
        written = []
        if external and (staging / data_name).exists():
            _sync(staging / data_name)
            os.replace(staging / data_name, output.with_name(data_name))
            written.append(output.with_name(data_name))
        _sync(staged)
        os.replace(staged, output)
        written.insert(0, output)
        return written
    except OSError as exc:
        raise OutputError(f"{output}: cannot write: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _working_directory(folder: Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _sync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
