"""Several replicas on one PostgreSQL database (issue 15): any number of
``run`` processes join; a source is polled by one at a time, a channel is
posted to by one at a time; a replica that dies frees its leases and its
post in flight becomes ``unknown`` for the next holder; one whose session
is cut holds nothing until it reconnects; ``status`` and ``/readyz`` show
who holds what. Against the real PostgreSQL server the tests start
(tests/postgres.py). The kill test across replicas is test_replicas_kill.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import helpers
import pytest
from helpers import STANDIN_TOKEN, free_port, run_cli

from publisher.adapters.standin import ViberStandIn
from publisher.config import load_config
from publisher.core.config import Config

psycopg = pytest.importorskip("psycopg")

from publisher.adapters.postgres import replicas as replicas_module  # noqa: E402
from publisher.adapters.postgres.replicas import Replica  # noqa: E402

FOLDER = """
[[sources]]
name = "notes"
type = "folder"
path = "inbox"
every = "1h"
settle = "0s"
"""


def write_config(tmp: Path, url: str, api_url: str) -> Path:
    path = helpers.write_config(
        tmp,
        api_url,
        listen=f"127.0.0.1:{free_port()}",
        state="state/publisher.sqlite3",
        media_dir="state/media",
        rest=FOLDER,
    )
    text = path.read_text(encoding="utf-8").replace("[storage]\n", f'[storage]\nurl = "{url}"\n')
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path: Path, postgres_url: str, standin: ViberStandIn) -> Config:
    (tmp_path / "inbox").mkdir()
    return load_config(write_config(tmp_path, postgres_url, standin.api_url))


def service(config: Config) -> object:
    from publisher.service.runner import Service

    return Service(config, token=STANDIN_TOKEN, serve=False)


def test_two_services_share_one_database_and_each_channel_has_one_poster(
    config: Config, tmp_path: Path
) -> None:
    from publisher.service.probes import readiness
    from publisher.service.runner import Service

    a = service(config)
    b = service(config)
    assert isinstance(a, Service) and isinstance(b, Service)
    try:
        a.start()
        b.start()
        assert a.leases.shared and b.leases.shared
        assert a._hold_lane("main") and not b._hold_lane("main")
        _ok, details = readiness(b)
        assert details["lease"].startswith("held by replica ")
        assert details["leases"] == "ok" and details["replica"] == b.leases.replica
        assert readiness(a)[1]["lease"] == "held here"
        mine = [r for r in a.leases.replicas(["main"]) if r.me]
        assert len(a.leases.replicas(["main"])) == 2 and mine[0].channels == ("main",)

        # A source is polled by one replica at a time.
        source = config.sources[0]
        assert a.leases.take_source("notes")
        assert b.poll_source(source).result == "elsewhere"
        a.leases.release_source("notes")
        # ... and not again by another that found it due before that poll.
        helpers.put(tmp_path / "inbox", "001-hello.txt", "Hello\n")
        b.due(source)
        started = b.clock()
        assert a.poll_source(source).queued == 1
        assert b.poll_source(source).result == "elsewhere"
        # nor by a run --once that started before that poll
        assert b.poll_source(source, since=started).result == "elsewhere"
        assert b.due(source) > b.clock()
        assert b.store.get_source("notes").last_poll is not None

        # The holder leaves: the other takes the channel and posts.
        a.close()
        assert b._hold_lane("main")
        deliverer = b.deliverers["main"]
        while deliverer.step() is None:
            pass
        assert [r.status for r in b.store.outbox()] == ["posted"]
    finally:
        a.close()
        b.close()


def test_the_next_holder_makes_a_dead_holders_post_in_flight_unknown(
    config: Config, tmp_path: Path, standin: ViberStandIn
) -> None:
    from publisher.service.runner import Service

    helpers.put(tmp_path / "inbox", "001-hello.txt", "Hello\n")
    a = service(config)
    assert isinstance(a, Service)
    a.start()
    a.poll_source(config.sources[0])
    [row] = a.store.pending(a.clock(), channel="main")
    assert a.store.claim(row.id, a.clock())  # sending ... and the replica dies
    a.leases.release()
    b = service(config)
    assert isinstance(b, Service)
    try:
        b.start()
        assert b._hold_lane("main")
        after = b.store.get(row.id)
        assert after is not None and after.status == "unknown"
        assert b.deliverers["main"].step() is not None  # nothing more to send
        assert standin.posts == []
    finally:
        a.close()
        b.close()


def test_a_killed_replica_frees_its_leases(postgres_url: str) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from publisher.adapters.postgres.replicas import Replica; "
            f"r = Replica.join({postgres_url!r}); "
            "assert r.take_channel('main') and r.take_source('feed'); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    me = Replica.join(postgres_url)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert not me.take_channel("main") and not me.take_source("feed")
        [other] = [r for r in me.replicas(["main"]) if not r.me]
        assert other.name.endswith(f":{holder.pid}") and other.channels == ("main",)
        assert other.polling == 1
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        deadline = time.monotonic() + 15
        while not me.take_channel("main"):  # the server ends the dead session
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert me.take_source("feed")
        assert [r.me for r in me.replicas()] == [True]  # the dead one is gone
    finally:
        holder.kill()
        holder.wait()
        me.release()


def test_a_replica_whose_session_is_cut_holds_nothing_until_it_reconnects(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replicas_module, "RECONNECT_EVERY", 0.0)
    cut = Replica.join(postgres_url)
    other = Replica.join(postgres_url)
    try:
        assert cut.take_channel("main") and cut.problem() is None
        backend = cut._conn.info.backend_pid  # type: ignore[union-attr]
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
        assert not cut.take_channel("main")  # noticed before the next post
        problem = cut.problem()
        assert problem is not None and "lost its PostgreSQL session" in problem
        assert other.take_channel("main")  # the server freed it
        other.release_channel("main")
        assert cut.take_channel("main")  # reconnected, taken again
        assert cut.problem() is None
    finally:
        cut.release()
        other.release()


def test_status_shows_the_replicas_and_what_each_holds(
    config: Config, tmp_path: Path, postgres_url: str
) -> None:
    from publisher.adapters.postgres import PostgresStore

    PostgresStore.open(postgres_url).close()
    first = Replica.join(postgres_url)
    second = Replica.join(postgres_url)
    try:
        assert first.take_channel("main")
        done = run_cli(tmp_path, "status")
        assert done.returncode == 0, done.stderr
        assert "2 replicas running" in done.stdout
        assert done.stdout.count(f"replica {first.replica} since") == 2
        assert "posts to main" in done.stdout and "posts to no channel" in done.stdout
        doc = json.loads(run_cli(tmp_path, "status", "--json").stdout)
        assert sorted(r["channels"] for r in doc["replicas"]) == [[], ["main"]]
    finally:
        first.release()
        second.release()


def test_compose_chooses_the_leases_by_the_store(config: Config, tmp_path: Path) -> None:
    from publisher.adapters.soloreplica import SoloReplica
    from publisher.adapters.sqlite.lock import StateLock
    from publisher.compose import join_state

    leases = join_state(config)
    try:
        assert isinstance(leases, Replica) and leases.shared
        assert not (tmp_path / "state" / "publisher.sqlite3.lock").exists()
    finally:
        leases.release()
    helpers.write_config(tmp_path, "local", state="state/publisher.sqlite3")
    solo = join_state(load_config(tmp_path / "sources.toml"))
    assert isinstance(solo, SoloReplica) and isinstance(solo.lock, StateLock)
    assert not solo.shared and solo.take_channel("x") and solo.take_source("y")
    solo.release()


def test_channels_are_spread_over_the_replicas_and_handed_over_between_posts(
    tmp_path: Path, postgres_url: str, standin: ViberStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first replica takes every channel; when a second joins, the first
    hands one over between two posts (its share is now one), and the second
    takes it; when the second leaves, the first takes it back."""
    from publisher.service.runner import Service

    (tmp_path / "inbox").mkdir()
    path = tmp_path / "sources.toml"
    lanes = "".join(
        f'[[channels]]\nname = "{n}"\napi_url = "{standin.api_url}"\ntoken_env = "{n.upper()}"\n'
        '[channels.delivery]\nmin_interval = "0s"\n'
        for n in ("news", "sport")
    )
    monkeypatch.setenv("NEWS", STANDIN_TOKEN)
    monkeypatch.setenv("SPORT", STANDIN_TOKEN)
    path.write_text(
        f'[server]\nlisten = "127.0.0.1:0"\n[storage]\nurl = "{postgres_url}"\n'
        f'path = "state/s.sqlite3"\nmedia_dir = "media"\n{lanes}'
        + FOLDER.replace('every = "1h"', 'every = "1h"\nchannels = ["news", "sport"]'),
        encoding="utf-8",
    )
    config = load_config(path)
    tokens = {"news": STANDIN_TOKEN, "sport": STANDIN_TOKEN}
    a = Service(config, tokens=tokens, serve=False)
    b: Service | None = None
    try:
        a.start()
        assert a._lanes_held == {"news", "sport"}  # alone: both
        b = Service(config, tokens=tokens, serve=False)
        b.start()
        assert b._lanes_held == set()  # both are held by the first
        a._count_until = 0.0  # count the replicas again now (every 5 s otherwise)
        handed = [n for n in ("news", "sport") if a._hand_over(n)]
        assert len(handed) == 1 and a._lanes_held == {"news", "sport"} - set(handed)
        assert not a._hand_over(next(iter(a._lanes_held)))  # its share now
        assert b._hold_lane(handed[0]) and b._lanes_held == set(handed)
        assert not a._hold_lane(handed[0])  # held by the second
        b.close()
        a._count_until = 0.0
        assert a._hold_lane(handed[0]) and a._lanes_held == {"news", "sport"}
    finally:
        a.close()
        if b is not None:
            b.close()
