"""Weights read on demand, one tensor at a time.

``check`` strips large initializers before shape inference and never needs their bytes for
the structural rules. The numerics rules (PL3xx) do, for a few tensors (a Conv's filters, a
BatchNorm's statistics): this store reads exactly those, from the original model file or the
in-memory model ``fix`` works on, and remembers nothing it was not asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from portlint.errors import ModelLoadError, first_line

WeightSource = Path | onnx.ModelProto


class WeightStore:
    """Initializer values by name; small ones already decoded, large ones read when asked."""

    def __init__(self, source: WeightSource | None, small: Mapping[str, np.ndarray]):
        self._source = source
        self._small = small

    def get(self, name: str) -> np.ndarray | None:
        """The value of initializer or constant ``name``; None when it is not a constant."""
        if not name:
            return None
        value = self._small.get(name)
        if value is not None:
            return value
        tensor = self._initializers.get(name)
        if tensor is None:
            return None
        try:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                return self._read_external(tensor)
            return numpy_helper.to_array(tensor)
        except Exception as exc:  # unreadable payload: a clear line, not a traceback
            problem = f"{self._label}: cannot read weight {name!r}: {first_line(exc)}"
            raise ModelLoadError(problem) from exc

    def _read_external(self, tensor: onnx.TensorProto) -> np.ndarray:
        """Read one tensor's bytes from its data file.

        ``check`` validated every location when it loaded the model (inside the model's
        folder, links included), so the bytes are read directly: onnx's own reader refuses
        links that ``check`` accepts.
        """
        entries = {e.key: e.value for e in tensor.external_data}
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type))
        count = int(np.prod(tensor.dims, dtype=np.int64))
        offset = int(entries.get("offset", 0))
        with open(Path(self._base_dir) / entries["location"], "rb") as handle:
            handle.seek(offset)
            data = handle.read(count * dtype.itemsize)
        if len(data) != count * dtype.itemsize:
            raise ValueError(f"data file ends after {len(data)} of {count * dtype.itemsize} bytes")
        return np.frombuffer(data, dtype=dtype).reshape(tuple(tensor.dims))

    @property
    def _label(self) -> str:
        return str(self._source) if isinstance(self._source, Path) else "<in memory>"

    @property
    def _base_dir(self) -> str:
        return str(self._source.parent) if isinstance(self._source, Path) else ""

    @cached_property
    def _initializers(self) -> dict[str, onnx.TensorProto]:
        """The model's initializers by name, the file parsed again only on first need."""
        if self._source is None:
            return {}
        model = (
            self._source
            if isinstance(self._source, onnx.ModelProto)
            else onnx.load(str(self._source), load_external_data=False)
        )
        return {t.name: t for t in model.graph.initializer}
