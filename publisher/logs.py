"""Logging: one line per event, as text or JSON, never the token.

Every record passes through :class:`RedactingFilter`, which replaces any
registered secret (the auth token) with ``[redacted]`` wherever it appears,
and the user and password of any URL with ``***``
(:func:`publisher.core.redact.redact_urls`).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from publisher.core.redact import redact_urls

_SECRETS: set[str] = set()


def register_secret(secret: str) -> None:
    """Never let ``secret`` reach a log line."""
    if secret and len(secret) >= 4:
        _SECRETS.add(secret)


def redact(text: str) -> str:
    """``text`` without any registered secret or credentials in a URL."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return redact_urls(text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = redact(message)
        if safe != message:
            record.msg = safe
            record.args = None
        return True


_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                data[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return redact(json.dumps(data, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(fmt: str = "text", level: str = "info") -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_publisher", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._publisher = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "waitress"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
