"""A channel's state on PostgreSQL: the shared one
(:mod:`publisher.adapters.sql.channel`) in PostgreSQL's dialect."""

from __future__ import annotations

from publisher.adapters.postgres.rows import DIALECT
from publisher.adapters.sql.channel import MAIN, SQLChannelState

__all__ = ["MAIN", "PostgresChannelState"]


class PostgresChannelState(SQLChannelState):
    """:class:`publisher.ports.ChannelState` of one channel."""

    _dialect = DIALECT
