"""``viber-publisher backup PATH``: an online copy of the state file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from publisher.cli import EXIT_CONFIG, EXIT_FAILURE, State, fail, pass_state
from publisher.core.errors import StoreError


@click.command()
@click.argument("path", metavar="PATH", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace PATH when it exists.")
@pass_state
def backup(state: State, path: Path, force: bool) -> None:
    """Copy the state file to PATH while the service runs (a consistent snapshot).

    Uses SQLite's online backup API: the running service is not stopped and
    the copy is one moment of the state, checked before it is kept. When
    PATH is a folder, the copy is named publisher-YYYYMMDD-HHMMSS.sqlite3 in
    it. To restore: stop the service, put the copy at [storage] path (remove
    the old -wal and -shm files), start it.
    """
    config = state.load()
    if config.storage.url is not None:
        fail(
            "[storage] url is a PostgreSQL database: back it up with pg_dump; "
            "this command copies the SQLite state file",
            EXIT_CONFIG,
        )
    source = Path(config.storage.path)
    if str(source) == ":memory:" or not source.is_file():
        fail(f"{source}: no state file yet; it is created when the service first runs")
    if path.is_dir():
        path = path / f"publisher-{datetime.now(UTC):%Y%m%d-%H%M%S}.sqlite3"
    if path.exists() and not force:
        fail(f"{path} exists; choose another path, or give --force to replace it")
    if path.resolve() == source.resolve():
        fail(f"{path} is the state file itself; choose another path")
    from publisher.adapters.sqlite.db import backup as copy_state
    from publisher.adapters.sqlite.db import quick_check

    try:
        copy_state(source, path)
        damage = quick_check(path)
    except StoreError as exc:
        fail(str(exc), EXIT_FAILURE)
    if damage:
        fail(
            f"the copy at {path} is damaged ({'; '.join(damage)[:200]}): the state file itself "
            "is; run `viber-publisher check` and restore an earlier backup",
            EXIT_FAILURE,
        )
    click.echo(f"backed up {source} to {path} ({path.stat().st_size:,} bytes, integrity checked)")
