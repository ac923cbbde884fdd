"""Telling followers that an alias moved, as soon as it moves.

On PostgreSQL every alias move sends a notification on `CHANNEL` in the same transaction (so it
is delivered at commit, and never for a move rolled back); `AliasListener` holds one connection
that LISTENs, and reconnects with backoff when PostgreSQL restarts or drops it. On SQLite, where
nothing is pushed, `AliasPoller` checks one indexed number (the newest `alias_history` id) a few
times a second. Both call `wake(move)` from their own thread; `wake(None)` says "moves may have
been missed (a reconnect): check everything", which a follower's regular poll also covers.

>>> listener = AliasListener("postgresql+psycopg://postgres@127.0.0.1/modelyard")
>>> listener.start(print)   # AliasMove(model='fraud', alias='production', version=4)
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, literal, select
from sqlalchemy.engine import make_url

from modelyard.registry._database import Database
from modelyard.registry._tables import alias_history, models, versions

log = logging.getLogger("modelyard.registry")

CHANNEL = "modelyard_aliases"
"""The PostgreSQL notification channel of alias moves; payload: `{"model", "alias", "version"}`."""
BACKOFF_SECONDS = (0.1, 5.0)
"""The listener's wait before reconnecting: from the first, doubling up to the second."""
POLL_SECONDS = 0.25
"""How often `AliasPoller` looks at the newest alias move."""


@dataclass(frozen=True, slots=True)
class AliasMove:
    """An alias that moved: to `version`, or deleted (`version` None)."""

    model: str
    alias: str
    version: int | None

    def payload(self) -> str:
        """The JSON sent with a notification (and over the server's event stream)."""
        return json.dumps({"model": self.model, "alias": self.alias, "version": self.version})

    @classmethod
    def parse(cls, payload: str | bytes) -> AliasMove | None:
        """The move a payload describes, or None for one that does not parse (never trusted
        further than that: a follower only re-reads the alias it names)."""
        try:
            data = json.loads(payload)
            model, alias, version = data["model"], data["alias"], data["version"]
        except (ValueError, TypeError, KeyError):
            return None
        if not (isinstance(model, str) and isinstance(alias, str)):
            return None
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            return None
        return cls(model, alias, version)


Wake = Callable[[AliasMove | None], None]
"""Called from a listener's thread with a move, or None when moves may have been missed."""


def notify_statement(move: AliasMove) -> Select[Any]:
    """`SELECT pg_notify(CHANNEL, payload)` for one move (PostgreSQL only)."""
    return select(func.pg_notify(literal(CHANNEL), literal(move.payload())))


def announce(connection: Connection, move: AliasMove) -> None:
    """Notify listeners of `move` at commit, on PostgreSQL (SQLite is polled instead)."""
    if connection.dialect.name == "postgresql":
        connection.execute(notify_statement(move))


def libpq_url(url: str) -> str:
    """The libpq connection string of a SQLAlchemy PostgreSQL URL (no `+psycopg`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class _Threaded:
    """A source that watches in a daemon thread named `thread_name` until stopped."""

    thread_name = "alias-events"

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, wake: Wake) -> None:
        """Watch in a daemon thread, calling `wake` for each move."""
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, args=(wake,), name=self.thread_name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (within about half a second)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self, wake: Wake) -> None:
        raise NotImplementedError


class AliasListener(_Threaded):
    """LISTEN for alias moves on PostgreSQL in a thread; reconnects with backoff (wake(None)
    after each reconnect: what moved meanwhile was not heard). `start` and `stop` it."""

    thread_name = "alias-listener"

    def __init__(self, url: str, *, backoff: tuple[float, float] = BACKOFF_SECONDS) -> None:
        self.url = url
        self.backoff = backoff
        self.connects = 0
        """How many times the listener has connected (a test waits for a reconnect)."""
        self.pid: int | None = None
        """The backend process id of the listening connection while it listens."""
        super().__init__()

    def _run(self, wake: Wake) -> None:
        import psycopg

        delay = self.backoff[0]
        while not self._stopping.is_set():
            try:
                with psycopg.connect(libpq_url(self.url), autocommit=True,
                                     connect_timeout=5) as connection:  # fmt: skip
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.pid, delay = connection.info.backend_pid, self.backoff[0]
                    self.connects += 1
                    wake(None)
                    self._listen(connection, wake)
            except psycopg.Error as error:
                self.pid = None
                if self._stopping.is_set():
                    break
                log.warning("alias listener: %s; reconnecting in %.1f s (polling meanwhile)",
                            str(error).strip() or type(error).__name__, delay)  # fmt: skip
                self._stopping.wait(delay)
                delay = min(delay * 2, self.backoff[1])
        self.pid = None

    def _listen(self, connection: Any, wake: Wake) -> None:
        while not self._stopping.is_set():
            for note in connection.notifies(timeout=0.5):
                move = AliasMove.parse(note.payload)
                if move is not None:
                    wake(move)


_LATEST = select(func.max(alias_history.c.id))
_SINCE = (
    select(
        alias_history.c.id, models.c.name, alias_history.c.name.label("alias"), versions.c.number
    )  # fmt: skip
    .join(models, models.c.id == alias_history.c.model_id)
    .outerjoin(versions, versions.c.id == alias_history.c.version_id)
    .where(alias_history.c.id > bindparam("after"))
    .order_by(alias_history.c.id)
)


class AliasPoller(_Threaded):
    """Poll the newest alias move (one indexed `max(id)`) every `interval` seconds in a thread,
    and wake for each move after the first look; for SQLite, which pushes nothing."""

    thread_name = "alias-poller"

    def __init__(self, database: Database, *, interval: float = POLL_SECONDS) -> None:
        self.database = database
        self.interval = interval
        super().__init__()

    def _run(self, wake: Wake) -> None:
        last: int | None = None
        while not self._stopping.wait(0 if last is None else self.interval):
            try:
                last = self._check(last, wake)
            except Exception as error:  # a locked or unreachable database: try again later
                log.debug("alias poller: %s", error)

    def _check(self, last: int | None, wake: Wake) -> int:
        with self.database.read() as connection:
            latest = connection.execute(_LATEST).scalar() or 0
            if last is None or latest == last:
                return latest
            if latest < last:  # moves deleted with their model: look again at everything
                wake(None)
                return latest
            for row in connection.execute(_SINCE, {"after": last}):
                wake(AliasMove(row.name, row.alias, row.number))
        return latest
