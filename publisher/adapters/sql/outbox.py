"""The outbox: one row per message to post, and the transitions between
its statuses (each adds an event to the item's story).

Statuses and transitions::

    queued ──claim──▶ sending ──mark_posted──▶ posted
      ▲  ▲              │ ├─mark_retry──▶ queued (next_attempt_at)
      │  │              │ ├─mark_failed─▶ failed ──requeue──▶ queued
      │  │              │ └─mark_unknown▶ unknown ─requeue──▶ queued
      │  └──────────────┴── recover_after_crash: sending → unknown (or queued)
      └─ mark_skipped: queued / unknown / failed → skipped

Every transition is a durable write (``write(durable=True)``: on disk
before it returns, see each backend's ``db.py``), so a post is ``sending``
on disk before its request goes out; it reads the rows it changes with the
dialect's row lock (PostgreSQL's ``FOR UPDATE``: two threads or processes
changing one post wait for each other and the second sees the first's
result; SQLite's write transaction holds the whole file).

When a message of a split item fails or is skipped, the item's later
messages still waiting are skipped too (``held_by`` names the one that
caused it) and :meth:`SQLOutbox.requeue` of that message brings them back.
:meth:`SQLOutbox.pending` never offers a later message before the earlier
ones of its item are posted. A status change that does not start from an
allowed status is a :class:`TransitionError`, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal, NamedTuple

from publisher.adapters.sql import rows
from publisher.adapters.sql.dialect import Connection, Database, Dialect, utc_text
from publisher.adapters.sql.history import write_event
from publisher.adapters.sql.sources import ensure_source
from publisher.core.errors import StoreError, TransitionError
from publisher.core.items import RenderedItem
from publisher.core.records import STATUSES, OutboxRow, OutboxStatus, SeenItem

#: Rows of ``channel``, or of every channel when it is None (two parameters).
_OF_CHANNEL = "(CAST(? AS TEXT) IS NULL OR channel = ?)"
#: No earlier message of the row's item (``o``) is still to be posted.
_EARLIER_POSTED = (
    "NOT EXISTS (SELECT 1 FROM outbox AS p WHERE p.group_id = o.group_id"
    "   AND p.seq < o.seq AND p.status != 'posted')"
)
#: The delivery policy's order of an item's first messages.
_POLICY_ORDER = "coalesce(item_published, created_at), created_at, id"


def _fetch(d: Dialect, db: Connection, outbox_id: int) -> OutboxRow:
    """The row, locked (where the dialect locks rows) until the transaction ends."""
    query = f"SELECT * FROM outbox WHERE id = ?{d.for_update}"
    row = d.execute(db, query, (outbox_id,)).fetchone()
    if row is None:
        raise StoreError(f"no post #{outbox_id}; `status` lists the posts and their ids")
    return rows.outbox_row(d, row)


def _check(row: OutboxRow, allowed: tuple[str, ...], action: str) -> None:
    if row.status not in allowed:
        raise TransitionError(
            f"post #{row.id} is {row.status}; only {' or '.join(allowed)} posts can be {action}"
        )


def _hold_rest(d: Dialect, db: Connection, row: OutboxRow, now: datetime, why: str) -> list[int]:
    """Skip the item's later messages that are still waiting."""
    later = d.execute(
        db,
        "SELECT id FROM outbox WHERE group_id = ? AND seq > ?"
        f" AND status IN ('queued', 'unknown') ORDER BY seq{d.for_update}",
        (row.group_id, row.seq),
    ).fetchall()
    ids = [int(r["id"]) for r in later]
    reason = f"not sent: message #{row.id} of this item was {why}"
    for later_id in ids:
        d.execute(
            db,
            "UPDATE outbox SET status = 'skipped', reason = ?, held_by = ?,"
            " finished_at = ?, next_attempt_at = NULL WHERE id = ?",
            (reason, row.id, d.ts(now), later_id),
        )
        write_event(d, db, now, row.source, row.item_key, "skipped", reason, later_id)
    return ids


