"""The lease that makes one of several serving processes the alert evaluator.

Every replica (and every worker of one) that runs the same rules tries to take the same lease in
the registry at each evaluation: the holder renews it and evaluates, the others skip. A holder
that stops cleanly releases it, so another takes over at its next try; one that dies loses it
when it expires (`seconds`, a few evaluation intervals).

While the registry cannot be reached (PostgreSQL restarting), the holder goes on evaluating only
until its last successful renewal is `seconds` old by its own clock, which runs out before the
database's (the renewal was sent before the database stamped it); then it stops and keeps
trying. Changes are logged once: acquired, lost, renewal failing, renewed again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import socket
import string
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

import orjson

from modelyard.errors import ModelyardError
from modelyard.monitoring._alerts import AlertRule

if TYPE_CHECKING:
    from modelyard.registry import Lease

log = logging.getLogger("modelyard.alerts")

_HOST_CHARACTERS = frozenset(string.ascii_letters + string.digits + ".-")

LEASE_INTERVALS = 3
"""A lease lasts this many evaluation intervals unless the settings say otherwise."""


class Leases(Protocol):
    """Holding a named lease in the registry (a `Yard`, a `Registry` or an `HttpRegistry`)."""

    def acquire_lease(self, name: str, *, holder: str, seconds: float) -> Lease:
        """Take or renew `name` for `holder`; the lease as it stands after."""
        ...

    def release_lease(self, name: str, *, holder: str) -> None:
        """Give `name` up if `holder` holds it."""
        ...


def holder_id() -> str:
    """This process, as a lease holder: `hostname:pid:random` (the random part tells apart a
    restarted process that got the same pid)."""
    host = "".join(c for c in socket.gethostname() if c in _HOST_CHARACTERS)[:200] or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"


def rules_lease_name(rules: Iterable[AlertRule]) -> str:
    """The lease of a set of rules: replicas running the same rules share one evaluator; a
    replica with other rules evaluates its own (`alerts:<16 hex digits>`)."""
    dumped = sorted(orjson.dumps(rule.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
                    for rule in rules)  # fmt: skip
    digest = hashlib.sha256(b"\n".join(dumped)).hexdigest()
    return f"alerts:{digest[:16]}"


class EvaluatorLease:
    """One process's hold on the alert lease `name`.

    >>> lease = EvaluatorLease(yard, name=rules_lease_name(rules), seconds=90)
    >>> if await lease.renew(): ...   # evaluate: this process holds it
    >>> await lease.release()         # at shutdown
    """

    def __init__(
        self,
        leases: Leases,
        *,
        name: str,
        seconds: float,
        holder: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leases = leases
        self.name = name
        self.seconds = seconds
        self.holder = holder or holder_id()
        self.held = False
        """Whether the last `renew` found this process holding the lease."""
        self._clock = clock
        self._until = float("-inf")  # when our hold runs out, by our own clock
        self._failing = False
        self._other: str | None = None  # the last holder seen that is not us
        # A renewal cancelled by `stop` still runs in its thread: the lock and `_closed` keep
        # it from taking the lease after `release` gave it up.
        self._lock = threading.Lock()
        self._closed = False
        self._sent = False  # a renewal went out since the last release: the lease may be ours

    async def renew(self) -> bool:
        """Take or renew the lease; whether this process holds it now (on a registry error:
        whether its last renewal still runs by its own clock)."""
        self._closed, self._sent = False, True
        sent = self._clock()
        try:
            lease = await asyncio.to_thread(self._acquire)
        except Exception as error:  # the registry restarting must not stop the loop
            self._failed(error)
            return self._change(self._clock() < self._until, None)
        if lease is None:  # released meanwhile
            return self._change(False, None)
        if self._failing:
            self._failing = False
            log.info("alerts: the lease %s can be renewed again", self.name)
        mine = lease.holder == self.holder
        self._until = sent + self.seconds if mine else float("-inf")
        return self._change(mine, None if mine else lease.holder)

    def valid(self) -> bool:
        """Whether this process's hold still runs by its own clock."""
        return self._clock() < self._until

    async def release(self) -> None:
        """Give the lease up, so another replica takes over at its next try."""
        self._closed = True
        if not self._sent:
            return
        held, self._sent, self.held = self.held, False, False
        self._until = float("-inf")
        try:
            await asyncio.to_thread(self._release)
        except Exception as error:  # it expires on its own
            log.warning("alerts: cannot release the lease %s (it expires in %.0f s): %s",
                        self.name, self.seconds, error)  # fmt: skip
        else:
            if held:
                log.info("alerts: this process (%s) released the lease %s", self.holder, self.name)

    def _acquire(self) -> Lease | None:
        with self._lock:
            if self._closed:
                return None
            return self.leases.acquire_lease(self.name, holder=self.holder, seconds=self.seconds)

    def _release(self) -> None:
        with self._lock:
            self.leases.release_lease(self.name, holder=self.holder)

    def _failed(self, error: Exception) -> None:
        if self._failing:
            return  # logged when it started failing
        self._failing = True
        left = max(self._until - self._clock(), 0.0)
        why = str(error) if isinstance(error, ModelyardError) else repr(error)
        if self.held and left > 0:
            log.warning("alerts: cannot renew the lease %s: %s; evaluating for %.0f s more",
                        self.name, why, left)  # fmt: skip
        else:
            log.warning("alerts: cannot take the lease %s: %s; trying again", self.name, why)

    def _change(self, held: bool, other: str | None) -> bool:
        if held and not self.held:
            log.info("alerts: this process (%s) now evaluates the rules (lease %s)",
                     self.holder, self.name)  # fmt: skip
        elif self.held and not held:
            log.warning("alerts: this process (%s) stopped evaluating the rules: %s", self.holder,
                        f"{other} holds the lease" if other else "its lease ran out")  # fmt: skip
        elif not held and other is not None and other != self._other:
            log.info("alerts: %s evaluates the rules (lease %s)", other, self.name)
        self._other = other if other is not None else self._other
        self.held = held
        return held
