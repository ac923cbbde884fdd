"""An alert rule on a model the server does not serve is refused at start, in one line; a rule
that cannot be evaluated later logs one line per evaluation, not a traceback; MLflow's
references serve and watch like ours."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelyard import Settings, Yard
from modelyard.api import create_inference_app, serve
from modelyard.errors import ConfigurationError
from tests.flavors.pyfunc_models import Picky
from tests.servers import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def served(tmp_path: Path, rules: str) -> tuple[Settings, Yard]:
    (tmp_path / "rules.yaml").write_text(rules)
    settings = Settings(home=tmp_path / "home", serve_alerts=tmp_path / "rules.yaml")
    yard = Yard(settings)
    yard.log_model(Picky(), name="picky", input_example=np.ones((1, 2)))
    return settings, yard


def test_a_rule_on_a_model_not_served_is_refused_at_start(tmp_path: Path) -> None:
    settings, yard = served(tmp_path, "- {name: drift, model: 'models:/pikcy@production', "
                                      "signal: drift_share, threshold: 0.3}\n")  # fmt: skip
    with yard, pytest.raises(ConfigurationError) as refused:
        create_inference_app(settings, ["picky"], yard=yard, trust=True)
    message = str(refused.value)
    assert "rule 'drift' watches pikcy@production, which this server does not serve" in message
    assert "(it serves picky); did you mean 'picky'?" in message and "\n" not in message


def test_with_workers_the_rule_is_refused_before_they_start(tmp_path: Path) -> None:
    settings, yard = served(tmp_path, "- {name: drift, model: 'pikcy@production', "
                                      "signal: drift_share, threshold: 0.3}\n")  # fmt: skip
    yard.close()
    with pytest.raises(ConfigurationError, match="watches pikcy@production, which this server"):
        serve(settings, ["models:/picky/1"], port=free_port(), workers=2, trust=True)


def test_a_rule_whose_model_does_not_parse_is_refused(tmp_path: Path) -> None:
    settings, yard = served(tmp_path, "- {name: r, model: 'picky:', signal: error_rate, "
                                      "threshold: 0.3}\n")  # fmt: skip
    with yard, pytest.raises(ConfigurationError, match="rule 0: model: invalid reference 'picky:'"):
        create_inference_app(settings, ["picky"], yard=yard, trust=True)


async def test_an_unresolvable_rule_logs_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings, yard = served(tmp_path, "- {name: gone, model: picky@nowhere, "
                                      "signal: error_rate, threshold: 0.3}\n")  # fmt: skip
    with yard:
        app = create_inference_app(settings, ["picky"], yard=yard, trust=True)
        assert app.alerts is not None
        with caplog.at_level(logging.WARNING, logger="modelyard.alerts"):
            assert await app.alerts.evaluate() == []
    (record,) = [r for r in caplog.records if r.name == "modelyard.alerts"]
    assert record.exc_info is None
    assert "alert gone: cannot evaluate: version picky@nowhere does not exist" in record.message


async def test_mlflow_references_are_served(tmp_path: Path) -> None:
    settings, yard = served(tmp_path, "- {name: errors, model: 'models:/picky@production', "
                                      "signal: error_rate, threshold: 0.5}\n")  # fmt: skip
    with yard:
        yard.log_model(Picky(), name="picky", input_example=np.ones((1, 2)))
        yard.set_alias("picky", "production", "picky:1")
        app = create_inference_app(settings, ["models:/picky/Production"], yard=yard, trust=True)
        assert app.on_startup is not None and app.on_shutdown is not None
        await app.on_startup()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
                tensor = {"name": "input-0", "shape": [1, 2], "datatype": "FP64",
                          "data": [1, 2]}  # fmt: skip
                answer = await client.post("/v2/models/picky/infer", json={"inputs": [tensor]})
        finally:
            await app.on_shutdown()
    assert answer.status_code == 200 and answer.json()["model_version"] == "1"
