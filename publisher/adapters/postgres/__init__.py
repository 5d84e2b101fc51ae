"""The PostgreSQL store: the same seams as the SQLite one
(:mod:`publisher.adapters.sqlite`), for state shared past one machine.

Chosen by ``[storage] url = "postgresql://user@host:port/db"`` (the
password from the environment or a file, never the TOML), in
:func:`publisher.compose.open_store`. One module per concern::

    schema.py    the tables; migrations by the schema_version table
    db.py        the connection pool, transactions; server errors → StoreError
    rows.py      its Dialect: parameters, datetimes and JSON as stored
    sources.py   sources' state
    seen.py      seen items
    outbox.py    the outbox and its status transitions (rows locked FOR UPDATE)
    history.py   events, what was posted, pruning
    channel.py   a channel's state
    store.py     PostgresStore: the parts together, opened with PostgresStore.open(url)
    replicas.py  Replica: one of several `run` processes; leases per source and channel

Needs the ``postgres`` extra (psycopg 3 and psycopg_pool).
"""

from publisher.adapters.postgres.channel import MAIN, PostgresChannelState
from publisher.adapters.postgres.db import Database, describe, translate
from publisher.adapters.postgres.schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version
from publisher.adapters.postgres.store import PostgresStore

__all__ = [
    "MAIN",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Database",
    "PostgresChannelState",
    "PostgresStore",
    "describe",
    "migrate",
    "schema_version",
    "translate",
]
