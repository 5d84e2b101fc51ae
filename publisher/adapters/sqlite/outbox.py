"""The outbox: one row per message to post, and the transitions between
its statuses (each adds an event to the item's story).

Statuses and transitions::

    queued ──claim──▶ sending ──mark_posted──▶ posted
      ▲  ▲              │ ├─mark_retry──▶ queued (next_attempt_at)
      │  │              │ ├─mark_failed─▶ failed ──requeue──▶ queued
      │  │              │ └─mark_unknown▶ unknown ─requeue──▶ queued
      │  └──────────────┴── recover_after_crash: sending → unknown (or queued)
      └─ mark_skipped: queued / unknown / failed → skipped

Every transition is a durable write (synced before it returns, see
:mod:`publisher.adapters.sqlite.db`): a post is ``sending`` on disk before
its request goes out.

When a message of a split item fails or is skipped, the item's later
messages still waiting are skipped too (``held_by`` names the one that
caused it) and :meth:`SQLiteOutbox.requeue` of that message brings them
back. :meth:`SQLiteOutbox.pending` never offers a later message before the
earlier ones of its item are posted. A status change that does not start
from an allowed status is a :class:`TransitionError`, and changes nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from publisher.adapters.sqlite import rows
from publisher.adapters.sqlite.db import Database
from publisher.adapters.sqlite.history import write_event
from publisher.adapters.sqlite.rows import opt_dt, opt_text, to_json, to_text
from publisher.adapters.sqlite.seen import mark_seen_in, upsert_seen
from publisher.adapters.sqlite.sources import ensure_source
from publisher.core.errors import StoreError, TransitionError
from publisher.core.items import RenderedItem
from publisher.core.records import STATUSES, OutboxRow, OutboxStatus


def _fetch(db: sqlite3.Connection, outbox_id: int) -> OutboxRow:
    row = db.execute("SELECT * FROM outbox WHERE id = ?", (outbox_id,)).fetchone()
    if row is None:
        raise StoreError(f"no post #{outbox_id}; `status` lists the posts and their ids")
    return rows.outbox_row(row)


def _check(row: OutboxRow, allowed: tuple[str, ...], action: str) -> None:
    if row.status not in allowed:
        raise TransitionError(
            f"post #{row.id} is {row.status}; only {' or '.join(allowed)} posts can be {action}"
        )


def _hold_rest(db: sqlite3.Connection, row: OutboxRow, now: datetime, why: str) -> list[int]:
    """Skip the item's later messages that are still waiting."""
    later = db.execute(
        "SELECT id FROM outbox WHERE group_id = ? AND seq > ?"
        " AND status IN ('queued', 'unknown') ORDER BY seq",
        (row.group_id, row.seq),
    ).fetchall()
    ids = [r["id"] for r in later]
    reason = f"not sent: message #{row.id} of this item was {why}"
    for later_id in ids:
        db.execute(
            "UPDATE outbox SET status = 'skipped', reason = ?, held_by = ?,"
            " finished_at = ?, next_attempt_at = NULL WHERE id = ?",
            (reason, row.id, to_text(now), later_id),
        )
        write_event(db, now, row.source, row.item_key, "skipped", reason, later_id)
    return ids


def _queued_already(
    db: sqlite3.Connection, source: str, key: str, content_hash: str, outcome: str
) -> set[str]:
    """The channels this item (this content) is queued for already."""
    seen = db.execute(
        "SELECT content_hash, outcome FROM seen WHERE source = ? AND key = ?", (source, key)
    ).fetchone()
    if seen is None or seen["content_hash"] != content_hash or seen["outcome"] != outcome:
        return set()
    found = db.execute(
        "SELECT DISTINCT channel FROM outbox WHERE source = ? AND item_key = ?", (source, key)
    ).fetchall()
    return {r[0] for r in found}


