"""The outbox: one row per message to post, and the transitions between
its statuses — the contract of :mod:`publisher.adapters.sqlite.outbox`
(its docstring has the diagram), kept here in PostgreSQL.

Every transition reads its row ``FOR UPDATE`` inside its transaction, so
two threads or two processes changing one post wait for each other and the
second sees the first's result: a post is claimed once, and its
``sending`` is committed before the request goes out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from publisher.adapters.postgres import rows
from publisher.adapters.postgres.db import Database
from publisher.adapters.postgres.history import write_event
from publisher.adapters.postgres.rows import Conn, json, opt_ts, ts, utc
from publisher.adapters.postgres.seen import mark_seen_in, upsert_seen
from publisher.adapters.postgres.sources import ensure_source
from publisher.core.errors import StoreError, TransitionError
from publisher.core.items import RenderedItem
from publisher.core.records import STATUSES, OutboxRow, OutboxStatus


def _lock(db: Conn, outbox_id: int) -> OutboxRow:
    """The row, locked until the transaction ends."""
    row = db.execute("SELECT * FROM outbox WHERE id = %s FOR UPDATE", (outbox_id,)).fetchone()
    if row is None:
        raise StoreError(f"no post #{outbox_id}; `status` lists the posts and their ids")
    return rows.outbox_row(row)


def _check(row: OutboxRow, allowed: tuple[str, ...], action: str) -> None:
    if row.status not in allowed:
        raise TransitionError(
            f"post #{row.id} is {row.status}; only {' or '.join(allowed)} posts can be {action}"
        )


def _hold_rest(db: Conn, row: OutboxRow, now: datetime, why: str) -> list[int]:
    """Skip the item's later messages that are still waiting."""
    reason = f"not sent: message #{row.id} of this item was {why}"
    later = db.execute(
        "UPDATE outbox SET status = 'skipped', reason = %(reason)s, held_by = %(id)s,"
        " finished_at = %(now)s, next_attempt_at = NULL"
        " WHERE group_id = %(group)s AND seq > %(seq)s AND status IN ('queued', 'unknown')"
        " RETURNING id, seq",
        {"reason": reason, "id": row.id, "now": ts(now), "group": row.group_id, "seq": row.seq},
    ).fetchall()
    ids = [r["id"] for r in sorted(later, key=lambda r: r["seq"])]
    for later_id in ids:
        write_event(db, now, row.source, row.item_key, "skipped", reason, later_id)
    return ids


def _set_status(db: Conn, outbox_id: int, status: str, reason: str) -> None:
    db.execute(
        "UPDATE outbox SET status = %s, reason = %s WHERE id = %s", (status, reason, outbox_id)
    )


