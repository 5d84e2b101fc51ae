"""A channel's state: posting stopped (and why), the cool-down after a rate
limit, the webhook set, the last post, whom posts go out as. One row per channel name in the
``channels`` table; a channel never written has no row and reads as all None.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from publisher.adapters.sql.dialect import Database, Dialect

#: The default channel's name.
MAIN = "main"

_COLUMNS = ("stopped_reason", "cooldown_until", "webhook_url", "last_post_at", "sender")
#: One statement per column (names from the tuple above, never from input).
_SET = {
    column: f"INSERT INTO channels (name, {column}) VALUES (?, ?)"
    f" ON CONFLICT (name) DO UPDATE SET {column} = excluded.{column}"
    for column in _COLUMNS
}


class SQLChannelState:
    """:class:`publisher.ports.ChannelState` of one channel."""

    _dialect: ClassVar[Dialect]

    def __init__(self, db: Database, name: str = MAIN) -> None:
        self._db = db
        self.name = name

    def stopped_reason(self) -> str | None:
        """Why posting is stopped (what the operator should check), or None."""
        value = self._get("stopped_reason")
        return None if value is None else str(value)

    def set_stopped(self, reason: str | None) -> None:
        """Stop posting, saying why; None: posting goes on."""
        self._set("stopped_reason", reason)

    def cooldown_until(self) -> datetime | None:
        """No post before this (Viber said too many requests)."""
        return self._dialect.opt_dt(self._get("cooldown_until"))

    def extend_cooldown(self, until: datetime) -> None:
        """Cool down until ``until``, unless a later cool-down is already set."""
        d = self._dialect
        with self._db.write() as db:
            d.execute(
                db,
                "INSERT INTO channels (name, cooldown_until) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET cooldown_until = excluded.cooldown_until"
                " WHERE channels.cooldown_until IS NULL"
                " OR channels.cooldown_until < excluded.cooldown_until",
                (self.name, d.ts(until)),
            )

    def set_cooldown_until(self, until: datetime | None) -> None:
        self._set("cooldown_until", self._dialect.opt_ts(until))

    def webhook_url(self) -> str | None:
        """The webhook URL last set with Viber, or None."""
        value = self._get("webhook_url")
        return None if value is None else str(value)

    def set_webhook_url(self, url: str | None) -> None:
        self._set("webhook_url", url)

    def last_post_at(self) -> datetime | None:
        """When the last post went out."""
        return self._dialect.opt_dt(self._get("last_post_at"))

    def set_last_post_at(self, when: datetime | None) -> None:
        self._set("last_post_at", self._dialect.opt_ts(when))

    def sender(self) -> str | None:
        """Whom posts go out as (``name (member id)``), from the last account check."""
        value = self._get("sender")
        return None if value is None else str(value)

    def set_sender(self, sender: str | None) -> None:
        self._set("sender", sender)

    def _get(self, column: str) -> Any:
        with self._db.read() as db:
            row = self._dialect.execute(
                db, "SELECT * FROM channels WHERE name = ?", (self.name,)
            ).fetchone()
        return None if row is None else row[column]

    def _set(self, column: str, value: Any) -> None:
        with self._db.write() as db:
            self._dialect.execute(db, _SET[column], (self.name, value))
