"""Served traffic for the shared UI registry: six hours of `cancer:2` answering requests, whose
first ten inputs read 60% high for the last two, labels for every third request, and the alert
that fired on the drift and rolled `cancer@production` back to version 1 (as `modelyard serve
--alerts` records it), before a person moved it to version 2 again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

RULE = {
    "name": "cancer-input-drift", "model": "cancer@production", "signal": "drift_share",
    "op": ">=", "threshold": 0.3, "window": "1h", "min_rows": 50,
    "actions": [{"type": "log"}, {"type": "rollback"}],
}  # fmt: skip
HOURS = 6
DRIFTED_HOURS = 2
EVERY = timedelta(seconds=30)


def add_traffic(home: Path) -> dict[str, Any]:
    """Write the prediction log, feedback, alert history and the rollback under `home`."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier

    from modelyard import Settings, Yard
    from modelyard.monitoring import AlertHistory, AlertRule, alert_folder, write_feedback
    from modelyard.serving import JsonLinesSink

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = HistGradientBoostingClassifier(max_depth=4, max_iter=20, random_state=0).fit(X, y)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=HOURS)
    drift_from = now - timedelta(hours=DRIFTED_HOURS)
    rng = np.random.default_rng(3)
    records, labels = [], []
    moment, index = start, 0
    while moment < now - timedelta(minutes=1):
        rows = X.iloc[rng.integers(0, len(X), 2)].copy()
        if moment >= drift_from:
            rows[rows.columns[:10]] *= 1.6  # the first ten measurements read 60% high
        request_id = f"req-{index}"
        records.append({
            "id": request_id, "model": "cancer", "version": "2",
            "time": moment.isoformat(timespec="milliseconds"), "latency_ms": 1.5,
            "inputs": {str(c): rows[c].tolist() for c in rows.columns},
            "outputs": {"output-0": model.predict(rows).tolist()},
        })  # fmt: skip
        if index % 3 == 0:
            labels.append({"id": request_id, "label": y.iloc[rows.index].tolist()})
        moment += EVERY
        index += 1
    JsonLinesSink(home / "predictions").write(records)
    write_feedback(home / "feedback", "cancer", labels)
    history = AlertHistory(alert_folder(home))
    rule = AlertRule.model_validate(RULE)
    history.write_rules([rule])
    common = {"rule": rule.name, "signal": "drift_share", "version": "2", "op": ">=",
              "threshold": 0.3}  # fmt: skip
    history.record("cancer", {**common, "event": "firing", "value": 0.3333})
    outcomes = ["logged", "rolled back cancer@production"]
    history.record("cancer", {**common, "event": "actions", "outcomes": outcomes,
                              "value": 0.3333})  # fmt: skip
    yard = Yard(Settings(home=home, user="modelyard-alerts"))
    try:
        reason = "alert cancer-input-drift: drift_share = 0.3333 >= 0.3"
        yard.rollback("cancer", "production", reason=reason)
    finally:
        yard.close()
    # Someone looked, found the drift upstream, and served version 2 again: the other pages'
    # tests expect production on 2.
    yard = Yard(Settings(home=home, user="ana"))
    try:
        yard.set_alias("cancer", "production", "cancer:2", reason="inputs fixed upstream")
    finally:
        yard.close()
    return {"requests": len(records), "labelled": len(labels)}
