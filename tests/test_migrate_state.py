"""``migrate-state``: a SQLite state moves into PostgreSQL whole, and nothing
is posted again. Against the real PostgreSQL server the tests start
(tests/postgres.py): a state with posted, queued, retried, failed, unknown
and interrupted posts, a split item, seen and skipped items, two channels'
state, is moved; then every seam of the PostgreSQL store answers what the
SQLite store answers; then the real service, on the moved state, over the
same feed, posts only what is new. And the refusals, each one line."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import helpers
import pytest
from click.testing import CliRunner
from helpers import free_port, posted_titles, run_cli, run_once
from postgres import PASSWORD

from publisher.adapters.httpserver import HTTPServer
from publisher.adapters.sqlite import Store
from publisher.adapters.sqlite.lock import StateLock
from publisher.cli import cli
from publisher.core.errors import StoreError
from publisher.core.items import Decision, Item, MediaInfo, RenderedItem, RenderedMessage

psycopg = pytest.importorskip("psycopg")

from publisher.adapters.migrate import (  # noqa: E402
    INTERRUPTED,
    TABLES,
    TargetNotEmpty,
    migrate_state,
)
from publisher.adapters.postgres import PostgresStore  # noqa: E402

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
#: When the state is moved (dates the events of interrupted posts).
MOVED_AT = T0 + timedelta(hours=2)


def rendered(key: str, messages: int = 1, source: str = "blog", **item: Any) -> RenderedItem:
    msgs = tuple(
        RenderedMessage(
            {"type": "text", "text": f"{key} {i} — ünïcode"},
            (MediaInfo("image", f"{key}{i}.jpg", 1234, "image/jpeg", 64, 48, 85),) if i else (),
        )
        for i in range(messages)
    )
    decisions = (Decision("split", "in 3 messages"),) if messages > 1 else ()
    return RenderedItem(
        Item(source=source, key=key, title=key, content_hash=f"h-{key}", **item), msgs, decisions
    )


def build_state(path: Path) -> None:
    """A state with one of everything the service keeps."""
    t = T0
    with Store.open(path) as s:
        s.record_poll(
            "blog",
            t,
            ok=True,
            etag='"v1"',
            last_modified="Sun, 01 Mar 2026 11:00:00 GMT",
            body_hash="b1",
            url="https://example.org/feed.xml",
            next_poll=t + timedelta(minutes=10),
            snapshot={"entries": ["a", "b"]},
            first_poll_done=True,
        )
        s.record_poll("inbox", t, ok=False, error="no such folder")
        s.set_paused("inbox", True, t, "paused by the operator")
        (posted,) = s.queue_item(rendered("posted", published=t - timedelta(hours=1)), t)
        assert s.claim(posted, t)
        s.mark_posted(posted, 5_123_456_789_012_345_678, t)
        split = s.queue_item(rendered("split", messages=3), t)
        assert s.claim(split[0], t)
        s.mark_posted(split[0], 42, t)
        assert s.claim(split[1], t)
        assert s.mark_failed(split[1], "bad request", t) == [split[2]]  # held_by split[1]
        (failed,) = s.queue_item(rendered("failed"), t)
        assert s.claim(failed, t)
        s.mark_failed(failed, "refused", t)
        (unknown,) = s.queue_item(rendered("unknown"), t)
        assert s.claim(unknown, t)
        s.mark_unknown(unknown, "timed out", t)
        (retried,) = s.queue_item(rendered("retried"), t)
        assert s.claim(retried, t)
        s.mark_retry(retried, "server error", t + timedelta(minutes=5), t)
        (skipped,) = s.queue_item(rendered("skipped"), t)
        s.mark_skipped(skipped, "by the operator", t)
        s.queue_routes({"main": rendered("both"), "second": rendered("both")}, t)
        s.queue_item(rendered("later", send_at=t + timedelta(days=1)), t)
        s.queue_item(rendered("note", source="inbox", files=(Path("inbox/note.txt"),)), t)
        (sending,) = s.queue_item(rendered("sending"), t)
        assert s.claim(sending, t)  # the service was killed in the middle of this one
        s.mark_seen("blog", "filtered", "h-filtered", t, "skipped", "filtered out: ads")
        s.add_event("blog", None, "poll", "3 new", t)
        main = s.channel("main")
        main.set_stopped("Viber refused the token")
        main.set_cooldown_until(t + timedelta(hours=1))
        main.set_webhook_url("https://example.org/viber/webhook")
        main.set_last_post_at(t)
        s.channel("second").set_webhook_url("https://example.org/second")
        # A prune deleted the newest post and its events: its id is never given again.
        (gone,) = s.queue_item(rendered("pruned"), t)
        with s._db.write() as db:
            db.execute("DELETE FROM events WHERE outbox_id = ?", (gone,))
            db.execute("DELETE FROM outbox WHERE id = ?", (gone,))


def answers(s: Any) -> dict[str, Any]:
    """What the store's seams answer, for comparing two stores."""
    everything = s.outbox(limit=1000, newest_first=False)
    keys = {(r.source, r.item_key) for r in everything} | {("blog", "filtered")}
    later = MOVED_AT + timedelta(days=2)
    return {
        "sources": s.sources(),
        "counts": s.counts_by_source(),
        "items": s.item_counts_by_source(),
        "seen": {k: s.seen(*k) for k in sorted(keys)},
        "outbox": everything,
        "pending": [s.pending(when) for when in (MOVED_AT, later)],
        "heads": [
            s.heads(when, channel=c) for when in (MOVED_AT, later) for c in ("main", "second")
        ],
        "next_retry": s.next_retry(MOVED_AT, channel="main"),
        "next_attempt": s.next_attempt(),
        "events": s.events(limit=1000),
        "stories": {k: s.item_story(*k) for k in sorted(keys)},
        "history": s.history_since(T0 - timedelta(days=1)),
        "recent": [s.recent_posts(channel=c) for c in ("main", "second")],
        "media": s.media_in_use(T0 - timedelta(days=1)),
        "channels": {
            name: (
                c.stopped_reason(),
                c.cooldown_until(),
                c.webhook_url(),
                c.last_post_at(),
            )
            for name in ("main", "second", "none")
            for c in [s.channel(name)]
        },
    }


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "publisher.sqlite3"
    build_state(path)
    return path


