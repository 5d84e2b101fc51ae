"""``viber-publisher health``: the container's HEALTHCHECK.

Asks the running service's ``/healthz`` (``--ready``: ``/readyz``) at
``[server] listen`` (``0.0.0.0`` and ``::`` are asked on the loopback),
with a short timeout. Exit 0 when healthy, 1 otherwise (also for a broken
config: Docker reserves exit 2), one line of output.
"""

from __future__ import annotations

import json
import sys

import click
import httpx

from publisher.cli import EXIT_FAILURE, EXIT_OK, State, pass_state
from publisher.config import load_config
from publisher.core.config import parse_listen
from publisher.core.errors import ConfigError

#: Seconds for the whole check (the Dockerfile's HEALTHCHECK allows 10).
TIMEOUT = 5.0


def probe_url(listen: str, ready: bool = False) -> str:
    """The URL of the service's probe for ``[server] listen``."""
    host, port = parse_listen(listen)
    if host in ("0.0.0.0", "", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}" + ("/readyz" if ready else "/healthz")


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
        response = httpx.get(url, timeout=timeout, trust_env=False, follow_redirects=False)
    except httpx.HTTPError as exc:
        click.echo(f"not {what}: no answer from {url}: {exc or type(exc).__name__}")
        sys.exit(EXIT_FAILURE)
    if response.status_code == 200:
        click.echo(f"{what}: {url}")
        sys.exit(EXIT_OK)
    click.echo(f"not {what}: {url} answered {response.status_code}: {_summary(response.content)}")
    sys.exit(EXIT_FAILURE)


COMMANDS = [health]
