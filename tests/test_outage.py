"""A Viber outage is waited out, not failed: the channel is held (readyz red,
one alert, a probe with back-off) and its posts keep their place; then
``retry --failed`` for what failed anyway. Fake clock, the real stand-in."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import STANDIN_TOKEN, FakeClock, posted_texts

from publisher.adapters.soloreplica import SoloReplica
from publisher.adapters.sqlite import Store
from publisher.adapters.standin import ViberStandIn
from publisher.adapters.viber.client import ChannelClient
from publisher.cli import cli
from publisher.config import parse_config
from publisher.core.config import Config
from publisher.core.items import Item, RenderedItem, RenderedMessage
from publisher.pipeline.deliver import RECHECK_EVERY, Deliverer
from publisher.service.probes import readiness

START = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)


def default_config(tmp_path: Path, **delivery: Any) -> Config:
    """Every delivery setting at its default (unless given)."""
    return parse_config(
        {
            "storage": {
                "path": str(tmp_path / "state.sqlite3"),
                "media_dir": str(tmp_path / "media"),
            },
            "delivery": delivery,
            "sources": [],
        }
    )


def queue(store: Store, key: str, now: datetime = START) -> int:
    item = Item(source="news", key=key, title=key, content_hash=key)
    message = RenderedMessage({"type": "text", "text": key})
    return store.queue_item(RenderedItem(item, (message,)), now)[0]


class Alerts:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def alert(self, kind: str, subject: str, message: str, details: Any = None) -> bool:
        self.sent.append((kind, subject, message))
        return True


class Lane:
    """One channel's deliverer on a fake clock, and what readiness() looks at."""

    def __init__(self, config: Config, standin: ViberStandIn) -> None:
        self.config = config
        self.clock = FakeClock(START)
        self.store = Store.open(config.storage.path)
        self.client = ChannelClient(STANDIN_TOKEN, api_url=standin.api_url, timeout=5)
        self.alerts = Alerts()
        self.deliverer = Deliverer(
            config, self.store, self.client, clock=self.clock, alerter=self.alerts
        )
        self.started_at: datetime | None = START
        self.stopping = False
        self.leases = SoloReplica()

    @property
    def deliverers(self) -> dict[str, Deliverer]:
        return {self.deliverer.name: self.deliverer}

    def step(self, cap: timedelta = timedelta(hours=1)) -> timedelta | None:
        wait = self.deliverer.step()
        if wait is not None:
            self.clock.advance(min(wait, cap))
        return wait

    def statuses(self) -> list[str]:
        return [r.status for r in self.store.outbox(newest_first=False)]

    def close(self) -> None:
        self.client.close()
        self.store.close()


@pytest.fixture
def lane(tmp_path: Path, standin: ViberStandIn) -> Iterator[Lane]:
    rig = Lane(default_config(tmp_path), standin)
    try:
        yield rig
    finally:
        standin.clear()
        rig.close()


def test_viber_answering_500_for_15_minutes_fails_no_post(
    lane: Lane, standin: ViberStandIn
) -> None:
    """The issue's case: default settings, 10 posts due, every endpoint of
    Viber answering 500 for 15 minutes: all ten go out once it is back."""
    keys = [f"post {i}" for i in range(10)]
    for key in keys:
        queue(lane.store, key)
    lane.deliverer.sender()  # the account was read before the outage
    standin.fail_next("http500", 10_000, endpoint=None)
    back = START + timedelta(minutes=15)
    probes: list[datetime] = []
    while lane.clock() < back:
        before = len([r for r in standin.requests if r.endpoint == "get_account_info"])
        lane.step()
        if len([r for r in standin.requests if r.endpoint == "get_account_info"]) > before:
            probes.append(lane.clock())
        assert "failed" not in lane.statuses()
    ready, details = readiness(lane)
    assert not ready and "Viber cannot be reached or is failing" in details["posting"]
    assert "HTTP 500" in details["posting"]
    # One alert for the outage, and the probe backs off (30 s doubling, at most 5 min).
    assert [kind for kind, _, _ in lane.alerts.sent] == ["posting_stopped"]
    gaps = [b - a for a, b in pairwise(probes)]
    assert gaps == sorted(gaps) and max(gaps) <= RECHECK_EVERY and len(probes) < 12

    standin.clear()  # Viber is back
    for _ in range(200):
        if lane.statuses() == ["posted"] * 10:
            break
        lane.step()
    assert lane.statuses() == ["posted"] * 10
    assert posted_texts(standin) == keys  # each once, in order
    assert [kind for kind, _, _ in lane.alerts.sent] == ["posting_stopped", "recovered"]
    assert readiness(lane)[1]["posting"] == "ok"
    assert all(r.attempts <= 2 for r in lane.store.outbox())


