"""``viber-publisher health``: the container's HEALTHCHECK.

Asks the running service's ``/healthz`` (``--ready``: ``/readyz``) at
``[server] listen`` (``0.0.0.0`` and ``::`` are asked on the loopback),
with a short timeout. Exit 0 when healthy, 1 otherwise (also for a broken
config: Docker reserves exit 2), one line of output.

It runs every 30 s in the container, so it asks with the standard library's
``http.client`` (no proxies, no redirects) and imports nothing heavy.
"""

from __future__ import annotations

import http.client
import json
import sys

import click

from publisher.cli import EXIT_FAILURE, EXIT_OK, State, pass_state
from publisher.config import load_config
from publisher.core.config import parse_listen
from publisher.core.errors import ConfigError
from publisher.core.urls import reachable_host, reachable_url

#: Seconds for the whole check (the Dockerfile's HEALTHCHECK allows 10).
TIMEOUT = 5.0


def probe_address(listen: str) -> tuple[str, int]:
    """The host and port to ask for ``[server] listen`` (wildcards: the loopback)."""
    host, port = parse_listen(listen)
    return reachable_host(host), port


def probe_url(listen: str, ready: bool = False) -> str:
    """The URL of the service's probe for ``[server] listen``."""
    return reachable_url(*parse_listen(listen)) + ("/readyz" if ready else "/healthz")


def ask(listen: str, ready: bool, timeout: float) -> tuple[int, bytes]:
    """GET the probe: its status and body (at most 64 KiB). Raises OSError
    (no answer, timeout) or http.client.HTTPException (not HTTP)."""
    host, port = probe_address(listen)
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/readyz" if ready else "/healthz")
        response = connection.getresponse()
        return response.status, response.read(65536)
    finally:
        connection.close()


def _summary(body: bytes) -> str:
    """The probe's details in one short line."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:200]
    if isinstance(data, dict):
        data.pop("ok", None)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))[:300]
    return str(data)[:300]


@click.command()
@click.option("--ready", is_flag=True, help="Check /readyz (ready to post) instead of /healthz.")
@click.option(
    "--timeout",
    type=float,
    default=TIMEOUT,
    show_default=True,
    help="Seconds to wait for the answer.",
)
@pass_state
def health(state: State, ready: bool, timeout: float) -> None:
    """Ask the running service whether it is healthy (exit 0) or not (exit 1).

    For the container's HEALTHCHECK; --ready asks whether it is ready to post
    (token accepted, webhook set, database writable, sources polled).
    """
    try:
        config = load_config(state.config_path)
    except ConfigError as exc:
        click.echo(f"unhealthy: {state.config_path}: {exc.problems[0]}")
        sys.exit(EXIT_FAILURE)
    url = probe_url(config.server.listen, ready)
    what = "ready" if ready else "healthy"
    try:
        status, body = ask(config.server.listen, ready, timeout)
    except (OSError, http.client.HTTPException) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
        click.echo(f"not {what}: no answer from {url}: {reason or type(exc).__name__}")
        sys.exit(EXIT_FAILURE)
    if status == 200:
        click.echo(f"{what}: {url}")
        sys.exit(EXIT_OK)
    click.echo(f"not {what}: {url} answered {status}: {_summary(body)}")
    sys.exit(EXIT_FAILURE)
