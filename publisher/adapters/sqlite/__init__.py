"""The SQLite store: sources' state, seen items, the outbox, each item's
story, and the channel's state, in one file.

One module per concern, behind the Protocols of :mod:`publisher.ports`
(``SourceStates``, ``SeenItems``, ``Outbox``, ``History``,
``ChannelState``)::

    schema.py    the tables; migrations by PRAGMA user_version
    db.py        the connection, its lock, transactions; SQLite errors → StoreError
    rows.py      its Dialect: parameters, datetimes and JSON as stored
    sources.py   sources' state (validators, poll times, errors, paused)
    seen.py      seen items (nothing is posted twice)
    outbox.py    the outbox and its status transitions
    history.py   events (each item's story), what was posted, pruning
    channel.py   a channel's state (stopped, cool-down, webhook, last post)
    store.py     Store: the parts together, opened with Store.open(path)

Every change is one committed transaction, so a process killed at any
moment leaves either all of a change or none of it; nothing lives only in
memory. Datetimes are stored as ISO-8601 UTC text with microseconds and
come back as aware UTC datetimes; ``now`` is always passed in.
"""

from publisher.adapters.sqlite.channel import MAIN, SQLiteChannelState
from publisher.adapters.sqlite.db import BUSY_TIMEOUT_MS, Database, translate
from publisher.adapters.sqlite.rows import from_text, to_text
from publisher.adapters.sqlite.schema import MIGRATIONS, SCHEMA_VERSION, migrate, user_version
from publisher.adapters.sqlite.store import Store
from publisher.ports import KEEP

__all__ = [
    "BUSY_TIMEOUT_MS",
    "KEEP",
    "MAIN",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Database",
    "SQLiteChannelState",
    "Store",
    "from_text",
    "migrate",
    "to_text",
    "translate",
    "user_version",
]
