"""A channel's state: posting stopped (and why), the cool-down after a rate
limit, the webhook set, the last post. One row per channel name in the
``channels`` table (the one channel so far is ``main``); a channel never
written has no row and reads as all None.
"""

from __future__ import annotations

from datetime import datetime

from publisher.adapters.sqlite.db import Database
from publisher.adapters.sqlite.rows import opt_dt, opt_text, to_text

#: The default channel's name.
MAIN = "main"

_COLUMNS = ("stopped_reason", "cooldown_until", "webhook_url", "last_post_at")
#: One statement per column (names from the tuple above, never from input).
_SET = {
    column: f"INSERT INTO channels (name, {column}) VALUES (?, ?)"
    f" ON CONFLICT (name) DO UPDATE SET {column} = excluded.{column}"
    for column in _COLUMNS
}


class SQLiteChannelState:
    """:class:`publisher.ports.ChannelState` of one channel."""

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
        return opt_dt(self._get("cooldown_until"))

    def extend_cooldown(self, until: datetime) -> None:
        """Cool down until ``until``, unless a later cool-down is already set."""
        with self._db.write() as db:
            db.execute("INSERT OR IGNORE INTO channels (name) VALUES (?)", (self.name,))
            db.execute(
                "UPDATE channels SET cooldown_until = ?"
                " WHERE name = ? AND (cooldown_until IS NULL OR cooldown_until < ?)",
                (to_text(until), self.name, to_text(until)),
            )

    def set_cooldown_until(self, until: datetime | None) -> None:
        self._set("cooldown_until", opt_text(until))

    def webhook_url(self) -> str | None:
        """The webhook URL last set with Viber, or None."""
        value = self._get("webhook_url")
        return None if value is None else str(value)

    def set_webhook_url(self, url: str | None) -> None:
        self._set("webhook_url", url)

    def last_post_at(self) -> datetime | None:
        """When the last post went out."""
        return opt_dt(self._get("last_post_at"))

    def set_last_post_at(self, when: datetime | None) -> None:
        self._set("last_post_at", opt_text(when))

    def _get(self, column: str) -> str | None:
        with self._db.read() as db:
            row = db.execute("SELECT * FROM channels WHERE name = ?", (self.name,)).fetchone()
        return None if row is None else row[column]

    def _set(self, column: str, value: str | None) -> None:
        with self._db.write() as db:
            db.execute(_SET[column], (self.name, value))
