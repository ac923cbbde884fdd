"""Fixtures for the real services that `scripts/test` starts (PostgreSQL, SeaweedFS's S3)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from modelyard import Yard

HOW = (
    "run the suite through scripts/test, or start the services by hand: "
    'eval "$(python scripts/services.py start --dir /tmp/modelyard-services)"'
)


def service_env(name: str) -> str:
    """A variable that scripts/test exports; its absence fails the test with what to do."""
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: {HOW}", pytrace=False)
    return value


@pytest.fixture(scope="session")
def database_url() -> str:
    """The PostgreSQL server's test database (SQLAlchemy URL)."""
    return service_env("MODELYARD_TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def s3_settings():  # type: ignore[no-untyped-def]
    """Settings pointing at the SeaweedFS S3 gateway, under a prefix unique to this session."""
    from modelyard import Settings

    return Settings(
        store_url=f"s3://{service_env('MODELYARD_TEST_S3_BUCKET')}/session-{uuid.uuid4().hex[:8]}",
        s3_endpoint_url=service_env("MODELYARD_TEST_S3_ENDPOINT_URL"),
        s3_access_key_id=service_env("MODELYARD_TEST_S3_ACCESS_KEY_ID"),
        s3_secret_access_key=service_env("MODELYARD_TEST_S3_SECRET_ACCESS_KEY"),
        s3_region="us-east-1",
    )


@pytest.fixture
def s3_store(s3_settings):  # type: ignore[no-untyped-def]
    """An S3Store under a prefix unique to the test, so tests never see each other's blobs."""
    from modelyard.store import S3Store

    store = S3Store.from_settings(s3_settings)
    return S3Store(
        store.bucket, prefix=f"{store.prefix}/{uuid.uuid4().hex[:8]}", client=store.client
    )


@pytest.fixture
def fresh_postgres(database_url: str) -> Iterator[str]:
    """A new, migrated PostgreSQL database of its own, dropped afterwards."""
    from sqlalchemy import text

    from modelyard.registry import Database

    name = f"fresh_{uuid.uuid4().hex[:12]}"
    admin = Database(database_url)
    admin.open()

    def run(statement: str) -> None:
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(statement))

    run(f'CREATE DATABASE "{name}"')
    url = f"{database_url.rpartition('/')[0]}/{name}"
    database = Database(url)
    database.open()
    database.migrate()
    database.close()
    yield url
    run(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


YardFactory = Callable[..., "Yard"]


@pytest.fixture(params=["local", "asgi", "server"])
def make_yard(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[YardFactory]:
    """Clients for each way in: the embedded registry, the API in-process, and a real
    `modelyard server` process on PostgreSQL. Every client made is closed afterwards."""
    from modelyard import Settings, Yard
    from modelyard.api import create_app
    from tests.asgi import in_process_client
    from tests.servers import running_server

    # The operator allows the test models' classes (tests.*), which torch versions name.
    settings = Settings(home=tmp_path / "home", user="ana", trusted_modules=["tests"])
    made: list[Yard] = []

    def factory(database_url: str | None = None, **options: object) -> YardFactory:
        # Over HTTP the server requires tokens: each user gets one (and the admin role), since
        # who acts is the token's user, not a setting of the client.
        def make(user: str = "ana") -> Yard:
            update: dict[str, object] = {"user": user}
            if database_url is not None:
                update["token"] = _admin_token(database_url, user)
            made.append(Yard(settings.model_copy(update=update), **options))  # type: ignore[arg-type]
            return made[-1]

        return make

    with ExitStack() as stack:
        if request.param == "asgi":
            # No cache: a user's token and grant, made in the database, count at once.
            app = create_app(settings.model_copy(update={"auth": True, "auth_cache_seconds": 0}))
            client = stack.enter_context(in_process_client(app))
            yield factory(settings.database_url, url="http://testserver", http_client=client)
        elif request.param == "server":
            database_url = request.getfixturevalue("fresh_postgres")
            env = {"MODELYARD_AUTH": "true", "MODELYARD_AUTH_CACHE_SECONDS": "0"}
            server = running_server(tmp_path, database_url, env=env)
            yield factory(database_url, url=stack.enter_context(server))
        else:
            yield factory()
        for yard in made:
            yard.close()


@pytest.fixture
def yard(make_yard: YardFactory) -> Yard:
    return make_yard()


def _admin_token(database_url: str, user: str) -> object:
    """A token acting as `user`, with the admin role, made in the registry's own database."""
    from pydantic import SecretStr

    from modelyard.registry import Database, Principals

    database = Database(database_url)
    database.open()
    try:
        database.migrate()
        principals = Principals(database, actor="test")
        principals.grant(user, "admin")
        return SecretStr(principals.create_token(user=user).secret)
    finally:
        database.close()
