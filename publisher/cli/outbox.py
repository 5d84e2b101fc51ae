"""``viber-publisher retry ID`` and ``viber-publisher skip ID``: the operator's
say over one post of the outbox (``status`` lists the posts and their ids);
``retry --failed`` over every failed post of a channel.

Both work on the state file while the service runs: each is one short
SQLite transaction (WAL), and the running service picks the change up on its
next delivery step.

Exit codes: 0 done; 1 no such post, or a post in a state the command does
not apply to (the message names the state); 2 config error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from publisher.cli import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    State,
    channel_option,
    choose_channel,
    fail,
    pass_state,
)
from publisher.core.config import Config
from publisher.core.errors import SourceError, StoreError, TransitionError
from publisher.core.records import FINISHED, OutboxRow
from publisher.ports import Store

#: The reason recorded (and written beside a folder item's files in failed/).
SKIP_REASON = "skipped by the operator"


def _open(config: Config) -> Store:
    from publisher.compose import open_store, state_exists

    if not state_exists(config):
        path = config.storage.path
        fail(f"{path}: no state file yet; it is created when the service first runs")
    try:
        return open_store(config)
    except StoreError as exc:
        fail(str(exc))


def _row(store: Store, post_id: int) -> OutboxRow:
    row = store.get(post_id)
    if row is None:
        fail(f"no post #{post_id}; `viber-publisher status` lists the posts and their ids")
    return row


def _ids(ids: list[int]) -> str:
    return ", ".join(f"#{i}" for i in ids)


@click.command()
@click.argument("post_id", metavar="ID", type=int, required=False)
@click.option(
    "--failed",
    "every_failed",
    is_flag=True,
    help="Every failed post of the channel instead of one ID (try --dry-run first).",
)
@channel_option
@click.option("--dry-run", is_flag=True, help="With --failed: list them, change nothing.")
@pass_state
def retry(
    state: State, post_id: int | None, every_failed: bool, channel: str | None, dry_run: bool
) -> None:
    """Queue post ID again: one whose fate is unknown or that failed.

    Its attempts start from zero, and the later messages of the same item
    that were skipped because of it come back too. Check the channel first
    when the post is unknown: it may already be out. `retry --failed
    [--channel NAME] [--dry-run]` does it for every failed post of a channel
    (after an outage, say): list them with --dry-run first.
    """
    if every_failed == (post_id is not None):
        fail("give a post ID or --failed (`viber-publisher status` lists the posts)", EXIT_CONFIG)
    if (dry_run or channel is not None) and not every_failed:
        fail("--dry-run and --channel go with --failed", EXIT_CONFIG)
    config = state.load()
    if every_failed:
        _retry_failed(config, choose_channel(config, channel).name, dry_run)
        return
    assert post_id is not None
    with _open(config) as store:
        row = _row(store, post_id)
        if row.status == "skipped" and row.held_by is not None:
            fail(
                f"post #{post_id} is skipped because post #{row.held_by} of the same item "
                f"was not sent; `viber-publisher retry {row.held_by}` brings both back"
            )
        try:
            queued = store.requeue(post_id, datetime.now(UTC))
        except TransitionError:
            fail(
                f"post #{post_id} is {row.status}; only unknown or failed posts can be retried"
                + (" (it is already queued)" if row.status in ("queued", "sending") else "")
            )
    click.echo(f"queued again: {_ids(queued)} ({row.source}/{row.item_key})")
    if row.status == "failed" and row.files:
        click.echo("note: the item's files stay in failed/ of its folder; the post uses its media")


def _retry_failed(config: Config, channel: str, dry_run: bool) -> None:
    """``retry --failed``: every failed post of ``channel``, oldest first."""
    with _open(config) as store:
        failed = store.outbox("failed", limit=1_000_000, channel=channel, newest_first=False)
        if not failed:
            click.echo(f"channel {channel}: no failed posts")
            return
        for row in failed:
            click.echo(f"#{row.id} {row.source}/{row.item_key}: {row.reason or 'failed'}")
        if dry_run:
            click.echo(
                f"{len(failed)} failed post(s) of channel {channel} would be queued again; "
                "run without --dry-run to do it"
            )
            return
        now = datetime.now(UTC)
        queued: list[int] = []
        for row in failed:
            try:
                queued.extend(store.requeue(row.id, now))
            except TransitionError:
                continue  # retried or skipped meanwhile
    click.echo(f"queued again: {_ids(queued)} (channel {channel})")


@click.command()
@click.argument("post_id", metavar="ID", type=int)
@pass_state
def skip(state: State, post_id: int) -> None:
    """Drop post ID: it will not be sent (queued, unknown or failed posts).

    The later messages of the same item are dropped too. A folder item's
    files move to failed/ with the reason "skipped by the operator".
    """
    config = state.load()
    now = datetime.now(UTC)
    with _open(config) as store:
        row = _row(store, post_id)
        try:
            also = store.mark_skipped(post_id, SKIP_REASON, now)
        except TransitionError:
            fail(
                f"post #{post_id} is {row.status}; only queued, unknown or failed posts "
                "can be skipped"
            )
        rows = store.item_rows(row.group_id)
    click.echo(f"skipped: {_ids([post_id, *also])} ({row.source}/{row.item_key})")
    if row.files and all(r.status in FINISHED for r in rows):
        _move_files(config, row, rows)


def _move_files(config: Config, row: OutboxRow, rows: list[OutboxRow]) -> None:
    """The item is finished: its source does with its files what it does
    (a folder moves them to ``failed/``)."""
    from publisher.adapters.sources.registry import make_source

    try:
        source = make_source(config.source(row.source), fetcher=None)
    except KeyError:
        return
    ok = all(r.status == "posted" for r in rows)
    try:
        moved = source.finish([Path(f) for f in row.files], ok=ok, reason=SKIP_REASON)
    except SourceError as exc:
        fail(f"the post is skipped, but its files were not moved: {exc}", EXIT_FAILURE)
    if moved:
        click.echo(f"moved {len(moved)} file(s) to {moved[0].parent}")
