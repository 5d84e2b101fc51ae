"""History on PostgreSQL: the shared one (:mod:`publisher.adapters.sql.history`:
each item's story, what was posted, the pruning rule) in PostgreSQL's dialect."""

from __future__ import annotations

from functools import partial

from publisher.adapters.postgres.rows import DIALECT
from publisher.adapters.sql import history
from publisher.adapters.sql.history import SQLHistory

#: Add a line to an item's story, inside the caller's transaction.
write_event = partial(history.write_event, DIALECT)


class PostgresHistory(SQLHistory):
    """:class:`publisher.ports.History` on the ``events`` and ``outbox`` tables."""

    _dialect = DIALECT
