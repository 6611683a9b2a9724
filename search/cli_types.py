"""Argument types and the parser class every ``archprune`` subcommand uses: a bad flag is one line."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, NoReturn

from evaluators.image_size import image_size_problem


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage before its error; users need the one line that names the flag
    (``--help`` still shows the usage)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def int_at_least(minimum: int) -> Callable[[str], int]:
    """A whole number of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a finite number of at least 0, got {text}")
    return value


def image_size(text: str) -> int:
    """An input size in pixels: a multiple of 32 in a range a detector can run at."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, got {text!r}") from None
    problem = image_size_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value
