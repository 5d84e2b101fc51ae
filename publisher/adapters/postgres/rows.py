"""Values as PostgreSQL stores them, and rows read back into
:mod:`publisher.core.records`.

Datetimes are ``timestamptz`` (microseconds, like the SQLite text) and come
back as aware UTC datetimes; naive ones are refused before they reach the
server. Payloads, media lists, decisions, files and snapshots are ``jsonb``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from publisher.core.records import Event, OutboxRow, SeenItem, SourceState

#: A row as psycopg's ``dict_row`` gives it.
Row = dict[str, Any]
#: A connection whose rows are dicts.
Conn = psycopg.Connection[Row]


def ts(value: datetime) -> datetime:
    """An aware datetime, in UTC, as sent to the server; a naive one is refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: pass timezone-aware datetimes")
    return value.astimezone(UTC)


def opt_ts(value: datetime | None) -> datetime | None:
    return None if value is None else ts(value)


def utc(value: datetime | None) -> datetime | None:
    """A ``timestamptz`` read back, in UTC."""
    return None if value is None else value.astimezone(UTC)


def json(value: Any) -> Jsonb:
    return Jsonb(value)


def source_state(row: Row) -> SourceState:
    return SourceState(
        name=row["name"],
        url=row["url"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        body_hash=row["body_hash"],
        last_poll=utc(row["last_poll"]),
        last_success=utc(row["last_success"]),
        next_poll=utc(row["next_poll"]),
        last_error=row["last_error"],
        consecutive_failures=row["consecutive_failures"],
        paused=row["paused"],
        first_poll_done=row["first_poll_done"],
        snapshot=row["snapshot"],
    )


def seen_item(row: Row) -> SeenItem:
    return SeenItem(
        source=row["source"],
        key=row["key"],
        first_seen=row["first_seen"].astimezone(UTC),
        last_seen=row["last_seen"].astimezone(UTC),
        content_hash=row["content_hash"],
        outcome=row["outcome"],
    )


def outbox_row(row: Row) -> OutboxRow:
    token = row["message_token"]
    return OutboxRow(
        id=row["id"],
        source=row["source"],
        item_key=row["item_key"],
        seq=row["seq"],
        group_id=row["group_id"],
        payload=row["payload"],
        media=tuple(row["media"]),
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=utc(row["next_attempt_at"]),
        reason=row["reason"],
        message_token=None if token is None else int(token),
        created_at=row["created_at"].astimezone(UTC),
        posted_at=utc(row["posted_at"]),
        finished_at=utc(row["finished_at"]),
        item_published=utc(row["item_published"]),
        send_at=utc(row["send_at"]),
        decisions=tuple((str(c), str(d)) for c, d in row["decisions"]),
        files=tuple(row["files"]),
        held_by=row["held_by"],
        channel=row["channel"],
    )


def event(row: Row) -> Event:
    return Event(
        id=row["id"],
        time=row["time"].astimezone(UTC),
        source=row["source"],
        item_key=row["item_key"],
        outbox_id=row["outbox_id"],
        event=row["event"],
        detail=row["detail"],
    )
