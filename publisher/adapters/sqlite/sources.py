"""Sources' state on SQLite: the shared one (:mod:`publisher.adapters.sql.sources`)
in SQLite's dialect."""

from __future__ import annotations

from functools import partial

from publisher.adapters.sql import sources
from publisher.adapters.sql.sources import SQLSourceStates
from publisher.adapters.sqlite.rows import DIALECT

#: The source's row exists (seen items and posts refer to it).
ensure_source = partial(sources.ensure_source, DIALECT)


class SQLiteSourceStates(SQLSourceStates):
    """:class:`publisher.ports.SourceStates` on the ``sources`` table."""

    _dialect = DIALECT