class PostgresOutbox:
    """:class:`publisher.ports.Outbox` on the ``outbox`` table."""

    _db: Database

    def queue_item(
        self,
        rendered: RenderedItem,
        now: datetime,
        outcome: str = "queued",
        *,
        channel: str = "main",
    ) -> list[int]:
        return self.queue_routes({channel: rendered}, now, outcome).get(channel, [])

    def queue_routes(
        self, routes: Mapping[str, RenderedItem], now: datetime, outcome: str = "queued"
    ) -> dict[str, list[int]]:
        """One item to several channels, in one transaction (see the port)."""
        usable = {c: r for c, r in routes.items() if r.refused is None and r.messages}
        if not usable:
            first = next(iter(routes.values()))
            item = first.item
            reason = first.refused or "nothing to post"
            with self._db.write() as db:
                mark_seen_in(db, item.source, item.key, item.content_hash, now, "refused", reason)
            return {}
        result: dict[str, list[int]] = {}
        with self._db.write() as db:
            item = next(iter(usable.values())).item
            ensure_source(db, item.source)
            before = upsert_seen(db, item.source, item.key, item.content_hash, now, outcome)
            if before is not None and before.content_hash != item.content_hash:
                seen_detail = "content changed since first seen"
            elif before is not None:
                seen_detail = "seen again"
            else:
                seen_detail = item.title[:200]
            write_event(db, now, item.source, item.key, "seen", seen_detail)
            for channel, rendered in usable.items():
                result[channel] = _queue_group(db, rendered, now, outcome, channel)
        return result

    # ---- outbox transitions

    def claim(self, outbox_id: int, now: datetime) -> bool:
        """queued → sending, one more attempt. False if it was not queued."""
        with self._db.write() as db:
            row = _lock(db, outbox_id)
            if row.status != "queued":
                return False
            db.execute(
                "UPDATE outbox SET status = 'sending', attempts = attempts + 1,"
                " next_attempt_at = NULL WHERE id = %s",
                (outbox_id,),
            )
            detail = f"attempt {row.attempts + 1}"
            write_event(db, now, row.source, row.item_key, "sending", detail, outbox_id)
        return True

    def mark_posted(self, outbox_id: int, token: int | str | None, now: datetime) -> None:
        exact = None if token is None else int(token)
        with self._db.write() as db:
            row = _lock(db, outbox_id)
            _check(row, ("sending", "unknown"), "marked posted")
            db.execute(
                "UPDATE outbox SET status = 'posted', message_token = %(token)s,"
                " posted_at = %(now)s, finished_at = %(now)s, reason = NULL,"
                " next_attempt_at = NULL WHERE id = %(id)s",
                {"token": None if exact is None else str(exact), "now": ts(now), "id": outbox_id},
            )
            detail = f"token={exact}" if exact is not None else "confirmed without a token"
            write_event(db, now, row.source, row.item_key, "posted", detail, outbox_id)

    def mark_failed(self, outbox_id: int, reason: str, now: datetime) -> list[int]:
        with self._db.write() as db:
            row = _lock(db, outbox_id)
            _check(row, ("sending", "queued", "unknown"), "marked failed")
            _finish(db, outbox_id, "failed", reason, now)
            write_event(db, now, row.source, row.item_key, "failed", reason, outbox_id)
            return _hold_rest(db, row, now, f"failed ({reason})")

    def mark_retry(
        self,
        outbox_id: int,
        reason: str,
        next_attempt_at: datetime,
        now: datetime,
        *,
        refund: bool = False,
    ) -> None:
        with self._db.write() as db:
            row = _lock(db, outbox_id)
            _check(row, ("sending",), "retried")
            db.execute(
                "UPDATE outbox SET status = 'queued', reason = %s, next_attempt_at = %s,"
                " attempts = greatest(attempts - %s, 0) WHERE id = %s",
                (reason, ts(next_attempt_at), int(refund), outbox_id),
            )
            when = ts(next_attempt_at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            detail = f"{reason}; next attempt after {when}"
            write_event(db, now, row.source, row.item_key, "retry", detail, outbox_id)

    def mark_unknown(self, outbox_id: int, reason: str, now: datetime) -> None:
        with self._db.write() as db:
            row = _lock(db, outbox_id)
            _check(row, ("sending",), "marked unknown")
            _set_status(db, outbox_id, "unknown", reason)
            write_event(db, now, row.source, row.item_key, "unknown", reason, outbox_id)

    def mark_skipped(self, outbox_id: int, reason: str, now: datetime) -> list[int]:
        with self._db.write() as db:
            row = _lock(db, outbox_id)
            _check(row, ("queued", "unknown", "failed"), "skipped")
            _finish(db, outbox_id, "skipped", reason, now)
            write_event(db, now, row.source, row.item_key, "skipped", reason, outbox_id)
            return _hold_rest(db, row, now, f"skipped ({reason})")

    def requeue(self, outbox_id: int, now: datetime, detail: str = "by the operator") -> list[int]:
        with self._db.write() as db:
            row = _lock(db, outbox_id)
            _check(row, ("unknown", "failed"), "retried")
            held = [
                r["id"]
                for r in db.execute(
                    "SELECT id FROM outbox WHERE held_by = %s AND status = 'skipped'"
                    " ORDER BY id FOR UPDATE",
                    (outbox_id,),
                ).fetchall()
            ]
            for requeued in (outbox_id, *held):
                db.execute(
                    "UPDATE outbox SET status = 'queued', attempts = 0, reason = NULL,"
                    " next_attempt_at = NULL, finished_at = NULL, held_by = NULL WHERE id = %s",
                    (requeued,),
                )
                write_event(db, now, row.source, row.item_key, "retried", detail, requeued)
        return [outbox_id, *held]

    def recover_after_crash(
        self,
        now: datetime,
        on_unknown: Literal["hold", "retry"] = "hold",
        *,
        channel: str | None = None,
    ) -> list[int]:
        """At start-up: every ``sending`` row (of ``channel``, or of all) was
        interrupted; it becomes ``unknown`` (hold) or ``queued`` (retry)."""
        reason = "interrupted while sending: the post may or may not be out"
        status, event = ("queued", "retried") if on_unknown == "retry" else ("unknown", "unknown")
        with self._db.write() as db:
            interrupted = [
                rows.outbox_row(r)
                for r in db.execute(
                    "SELECT * FROM outbox WHERE status = 'sending'"
                    " AND (%(channel)s::text IS NULL OR channel = %(channel)s)"
                    " ORDER BY id FOR UPDATE",
                    {"channel": channel},
                ).fetchall()
            ]
            for row in interrupted:
                _set_status(db, row.id, status, reason)
                write_event(db, now, row.source, row.item_key, event, reason, row.id)
        return [row.id for row in interrupted]

    # ---- queries

    def get(self, outbox_id: int) -> OutboxRow | None:
        with self._db.read() as db:
            row = db.execute("SELECT * FROM outbox WHERE id = %s", (outbox_id,)).fetchone()
        return None if row is None else rows.outbox_row(row)

    def item_rows(self, group_id: int) -> list[OutboxRow]:
        with self._db.read() as db:
            found = db.execute(
                "SELECT * FROM outbox WHERE group_id = %s ORDER BY seq", (group_id,)
            ).fetchall()
        return [rows.outbox_row(r) for r in found]

    def rows_for_item(self, source: str, key: str) -> list[OutboxRow]:
        with self._db.read() as db:
            found = db.execute(
                "SELECT * FROM outbox WHERE item_key = %s AND source = %s ORDER BY id",
                (key, source),
            ).fetchall()
        return [rows.outbox_row(r) for r in found]

    def pending(self, now: datetime, *, channel: str | None = None) -> list[OutboxRow]:
        """Queued rows that may be tried now, in queue order; a later message
        only once every earlier one of its item is posted."""
        with self._db.read() as db:
            found = db.execute(
                "SELECT * FROM outbox AS o WHERE status = 'queued'"
                " AND (%(channel)s::text IS NULL OR channel = %(channel)s)"
                " AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s)"
                " AND NOT EXISTS (SELECT 1 FROM outbox AS p WHERE p.group_id = o.group_id"
                "   AND p.seq < o.seq AND p.status <> 'posted')"
                " ORDER BY id",
                {"channel": channel, "now": ts(now)},
            ).fetchall()
        return [rows.outbox_row(r) for r in found]

    def heads(self, now: datetime, *, channel: str) -> list[OutboxRow]:
        """What the delivery policy needs of ``channel``'s due queue, through
        indexes (the rows of :meth:`publisher.adapters.sqlite.Store.heads`):
        the queued later messages whose earlier ones are all posted (also
        while they wait for their retry: a started item holds the channel), and for
        each source with a queued first message its oldest, its oldest whose
        ``send_at`` has come, and those with the earliest ``send_at`` (past
        and future)."""
        due = "(next_attempt_at IS NULL OR next_attempt_at <= %(now)s)"
        policy_order = "coalesce(item_published, created_at), created_at, id"
        head = (
            "SELECT * FROM outbox WHERE channel = %(channel)s AND source = %(source)s"
            f" AND status = 'queued' AND seq = 0 AND {due}"
        )
        queries = (
            f"{head} ORDER BY {policy_order} LIMIT 1",
            f"{head} AND (send_at IS NULL OR send_at <= %(now)s) ORDER BY {policy_order} LIMIT 1",
            f"{head} AND send_at IS NOT NULL ORDER BY send_at, {policy_order} LIMIT 1",
            f"{head} AND send_at > %(now)s ORDER BY send_at, {policy_order} LIMIT 1",
        )
        args = {"channel": channel, "now": ts(now)}
        found: dict[int, rows.Row] = {}
        with self._db.read(snapshot=True) as db:
            for row in db.execute(
                "SELECT * FROM outbox AS o WHERE channel = %(channel)s AND status = 'queued'"
                " AND seq > 0"
                " AND NOT EXISTS (SELECT 1 FROM outbox AS p WHERE p.group_id = o.group_id"
                "   AND p.seq < o.seq AND p.status <> 'posted')",
                args,
            ).fetchall():
                found[row["id"]] = row
            sources = db.execute(
                "WITH RECURSIVE s(name) AS ("
                " SELECT min(source) FROM outbox"
                "  WHERE channel = %(channel)s AND status = 'queued' AND seq = 0"
                " UNION ALL SELECT (SELECT min(source) FROM outbox WHERE channel = %(channel)s"
                "  AND status = 'queued' AND seq = 0 AND source > s.name)"
                " FROM s WHERE s.name IS NOT NULL)"
                " SELECT name FROM s WHERE name IS NOT NULL",
                args,
            ).fetchall()
            for source in sources:
                for query in queries:
                    head_row = db.execute(query, {**args, "source": source["name"]}).fetchone()
                    if head_row is not None:
                        found[head_row["id"]] = head_row
        return [rows.outbox_row(found[i]) for i in sorted(found)]

    def next_retry(self, now: datetime, *, channel: str) -> OutboxRow | None:
        """The queued row of ``channel`` retried soonest after ``now``, if any."""
        with self._db.read() as db:
            row = db.execute(
                "SELECT * FROM outbox WHERE status = 'queued' AND next_attempt_at > %s"
                " AND channel = %s ORDER BY next_attempt_at, id LIMIT 1",
                (ts(now), channel),
            ).fetchone()
        return None if row is None else rows.outbox_row(row)

    def next_attempt(self, *, channel: str | None = None) -> datetime | None:
        with self._db.read() as db:
            row = db.execute(
                "SELECT min(next_attempt_at) AS at FROM outbox WHERE status = 'queued'"
                " AND (%(channel)s::text IS NULL OR channel = %(channel)s)",
                {"channel": channel},
            ).fetchone()
        return None if row is None else utc(row["at"])

    def outbox(
        self,
        status: OutboxStatus | None = None,
        limit: int = 100,
        *,
        source: str | None = None,
        channel: str | None = None,
        newest_first: bool = True,
    ) -> list[OutboxRow]:
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        order = "DESC" if newest_first else "ASC"
        with self._db.read() as db:
            found = db.execute(
                "SELECT * FROM outbox WHERE (%(status)s::text IS NULL OR status = %(status)s)"
                " AND (%(source)s::text IS NULL OR source = %(source)s)"
                " AND (%(channel)s::text IS NULL OR channel = %(channel)s)"
                f" ORDER BY id {order} LIMIT %(limit)s",
                {"status": status, "source": source, "channel": channel, "limit": limit},
            ).fetchall()
        return [rows.outbox_row(r) for r in found]

    def media_in_use(self, finished_after: datetime) -> set[str]:
        with self._db.read() as db:
            found = db.execute(
                "SELECT DISTINCT jsonb_array_elements_text(media) AS name FROM outbox"
                " WHERE media <> '[]'::jsonb AND (finished_at IS NULL OR finished_at >= %s)",
                (ts(finished_after),),
            ).fetchall()
        return {r["name"] for r in found}


def _finish(db: Conn, outbox_id: int, status: str, reason: str, now: datetime) -> None:
    db.execute(
        "UPDATE outbox SET status = %s, reason = %s, finished_at = %s,"
        " next_attempt_at = NULL WHERE id = %s",
        (status, reason, ts(now), outbox_id),
    )


def _queue_group(
    db: Conn, rendered: RenderedItem, now: datetime, outcome: str, channel: str
) -> list[int]:
    item = rendered.item
    decisions = [[d.code, d.detail] for d in rendered.decisions]
    files = [str(f) for f in item.files]
    ids: list[int] = []
    for decision in rendered.decisions:
        write_event(db, now, item.source, item.key, decision.code, decision.detail)
    group_id: int | None = None
    for seq, message in enumerate(rendered.messages):
        payload = {k: v for k, v in message.payload.items() if k not in ("auth_token", "from")}
        row = db.execute(
            "INSERT INTO outbox (channel, source, item_key, seq, group_id, payload, media,"
            " status, created_at, item_published, send_at, decisions, files)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, 'queued', %s, %s, %s, %s, %s) RETURNING id",
            (
                channel,
                item.source,
                item.key,
                seq,
                group_id,
                json(payload),
                json([m.name for m in message.media]),
                ts(now),
                opt_ts(item.published),
                opt_ts(item.send_at),
                json(decisions),
                json(files),
            ),
        ).fetchone()
        assert row is not None
        row_id = int(row["id"])
        if group_id is None:
            group_id = row_id
            db.execute("UPDATE outbox SET group_id = %s WHERE id = %s", (row_id, row_id))
        ids.append(row_id)
    kinds = ", ".join(m.type or "?" for m in rendered.messages)
    numbers = ", ".join(f"#{i}" for i in ids)
    where = "" if channel == "main" else f" to {channel}"
    write_event(
        db, now, item.source, item.key, outcome, f"{numbers} ({kinds}){where}", outbox_id=ids[0]
    )
    return ids
