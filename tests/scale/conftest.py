"""The scale-out topology, started once for the module that uses it (tests/scale/topology.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from tests.conftest import service_env
from tests.scale.topology import ALIAS, MODEL, Topology, topology

RNG = np.random.default_rng(21)
REFERENCE = RNG.normal(size=(2000, 4)).astype(np.float32)
RULES = f"""\
- name: drift
  model: {MODEL}@{ALIAS}
  signal: drift_share
  op: ">="
  threshold: 0.75
  window: 10s
  for: 0s
  actions: [{{type: rollback}}, {{type: log}}]
"""


def register(settings: Mapping[str, str], home: Path) -> None:
    """Versions 1 and 2 of the model, in the topology's registry and store, production on
    version 1 (version 2 is promoted by a test)."""
    from modelyard import Settings, Yard

    options = {key.removeprefix("MODELYARD_").lower(): value for key, value in settings.items()}
    with Yard(Settings(home=home, **options)) as yard:  # type: ignore[arg-type]
        for seed in (1, 2):
            labels = (REFERENCE[:, seed] > 0).astype(int)
            yard.log_model(LogisticRegression().fit(REFERENCE, labels), name=MODEL,
                           input_example=REFERENCE[:2], reference_data=REFERENCE)  # fmt: skip
        yard.set_alias(MODEL, ALIAS, f"{MODEL}:1")


@pytest.fixture(scope="module")
def scale() -> Iterator[Topology]:
    """Two registry servers and three replicas behind nginx, on PostgreSQL and S3, scraped by
    Prometheus; the model registered (v1 in production, v2 ready to promote)."""
    if os.geteuid() != 0:
        pytest.skip("the topology runs PostgreSQL as the postgres user and nginx as nobody: root")
    env = {"MODELYARD_SERVE_POLL_SECONDS": "0.5", "MODELYARD_SERVE_ALERT_SECONDS": "0.5"}
    with topology(
        nginx=service_env("MODELYARD_TEST_NGINX"),
        prometheus=service_env("MODELYARD_TEST_PROMETHEUS"),
        rules=RULES,
        env=env,
        register=register,
    ) as running:
        yield running
