"""What a firing alert does: a webhook (JSON POST, retried with backoff), a log line, or moving
the served alias back to its previous version (audited, with the reason)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelyard.monitoring._alerts import Action, AlertRule
from modelyard.monitoring._webhooks import parse_webhook

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("modelyard.alerts")

RETRIES = 4
"""Webhook attempts before giving up (waits of 0.5, 1 and 2 s between them)."""


def alert_body(rule: AlertRule, value: float, version: str) -> dict[str, Any]:
    """The JSON an alert's webhook receives."""
    return {
        "alert": rule.name,
        "state": "firing",
        "model": rule.model,
        "version": version,
        "signal": rule.signal,
        "value": value,
        "op": rule.op,
        "threshold": rule.threshold,
        "window_seconds": rule.window.total_seconds(),
    }


def run_actions(
    rule: AlertRule,
    body: dict[str, Any],
    *,
    rollback: Callable[[str, str, str], object],
    client: httpx.Client | None = None,
) -> list[str]:
    """Run a firing rule's actions in order (in a worker thread); what happened, per action."""
    outcomes = []
    for action in rule.actions:
        try:
            outcomes.append(_run(action, rule, body, rollback, client))
        except Exception as error:  # one failing action must not stop the others
            log.exception("alert %s: action %s failed", rule.name, action.type)
            outcomes.append(f"{action.type} failed: {error}")
    return outcomes


def _run(
    action: Action,
    rule: AlertRule,
    body: dict[str, Any],
    rollback: Callable[[str, str, str], object],
    client: httpx.Client | None,
) -> str:
    if action.type == "log":
        log.warning("alert %s firing: %s %s %s %s", rule.name, rule.signal, body["value"],
                    rule.op, rule.threshold)  # fmt: skip
        return "logged"
    if action.type == "webhook":
        return _post(action.url or "", body, client)
    name, _, alias = rule.model.partition("@")
    reason = f"alert {rule.name}: {rule.signal} = {body['value']:.4g} {rule.op} {rule.threshold}"
    rollback(name, alias or "production", reason)
    return f"rolled back {name}@{alias or 'production'}"


def _post(url: str, body: dict[str, Any], client: httpx.Client | None) -> str:
    """POST to `url` as checked by the allow-list (`load_rules` normalised it), never following
    a redirect: a 3xx is an answer, or an allowed hook could send the alert anywhere."""
    import httpx  # only when a webhook fires: importing monitoring stays light

    target = parse_webhook(url).url  # the normalised form, whatever built the rule
    owned = client is None
    http = client or httpx.Client(timeout=5, follow_redirects=False)
    try:
        for attempt in range(RETRIES):
            try:
                response = http.post(target, json=body, follow_redirects=False)
                if response.status_code < 500:
                    return f"webhook {response.status_code}"
            except httpx.TransportError:
                pass
            if attempt + 1 < RETRIES:
                time.sleep(0.5 * 2**attempt)
        return f"webhook failed after {RETRIES} attempts"
    finally:
        if owned:
            http.close()
