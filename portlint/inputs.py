"""Sample inputs for measuring activations and comparing models: files, images or random.

``--inputs DIR`` reads the folder's files in name order (hidden files and other suffixes are
skipped):

- ``.npy``: one array, for a model with one input; the model's input shape, or that shape
  without the batch axis (one sample); a leading axis that is a multiple of a static batch is
  split into batches.
- ``.npz``: one array per model input, keyed by input name; every input gets an array and
  all arrays hold the same number of batches.
- images (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``, needs Pillow: ``pip install
  'portlint[images]'``), for a model with one rank-4 input, one image per sample, decoded and
  preprocessed as ``Preprocess`` says.

Arrays of another float width are cast (float64 files are common); other dtype mismatches, a
wrong shape, an unknown ``.npz`` key or an unreadable file are a ``PortlintError`` naming the
file, found from the file headers before any sample is run. ``--random-inputs N`` makes N
seeded samples of each input's dtype and static shape instead.

Samples are streamed: a ``Samples`` yields one feed (``{input name: array}``) at a time and
reads the file it comes from only then, so memory holds one batch; it can be iterated again
(calibration, then comparison) and knows its length up front, for a progress bar.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from portlint.errors import PortlintError, first_line, suggest

ARRAY_SUFFIXES = (".npy", ".npz")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
LAYOUTS = ("NCHW", "NHWC")
CHANNEL_ORDERS = ("RGB", "BGR")
DEFAULT_RANDOM_SAMPLES = 8
Feed = dict[str, np.ndarray]


class InputsError(PortlintError):
    """Sample inputs that do not fit the model, or cannot be read."""


@dataclass(frozen=True)
class InputSpec:
    """A graph input as the model declares it; None for a dim it leaves open."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype.name}[{dims}]"


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes an input tensor, in this order:

    1. decoded and converted to RGB (grey for a 1-channel input);
    2. resized to ``size`` (H, W), bilinear and stretched (no letterbox); default: the
       input's static H and W, or the image's own size when the model leaves them open;
    3. channels reversed for ``channel_order="BGR"``;
    4. for a float input: ``(pixel * scale - mean[c]) / std[c]`` per channel (one value
       applies to all channels); a uint8 input gets the raw pixels;
    5. laid out as ``layout`` with a batch axis of 1 (default: NCHW when the input's dim 1
       holds 1 or 3 channels, NHWC when its last dim does).
    """

    size: tuple[int, int] | None = None
    layout: str | None = None
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    scale: float = 1 / 255
    channel_order: str = "RGB"

    def __post_init__(self) -> None:
        if self.layout is not None and self.layout not in LAYOUTS:
            raise InputsError(f"unknown layout {self.layout!r} (NCHW or NHWC)")
        if self.channel_order not in CHANNEL_ORDERS:
            raise InputsError(f"unknown channel order {self.channel_order!r} (RGB or BGR)")
        if any(s == 0 for s in self.std):
            raise InputsError("--std must not contain 0")
        if self.size is not None and min(self.size) <= 0:
            raise InputsError(f"bad image size {self.size}; expected positive HxW")


@dataclass(frozen=True)
class InputsSpec:
    """Where samples come from, before a model is known: a folder, or N random samples.

    Picklable, so worker processes of a multi-model ``check`` build each model's samples.
    """

    directory: Path | None = None
    random: int | None = None
    preprocess: Preprocess = field(default_factory=Preprocess)

    def samples_for(
        self, model: onnx.ModelProto, pinned: Mapping[str, Sequence[int]] | None = None
    ) -> Samples:
        if self.directory is not None:
            return from_directory(self.directory, model, self.preprocess, pinned)
        return random_samples(model, self.random or DEFAULT_RANDOM_SAMPLES, pinned)


class Samples:
    """A re-iterable stream of feeds with a known length and a one-line description."""

    def __init__(self, batches: list, make, description: str):
        self._batches = batches
        self._make = make
        self.description = description

    def __len__(self) -> int:
        return len(self._batches)

    def __iter__(self) -> Iterator[Feed]:
        for batch in self._batches:
            yield self._make(batch)


def model_inputs(
    model: onnx.ModelProto, pinned: Mapping[str, Sequence[int]] | None = None
) -> list[InputSpec]:
    """The graph inputs a feed must hold (initializers excluded), with ``pinned`` dims."""
    initializers = {t.name for t in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        if not value.type.HasField("tensor_type"):
            raise InputsError(f"input {value.name!r} is not a tensor; no samples for it")
        try:
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))
        except (KeyError, ValueError, TypeError) as exc:
            raise InputsError(f"input {value.name!r} has no numpy element type") from exc
        if pinned and value.name in pinned:
            shape: tuple[int | None, ...] = tuple(int(d) for d in pinned[value.name])
        else:
            shape = tuple(
                d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in value.type.tensor_type.shape.dim
            )
        specs.append(InputSpec(value.name, dtype, shape))
    return specs


def random_samples(
    model: onnx.ModelProto,
    count: int,
    pinned: Mapping[str, Sequence[int]] | None = None,
    seed: int | None = None,
) -> Samples:
    """``count`` seeded feeds of each input's dtype and static shape (open dims become 1)."""
    from portlint.numerics import SEED, random_inputs

    if count < 1:
        raise InputsError(f"--random-inputs must be at least 1, got {count}")
    base = SEED if seed is None else seed
    fixed = {k: list(v) for k, v in (pinned or {}).items()}
    random_inputs(model, fixed, base)  # an input that cannot be made fails now, not mid-run
    plural = "s" if count != 1 else ""
    return Samples(
        list(range(count)),
        lambda i: random_inputs(model, fixed, base + i),
        f"{count} random sample{plural} (seeded, standard normal floats)",
    )


