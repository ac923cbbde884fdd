"""Rendering for the CLI: human tables by default, JSON for scripts, one-line errors."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import typer

from modelyard.errors import ModelyardError

P = ParamSpec("P")
R = TypeVar("R")


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a `ModelyardError` into `error: <message>` on stderr and exit code 1, no traceback."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ModelyardError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None

    return run


def emit_json(data: Any) -> None:
    """Print `data` as indented JSON."""
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


NARROWEST = 12  # a text column is never cut below this many characters


def emit_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], *, width: int | None = None
) -> None:
    """Print rows as a plain aligned table (numbers right-aligned). On a terminal (or with
    `COLUMNS` set), the widest text columns are cut to fit its `width`, ending in `…`; `--json`
    has the full values."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], int | float) for row in rows) for i in range(len(headers))]
    widths = fit(widths, numeric, width if width is not None else terminal_width())

    def line(values: Sequence[str]) -> str:
        padded = (
            (v.rjust(w) if right else v.ljust(w)) if len(v) <= w else v[: w - 1] + "…"
            for v, w, right in zip(values, widths, numeric, strict=True)
        )
        return "  ".join(padded).rstrip()

    typer.echo(line(headers))
    typer.echo(line(["-" * w for w in widths]))
    for row in cells:
        typer.echo(line(row))


def terminal_width() -> int | None:
    """The width to fit tables to: `COLUMNS`, else the terminal's; None when printing to a
    file or a pipe (nothing to fit)."""
    if os.environ.get("COLUMNS", "").isdigit() or sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def fit(widths: list[int], numeric: Sequence[bool], limit: int | None) -> list[int]:
    """Column widths that fit `limit` (with two spaces between columns), taken from the widest
    text column first; numbers are never cut, nor a column below `NARROWEST`."""
    fitted = list(widths)
    excess = sum(fitted) + 2 * (len(fitted) - 1) - limit if limit is not None else 0
    while excess > 0:  # one character at a time off the widest: wide columns share the cut
        cuttable = [i for i, w in enumerate(fitted) if not numeric[i] and w > NARROWEST]
        if not cuttable:
            break
        fitted[max(cuttable, key=fitted.__getitem__)] -= 1
        excess -= 1
    return fitted


def human_bytes(size: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