def pg_rows(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        present = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        if present == (None,):
            return 0
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


# --------------------------------------------------------------------------
# the copy


def test_the_copy_knows_every_column_of_both_schemas(tmp_path: Path, postgres_url: str) -> None:
    """A column added to either store and not to TABLES fails here."""
    mine = {t.name: set(t.names) for t in TABLES}
    with Store.open(tmp_path / "s.sqlite3") as s, s._db.read() as db:
        tables = {
            r[0]
            for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        } - {"sqlite_sequence", "kv"}
        sqlite_columns = {
            t: {r[1] for r in db.execute(f"PRAGMA table_info({t})").fetchall()} for t in tables
        }
    assert sqlite_columns == mine
    PostgresStore.open(postgres_url).close()
    with psycopg.connect(postgres_url) as conn:
        found: dict[str, set[str]] = {}
        for table, column in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        ).fetchall():
            found.setdefault(table, set()).add(column)
    found.pop("schema_version")
    found.pop("replicas", None)  # who runs, not state
    assert found == mine


def test_everything_moves_and_every_seam_answers_as_sqlite_did(
    state: Path, postgres_url: str
) -> None:
    before = state.read_bytes()
    moved = migrate_state(state, postgres_url, password=PASSWORD, now=MOVED_AT)
    assert state.read_bytes() == before  # read, never written

    assert moved.counts == {
        "sources": 2,
        "seen": 12,
        "outbox": 13,
        "events": moved.counts["events"],
        "channels": 2,
    }
    assert moved.statuses["sending"] == 0 and moved.statuses["unknown"] == 2
    assert moved.statuses["queued"] == 5 and moved.statuses["posted"] == 2
    (interrupted,) = moved.interrupted
    assert moved.replaced == {}

    # What the service's crash recovery does to the SQLite state at its next
    # start is what the move did: then both stores answer alike.
    with Store.open(state) as sqlite_store:
        assert sqlite_store.recover_after_crash(MOVED_AT) == [interrupted]
        expected = answers(sqlite_store)
    with PostgresStore.open(postgres_url, password=PASSWORD) as pg:
        got = answers(pg)
        row = pg.get(interrupted)
        assert row is not None and row.status == "unknown" and row.reason == INTERRUPTED
    for seam, value in expected.items():
        assert got[seam] == value, seam

    # The next id is the one SQLite would give: past the pruned one.
    with Store.open(state) as sqlite_store:
        (next_sqlite,) = sqlite_store.queue_item(rendered("new"), MOVED_AT)
        sqlite_store.add_event("blog", "new", "note", "", MOVED_AT)
        last_sqlite_event = sqlite_store.events(limit=1)[0].id
    with PostgresStore.open(postgres_url, password=PASSWORD) as pg:
        (next_pg,) = pg.queue_item(rendered("new"), MOVED_AT)
        pg.add_event("blog", "new", "note", "", MOVED_AT)
        assert (next_pg, pg.events(limit=1)[0].id) == (next_sqlite, last_sqlite_event)
    assert next_pg == moved.next_post_id == 15


