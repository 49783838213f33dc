"""Read a protobuf model file without its weights, straight from the wire format.

A pass over the file (memory-mapped) copies everything but the payloads of initializers
``check`` will not read, so those bytes never enter memory at all; their offsets in the file
are kept for the numerics rules that ask for one (``LoadedModel.payloads``). Anything unusual
and the reader steps aside: protobuf then reads the file and says what is wrong with it.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from pathlib import Path

import onnx

from portlint.model_io.loaded import (
    KEEP_CONSTANT_ELEMENTS,
    STRIPPED_LOCATION,
    Payload,
    keep_limit,
)
from portlint.model_io.validate import ITEM_SIZES, LITTLE_ENDIAN

_MODEL_GRAPH = (7 << 3) | 2  # ModelProto.graph


_GRAPH_INITIALIZER = (5 << 3) | 2  # GraphProto.initializer


_TENSOR_TYPED_PAYLOADS = frozenset({4, 5, 6, 7, 10, 11})  # float_data ... uint64_data


_RELEASE_BYTES = 16 << 20
"""The file is mapped; pages already read are handed back every this many bytes, so the
whole file never counts in the resident memory at once."""


class _Unusual(Exception):
    """Something the wire-format reader leaves to protobuf: the file is read the ordinary way."""


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_field(number: int, data: bytes) -> bytes:
    return _varint_bytes((number << 3) | 2) + _varint_bytes(len(data)) + data


_STRIPPED_MARK = b"\x70\x01" + _length_field(  # data_location: EXTERNAL
    13, _length_field(1, b"location") + _length_field(2, STRIPPED_LOCATION.encode())
)
"""What ``strip_large_initializers`` adds to a stripped tensor, as wire-format bytes."""


def _varint_at(buf, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it (IndexError past the end)."""
    result = shift = 0
    while shift < 64:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise _Unusual("varint too long")


def _skip_at(buf, pos: int, wire: int) -> int:
    """The position after a field's value of wire type ``wire`` starting at ``pos``."""
    if wire == 2:
        length, pos = _varint_at(buf, pos)
        return pos + length
    if wire == 0:
        return _varint_at(buf, pos)[1]
    if wire == 1:
        return pos + 8
    if wire == 5:
        return pos + 4
    raise _Unusual(f"wire type {wire}")


def _packed_varints(data: bytes) -> list[int]:
    values, value, shift = [], 0, 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            values.append(value)
            value = shift = 0
        else:
            shift += 7
    if shift:
        raise _Unusual("bad packed varint")
    return values


