"""The one exception type for problems a user can fix.

The CLI prints an ``ArchpruneError`` as a single line (no traceback), so its message must
name the thing that is wrong (a file, a key, a value) and, where there is one, the fix.
"""
from __future__ import annotations

from typing import Iterable


class ArchpruneError(Exception):
    """A user-facing error: bad input, missing file, unsupported model or data."""


def did_you_mean(name: str, known: Iterable[str], cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to ``name``, or "" when none is close."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""