# --------------------------------------------------------------------------
# the real service, before and after


class Feed:
    """An RSS feed on 127.0.0.1 whose items the test adds."""

    def __init__(self) -> None:
        self.items: list[int] = []
        self.url = ""
        self.lock = threading.Lock()

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with self.lock:
            items = "".join(
                f"<item><title>Item {n}</title><link>https://example.org/{n}</link>"
                f'<guid isPermaLink="false">urn:item:{n}</guid>'
                f"<pubDate>{format_datetime(T0 + timedelta(hours=n))}</pubDate></item>"
                for n in reversed(self.items)
            )
        body = (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Feed</title><link>https://example.org/</link>{items}</channel></rss>"
        ).encode()
        start_response("200 OK", [("Content-Type", "application/rss+xml")])
        return [body]


@pytest.fixture
def feed() -> Iterator[Feed]:
    site = Feed()
    with HTTPServer(site.app) as server:
        site.url = server.url + "/feed.xml"
        yield site


def use_postgres(config: Path, url: str) -> None:
    text = config.read_text(encoding="utf-8").replace("[storage]\n", f'[storage]\nurl = "{url}"\n')
    config.write_text(text, encoding="utf-8")


def test_the_service_on_the_moved_state_posts_nothing_again(
    tmp_path: Path, standin: Any, feed: Feed, postgres_url: str
) -> None:
    feed.items = [1, 2, 3]
    config = helpers.write_config(
        tmp_path,
        standin.api_url,
        state="state/publisher.sqlite3",
        rest=f'[[sources]]\nname = "news"\ntype = "rss"\nurl = "{feed.url}"\nbackfill = 3\n',
    )
    run_once(config)
    assert posted_titles(standin) == ["Item 1", "Item 2", "Item 3"]

    use_postgres(config, postgres_url)
    done = run_cli(tmp_path, "migrate-state")  # the real CLI; PGPASSWORD from the fixture
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = done.stdout
    assert f"moved the state of {tmp_path / 'state' / 'publisher.sqlite3'} into PostgreSQL" in out
    assert "  sources     1\n" in out
    assert "  seen items  3\n" in out
    assert "  posts       3 (3 posted)\n" in out
    assert "  channels    1\n" in out
    assert "next: start the service" in out and "keep it as a backup" in out

    polled = make_due(postgres_url)
    run_once(config)  # on PostgreSQL now, the same feed
    assert make_due(postgres_url) > polled  # it was polled
    assert posted_titles(standin) == ["Item 1", "Item 2", "Item 3"]
    feed.items.append(4)
    run_once(config)
    assert posted_titles(standin) == ["Item 1", "Item 2", "Item 3", "Item 4"]
    assert pg_rows(postgres_url, "outbox") == 4


