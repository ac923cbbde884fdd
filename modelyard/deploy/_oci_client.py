"""A client of the OCI distribution API over httpx: blobs, manifests, and the registry's auth.

Auth follows the `WWW-Authenticate` challenge of a 401: Basic sends the credentials; Bearer gets
a token from the challenge's realm (with the credentials, if any), as Docker Hub, GHCR and Harbor
ask. Credentials go only to the registry's own host and to its token realm.
"""

from __future__ import annotations

import base64
import os
import re
import ssl
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from modelyard.deploy._oci_refs import OciReference, is_plain_http_allowed
from modelyard.errors import ConfigurationError, OciAuthenticationFailed, OciRegistryError
from modelyard.store import READ_SIZE

Body = bytes | Callable[[], Iterable[bytes]]
"""A request body: bytes, or a factory of pieces (called again if the request is re-sent)."""

TOKEN_LIMIT = 1 << 20
SMALL_BODY = 64 << 10
"""Most bytes read of an answer whose body modelyard does not use (HEAD, POST, PUT)."""
CONNECTIONS = 32
"""Most connections kept open to the registry (keep-alive: each thread reuses its own)."""
_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]*))')
_REDIRECTS = 5


class OciClient:
    """Requests to one repository of one registry.

    >>> with OciClient(parse_reference("oci://127.0.0.1:5000/models/fraud")) as client:
    ...     client.blob_exists("sha256:…")
    """

    def __init__(
        self,
        ref: OciReference,
        *,
        username: str | None = None,
        password: str | None = None,
        plain_http: Iterable[str] = (),
        push: bool = False,
        timeout: float = 60.0,
    ) -> None:
        self.ref = ref
        self._credentials = (username, password or "") if username else None
        self._plain_http = list(plain_http)
        self._scope = f"repository:{ref.repository}:{'pull,push' if push else 'pull'}"
        self._auth: str | None = None
        self._http = httpx.Client(
            timeout=timeout, follow_redirects=False, verify=_tls_context(),
            limits=httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS),
        )  # fmt: skip
        self._origin = urlsplit(ref.base_url).netloc

    def __enter__(self) -> OciClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    # requests ---------------------------------------------------------------------------------

    @contextmanager
    def stream(
        self, url: str, *, headers: dict[str, str] | None = None
    ) -> Iterator[Iterator[bytes]]:
        """GET `url` and yield its body in pieces, closing the response after."""
        response = self.request("GET", url, headers=headers, stream=True)
        try:
            yield response.iter_bytes(READ_SIZE)
        except httpx.HTTPError as error:
            raise OciRegistryError(f"GET {url} from {self.ref.host} failed: {error}") from None
        finally:
            response.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: Body | None = None,
        stream: bool = False,
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        """Send a request (a path under `/v2/REPO`, or an absolute URL the registry gave),
        answering its auth challenge once; raise `OciRegistryError` unless the status is in
        `ok`. A streamed response must be closed by the caller; any other is read (at most
        `SMALL_BODY` bytes: a registry's answer is untrusted) and closed, headers kept."""
        url = url if "://" in url else self.ref.base_url + url
        for _ in range(_REDIRECTS):
            response = self._send(method, url, headers, body)
            if response.status_code == 401 and self._same_origin(url):
                challenge = response.headers.get("www-authenticate", "")
                response.close()
                self._answer(challenge, method, url)
                response = self._send(method, url, headers, body)
            if response.status_code in (301, 302, 303, 307, 308) and method in ("GET", "HEAD"):
                url = urljoin(url, response.headers.get("location", ""))
                response.close()
                self.check_url(url)
                continue
            break
        if response.status_code not in ok:
            self._fail(response, method, url)
        if not stream:
            _head(response, SMALL_BODY)
            response.close()
        return response

    def _send(
        self, method: str, url: str, headers: dict[str, str] | None, body: Body | None
    ) -> httpx.Response:
        sent = dict(headers or {})
        if self._auth is not None and self._same_origin(url):  # never to another host
            sent["Authorization"] = self._auth
        content = body() if callable(body) else body
        try:
            request = self._http.build_request(method, url, headers=sent, content=content)
            return self._http.send(request, stream=True)  # bodies are read bounded
        except httpx.HTTPError as error:
            raise OciRegistryError(
                f"{method} {url} failed: {type(error).__name__}: {error}"
            ) from None

    def _same_origin(self, url: str) -> bool:
        return urlsplit(url).netloc == self._origin

    def check_url(self, url: str) -> None:
        """Refuse `url` unless it is HTTPS, or plain HTTP to a loopback or allow-listed host."""
        parts = urlsplit(url)
        if parts.scheme == "https":
            return
        if parts.scheme == "http" and is_plain_http_allowed(parts.netloc, self._plain_http):
            return
        raise ConfigurationError(
            f"refusing {url}: the registry {self.ref.host} sent it there over plain HTTP; only "
            "loopback hosts and those in MODELYARD_OCI_PLAIN_HTTP may be reached without TLS"
        )

    def _fail(self, response: httpx.Response, method: str, url: str) -> None:
        status = response.status_code
        detail = _detail(response)
        path = urlsplit(url).path
        where = f"{self.ref.host} answered {status} to {method} {path}"
        if status in (401, 403):
            hint = (
                "the credentials were refused"
                if self._credentials
                else "pass --username and --password-stdin, or set MODELYARD_OCI_USERNAME and "
                "MODELYARD_OCI_PASSWORD"
            )
            raise OciAuthenticationFailed(
                f"{where} ({'Unauthorized' if status == 401 else 'Forbidden'}): {detail}; {hint}"
            )
        raise OciRegistryError(f"{where}: {detail}")

    # auth -------------------------------------------------------------------------------------

    def _answer(self, challenge: str, method: str, url: str) -> None:
        scheme, _, rest = challenge.partition(" ")
        params = {m[1].lower(): m[2] or m[3] for m in _PARAM.finditer(rest)}
        if scheme.lower() == "basic":
            if self._credentials is None:
                raise OciAuthenticationFailed(
                    f"{self.ref.host} answered 401 Unauthorized to {method} {urlsplit(url).path}: "
                    "it asks for a user name and password; pass --username and --password-stdin, "
                    "or set MODELYARD_OCI_USERNAME and MODELYARD_OCI_PASSWORD"
                )
            self._auth = "Basic " + _basic(*self._credentials)
        elif scheme.lower() == "bearer" and params.get("realm"):
            self._auth = "Bearer " + self._token(params)
        else:
            raise OciAuthenticationFailed(
                f"{self.ref.host} answered 401 with an auth challenge modelyard cannot answer: "
                f"{challenge[:200]!r}"
            )

    def _token(self, params: dict[str, str]) -> str:
        realm = params["realm"]
        self.check_url(realm)  # the realm gets the credentials: TLS unless allowed
        query = {"scope": params.get("scope") or self._scope}
        if params.get("service"):
            query["service"] = params["service"]
        headers = {}
        if self._credentials is not None:
            headers["Authorization"] = "Basic " + _basic(*self._credentials)
        try:
            with self._http.stream("GET", realm, params=query, headers=headers) as response:
                data = _bounded(response.iter_bytes(), TOKEN_LIMIT)
                status = response.status_code
        except httpx.HTTPError as error:
            raise OciRegistryError(f"token request to {realm} failed: {error}") from None
        if status != 200:
            raise OciAuthenticationFailed(
                f"the token service {realm} answered {status}: the credentials were refused"
                if self._credentials
                else f"the token service {realm} answered {status}; pass --username and "
                "--password-stdin, or set MODELYARD_OCI_USERNAME and MODELYARD_OCI_PASSWORD"
            )
        return _token_from(data, realm)


