"""Disk faults for tests that run as root (where permissions do not bite): opening a file under a
folder for writing fails as on a read-only file system, or its writes fail as on a full disk."""
from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path
from typing import Any

import pytest


class _FullDiskFile:
    """A file opened for writing whose writes fail as on a full disk (after it was created)."""

    def __init__(self, handle: Any, name: str) -> None:
        self._handle, self._name = handle, name

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._name)

    def __enter__(self) -> "_FullDiskFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def inject_write_errors(monkeypatch: pytest.MonkeyPatch, folder: Path, code: int) -> None:
    """Opening a file under ``folder`` for writing fails with ``code`` (EROFS at open, ENOSPC at write)."""
    real_open = builtins.open

    def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        writing = any(c in mode for c in "wax+")
        if writing and isinstance(file, (str, os.PathLike)) and Path(file).resolve().is_relative_to(folder.resolve()):
            if code == errno.EROFS:
                raise OSError(code, os.strerror(code), str(file))
            return _FullDiskFile(real_open(file, mode, *args, **kwargs), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
