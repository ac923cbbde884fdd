"""The servers' socket: bound and listening before anything loads, with a one-line error
naming the address when it cannot be."""

from __future__ import annotations

import socket

import pytest

from modelyard.api import listen
from modelyard.errors import ConfigurationError


def test_listens_on_a_free_port_and_names_its_url() -> None:
    listener = listen("127.0.0.1", 0)
    with listener.socket:
        port = listener.socket.getsockname()[1]
        assert listener.url() == f"http://127.0.0.1:{port}"
        assert listener.url(tls=True) == f"https://127.0.0.1:{port}"
        assert 0 <= listener.elapsed() < 60
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # queued by the kernel: the server accepts it once ready


def test_a_port_in_use_names_the_address() -> None:
    with listen("127.0.0.1", 0).socket as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError, match=rf"^127\.0\.0\.1:{port} is already in use"):
            listen("127.0.0.1", port)


def test_an_address_not_on_this_machine() -> None:
    with pytest.raises(ConfigurationError, match=r"^cannot listen on 192\.0\.2\.1:0: "):
        listen("192.0.2.1", 0)  # TEST-NET-1: never a local address


def test_ipv6_urls_bracket_the_address() -> None:
    listener = listen("[::1]", 0)
    with listener.socket:
        assert listener.url().startswith("http://[::1]:")
        with (
            listen("::1", 0).socket as other,
            pytest.raises(ConfigurationError, match=r"^\[::1\]:"),
        ):
            listen("::1", other.getsockname()[1])
