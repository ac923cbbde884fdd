"""Run blob transfers in parallel while keeping their order and a bound on memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class InlineExecutor(Executor):
    """Runs each task at once on the caller's thread: a pool for work too small for threads."""

    def submit(self, fn: Callable[..., Out], /, *args: Any, **kwargs: Any) -> Future[Out]:
        future: Future[Out] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


def ordered_map(
    fn: Callable[[In], Out], items: Iterable[In], *, pool: Executor, window: int
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
