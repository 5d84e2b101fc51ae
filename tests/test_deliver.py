"""Delivery against the real stand-in: every answer of the table in
publisher/core/outcomes.py, with a fake clock (back-off waits are clock advances),
and the operator's ``retry ID`` / ``skip ID`` commands."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import STANDIN_TOKEN, posted_texts

from publisher.adapters.soloreplica import SoloReplica
from publisher.adapters.sqlite import Store
from publisher.adapters.standin import ViberStandIn
from publisher.adapters.viber.client import ChannelClient
from publisher.cli import cli
from publisher.config import parse_config
from publisher.core.config import Config
from publisher.core.items import Item, RenderedItem, RenderedMessage
from publisher.core.policy import Wait
from publisher.core.records import OutboxRow, PostResult
from publisher.pipeline.deliver import NAG_EVERY, RECHECK_EVERY, Deliverer
from publisher.service.probes import readiness
from publisher.service.runner import Service

START = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def make_config(
    tmp_path: Path, *, sources: list[dict[str, Any]] | None = None, **delivery: Any
) -> Config:
    settings: dict[str, Any] = {
        "min_interval": "0s",
        "retry_backoff": "10s",
        "max_attempts": 4,
        "rate_limit_cooldown": "5s",
    }
    settings.update(delivery)
    return parse_config(
        {
            "storage": {
                "path": str(tmp_path / "state.sqlite3"),
                "media_dir": str(tmp_path / "media"),
            },
            "delivery": settings,
            "sources": sources or [],
        }
    )


def queue_text(
    store: Store, key: str, *texts: str, now: datetime = START, source: str = "news"
) -> list[int]:
    item = Item(source=source, key=key, title=key, content_hash=key)
    messages = tuple(RenderedMessage({"type": "text", "text": t}) for t in texts or (key,))
    return store.queue_item(RenderedItem(item, messages), now)


@dataclass
class Rig:
    config: Config
    store: Store
    client: ChannelClient
    clock: FakeClock
    deliverer: Deliverer
    done: list[tuple[str, list[str], bool, str | None]] = field(default_factory=list)

    def row(self, post_id: int) -> OutboxRow:
        row = self.store.get(post_id)
        assert row is not None
        return row

    def drain(self, steps: int = 50, max_wait: timedelta = timedelta(hours=1)) -> None:
        """Step until nothing is queued or sending, advancing the fake clock by each wait."""
        for _ in range(steps):
            if not self.store.outbox("queued") and not self.store.outbox("sending"):
                return
            wait = self.deliverer.step()
            if wait is not None:
                self.clock.advance(min(wait, max_wait))
        raise AssertionError("the outbox did not drain")


@pytest.fixture
def rig(tmp_path: Path, standin: ViberStandIn) -> Iterator[Rig]:
    yield from _rig(tmp_path, standin)


def _rig(
    tmp_path: Path,
    standin: ViberStandIn,
    *,
    timeout: float = 5.0,
    public_url: str | None = None,
    **delivery: Any,
) -> Iterator[Rig]:
    config = make_config(tmp_path, **delivery)
    store = Store.open(config.storage.path)
    client = ChannelClient(STANDIN_TOKEN, api_url=standin.api_url, timeout=timeout)
    clock = FakeClock()
    done: list[tuple[str, list[str], bool, str | None]] = []
    deliverer = Deliverer(
        config,
        store,
        client,
        clock=clock,
        on_done=lambda *args: done.append(args),
        public_url=public_url,
    )
    try:
        yield Rig(config, store, client, clock, deliverer, done)
    finally:
        standin.clear()  # answers slow requests still waiting
        client.close()
        store.close()


# --------------------------------------------------------------------------
# ok and retryable answers


def test_a_post_is_marked_sending_before_the_request_and_posted_after(
    rig: Rig, standin: ViberStandIn
) -> None:
    [post_id] = queue_text(rig.store, "a")
    rig.deliverer.step()
    row = rig.row(post_id)
    assert row.status == "posted"
    assert row.attempts == 1
    assert row.message_token == standin.posts[0].message_token
    events = [e.event for e in rig.store.item_story("news", "a")]
    assert events.index("sending") < events.index("posted")


@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [
        ("status", 99, "Viber status 99"),
        ("status12", None, "Viber status 12"),
    ],
)
def test_retryable_answers_are_retried_with_backoff_then_posted(
    rig: Rig, standin: ViberStandIn, kind: str, status: int | None, expected: str
) -> None:
    [post_id] = queue_text(rig.store, "a")
    standin.fail_next(kind, 2, status=status)
    rig.deliverer.step()
    row = rig.row(post_id)
    assert row.status == "queued"
    assert row.reason is not None and expected in row.reason
    assert row.next_attempt_at is not None
    first_delay = row.next_attempt_at - START
    assert timedelta(seconds=8) <= first_delay <= timedelta(seconds=12)  # 10s ± 20 % jitter

    # Not before its time: a step just before changes nothing.
    rig.clock.advance(first_delay - timedelta(seconds=1))
    rig.deliverer.step()
    assert rig.row(post_id).attempts == 1

    rig.clock.advance(timedelta(seconds=1))
    rig.deliverer.step()
    row = rig.row(post_id)
    assert row.status == "queued" and row.attempts == 2
    assert row.next_attempt_at is not None
    second_delay = row.next_attempt_at - rig.clock()
    assert timedelta(seconds=16) <= second_delay <= timedelta(seconds=24)  # doubled

    rig.drain()
    assert rig.row(post_id).status == "posted"
    assert rig.row(post_id).attempts == 3
    assert posted_texts(standin) == ["a"]


def test_status_12_slows_the_whole_channel(rig: Rig, standin: ViberStandIn) -> None:
    first, second = queue_text(rig.store, "a")[0], queue_text(rig.store, "b")[0]
    standin.fail_next("status12")
    rig.deliverer.step()
    cooldown = rig.store.channel().cooldown_until()
    assert cooldown == START + rig.config.delivery.rate_limit_cooldown
    # b is ready (no back-off of its own) but waits for the channel's cooldown.
    verdict = rig.deliverer.verdict(rig.clock())
    assert isinstance(verdict, Wait) and verdict.until == cooldown
    rig.deliverer.step()
    assert rig.row(second).status == "queued" and rig.row(second).attempts == 0
    rig.drain()
    assert rig.row(first).status == rig.row(second).status == "posted"
    assert sorted(posted_texts(standin)) == ["a", "b"]


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        pytest.param("http500", None, id="http-500"),
        # A plain retry (no outage, no cool-down): only the item holds the channel.
        pytest.param("status", 99, id="status-99"),
    ],
)
def test_a_retried_picture_goes_before_the_next_item(
    rig: Rig,
    standin: ViberStandIn,
    media_host: Any,
    jpeg_bytes: bytes,
    kind: str,
    status: int | None,
) -> None:
    """An item with two pictures: the second gets a retryable answer while
    another item is queued; the second picture still goes out before it."""
    url = media_host.add("/picture.jpg", jpeg_bytes, "image/jpeg")
    item = Item(source="news", key="pics", title="pics", content_hash="pics")
    pictures = tuple(
        RenderedMessage({"type": "picture", "text": f"Picture {n}", "media": url}) for n in (1, 2)
    )
    first, second = rig.store.queue_item(RenderedItem(item, pictures), START)
    [other] = queue_text(rig.store, "other", source="blog")
    rig.deliverer.step()
    assert rig.row(first).status == "posted"
    standin.fail_next(kind, status=status)
    rig.deliverer.step()
    row = rig.row(second)
    assert row.status == "queued" and row.next_attempt_at is not None
    assert row.next_attempt_at > rig.clock()
    # The other item is ready, yet the started item holds the channel.
    verdict = rig.deliverer.verdict(rig.clock())
    assert isinstance(verdict, Wait) and verdict.candidate is not None
    assert verdict.candidate.id == second and verdict.until == row.next_attempt_at
    rig.deliverer.step()
    assert rig.row(other).status == "queued"
    rig.drain()
    assert posted_texts(standin) == ["Picture 1", "Picture 2", "other"]
    assert rig.row(second).attempts == 2


def test_retries_are_bounded_then_the_post_fails_with_the_reason(
    rig: Rig, standin: ViberStandIn
) -> None:
    """Only this post gets HTTP 500 while Viber answers the probe: after the
    hold (tests/test_outage.py) it is the post's fault, and it fails."""
    first = queue_text(rig.store, "a", "a0", "a1", "a2")
    standin.fail_next("http500", 10)
    rig.drain()
    row = rig.row(first[0])
    assert row.status == "failed"
    assert row.attempts == rig.config.delivery.max_attempts
    assert row.reason is not None
    assert row.reason.startswith("gave up after 4 attempts") and "HTTP 500" in row.reason
    # The item's later messages are not sent without the first.
    assert [rig.row(i).status for i in first[1:]] == ["skipped", "skipped"]
    assert standin.posts == []


