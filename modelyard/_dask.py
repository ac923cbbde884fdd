"""A client of a running Dask scheduler, for batch scoring and tuning: an address that cannot
work fails at once with `ConfigurationError`, instead of the client retrying until its timeout."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from modelyard._imports import require
from modelyard.errors import ConfigurationError

#: Seconds to wait for a scheduler to answer.
CONNECT_TIMEOUT = 15


@contextmanager
def scheduler_client(address: str, *, as_default: bool = True) -> Iterator[Any]:
    """A `distributed.Client` of the scheduler at `address` (`tcp://host:8786`), closed on exit;
    `as_default=False` leaves Dask's default client (what `.compute()` uses) as it was."""
    distributed = require("distributed", extra="dask")
    check_reachable(address)
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=as_default)
    except (OSError, TimeoutError, ValueError) as error:
        raise ConfigurationError(
            f"cannot reach the Dask scheduler at {address!r}: {error}"
        ) from None
    with client:
        yield client


def check_reachable(address: str) -> None:
    """Fail at once on an address that does not parse, or a TCP one nothing listens at."""
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme != "tcp":
            return  # tls://, inproc://, …: the client says what is wrong
        host, port = parse_host_port(location)
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except (OSError, ValueError, TypeError) as error:
        raise ConfigurationError(
            f"cannot reach the Dask scheduler at {address!r}: {error}"
        ) from None
