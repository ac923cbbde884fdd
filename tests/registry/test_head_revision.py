"""`HEAD_REVISION`: an up-to-date database opens without Alembic, and the constant cannot fall
behind the migrations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from modelyard.registry import Database
from modelyard.registry._database import HEAD_REVISION, MIGRATIONS, our_revisions


def test_head_revision_is_alembics_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # A new migration must move HEAD_REVISION too, or every open would run Alembic again.
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_fresh_database_migrates_then_is_at_head(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    database.open()
    try:
        applied = database.migrate()
        assert applied[-1] == HEAD_REVISION and len(applied) >= 3
        assert database.migrate() == []
        assert database.pending() == []
        assert database.legacy_revisions() == []
    finally:
        database.close()


def test_up_to_date_database_opens_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    database = Database(url)
    database.open()
    database.migrate()
    database.close()
    script = (
        "import sys\n"
        "from modelyard.registry import Database\n"
        f"database = Database({url!r})\n"
        "database.open()\n"
        "assert database.migrate() == [] and database.pending() == []\n"
        "print('alembic' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_database_behind_head_is_still_migrated(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    database.open()
    try:
        database.migrate()
        with database.write() as connection:  # as if made before the newest migration
            connection.exec_driver_sql("DROP TABLE leases")
            connection.exec_driver_sql(
                "UPDATE modelyard_alembic_version SET version_num = '0005_prediction_log'"
            )
        assert database.pending() == ["0006_leases", HEAD_REVISION]
        assert database.migrate() == ["0006_leases", HEAD_REVISION]
        assert database.pending() == []
    finally:
        database.close()


def test_migration_files_are_named_for_their_revisions() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    revisions = {rev.revision for rev in ScriptDirectory.from_config(config).walk_revisions()}
    assert our_revisions() == revisions  # the fast path finds legacy rows by these names