def test_a_connection_failure_before_sending_is_a_plain_retry(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    for rig in _rig(tmp_path, standin):
        [post_id] = queue_text(rig.store, "a")
        rig.deliverer.sender()  # read the account while Viber is reachable
        rig.client.api_url = f"http://127.0.0.1:{closed_port}/pa"
        rig.deliverer.step()
        row = rig.row(post_id)
        assert row.status == "queued" and row.attempts == 1
        assert row.reason is not None and "nothing was sent" in row.reason
        rig.client.api_url = standin.api_url
        rig.drain()
        assert rig.row(post_id).status == "posted"
        assert posted_texts(standin) == ["a"]


# --------------------------------------------------------------------------
# refusals


@pytest.mark.parametrize(
    ("status", "message"), [(3, "badData: nope"), (4, "missingData: text"), (13, "")]
)
def test_refusals_fail_at_once_with_vibers_message(
    rig: Rig, standin: ViberStandIn, status: int, message: str
) -> None:
    ids = queue_text(rig.store, "a", "a0", "a1", "a2")
    standin.fail_next("status", status=status, status_message=message)
    rig.drain()
    row = rig.row(ids[0])
    assert row.status == "failed" and row.attempts == 1
    assert row.reason is not None and f"Viber status {status}" in row.reason
    if message:
        assert message in row.reason
    assert [rig.row(i).status for i in ids[1:]] == ["skipped", "skipped"]
    assert standin.posts == []


def test_a_refused_folder_item_moves_to_failed(tmp_path: Path, standin: ViberStandIn) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "001-note.txt").write_text("hello from the folder\n")
    old = (START - timedelta(hours=1)).timestamp()
    os.utime(inbox / "001-note.txt", (old, old))
    config = make_config(
        tmp_path, sources=[{"name": "inbox", "type": "folder", "path": str(inbox)}]
    )
    clock = FakeClock()
    client = ChannelClient(STANDIN_TOKEN, api_url=standin.api_url)
    service = Service(config, token=STANDIN_TOKEN, clock=clock, client=client, serve=False)
    try:
        service.start()
        assert service.poll_all()[0].queued == 1
        standin.fail_next("status", status=3, status_message="badData: test refusal")
        assert service.deliverer is not None
        service.deliverer.step()
    finally:
        service.close()
    assert not (inbox / "001-note.txt").exists()
    assert (inbox / "failed" / "001-note.txt").exists()
    reason = (inbox / "failed" / "001-note.txt.reason.txt").read_text()
    assert "badData: test refusal" in reason


