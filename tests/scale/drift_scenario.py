"""The topology's drift scenario: drifted traffic spread over all three replicas fires ONE alert
and ONE rollback, which every replica follows.

It needs the shared prediction log (every replica's traffic in PostgreSQL, so the evaluator sees
the whole window) and the one evaluator across replicas (a lease in PostgreSQL); until both are
in, each replica would judge (and roll back on) its own share of the traffic. So it is not a
test by itself: test_topology.py calls it from the last test once both are in.
"""

from __future__ import annotations

import re
import time

import httpx
import numpy as np

from tests.scale.conftest import REFERENCE
from tests.scale.load import Load, infer_body, wait_for
from tests.scale.topology import ALIAS, MODEL, Topology

FIRINGS = re.compile(r'^modelyard_alert_firings_total\{rule="drift"\} (\S+)$', re.MULTILINE)


def firings(scale: Topology) -> float:
    """Times the drift rule fired, added up over every replica (0 where it never did)."""
    total = 0.0
    for replica in scale.replicas:
        text = httpx.get(replica.ready.replace("/v2/health/ready", "/metrics"), timeout=5).text
        total += sum(float(value) for value in FIRINGS.findall(text))
    return total


def drift_fires_one_alert_and_one_rollback(scale: Topology) -> None:
    """Production is on version 2 (promoted from 1) when called; the steady load of reference
    rows goes on all along."""
    from modelyard import Settings, Yard

    rng = np.random.default_rng(9)
    # The rule's window is 10 s, where the steady load puts about 5,000 reference rows: a burst
    # of 12,000 drifted rows outweighs them, and it is over before the rollback, so the
    # version rolled back to never sees it.
    drifted = (rng.normal(size=(12_000, REFERENCE.shape[1])) * 3 + 2).astype(np.float32)
    bodies = [infer_body(rows) for rows in drifted.reshape(12, 1000, -1)]
    addresses = {scale.replica_address(i) for i in range(len(scale.replicas))}
    with Yard(Settings(home=scale.root / "client"), url=scale.url) as yard:
        assert yard.get_version(f"{MODEL}@{ALIAS}").number == 2
        with Load(f"{scale.url}/v2/models/{MODEL}/infer", REFERENCE) as load:
            began = time.monotonic()
            with httpx.Client(timeout=30) as client:
                for body in bodies:  # nginx's round robin: each replica gets its share
                    sent = client.post(f"{scale.url}/v2/models/{MODEL}/infer", content=body)
                    assert sent.status_code == 200 and sent.json()["model_version"] == "2"
            wait_for(
                lambda: {a.upstream for a in load.since(began) if a.version == "1"} >= addresses,
                timeout=45, what="every replica answering version 1 after the rollback",
            )  # fmt: skip
            rolled = time.monotonic()
            time.sleep(3)  # several evaluations more: none may fire (or roll back) again
        history = yard.alias_history(MODEL, ALIAS)
        rollbacks = [e for e in yard.audit_log() if e.action == "alias.rollback"]
    print(f"\ndrift: every replica on version 1 {rolled - began:.1f} s after the drifted "
          f"traffic; {len(load.answers)} requests meanwhile, 0 failed")  # fmt: skip
    assert not load.failures(), load.failures()[:3]
    moves_back = [e for e in history if e.version == 1 and e.previous == 2]
    assert len(moves_back) == 1, history
    assert moves_back[0].reason.startswith("alert drift")
    assert len(rollbacks) == 1, rollbacks
    counted = firings(scale)
    assert counted == 1, f"the drift rule fired {counted} times over the replicas"
    served = {a.upstream for a in load.answers if a.sent > rolled and a.version == "2"}
    assert not served, f"answered by version 2 after the rollback: {served}"
