"""A channel's state on SQLite: the shared one
(:mod:`publisher.adapters.sql.channel`) in SQLite's dialect."""

from __future__ import annotations

from publisher.adapters.sql.channel import MAIN, SQLChannelState
from publisher.adapters.sqlite.rows import DIALECT

__all__ = ["MAIN", "SQLiteChannelState"]


class SQLiteChannelState(SQLChannelState):
    """:class:`publisher.ports.ChannelState` of one channel."""

    _dialect = DIALECT
