"""Write models so that a crash, a full disk or a typo never costs the user a file.

Everything goes to a temporary file in the destination folder first and is renamed over
the destination only once complete (a rename within one folder is atomic). External data
goes beside the output, renamed into place before the model that refers to it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
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


def check_destination(source: Path, output: Path, in_place: bool) -> None:
    """Refuse to overwrite the input unless ``--in-place``, and unwritable folders."""
    same = output.resolve() == source.resolve() or (
        output.exists() and os.path.samefile(output, source)
    )
    if same and not in_place:
        raise OutputError(
            f"{output}: refusing to overwrite the input model; pass --in-place to do that"
        )
    folder = output.resolve().parent
    if not folder.is_dir():
        raise OutputError(f"{output}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{output}: folder {folder} is not writable")


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


def _sync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