class SQLiteOutbox:
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
        """Mark the item seen, queue one outbox row per message for ``channel``
        and write its events, all in one transaction. Returns the new ids.

        A refused item (or one without messages) is only marked seen, with
        outcome ``refused``, and gives ``[]``.
        """
        return self.queue_routes({channel: rendered}, now, outcome).get(channel, [])

    def queue_routes(
        self, routes: Mapping[str, RenderedItem], now: datetime, outcome: str = "queued"
    ) -> dict[str, list[int]]:
        """One item to several channels (each its own rendering of it), in one
        transaction: marked seen once, one group of rows per channel. Returns
        the new ids by channel. A channel whose rendering was refused gets none.

        Inside the transaction it checks again that the item (same key, same
        content) is not queued for a channel already: a poll planned on an
        older snapshot (another process queued it meanwhile) queues nothing twice.
        """
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
            done = _queued_already(db, item.source, item.key, item.content_hash, outcome)
            usable = {c: r for c, r in usable.items() if c not in done}
            if not usable:
                return {}
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
                result[channel] = self._queue_group(db, rendered, now, outcome, channel)
        return result

    def _queue_group(
        self,
        db: sqlite3.Connection,
        rendered: RenderedItem,
        now: datetime,
        outcome: str,
        channel: str,
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
            cursor = db.execute(
                "INSERT INTO outbox (channel, source, item_key, seq, group_id, payload, media,"
                " status, created_at, item_published, send_at, decisions, files)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
                (
                    channel,
                    item.source,
                    item.key,
                    seq,
                    group_id,
                    to_json(payload),
                    to_json([m.name for m in message.media]),
                    to_text(now),
                    opt_text(item.published),
                    opt_text(item.send_at),
                    to_json(decisions),
                    to_json(files),
                ),
            )
            row_id = cursor.lastrowid
            assert row_id is not None
            if group_id is None:
                group_id = row_id
                db.execute("UPDATE outbox SET group_id = ? WHERE id = ?", (row_id, row_id))
            ids.append(row_id)
        kinds = ", ".join(m.type or "?" for m in rendered.messages)
        numbers = ", ".join(f"#{i}" for i in ids)
        where = "" if channel == "main" else f" to {channel}"
        write_event(
            db,
            now,
            item.source,
            item.key,
            outcome,
            f"{numbers} ({kinds}){where}",
            outbox_id=ids[0],
        )
        return ids

    # ---- outbox transitions

    def claim(self, outbox_id: int, now: datetime) -> bool:
        """queued → sending, one more attempt. False if it was not queued."""
        with self._db.write(durable=True) as db:
            row = _fetch(db, outbox_id)
            if row.status != "queued":
                return False
            db.execute(
                "UPDATE outbox SET status = 'sending', attempts = attempts + 1,"
                " next_attempt_at = NULL WHERE id = ? AND status = 'queued'",
                (outbox_id,),
            )
            detail = f"attempt {row.attempts + 1}"
            write_event(db, now, row.source, row.item_key, "sending", detail, outbox_id)
        return True

    def mark_posted(self, outbox_id: int, token: int | str | None, now: datetime) -> None:
        """sending (or unknown, confirmed later) → posted, with Viber's message_token."""
        exact = None if token is None else int(token)
        with self._db.write(durable=True) as db:
            row = _fetch(db, outbox_id)
            _check(row, ("sending", "unknown"), "marked posted")
            db.execute(
                "UPDATE outbox SET status = 'posted', message_token = ?, posted_at = ?,"
                " finished_at = ?, reason = NULL, next_attempt_at = NULL WHERE id = ?",
                (None if exact is None else str(exact), to_text(now), to_text(now), outbox_id),
            )
            detail = f"token={exact}" if exact is not None else "confirmed without a token"
            write_event(db, now, row.source, row.item_key, "posted", detail, outbox_id)

    def mark_failed(self, outbox_id: int, reason: str, now: datetime) -> list[int]:
        """→ failed (from sending, queued or unknown). The item's later
        messages still waiting are skipped; their ids are returned."""
        with self._db.write(durable=True) as db:
            row = _fetch(db, outbox_id)
            _check(row, ("sending", "queued", "unknown"), "marked failed")
            db.execute(
                "UPDATE outbox SET status = 'failed', reason = ?, finished_at = ?,"
                " next_attempt_at = NULL WHERE id = ?",
                (reason, to_text(now), outbox_id),
            )
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
        """sending → queued, not to be tried before ``next_attempt_at``.
        ``refund``: the attempt does not count (it failed for a reason
        outside the post: token refused, webhook not set)."""
        with self._db.write(durable=True) as db:
            row = _fetch(db, outbox_id)
            _check(row, ("sending",), "retried")
            db.execute(
                "UPDATE outbox SET status = 'queued', reason = ?, next_attempt_at = ?,"
                " attempts = max(attempts - ?, 0) WHERE id = ?",
                (reason, to_text(next_attempt_at), int(refund), outbox_id),
            )
            detail = f"{reason}; next attempt after {to_text(next_attempt_at)}"
            write_event(db, now, row.source, row.item_key, "retry", detail, outbox_id)

    def mark_unknown(self, outbox_id: int, reason: str, now: datetime) -> None:
        """sending → unknown: it may or may not be out; an operator decides."""
        with self._db.write(durable=True) as db:
            row = _fetch(db, outbox_id)
            _check(row, ("sending",), "marked unknown")
            db.execute(
                "UPDATE outbox SET status = 'unknown', reason = ? WHERE id = ?",
                (reason, outbox_id),
            )
            write_event(db, now, row.source, row.item_key, "unknown", reason, outbox_id)

    def mark_skipped(self, outbox_id: int, reason: str, now: datetime) -> list[int]:
        """queued / unknown / failed → skipped (expired, or the operator's
        ``skip``). The item's later messages are skipped too; their ids are returned."""
        with self._db.write(durable=True) as db:
            row = _fetch(db, outbox_id)
            _check(row, ("queued", "unknown", "failed"), "skipped")
            db.execute(
                "UPDATE outbox SET status = 'skipped', reason = ?, finished_at = ?,"
                " next_attempt_at = NULL WHERE id = ?",
                (reason, to_text(now), outbox_id),
            )
            write_event(db, now, row.source, row.item_key, "skipped", reason, outbox_id)
            return _hold_rest(db, row, now, f"skipped ({reason})")

    def requeue(self, outbox_id: int, now: datetime, detail: str = "by the operator") -> list[int]:
        """unknown / failed → queued (the ``retry ID`` command), attempts from
        zero; the item's messages skipped because of it come back too.
        Returns every id queued again."""
        with self._db.write(durable=True) as db:
            row = _fetch(db, outbox_id)
            _check(row, ("unknown", "failed"), "retried")
            held = [
                r["id"]
                for r in db.execute(
                    "SELECT id FROM outbox WHERE held_by = ? AND status = 'skipped' ORDER BY id",
                    (outbox_id,),
                ).fetchall()
            ]
            for requeued in (outbox_id, *held):
                db.execute(
                    "UPDATE outbox SET status = 'queued', attempts = 0, reason = NULL,"
                    " next_attempt_at = NULL, finished_at = NULL, held_by = NULL WHERE id = ?",
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
        interrupted. It becomes ``unknown`` (hold) or ``queued`` again (retry).
        Returns their ids."""
        reason = "interrupted while sending: the post may or may not be out"
        with self._db.write(durable=True) as db:
            interrupted = [
                rows.outbox_row(r)
                for r in db.execute(
                    "SELECT * FROM outbox WHERE status = 'sending'"
                    " AND (? IS NULL OR channel = ?) ORDER BY id",
                    (channel, channel),
                ).fetchall()
            ]
            for row in interrupted:
                if on_unknown == "retry":
                    db.execute(
                        "UPDATE outbox SET status = 'queued', reason = ? WHERE id = ?",
                        (reason, row.id),
                    )
                    event = "retried"
                else:
                    db.execute(
                        "UPDATE outbox SET status = 'unknown', reason = ? WHERE id = ?",
                        (reason, row.id),
                    )
                    event = "unknown"
                write_event(db, now, row.source, row.item_key, event, reason, row.id)
        return [row.id for row in interrupted]

    # ---- queries

    def get(self, outbox_id: int) -> OutboxRow | None:
        with self._db.read() as db:
            row = db.execute("SELECT * FROM outbox WHERE id = ?", (outbox_id,)).fetchone()
        return None if row is None else rows.outbox_row(row)

    def item_rows(self, group_id: int) -> list[OutboxRow]:
        """All messages of one queued item, in order."""
        with self._db.read() as db:
            found = db.execute(
                "SELECT * FROM outbox WHERE group_id = ? ORDER BY seq", (group_id,)
            ).fetchall()
        return [rows.outbox_row(r) for r in found]

    def rows_for_item(self, source: str, key: str) -> list[OutboxRow]:
        """Every message ever queued for item ``key`` of ``source`` (an edited
        item reposted has more than one group), in queue order."""
        with self._db.read() as db:
            found = db.execute(
                "SELECT * FROM outbox WHERE item_key = ? AND source = ? ORDER BY id",
                (key, source),
            ).fetchall()
        return [rows.outbox_row(r) for r in found]

    def pending(self, now: datetime, *, channel: str | None = None) -> list[OutboxRow]:
        """Queued rows (of ``channel``, or of all) that may be tried now, in
        queue order; a later message only once every earlier one of its item
        is posted."""
        with self._db.read() as db:
            found = db.execute(
                "SELECT * FROM outbox AS o WHERE status = 'queued'"
                " AND (? IS NULL OR channel = ?)"
                " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
                " AND NOT EXISTS (SELECT 1 FROM outbox AS p WHERE p.group_id = o.group_id"
                "   AND p.seq < o.seq AND p.status != 'posted')"
                " ORDER BY id",
                (channel, channel, to_text(now)),
            ).fetchall()
        return [rows.outbox_row(r) for r in found]

    def heads(self, now: datetime, *, channel: str) -> list[OutboxRow]:
        """What :func:`publisher.core.policy.next_post` needs of ``channel``'s
        due queue (the rows :meth:`pending` gives, and the rest of a started
        item waiting for its retry), through indexes only.

        - every queued later message whose earlier ones are all posted (the
          rest of a started item; few, but read by scanning the queued later
          messages), *also while it waits for its retry* (``next_attempt_at``
          in the future): a started item holds the channel until its rest is
          out, skipped or failed (the policy waits for it, rule 1);
        - for each source with a queued first message, in the policy's order
          (published time, else queuing time, then id): its oldest, its oldest
          whose ``send_at`` has come (or has none), and those with the
          earliest ``send_at`` (past and future).

        Each source's queue beyond these is never read: the policy's verdict
        over them is its verdict over the whole due queue (rules 2-4 look at
        each source's oldest eligible item, tests/test_queue_heads.py).
        """
        at = to_text(now)
        due = "(next_attempt_at IS NULL OR next_attempt_at <= ?)"
        order = "ORDER BY coalesce(item_published, created_at), created_at, id LIMIT 1"
        head = (
            "SELECT * FROM outbox WHERE channel = ? AND source = ? AND status = 'queued'"
            f" AND seq = 0 AND {due}"
        )
        found: dict[int, sqlite3.Row] = {}
        with self._db.read(snapshot=True) as db:
            for row in db.execute(
                "SELECT * FROM outbox AS o INDEXED BY outbox_rest"
                " WHERE channel = ? AND status = 'queued' AND seq > 0"
                " AND NOT EXISTS (SELECT 1 FROM outbox AS p WHERE p.group_id = o.group_id"
                "   AND p.seq < o.seq AND p.status != 'posted')",
                (channel,),
            ):
                found[row["id"]] = row
            sources = [
                r[0]
                for r in db.execute(
                    "WITH RECURSIVE s(name) AS ("
                    " SELECT min(source) FROM outbox"
                    "  WHERE channel = ?1 AND status = 'queued' AND seq = 0"
                    " UNION ALL SELECT (SELECT min(source) FROM outbox"
                    "  WHERE channel = ?1 AND status = 'queued' AND seq = 0 AND source > s.name)"
                    " FROM s WHERE s.name IS NOT NULL)"
                    " SELECT name FROM s WHERE name IS NOT NULL",
                    (channel,),
                )
            ]
            for source in sources:
                args = (channel, source, at)
                queries = (
                    (f"{head} {order}", args),
                    (f"{head} AND (send_at IS NULL OR send_at <= ?) {order}", (*args, at)),
                    (
                        f"{head} AND send_at IS NOT NULL ORDER BY send_at,"
                        " coalesce(item_published, created_at), created_at, id LIMIT 1",
                        args,
                    ),
                    (
                        f"{head} AND send_at > ? ORDER BY send_at,"
                        " coalesce(item_published, created_at), created_at, id LIMIT 1",
                        (*args, at),
                    ),
                )
                for sql, params in queries:
                    row = db.execute(sql, params).fetchone()
                    if row is not None:
                        found[row["id"]] = row
        return [rows.outbox_row(found[i]) for i in sorted(found)]

    def next_retry(self, now: datetime, *, channel: str) -> OutboxRow | None:
        """The queued row of ``channel`` retried soonest after ``now`` (the
        first queued of those at the same time), if any."""
        with self._db.read() as db:
            row = db.execute(
                "SELECT * FROM outbox WHERE status = 'queued' AND next_attempt_at > ?"
                " AND channel = ? ORDER BY next_attempt_at, id LIMIT 1",
                (to_text(now), channel),
            ).fetchone()
        return None if row is None else rows.outbox_row(row)

    def next_attempt(self, *, channel: str | None = None) -> datetime | None:
        """The earliest ``next_attempt_at`` of a queued row in back-off."""
        with self._db.read() as db:
            row = db.execute(
                "SELECT min(next_attempt_at) FROM outbox WHERE status = 'queued'"
                " AND (? IS NULL OR channel = ?)",
                (channel, channel),
            ).fetchone()
        return opt_dt(row[0])

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
                "SELECT * FROM outbox WHERE (? IS NULL OR status = ?)"
                " AND (? IS NULL OR source = ?) AND (? IS NULL OR channel = ?)"
                f" ORDER BY id {order} LIMIT ?",
                (status, status, source, source, channel, channel, limit),
            ).fetchall()
        return [rows.outbox_row(r) for r in found]

    def media_in_use(self, finished_after: datetime) -> set[str]:
        """Media names referenced by rows not finished, or finished at or
        after ``finished_after`` (now minus the media retention)."""
        with self._db.read() as db:
            found = db.execute(
                "SELECT media FROM outbox WHERE media != '[]'"
                " AND (finished_at IS NULL OR finished_at >= ?)",
                (to_text(finished_after),),
            ).fetchall()
        names: set[str] = set()
        for row in found:
            names.update(json.loads(row[0]))
        return names
