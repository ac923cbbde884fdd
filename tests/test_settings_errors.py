"""A MODELYARD_* variable that does not parse: one line naming it and the form it expects, from
the SDK and from the command line (not pydantic's forty-line report)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modelyard import Yard
from modelyard.errors import ConfigurationError
from modelyard.settings import load_settings


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MODELYARD_ALERT_WEBHOOKS", "https://x/",
         "MODELYARD_ALERT_WEBHOOKS='https://x/': not valid JSON; expected a JSON list such as"),
        ("MODELYARD_SERVE_POLL_SECONDS", "soon",
         "MODELYARD_SERVE_POLL_SECONDS='soon': input should be a valid number"),
        ("MODELYARD_SERVE_POLL_SECONDS", "-1",
         "MODELYARD_SERVE_POLL_SECONDS='-1': input should be greater than 0; expected a number"),
        ("MODELYARD_AUTH", "maybe", "MODELYARD_AUTH='maybe': input should be a valid boolean"),
        ("MODELYARD_SERVE_MAX_QUEUE", "1.5", "expected a whole number"),
        ("MODELYARD_TLS_CERTFILE", "/cert.pem",
         "MODELYARD_* settings: tls_certfile and tls_keyfile go together"),
    ],
)  # fmt: skip
def test_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert message in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ConfigurationError):
        Yard()


def test_forms_of_optional_fields_and_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard.settings import _setting_error

    assert str(_setting_error("serve_alerts", "Bad")).endswith(": bad; expected a path")
    monkeypatch.setenv("MODELYARD_TOKEN", "hunter2")
    assert str(_setting_error("token", "bad")) == "MODELYARD_TOKEN: bad; expected text"


def test_the_cli_prints_one_line(tmp_path: Path) -> None:
    env = {"MODELYARD_HOME": str(tmp_path), "MODELYARD_ALERT_WEBHOOKS": "https://x/",
           "PATH": "/usr/bin:/bin"}  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "modelyard", "versions", "list", "iris"],
                            env=env, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: MODELYARD_ALERT_WEBHOOKS='https://x/': not valid JSON")
    assert result.stderr.count("\n") == 1
