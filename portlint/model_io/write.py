"""Write models so that a crash, a kill, a full disk or a typo never costs the user a file.

Everything goes to a hidden staging folder beside the destination first
(``.OUT.onnx.<pid>.<random>``) and is renamed into place only once complete and synced (a
rename within one folder is atomic). A model with external data is a pair of files, and two
renames are not one atomic step, so the pair is committed in an order that is consistent after
a crash at any point:

1. the new weights get a data file name that does not exist yet (``OUT.onnx.data``, or
   ``OUT.onnx.1.data`` when that is taken, ...) and are renamed into place: nothing refers to
   them yet, so the previous ``OUT.onnx`` still loads with its own data;
2. the new model, which refers to the new data file, is renamed over ``OUT.onnx``: the switch
   from the old pair to the new one is this one atomic rename;
3. only then is the data file the previous model used deleted (if it is one of ours, by name,
   and no input of the run).

SIGTERM and SIGHUP, whose default action would end the process without cleanup, are turned
into an exception while a write runs; once the staging folder is gone the signal is delivered
again, so the process still ends as the sender asked. SIGKILL cannot be caught: a staging
folder it leaves behind carries the dead process's id and the next write to that output
removes it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import onnx
from google.protobuf.message import EncodeError

from portlint.errors import PortlintError
from portlint.model_io.loaded import copy_model

EXTERNAL_DATA_THRESHOLD = 1024
"""Tensors above this many bytes go to the external data file when one is written."""
PROTOBUF_SAFE_BYTES = 2**31 - 2**24
"""Above this a model cannot be one protobuf: its weights must go to external data."""
PROTOBUF_TOO_BIG = 2**31
"""What ``protobuf_size`` says of a model protobuf cannot measure (over 2 GB)."""
STAGING_NAME_CHARS = 200
"""How much of the output's name the staging folder repeats (file names end at 255 bytes)."""
_INTERRUPTING = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


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


