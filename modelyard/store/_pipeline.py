"""Run blob transfers in parallel while keeping their order and a bound on memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


def ordered_map(
    fn: Callable[[In], Out], items: Iterable[In], *, pool: ThreadPoolExecutor, window: int
) -> Iterator[Out]:
    """`map(fn, items)` on `pool`, with at most `window` items in flight, results in input order.

    Hashing and file or network I/O release the GIL, so threads overlap them; the window keeps
    memory flat however long `items` is.
    """
    pending: deque[Future[Out]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