def make_due(url: str) -> datetime:
    """Time passes: the source was polled a day earlier than it was, so it
    is due (with PostgreSQL, `run --once` polls only the sources due, as
    another replica may have just polled one). Its last poll, as it was."""
    with psycopg.connect(url) as conn:
        (last,) = conn.execute(
            "UPDATE sources SET last_poll = last_poll - interval '1 day', next_poll = NULL"
            " RETURNING last_poll + interval '1 day'"
        ).fetchone()
    return last  # type: ignore[no-any-return]


# --------------------------------------------------------------------------
# refusals: one line each, and nothing changed


def write_config(tmp: Path, url: str | None, state: str = "state/publisher.sqlite3") -> Path:
    config = helpers.write_config(tmp, "local", listen=f"127.0.0.1:{free_port()}", state=state)
    if url is not None:
        use_postgres(config, url)
    return config


def invoke(config: Path, *args: str, password: str = PASSWORD) -> Any:
    return CliRunner().invoke(
        cli, ["--config", str(config), "migrate-state", *args], env={"PGPASSWORD": password}
    )


def one_error_line(result: Any, code: int, *words: str) -> str:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for word in words:
        assert word in lines[0], lines[0]
    return str(lines[0])


def test_a_database_with_a_state_is_refused_unless_force_replaces_it(
    tmp_path: Path, state: Path, postgres_url: str
) -> None:
    with PostgresStore.open(postgres_url, password=PASSWORD) as pg:
        pg.queue_item(rendered("other", source="elsewhere"), T0)
    config = write_config(tmp_path, postgres_url)
    result = invoke(config)
    one_error_line(result, 1, "already holds a state (1 source, 1 seen item, 1 post, ", "--force")
    with pytest.raises(TargetNotEmpty):
        migrate_state(state, postgres_url, password=PASSWORD, now=MOVED_AT)
    assert pg_rows(postgres_url, "outbox") == 1

    result = invoke(config, "--force")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("replaced the state PostgreSQL at ")
    assert "(1 source, 1 seen item, 1 post, " in result.output
    with PostgresStore.open(postgres_url, password=PASSWORD) as pg:
        assert pg.seen("elsewhere", "other") is None
        assert pg.seen("blog", "posted") is not None
        assert len(pg.outbox(limit=100)) == 13


def test_a_state_file_in_use_by_a_service_is_refused(
    tmp_path: Path, state: Path, postgres_url: str
) -> None:
    held = StateLock.acquire(state)
    try:
        line = one_error_line(invoke(write_config(tmp_path, postgres_url)), 1, "in use")
        assert "stop that one first" in line
    finally:
        held.release()
    assert pg_rows(postgres_url, "outbox") == 0


def test_a_database_a_replica_runs_on_is_refused(
    tmp_path: Path, state: Path, postgres_url: str
) -> None:
    from publisher.adapters.postgres.replicas import Replica

    replica = Replica.join(postgres_url, password=PASSWORD)
    try:
        one_error_line(
            invoke(write_config(tmp_path, postgres_url)), 1, "running viber-publisher replica"
        )
    finally:
        replica.release()
    assert pg_rows(postgres_url, "outbox") == 0


def test_a_bad_row_midway_leaves_the_database_empty(
    tmp_path: Path, state: Path, postgres_url: str
) -> None:
    with sqlite3.connect(state) as db:
        db.execute("UPDATE outbox SET payload = '{broken' WHERE id = 3")
    db.close()
    line = one_error_line(
        invoke(write_config(tmp_path, postgres_url)), 1, "the outbox row with id 3", "not JSON"
    )
    assert "nothing was copied" in line
    for table in ("sources", "seen", "outbox", "events", "channels"):
        assert pg_rows(postgres_url, table) == 0, table


