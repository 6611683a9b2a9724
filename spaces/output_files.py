"""Writing the files a user keeps (fronts, plots, checkpoints, exports) so a failure cannot hurt them.

Every output is written to a temporary file beside it and renamed over it only once complete: a
full disk during ``pareto`` once truncated pareto.html in place. An ``OSError`` (full disk,
read-only folder, a file where a folder should be) becomes one line naming the path and the fix.
It sits beside ``errors`` at the bottom of the layers because spaces, evaluators and search all
write outputs.
"""
from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterator

from spaces.errors import ArchpruneError

_FIXES = {
    errno.ENOSPC: "no space left on the disk; free some and run the command again",
    errno.EDQUOT: "disk quota exceeded; free some space and run the command again",
    errno.EROFS: "the file system is read-only; write somewhere else (--out)",
    errno.EACCES: "permission denied; write somewhere else (--out)",
    errno.EPERM: "permission denied; write somewhere else (--out)",
    errno.ENOTDIR: "a part of the path is a file, not a folder; give another --out",
    errno.EISDIR: "it is a folder; give a file name",
}


def os_error_message(err: OSError, path: Path | str | None = None, verb: str = "write") -> str:
    """One line: which path could not be written (or used), why, and what to do; ``path``: the
    output an atomic write was protecting."""
    where = path if path is not None else err.filename  # the output, not the temporary file beside it
    fix = _FIXES.get(err.errno or -1, err.strerror or str(err))
    kept = " (the file there before is as it was)" if path is not None and Path(path).exists() else ""
    return f"cannot {verb} {where}: {fix}{kept}"


@contextlib.contextmanager
def atomic_output(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that go by it still do); it
    replaces ``path`` when the block ends without error, and is removed otherwise."""
    path = Path(path)
    if path.is_dir():
        raise ArchpruneError(f"cannot write {path}: it is a folder; give a file name")
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        raise ArchpruneError(os_error_message(err, path)) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_text(path: Path | str, text: str) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def check_output_file(path: Path | str) -> Path:
    """Before the work: ``path`` can become a file (it is not a folder, nor inside a file)."""
    path = Path(path)
    if path.is_dir():
        raise ArchpruneError(f"cannot write {path}: it is a folder; give a file name (for example {path / 'pruned.pt'})")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ArchpruneError(f"cannot write {path}: {parent} is a file, not a folder; give another --out")
    return path


def check_output_folder(path: Path | str) -> Path:
    """Before the work: ``path`` can become a folder (nothing but a folder is there)."""
    path = Path(path)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ArchpruneError(f"cannot write into {path}: {blocker} is a file, not a folder; give another --out")
    return path


def make_folder(path: Path | str) -> Path:
    """``mkdir -p`` whose failure (a file in the way, a read-only disk) is one line."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ArchpruneError(f"cannot write into {path}: it is a file, not a folder; give another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ArchpruneError(os_error_message(err)) from None
    return path
