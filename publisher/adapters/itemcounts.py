"""What became of each item of a source, counted once per item: the query
both stores run (SQLite and PostgreSQL understand the same SQL here).

An item is a key the source offered (``seen``), or one that still has posts
in the outbox after ``remember`` forgot its key. It is counted in exactly
one of :data:`ITEM_STATES`, so per source ``seen`` is their sum:

- an item that has posts (one or more messages, to one or more channels) is
  in its least finished state: ``unknown``, ``sending``, ``queued``, then
  ``failed``, ``posted``, ``expired`` (skipped by ``max_age``), ``skipped``;
- an item that never reached the outbox is ``failed`` when it was refused
  (a folder picture Viber would not take), else ``skipped`` (filtered,
  remembered by the first poll's backfill);
- an item queued once whose posts were pruned after ``[storage]
  history_retention`` is ``pruned``: finished, long ago.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: The states an item is counted in, in the order ``status`` shows them.
ITEM_STATES: tuple[str, ...] = (
    "queued",
    "sending",
    "unknown",
    "posted",
    "failed",
    "skipped",
    "expired",
    "pruned",
)

#: One row per (source, state): ``source, state, n``. No parameters.
ITEM_COUNTS_SQL = """
WITH posts AS (
    SELECT source, item_key,
        sum(CASE WHEN status = 'unknown' THEN 1 ELSE 0 END) AS unknown,
        sum(CASE WHEN status = 'sending' THEN 1 ELSE 0 END) AS sending,
        sum(CASE WHEN status = 'queued' THEN 1 ELSE 0 END) AS queued,
        sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed,
        sum(CASE WHEN status = 'posted' THEN 1 ELSE 0 END) AS posted,
        sum(CASE WHEN status = 'skipped' AND substr(reason, 1, 8) = 'expired:'
            THEN 1 ELSE 0 END) AS expired
    FROM outbox GROUP BY source, item_key
),
items AS (
    SELECT source, key AS item_key, outcome FROM seen
    UNION ALL
    SELECT source, item_key, NULL AS outcome FROM posts
    WHERE NOT EXISTS (
        SELECT 1 FROM seen WHERE seen.source = posts.source AND seen.key = posts.item_key)
),
states AS (
    SELECT items.source AS source, CASE
        WHEN posts.item_key IS NULL AND items.outcome = 'refused' THEN 'failed'
        WHEN posts.item_key IS NULL AND items.outcome IN ('queued', 'update') THEN 'pruned'
        WHEN posts.item_key IS NULL THEN 'skipped'
        WHEN posts.unknown > 0 THEN 'unknown'
        WHEN posts.sending > 0 THEN 'sending'
        WHEN posts.queued > 0 THEN 'queued'
        WHEN posts.failed > 0 THEN 'failed'
        WHEN posts.posted > 0 THEN 'posted'
        WHEN posts.expired > 0 THEN 'expired'
        ELSE 'skipped' END AS state
    FROM items LEFT JOIN posts
        ON posts.source = items.source AND posts.item_key = items.item_key
)
SELECT source, state, count(*) AS n FROM states GROUP BY source, state
"""


def fold(sources: Iterable[str], rows: Iterable[tuple[Any, Any, Any]]) -> dict[str, dict[str, int]]:
    """``{source: {"seen": n, state: n, ...}}`` from the names of the known
    sources and the rows of :data:`ITEM_COUNTS_SQL`; every state present."""
    result: dict[str, dict[str, int]] = {}

    def entry(source: str) -> dict[str, int]:
        return result.setdefault(source, dict.fromkeys(("seen", *ITEM_STATES), 0))

    for name in sources:
        entry(name)
    for source, state, n in rows:
        counts = entry(str(source))
        counts[str(state)] += int(n)
        counts["seen"] += int(n)
    return result
