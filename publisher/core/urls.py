"""The addresses Viber reaches this service at, derived in one place.

``public_url`` is the HTTPS address of the service (``[server] public_url``;
on the local channel, the built-in server's own address, see
:func:`publisher.compose.public_url`). The webhook is ``public_url`` +
``webhook_path``; each stored media file is ``public_url/media/<name>``.
"""

from __future__ import annotations

#: Where the built-in server serves stored media (``/media/<name>``).
MEDIA_PATH = "/media/"


def webhook_url(public_url: str | None, webhook_path: str) -> str | None:
    """The webhook's URL, or None without a public URL."""
    if public_url is None:
        return None
    return public_url.rstrip("/") + webhook_path


def media_url(public_url: str, name: str) -> str:
    """A stored media file's URL (one slash between, whatever ``public_url`` ends with)."""
    return public_url.rstrip("/") + MEDIA_PATH + name


def channel_webhook_path(webhook_path: str, channel: str, several: bool) -> str:
    """Where a channel's webhook is answered: ``webhook_path`` for the one
    channel, ``webhook_path/<channel>`` for each of several."""
    return f"{webhook_path.rstrip('/')}/{channel}" if several else webhook_path


def reachable_host(host: str) -> str:
    """A host this machine can connect to for one it listens on: a wildcard
    (``0.0.0.0``, ``*``, empty) is the IPv4 loopback, ``::`` the IPv6 one."""
    if host in ("0.0.0.0", "", "*"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def reachable_url(host: str, port: int) -> str:
    """``http://host:port`` for an address this machine listens on (see
    :func:`reachable_host`); IPv6 hosts in brackets."""
    host = reachable_host(host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
