"""Rows read back into :mod:`publisher.core.records`, the same for every
database: a row is read by column name, and its datetimes and JSON through
the :class:`~publisher.adapters.sql.dialect.Dialect`."""

from __future__ import annotations

from typing import Any

from publisher.adapters.sql.dialect import Dialect
from publisher.core.records import Event, OutboxRow, SeenItem, SourceState


def source_state(d: Dialect, row: Any) -> SourceState:
    return SourceState(
        name=row["name"],
        url=row["url"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        body_hash=row["body_hash"],
        last_poll=d.opt_dt(row["last_poll"]),
        last_success=d.opt_dt(row["last_success"]),
        next_poll=d.opt_dt(row["next_poll"]),
        last_error=row["last_error"],
        consecutive_failures=row["consecutive_failures"],
        paused=bool(row["paused"]),
        first_poll_done=bool(row["first_poll_done"]),
        snapshot=None if row["snapshot"] is None else d.unjson(row["snapshot"]),
    )


def seen_item(d: Dialect, row: Any) -> SeenItem:
    return SeenItem(
        source=row["source"],
        key=row["key"],
        first_seen=d.dt(row["first_seen"]),
        last_seen=d.dt(row["last_seen"]),
        content_hash=row["content_hash"],
        outcome=row["outcome"],
    )


def outbox_row(d: Dialect, row: Any) -> OutboxRow:
    token = row["message_token"]
    return OutboxRow(
        id=row["id"],
        source=row["source"],
        item_key=row["item_key"],
        seq=row["seq"],
        group_id=row["group_id"],
        payload=d.unjson(row["payload"]),
        media=tuple(d.unjson(row["media"])),
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=d.opt_dt(row["next_attempt_at"]),
        reason=row["reason"],
        message_token=None if token is None else int(token),
        created_at=d.dt(row["created_at"]),
        posted_at=d.opt_dt(row["posted_at"]),
        finished_at=d.opt_dt(row["finished_at"]),
        item_published=d.opt_dt(row["item_published"]),
        send_at=d.opt_dt(row["send_at"]),
        decisions=tuple((str(c), str(why)) for c, why in d.unjson(row["decisions"])),
        files=tuple(d.unjson(row["files"])),
        held_by=row["held_by"],
        channel=row["channel"],
    )


def event(d: Dialect, row: Any) -> Event:
    return Event(
        id=row["id"],
        time=d.dt(row["time"]),
        source=row["source"],
        item_key=row["item_key"],
        outbox_id=row["outbox_id"],
        event=row["event"],
        detail=row["detail"],
    )