# --------------------------------------------------------------------------
# ambiguous answers


@pytest.mark.parametrize("kind", ["slow", "drop_after", "drop_before"])
def test_no_answer_after_sending_is_unknown_and_held(
    tmp_path: Path, standin: ViberStandIn, kind: str
) -> None:
    for rig in _rig(tmp_path, standin, timeout=0.5):
        [post_id] = queue_text(rig.store, "a")
        rig.deliverer.sender()
        standin.fail_next(kind, delay=5.0)
        rig.deliverer.step()
        row = rig.row(post_id)
        assert row.status == "unknown"
        assert row.reason is not None and f"retry {post_id}" in row.reason
        # Held: hours later it is still not sent again.
        for _ in range(5):
            rig.deliverer.step()
            rig.clock.advance(timedelta(hours=1))
        assert rig.row(post_id).status == "unknown"
        expected = [] if kind == "drop_before" else ["a"]
        assert posted_texts(standin) == expected


def test_unknown_posts_are_requeued_with_on_unknown_retry(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    for rig in _rig(tmp_path, standin, timeout=0.5, on_unknown="retry"):
        [post_id] = queue_text(rig.store, "a")
        rig.deliverer.sender()
        standin.fail_next("drop_after")
        rig.deliverer.step()
        row = rig.row(post_id)
        assert row.status == "queued" and row.attempts == 1
        assert row.reason is not None and "on_unknown = retry" in row.reason
        rig.drain()
        assert rig.row(post_id).status == "posted"
        assert posted_texts(standin) == ["a", "a"]  # the operator chose duplicates over losses


def test_a_crash_while_sending_leaves_unknown_on_start(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    config = make_config(tmp_path)
    with Store.open(config.storage.path) as store:
        [post_id] = queue_text(store, "a")
        assert store.claim(post_id, START)  # ...and the process dies here
    client = ChannelClient(STANDIN_TOKEN, api_url=standin.api_url)
    service = Service(config, token=STANDIN_TOKEN, clock=FakeClock(), client=client, serve=False)
    try:
        service.start()
        row = service.store.get(post_id)
        assert row is not None and row.status == "unknown"
        assert row.reason is not None and "interrupted while sending" in row.reason
        assert service.deliverer is not None
        service.deliverer.step()
        assert service.store.get(post_id).status == "unknown"  # type: ignore[union-attr]
    finally:
        service.close()
    assert standin.posts == []


# --------------------------------------------------------------------------
# posting stopped


@pytest.mark.parametrize("status", [2, 7, 8, 9])
def test_account_errors_stop_posting_then_it_resumes(
    tmp_path: Path, standin: ViberStandIn, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path)
    clock = FakeClock()
    client = ChannelClient(STANDIN_TOKEN, api_url=standin.api_url)
    service = Service(config, token=STANDIN_TOKEN, clock=clock, client=client, serve=False)
    caplog.set_level(logging.INFO, logger="publisher")
    try:
        service.start()
        deliverer = service.deliverer
        assert deliverer is not None
        ids = [queue_text(service.store, k)[0] for k in ("a", "b")]
        deliverer.sender()
        # The post is refused, and so are the next twelve account checks (an hour).
        standin.fail_next("status", status=status)
        standin.fail_next("status", 12, endpoint="get_account_info", status=status)
        wait = deliverer.step()
        assert wait is None
        stopped = service.store.channel().stopped_reason()
        assert stopped is not None and f"Viber status {status}" in stopped
        assert "resumes by itself" in stopped and "VIBER_AUTH_TOKEN" in stopped
        ready, details = readiness(service)
        assert not ready and details["posting"].startswith("stopped: ")
        row = service.store.get(ids[0])
        assert row is not None and row.status == "queued" and row.attempts == 0

        # Three hours of the deliver loop (a step a minute): no post, an
        # account check every five minutes, and a steady, not flooding, log.
        checks_before = len([r for r in standin.requests if r.endpoint == "get_account_info"])
        caplog.clear()
        for _ in range(int(timedelta(hours=3) / timedelta(minutes=1))):
            if service.store.channel().stopped_reason() is None:
                break
            wait = deliverer.step()
            if service.store.channel().stopped_reason() is not None:
                assert wait is not None and wait >= timedelta(minutes=1)
            clock.advance(timedelta(minutes=1))
        checks = [r for r in standin.requests if r.endpoint == "get_account_info"]
        assert len(checks) - checks_before == 13  # twelve refused, then accepted
        stopped_for = 13 * RECHECK_EVERY
        nag = [r for r in caplog.records if "posting is stopped" in r.getMessage()]
        assert 1 <= len(nag) <= stopped_for / NAG_EVERY + 1
        errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(errors) <= len(nag) + 3  # not a line per step (65 steps)
        assert any("posting resumed" in r.getMessage() for r in caplog.records)

        assert service.store.channel().stopped_reason() is None
        assert readiness(service)[1]["posting"] == "ok"
        for _ in range(10):
            if deliverer.step() is not None:
                clock.advance(timedelta(seconds=5))
        assert [service.store.get(i).status for i in ids] == ["posted", "posted"]  # type: ignore[union-attr]
        assert posted_texts(standin) == ["a", "b"]
    finally:
        service.close()


# --------------------------------------------------------------------------
# a wrong api_url


@dataclass
class Probe:
    """What readiness() looks at, for a rig without a whole service."""

    config: Config
    store: Store
    deliverer: Deliverer
    clock: FakeClock
    started_at: datetime | None = START
    stopping: bool = False
    leases: SoloReplica = field(default_factory=SoloReplica)

    @property
    def deliverers(self) -> dict[str, Deliverer]:
        return {self.deliverer.name: self.deliverer}


def wrong_api_url(standin: ViberStandIn) -> str:
    """The stand-in's host with a wrong path: every endpoint answers 404."""
    return standin.api_url.removesuffix("/pa") + "/api"


@pytest.mark.parametrize("read_account_first", [True, False])
def test_a_404_from_a_wrong_api_url_stops_posting_and_keeps_the_post(
    rig: Rig, standin: ViberStandIn, read_account_first: bool
) -> None:
    [post_id] = queue_text(rig.store, "a")
    if read_account_first:
        rig.deliverer.sender()  # read while the URL was right: the post itself gets the 404
    wrong = wrong_api_url(standin)
    rig.client.api_url = wrong
    rig.deliverer.step()
    stopped = rig.deliverer.stopped_reason
    endpoint = "post" if read_account_first else "get_account_info"
    assert stopped is not None and stopped.startswith(
        f"{wrong}/{endpoint} answered HTTP 404: [viber] api_url is wrong; "
        "the Viber API is https://chatapi.viber.com/pa"
    )
    for _ in range(12):  # two hours: a 5xx would have used up every attempt
        rig.clock.advance(timedelta(minutes=10))
        rig.deliverer.step()
    row = rig.row(post_id)
    assert row.status == "queued" and row.attempts == 0  # not burnt, never lost
    ready, details = readiness(Probe(rig.config, rig.store, rig.deliverer, rig.clock))
    assert not ready and "api_url is wrong" in details["posting"]

    rig.client.api_url = standin.api_url  # fixed (and restarted)
    rig.drain()
    assert rig.row(post_id).status == "posted" and rig.row(post_id).attempts == 1
    assert rig.deliverer.stopped_reason is None
    assert posted_texts(standin) == ["a"]


def test_setting_the_webhook_at_a_wrong_api_url_stops_posting(
    tmp_path: Path, standin: ViberStandIn, webhook_receiver: Any
) -> None:
    public = webhook_receiver.url.removesuffix("/viber/webhook")
    for rig in _rig(tmp_path, standin, public_url=public):
        rig.client.api_url = wrong_api_url(standin)
        assert not rig.deliverer.ensure_webhook()
        stopped = rig.deliverer.stopped_reason
        assert stopped is not None and "/set_webhook answered HTTP 404" in stopped


# --------------------------------------------------------------------------
# the account, checked at start-up


class Alerts:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def alert(self, kind: str, subject: str, message: str, details: Any = None) -> bool:
        self.sent.append((kind, subject, message))
        return True


def checking_rig(
    tmp_path: Path, standin: ViberStandIn, token: str = STANDIN_TOKEN, api_url: str | None = None
) -> Iterator[tuple[Rig, Alerts]]:
    alerts = Alerts()
    for rig in _rig(tmp_path, standin):
        client = ChannelClient(
            token, api_url=api_url or standin.api_url, timeout=2, token_source="$VIBER_AUTH_TOKEN"
        )
        rig.deliverer.client = client
        rig.deliverer.alerter = alerts
        try:
            yield rig, alerts
        finally:
            client.close()


def test_a_refused_token_shows_at_start_up(
    tmp_path: Path, standin: ViberStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="publisher")
    wrong = "0000000000000000-1111111111111111-2222222222222222"
    for rig, alerts in checking_rig(tmp_path, standin, token=wrong):
        [post_id] = queue_text(rig.store, "a")
        assert rig.deliverer.check_account_now() is False
        stopped = rig.deliverer.stopped_reason
        assert (
            stopped is not None and "Viber status 2" in stopped and "$VIBER_AUTH_TOKEN" in stopped
        )
        ready, details = readiness(Probe(rig.config, rig.store, rig.deliverer, rig.clock))
        assert not ready and details["posting"] == f"stopped: {stopped}"
        assert [kind for kind, _, _ in alerts.sent] == ["posting_stopped"]
        assert any(
            r.levelno == logging.ERROR and "posting stopped" in r.getMessage()
            for r in caplog.records
        )
        assert wrong not in caplog.text
        # Not re-asked on the first step: the next check is a RECHECK_EVERY later.
        before = len(standin.requests)
        rig.deliverer.step()
        assert len(standin.requests) == before
        assert rig.row(post_id).status == "queued" and standin.posts == []


def test_a_stop_left_from_the_last_run_is_announced_again(
    tmp_path: Path, standin: ViberStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "0000000000000000-1111111111111111-2222222222222222"
    for rig, _ in checking_rig(tmp_path, standin, token=wrong):
        rig.deliverer.check_account_now()
        caplog.clear()
        assert rig.deliverer.check_account_now() is False  # the next start, same reason
        assert "posting stopped" in caplog.text


def test_an_accepted_token_at_start_up_lifts_an_old_stop(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    for rig, alerts in checking_rig(tmp_path, standin):
        rig.store.channel().set_stopped("Viber status 2 (invalidAuthToken), last run")
        [post_id] = queue_text(rig.store, "a")
        assert rig.deliverer.check_account_now() is True
        assert rig.deliverer.stopped_reason is None
        assert [kind for kind, _, _ in alerts.sent] == ["recovered"]
        rig.deliverer.step()
        assert rig.row(post_id).status == "posted"
        assert [r.endpoint for r in standin.requests] == ["get_account_info", "post"]


def test_a_wrong_api_url_shows_at_start_up(tmp_path: Path, standin: ViberStandIn) -> None:
    for rig, alerts in checking_rig(tmp_path, standin, api_url=wrong_api_url(standin)):
        assert rig.deliverer.check_account_now() is False
        stopped = rig.deliverer.stopped_reason
        assert stopped is not None and "answered HTTP 404: [viber] api_url is wrong" in stopped
        assert [kind for kind, _, _ in alerts.sent] == ["posting_stopped"]


def test_viber_out_of_reach_at_start_up_is_only_a_warning(
    tmp_path: Path, standin: ViberStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/pa"
    for rig, alerts in checking_rig(tmp_path, standin, api_url=closed):
        assert rig.deliverer.check_account_now() is False
        assert rig.deliverer.stopped_reason is None
        assert alerts.sent == []
        assert any(
            r.levelno == logging.WARNING and "could not check the token" in r.getMessage()
            for r in caplog.records
        )


# --------------------------------------------------------------------------
# status 10


def test_status_10_sets_the_webhook_again_and_posts(
    tmp_path: Path, standin: ViberStandIn, webhook_receiver: Any
) -> None:
    public = webhook_receiver.url.removesuffix("/viber/webhook")
    for rig in _rig(tmp_path, standin, public_url=public):
        standin.preset_webhook(None)  # e.g. removed from another place
        [post_id] = queue_text(rig.store, "a")
        rig.deliverer.step()
        assert standin.webhook_url == webhook_receiver.url
        assert len(webhook_receiver.calls) == 1
        assert rig.row(post_id).status == "queued"
        rig.deliverer.step()
        row = rig.row(post_id)
        assert row.status == "posted"
        assert row.attempts == 1  # setting the webhook did not use up an attempt
        assert posted_texts(standin) == ["a"]
        assert [r.status for r in standin.requests if r.endpoint == "post"] == [10, 0]


def test_status_10_again_after_setting_the_webhook_backs_off(
    tmp_path: Path, standin: ViberStandIn, webhook_receiver: Any
) -> None:
    public = webhook_receiver.url.removesuffix("/viber/webhook")
    for rig in _rig(tmp_path, standin, public_url=public):
        [post_id] = queue_text(rig.store, "a")
        standin.fail_next("status", 2, status=10)
        rig.deliverer.step()
        rig.deliverer.step()
        row = rig.row(post_id)
        assert row.status == "queued" and row.next_attempt_at is not None
        assert row.next_attempt_at > rig.clock()
        assert standin.counts["set_webhook"] == 1  # once, not once per answer
        rig.drain()
        assert rig.row(post_id).status == "posted"


def test_status_10_without_public_url_says_what_to_set(rig: Rig, standin: ViberStandIn) -> None:
    standin.preset_webhook(None)
    [post_id] = queue_text(rig.store, "a")
    rig.deliverer.step()
    row = rig.row(post_id)
    assert row.status == "queued"
    assert row.reason is not None and "public_url" in row.reason
    standin.preset_webhook("http://127.0.0.1:9/hook")
    rig.drain()
    assert rig.row(post_id).status == "posted"


def test_a_bug_while_sending_leaves_the_post_unknown(tmp_path: Path, standin: ViberStandIn) -> None:
    class Broken(ChannelClient):
        def post(
            self, message: Any, sender: str | None = None, *, validate: bool = True
        ) -> PostResult:
            raise RuntimeError("boom")

    config = make_config(tmp_path)
    with Store.open(config.storage.path) as store:
        client = Broken(STANDIN_TOKEN, api_url=standin.api_url)
        deliverer = Deliverer(config, store, client, clock=FakeClock())
        [post_id] = queue_text(store, "a")
        with pytest.raises(RuntimeError):
            deliverer.step()
        row = store.get(post_id)
        assert row is not None and row.status == "unknown"
        client.close()


# --------------------------------------------------------------------------
# retry ID / skip ID


def write_config(tmp_path: Path, inbox: Path | None = None) -> Path:
    path = tmp_path / "sources.toml"
    lines = [
        "[storage]",
        f'path = "{tmp_path / "state.sqlite3"}"',
        f'media_dir = "{tmp_path / "media"}"',
    ]
    if inbox is not None:
        lines += ["[[sources]]", 'name = "inbox"', 'type = "folder"', f'path = "{inbox}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def invoke(config: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


@pytest.mark.parametrize("command", ["retry", "skip"])
def test_outbox_commands_have_help(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert "ID" in result.output


def test_retry_requeues_an_unknown_post_and_its_later_messages(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with Store.open(tmp_path / "state.sqlite3") as store:  # the service holds it open meanwhile
        ids = queue_text(store, "a", "a0", "a1", "a2")
        assert store.claim(ids[0], START)
        store.mark_unknown(ids[0], "no answer", START)
        store.mark_skipped(ids[1], "as a test", START)  # skips ids[2] too, held by ids[1]

        result = invoke(config, "retry", str(ids[2]))
        assert result.exit_code == 1
        assert f"retry {ids[1]}" in result.output

        result = invoke(config, "retry", str(ids[0]))
        assert result.exit_code == 0, result.output
        assert f"#{ids[0]}" in result.output
        assert store.get(ids[0]).status == "queued"  # type: ignore[union-attr]
        assert store.get(ids[0]).attempts == 0  # type: ignore[union-attr]

        result = invoke(config, "retry", str(ids[0]))
        assert result.exit_code == 1
        assert f"post #{ids[0]} is queued" in result.output


def test_retry_a_failed_post_brings_back_what_it_held(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with Store.open(tmp_path / "state.sqlite3") as store:
        ids = queue_text(store, "a", "a0", "a1")
        assert store.claim(ids[0], START)
        store.mark_failed(ids[0], "gave up", START)
        assert store.get(ids[1]).status == "skipped"  # type: ignore[union-attr]
        result = invoke(config, "retry", str(ids[0]))
        assert result.exit_code == 0, result.output
        assert [store.get(i).status for i in ids] == ["queued", "queued"]  # type: ignore[union-attr]


@pytest.mark.parametrize("command", ["retry", "skip"])
def test_outbox_commands_refuse_unknown_ids_and_finished_posts(
    tmp_path: Path, command: str
) -> None:
    config = write_config(tmp_path)
    with Store.open(tmp_path / "state.sqlite3") as store:
        [post_id] = queue_text(store, "a")
        assert store.claim(post_id, START)
        store.mark_posted(post_id, 123, START)
    result = invoke(config, command, "999")
    assert result.exit_code == 1
    assert "no post #999" in result.output
    result = invoke(config, command, str(post_id))
    assert result.exit_code == 1
    assert f"post #{post_id} is posted" in result.output


def test_outbox_commands_without_a_state_file(tmp_path: Path) -> None:
    result = invoke(write_config(tmp_path), "retry", "1")
    assert result.exit_code == 1
    assert "no state file yet" in result.output
    assert not (tmp_path / "state.sqlite3").exists()


def test_skip_drops_a_folder_item_into_failed(tmp_path: Path, standin: ViberStandIn) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "001-note.txt").write_text("not to be posted\n")
    config_path = write_config(tmp_path, inbox)
    config = make_config(
        tmp_path, sources=[{"name": "inbox", "type": "folder", "path": str(inbox)}]
    )
    clock = FakeClock(datetime.now(UTC) + timedelta(minutes=1))
    client = ChannelClient(STANDIN_TOKEN, api_url=standin.api_url)
    service = Service(config, token=STANDIN_TOKEN, clock=clock, client=client, serve=False)
    try:
        service.start()
        assert service.poll_all()[0].queued == 1
        [row] = service.store.outbox("queued")
        result = invoke(config_path, "skip", str(row.id))  # while the service holds the file
        assert result.exit_code == 0, result.output
        assert service.store.get(row.id).status == "skipped"  # type: ignore[union-attr]
        assert service.deliverer is not None
        service.deliverer.step()
    finally:
        service.close()
    assert standin.posts == []
    assert (inbox / "failed" / "001-note.txt").exists()
    assert (inbox / "failed" / "001-note.txt.reason.txt").read_text().strip() == (
        "skipped by the operator"
    )
    result = invoke(config_path, "skip", str(row.id))
    assert result.exit_code == 1
    assert "is skipped" in result.output
