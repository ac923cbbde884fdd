"""Lifecycle: states, the moves allowed between them, and the gates checked before a move."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update

from modelyard.errors import ConfigurationError, GateFailed, InvalidTransition, SelfApproval
from modelyard.registry._audit import append, utc
from modelyard.registry._records import Gate, State, Transition
from modelyard.registry._tables import approvals, gates, transitions, versions
from modelyard.registry._versions import new_id, now

FORWARD: Mapping[State, State] = {
    State.REGISTERED: State.VALIDATED,
    State.VALIDATED: State.STAGING,
    State.STAGING: State.PRODUCTION,
}


def allowed_moves(current: State) -> list[State]:
    """The states a version in `current` may move to."""
    moves = [FORWARD[current]] if current in FORWARD else []
    return moves + ([State.ARCHIVED] if current != State.ARCHIVED else [])


OPERATORS: Mapping[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}

GATE_KINDS = ("metric", "tag", "signature", "signed", "approval")
"""`signature`: the version declares its inputs and outputs. `signed`: its files carry a
cryptographic signature that verifies with the operator's trusted keys (docs/signing.md)."""

SignedCheck = Callable[[], str]
"""Why the version being moved fails a `signed` gate ('' when it passes); the registry cannot
check a signature itself (it has no blob store), so whoever opened it passes one in."""


