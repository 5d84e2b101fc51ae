"""The outbox on PostgreSQL: the shared one (:mod:`publisher.adapters.sql.outbox`
has the transitions and their diagram) in PostgreSQL's dialect.

Every transition reads its row ``FOR UPDATE`` inside its transaction, so
two threads or two processes changing one post wait for each other and the
second sees the first's result: a post is claimed once, and its
``sending`` is committed before the request goes out.
"""

from __future__ import annotations

from publisher.adapters.postgres.rows import DIALECT
from publisher.adapters.postgres.seen import mark_seen_in, upsert_seen
from publisher.adapters.sql.outbox import SeenWrites, SQLOutbox


class PostgresOutbox(SQLOutbox):
    """:class:`publisher.ports.Outbox` on the ``outbox`` table."""

    _dialect = DIALECT
    _seen = SeenWrites(upsert_seen, mark_seen_in)
