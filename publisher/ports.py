"""The seams, as Protocols: what the pipeline needs from the world.

The pipeline (:mod:`publisher.pipeline`) and the service are written
against these; the adapters (:mod:`publisher.adapters`) implement them, and
the composition root (:mod:`publisher.compose`) is the only place that
chooses which adapter stands behind which seam::

    Clock        now(): an aware UTC datetime (a fake one in the tests)
    Fetcher      HTTP GET of feeds (conditional) and media, safely
    Source       one configured source: read it, and finish an item's files
    MediaStore   content-addressed media files, served to Viber by name
    Channel      a Viber channel: account, webhook, post
    Store        the state, in parts: SourceStates, SeenItems, Outbox,
                 History, ChannelState (see below)
    Leases       who polls a source and who posts to a channel, when
                 several replicas share one state

Everything that crosses a seam is a plain value from
:mod:`publisher.core.records` or :mod:`publisher.core.items`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol, Self

from publisher.core.config import SourceConfig
from publisher.core.items import RenderedItem
from publisher.core.messages import Message
from publisher.core.policy import PostedRecord
from publisher.core.records import (
    AccountInfo,
    Event,
    FeedResponse,
    MediaResponse,
    OutboxRow,
    OutboxStatus,
    PostResult,
    ReplicaInfo,
    SeenItem,
    SourceRead,
    SourceState,
)

#: The time now, timezone-aware (UTC).
Clock = Callable[[], datetime]


class Fetcher(Protocol):
    """Fetches feeds and media over HTTP within the fetch rules (timeouts, size
    caps, private addresses refused); raises SourceError / MediaError."""

    def fetch_feed(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        body_hash: str | None = None,
    ) -> FeedResponse: ...

    def fetch_media(self, url: str) -> MediaResponse: ...

    def close(self) -> None: ...


class Source(Protocol):
    """One configured source. A source type is one module implementing this
    and one line in :data:`publisher.adapters.sources.registry.SOURCE_TYPES`."""

    config: SourceConfig

    def read(self, state: SourceState, now: datetime, *, conditional: bool = True) -> SourceRead:
        """What the source offers now (raises SourceError when it cannot be read).

        ``conditional=False`` asks for every item even when nothing changed
        (preview)."""
        ...

    def finish(self, files: Sequence[Path], ok: bool, reason: str | None) -> list[Path]:
        """An item's posts are all finished: do what this source type does
        with its files (a folder moves them to ``posted/`` or ``failed/``).
        Returns the paths moved (none for a feed)."""
        ...


class MediaStore(Protocol):
    """Content-addressed media: a name is the hash of the bytes plus an extension."""

    def put(self, data: bytes, ext: str) -> str: ...

    def put_file(self, source: Path, ext: str | None = None) -> str: ...

    def exists(self, name: str) -> bool: ...

    def open(self, name: str) -> tuple[BinaryIO, os.stat_result]: ...

    def url(self, public_url: str, name: str) -> str: ...

    def prune(self, in_use: set[str], older_than: datetime) -> list[str]: ...


class Channel(Protocol):
    """A Viber channel as the Channels Post API shows it (the real one, or the
    local channel). Raises the ViberError tree of :mod:`publisher.core.errors`."""

    def get_account_info(self) -> AccountInfo: ...

    def sender(self) -> str:
        """The id posts are sent as: the configured sender, else the superadmin."""
        ...

    def post(
        self, message: Message | Mapping[str, Any], sender: str | None = None
    ) -> PostResult: ...

    def set_webhook(self, url: str) -> dict[str, Any]: ...

    def remove_webhook(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class Metrics(Protocol):
    """Counters and gauges the pipeline reports (Prometheus in the service)."""

    def poll(self, source: str, result: str, seconds: float | None = None) -> None: ...

    def item(
        self, source: str, outcome: str, reason: str | None = None, count: int = 1
    ) -> None: ...

    def post(self, result: str, seconds: float | None = None, channel: str = "main") -> None: ...

    def set_source_paused(self, source: str, paused: bool) -> None: ...

    def set_posting_stopped(self, stopped: bool, channel: str = "main") -> None: ...


class Alerts(Protocol):
    """Tells the operator (rate-limited): source paused, posting stopped, post failed."""

    def alert(
        self, kind: str, subject: str, message: str, details: dict[str, Any] | None = None
    ) -> bool: ...


# --------------------------------------------------------------------------
# the store, in parts
#
# Every method that changes something is one transaction (all of it, or
# none), takes ``now`` from the caller and raises StoreError, with what to
# do, when the state file cannot be used (damaged, full, read-only, locked).


class Keep(Enum):
    """The type of :data:`KEEP`."""

    KEEP = 0


#: "Leave this column as it is" in :meth:`SourceStates.record_poll`.
KEEP = Keep.KEEP


class SourceStates(Protocol):
    """Each source's state: validators, poll times, last error, paused."""

    def get_source(self, name: str) -> SourceState:
        """The source's state; a fresh one (never polled) if it is not known yet."""
        ...

    def sources(self) -> list[SourceState]: ...

    def record_poll(
        self,
        name: str,
        now: datetime,
        *,
        ok: bool,
        error: str | None = None,
        etag: str | Keep | None = KEEP,
        last_modified: str | Keep | None = KEEP,
        body_hash: str | Keep | None = KEEP,
        url: str | Keep | None = KEEP,
        next_poll: datetime | Keep | None = KEEP,
        snapshot: Any = KEEP,
        first_poll_done: bool | Keep = KEEP,
    ) -> SourceState:
        """Record a poll: ``ok`` clears the error count, a failure adds one;
        columns passed as :data:`KEEP` stay as they are, None clears."""
        ...

    def record_polls(self, polls: Sequence[tuple[str, datetime, Mapping[str, Any]]]) -> None:
        """:meth:`record_poll` with ``ok=True`` for several sources in one
        write, each ``(name, now, the other arguments)``; nothing read back."""
        ...

    def set_paused(self, name: str, paused: bool, now: datetime, reason: str = "") -> None: ...


