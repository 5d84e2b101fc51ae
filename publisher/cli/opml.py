"""``viber-publisher import-opml FILE``: add a feed reader's subscriptions as sources."""

from __future__ import annotations

import os
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import BinaryIO

import click

from publisher.adapters.opml import OPMLError, append_sources, read_opml
from publisher.cli import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, State, pass_state
from publisher.config import parse_config
from publisher.core.errors import ConfigError


@click.command("import-opml")
@click.argument("file", type=click.File("rb"), metavar="FILE")
@click.option("--dry-run", is_flag=True, help="Print what would be appended; change nothing.")
@click.option(
    "--every",
    default="30m",
    show_default=True,
    metavar="DURATION",
    help="How often each imported feed is polled.",
)
@click.option(
    "--channel",
    "channels",
    metavar="NAME",
    multiple=True,
    help="Route the imported feeds to this channel (repeat for several); needed when "
    "the config has several channels.",
)
@pass_state
def import_opml(
    state: State, file: BinaryIO, dry_run: bool, every: str, channels: tuple[str, ...]
) -> None:
    """Add the feeds of an OPML export (Feedly, Inoreader, NetNewsWire, ...) to sources.toml.

    FILE is the OPML file ("-" reads standard input). Each new feed becomes a
    [[sources]] table appended to the config given by --config; the rest of
    the file, comments included, stays as it was. Feeds whose URL is already
    configured are skipped. The result is checked before it is written.
    """
    path = Path(state.config_path)
    label = getattr(file, "name", "-")
    try:
        feeds, unusable = read_opml(file.read())
    except OPMLError as exc:
        click.echo(f"error: {label}: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    for title, why in unusable:
        click.echo(f"skipped outline {title}: {why}", err=True)
    if not feeds:
        click.echo(f"error: {label}: no feeds found (no outline has an xmlUrl)", err=True)
        sys.exit(EXIT_FAILURE)

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raw = b""
    except OSError as exc:
        click.echo(f"error: {path}: cannot be read ({exc.strerror})", err=True)
        sys.exit(EXIT_CONFIG)
    try:
        old_text = raw.decode("utf-8")
        new_text, added, skipped = append_sources(old_text, feeds, every=every, channels=channels)
    except UnicodeDecodeError:
        click.echo(f"error: {path}: is not UTF-8 text", err=True)
        sys.exit(EXIT_CONFIG)
    except OPMLError as exc:
        click.echo(f"error: {path}: {exc}", err=True)
        sys.exit(EXIT_CONFIG)

    try:
        parse_config(tomllib.loads(new_text), path.resolve())
    except (tomllib.TOMLDecodeError, ConfigError) as exc:
        problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
        click.echo(f"error: {path} would not be valid after the import; nothing written:", err=True)
        for line in problems:
            click.echo(f"error: {line}", err=True)
        sys.exit(EXIT_CONFIG)

    for name, feed in added:
        click.echo(f"{'would add' if dry_run else 'added'} {name}: {feed.xml_url}", err=True)
    for feed, reason in skipped:
        click.echo(f"skipped {feed.title}: {feed.xml_url} ({reason})", err=True)

    if dry_run:
        click.echo(new_text[len(old_text) :], nl=False)
        click.echo(
            f"dry run: {len(added)} to add, {len(skipped)} skipped; {path} unchanged", err=True
        )
        sys.exit(EXIT_OK)
    if added:
        try:
            _write_atomically(path, new_text.encode("utf-8"))
        except OSError as exc:
            click.echo(
                f"error: {path}: cannot be written ({exc.strerror}); nothing changed", err=True
            )
            sys.exit(EXIT_FAILURE)
    click.echo(f"{path}: {len(added)} source(s) added, {len(skipped)} skipped", err=True)
    sys.exit(EXIT_OK)


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` (or the file its symlink points to) in one step, keeping its mode."""
    target = path.resolve()
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
