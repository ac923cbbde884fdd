"""Running the registry server (`modelyard server`) until SIGTERM, saying where and when."""

from __future__ import annotations

from modelyard.api._app import create_app
from modelyard.api._listening import Listener, listen
from modelyard.api._running import run, tls_options
from modelyard.api._server_log import access_logged, log_to_stderr, say
from modelyard.settings import Settings


def serve_registry(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    listener: Listener | None = None,
) -> None:
    """Serve the registry REST API on `host:port` (or `listener`, bound already) until
    SIGTERM; stderr gets its URL, `ready in 0.4 s` and, at `info`, one line per request.

    >>> serve_registry(Settings(), port=8080)   # blocks; SIGTERM drains
    """
    listener = listener or listen(host, port)
    tls = tls_options(settings)
    url = listener.url(tls=bool(tls))
    level = settings.server_log_level
    say(level, f"registry at {url} (API reference at {url}/docs)")

    def ready() -> None:
        say(level, f"ready in {listener.elapsed():.1f} s (Ctrl-C to stop)")

    restore = log_to_stderr(level)
    try:
        with listener.socket:
            registry = create_app(settings)
            app = access_logged(registry, level)
            run(app, listener=listener, read_timeout=settings.server_read_timeout_seconds,
                tls=tls, log_level=level, on_ready=ready,
                on_exit=registry.state.events.close)  # fmt: skip
    finally:
        restore()
