"""Alias moves of whatever registry a `Yard` talks to, for serving and the registry server.

PostgreSQL: LISTEN (`AliasListener`); a registry server (`Yard(url=...)`): its event stream
(`StreamAliasEvents`); SQLite: a cheap poll of the newest move every 0.25 s (`AliasPoller`).
Which one is chosen when started, once the registry is open (constructing opens nothing). A
client given to the Yard (`http_client=`) is not asked to stream (an in-process transport reads
a whole response before returning it, and a stream never ends): polling alone then.

>>> pool = ModelPool(yard, settings, metrics=metrics, events=YardAliasEvents(yard))
"""

from __future__ import annotations

from collections.abc import Callable

from modelyard._yard import Yard
from modelyard.registry import AliasListener, AliasMove, AliasPoller, Registry
from modelyard.serving import AliasEvents


class YardAliasEvents:
    """`AliasEvents` for `yard`'s registry, picked at `start`."""

    def __init__(self, yard: Yard) -> None:
        self.yard = yard
        self.source: AliasEvents | None = None
        """The events chosen at `start`: a listener, a stream or a poller."""

    def start(self, wake: Callable[[AliasMove | None], None]) -> None:
        """Open the registry if need be, then start the events that fit it (if any)."""
        self.source = self._pick()
        if self.source is not None:
            self.source.start(wake)

    def stop(self) -> None:
        """Stop the chosen events."""
        if self.source is not None:
            self.source.stop()
            self.source = None

    def _pick(self) -> AliasEvents | None:
        registry = self.yard.registry
        if not isinstance(registry, Registry):
            if not registry.owns_client:
                return None
            from modelyard._remote_events import StreamAliasEvents

            return StreamAliasEvents(registry.client, headers=registry.headers)
        database = registry.database
        if database.dialect == "postgresql":
            return AliasListener(database.url)
        return AliasPoller(database)