def _finish(
    d: Dialect, db: Connection, outbox_id: int, status: str, reason: str, now: datetime
) -> None:
    d.execute(
        db,
        "UPDATE outbox SET status = ?, reason = ?, finished_at = ?,"
        " next_attempt_at = NULL WHERE id = ?",
        (status, reason, d.ts(now), outbox_id),
    )


def _set_status(d: Dialect, db: Connection, outbox_id: int, status: str, reason: str) -> None:
    d.execute(
        db, "UPDATE outbox SET status = ?, reason = ? WHERE id = ?", (status, reason, outbox_id)
    )


def _queued_already(
    d: Dialect, db: Connection, source: str, key: str, content_hash: str, outcome: str
) -> set[str]:
    """The channels this item (this content) is queued for already."""
    seen = d.execute(
        db, "SELECT content_hash, outcome FROM seen WHERE source = ? AND key = ?", (source, key)
    ).fetchone()
    if seen is None or seen["content_hash"] != content_hash or seen["outcome"] != outcome:
        return set()
    found = d.execute(
        db,
        "SELECT DISTINCT channel FROM outbox WHERE source = ? AND item_key = ?",
        (source, key),
    ).fetchall()
    return {r["channel"] for r in found}


def _queue_group(
    d: Dialect, db: Connection, rendered: RenderedItem, now: datetime, outcome: str, channel: str
) -> list[int]:
    item = rendered.item
    decisions = [[c.code, c.detail] for c in rendered.decisions]
    files = [str(f) for f in item.files]
    ids: list[int] = []
    for decision in rendered.decisions:
        write_event(d, db, now, item.source, item.key, decision.code, decision.detail)
    group_id: int | None = None
    for seq, message in enumerate(rendered.messages):
        payload = {k: v for k, v in message.payload.items() if k not in ("auth_token", "from")}
        row_id = d.insert(
            db,
            "INSERT INTO outbox (channel, source, item_key, seq, group_id, payload, media,"
            " status, created_at, item_published, send_at, decisions, files)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
            (
                channel,
                item.source,
                item.key,
                seq,
                group_id,
                d.json(payload),
                d.json([m.name for m in message.media]),
                d.ts(now),
                d.opt_ts(item.published),
                d.opt_ts(item.send_at),
                d.json(decisions),
                d.json(files),
            ),
        )
        if group_id is None:
            group_id = row_id
            d.execute(db, "UPDATE outbox SET group_id = ? WHERE id = ?", (row_id, row_id))
        ids.append(row_id)
    kinds = ", ".join(m.type or "?" for m in rendered.messages)
    numbers = ", ".join(f"#{i}" for i in ids)
    where = "" if channel == "main" else f" to {channel}"
    detail = f"{numbers} ({kinds}){where}"
    write_event(d, db, now, item.source, item.key, outcome, detail, outbox_id=ids[0])
    return ids


class SeenWrites(NamedTuple):
    """A backend's writes of seen items, inside the caller's transaction
    (its ``seen`` module: ``upsert_seen``, ``mark_seen_in``)."""

    #: ``(db, source, key, content_hash, now, outcome)``: remember the item
    #: as seen now; how it was seen before, if it was.
    upsert: Callable[..., SeenItem | None]
    #: ``(db, source, key, content_hash, now, outcome, detail)``: remember an
    #: item that is not queued, with an event ``outcome: detail``.
    mark: Callable[..., None]


