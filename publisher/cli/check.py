"""``viber-publisher check``: validate the config (and, online, the token)."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import click

from publisher.cli import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, State, pass_state
from publisher.config import load_config
from publisher.core.config import Config
from publisher.core.errors import ConfigError, StoreError


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
    _check_state(config)
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


def _check_state(config: Config) -> None:
    """The SQLite state file, read-only: a damaged one exits 1 saying what to
    do; a lost one (missing or empty beside media of earlier posts) is a warning."""
    from pathlib import Path

    from publisher.cli.run import lost_state

    lost = lost_state(config)
    if lost is not None:
        click.echo(f"warning: {lost}", err=True)
        return
    path = Path(config.storage.path)
    if config.storage.url is not None or not path.is_file() or path.stat().st_size == 0:
        return
    from publisher.adapters.sqlite.db import quick_check

    try:
        damage = quick_check(path)
    except StoreError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    if damage:
        click.echo(
            f"error: the state file {path} is damaged ({'; '.join(damage)[:300]}); stop the "
            "service, then restore it from a backup (`viber-publisher backup PATH` makes "
            "one), or move it with its -wal and -shm files away to start afresh "
            "(`viber-publisher run --new-state`)",
            err=True,
        )
        sys.exit(EXIT_FAILURE)
    click.echo(f"{path}: ok (integrity checked)")
