"""The values that cross the seams: what a fetch gave, and the stored state
of sources, seen items, outbox rows and events.

Plain frozen dataclasses; the adapters make them and the pipeline reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from publisher.core.items import Item
from publisher.core.policy import Candidate

OutboxStatus = Literal["queued", "sending", "posted", "failed", "skipped", "unknown"]
STATUSES: tuple[str, ...] = get_args(OutboxStatus)
#: Statuses from which nothing more happens unless an operator steps in.
FINISHED: tuple[str, ...] = ("posted", "failed", "skipped")


@dataclass(frozen=True)
class FeedResponse:
    """What fetching a feed gave. ``body`` is empty when ``not_modified``."""

    url: str
    final_url: str
    status: int
    body: bytes
    #: Response headers, names lowercased.
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Where the feed moved for good (301/308 from the start), to update the config.
    permanent_redirect: str | None = None
    #: The server said 304 Not Modified.
    not_modified: bool = False
    #: The body is byte-identical to the one with the ``body_hash`` passed in.
    unchanged: bool = False
    #: Validators to send next time (the old ones are kept on a 304 without them).
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    #: The server's ``Retry-After`` and ``Cache-Control: max-age``, if any.
    retry_after: timedelta | None = None
    max_age: timedelta | None = None

    @property
    def floor(self) -> timedelta | None:
        """Do not poll again sooner than this (the larger of the two hints)."""
        hints = [h for h in (self.retry_after, self.max_age) if h is not None]
        return max(hints) if hints else None


@dataclass(frozen=True)
class MediaResponse:
    data: bytes
    #: The ``Content-Type`` the server sent (not trusted).
    content_type_header: str | None
    final_url: str
    #: The MIME type the first bytes say (see :func:`sniff_type`), if known.
    sniffed_type: str | None = None


@dataclass(frozen=True)
class PageResponse:
    """An article page (``enrich``): its HTML decoded, and where it ended up."""

    html: str
    final_url: str


@dataclass(frozen=True)
class SourceState:
    name: str
    url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    last_poll: datetime | None = None
    last_success: datetime | None = None
    next_poll: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    paused: bool = False
    first_poll_done: bool = False
    #: A folder source's last listing (any JSON value), None if never taken.
    snapshot: Any = None


@dataclass(frozen=True)
class SeenItem:
    source: str
    key: str
    first_seen: datetime
    last_seen: datetime
    content_hash: str
    outcome: str


@dataclass(frozen=True)
class OutboxRow:
    id: int
    source: str
    item_key: str
    seq: int
    #: The id of the item's first message: its messages share it.
    group_id: int
    payload: dict[str, Any]
    #: Stored media file names the payload refers to.
    media: tuple[str, ...]
    status: OutboxStatus
    attempts: int
    next_attempt_at: datetime | None
    reason: str | None
    message_token: int | None
    created_at: datetime
    posted_at: datetime | None
    #: When it reached posted / failed / skipped.
    finished_at: datetime | None
    item_published: datetime | None
    send_at: datetime | None
    decisions: tuple[tuple[str, str], ...]
    #: Folder files the item consists of (moved once the item is finished).
    files: tuple[str, ...]
    #: The outbox id whose failure or skip skipped this one.
    held_by: int | None
    #: The channel it is posted to.
    channel: str = "main"

    def candidate(self) -> Candidate:
        return Candidate(
            id=self.id,
            source=self.source,
            item_key=self.item_key,
            created_at=self.created_at,
            seq=self.seq,
            item_published=self.item_published,
            send_at=self.send_at,
            group=self.group_id,
            not_before=self.next_attempt_at,
        )


@dataclass(frozen=True)
class Event:
    id: int
    time: datetime
    source: str
    item_key: str | None
    outbox_id: int | None
    event: str
    detail: str


# Viber's answers


@dataclass(frozen=True)
class Member:
    id: str
    name: str
    role: str
    avatar: str | None = None

    @property
    def is_superadmin(self) -> bool:
        return self.role == "superadmin"


@dataclass(frozen=True)
class AccountInfo:
    id: str
    name: str
    uri: str | None
    members: tuple[Member, ...]
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def superadmins(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.is_superadmin)

    @classmethod
    def from_answer(cls, answer: Mapping[str, Any]) -> AccountInfo:
        members = []
        for raw in answer.get("members") or ():
            if not isinstance(raw, Mapping) or raw.get("id") in (None, ""):
                continue
            avatar = raw.get("avatar")
            members.append(
                Member(
                    id=str(raw["id"]),
                    name=str(raw.get("name") or ""),
                    role=str(raw.get("role") or ""),
                    avatar=str(avatar) if avatar else None,
                )
            )
        uri = answer.get("uri")
        return cls(
            id=str(answer.get("id") or ""),
            name=str(answer.get("name") or ""),
            uri=str(uri) if uri else None,
            members=tuple(members),
            raw=dict(answer),
        )


@dataclass(frozen=True)
class PostResult:
    #: Viber's id of the post; None only if Viber left it out (the post is out).
    message_token: int | None
    chat_hostname: str | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


# --------------------------------------------------------------------------
# what reading a source gave


@dataclass(frozen=True)
class SourceRead:
    """What one read of a source gave: its items, and what to remember of it.

    ``result`` is ``"ok"`` (items to plan), ``"not_modified"`` (HTTP 304) or
    ``"unchanged"`` (a byte-identical body); only ``"ok"`` has items.
    """

    items: tuple[Item, ...] = ()
    result: str = "ok"
    #: The source's very first poll (feeds): the backfill rule applies.
    first_run: bool = False
    #: Remarks for the log and the preview (a malformed entry, a bad sidecar).
    notes: tuple[str, ...] = ()
    #: Files still being written, taken on a later poll (folders).
    pending: tuple[str, ...] = ()
    #: Files that can never be posted as they are (a folder file whose name
    #: is not UTF-8): (path, reason); applying the poll moves them to failed.
    rejected: tuple[tuple[str, str], ...] = ()
    #: Validators and the folder listing, to pass back on the next read.
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    snapshot: Any = None
    #: The feed moved for good: its new address.
    moved_to: str | None = None
    #: Do not poll again sooner than this (``Retry-After``, ``max-age``).
    floor: timedelta | None = None
    fetch_seconds: float | None = None


@dataclass(frozen=True)
class ReplicaInfo:
    """One running replica, as ``status`` shows it."""

    name: str  # host:pid
    started_at: datetime
    channels: tuple[str, ...] = ()
    polling: int = 0  # sources it is polling right now
    me: bool = False
