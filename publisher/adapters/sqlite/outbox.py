"""The outbox on SQLite: the shared one (:mod:`publisher.adapters.sql.outbox`
has the transitions and their diagram) in SQLite's dialect.

Every transition is a durable write (synced before it returns, see
:mod:`publisher.adapters.sqlite.db`): a post is ``sending`` on disk before
its request goes out. Rows are not locked one by one: a write transaction
(``BEGIN IMMEDIATE``) holds the whole file.
"""

from __future__ import annotations

from publisher.adapters.sql.outbox import SeenWrites, SQLOutbox
from publisher.adapters.sqlite.rows import DIALECT
from publisher.adapters.sqlite.seen import mark_seen_in, upsert_seen


class SQLiteOutbox(SQLOutbox):
    """:class:`publisher.ports.Outbox` on the ``outbox`` table."""

    _dialect = DIALECT
    _seen = SeenWrites(upsert_seen, mark_seen_in)
