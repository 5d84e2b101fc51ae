"""Values as stored, and rows read back into :mod:`publisher.core.records`.

Datetimes are ISO-8601 UTC text with microseconds (so text order is time
order) and come back as aware UTC datetimes; naive ones are refused.
JSON is compact and keeps non-ASCII text as it is.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from publisher.core.records import Event, OutboxRow, SeenItem, SourceState


def to_text(value: datetime) -> str:
    """An aware datetime as stored: ``2024-03-31T01:00:00.000000Z``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: pass timezone-aware datetimes")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def opt_text(value: datetime | None) -> str | None:
    return None if value is None else to_text(value)


def from_text(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def opt_dt(value: str | None) -> datetime | None:
    return None if value is None else from_text(value)


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def source_state(row: sqlite3.Row) -> SourceState:
    return SourceState(
        name=row["name"],
        url=row["url"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        body_hash=row["body_hash"],
        last_poll=opt_dt(row["last_poll"]),
        last_success=opt_dt(row["last_success"]),
        next_poll=opt_dt(row["next_poll"]),
        last_error=row["last_error"],
        consecutive_failures=row["consecutive_failures"],
        paused=bool(row["paused"]),
        first_poll_done=bool(row["first_poll_done"]),
        snapshot=None if row["snapshot"] is None else json.loads(row["snapshot"]),
    )


def seen_item(row: sqlite3.Row) -> SeenItem:
    return SeenItem(
        source=row["source"],
        key=row["key"],
        first_seen=from_text(row["first_seen"]),
        last_seen=from_text(row["last_seen"]),
        content_hash=row["content_hash"],
        outcome=row["outcome"],
    )


def outbox_row(row: sqlite3.Row) -> OutboxRow:
    token = row["message_token"]
    return OutboxRow(
        id=row["id"],
        source=row["source"],
        item_key=row["item_key"],
        seq=row["seq"],
        group_id=row["group_id"],
        payload=json.loads(row["payload"]),
        media=tuple(json.loads(row["media"])),
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=opt_dt(row["next_attempt_at"]),
        reason=row["reason"],
        message_token=None if token is None else int(token),
        created_at=from_text(row["created_at"]),
        posted_at=opt_dt(row["posted_at"]),
        finished_at=opt_dt(row["finished_at"]),
        item_published=opt_dt(row["item_published"]),
        send_at=opt_dt(row["send_at"]),
        decisions=tuple((str(c), str(d)) for c, d in json.loads(row["decisions"])),
        files=tuple(json.loads(row["files"])),
        held_by=row["held_by"],
        channel=row["channel"],
    )


def event(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"],
        time=from_text(row["time"]),
        source=row["source"],
        item_key=row["item_key"],
        outbox_id=row["outbox_id"],
        event=row["event"],
        detail=row["detail"],
    )