def check_gate_config(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a gate's settings, naming what is wrong."""
    if kind == "metric":
        if not isinstance(config.get("metric"), str) or config.get("op") not in OPERATORS:
            raise ConfigurationError(
                f"a metric gate needs 'metric' and 'op' (one of {', '.join(OPERATORS)})"
            )
        if not isinstance(config.get("value"), int | float):
            raise ConfigurationError("a metric gate needs a numeric 'value'")
    elif kind == "tag":
        if not isinstance(config.get("key"), str):
            raise ConfigurationError("a tag gate needs 'key' (and optionally 'value')")
    elif kind == "approval":
        if not isinstance(config.get("count", 1), int) or config.get("count", 1) < 1:
            raise ConfigurationError("an approval gate's 'count' must be a positive integer")
    elif kind not in ("signature", "signed"):
        raise ConfigurationError(f"unknown gate kind {kind!r}; use one of {', '.join(GATE_KINDS)}")
    return dict(config)


def add_gate(
    connection: Connection,
    *,
    model: Row[Any],
    to_state: State,
    kind: str,
    config: Mapping[str, Any],
    actor: str,
) -> Gate:
    """Store a gate for the model's moves into `to_state`."""
    checked = check_gate_config(kind, config)
    gate_id = new_id()
    connection.execute(
        insert(gates).values(
            id=gate_id,
            model_id=model.id,
            to_state=to_state.value,
            kind=kind,
            config=checked,
            created_by=actor,
            created_at=now(),
        )
    )
    append(
        connection,
        actor=actor,
        action="gate.add",
        target=model.name,
        after={"id": gate_id, "to_state": to_state.value, "kind": kind, "config": checked},
    )
    return Gate(id=gate_id, name=model.name, to_state=to_state, kind=kind, config=checked)


def remove_gate(connection: Connection, *, model: Row[Any], gate_id: str, actor: str) -> None:
    """Delete a gate by id."""
    from modelyard.errors import NotFound

    deleted = connection.execute(
        delete(gates).where(gates.c.model_id == model.id, gates.c.id == gate_id)
    ).rowcount
    if not deleted:
        raise NotFound(f"model {model.name!r} has no gate {gate_id!r}")
    append(connection, actor=actor, action="gate.remove", target=model.name, before={"id": gate_id})


def list_gates(connection: Connection, *, model: Row[Any]) -> list[Gate]:
    """The model's gates, oldest first."""
    rows = connection.execute(
        select(gates).where(gates.c.model_id == model.id).order_by(gates.c.created_at, gates.c.id)
    ).all()
    return [
        Gate(id=r.id, name=model.name, to_state=State(r.to_state), kind=r.kind, config=r.config)
        for r in rows
    ]


def failed_gates(
    connection: Connection,
    *,
    model: Row[Any],
    version: Row[Any],
    to_state: State,
    signed: SignedCheck | None = None,
) -> list[str]:
    """Every gate for `to_state` that the version does not pass, as sentences."""
    failures = []
    for gate in list_gates(connection, model=model):
        if gate.to_state == to_state:
            problem = _evaluate(connection, gate, version, signed)
            if problem:
                failures.append(problem)
    return failures


def _evaluate(
    connection: Connection, gate: Gate, version: Row[Any], signed: SignedCheck | None
) -> str:
    config = gate.config
    if gate.kind == "metric":
        actual = version.metrics.get(config["metric"])
        if actual is None:
            return f"metric {config['metric']} is missing (needs {config['op']} {config['value']})"
        if not isinstance(config["value"], int | float):  # a non-finite value stored as null
            return f"the gate's threshold is {config['value']!r}; remove the gate and add it again"
        if not OPERATORS[config["op"]](actual, config["value"]):
            return f"metric {config['metric']} = {actual} (needs {config['op']} {config['value']})"
    elif gate.kind == "tag":
        value = version.tags.get(config["key"])
        if value is None or ("value" in config and value != config["value"]):
            wanted = f" = {config['value']!r}" if "value" in config else ""
            return f"tag {config['key']}{wanted} is required"
    elif gate.kind == "signature":
        if not version.signature:
            return "a signature is required"
    elif gate.kind == "signed":  # never the tag alone: the caller verifies the signature itself
        if signed is None:
            return "a signature by a trusted key is required, and no verifier is configured here"
        return signed()
    else:
        count = connection.execute(
            select(func.count()).where(approvals.c.version_id == version.id)
        ).scalar_one()
        if count < config.get("count", 1):
            needed = config.get("count", 1)
            return f"needs {needed} approval(s) by someone other than the creator, has {count}"
    return ""


def approve(connection: Connection, *, version: Row[Any], actor: str, comment: str) -> None:
    """Record `actor`'s approval of a version (not its creator's)."""
    ref = f"{version.name}:{version.number}"
    if actor == version.created_by:
        raise SelfApproval(actor, ref=ref)
    already = connection.execute(
        select(approvals.c.approver).where(
            approvals.c.version_id == version.id, approvals.c.approver == actor
        )
    ).first()
    if already is None:
        connection.execute(
            insert(approvals).values(
                version_id=version.id, approver=actor, comment=comment, at=now()
            )
        )
        append(
            connection,
            actor=actor,
            action="version.approve",
            target=ref,
            after={"comment": comment},
        )


def transition(
    connection: Connection,
    *,
    model: Row[Any],
    version: Row[Any],
    to_state: State,
    actor: str,
    comment: str,
    signed: SignedCheck | None = None,
) -> None:
    """Move a version to `to_state` if the lifecycle and every gate allow it."""
    current = State(version.state)
    ref = f"{version.name}:{version.number}"
    if to_state not in allowed_moves(current):
        allowed = [state.value for state in allowed_moves(current)]
        raise InvalidTransition(ref, current=current, wanted=to_state, allowed=allowed)
    failures = failed_gates(
        connection, model=model, version=version, to_state=to_state, signed=signed
    )
    if failures:
        raise GateFailed(ref, wanted=to_state, failures=failures)
    moment = now()
    connection.execute(
        update(versions)
        .where(versions.c.id == version.id)
        .values(state=to_state.value, updated_at=moment)
    )
    connection.execute(
        insert(transitions).values(
            version_id=version.id,
            from_state=current.value,
            to_state=to_state.value,
            actor=actor,
            comment=comment,
            at=moment,
        )
    )
    append(
        connection,
        actor=actor,
        action="version.transition",
        target=ref,
        before={"state": current.value},
        after={"state": to_state.value, "comment": comment},
    )


def transitions_of(connection: Connection, *, version: Row[Any]) -> list[Transition]:
    """The version's state changes, oldest first."""
    rows = connection.execute(
        select(transitions).where(transitions.c.version_id == version.id).order_by(transitions.c.id)
    ).all()
    ref = f"{version.name}:{version.number}"
    return [
        Transition(
            ref=ref,
            from_state=State(r.from_state),
            to_state=State(r.to_state),
            actor=r.actor,
            comment=r.comment,
            at=utc(r.at),
        )
        for r in rows
    ]
