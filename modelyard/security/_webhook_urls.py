"""Where webhooks (alerts, registry events) may post: URLs parsed and compared part by part,
never as strings.

An allow-list entry such as `https://hooks.example.com/alerts` admits a webhook only when its
scheme, host (case-insensitive, IDNA-encoded, one trailing dot ignored) and port (the scheme's
default filled in) are equal, and its path, with dot segments resolved (`.`, `..` and their
percent-encoded forms such as `%2e%2e`), starts with the entry's path as whole segments
(`/alerts` admits `/alerts` and `/alerts/fraud`, not `/alerts-evil` nor `/alerts/../admin`).
A URL with userinfo (`http://hooks.example.com@10.0.0.1/`), an encoded slash or backslash, or a
host that is not a plain name or address is refused outright. The URL posted to is the one
rebuilt from the checked parts, so what was compared is what is sent.

    >>> webhook_url("http://Hooks.Example.com:80/alerts/./fraud", ["http://hooks.example.com/alerts"])
    'http://hooks.example.com/alerts/fraud'
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_NAME = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*$")
_PARENT = {"..", ".%2e", "%2e.", "%2e%2e"}
_CURRENT = {".", "%2e"}
_AMBIGUOUS = ("%2f", "%5c", "\\")  # a server may read these as separators: never compared


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A webhook URL taken apart and normalised: what the allow-list compares."""

    scheme: str
    host: str
    port: int
    segments: tuple[str, ...]
    query: str

    @property
    def url(self) -> str:
        """The normalised URL, which is the one posted to."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{host}{port}/{'/'.join(self.segments)}{query}"

    def within(self, allowed: WebhookTarget) -> bool:
        """Whether this URL is `allowed` or lies under its path (whole segments)."""
        prefix = allowed.segments[:-1] if allowed.segments[-1:] == ("",) else allowed.segments
        return (self.scheme, self.host, self.port) == (
            allowed.scheme,
            allowed.host,
            allowed.port,
        ) and self.segments[: len(prefix)] == prefix


def parse_webhook(url: str) -> WebhookTarget:
    """Take `url` apart; `ValueError` says why it cannot be a webhook."""
    if not isinstance(url, str) or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError("a webhook URL may not contain spaces or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError("a webhook URL must start with http:// or https://")
    if "@" in parts.netloc:
        raise ValueError("a webhook URL may not hold a user name or password (userinfo)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("a webhook URL's port must be a number from 1 to 65535") from None
    lowered = parts.path.lower()
    if any(mark in lowered for mark in _AMBIGUOUS):
        raise ValueError("a webhook URL's path may not hold an encoded slash or a backslash")
    return WebhookTarget(
        scheme=scheme,
        host=_host(parts.hostname or ""),
        port=DEFAULT_PORTS[scheme] if port is None else port,
        segments=_resolve(parts.path),
        query=parts.query,
    )


def webhook_url(url: str, allowed: list[str]) -> str:
    """The normalised form of `url` when an entry of `allowed` admits it; `ValueError` says
    why not (a malformed entry of `allowed` too)."""
    target = parse_webhook(url)
    for entry in allowed:
        try:
            admitted = target.within(parse_webhook(entry))
        except ValueError as error:
            raise ValueError(f"allow-list entry {entry!r}: {error}") from None
        if admitted:
            return target.url
    raise ValueError("no allow-list entry admits it")


def _host(text: str) -> str:
    host = text.lower().removesuffix(".")
    if not host:
        raise ValueError("a webhook URL needs a host")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        encoded = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"the host {text!r} is not a valid name") from None
    if not _HOST_NAME.match(encoded) or encoded.replace(".", "").isdigit():
        raise ValueError(f"the host {text!r} is not a valid name or address")
    return encoded


def _resolve(path: str) -> tuple[str, ...]:
    """The path's segments with dot segments removed (RFC 3986 5.2.4, encoded dots included);
    `..` never climbs above the root."""
    segments: list[str] = []
    parts = path.split("/")[1:] if path.startswith("/") else path.split("/")
    for index, segment in enumerate(parts):
        last = index == len(parts) - 1
        lowered = segment.lower()
        if lowered in _PARENT:
            if segments:
                segments.pop()
            if last:
                segments.append("")
        elif lowered in _CURRENT:
            if last:
                segments.append("")
        else:
            segments.append(segment)
    return tuple(segments) or ("",)