def test_a_single_passing_500_is_a_plain_retry(lane: Lane, standin: ViberStandIn) -> None:
    post = queue(lane.store, "a")
    standin.fail_next("http500")
    lane.step()
    row = lane.store.get(post)
    assert row is not None and row.status == "queued" and row.attempts == 1
    assert lane.store.channel().stopped_reason() is None
    assert lane.alerts.sent == []
    for _ in range(5):
        lane.step()
    assert lane.statuses() == ["posted"]


def test_connection_refused_is_waited_out_without_spending_attempts(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    """max_attempts = 1: without the hold, the first refusal would fail the post."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/pa"
    lane = Lane(default_config(tmp_path, max_attempts=1), standin)
    try:
        post = queue(lane.store, "a")
        lane.deliverer.sender()
        lane.client.api_url = closed
        for _ in range(20):
            lane.step()
        row = lane.store.get(post)
        assert row is not None and row.status == "queued" and row.attempts == 0
        assert lane.deliverer.outage is not None and "nothing was sent" in lane.deliverer.outage
        lane.client.api_url = standin.api_url
        for _ in range(5):
            lane.step()
        assert lane.statuses() == ["posted"] and posted_texts(standin) == ["a"]
        assert lane.deliverer.outage is None
    finally:
        lane.close()


def test_run_once_during_an_outage_exits_1_and_keeps_the_posts(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    config = tmp_path / "sources.toml"
    config.write_text(
        f'[viber]\napi_url = "{standin.api_url}"\n[server]\nlisten = "127.0.0.1:0"\n'
        '[storage]\npath = "state.sqlite3"\nmedia_dir = "media"\n'
        '[delivery]\nretry_backoff = "1s"\n',
        encoding="utf-8",
    )
    with Store.open(tmp_path / "state.sqlite3") as store:
        for key in ("a", "b"):
            queue(store, key, datetime.now(UTC))
    standin.fail_next("http500", 1000, endpoint="post")
    result = CliRunner().invoke(
        cli,
        ["--config", str(config), "run", "--once"],
        env={"VIBER_AUTH_TOKEN": STANDIN_TOKEN},
    )
    standin.clear()
    assert result.exit_code == 1, result.output
    assert "Viber cannot be reached or is failing" in result.output
    assert "Traceback" not in result.output
    with Store.open(tmp_path / "state.sqlite3") as store:
        rows = store.outbox(newest_first=False)
        assert [r.status for r in rows] == ["queued", "queued"]
        assert [r.attempts for r in rows] == [1, 0]  # b never overtook a


def _two_channels(tmp_path: Path) -> Path:
    config = tmp_path / "sources.toml"
    config.write_text(
        '[storage]\npath = "state.sqlite3"\nmedia_dir = "media"\n'
        '[[channels]]\nname = "news"\napi_url = "local"\n'
        '[[channels]]\nname = "sport"\napi_url = "local"\n',
        encoding="utf-8",
    )
    return config


def _fail(store: Store, post_id: int) -> None:
    assert store.claim(post_id, START)
    store.mark_failed(post_id, "gave up after 5 attempts: HTTP 500", START)


def test_retry_failed_lists_then_requeues_every_failed_post_of_a_channel(
    tmp_path: Path,
) -> None:
    config = _two_channels(tmp_path)
    with Store.open(tmp_path / "state.sqlite3") as store:
        item = Item(source="feed", key="k1", title="k1", content_hash="k1")
        split = RenderedItem(
            item,
            (
                RenderedMessage({"type": "text", "text": "1"}),
                RenderedMessage({"type": "text", "text": "2"}),
            ),
        )
        news = store.queue_item(split, START, channel="news")
        sport = store.queue_item(
            RenderedItem(
                Item(source="feed", key="k2", title="k2", content_hash="k2"), split.messages[:1]
            ),
            START,
            channel="sport",
        )
        _fail(store, news[0])  # its second message is skipped with it
        _fail(store, sport[0])
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(cli, ["--config", str(config), "retry", *args])

    several = invoke("--failed")
    assert several.exit_code == 2 and "--channel NAME" in several.output
    dry = invoke("--failed", "--channel", "news", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"#{news[0]} feed/k1: gave up after 5 attempts: HTTP 500" in dry.output
    assert "1 failed post(s) of channel news would be queued again" in dry.output
    assert f"#{sport[0]}" not in dry.output
    with Store.open(tmp_path / "state.sqlite3") as store:
        assert store.get(news[0]).status == "failed"  # type: ignore[union-attr]

    done = invoke("--failed", "--channel", "news")
    assert done.exit_code == 0, done.output
    assert f"queued again: #{news[0]}, #{news[1]} (channel news)" in done.output
    with Store.open(tmp_path / "state.sqlite3") as store:
        assert [store.get(i).status for i in (*news, *sport)] == [  # type: ignore[union-attr]
            "queued",
            "queued",
            "failed",
        ]
    again = invoke("--failed", "--channel", "news")
    assert again.exit_code == 0 and "channel news: no failed posts" in again.output
    assert invoke().exit_code == 2
    assert invoke("1", "--dry-run").exit_code == 2
