"""`modelyard server` as a real process on a loopback port."""

from __future__ import annotations

from pathlib import Path

import httpx

from modelyard import Settings, Yard
from tests.servers import running_server


def test_serves_then_stops_cleanly_on_sigterm(tmp_path: Path, fresh_postgres: str) -> None:
    codes: list[int] = []
    with running_server(tmp_path, fresh_postgres, exit_codes=codes) as url:
        assert httpx.get(f"{url}/health").json()["status"] == "ok"
        assert "/api/v1/models" in httpx.get(f"{url}/openapi.json").json()["paths"]
        with Yard(Settings(home=tmp_path, user="ana"), url=url) as yard:
            yard.registry.create_version("fraud")
            assert yard.get_version("fraud").ref == "fraud:1"
    assert codes == [0]
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log