def from_directory(
    folder: str | Path,
    model: onnx.ModelProto,
    preprocess: Preprocess | None = None,
    pinned: Mapping[str, Sequence[int]] | None = None,
) -> Samples:
    """The samples in ``folder``, checked against the model's inputs from file headers."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputsError(f"{folder}: no such folder (--inputs takes a folder of samples)")
    specs = model_inputs(model, pinned)
    if not specs:
        raise InputsError("the model has no inputs to feed")
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and p.suffix.lower() in ARRAY_SUFFIXES + IMAGE_SUFFIXES
    )
    if not files:
        kinds = ", ".join(ARRAY_SUFFIXES + IMAGE_SUFFIXES)
        raise InputsError(f"{folder}: no sample files in this folder ({kinds})")
    preprocess = preprocess or Preprocess()
    batches: list[tuple[Path, str, int, int]] = []  # (file, kind, start, count)
    images = 0
    for path in files:
        suffix = path.suffix.lower()
        if suffix == ".npy":
            batches += _plan_npy(path, specs)
        elif suffix == ".npz":
            batches += _plan_npz(path, specs)
        else:
            batches.append(_plan_image(path, specs, preprocess))
            images += 1

    def make(batch: tuple[Path, str, int, int]) -> Feed:
        path, kind, start, count = batch
        if kind == "image":
            return _read_image(path, specs[0], preprocess)
        return _read_arrays(path, specs, start, count)

    counts = f"{len(files)} file{'s' if len(files) != 1 else ''}"
    pictures = f", {images} image{'s' if images != 1 else ''}" if images else ""
    return Samples(batches, make, f"{len(batches)} batches from {folder} ({counts}{pictures})")


def _batches(path: Path, spec: InputSpec, shape: tuple[int, ...], dtype: np.dtype) -> int:
    """How many batches an array of ``shape`` holds for ``spec``; raises when it does not fit."""
    expected = spec.shape
    got = f"got {np.dtype(dtype).name}[{','.join(str(d) for d in shape)}]"
    if not _castable(np.dtype(dtype), spec.dtype):
        raise InputsError(f"{path}: input {spec.name!r} expects {spec.describe()}, {got}")
    if len(shape) == len(expected) - 1:
        shape = (1, *shape)  # one sample without its batch axis
    if len(shape) != len(expected) or not all(
        e is None or e == g for e, g in zip(expected[1:], shape[1:], strict=True)
    ):
        raise InputsError(f"{path}: input {spec.name!r} expects {spec.describe()}, {got}")
    if not expected:
        return 1
    batch = expected[0]
    if batch is None:
        return 1  # an open batch dim takes the whole array
    if shape[0] == 0 or shape[0] % batch:
        raise InputsError(
            f"{path}: input {spec.name!r} expects {spec.describe()}, {got} (the leading axis "
            f"must be a multiple of the batch {batch})"
        )
    return shape[0] // batch


def _castable(got: np.dtype, expected: np.dtype) -> bool:
    """Same dtype, or floats of another width (float64 files are common)."""
    if got == expected:
        return True
    return bool(np.issubdtype(got, np.floating) and np.issubdtype(expected, np.floating))


def _plan_npy(path: Path, specs: list[InputSpec]) -> list[tuple[Path, str, int, int]]:
    if len(specs) != 1:
        names = ", ".join(s.name for s in specs)
        raise InputsError(
            f"{path}: a .npy file feeds a one-input model; this model has inputs {names}: "
            "use .npz files keyed by input name"
        )
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)  # reads the header only
    except Exception as exc:
        raise InputsError(f"{path}: cannot read as .npy: {first_line(exc)}") from exc
    count = _batches(path, specs[0], array.shape, array.dtype)
    return [(path, "npy", i, count) for i in range(count)]


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each member's shape and dtype, read from its .npy header without its data."""
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                with archive.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
                headers[member[: -len(".npy")]] = (tuple(shape), np.dtype(dtype))
    except Exception as exc:
        raise InputsError(f"{path}: cannot read as .npz: {first_line(exc)}") from exc
    return headers


