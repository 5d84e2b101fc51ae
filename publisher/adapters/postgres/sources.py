"""Sources' state on PostgreSQL: the shared one
(:mod:`publisher.adapters.sql.sources`) in PostgreSQL's dialect."""

from __future__ import annotations

from functools import partial

from publisher.adapters.postgres.rows import DIALECT
from publisher.adapters.sql import sources
from publisher.adapters.sql.sources import SQLSourceStates

#: The source's row exists (seen items and posts refer to it).
ensure_source = partial(sources.ensure_source, DIALECT)


class PostgresSourceStates(SQLSourceStates):
    """:class:`publisher.ports.SourceStates` on the ``sources`` table."""

    _dialect = DIALECT
