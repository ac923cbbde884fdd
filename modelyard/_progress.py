"""Progress on a terminal: a bar for the bytes of a large model stored or restored, and a
status line for the steps of a long command.

Drawn only when the caller asked for it (the CLI does; the SDK does not unless told) and
stderr is a terminal: a script, a test or a CI log gets nothing, not even a carriage return.
rich, which typer already depends on, draws them.
"""

from __future__ import annotations

import logging
import stat
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

LARGE = 32 << 20
"""Models smaller than this store and restore without a bar: they take well under a second."""


def shown(asked: bool, stream: IO[str] | None = None) -> bool:
    """Whether to draw on `stream` (stderr): asked for, and a terminal."""
    stream = sys.stderr if stream is None else stream
    return asked and stream.isatty()


def folder_bytes(folder: Path) -> int:
    """The bytes of the files under `folder` (what a bar of storing it counts to)."""
    found = (path.lstat() for path in folder.rglob("*"))
    return sum(info.st_size for info in found if stat.S_ISREG(info.st_mode))


def _ignore(_: int) -> None:
    pass


@contextmanager
def byte_progress(
    description: str, total: int, *, asked: bool, stream: IO[str] | None = None
) -> Iterator[Callable[[int], None]]:
    """A bar of bytes done out of `total` while open; yields what advances it by a count of
    bytes (a no-op when nothing is drawn: small, not asked, or not a terminal).

    >>> with byte_progress("storing fraud", 2 << 30, asked=True) as advance:
    ...     advance(1 << 20)
    """
    if total < LARGE or not shown(asked, stream):
        yield _ignore
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(file=stream or sys.stderr)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done: bar.advance(task, done)


class _Steps(logging.Handler):
    """Shows each INFO record as the status line's text; a finished step stays as a line with
    the seconds it took."""

    def __init__(self, status: Any, console: Any) -> None:
        super().__init__(logging.INFO)
        self.status = status
        self.console = console
        self.current: tuple[str, float] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.finish()
        self.current = (record.getMessage(), time.monotonic())
        self.status.update(f"{self.current[0]} …")

    def finish(self) -> None:
        if self.current is not None:
            step, started = self.current
            self.console.print(f"{step}: {time.monotonic() - started:.1f} s", highlight=False)
            self.current = None


@contextmanager
def step_status(logger: str, *, asked: bool, stream: IO[str] | None = None) -> Iterator[None]:
    """While open, the INFO records of `logger` (`loading mlp:1`, `measuring latency`) show as
    a status line on a terminal; nothing otherwise.

    >>> with step_status("modelyard.optimize", asked=True):
    ...     yard.optimize.quantize("mlp:1", eval_data=(X, y))
    """
    if not shown(asked, stream):
        yield
        return
    from rich.console import Console

    console = Console(file=stream or sys.stderr)
    source = logging.getLogger(logger)
    previous = source.level
    with console.status("starting …") as status:
        handler = _Steps(status, console)
        source.addHandler(handler)
        if source.getEffectiveLevel() > logging.INFO:
            source.setLevel(logging.INFO)
        try:
            yield
            handler.finish()
        finally:
            source.removeHandler(handler)
            source.setLevel(previous)
