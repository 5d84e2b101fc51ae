"""Seen items on SQLite: the shared ones (:mod:`publisher.adapters.sql.seen`)
in SQLite's dialect."""

from __future__ import annotations

from functools import partial

from publisher.adapters.sql import seen
from publisher.adapters.sql.seen import SQLSeenItems
from publisher.adapters.sqlite.rows import DIALECT

#: Remember the item as seen now, inside the caller's transaction; how it
#: was seen before, if it was.
upsert_seen = partial(seen.upsert_seen, DIALECT)
#: Remember an item that is not queued, with its event, inside the caller's
#: transaction.
mark_seen_in = partial(seen.mark_seen_in, DIALECT)


class SQLiteSeenItems(SQLSeenItems):
    """:class:`publisher.ports.SeenItems` on the ``seen`` table."""

    _dialect = DIALECT
