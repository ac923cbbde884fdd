"""The registry's database: engine set-up, migrations, and read/write transactions.

SQLite (the embedded default) runs in WAL mode with foreign keys on, and every write transaction
starts with `BEGIN IMMEDIATE`, so concurrent writers queue on the lock instead of failing on a
read-to-write upgrade. PostgreSQL serialises the few contended rows with row locks.

The applied migrations are recorded in a table of our own, `modelyard_alembic_version`, not in
Alembic's default `alembic_version`: Optuna keeps its schema revision there, and the registry's
database is also where `yard.tune` keeps its studies. Databases made before this keep their
revision in `alembic_version` until the next `migrate()`, which moves it.

An SQLite file is created whole, opened only if it is a registry, and watched: a file replaced
or deleted under a running process raises `DatabaseReplaced` (see `_sqlite_file`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, column, create_engine, delete, event, func, select, table
from sqlalchemy import inspect as inspect_schema
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.exc import OperationalError as SQLOperationalError

from modelyard.errors import ConfigurationError, RegistryUnavailable
from modelyard.registry._audit import SEAL_OPTION, AuditSeal
from modelyard.registry._sqlite_file import DatabaseFile
from modelyard.security import derive_key

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "modelyard_alembic_version"
"""Where the applied migrations are recorded (see the module docstring)."""
LEGACY_VERSION_TABLE = "alembic_version"
HEAD_REVISION = "0007_tag_statistics"
"""The newest migration. An up-to-date database is recognised by comparing its recorded revision
with this, without importing Alembic (0.1-0.7 s on every open); a test checks that it is Alembic's
head, so a new migration cannot be forgotten here."""
_WRITE = "modelyard_write"
CACHE_KIB = 32 * 1024
"""SQLite: the most page cache one connection keeps, in KiB."""


class Database:
    """A registry database at `url`; `open()` connects, `migrate()` brings the schema up to date.

    `secret` (the server secret, `modelyard.security.load_secret`) keys the audit chain and the
    search page tokens; every process that writes the same database needs the same secret.

    >>> database = Database("sqlite:////tmp/registry.db")
    >>> database.open()
    >>> database.migrate()
    """

    OPTIMIZE_EVERY = 500
    """SQLite: refresh the planner's statistics after this many write transactions."""

    def __init__(self, url: str, *, secret: bytes | None = None) -> None:
        self.url = url
        self._engine: Engine | None = None
        self.file: DatabaseFile | None = None
        """SQLite: the file, once open (None in memory and on PostgreSQL)."""
        self._writes = 0
        # Keys derived from the server secret (see modelyard.security): the audit chain's (None
        # without a secret: unkeyed, for tests and tools) and the search page tokens' (without
        # a secret, random: tokens then hold for this process only).
        self.audit_seal = AuditSeal(derive_key(secret, "audit-chain") if secret else None)
        self.page_key = derive_key(secret, "page-tokens") if secret else os.urandom(32)
        # Webhook secrets are derived from it, never stored (None without a secret: refused).
        self.webhook_key = derive_key(secret, "webhook-secrets") if secret else None

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine; only after `open()`."""
        if self._engine is None:
            raise ConfigurationError("the registry database is not open; call open() first")
        return self._engine

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    def open(self) -> None:
        """Create the engine; for SQLite, create the file (and its folder) if the path is new,
        else check that it is a registry (`InvalidDatabase` if not)."""
        try:
            url = make_url(self.url)
        except ArgumentError:
            raise ConfigurationError(
                f"database URL {self.url!r} does not parse; use sqlite:///path or "
                "postgresql+psycopg://user@host/db"
            ) from None
        # orjson: several times faster than json for the params/metrics/tags columns.
        options: dict[str, Any] = {"json_serializer": _dumps, "json_deserializer": orjson.loads}
        if url.get_backend_name() == "sqlite":
            options["connect_args"] = {"check_same_thread": False, "timeout": 60}
            if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
                self.file = DatabaseFile(Path(url.database).expanduser())
                self.file.prepare()
                options["creator"] = partial(self.file.connect, timeout=60)
        else:
            # No pre-ping: it costs a round trip per checkout; recycle stale connections instead.
            options.update(pool_size=5, max_overflow=10, pool_recycle=1800)
        try:
            engine = create_engine(url, **options)
        except NoSuchModuleError:
            raise ConfigurationError(
                f"database URL {self.url!r} names an unknown dialect"
            ) from None
        except ModuleNotFoundError as error:
            raise ConfigurationError(
                f"the driver for {url.get_backend_name()} is missing ({error.name}); for "
                "PostgreSQL: pip install 'psycopg[binary]' (modelyard's 'postgres' extra)"
            ) from None
        if engine.dialect.name == "sqlite":
            _tune_sqlite(engine, self.file)
        self._engine = engine

    def close(self) -> None:
        """Release every pooled connection."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def migrate(self) -> list[str]:
        """Apply every pending migration; return the ones applied, oldest first.

        A database whose revision is still in `alembic_version` (made by an older modelyard)
        has it moved to `modelyard_alembic_version` in the same transaction."""
        if self._at_head():
            return []
        from alembic import command

        todo, legacy = self._revisions()
        if todo or legacy:
            with self.write() as connection:
                config = _alembic_config(connection)
                if legacy:
                    _adopt(connection, config, legacy)
                if todo:
                    command.upgrade(config, "head")
        return todo

    def pending(self) -> list[str]:
        """Migrations not yet applied, oldest first; reads only."""
        return [] if self._at_head() else self._revisions()[0]

    def legacy_revisions(self) -> list[str]:
        """Our revisions still recorded in Alembic's default table, where Optuna keeps its own:
        until `migrate()` moves them, Optuna refuses to share this database. Reads only."""
        return self._revisions()[1]

    def _at_head(self) -> bool:
        """Whether our version table records exactly `HEAD_REVISION` and Alembic's default
        table none of our revisions (plain SELECTs: nothing for `migrate()` to do)."""
        with self.read() as connection:
            schema = inspect_schema(connection)
            if not schema.has_table(VERSION_TABLE):
                return False
            if schema.has_table(LEGACY_VERSION_TABLE):
                legacy = _recorded(connection, LEGACY_VERSION_TABLE)
                if set(legacy) & our_revisions():
                    return False  # to be moved into our table
            return _recorded(connection, VERSION_TABLE) == [HEAD_REVISION]

    def _revisions(self) -> tuple[list[str], list[str]]:
        """The migrations still to apply, and our revisions still recorded in Alembic's
        default table (a database from before we kept our own)."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        with self.read() as connection:
            script = ScriptDirectory.from_config(_alembic_config(connection))
            ordered = [rev.revision for rev in script.walk_revisions("base", "heads")]
            legacy = [
                revision
                for revision in MigrationContext.configure(connection).get_current_heads()
                if revision in ordered  # anything else there is Optuna's, or someone else's
            ]
            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            current = context.get_current_heads() or tuple(legacy)
            applied: set[str] = set()
            for head in current:
                applied.update(rev.revision for rev in script.iterate_revisions(head, "base"))
        return [revision for revision in reversed(ordered) if revision not in applied], legacy

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading: on SQLite in one read transaction (one snapshot); on
        PostgreSQL in autocommit mode."""
        with self._connect() as connection:
            if connection.dialect.name == "postgresql":
                # At READ COMMITTED each statement takes its own snapshot inside a transaction
                # too, so one adds nothing to a read but its BEGIN and COMMIT round trips.
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            with connection.begin():
                yield connection

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection in a write transaction: committed on success, rolled back on error."""
        with self._connect() as connection:
            connection = connection.execution_options(
                **{_WRITE: True, SEAL_OPTION: self.audit_seal}
            )
            with connection.begin():
                yield connection
                if self.file is not None:
                    self.file.check()  # the last moment: never commit into a replaced file
            self._writes += 1
            if self._writes % self.OPTIMIZE_EVERY == 1 and connection.dialect.name == "sqlite":
                # Without statistics SQLite may scan every version of a model for a search
                # that an index answers in a millisecond. The limit bounds ANALYZE to a
                # sample (a few ms however large the tables grow).
                with connection.begin():
                    connection.exec_driver_sql("PRAGMA analysis_limit=1000")
                    connection.exec_driver_sql("ANALYZE")

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as connection:
                yield connection
        except SQLOperationalError as error:
            raise RegistryUnavailable(
                f"the registry database at {_redacted(self.url)} cannot be used: {error.orig}"
            ) from error


def our_revisions() -> set[str]:
    """Our migrations' revisions: each file in migrations/versions is named for its revision (a
    test checks it), so this needs no Alembic."""
    return {path.stem for path in (MIGRATIONS / "versions").glob("[0-9]*.py")}


def _recorded(connection: Connection, name: str) -> list[str]:
    versions = table(name, column("version_num"))
    return list(connection.execute(select(versions.c.version_num)).scalars().all())


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _tune_sqlite(engine: Engine, file: DatabaseFile | None) -> None:
    @event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        # The default page cache (2 MiB) holds a fraction of a registry of 10,000 versions, so
        # each search re-reads index and row pages from the OS: 0.5 ms instead of 0.2 ms. The
        # cache grows only as pages are read, up to this bound per connection.
        cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE, False)
        if file is not None and not write:
            file.check()  # a write checks once, before it commits (see Database.write)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _adopt(connection: Connection, config: Any, legacy: list[str]) -> None:
    """Record `legacy` revisions in our version table and remove them from Alembic's default
    one, dropping that table when nothing else is recorded there."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config)
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    if not context.get_current_heads():
        for revision in legacy:  # one head on our linear chain; each is a head of its own
            context.stamp(script, revision)
    versions = table(LEGACY_VERSION_TABLE, column("version_num"))
    connection.execute(delete(versions).where(versions.c.version_num.in_(legacy)))
    if connection.execute(select(func.count()).select_from(versions)).scalar() == 0:
        connection.exec_driver_sql(f"DROP TABLE {LEGACY_VERSION_TABLE}")


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # pragma: no cover - open() already refused it
        return "<unparsable URL>"
