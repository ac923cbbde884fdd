"""Where a pool hears that an alias moved: the seam between following and the registry's news.

A `ModelPool` follows its aliases by polling every `serve_poll_seconds`; given an `AliasEvents`
it also checks at once when told of a move, so replicas swap within a fraction of a second
while the poll still catches a lost notification. The registry's `AliasListener` (PostgreSQL
LISTEN) and `AliasPoller` (SQLite), and the client of a registry server's event stream, are
implementations; `MemoryAliasEvents` is the one for tests.

>>> events = MemoryAliasEvents()
>>> pool = ModelPool(yard, settings, metrics=Metrics(), events=events)
>>> events.announce(AliasMove("fraud", "production", 4))   # the pool checks fraud@production
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from modelyard.registry import AliasMove

Wake = Callable[[AliasMove | None], None]
"""Called (from any thread) with a move, or None when moves may have been missed."""


class AliasEvents(Protocol):
    """A source of alias moves: `start(wake)` calls `wake` for each until `stop()`."""

    def start(self, wake: Wake) -> None:
        """Begin telling `wake` of moves (it may be called from another thread)."""

    def stop(self) -> None:
        """Stop; may block briefly (joining a thread)."""


class MemoryAliasEvents:
    """`AliasEvents` that a test drives: `announce(move)` wakes whoever started it."""

    def __init__(self) -> None:
        self.wake: Wake | None = None

    def start(self, wake: Wake) -> None:
        """Remember `wake`."""
        self.wake = wake

    def stop(self) -> None:
        """Forget it."""
        self.wake = None

    def announce(self, move: AliasMove | None) -> None:
        """Tell the pool of `move` (None: check every alias)."""
        if self.wake is not None:
            self.wake(move)
