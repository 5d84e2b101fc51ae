"""The schema's version rules, the same on every database (each keeps its
version its own way: SQLite in ``PRAGMA user_version``, PostgreSQL in a
``schema_version`` table; see each backend's ``schema.py``)."""

from __future__ import annotations

from publisher.core.errors import StateNotCreatedYet, StoreError


def refuse_newer(version: int, target: int) -> None:
    """A database a newer program migrated is not touched by this one."""
    if version > target:
        raise StoreError(
            f"the database has schema version {version}, newer than this program's "
            f"{target}; upgrade viber-publisher (or restore a backup made before)"
        )


def check_current(where: str, version: int, current: int, empty: bool = False) -> None:
    """A state opened read-only (never migrated) must be at this program's
    version; ``empty``: it holds no table at all (a service is creating it)."""
    if version == 0 and empty:
        raise StateNotCreatedYet(
            f"{where}: the state holds nothing yet (a service is creating it); "
            "try again in a moment"
        )
    if version != current:
        older = version < current
        raise StoreError(
            f"{where}: schema version {version}, this program uses {current}; "
            + ("run the service once to upgrade it" if older else "upgrade viber-publisher")
        )
