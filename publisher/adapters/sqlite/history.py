"""History on SQLite: the shared one (:mod:`publisher.adapters.sql.history`:
each item's story, what was posted, the pruning rule) in SQLite's dialect."""

from __future__ import annotations

from functools import partial

from publisher.adapters.sql import history
from publisher.adapters.sql.history import SQLHistory
from publisher.adapters.sqlite.rows import DIALECT

#: Add a line to an item's story, inside the caller's transaction.
write_event = partial(history.write_event, DIALECT)


class SQLiteHistory(SQLHistory):
    """:class:`publisher.ports.History` on the ``events`` and ``outbox`` tables."""

    _dialect = DIALECT
