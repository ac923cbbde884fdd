"""Alembic environment: migrations always run on a connection that `Database.migrate` hands over."""

from __future__ import annotations

from alembic import context

from modelyard.registry._database import VERSION_TABLE
from modelyard.registry._tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    # Not Alembic's default `alembic_version`: Optuna records its own schema there.
    version_table=VERSION_TABLE,
)
with context.begin_transaction():
    context.run_migrations()