class SQLOutbox:
    """:class:`publisher.ports.Outbox` on the ``outbox`` table.

    A backend gives it its dialect and its seen items' writes."""

    _db: Database
    _dialect: ClassVar[Dialect]
    _seen: ClassVar[SeenWrites]

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
        d = self._dialect
        usable = {c: r for c, r in routes.items() if r.refused is None and r.messages}
        if not usable:
            first = next(iter(routes.values()))
            item = first.item
            reason = first.refused or "nothing to post"
            with self._db.write() as db:
                self._seen.mark(
                    db, item.source, item.key, item.content_hash, now, "refused", reason
                )
            return {}
        result: dict[str, list[int]] = {}
        with self._db.write() as db:
            item = next(iter(usable.values())).item
            done = _queued_already(d, db, item.source, item.key, item.content_hash, outcome)
            usable = {c: r for c, r in usable.items() if c not in done}
            if not usable:
                return {}
            ensure_source(d, db, item.source)
            before = self._seen.upsert(db, item.source, item.key, item.content_hash, now, outcome)
            if before is not None and before.content_hash != item.content_hash:
                seen_detail = "content changed since first seen"
            elif before is not None:
                seen_detail = "seen again"
            else:
                seen_detail = item.title[:200]
            write_event(d, db, now, item.source, item.key, "seen", seen_detail)
            for channel, rendered in usable.items():
                result[channel] = _queue_group(d, db, rendered, now, outcome, channel)
        return result

    # ---- outbox transitions

    def claim(self, outbox_id: int, now: datetime) -> bool:
        """queued → sending, one more attempt. False if it was not queued."""
        d = self._dialect
        with self._db.write(durable=True) as db:
            row = _fetch(d, db, outbox_id)
            if row.status != "queued":
                return False
            d.execute(
                db,
                "UPDATE outbox SET status = 'sending', attempts = attempts + 1,"
                " next_attempt_at = NULL WHERE id = ? AND status = 'queued'",
                (outbox_id,),
            )
            detail = f"attempt {row.attempts + 1}"
            write_event(d, db, now, row.source, row.item_key, "sending", detail, outbox_id)
        return True

    def mark_posted(self, outbox_id: int, token: int | str | None, now: datetime) -> None:
        """sending (or unknown, confirmed later) → posted, with Viber's message_token."""
        d = self._dialect
        exact = None if token is None else int(token)
        with self._db.write(durable=True) as db:
            row = _fetch(d, db, outbox_id)
            _check(row, ("sending", "unknown"), "marked posted")
            d.execute(
                db,
                "UPDATE outbox SET status = 'posted', message_token = ?, posted_at = ?,"
                " finished_at = ?, reason = NULL, next_attempt_at = NULL WHERE id = ?",
                (None if exact is None else str(exact), d.ts(now), d.ts(now), outbox_id),
            )
            detail = f"token={exact}" if exact is not None else "confirmed without a token"
            write_event(d, db, now, row.source, row.item_key, "posted", detail, outbox_id)

    def mark_failed(self, outbox_id: int, reason: str, now: datetime) -> list[int]:
        """→ failed (from sending, queued or unknown). The item's later
        messages still waiting are skipped; their ids are returned."""
        d = self._dialect
        with self._db.write(durable=True) as db:
            row = _fetch(d, db, outbox_id)
            _check(row, ("sending", "queued", "unknown"), "marked failed")
            _finish(d, db, outbox_id, "failed", reason, now)
            write_event(d, db, now, row.source, row.item_key, "failed", reason, outbox_id)
            return _hold_rest(d, db, row, now, f"failed ({reason})")

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
        d = self._dialect
        with self._db.write(durable=True) as db:
            row = _fetch(d, db, outbox_id)
            _check(row, ("sending",), "retried")
            d.execute(
                db,
                "UPDATE outbox SET status = 'queued', reason = ?, next_attempt_at = ?,"
                " attempts = CASE WHEN attempts > ? THEN attempts - ? ELSE 0 END WHERE id = ?",
                (reason, d.ts(next_attempt_at), int(refund), int(refund), outbox_id),
            )
            detail = f"{reason}; next attempt after {utc_text(next_attempt_at)}"
            write_event(d, db, now, row.source, row.item_key, "retry", detail, outbox_id)

    def mark_unknown(self, outbox_id: int, reason: str, now: datetime) -> None:
        """sending → unknown: it may or may not be out; an operator decides."""
        d = self._dialect
        with self._db.write(durable=True) as db:
            row = _fetch(d, db, outbox_id)
            _check(row, ("sending",), "marked unknown")
            _set_status(d, db, outbox_id, "unknown", reason)
            write_event(d, db, now, row.source, row.item_key, "unknown", reason, outbox_id)

    def mark_skipped(self, outbox_id: int, reason: str, now: datetime) -> list[int]:
        """queued / unknown / failed → skipped (expired, or the operator's
        ``skip``). The item's later messages are skipped too; their ids are returned."""
        d = self._dialect
        with self._db.write(durable=True) as db:
            row = _fetch(d, db, outbox_id)
            _check(row, ("queued", "unknown", "failed"), "skipped")
            _finish(d, db, outbox_id, "skipped", reason, now)
            write_event(d, db, now, row.source, row.item_key, "skipped", reason, outbox_id)
            return _hold_rest(d, db, row, now, f"skipped ({reason})")

    def requeue(self, outbox_id: int, now: datetime, detail: str = "by the operator") -> list[int]:
        """unknown / failed → queued (the ``retry ID`` command), attempts from
        zero; the item's messages skipped because of it come back too.
        Returns every id queued again."""
        d = self._dialect
        with self._db.write(durable=True) as db:
            row = _fetch(d, db, outbox_id)
            _check(row, ("unknown", "failed"), "retried")
            held = [
                int(r["id"])
                for r in d.execute(
                    db,
                    "SELECT id FROM outbox WHERE held_by = ? AND status = 'skipped'"
                    f" ORDER BY id{d.for_update}",
                    (outbox_id,),
                ).fetchall()
            ]
            for requeued in (outbox_id, *held):
                d.execute(
                    db,
                    "UPDATE outbox SET status = 'queued', attempts = 0, reason = NULL,"
                    " next_attempt_at = NULL, finished_at = NULL, held_by = NULL WHERE id = ?",
                    (requeued,),
                )
                write_event(d, db, now, row.source, row.item_key, "retried", detail, requeued)
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
        d = self._dialect
        reason = "interrupted while sending: the post may or may not be out"
        status, event = ("queued", "retried") if on_unknown == "retry" else ("unknown", "unknown")
        with self._db.write(durable=True) as db:
            interrupted = [
                rows.outbox_row(d, r)
                for r in d.execute(
                    db,
                    f"SELECT * FROM outbox WHERE status = 'sending' AND {_OF_CHANNEL}"
                    f" ORDER BY id{d.for_update}",
                    (channel, channel),
                ).fetchall()
            ]
            for row in interrupted:
                _set_status(d, db, row.id, status, reason)
                write_event(d, db, now, row.source, row.item_key, event, reason, row.id)
        return [row.id for row in interrupted]

    # ---- queries

    def get(self, outbox_id: int) -> OutboxRow | None:
        d = self._dialect
        with self._db.read() as db:
            row = d.execute(db, "SELECT * FROM outbox WHERE id = ?", (outbox_id,)).fetchone()
        return None if row is None else rows.outbox_row(d, row)

    def item_rows(self, group_id: int) -> list[OutboxRow]:
        """All messages of one queued item, in order."""
        return self._rows("SELECT * FROM outbox WHERE group_id = ? ORDER BY seq", (group_id,))

    def rows_for_item(self, source: str, key: str) -> list[OutboxRow]:
        """Every message ever queued for item ``key`` of ``source`` (an edited
        item reposted has more than one group), in queue order."""
        return self._rows(
            "SELECT * FROM outbox WHERE item_key = ? AND source = ? ORDER BY id", (key, source)
        )

    def pending(self, now: datetime, *, channel: str | None = None) -> list[OutboxRow]:
        """Queued rows (of ``channel``, or of all) that may be tried now, in
        queue order; a later message only once every earlier one of its item
        is posted."""
        return self._rows(
            f"SELECT * FROM outbox AS o WHERE status = 'queued' AND {_OF_CHANNEL}"
            " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
            f" AND {_EARLIER_POSTED} ORDER BY id",
            (channel, channel, self._dialect.ts(now)),
        )

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
        d = self._dialect
        at = d.ts(now)
        head = (
            "SELECT * FROM outbox WHERE channel = ? AND source = ? AND status = 'queued'"
            " AND seq = 0 AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
        )
        queries = (
            (f"{head} ORDER BY {_POLICY_ORDER} LIMIT 1", False),
            (
                f"{head} AND (send_at IS NULL OR send_at <= ?) ORDER BY {_POLICY_ORDER} LIMIT 1",
                True,
            ),
            (f"{head} AND send_at IS NOT NULL ORDER BY send_at, {_POLICY_ORDER} LIMIT 1", False),
            (f"{head} AND send_at > ? ORDER BY send_at, {_POLICY_ORDER} LIMIT 1", True),
        )
        found: dict[int, Any] = {}
        with self._db.read(snapshot=True) as db:
            for row in d.execute(
                db,
                f"SELECT * FROM outbox AS o{d.index('outbox_rest')}"
                f" WHERE channel = ? AND status = 'queued' AND seq > 0 AND {_EARLIER_POSTED}",
                (channel,),
            ).fetchall():
                found[row["id"]] = row
            sources = [
                r["name"]
                for r in d.execute(
                    db,
                    "WITH RECURSIVE s(name) AS ("
                    " SELECT min(source) FROM outbox"
                    "  WHERE channel = ? AND status = 'queued' AND seq = 0"
                    " UNION ALL SELECT (SELECT min(source) FROM outbox"
                    "  WHERE channel = ? AND status = 'queued' AND seq = 0 AND source > s.name)"
                    " FROM s WHERE s.name IS NOT NULL)"
                    " SELECT name FROM s WHERE name IS NOT NULL",
                    (channel, channel),
                ).fetchall()
            ]
            for source in sources:
                for query, until_now in queries:
                    params = (channel, source, at, at) if until_now else (channel, source, at)
                    row = d.execute(db, query, params).fetchone()
                    if row is not None:
                        found[row["id"]] = row
        return [rows.outbox_row(d, found[i]) for i in sorted(found)]

    def next_retry(self, now: datetime, *, channel: str) -> OutboxRow | None:
        """The queued row of ``channel`` retried soonest after ``now`` (the
        first queued of those at the same time), if any."""
        found = self._rows(
            "SELECT * FROM outbox WHERE status = 'queued' AND next_attempt_at > ?"
            " AND channel = ? ORDER BY next_attempt_at, id LIMIT 1",
            (self._dialect.ts(now), channel),
        )
        return found[0] if found else None

    def next_attempt(self, *, channel: str | None = None) -> datetime | None:
        """The earliest ``next_attempt_at`` of a queued row in back-off."""
        d = self._dialect
        with self._db.read() as db:
            row = d.execute(
                db,
                "SELECT min(next_attempt_at) AS at FROM outbox WHERE status = 'queued'"
                f" AND {_OF_CHANNEL}",
                (channel, channel),
            ).fetchone()
        return None if row is None else d.opt_dt(row["at"])

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
        return self._rows(
            "SELECT * FROM outbox WHERE (CAST(? AS TEXT) IS NULL OR status = ?)"
            f" AND (CAST(? AS TEXT) IS NULL OR source = ?) AND {_OF_CHANNEL}"
            f" ORDER BY id {order} LIMIT ?",
            (status, status, source, source, channel, channel, limit),
        )

    def media_in_use(self, finished_after: datetime) -> set[str]:
        """Media names referenced by rows not finished, or finished at or
        after ``finished_after`` (now minus the media retention)."""
        d = self._dialect
        with self._db.read() as db:
            found = d.execute(
                db,
                "SELECT media FROM outbox WHERE media <> '[]'"
                " AND (finished_at IS NULL OR finished_at >= ?)",
                (d.ts(finished_after),),
            ).fetchall()
        names: set[str] = set()
        for row in found:
            names.update(d.unjson(row["media"]))
        return names

    def _rows(self, query: str, params: tuple[Any, ...]) -> list[OutboxRow]:
        d = self._dialect
        with self._db.read() as db:
            found = d.execute(db, query, params).fetchall()
        return [rows.outbox_row(d, r) for r in found]
