"""The PostgreSQL store's own side (the contract it shares with SQLite is
tests/test_store*.py, run on both): migrations by ``schema_version``, a
read-only open, batches, and the server's failures as the operator meets
them — StoreError lines that say what to do, never a password."""

from __future__ import annotations

import threading
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from postgres import PASSWORD, PostgresServer

from publisher.core.errors import StoreError
from publisher.core.items import Item, RenderedItem, RenderedMessage

psycopg = pytest.importorskip("psycopg")

from publisher.adapters.postgres import (  # noqa: E402
    MIGRATIONS,
    SCHEMA_VERSION,
    PostgresStore,
    migrate,
    schema_version,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def rendered(key: str, messages: int = 1) -> RenderedItem:
    item = Item(source="blog", key=key, title=key, content_hash="h")
    msgs = tuple(RenderedMessage({"type": "text", "text": f"{key} {i}"}) for i in range(messages))
    return RenderedItem(item, msgs)


def test_a_new_database_is_migrated_once_and_reopening_keeps_the_data(postgres_url: str) -> None:
    with PostgresStore.open(postgres_url) as s:
        assert s.schema_version == SCHEMA_VERSION
        (row_id,) = s.queue_item(rendered("k1"), T0)
    with PostgresStore.open(postgres_url) as again:
        assert again.schema_version == SCHEMA_VERSION
        row = again.get(row_id)
        assert row is not None and row.status == "queued"
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone() == (1,)


def test_a_version_1_database_gains_the_sender_and_keeps_its_channels(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True, row_factory=psycopg.rows.dict_row) as c:
        migrate(c, MIGRATIONS[:1])
        c.execute("INSERT INTO channels (name, webhook_url) VALUES ('main', 'https://h.example/')")
    with PostgresStore.open(postgres_url) as s:
        assert s.schema_version == SCHEMA_VERSION == 2
        assert s.channel().webhook_url() == "https://h.example/"
        assert s.channel().sender() is None
        s.channel().set_sender("Owner (01234567890A=)")
        assert s.channel().sender() == "Owner (01234567890A=)"


def test_each_migration_step_is_its_own_transaction(postgres_url: str) -> None:
    def step_two(conn: object) -> None:
        conn.execute("CREATE TABLE two (x int)")  # type: ignore[attr-defined]
        raise RuntimeError("power cut")

    steps = (lambda conn: conn.execute("CREATE TABLE one (x int)"), step_two)
    with psycopg.connect(postgres_url, autocommit=True, row_factory=psycopg.rows.dict_row) as c:
        with pytest.raises(RuntimeError, match="power cut"):
            migrate(c, steps)
        assert schema_version(c) == 1
        tables = {r["relname"] for r in c.execute("SELECT relname FROM pg_class").fetchall()}
        assert "one" in tables and "two" not in tables


def test_a_newer_schema_is_refused(postgres_url: str) -> None:
    PostgresStore.open(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="newer than this program"):
        PostgresStore.open(postgres_url)


def test_read_only_writes_nothing_and_an_empty_database_says_so(postgres_url: str) -> None:
    with pytest.raises(StoreError, match="no state yet"):
        PostgresStore.open(postgres_url, read_only=True)
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT to_regclass('outbox')").fetchone() == (None,)
    PostgresStore.open(postgres_url).close()
    with PostgresStore.open(postgres_url, read_only=True) as ro:
        assert ro.outbox() == []
        with pytest.raises(StoreError, match="read-only"):
            ro.check_writable()
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            ro.mark_seen("blog", "k", "h", T0, "filtered")


def test_a_batch_is_one_transaction_and_a_failed_write_in_it_changes_nothing(
    postgres_url: str,
) -> None:
    with PostgresStore.open(postgres_url) as s:
        with pytest.raises(RuntimeError, match="crash"), s.batch():
            s.queue_item(rendered("k1"), T0)
            raise RuntimeError("crash")
        assert s.outbox() == [] and s.seen("blog", "k1") is None
        with s.batch():
            s.queue_item(rendered("k2"), T0)
            with pytest.raises(StoreError, match="no post #999"):
                s.mark_failed(999, "nope", T0)
            assert s.seen("blog", "k2") is not None, "the batch sees its own writes"
            seen_elsewhere: list[object] = []
            thread = threading.Thread(target=lambda: seen_elsewhere.append(s.seen("blog", "k2")))
            thread.start()
            thread.join()
            assert seen_elsewhere == [None], "others see it once committed"
        assert [r.item_key for r in s.outbox()] == ["k2"]


def test_claims_from_two_processes_are_exclusive(postgres_url: str) -> None:
    with PostgresStore.open(postgres_url) as one, PostgresStore.open(postgres_url) as two:
        ids = [one.queue_item(rendered(f"k{i}"), T0)[0] for i in range(10)]
        won = [row_id for row_id in ids for s in (one, two) if s.claim(row_id, T0)]
    assert won == ids


def test_an_unreachable_server_says_to_start_it(postgres_server: PostgresServer) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://publisher@127.0.0.1:{port}/postgres"
    with pytest.raises(StoreError, match=r"cannot be reached .*check that the server runs"):
        PostgresStore.open(url)


def test_a_wrong_password_says_where_the_password_is_read(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    with pytest.raises(StoreError) as caught:
        PostgresStore.open(postgres_server.url(), password="not-" + PASSWORD)
    message = str(caught.value)
    assert "refused the login" in message and "password_env" in message, message
    assert PASSWORD not in message


def test_a_missing_database_says_to_create_it(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    with pytest.raises(StoreError, match=r"does not exist.*createdb"):
        PostgresStore.open(postgres_server.url("no_such_db"))


# ---- choosing the store: [storage] url, the password, open_store


def _config(storage: str) -> object:
    from publisher.config import parse_config

    return parse_config(tomllib.loads(f"[storage]\n{storage}\n[viber]\napi_url = 'local'\n"))


def test_a_password_in_the_url_is_refused_without_repeating_it() -> None:
    from publisher.core.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        _config('url = "postgresql://publisher:hunter2@db.example.org/publisher"')
    message = str(caught.value)
    assert "storage.url: has a password in it" in message and "PGPASSWORD" in message, message
    assert "hunter2" not in message
    with pytest.raises(ConfigError, match=r"never written in sources\.toml"):
        _config('url = "postgresql://publisher@db/p"\npassword = "hunter2"')
    with pytest.raises(ConfigError, match="is not a PostgreSQL URL"):
        _config('url = "mysql://publisher@db/p"')


def test_open_store_chooses_postgresql_with_the_password_from_the_named_variable(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from publisher.adapters.sqlite import Store
    from publisher.compose import open_store

    monkeypatch.delenv("PGPASSWORD")
    monkeypatch.setenv("STATE_DB_PASSWORD", PASSWORD)
    config = _config(f'url = "{postgres_url}"\npassword_env = "STATE_DB_PASSWORD"')
    with open_store(config) as store:  # type: ignore[arg-type]
        assert isinstance(store, PostgresStore)
        store.mark_seen("blog", "k", "h", T0, "filtered")
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    monkeypatch.delenv("STATE_DB_PASSWORD")
    config = _config(f'url = "{postgres_url}"\npassword_file = "{secret}"')
    with open_store(config, read_only=True) as store:  # type: ignore[arg-type]
        assert store.seen("blog", "k") is not None
    sqlite = _config(f'path = "{tmp_path / "state.sqlite3"}"')
    with open_store(sqlite) as store:  # type: ignore[arg-type]
        assert isinstance(store, Store), "SQLite stays the default"