def write_model(
    model: onnx.ModelProto,
    output: Path,
    external_data: bool = False,
    keep: Iterable[Path] = (),
    verify: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Write ``model`` to ``output`` atomically; return the files written.

    ``external_data`` (or a model too big for one protobuf) writes the weights to a data file
    beside it (``<output name>.data``, or ``<output name>.<n>.data`` while the previous output
    still uses that name). Files in ``keep`` (the run's inputs) are never deleted. ``verify``
    gets the complete staged model file before anything is renamed into place; whatever it
    raises leaves the previous output as it was.
    """
    output = Path(output)
    folder = output.parent.resolve()
    destination = folder / output.name
    external = external_data or protobuf_size(model) > PROTOBUF_SAFE_BYTES
    if external:  # saving to external data rewrites the tensors in place: keep ours intact
        model = copy_model(model)
    with _signals_interrupt():
        _remove_stale_staging(folder, output.name)
        staging: Path | None = None
        committed: list[Path] = []
        try:
            staging = Path(
                tempfile.mkdtemp(prefix=f"{_staging_prefix(output.name)}{os.getpid()}.", dir=folder)
            )
            data_name = _free_data_name(folder, output.name) if external else None
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
            if verify is not None:
                verify(staged)
            previous = _our_data_files(destination)  # before the new model replaces it
            written = [output]
            if data_name is not None and (staging / data_name).exists():
                # onnx creates the data file private; give it the model file's umask mode
                os.chmod(staging / data_name, stat.S_IMODE(staged.stat().st_mode))
                _sync(staging / data_name)
                os.replace(staging / data_name, folder / data_name)  # 1: nothing refers to it
                committed.append(folder / data_name)
                _sync_folder(folder)
                written.append(output.with_name(data_name))
            _sync(staged)
            os.replace(staged, destination)  # 2: the switch to the new pair
            committed.clear()
            _sync_folder(folder)
            kept = {p.resolve() for p in keep} | {(folder / n) for n in [data_name] if n}
            for old in previous:  # 3: the previous model's data, now referred to by nothing
                if old not in kept:
                    with contextlib.suppress(FileNotFoundError):
                        old.unlink()
            return written
        except OSError as exc:
            raise OutputError(f"{output}: cannot write: {exc.strerror or exc}") from exc
        finally:
            for orphan in committed:  # a data file whose model never made it
                with contextlib.suppress(OSError):
                    orphan.unlink()
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)


def scratch_folder(beside: Path | None = None) -> Path:
    """A new private folder for temporary files: in the system's temporary folder, or beside
    the output ``beside``, named as ``write_model`` names its staging folders so that the next
    write to that output removes it should this process be killed."""
    if beside is None:
        return Path(tempfile.mkdtemp(prefix="portlint."))
    beside = Path(beside)
    prefix = f"{_staging_prefix(beside.name)}{os.getpid()}."
    return Path(tempfile.mkdtemp(prefix=prefix, dir=beside.parent.resolve()))


def protobuf_size(model: onnx.ModelProto) -> int:
    """The model's size as one protobuf, or ``PROTOBUF_TOO_BIG`` when that is over 2 GB.

    ``ByteSize()`` raises ``EncodeError`` past 2 GB (upb), so it cannot be compared directly.
    It also encodes the whole model to measure it (a copy of every weight): for a model with
    large weights, ``passes.weightless.model_size`` measures without touching them.
    """
    try:
        return model.ByteSize()
    except EncodeError:
        return PROTOBUF_TOO_BIG


def check_file(path: Path) -> None:
    """What can be verified of a model too big to serialise in memory, on its file: the full
    onnx.checker, which includes strict shape inference and reads no weight bytes. Raises what
    the checker raises.
    """
    onnx.checker.check_model(str(path), full_check=True)


def _staging_prefix(name: str) -> str:
    return f".{name[:STAGING_NAME_CHARS]}."


def _remove_stale_staging(folder: Path, name: str) -> None:
    """Delete staging folders for this output name left by processes that no longer run."""
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return
    pattern = re.compile(re.escape(_staging_prefix(name)) + r"(\d+)\.[a-z0-9_]{8}")
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match is None or not entry.is_dir(follow_symlinks=False):
                continue
            if not _process_alive(int(match.group(1))):
                shutil.rmtree(entry.path, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM), or a pid we cannot ask about
        return True
    return True


def _data_names(name: str) -> re.Pattern[str]:
    """The data file names ``write_model`` gives the weights of output ``name``."""
    return re.compile(re.escape(name) + r"(\.\d+)?\.data")


def _free_data_name(folder: Path, name: str) -> str:
    """The first of ``NAME.data``, ``NAME.1.data``, ... that is no file yet: never clobber one."""
    candidate, number = f"{name}.data", 0
    while os.path.lexists(folder / candidate):
        number += 1
        candidate = f"{name}.{number}.data"
    return candidate


def _our_data_files(model_path: Path) -> list[Path]:
    """The data files the model at ``model_path`` refers to that carry our names for it.

    Only those are deleted once a new model replaces it: a file with any other name may be
    shared with another model. Reading the old model is skipped when no such file exists.
    """
    pattern = _data_names(model_path.name)
    folder = model_path.parent
    with contextlib.suppress(OSError):
        ours = [e.name for e in os.scandir(folder) if pattern.fullmatch(e.name)]
    if not ours or not model_path.is_file():
        return []
    try:
        old = onnx.load(str(model_path), load_external_data=False)
    except Exception:  # not a model (any more): nothing of it to clean up
        return []
    locations = {
        entry.value
        for tensor in onnx.external_data_helper._get_all_tensors(old)
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return sorted(folder / name for name in ours if name in locations)


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into ``KeyboardInterrupt`` while writing, then deliver them again.

    Only signals whose handler is the default (end the process at once) are taken over, and
    only in the main thread (where Python runs handlers); ignored or handled signals keep
    their handler.
    """
    received: list[int] = []

    def interrupt(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt(f"signal {signum} while writing")

    taken: list[int] = []
    if threading.current_thread() is threading.main_thread():
        for signum in _INTERRUPTING:
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, interrupt)
                taken.append(signum)
    try:
        yield
    finally:
        for signum in taken:
            signal.signal(signum, signal.SIG_DFL)
        if received:  # cleaned up: now end as the sender asked
            os.kill(os.getpid(), received[0])


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


def _sync_folder(folder: Path) -> None:
    """Make the renames durable in order (a crash must not persist the second without the first)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows, where folders cannot be opened
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
