"""Seen items on PostgreSQL: the shared ones (:mod:`publisher.adapters.sql.seen`)
in PostgreSQL's dialect (the row of an item being seen is read ``FOR UPDATE``)."""

from __future__ import annotations

from functools import partial

from publisher.adapters.postgres.rows import DIALECT
from publisher.adapters.sql import seen
from publisher.adapters.sql.seen import SQLSeenItems

#: Remember the item as seen now, inside the caller's transaction; how it
#: was seen before, if it was.
upsert_seen = partial(seen.upsert_seen, DIALECT)
#: Remember an item that is not queued, with its event, inside the caller's
#: transaction.
mark_seen_in = partial(seen.mark_seen_in, DIALECT)


class PostgresSeenItems(SQLSeenItems):
    """:class:`publisher.ports.SeenItems` on the ``seen`` table."""

    _dialect = DIALECT
