"""Read one initializer's bytes from the model file, on demand, when a rule needs them."""

from __future__ import annotations

import os
import weakref
from pathlib import Path

from portlint.model_io.loaded import Payload


class PayloadReader:
    """Reads initializer payloads left in the model file, through one open file descriptor.

    The file is opened on the first read (and closed when the reader goes away); its size and
    modification time are compared with the ones it had when it was read, before every read:
    a file rewritten since is not read at old offsets (``read`` returns None and the caller
    parses the file again).
    """

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self._failed = False

    def read(self, payload: Payload) -> bytes | None:
        if self._failed:
            return None
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
                weakref.finalize(self, os.close, self._fd)
            info = os.fstat(self._fd)
            if (info.st_size, info.st_mtime_ns) != payload.stamp:
                return None
            data = os.pread(self._fd, payload.length, payload.offset)
        except (OSError, AttributeError):  # AttributeError: no os.pread (Windows)
            self._failed = True
            return None
        return data if len(data) == payload.length else None