def test_rows_referring_to_missing_rows_are_refused(
    tmp_path: Path, state: Path, postgres_url: str
) -> None:
    with sqlite3.connect(state) as db:
        db.execute("UPDATE outbox SET held_by = 999 WHERE id = 3")
    db.close()
    one_error_line(invoke(write_config(tmp_path, postgres_url)), 1, "refer to rows that do not")
    assert pg_rows(postgres_url, "outbox") == 0


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        pytest.param(None, ("no state file there", "--from"), id="missing"),
        pytest.param(b"not a database at all" * 100, ("not a viber-publisher state",), id="junk"),
        pytest.param("pages", ("damaged", "restore a backup"), id="damaged"),
    ],
)
def test_a_missing_or_damaged_state_file_is_one_line(
    tmp_path: Path, postgres_url: str, damage: bytes | str | None, words: tuple[str, ...]
) -> None:
    path = tmp_path / "state" / "publisher.sqlite3"
    if damage == "pages":
        build_state(path)
        data = bytearray(path.read_bytes())
        page = 4096
        for start in range(2 * page, len(data) - page, page):  # every page but the first two
            data[start + 8 : start + page - 8] = b"\xa5" * (page - 16)
        path.write_bytes(bytes(data))
    elif isinstance(damage, bytes):
        path.parent.mkdir(parents=True)
        path.write_bytes(damage)
    one_error_line(invoke(write_config(tmp_path, postgres_url)), 1, *words)
    assert pg_rows(postgres_url, "outbox") == 0


def test_a_file_an_older_version_wrote_moves_through_an_upgraded_copy(
    tmp_path: Path, state: Path, postgres_url: str
) -> None:
    with sqlite3.connect(state) as db:  # schema version 3: 4 added indexes, 5 a column
        for index in ("outbox_heads", "outbox_heads_send_at", "outbox_rest"):
            db.execute(f"DROP INDEX {index}")
        db.execute("ALTER TABLE channels DROP COLUMN sender")
        db.execute("PRAGMA user_version = 3")
    db.close()
    before = state.read_bytes()
    result = invoke(write_config(tmp_path, postgres_url))
    assert result.exit_code == 0, result.output
    assert "schema version 3: a copy of it was upgraded" in result.output
    assert "  posts       13 (" in result.output
    assert state.read_bytes() == before
    with PostgresStore.open(postgres_url, password=PASSWORD) as pg:
        assert pg.seen("blog", "posted") is not None


def test_from_names_another_file(tmp_path: Path, state: Path, postgres_url: str) -> None:
    elsewhere = tmp_path / "copy.sqlite3"
    shutil.copy(state, elsewhere)
    config = write_config(tmp_path, postgres_url, state="nowhere/publisher.sqlite3")
    result = invoke(config, "--from", str(elsewhere))
    assert result.exit_code == 0, result.output
    assert f"moved the state of {elsewhere} into " in result.output


def test_an_unreachable_server_a_wrong_password_and_no_url_are_one_line(
    tmp_path: Path, state: Path, postgres_url: str, postgres_server: Any
) -> None:
    config = write_config(tmp_path, postgres_url)
    one_error_line(invoke(config, password="wrong"), 1, "refused the login", "PGPASSWORD")
    nowhere = f"postgresql://publisher@127.0.0.1:{free_port()}/postgres"
    one_error_line(invoke(write_config(tmp_path, nowhere)), 1, "cannot be reached")
    one_error_line(invoke(write_config(tmp_path, None)), 2, "[storage] url is not set")
    assert pg_rows(postgres_url, "outbox") == 0


def test_refusals_leave_the_state_file_usable(tmp_path: Path, state: Path) -> None:
    """A refused move took the state file's lock only for its length."""
    with pytest.raises(StoreError):
        migrate_state(
            state, f"postgresql://u@127.0.0.1:{free_port()}/x", password=None, now=MOVED_AT
        )
    StateLock.acquire(state).release()