def _plan_npz(path: Path, specs: list[InputSpec]) -> list[tuple[Path, str, int, int]]:
    headers = _npz_headers(path)
    names = [s.name for s in specs]
    for key in headers:
        if key not in names:
            error = suggest(key, names, "input name")
            raise InputsError(f"{path}: {error} (keys must be the model's input names)")
    counts = set()
    for spec in specs:
        if spec.name not in headers:
            raise InputsError(
                f"{path}: no array for input {spec.name!r} (the file has "
                f"{', '.join(repr(k) for k in headers) or 'no arrays'})"
            )
        shape, dtype = headers[spec.name]
        counts.add(_batches(path, spec, shape, dtype))
    if len(counts) != 1:
        raise InputsError(f"{path}: the inputs hold different numbers of batches ({counts})")
    count = counts.pop()
    return [(path, "npz", i, count) for i in range(count)]


def _read_arrays(path: Path, specs: list[InputSpec], index: int, count: int) -> Feed:
    """Batch ``index`` of ``count`` from a .npy (memory-mapped) or .npz file."""
    try:
        if path.suffix.lower() == ".npy":
            arrays = {specs[0].name: np.load(path, mmap_mode="r", allow_pickle=False)}
            feed = {name: _slice(a, specs[0], index, count) for name, a in arrays.items()}
        else:
            with np.load(path, allow_pickle=False) as archive:
                feed = {s.name: _slice(archive[s.name], s, index, count) for s in specs}
    except InputsError:
        raise
    except Exception as exc:
        raise InputsError(f"{path}: cannot read: {first_line(exc)}") from exc
    return feed


def _slice(array: np.ndarray, spec: InputSpec, index: int, count: int) -> np.ndarray:
    if array.ndim == len(spec.shape) - 1:
        array = array[None]
    if count > 1:
        size = array.shape[0] // count
        array = array[index * size : (index + 1) * size]
    return np.ascontiguousarray(array, dtype=spec.dtype)


