"""``viber-publisher check``: validate the config (and, online, the token)."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import click

from publisher.cli import EXIT_CONFIG, EXIT_OK, State, pass_state
from publisher.config import load_config
from publisher.core.config import Config
from publisher.core.errors import ConfigError


@click.command()
@click.option("--online", is_flag=True, help="Also ask Viber: token valid, superadmin found.")
@click.option(
    "--channel",
    "channel",
    metavar="NAME",
    help="With --online: check only this channel (default: every channel).",
)
@pass_state
def check(state: State, online: bool, channel: str | None) -> None:
    """Check sources.toml: print one line per problem, exit 2 if any."""
    problems: list[str] = []
    try:
        config = load_config(state.config_path)
    except ConfigError as exc:
        problems.extend(exc.problems)
        config = None
    if config is not None:
        from publisher.compose import channel_tokens

        try:
            channel_tokens(config)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        for line in problems:
            click.echo(f"error: {line}", err=True)
        sys.exit(EXIT_CONFIG)
    assert config is not None
    for warning in config.warnings:
        click.echo(f"warning: {warning}", err=True)
    for warning in _missing_places(config):
        click.echo(f"warning: {warning}", err=True)
    from publisher.compose import public_url

    if public_url(config) is None:
        click.echo(
            "warning: server.public_url is not set: pictures are posted only when the source "
            "image is already a JPEG under 1 MB at a .jpg URL; others become text posts with "
            "the link",
            err=True,
        )
    if config.legacy_channel:
        click.echo(
            'note: [viber] and [delivery] are the one channel "main"; to add channels, write '
            'them as [[channels]] name = "main" (the [viber] keys) with [channels.delivery] '
            "(the [delivery] keys), then a [[channels]] table for each other channel",
            err=True,
        )
    channels = len(config.channels)
    click.echo(
        f"{state.config_path}: ok, {len(config.sources)} source(s)"
        + (f", {channels} channels" if channels > 1 else "")
    )
    if online:
        from publisher.cli.channel import online_check

        online_check(config, channel)
    sys.exit(EXIT_OK)


def _missing_places(config: Config) -> list[str]:
    """What a poll would not find: no sources at all, a folder or a local feed
    file that does not exist (warnings: a folder may be mounted later)."""
    if not config.sources:
        return [
            "no sources: nothing will be polled or posted (only `post` sends); "
            "add a [[sources]] table"
        ]
    lines: list[str] = []
    for index, source in enumerate(config.sources, start=1):
        where = f"sources[{index}] ({source.name})"
        if source.type == "folder" and source.path is not None and not source.path.is_dir():
            what = "is not a folder" if source.path.exists() else "does not exist"
            lines.append(
                f"{where}.path: {source.path} {what}; create the folder or fix path "
                "(the source fails every poll until then)"
            )
        url = source.url or ""
        scheme = urlsplit(url).scheme.lower()
        if source.type == "rss" and url and scheme not in ("http", "https"):
            local = Path(url2pathname(urlsplit(url).path)) if scheme == "file" else Path(url)
            if not local.is_file():
                lines.append(
                    f"{where}.url: the feed file {local} does not exist; create it or fix url "
                    "(the source fails every poll until then)"
                )
    return lines
