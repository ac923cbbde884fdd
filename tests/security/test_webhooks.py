"""The webhook allow-list compares parsed URLs, not string prefixes: every bypass that a prefix
let through (userinfo, dot segments, encoded dots, another port, scheme or host that merely
starts the same) is refused, with real HTTP receivers showing that nothing arrives where it
should not, and redirects are never followed."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from modelyard.errors import ConfigurationError
from modelyard.monitoring._actions import alert_body, run_actions
from modelyard.monitoring._alerts import load_rules
from modelyard.monitoring._webhooks import webhook_url


@dataclass
class Receiver:
    """A local HTTP server that records the path of every POST it gets."""

    port: int
    paths: list[str] = field(default_factory=list)
    redirect: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def receiver(redirect: str | None = None) -> Iterator[Receiver]:
    record = Receiver(0, redirect=redirect)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            record.paths.append(self.path)
            if record.redirect is not None:
                self.send_response(307)
                self.send_header("location", record.redirect)
            else:
                self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    record.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()


BYPASSES = [
    ("http://hooks.internal@127.0.0.1:{port}/x", "userinfo"),
    ("http://hooks.internal:secret@127.0.0.1:{port}/hooks", "userinfo"),
    ("http://hooks.internal/hooks/../../admin", "no allow-list entry"),
    ("http://hooks.internal/hooks/%2e%2e/admin", "no allow-list entry"),
    ("http://hooks.internal/hooks/.%2E/%2e./admin", "no allow-list entry"),
    ("http://hooks.internal/hooks/..", "no allow-list entry"),
    ("http://hooks.internal/hooks%2f..%2fadmin", "encoded slash"),
    ("http://hooks.internal/hooks\\..\\admin", "encoded slash or a backslash"),
    ("http://hooks.internal/hookshot", "no allow-list entry"),
    ("http://hooks.internal:8080/hooks", "no allow-list entry"),
    ("https://hooks.internal/hooks", "no allow-list entry"),
    ("ftp://hooks.internal/hooks", "http:// or https://"),
    ("http://hooks.internal.evil/hooks", "no allow-list entry"),
    ("http://hooks.internalevil/hooks", "no allow-list entry"),
    ("http://evil-hooks.internal/hooks", "no allow-list entry"),
    ("http://127.0.0.1:{port}/hooks", "no allow-list entry"),
    ("http://hooks.internal:0x50/hooks", "port must be a number"),
    ("http://hooks.internal /hooks", "spaces or control characters"),
    ("http:///hooks", "needs a host"),
]


@pytest.mark.parametrize(("url", "reason"), BYPASSES)
def test_bypasses_of_a_prefix_are_refused(url: str, reason: str) -> None:
    with receiver() as sink:
        with pytest.raises(ValueError, match=reason):
            webhook_url(url.format(port=sink.port), ["http://hooks.internal/hooks"])
    assert sink.paths == []


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("http://hooks.internal/hooks", "http://hooks.internal/hooks"),
        ("HTTP://HOOKS.Internal:80/hooks/fraud?x=1", "http://hooks.internal/hooks/fraud?x=1"),
        ("http://hooks.internal./hooks/./a/../b", "http://hooks.internal/hooks/b"),
        ("http://hooks.internal/hooks/%2E/b", "http://hooks.internal/hooks/b"),
    ],
)
def test_allowed_urls_are_normalised(url: str, normalised: str) -> None:
    assert webhook_url(url, ["http://hooks.internal/hooks"]) == normalised


def test_hosts_compare_by_idna_and_ports_by_default() -> None:
    allowed = ["https://bücher.example/", "http://[::1]:9000/h/"]
    assert webhook_url("https://xn--bcher-kva.example:443/x", allowed) == (
        "https://xn--bcher-kva.example/x"
    )
    assert webhook_url("http://[0:0::1]:9000/h/a", allowed) == "http://[::1]:9000/h/a"
    with pytest.raises(ValueError, match="no allow-list entry"):
        webhook_url("http://[::1]:9000/hx", allowed)
    with pytest.raises(ValueError, match="allow-list entry 'hooks.internal'"):
        webhook_url("http://hooks.internal/", ["hooks.internal"])


def rules_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "- {name: r, model: fraud@production, signal: accuracy, op: '<', threshold: 0.5,\n"
        f"   actions: [{{type: webhook, url: '{url}'}}]}}\n"
    )
    return path


def test_an_allowed_hook_receives_the_normalised_url(tmp_path: Path) -> None:
    with receiver() as sink:
        allowed = [f"{sink.url}/hooks"]
        (rule,) = load_rules(rules_file(tmp_path, f"{sink.url}/hooks/./a/%2e%2e/fraud"),
                             allowed_webhooks=allowed)  # fmt: skip
        outcomes = run_actions(rule, alert_body(rule, 0.1, "2"), rollback=print)
    assert outcomes == ["webhook 204"]
    assert sink.paths == ["/hooks/fraud"]


def test_redirects_are_not_followed(tmp_path: Path) -> None:
    with receiver() as target, receiver(redirect=f"{target.url}/admin") as hook:
        (rule,) = load_rules(rules_file(tmp_path, f"{hook.url}/hooks"),
                             allowed_webhooks=[f"{hook.url}/hooks"])  # fmt: skip
        outcomes = run_actions(rule, alert_body(rule, 0.1, "2"), rollback=print)
    assert outcomes == ["webhook 307"]
    assert hook.paths == ["/hooks"]
    assert target.paths == []


def test_serve_refuses_a_rules_file_with_a_bypass(tmp_path: Path) -> None:
    with receiver() as sink:
        url = f"http://hooks.internal@127.0.0.1:{sink.port}/x"
        done = subprocess.run(
            [sys.executable, "-m", "modelyard", "serve", "fraud@production", "--port", "1",
             "--alerts", str(rules_file(tmp_path, url))],
            env={"MODELYARD_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin",
                 "MODELYARD_ALERT_WEBHOOKS": '["http://hooks.internal"]'},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode != 0
    assert "is not allowed" in done.stderr + done.stdout
    assert "userinfo" in done.stderr + done.stdout
    assert sink.paths == []


def test_a_prefix_entry_no_longer_admits_longer_hosts(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no allow-list entry"):
        load_rules(rules_file(tmp_path, "http://hooks.internal.evil/x"),
                   allowed_webhooks=["http://hooks.internal"])  # fmt: skip
