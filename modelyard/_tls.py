"""How clients verify a server's TLS certificate: the system's CAs, or the operator's bundle."""

from __future__ import annotations

import ssl

from modelyard.settings import Settings


def client_verify(settings: Settings) -> ssl.SSLContext | bool:
    """httpx's `verify=`: a context trusting `settings.tls_ca_file` when set, else True."""
    if settings.tls_ca_file is None:
        return True
    return ssl.create_default_context(cafile=str(settings.tls_ca_file))
