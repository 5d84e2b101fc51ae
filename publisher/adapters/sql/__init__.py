"""The store written once, for every SQL database it runs on.

The SQLite store (:mod:`publisher.adapters.sqlite`) and the PostgreSQL one
(:mod:`publisher.adapters.postgres`) share their queries and transitions
here; each backend keeps its connection handling, schema and migrations,
error translation and locks, and a :class:`~publisher.adapters.sql.dialect.Dialect`
saying what its database spells its own way::

    dialect.py   the seam: placeholders, row locks, datetimes and JSON,
                 new rows' ids, RETURNING, a list of values; what the
                 shared code asks of a connection and of a backend's Database
    rows.py      rows → core records
    versions.py  the schema version rules (newer refused, read-only needs current)
    history.py   events (each item's story), what was posted, pruning
    sources.py   sources' state
    seen.py      seen items (nothing is posted twice)
    channel.py   a channel's state
    outbox.py    the outbox and its status transitions
    store.py     what the whole store does over those: counts, adopt,
                 batches, close
"""
