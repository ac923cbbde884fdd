"""Run an ASGI app under uvicorn until SIGTERM or Ctrl-C, then drain and return (exit 0)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

OPTIONS: dict[str, Any] = {
    "log_level": "warning",
    "access_log": False,
    "loop": "uvloop",
    "http": "httptools",
    "lifespan": "on",
    "timeout_graceful_shutdown": 30,
}


def run_workers(factory: str, *, host: str, port: int, workers: int) -> None:
    """Serve the app `factory` (an import string) from `workers` processes sharing one socket;
    SIGTERM drains every worker."""
    import uvicorn

    uvicorn.run(factory, factory=True, host=host, port=port, workers=workers, **OPTIONS)


def run(app: Any, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve `app` on `host:port` with uvloop and httptools; blocks until stopped."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn re-raises the signal after draining, so the exit status would say
            # "killed"; for a server a SIGTERM is the normal way to stop.
            stops = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    Server(uvicorn.Config(app, host=host, port=port, **OPTIONS)).run()
