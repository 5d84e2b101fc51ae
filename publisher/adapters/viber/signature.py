"""Viber's callback signature: lowercase hex HMAC-SHA256 of the raw body,
keyed with the auth token, in ``X-Viber-Content-Signature``."""

from __future__ import annotations

import hashlib
import hmac


def sign(body: bytes, token: str) -> str:
    """The signature Viber sends with ``body``."""
    return hmac.new(token.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, signature: str | None, token: str) -> bool:
    """True when ``signature`` is the right one for ``body``; constant time."""
    if not signature:
        return False
    return hmac.compare_digest(sign(body, token), signature.strip().lower())
