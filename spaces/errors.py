"""The one exception type for problems a user can fix.

The CLI prints an ``ArchpruneError`` as a single line (no traceback), so its message must
name the thing that is wrong (a file, a key, a value) and, where there is one, the fix.
"""
from __future__ import annotations


class ArchpruneError(Exception):
    """A user-facing error: bad input, missing file, unsupported model or data."""
