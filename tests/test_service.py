"""The service's own duties: checking the token when it starts, and keeping
its history pruned."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import STANDIN_TOKEN, T0, FakeClock, write_config

from publisher.adapters.standin import ViberStandIn
from publisher.config import load_config
from publisher.core.items import Item, RenderedItem, RenderedMessage
from publisher.service.probes import readiness
from publisher.service.runner import Service


def _rendered(key: str) -> RenderedItem:
    item = Item(source="blog", key=key, title=key, content_hash=key)
    return RenderedItem(item, (RenderedMessage({"type": "text", "text": key}),), ())


def test_a_refused_token_is_reported_at_start_not_on_the_first_post(
    tmp_path: Path, standin: ViberStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """Bug: the service found a refused token only when it first posted."""
    config = load_config(write_config(tmp_path, standin.api_url))
    service = Service(config, token="not-the-channels-token", clock=FakeClock(), serve=False)
    try:
        with caplog.at_level(logging.ERROR):
            service.start()
        assert service.deliverer is not None
        assert service.deliverer.stopped_reason is not None
        ok, details = readiness(service)
        assert not ok
        assert details["posting"].startswith("stopped: ")
        assert "posting stopped" in caplog.text
        assert standin.posts == []
    finally:
        service.close()


def test_an_accepted_token_is_ready_at_start(tmp_path: Path, standin: ViberStandIn) -> None:
    config = load_config(write_config(tmp_path, standin.api_url))
    service = Service(config, token=STANDIN_TOKEN, clock=FakeClock(), serve=False)
    try:
        service.start()
        assert service.deliverer is not None
        assert service.deliverer.stopped_reason is None
        assert readiness(service)[1]["posting"] == "ok"
    finally:
        service.close()


def test_the_service_prunes_old_history_and_keeps_what_is_not_finished(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    """Bug: Store.prune was never called: the outbox and events grew for ever."""
    config = load_config(write_config(tmp_path, standin.api_url))
    assert config.storage.history_retention == timedelta(days=180)
    clock = FakeClock(T0 - timedelta(days=200))
    service = Service(config, token=STANDIN_TOKEN, clock=clock, serve=False)
    try:
        store = service.store
        (posted,) = store.queue_item(_rendered("old-posted"), clock())
        assert store.claim(posted, clock())
        store.mark_posted(posted, 1234, clock())
        (held,) = store.queue_item(_rendered("old-unknown"), clock())
        assert store.claim(held, clock())
        store.mark_unknown(held, "no answer", clock())
        (waiting,) = store.queue_item(_rendered("old-queued"), clock())
        clock.now = T0
        service.start()
        standin_posts = len(standin.posts)
        service.run_once()
        assert store.get(posted) is None, "a post finished 200 days ago is pruned (180d)"
        assert store.get(held) is not None and store.get(held).status == "unknown"
        assert store.get(waiting) is not None
        assert len(standin.posts) == standin_posts + 1, "the queued one was posted"
    finally:
        service.close()
