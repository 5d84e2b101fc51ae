"""A channel's state: posting stopped (and why), the cool-down after a rate
limit, the webhook set, the last post. One row per channel name in the
``channels`` table; a channel never written has no row and reads as all None.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import sql

from publisher.adapters.postgres.db import Database
from publisher.adapters.postgres.rows import opt_ts, ts, utc

#: The default channel's name.
MAIN = "main"


class PostgresChannelState:
    """:class:`publisher.ports.ChannelState` of one channel."""

    def __init__(self, db: Database, name: str = MAIN) -> None:
        self._db = db
        self.name = name

    def stopped_reason(self) -> str | None:
        value = self._get("stopped_reason")
        return None if value is None else str(value)

    def set_stopped(self, reason: str | None) -> None:
        self._set("stopped_reason", reason)

    def cooldown_until(self) -> datetime | None:
        return utc(self._get("cooldown_until"))

    def extend_cooldown(self, until: datetime) -> None:
        """Cool down until ``until``, unless a later cool-down is already set."""
        with self._db.write() as db:
            db.execute(
                "INSERT INTO channels (name, cooldown_until) VALUES (%(name)s, %(until)s)"
                " ON CONFLICT (name) DO UPDATE SET cooldown_until = excluded.cooldown_until"
                " WHERE channels.cooldown_until IS NULL"
                " OR channels.cooldown_until < excluded.cooldown_until",
                {"name": self.name, "until": ts(until)},
            )

    def set_cooldown_until(self, until: datetime | None) -> None:
        self._set("cooldown_until", opt_ts(until))

    def webhook_url(self) -> str | None:
        value = self._get("webhook_url")
        return None if value is None else str(value)

    def set_webhook_url(self, url: str | None) -> None:
        self._set("webhook_url", url)

    def last_post_at(self) -> datetime | None:
        return utc(self._get("last_post_at"))

    def set_last_post_at(self, when: datetime | None) -> None:
        self._set("last_post_at", opt_ts(when))

    def _get(self, column: str) -> Any:
        with self._db.read() as db:
            row = db.execute("SELECT * FROM channels WHERE name = %s", (self.name,)).fetchone()
        return None if row is None else row[column]

    def _set(self, column: str, value: Any) -> None:
        statement = sql.SQL(
            "INSERT INTO channels (name, {col}) VALUES (%s, %s)"
            " ON CONFLICT (name) DO UPDATE SET {col} = excluded.{col}"
        ).format(col=sql.Identifier(column))
        with self._db.write() as db:
            db.execute(statement, (self.name, value))
