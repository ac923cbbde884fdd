"""Alert history: what the rules of a serving process did, kept where the web UI can read it.

The alert loop appends one JSON line per event to `<home>/alerts/<model>.jsonl`: a rule changing
state (`pending`, `firing`, `resolved`, `inactive`) and the outcomes of the actions a firing rule
ran. At start the rules in force are written to `<home>/alerts/<model>.rules.json` (temp file +
rename: a reader sees the old rules or the new ones, never half). A line is written with a single
`write` of at most `MAX_LINE_BYTES` on a file opened for appending, so lines from two servers
never interleave; a reader skips (and counts) any line that is damaged all the same.
"""

from __future__ import annotations

import os
import tempfile
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from modelyard.monitoring._alerts import AlertRule

MAX_LINE_BYTES = 4000
"""The longest line appended (under PIPE_BUF, so one `write` lands whole)."""

MAX_TEXT = 500
"""The longest single string kept in an event (an action's outcome, a reason)."""

FOLDER = "alerts"
"""Under the home: one history and one rules snapshot per model."""


def alert_folder(home: Path) -> Path:
    """Where a home keeps its alert histories."""
    return home / FOLDER


class AlertHistory:
    """Appends alert events for each model under `root` (`<home>/alerts`); call from a worker
    thread (it does file I/O).

    >>> history = AlertHistory(alert_folder(settings.home))
    >>> history.record("fraud", {"rule": "drift", "event": "firing", "value": 0.6})
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def record(self, model: str, event: Mapping[str, Any]) -> None:
        """Append `event` (stamped with the time now) to `model`'s history."""
        line = _line({"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **event})
        self.root.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.root / f"{model}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                             0o644)  # fmt: skip
        try:
            os.write(descriptor, line)  # one write of a short line: appended whole
        finally:
            os.close(descriptor)

    def write_rules(self, rules: Iterable[AlertRule]) -> None:
        """Replace each watched model's rules snapshot with the rules in force now."""
        by_model: dict[str, list[dict[str, Any]]] = {}
        for rule in rules:
            by_model.setdefault(rule_model(rule), []).append(rule_summary(rule))
        self.root.mkdir(parents=True, exist_ok=True)
        for model, summaries in by_model.items():
            _replace(self.root / f"{model}.rules.json", orjson.dumps(summaries))


def rule_model(rule: AlertRule) -> str:
    """The model name a rule watches (`fraud` for `fraud@production`)."""
    return rule.model.partition("@")[0].partition(":")[0]


def rule_summary(rule: AlertRule) -> dict[str, Any]:
    """A rule as the snapshot keeps it; a webhook only by scheme and host (its path and query
    may hold a token)."""
    return {
        "name": rule.name,
        "model": rule.model,
        "signal": rule.signal,
        "op": rule.op,
        "threshold": rule.threshold,
        "window_seconds": rule.window.total_seconds(),
        "for_seconds": rule.for_.total_seconds(),
        "min_rows": rule.min_rows,
        "actions": [_action(action.type, action.url) for action in rule.actions],
    }


def _action(kind: str, url: str | None) -> str:
    if url is None:
        return kind
    parts = urllib.parse.urlsplit(url)
    return f"{kind} {parts.scheme}://{parts.hostname or ''}"


def _line(event: Mapping[str, Any]) -> bytes:
    kept = {key: _short(value) for key, value in event.items()}
    line = orjson.dumps(kept) + b"\n"
    if len(line) > MAX_LINE_BYTES:  # too many outcomes: keep what says what happened
        kept = {k: kept[k] for k in ("time", "rule", "event", "state", "value") if k in kept}
        line = orjson.dumps({**kept, "truncated": True}) + b"\n"
    return line


def _short(value: Any) -> Any:
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, list | tuple):
        return [_short(item) for item in value[:20]]
    return value


def _replace(path: Path, content: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        os.chmod(temporary, 0o644)  # as readable as the history beside it
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@dataclass(frozen=True, slots=True)
class AlertEvents:
    """A model's alert events, newest first, and how many damaged lines were skipped."""

    events: list[dict[str, Any]] = field(default_factory=list)
    damaged: int = 0


def read_alert_history(
    home: Path, model: str, *, since: datetime | None = None, limit: int = 200
) -> AlertEvents:
    """The latest `limit` alert events of `model` (newest first), those after `since` only;
    damaged lines (a torn write, a hand edit) are skipped and counted.

    >>> read_alert_history(settings.home, "fraud", limit=20).events[0]["event"]
    'firing'
    """
    path = alert_folder(home) / f"{model}.jsonl"
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return AlertEvents()
    events: list[dict[str, Any]] = []
    damaged = 0
    for line in reversed(lines):
        event = _event(line)
        if event is None:
            damaged += 1
            continue
        if since is not None and event["at"] < since:
            break  # appended in time order: all older from here on
        events.append(event)
        if len(events) >= limit:
            break
    return AlertEvents(events, damaged)


def _event(line: bytes) -> dict[str, Any] | None:
    try:
        event = orjson.loads(line)
        at = datetime.fromisoformat(event["time"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if not isinstance(event, dict) or at.tzinfo is None:
        return None
    event["at"] = at
    return event


def read_alert_rules(home: Path, model: str) -> list[dict[str, Any]]:
    """The rules a server last started with for `model` (as `rule_summary` wrote them), or []."""
    try:
        rules = orjson.loads((alert_folder(home) / f"{model}.rules.json").read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return []
    return [rule for rule in rules if isinstance(rule, dict)] if isinstance(rules, list) else []