class _SlimReader:
    """Copy a ModelProto's wire format without the payloads of the main graph's initializers
    that ``strip_large_initializers`` would empty, and note where those payloads are."""

    def __init__(self, buf: mmap.mmap, stamp: tuple[int, int]):
        self.buf, self.stamp = buf, stamp
        self.released = 0
        self.skipped: set[int] = set()
        self.payloads: dict[str, Payload] = {}

    def _release(self, pos: int) -> None:
        """Hand back the pages before ``pos`` (they are in the page cache if needed again)."""
        start = self.released - self.released % mmap.PAGESIZE
        end = pos - pos % mmap.PAGESIZE
        if end > start:
            self.buf.madvise(mmap.MADV_DONTNEED, start, end - start)
        self.released = pos

    def model(self) -> bytes:
        buf, size = self.buf, len(self.buf)
        out: list[bytes] = []
        pos = run = 0
        seen_graph = False
        while pos < size:
            start = pos
            tag, pos = _varint_at(buf, pos)
            if tag != _MODEL_GRAPH:
                pos = _skip_at(buf, pos, tag & 7)
                continue
            if seen_graph:  # a second graph field merges into the first: rare, leave it be
                raise _Unusual("two graphs")
            seen_graph = True
            length, pos = _varint_at(buf, pos)
            graph = self.graph(pos, pos + length)
            out += [buf[run:start], _length_field(7, graph)]
            pos = run = pos + length
        if pos != size:
            raise _Unusual("model length")
        out.append(buf[run:size])
        return b"".join(out)

    def graph(self, pos: int, end: int) -> bytes:
        buf, out, index, run = self.buf, [], 0, pos
        while pos < end:
            start = pos
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint_at(buf, pos)
            if tag != _GRAPH_INITIALIZER:
                if tag & 7 == 2:
                    length = buf[pos]
                    pos = pos + 1 + length if length < 0x80 else _skip_at(buf, pos, 2)
                else:
                    pos = _skip_at(buf, pos, tag & 7)
                continue
            length, pos = _varint_at(buf, pos)
            if pos + length > end:
                raise _Unusual("initializer past the graph's end")
            tensor = self.tensor(pos, pos + length, index)
            index += 1
            pos += length
            if tensor is not None:
                out += [buf[run:start], tensor]
                run = pos
            if pos - self.released > _RELEASE_BYTES:
                self._release(min(pos, run))
        if pos != end:
            raise _Unusual("graph length")
        out.append(buf[run:end])
        return b"".join(out)

    def tensor(self, pos: int, end: int, index: int) -> bytes | None:
        """The tensor without its payload, or None to keep it whole."""
        buf = self.buf
        kept: list[int] = []  # start, stop, start, stop... of the fields kept
        dims: list[int] = []
        data_type = location = 0
        name: bytes | None = None
        raw_at = raw_length = -1
        whole = False  # typed payloads, segments, external data: kept whole, stripped later
        while pos < end:
            start = pos
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint_at(buf, pos)
            number, wire = tag >> 3, tag & 7
            if number == 9 and wire == 2:
                raw_length, raw_at = _varint_at(buf, pos)
                pos = raw_at + raw_length
                continue
            if wire == 0:
                value = buf[pos]
                if value < 0x80:
                    pos += 1
                else:
                    value, pos = _varint_at(buf, pos)
                if number == 1:
                    dims.append(value)
                elif number == 2:
                    data_type = value
                elif number == 14:
                    location = value
                else:
                    whole = whole or number in _TENSOR_TYPED_PAYLOADS
            elif number == 1 and wire == 2:
                length, pos = _varint_at(buf, pos)
                dims += _packed_varints(buf[pos : pos + length])
                pos += length
            elif number == 8 and wire == 2:
                length, pos = _varint_at(buf, pos)
                name = buf[pos : pos + length]
                pos += length
            else:
                whole = whole or number in _TENSOR_TYPED_PAYLOADS or number in (3, 13)
                pos = _skip_at(buf, pos, wire)
            if kept and kept[-1] == start:
                kept[-1] = pos
            else:
                kept += [start, pos]
        if pos != end:
            raise _Unusual("tensor length")
        size = ITEM_SIZES.get(data_type)
        if whole or location or raw_at < 0 or size is None or any(d >= 2**63 for d in dims):
            return None
        count = 1
        for dim in dims:
            count *= dim
        if count <= keep_limit(data_type):
            return None
        fits = raw_length == count * size
        if count <= KEEP_CONSTANT_ELEMENTS and not fits:
            return None  # validated (and reported) the ordinary way
        if fits and name is not None:
            with contextlib.suppress(UnicodeDecodeError):  # protobuf would not read it either
                self.payloads[name.decode()] = Payload(
                    raw_at, raw_length, self.stamp, data_type, tuple(dims)
                )
        self.skipped.add(index)
        slim = b"".join(
            [*(buf[a:b] for a, b in zip(kept[::2], kept[1::2], strict=True)), _STRIPPED_MARK]
        )
        return _varint_bytes(_GRAPH_INITIALIZER) + _varint_bytes(len(slim)) + slim


def read_slim(
    path: Path,
) -> tuple[onnx.ModelProto, frozenset[int], dict[str, Payload]] | None:
    """The model at ``path`` with weight payloads left in the file, the indices of the
    initializers they belong to and where they are; None when the file should be read the
    ordinary way (not the protobuf format, anything unusual: protobuf then says what)."""
    _, suffix = os.path.splitext(path)
    fmt = onnx.serialization.registry.get_format_from_file_extension(suffix)
    if (fmt or "protobuf") != "protobuf" or not LITTLE_ENDIAN:
        return None
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                reader = _SlimReader(buf, (info.st_size, info.st_mtime_ns))
                data = reader.model()
        model = onnx.ModelProto()  # with nothing left out, ``data`` is the file as it is
        model.ParseFromString(data)
    except Exception:  # _Unusual, DecodeError, OSError: protobuf reads it and says what is wrong
        return None
    return model, frozenset(reader.skipped), reader.payloads