class SeenItems(Protocol):
    """The items each source offered, so that nothing is posted twice."""

    def seen(self, source: str, key: str) -> SeenItem | None: ...

    def seen_many(self, source: str, keys: Iterable[str]) -> dict[str, SeenItem]:
        """The items among ``keys`` seen before, by key, in one read (a poll
        asks once for all its items); a key never seen is absent."""
        ...

    def mark_seen_many(
        self, source: str, items: Sequence[tuple[str, str, str, str]], now: datetime
    ) -> None:
        """:meth:`mark_seen` for several items of one source in one write:
        each ``(key, content_hash, outcome, detail)``, with its event, in order."""
        ...

    def mark_seen(
        self,
        source: str,
        key: str,
        content_hash: str,
        now: datetime,
        outcome: str,
        detail: str = "",
    ) -> None:
        """Remember an item that is not queued, with an event ``outcome: detail``."""
        ...

    def touch_seen(self, source: str, keys: Iterable[str], now: datetime) -> int: ...

    def rehash_seen(self, source: str, hashes: Sequence[tuple[str, str]]) -> None:
        """Store new content hashes, each ``(key, content_hash)``, of items
        seen before whose stored hash was made another way (see
        :func:`publisher.core.identity.comparable`)."""
        ...

    def forget_older_than(self, source: str, cutoff: datetime) -> int:
        """Forget keys last seen before ``cutoff`` (the source's ``remember``)."""
        ...


class Outbox(Protocol):
    """One row per message to post, and its status transitions (see
    :mod:`publisher.adapters.sqlite.outbox` for the diagram)."""

    def queue_item(
        self,
        rendered: RenderedItem,
        now: datetime,
        outcome: str = "queued",
        *,
        channel: str = "main",
    ) -> list[int]:
        """Mark the item seen and queue its messages for ``channel``; the new ids."""
        ...

    def queue_routes(
        self, routes: Mapping[str, RenderedItem], now: datetime, outcome: str = "queued"
    ) -> dict[str, list[int]]:
        """One item to several channels, in one transaction; the new ids by channel."""
        ...

    def claim(self, outbox_id: int, now: datetime) -> bool:
        """queued → sending; False if it was not queued."""
        ...

    def mark_posted(self, outbox_id: int, token: int | str | None, now: datetime) -> None: ...

    def mark_failed(self, outbox_id: int, reason: str, now: datetime) -> list[int]: ...

    def mark_retry(
        self,
        outbox_id: int,
        reason: str,
        next_attempt_at: datetime,
        now: datetime,
        *,
        refund: bool = False,
    ) -> None: ...

    def mark_unknown(self, outbox_id: int, reason: str, now: datetime) -> None: ...

    def mark_skipped(self, outbox_id: int, reason: str, now: datetime) -> list[int]: ...

    def requeue(
        self, outbox_id: int, now: datetime, detail: str = "by the operator"
    ) -> list[int]: ...

    def recover_after_crash(
        self,
        now: datetime,
        on_unknown: Literal["hold", "retry"] = "hold",
        *,
        channel: str | None = None,
    ) -> list[int]: ...

    def get(self, outbox_id: int) -> OutboxRow | None: ...

    def item_rows(self, group_id: int) -> list[OutboxRow]: ...

    def rows_for_item(self, source: str, key: str) -> list[OutboxRow]: ...

    def pending(self, now: datetime, *, channel: str | None = None) -> list[OutboxRow]: ...

    def heads(self, now: datetime, *, channel: str) -> list[OutboxRow]:
        """What the delivery policy needs of ``channel``'s queue, read through
        indexes: each source's due head candidates, and the messages that
        continue a started item, also while they wait for their retry (see
        :meth:`SQLiteOutbox.heads`)."""
        ...

    def next_retry(self, now: datetime, *, channel: str) -> OutboxRow | None:
        """The queued row of ``channel`` retried soonest after ``now``, if any."""
        ...

    def next_attempt(self, *, channel: str | None = None) -> datetime | None: ...

    def outbox(
        self,
        status: OutboxStatus | None = None,
        limit: int = 100,
        *,
        source: str | None = None,
        channel: str | None = None,
        newest_first: bool = True,
    ) -> list[OutboxRow]: ...

    def media_in_use(self, finished_after: datetime) -> set[str]: ...


