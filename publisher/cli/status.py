"""``viber-publisher status``: what the service is doing, from the state file.

The state file is opened read-only (never written), so ``status`` works
while the service runs. It shows, in the delivery timezone:

- each source: last and next poll, last error, failures in a row, paused,
  and how many items were seen, and what became of each of them (queued,
  posted, failed, skipped...: every item counted once, whatever its number
  of messages and channels, so the states add up to ``seen``);
- the media folder's size (with S3 media: "in the bucket", not listed);
- whether posting is stopped and why;
- when the next post may go and why it waits (the delivery policy's own
  words: ``rate limit: 2 per hour reached; next at 14:05 Europe/Berlin``);
- the head of the queue, posts whose fate is unknown (with the ``retry`` /
  ``skip`` hint) and the latest posts with their message tokens.

``status --item KEY`` tells one item's story from the events table.
``--json`` prints a stable document instead (``"format": 1``; keys are only
ever added). The token is never read.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from publisher.adapters.itemcounts import ITEM_STATES
from publisher.adapters.mediasize import folder_size, human_bytes
from publisher.cli import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, State, pass_state
from publisher.core.config import Config, SourceConfig
from publisher.core.errors import StateNotCreatedYet, StoreError
from publisher.core.policy import explain
from publisher.core.records import OutboxRow, SourceState
from publisher.core.redact import redact_urls
from publisher.core.schedule import due_at
from publisher.pipeline.queue import QueueView, in_words, look, source_policies
from publisher.ports import Store
from publisher.service.reload import pid_path, process_alive, read_pid

FORMAT = 1
#: The ``counts`` of a source: items, each in one state; ``seen`` is their sum.
COUNT_KEYS = ("seen", *ITEM_STATES)
#: The columns of the sources table: (title, the states it adds up); the
#: optional ones are shown only when a source has such items.
COLUMNS = (
    ("queued", ("queued", "sending"), False),
    ("posted", ("posted",), False),
    ("failed", ("failed",), False),
    ("skipped", ("skipped",), False),
    ("unknown", ("unknown",), True),
    ("expired", ("expired",), True),
    ("pruned", ("pruned",), True),
)
NOTHING_YET = "nothing has run yet"
#: Columns of the tables when the output is not a terminal (a pipe, a file).
WIDTH = 160


# --------------------------------------------------------------------------
# the document (plain data, the same for --json and for people)


def _iso(value: datetime | None, tz: ZoneInfo) -> str | None:
    return None if value is None else value.astimezone(tz).isoformat(timespec="seconds")


def _summary(payload: Mapping[str, Any], width: int = 60) -> str:
    kind = str(payload.get("type", "?"))
    text = " ".join(str(payload.get("text") or "").split())
    if len(text) > width:
        text = text[: width - 1] + "…"
    return f"{kind}: {text}" if text else kind


def _service(config: Config) -> dict[str, Any]:
    pid = read_pid(pid_path(config))
    running = pid is not None and process_alive(pid)
    return {"running": running, "pid": pid if running else None}


def _sources(config: Config, store: Store, now: datetime, tz: ZoneInfo) -> list[dict[str, Any]]:
    counts = store.item_counts_by_source()
    configured = {source.name: source for source in config.sources}
    names = list(configured) + sorted(n for n in counts if n not in configured)
    result = []
    for name in names:
        state = store.get_source(name)
        source = configured.get(name)
        count = counts.get(name, {})
        result.append(
            {
                "name": name,
                "type": source.type if source else None,
                "configured": source is not None,
                "enabled": bool(source and source.enabled),
                "every": int(source.every.total_seconds()) if source else None,
                "paused": state.paused,
                "last_poll": _iso(state.last_poll, tz),
                "last_success": _iso(state.last_success, tz),
                "next_poll": _iso(_due(source, state, now), tz),
                "last_error": redact_urls(state.last_error or "") or None,
                "consecutive_failures": state.consecutive_failures,
                "counts": {key: int(count.get(key, 0)) for key in COUNT_KEYS},
            }
        )
    return result


def _media(config: Config) -> dict[str, Any]:
    """Where the media are and, for the folder, how many files and bytes it
    holds. A bucket is not listed (every ``status`` would cost a listing of
    the whole bucket): its size is ``None``."""
    storage = config.storage
    retention = int(storage.media_retention.total_seconds())
    if storage.media_bucket is not None:
        where = redact_urls(storage.media_url or "")
        return {
            "store": "bucket",
            "location": where,
            "files": None,
            "bytes": None,
            "retention": retention,
            "error": None,
        }
    doc: dict[str, Any] = {
        "store": "folder",
        "location": str(storage.media_dir),
        "files": None,
        "bytes": None,
        "retention": retention,
        "error": None,
    }
    try:
        size = folder_size(storage.media_dir)
    except OSError as exc:
        doc["error"] = f"cannot read {storage.media_dir}: {exc.strerror or exc}"
    else:
        doc["files"], doc["bytes"] = size.files, size.bytes
    return doc


def _due(source: SourceConfig | None, state: SourceState, now: datetime) -> datetime | None:
    """When the service polls the source next (None when it does not)."""
    if source is None or not source.enabled:
        return None
    return due_at(source.every, state.last_poll, state.next_poll, now)


def _next_post(config: Config, view: QueueView, tz: ZoneInfo, channel: str) -> dict[str, Any]:
    up = in_words(view, config, tz, channel)
    return {"state": up.state, "at": _iso(up.at, tz), "post": up.post, "reason": up.reason}


def _queue(
    config: Config, view: QueueView, queued: Sequence[OutboxRow], tz: ZoneInfo, channel: str
) -> list[dict[str, Any]]:
    now = view.now
    explained = explain(
        [row.candidate() for row in queued],
        view.history,
        config.channel(channel).delivery.policy,
        source_policies(config, channel),
        now,
        cooldown_until=view.cooldown_until,
    )
    rows = {row.id: row for row in queued}
    result = []
    for entry in explained:
        row = rows[entry.candidate.id]
        state, ready_at, reason = entry.state, entry.ready_at, entry.reason
        if row.next_attempt_at is not None and row.next_attempt_at > now:
            state, ready_at = "retrying", row.next_attempt_at
            reason = f"attempt {row.attempts + 1} after: {row.reason}"
        result.append(
            {
                "id": row.id,
                "source": row.source,
                "item": row.item_key,
                "seq": row.seq,
                "summary": _summary(row.payload),
                "state": state,
                "ready_at": _iso(ready_at, tz),
                "reason": reason,
                "attempts": row.attempts,
            }
        )
    return result


def status_document(
    config: Config,
    store: Store,
    now: datetime,
    *,
    limit: int = 10,
    channel: str | None = None,
) -> dict[str, Any]:
    """Everything ``status`` shows, as plain data (the ``--json`` document).

    ``channels`` has each channel's posting state, next post, queue, unknown
    posts and latest posts (only ``channel`` when one is named); the same keys
    at the top are the first (or the named) channel's, as in format 1.
    """
    tz = config.delivery.policy.tz
    names = [channel] if channel else [c.name for c in config.channels]
    lanes = [_channel_document(config, store, now, name, tz, limit) for name in names]
    first = {k: v for k, v in lanes[0].items() if k != "name"}
    return {
        "format": FORMAT,
        "now": _iso(now, tz),
        "timezone": tz.key,
        "state_file": str(config.storage.path),
        "service": _service(config),
        **first,
        "sources": _sources(config, store, now, tz),
        "media": _media(config),
        "channels": lanes,
        "replicas": _replicas(config, store, tz),
    }


def _replicas(config: Config, store: Store, tz: ZoneInfo) -> list[dict[str, Any]]:
    """The replicas sharing a PostgreSQL state and what each holds (none
    with a SQLite file: its one service is ``service``)."""
    from publisher import compose

    try:
        found = compose.replicas(config, store)
    except StoreError:
        return []
    return [
        {
            "name": r.name,
            "since": _iso(r.started_at, tz),
            "channels": list(r.channels),
            "polling": r.polling,
        }
        for r in found
    ]


def _channel_document(
    config: Config, store: Store, now: datetime, name: str, tz: ZoneInfo, limit: int
) -> dict[str, Any]:
    queued = store.outbox(status="queued", limit=100_000, channel=name, newest_first=False)
    unknown = store.outbox(status="unknown", limit=1000, channel=name, newest_first=False)
    view = look(store, config, now, name)
    state = store.channel(name)
    return {
        "name": name,
        "posting": {
            "stopped": state.stopped_reason(),
            "cooldown_until": _iso(state.cooldown_until(), tz),
            "last_post_at": _iso(state.last_post_at(), tz),
            "sender": state.sender(),
        },
        "next_post": _next_post(config, view, tz, name),
        "queued": len(queued),
        "queue": _queue(config, view, queued, tz, name)[:limit],
        "unknown": [
            {
                "id": row.id,
                "source": row.source,
                "item": row.item_key,
                "summary": _summary(row.payload),
                "reason": row.reason,
                "hint": f"viber-publisher retry {row.id}  or  viber-publisher skip {row.id}",
            }
            for row in unknown
        ],
        "recent_posts": [
            {
                "id": row.id,
                "source": row.source,
                "item": row.item_key,
                "posted_at": _iso(row.posted_at, tz),
                "message_token": None if row.message_token is None else str(row.message_token),
                "summary": _summary(row.payload),
            }
            for row in store.recent_posts(limit, channel=name)
        ],
    }


def matching_keys(store: Store, text: str, source: str | None) -> list[str]:
    """``text`` itself when it is an item's key, else the keys that contain it
    (keys are long: ``file:003-note.txt@4cb176df``, a feed's guid or link)."""
    if store.item_story(source, text):
        return [text]
    keys = {
        event.item_key
        for event in store.events(limit=1_000_000, source=source)
        if event.item_key is not None and text in event.item_key
    }
    return sorted(keys)


def story_document(
    config: Config, store: Store, key: str, source: str | None, now: datetime
) -> dict[str, Any]:
    """One item's story (``status --item KEY``)."""
    tz = config.delivery.policy.tz
    events = store.item_story(source, key)
    sources = sorted({event.source for event in events} | ({source} if source else set()))
    posts: dict[int, OutboxRow] = {}
    for event in events:
        if event.outbox_id is not None and event.outbox_id not in posts:
            row = store.get(event.outbox_id)
            if row is not None:
                posts[row.id] = row
    seen = [store.seen(name, key) for name in sources]
    return {
        "format": FORMAT,
        "now": _iso(now, tz),
        "timezone": tz.key,
        "item": key,
        "sources": sources,
        "found": bool(events),
        "seen": [
            {
                "source": s.source,
                "first_seen": _iso(s.first_seen, tz),
                "last_seen": _iso(s.last_seen, tz),
                "outcome": s.outcome,
            }
            for s in seen
            if s is not None
        ],
        "events": [
            {
                "time": _iso(event.time, tz),
                "source": event.source,
                "event": event.event,
                "detail": event.detail,
                "post": event.outbox_id,
            }
            for event in events
        ],
        "posts": [
            {
                "id": row.id,
                "source": row.source,
                "seq": row.seq,
                "status": row.status,
                "reason": row.reason,
                "attempts": row.attempts,
                "posted_at": _iso(row.posted_at, tz),
                "message_token": None if row.message_token is None else str(row.message_token),
                "summary": _summary(row.payload),
            }
            for row in sorted(posts.values(), key=lambda r: r.id)
        ],
    }


# --------------------------------------------------------------------------
# for people


def _local(value: str | None, now: str) -> str:
    """An ISO time (already local) shown short: the time today, else the date
    too, and the year when it is not this year's (a send-at in 2099)."""
    if value is None:
        return "—"
    when = datetime.fromisoformat(value)
    today = datetime.fromisoformat(now).date()
    if when.date() == today:
        return when.strftime("%H:%M:%S")
    if when.year != today.year:
        return when.strftime("%a %d %b %Y %H:%M")
    return when.strftime("%a %d %b %H:%M")


def render_status(doc: Mapping[str, Any], console: Console) -> None:
    now, tz = doc["now"], doc["timezone"]
    service = doc["service"]
    running = f"running (pid {service['pid']})" if service["running"] else "not running"
    replicas = doc.get("replicas") or []
    if replicas:
        running = f"{len(replicas)} replica{'' if len(replicas) == 1 else 's'} running"
    console.print(f"[bold]viber-publisher[/] — service {running}; times in {tz}")
    for r in replicas:
        posts = ", ".join(r["channels"]) or "no channel"
        polling = f"; polling {r['polling']} source{'' if r['polling'] == 1 else 's'} now"
        console.print(
            f"  replica {r['name']} since {_local(r['since'], now)}: posts to {posts}"
            + (polling if r["polling"] else "")
        )
    several = len(doc["channels"]) > 1
    for lane in doc["channels"]:
        stopped = lane["posting"]["stopped"]
        if stopped:
            where = f"channel {lane['name']}: " if several else ""
            console.print(Text(f"POSTING STOPPED: {where}{stopped}", style="bold red"))

    table = Table(title="Sources (items)", title_justify="left")
    columns = [
        (title, states)
        for title, states, optional in COLUMNS
        if not optional or any(s["counts"].get(k, 0) for s in doc["sources"] for k in states)
    ]
    for column in ("source", "last poll", "next poll", "fails", "seen"):
        table.add_column(column)
    for title, _ in columns:
        table.add_column(title)
    table.add_column("state / last error")
    for s in doc["sources"]:
        c = s["counts"]
        if not s["configured"]:
            note = Text("not in sources.toml", style="dim")
        elif not s["enabled"]:
            note = Text("disabled", style="dim")
        elif s["paused"]:
            note = Text(f"PAUSED: {s['last_error'] or ''}", style="bold red")
        elif s["last_error"]:
            note = Text(s["last_error"], style="yellow")
        else:
            note = Text("ok" if s["last_poll"] else "not polled yet", style="green")
        table.add_row(
            s["name"],
            _local(s["last_poll"], now),
            _local(s["next_poll"], now) if s["last_poll"] else "at start",
            str(s["consecutive_failures"]),
            str(c["seen"]),
            *(str(sum(c.get(k, 0) for k in states)) for _, states in columns),
            note,
        )
    console.print(table)
    console.print(_media_line(doc["media"]))

    for lane in doc["channels"]:
        if several:
            console.print(f"\n[bold]Channel {lane['name']}[/]")
        _render_lane(lane, now, console)


def _media_line(media: Mapping[str, Any]) -> Text:
    days = media["retention"] // 86400
    kept = f"kept {days} days ([storage] media_retention)"
    if media["store"] == "bucket":
        return Text(f"Media: in the bucket {media['location']} (not listed here); {kept}")
    if media["error"]:
        return Text(f"Media: {media['error']}", style="yellow")
    files = media["files"]
    return Text(
        f"Media: {files} file{'' if files == 1 else 's'}, {human_bytes(media['bytes'])} "
        f"in {media['location']}; {kept}"
    )


def _render_lane(lane: Mapping[str, Any], now: str, console: Console) -> None:
    sender = lane["posting"]["sender"]
    console.print(
        f"[bold]Posts go out as:[/] {escape(sender)}"
        if sender
        else "[bold]Posts go out as:[/] not known yet (the service checks the account at start)"
    )
    nxt = lane["next_post"]
    if nxt["state"] == "waiting":
        console.print(f"[bold]Next post:[/] {_local(nxt['at'], now)} — {nxt['reason']}")
    elif nxt["state"] == "now":
        console.print(f"[bold]Next post:[/] now ({nxt['reason']})")
    else:
        console.print(f"[bold]Next post:[/] {nxt['reason']}")

    if lane["queue"]:
        table = Table(title=f"Queue ({lane['queued']} waiting)", title_justify="left")
        for column in ("#", "source", "item", "post", "when", "why"):
            table.add_column(column)
        for q in lane["queue"]:
            table.add_row(
                str(q["id"]),
                q["source"],
                q["item"],
                q["summary"],
                _local(q["ready_at"], now) if q["ready_at"] else q["state"],
                q["reason"],
            )
        console.print(table)

    if lane["unknown"]:
        table = Table(title="Fate unknown (check the channel)", title_justify="left")
        for column in ("#", "source", "item", "post", "then"):
            table.add_column(column)
        for u in lane["unknown"]:
            table.add_row(str(u["id"]), u["source"], u["item"], u["summary"], u["hint"])
        console.print(table)

    if lane["recent_posts"]:
        table = Table(title="Latest posts", title_justify="left")
        for column in ("#", "posted", "source", "item", "message token", "post"):
            table.add_column(column)
        for p in lane["recent_posts"]:
            table.add_row(
                str(p["id"]),
                _local(p["posted_at"], now),
                p["source"],
                p["item"],
                p["message_token"] or "—",
                p["summary"],
            )
        console.print(table)


def render_story(doc: Mapping[str, Any], console: Console) -> None:
    now = doc["now"]
    if not doc["found"]:
        console.print(f"no events for item {doc['item']!r}")
        return
    console.print(
        f"[bold]Item {doc['item']}[/] ({', '.join(doc['sources'])}); times in {doc['timezone']}"
    )
    table = Table(show_header=True)
    for column in ("time", "source", "what", "detail", "post"):
        table.add_column(column)
    for e in doc["events"]:
        table.add_row(
            _local(e["time"], now),
            e["source"],
            e["event"],
            e["detail"],
            "" if e["post"] is None else f"#{e['post']}",
        )
    console.print(table)
    for p in doc["posts"]:
        line = f"post #{p['id']}: {p['status']}"
        if p["message_token"]:
            line += f", message token {p['message_token']}"
        if p["reason"]:
            line += f" — {p['reason']}"
        console.print(line)


# --------------------------------------------------------------------------
# the command


def _known_source(config: Config, store: Store, source: str | None) -> None:
    """Exit 2 naming the sources when ``--source`` names none of them (in
    sources.toml or in the state file: a removed source keeps its story)."""
    if source is None:
        return
    names = [s.name for s in config.sources]
    known = set(names) | set(store.counts_by_source())
    if source not in known:
        listed = ", ".join(names) or "none in sources.toml"
        click.echo(f"error: {source!r} is not a source; the sources are {listed}", err=True)
        sys.exit(EXIT_CONFIG)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document instead of tables.")
@click.option("--item", "item", metavar="KEY", help="Tell the story of one item.")
@click.option("--source", "source", metavar="NAME", help="With --item: the item's source.")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=10, show_default=True, help="Rows per list."
)
@click.option("--channel", "channel", metavar="NAME", help="Show only this channel.")
@pass_state
def status(
    state: State,
    as_json: bool,
    item: str | None,
    source: str | None,
    limit: int,
    channel: str | None,
) -> None:
    """Show sources, the queue, when the next post may go and why, and the
    latest posts; or one item's story (--item KEY).

    Reads the state file only (never writes it): safe while the service runs.
    """
    config = state.load()
    if channel is not None and channel not in [c.name for c in config.channels]:
        names = ", ".join(c.name for c in config.channels)
        click.echo(f"error: {channel!r} is not a channel; the channels are {names}", err=True)
        sys.exit(EXIT_CONFIG)
    from publisher.compose import open_store, state_exists

    path = config.storage.path

    def nothing_yet(message: str) -> NoReturn:
        if as_json:
            click.echo(json.dumps({"format": FORMAT, "ran": False, "message": message}))
        else:
            click.echo(message)
        sys.exit(EXIT_OK)

    if not state_exists(config):
        nothing_yet(f"{NOTHING_YET}: no state file at {path} (`viber-publisher run` creates it)")
    try:
        store = open_store(config, read_only=True)
    except StateNotCreatedYet:
        nothing_yet(f"{NOTHING_YET}: the service is creating its state at {path}")
    except StoreError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    now = datetime.now(UTC)
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=WIDTH)
    try:
        if item is not None:
            _known_source(config, store, source)
            keys = matching_keys(store, item, source)
            if len(keys) > 1:
                click.echo(f"{len(keys)} items match {item!r}; give one of these keys:", err=True)
                for key in keys[:20]:
                    click.echo(f"  {key}", err=True)
                sys.exit(EXIT_FAILURE)
            doc = story_document(config, store, keys[0] if keys else item, source, now)
            if as_json:
                click.echo(json.dumps(doc, ensure_ascii=False, indent=2))
            else:
                render_story(doc, console)
            sys.exit(EXIT_OK if doc["found"] else EXIT_FAILURE)
        doc = status_document(config, store, now, limit=limit, channel=channel)
        doc["ran"] = True
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        render_status(doc, console)
