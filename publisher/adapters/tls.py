"""One verifying TLS context per process, shared by every HTTP client."""

from __future__ import annotations

import functools
import ssl


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verifying context (certifi's CA certificates), built
    once: loading the certificates is most of what a client costs to make."""
    import httpx

    return httpx.create_ssl_context()
