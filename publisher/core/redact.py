"""Credentials in URLs, hidden wherever a URL is shown.

A feed URL may carry a user and password (``https://user:pass@host/feed``).
:func:`redact_urls` replaces the user-info part of every URL in a text with
``***``; logs, ``status``, ``/readyz``, metrics, alerts and error messages
show URLs only through it (:func:`publisher.logs.redact` applies it to every
log line and alert as well). The URL actually fetched keeps its credentials.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "redact_urls"]

MASK = "***"

# scheme://userinfo@ where userinfo runs up to the last "@" before the path
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s@]*(?:@[^/?#\s@]*)*@")


def redact_urls(text: str) -> str:
    """``text`` with the user and password of every URL in it shown as ``***``.

    >>> redact_urls("https://user:pass@example.org/feed failed")
    'https://***@example.org/feed failed'
    """
    if "@" not in text:
        return text
    return _USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
