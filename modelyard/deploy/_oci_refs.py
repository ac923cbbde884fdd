"""`oci://HOST[:PORT]/REPO[:TAG|@sha256:HEX]` references, checked against the OCI grammar."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from modelyard.errors import ConfigurationError, InvalidReference

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPO = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_LABEL = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_HOST = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?")
_SCHEMES = ("oci://", "oci+http://")
_FORM = "oci://HOST[:PORT]/REPO[:TAG|@sha256:HEX]"


@dataclass(frozen=True, slots=True)
class OciReference:
    """A parsed reference: `host` ("registry:5000"), `repository`, `tag`, `digest`, and whether
    the registry is reached over plain HTTP (`plain_http`)."""

    host: str
    repository: str
    tag: str | None
    digest: str | None
    plain_http: bool

    @property
    def base_url(self) -> str:
        """`https://HOST/v2/REPO` (or `http://` for an allowed plain-HTTP registry)."""
        return f"{'http' if self.plain_http else 'https'}://{self.host}/v2/{self.repository}"

    @property
    def reference(self) -> str:
        """What names the manifest in the URL: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        end = f"@{self.digest}" if self.digest else f":{self.tag}"
        return f"oci://{self.host}/{self.repository}{end}"

    def with_digest(self, digest: str) -> str:
        """This reference pinned to `digest`: `oci://HOST/REPO@sha256:…`."""
        return f"oci://{self.host}/{self.repository}@{digest}"


def parse_reference(text: str, *, plain_http: Iterable[str] = ()) -> OciReference:
    """Parse and check an `oci://` reference; `plain_http` is the operator's allow-list of
    registries reached over HTTP (loopback always is). `oci+http://` asks for plain HTTP and
    is refused for any other host.

    >>> parse_reference("oci://127.0.0.1:5000/models/fraud:v3").plain_http
    True
    """
    scheme = next((s for s in _SCHEMES if text.startswith(s)), None)
    if scheme is None:
        raise InvalidReference(text, expected=_FORM)
    rest = text[len(scheme) :]
    host, slash, path = rest.partition("/")
    if not slash or _HOST.fullmatch(host) is None:
        raise InvalidReference(text, expected=f"{_FORM} with a valid host")
    repository, digest, tag = _split(text, path)
    if len(host) + 1 + len(repository) > 255:
        raise InvalidReference(text, expected="a registry and repository of at most 255 characters")
    allowed = is_plain_http_allowed(host, plain_http)
    if scheme == "oci+http://" and not allowed:
        raise ConfigurationError(
            f"refusing plain HTTP to {host}: only loopback registries and those listed in "
            "MODELYARD_OCI_PLAIN_HTTP may be reached without TLS"
        )
    return OciReference(host, repository, tag, digest, plain_http=allowed)


def _split(text: str, path: str) -> tuple[str, str | None, str | None]:
    repository, _, digest = path.partition("@")
    tag: str | None = None
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = repository.rsplit(":", 1)
        if _TAG.fullmatch(tag) is None:
            raise InvalidReference(text, expected="a tag of letters, digits, '_', '.', '-' (<=128)")
    if _REPO.fullmatch(repository) is None:
        raise InvalidReference(
            text,
            expected="a repository of lowercase letters, digits, '/', '.', '_' and '-'",
        )
    if digest and _DIGEST.fullmatch(digest) is None:
        raise InvalidReference(
            text, expected="a digest 'sha256:' followed by 64 lowercase hex digits"
        )
    if not digest and tag is None:
        tag = "latest"
    return repository, digest or None, tag


def is_plain_http_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether `host` (with or without a port) may be reached over plain HTTP."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if host in allowed or name in allowed:
        return True
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False