class History(Protocol):
    """Each item's story (events), what was posted, and pruning the old."""

    def add_event(
        self, source: str, key: str | None, event: str, detail: str, now: datetime
    ) -> None: ...

    def item_story(self, source: str | None, key: str) -> list[Event]: ...

    def events(self, limit: int = 50, source: str | None = None) -> list[Event]: ...

    def history_since(self, since: datetime, *, channel: str | None = None) -> list[PostedRecord]:
        """What was posted at or after ``since``, oldest first (for the policy)."""
        ...

    def recent_posts(self, limit: int = 20, *, channel: str | None = None) -> list[OutboxRow]: ...

    def prune_history(self, before: datetime) -> tuple[int, int]:
        """Delete the posts of items finished (posted, failed, skipped) before
        ``before`` and the events older than it with no post left; never a
        queued, sending or unknown post, nor its item's story, nor seen
        items. Returns how many (posts, events) went."""
        ...


class ChannelState(Protocol):
    """One channel's state, by name (the one channel so far is ``main``)."""

    name: str

    def stopped_reason(self) -> str | None:
        """Why posting is stopped (what the operator should check), or None."""
        ...

    def set_stopped(self, reason: str | None) -> None: ...

    def cooldown_until(self) -> datetime | None: ...

    def set_cooldown_until(self, until: datetime | None) -> None: ...

    def extend_cooldown(self, until: datetime) -> None:
        """Cool down until ``until``, unless a later cool-down is already set."""
        ...

    def webhook_url(self) -> str | None: ...

    def set_webhook_url(self, url: str | None) -> None: ...

    def last_post_at(self) -> datetime | None: ...

    def set_last_post_at(self, when: datetime | None) -> None: ...

    def sender(self) -> str | None:
        """Whom posts go out as (``name (member id)``), from the last account check."""
        ...

    def set_sender(self, sender: str | None) -> None: ...


class Store(SourceStates, SeenItems, Outbox, History, Protocol):
    """The whole persistent state: the parts above, and the channels' state."""

    @property
    def path(self) -> str: ...

    @property
    def read_only(self) -> bool: ...

    def channel(self, name: str = "main") -> ChannelState: ...

    def check_writable(self) -> None:
        """Raise StoreError unless a change could be saved now; writes nothing."""
        ...

    def counts_by_source(self) -> dict[str, dict[str, int]]: ...

    def item_counts_by_source(self) -> dict[str, dict[str, int]]:
        """Per source, items (not messages) by what became of them; ``seen``
        is their sum (see :mod:`publisher.adapters.itemcounts`)."""
        ...

    def adopt(self, channel: str) -> int:
        """Give the posts and state kept under ``main`` (the single-channel
        version's) to ``channel``; how many posts changed hands (idempotent)."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...

    def batch(self) -> AbstractContextManager[None]:
        """The writes inside the block are one transaction (a poll of one source)."""
        ...

    def close(self) -> None: ...


class Leases(Protocol):
    """Who does which work when several ``run`` processes (replicas) share
    one state: a source is polled by one replica at a time, a channel is
    posted to by one replica at a time. A lease ends when its holder
    releases it or dies. With one process (SQLite), every lease is granted.
    """

    @property
    def replica(self) -> str:
        """This replica's name (``host:pid``)."""
        ...

    @property
    def shared(self) -> bool:
        """True when other replicas may share the state (the leases can be refused)."""
        ...

    def take_source(self, name: str) -> bool:
        """Take source ``name`` for one poll; False when another replica polls it now."""
        ...

    def release_source(self, name: str) -> None: ...

    def take_channel(self, name: str) -> bool:
        """Hold channel ``name`` (taken now or still held); False when
        another replica holds it, or this one lost its leases."""
        ...

    def release_channel(self, name: str) -> None: ...

    def problem(self) -> str | None:
        """Why this replica cannot hold leases now (``/readyz`` shows it), or None."""
        ...

    def replicas(self, channels: Iterable[str] = ()) -> list[ReplicaInfo]:
        """The live replicas and what each holds, naming the ``channels``
        (``status`` shows them)."""
        ...

    def release(self) -> None:
        """Give up every lease (the service stops)."""
        ...
