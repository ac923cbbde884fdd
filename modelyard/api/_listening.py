"""The servers' socket, bound before anything slow happens.

Both servers bind and listen first, then load: a port already in use fails within a second
with one line naming it (uvicorn binds only after the app's startup, so the error came after
every model had loaded), and a client that connects while models load waits in the socket's
queue and is answered once they are ready. This module imports nothing heavy, so the CLI can
bind before it imports the servers.
"""

from __future__ import annotations

import errno
import socket
import time
from dataclasses import dataclass, field

from modelyard.errors import ConfigurationError

BACKLOG = 2048
"""Connections the kernel queues before the server accepts them (uvicorn's default)."""


@dataclass(frozen=True, slots=True)
class Listener:
    """A bound, listening socket, and when the server's start began (for its ready line)."""

    socket: socket.socket
    started: float = field(default_factory=time.monotonic)

    def url(self, *, tls: bool = False) -> str:
        """Where clients reach the server: `http://127.0.0.1:8080` (the port the socket got,
        also when 0 asked for any free one)."""
        host, port = self.socket.getsockname()[:2]
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if tls else 'http'}://{host}:{port}"

    def elapsed(self) -> float:
        """Seconds since the start began."""
        return time.monotonic() - self.started


def listen(host: str, port: int) -> Listener:
    """Bind `host:port` and listen; `ConfigurationError` naming the address when it is in use
    or cannot be bound.

    >>> listener = listen("127.0.0.1", 0)
    >>> listener.url()
    'http://127.0.0.1:41234'
    """
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT, not a listener
    try:
        sock.bind((address, port))
        sock.listen(BACKLOG)
    except OSError as error:
        sock.close()
        raise _refusal(error, host, port, option="--port") from None
    sock.set_inheritable(True)  # `--workers`: the worker processes share it
    return Listener(sock)


def check_free(host: str, port: int, *, option: str = "--grpc-port") -> None:
    """`ConfigurationError` naming `host:port` and `option` when it cannot be bound now: the
    quick answer `listen` gives, for a server that binds its port itself (gRPC binds when the
    server starts, before any model loads)."""
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as error:
            raise _refusal(error, host, port, option=option) from None


def address_of(host: str, port: int) -> str:
    """`127.0.0.1:8081`, or `[::1]:8081`: an address as gRPC takes it and the logs show it."""
    address = host.strip("[]")
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _refusal(error: OSError, host: str, port: int, *, option: str) -> ConfigurationError:
    shown = address_of(host, port)
    if error.errno == errno.EADDRINUSE:
        return ConfigurationError(
            f"{shown} is already in use: stop what listens there, or pick another {option}"
        )
    return ConfigurationError(f"cannot listen on {shown}: {error.strerror or error}")
