"""``viber-publisher reload``: make the running service re-read sources.toml."""

from __future__ import annotations

import sys

import click

from publisher.cli import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, State, pass_state
from publisher.config import load_config
from publisher.core.errors import ConfigError
from publisher.service.reload import ReloadError, pid_path, signal_service


@click.command()
@pass_state
def reload(state: State) -> None:
    """Re-read sources.toml in the running service (sends it SIGHUP).

    The file is checked first: with problems, nothing is sent (exit 2). The
    service applies the new sources and limits at once; queued posts stay.
    Changes to [viber], [server], [storage] and [fetch] need a restart.
    """
    try:
        config = load_config(state.config_path)
    except ConfigError as exc:
        for line in exc.problems:
            click.echo(f"error: {line}", err=True)
        click.echo("not reloaded: the running service keeps its config", err=True)
        sys.exit(EXIT_CONFIG)
    try:
        pid = signal_service(config)
    except ReloadError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    click.echo(f"asked the service (pid {pid}, {pid_path(config)}) to reload {state.config_path}")
    sys.exit(EXIT_OK)
