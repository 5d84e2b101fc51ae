"""``viber-publisher migrate-state``: the SQLite state into PostgreSQL.

The copying is :func:`publisher.adapters.migrate.migrate_state`; this says
what was moved and what to do next.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from publisher.cli import EXIT_CONFIG, EXIT_FAILURE, State, fail, pass_state
from publisher.config import resolve_database_password
from publisher.core.errors import ConfigError, StoreError


@click.command("migrate-state")
@click.option(
    "--from",
    "source",
    metavar="PATH",
    type=click.Path(path_type=Path),
    default=None,
    help="The SQLite state file to move (default: [storage] path).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace the state the PostgreSQL database already holds (default: refuse).",
)
@pass_state
def migrate_state(state: State, source: Path | None, force: bool) -> None:
    """Move the SQLite state into the PostgreSQL database of [storage] url, nothing re-posted.

    Copies everything: sources' state, the items seen (so none is posted
    again), the outbox with its ids and statuses, each item's story, the
    channels' state (stopped, cool-down, webhook, last post). The SQLite
    file is only read, and stays as it was; the database is written in one
    transaction (all of it, or nothing). Stop the service first: a state
    file in use is refused. A database that already holds a state is
    refused unless --force (which replaces that state). Posts caught in the
    middle of sending (the service was killed) are moved as unknown, as the
    service's crash recovery would: see `status`, then `retry ID` or
    `skip ID`.
    """
    config = state.load()
    url = config.storage.url
    if url is None:
        fail(
            "[storage] url is not set: add the PostgreSQL database to sources.toml "
            '([storage] url = "postgresql://USER@HOST:5432/DATABASE", its password in '
            "PGPASSWORD or password_file), keep [storage] path, then run migrate-state again",
            EXIT_CONFIG,
        )
    path = source if source is not None else Path(config.storage.path)
    try:
        password = resolve_database_password(config.storage)
    except ConfigError as exc:
        fail("; ".join(exc.problems), EXIT_CONFIG)
    try:
        from publisher.adapters.migrate import counted
        from publisher.adapters.migrate import migrate_state as move
    except ImportError:
        fail(
            "[storage] url names a PostgreSQL database, but psycopg is not installed: "
            "pip install 'viber-publisher[postgres]'",
            EXIT_CONFIG,
        )
    try:
        moved = move(path, url, password=password, now=datetime.now(UTC), force=force)
    except StoreError as exc:
        fail(str(exc), EXIT_FAILURE)

    if moved.replaced:
        gone = ", ".join(counted(table, n) for table, n in moved.replaced.items())
        click.echo(f"replaced the state {moved.target} held ({gone})")
    click.echo(f"moved the state of {moved.source} into {moved.target}:")
    if moved.upgraded_from is not None:
        click.echo(
            f"  (the file has schema version {moved.upgraded_from}: a copy of it was upgraded "
            "and moved; the file is as it was)"
        )
    statuses = ", ".join(f"{n:,} {status}" for status, n in moved.statuses.items() if n)
    rows = [
        ("sources", f"{moved.counts['sources']:,}"),
        ("seen items", f"{moved.counts['seen']:,}"),
        ("posts", f"{moved.counts['outbox']:,}" + (f" ({statuses})" if statuses else "")),
        ("events", f"{moved.counts['events']:,}"),
        ("channels", f"{moved.counts['channels']:,}"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"  {label:<{width}}  {value}")
    if moved.interrupted:
        ids = ", ".join(f"#{i}" for i in moved.interrupted)
        click.echo(
            f"{len(moved.interrupted)} post(s) were being sent when the service stopped "
            f"({ids}): moved as unknown; check the channel, then `retry ID` or `skip ID`"
        )
    click.echo(
        "next: start the service; with [storage] url set it uses PostgreSQL. Keep [storage] "
        f"path (the pid file stays beside it); {moved.source} is no longer read: keep it as a "
        "backup, or delete it with its -wal and -shm files"
    )