def _image_layout(
    spec: InputSpec, preprocess: Preprocess
) -> tuple[str, int, int | None, int | None]:
    """(layout, channels, H, W) of an image input; H, W None when the model leaves them open."""
    if len(spec.shape) != 4:
        raise InputsError(
            f"images need a rank-4 image input; input {spec.name!r} is {spec.describe()}"
        )
    layout = preprocess.layout
    if layout is None:
        first, last = spec.shape[1], spec.shape[3]
        if last in (1, 3) and first not in (1, 3):
            layout = "NHWC"
        elif first in (1, 3) or first is None:
            layout = "NCHW"
        else:
            raise InputsError(
                f"cannot tell the layout of input {spec.name!r} {spec.describe()}; "
                "give --layout NCHW or NHWC"
            )
    channels, height, width = (
        (spec.shape[1], spec.shape[2], spec.shape[3])
        if layout == "NCHW"
        else (spec.shape[3], spec.shape[1], spec.shape[2])
    )
    channels = 3 if channels is None else channels
    if channels not in (1, 3):
        raise InputsError(
            f"input {spec.name!r} {spec.describe()} has {channels} channels in {layout}; "
            "images give 1 or 3 (use .npy/.npz, or --layout)"
        )
    if spec.shape[0] not in (1, None):
        raise InputsError(
            f"input {spec.name!r} {spec.describe()} has a static batch of {spec.shape[0]}; "
            "images give one sample each: use .npy/.npz batches"
        )
    for name, values in (("--mean", preprocess.mean), ("--std", preprocess.std)):
        if len(values) not in (1, channels):
            raise InputsError(
                f"{name} has {len(values)} values; input {spec.name!r} has {channels} channels"
            )
    if spec.dtype != np.uint8 and not np.issubdtype(spec.dtype, np.floating):
        raise InputsError(
            f"input {spec.name!r} is {spec.describe()}; images make float or uint8 inputs "
            "(use .npy/.npz)"
        )
    return layout, channels, height, width


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise InputsError(
            "reading images needs Pillow: pip install 'portlint[images]' (or give .npy/.npz)"
        ) from None
    return Image


def _plan_image(
    path: Path, specs: list[InputSpec], preprocess: Preprocess
) -> tuple[Path, str, int, int]:
    image_module = _pillow()
    if len(specs) != 1:
        names = ", ".join(s.name for s in specs)
        raise InputsError(
            f"{path}: images feed a one-input model; this model has inputs {names}: use .npz"
        )
    _image_layout(specs[0], preprocess)
    try:
        with image_module.open(path) as image:
            image.size  # noqa: B018 - the header is read; a broken file fails here
    except Exception as exc:
        raise InputsError(f"{path}: cannot read as an image: {first_line(exc)}") from exc
    return (path, "image", 0, 1)


def _read_image(path: Path, spec: InputSpec, preprocess: Preprocess) -> Feed:
    image_module = _pillow()
    layout, channels, height, width = _image_layout(spec, preprocess)
    try:
        with image_module.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            size = preprocess.size or (
                (height, width) if height and width else (image.height, image.width)
            )
            if (image.height, image.width) != tuple(size):
                image = image.resize((size[1], size[0]), image_module.Resampling.BILINEAR)
            pixels = np.asarray(image)
    except Exception as exc:
        raise InputsError(f"{path}: cannot read as an image: {first_line(exc)}") from exc
    return {spec.name: preprocess_pixels(pixels, spec.dtype, layout, preprocess)}


def preprocess_pixels(
    pixels: np.ndarray, dtype: np.dtype, layout: str, preprocess: Preprocess
) -> np.ndarray:
    """Decoded pixels (H, W) or (H, W, C), uint8 RGB -> one batch of the model's input."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if preprocess.channel_order == "BGR":
        pixels = pixels[:, :, ::-1]
    if np.dtype(dtype) == np.uint8:
        values = pixels.astype(np.uint8)
    else:
        mean = np.asarray(preprocess.mean, np.float64)
        std = np.asarray(preprocess.std, np.float64)
        values = ((pixels.astype(np.float64) * preprocess.scale - mean) / std).astype(dtype)
    if layout == "NCHW":
        values = values.transpose(2, 0, 1)
    return np.ascontiguousarray(values[None])


def parse_floats(text: str, what: str) -> tuple[float, ...]:
    """``0.485,0.456,0.406`` -> floats; each may be a fraction like ``1/255``."""
    try:
        return tuple(parse_number(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InputsError(f"bad {what} {text!r}; expected numbers separated by commas") from None


def parse_number(text: str) -> float:
    """``0.5`` or ``1/255``."""
    numerator, sep, denominator = text.strip().partition("/")
    value = float(numerator) / float(denominator) if sep else float(numerator)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def parse_size(text: str) -> tuple[int, int]:
    """``224`` or ``480x640`` (H x W)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX,]\s*(\d+))?\s*", text)
    if not match or int(match[1]) == 0 or (match[2] is not None and int(match[2]) == 0):
        raise InputsError(f"bad image size {text!r}; expected H x W, e.g. 480x640, or 224")
    height = int(match[1])
    return height, int(match[2]) if match[2] is not None else height
