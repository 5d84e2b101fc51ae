"""``viber-publisher check``: validate the config (and, online, the token)."""

from __future__ import annotations

import sys

import click

from publisher.cli import EXIT_CONFIG, EXIT_OK, State, pass_state
from publisher.config import load_config
from publisher.core.errors import ConfigError


@click.command()
@click.option("--online", is_flag=True, help="Also ask Viber: token valid, superadmin found.")
@pass_state
def check(state: State, online: bool) -> None:
    """Check sources.toml: print one line per problem, exit 2 if any."""
    problems: list[str] = []
    try:
        config = load_config(state.config_path)
    except ConfigError as exc:
        problems.extend(exc.problems)
        config = None
    if config is not None:
        from publisher.compose import channel_token

        try:
            channel_token(config)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        for line in problems:
            click.echo(f"error: {line}", err=True)
        sys.exit(EXIT_CONFIG)
    assert config is not None
    for warning in config.warnings:
        click.echo(f"warning: {warning}", err=True)
    from publisher.compose import public_url

    if public_url(config) is None:
        click.echo(
            "warning: server.public_url is not set: pictures are posted only when the source "
            "image is already a JPEG under 1 MB at a .jpg URL; others become text posts with "
            "the link",
            err=True,
        )
    click.echo(f"{state.config_path}: ok, {len(config.sources)} source(s)")
    if online:
        from publisher.cli.channel import online_check

        online_check(config)
    sys.exit(EXIT_OK)