def _tls_context() -> ssl.SSLContext:
    """httpx's default context (certifi, or `SSL_CERT_FILE`/`SSL_CERT_DIR`), built once per
    setting: loading the CA bundle costs ~80 ms, as much as a whole small push. A context is
    safe to share between clients and threads; verification stays on."""
    return _context_for(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@cache
def _context_for(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    # The arguments key the cache: httpx reads the same variables itself.
    return httpx.create_ssl_context()


def _basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def _token_from(data: bytes, realm: str) -> str:
    import json

    try:
        body: Any = json.loads(data)
        token = body.get("token") or body.get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token or any(c in token for c in "\r\n"):
        raise OciRegistryError(f"the token service {realm} answered without a usable token")
    return token


def _bounded(pieces: Iterator[bytes], limit: int) -> bytes:
    out = bytearray()
    for piece in pieces:
        out += piece
        if len(out) > limit:
            raise OciRegistryError(f"an answer over {limit} bytes was refused")
    return bytes(out)


def _head(response: httpx.Response, limit: int) -> bytes:
    """Up to `limit` bytes of a body; the rest is never read (the connection is dropped)."""
    out = bytearray()
    try:
        for piece in response.iter_raw():
            out += piece
            if len(out) >= limit:
                break
    except (httpx.HTTPError, httpx.StreamError):
        pass
    return bytes(out[:limit])


def _detail(response: httpx.Response) -> str:
    """The registry's error text, short: `{"errors": [{"code", "message"}]}` or the body."""
    raw = _head(response, 4096)
    response.close()
    text = raw.decode("utf-8", "replace")
    found = re.findall(r'"code"\s*:\s*"([A-Z_]+)"[^}]*?"message"\s*:\s*"([^"]*)"', text)
    if found:
        return "; ".join(f"{code}: {message}" for code, message in found[:3])
    return text.strip()[:300] or response.reason_phrase
