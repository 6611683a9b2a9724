"""Metrics looked up in a table: any CSV with an ``arch_str`` column (NAS-Bench-201 and friends).

Only ``arch_str`` is assumed; every other column is a metric under its own name. A value is
converted to a number when a candidate asks for it, so a stray non-numeric cell is an error that
names its column, row and value, not a crash at load time.
"""
from __future__ import annotations

import contextlib
import csv
import math
from pathlib import Path
from typing import Any, Iterable, Iterator, TextIO

from evaluators._base import Candidate, Evaluator, Metric
from spaces.errors import ArchpruneError

KEY = "arch_str"


def table_columns(path: str | Path) -> list[str]:
    """The metric columns of a table (everything but ``arch_str``), reading only its header."""
    path = Path(path)
    if path.is_dir():
        raise ArchpruneError(f"table {path} is a folder; pass the CSV file inside it")
    if not path.is_file():
        raise ArchpruneError(f"table {path} does not exist")
    with _opened(path) as handle:
        fields = next(csv.reader(handle), [])
    if KEY not in fields:
        raise ArchpruneError(f"table {path} has no {KEY!r} column (its columns: {', '.join(fields) or 'none'})")
    return [f for f in fields if f != KEY]


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[TextIO]:
    """The table as text; a binary file (an image passed by mistake) is one line, not a codec traceback."""
    with path.open(newline="", encoding="utf-8") as handle:
        try:
            yield handle
        except UnicodeDecodeError:
            raise ArchpruneError(f"table {path} is not a text CSV (binary data, e.g. an image?); "
                                 "pass the CSV with an arch_str column") from None


class Table:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.columns = table_columns(self.path)
        self.rows: dict[str, dict[str, str]] = {}
        with _opened(self.path) as handle:
            for row in csv.DictReader(handle):
                self.rows.setdefault((row[KEY] or "").strip(), row)
        self.rows.pop("", None)  # blank lines and rows without an arch are not cells
        if not self.rows:  # every trial would fail: say so before the first one
            raise ArchpruneError(f"table {self.path} has a header but no rows; pass the full table")

    def check_columns(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self.columns:
                raise ArchpruneError(f"table {self.path.name} has no column {name!r}; its columns are "
                                     f"{', '.join(self.columns)}")

    def value(self, arch: str, column: str) -> float:
        row = self.rows.get(arch)
        if row is None:
            raise ArchpruneError(f"arch {arch!r} is not in table {self.path.name}")
        raw = row.get(column)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ArchpruneError(f"table {self.path.name}, column {column!r}, arch {arch!r}: {raw!r} is not a number") from None
        if math.isnan(value):
            raise ArchpruneError(f"table {self.path.name}, column {column!r}, arch {arch!r}: the value is NaN")
        return value


class TableEvaluator(Evaluator):
    """Returns the named columns of the candidate's row; ``directions`` come from the objectives."""

    metrics = (Metric("top1", "max", "top-1", 0.0, 1.0),)  # and whatever columns the table has
    cost = 0
    name = "table"
    needs_model = False  # a lookup: the candidate network is never built

    def __init__(self, table: Table | str | Path, directions: dict[str, str]) -> None:
        self.table = table if isinstance(table, Table) else Table(table)
        self.table.check_columns(directions)
        self.directions = dict(directions)

    def evaluate(self, candidate: Candidate) -> dict[str, Any]:
        arch = candidate.config.get(KEY)
        if arch is None:
            raise ArchpruneError(f"the table evaluator needs a space whose config has {KEY!r} (nb201 does)")
        return {column: self.table.value(arch, column) for column in self.directions}
