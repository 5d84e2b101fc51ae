"""Wiring of the service's seams: the channel client (Viber, or the embedded
local channel) and the built-in HTTP server (media, webhook, health,
metrics, local channel)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from publisher.adapters.httpserver import HTTPServer
from publisher.adapters.viber.client import ChannelClient
from publisher.service.web import make_app

if TYPE_CHECKING:
    from publisher.service.runner import Service

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _remount(app: WSGIApp) -> WSGIApp:
    """Give a mounted app the full path again (it routes on ``/pa/...``)."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ = dict(environ)
        environ["PATH_INFO"] = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        environ["SCRIPT_NAME"] = ""
        return app(environ, start_response)

    return wrapped


def build_local_channel(service: Service) -> Any:
    """The embedded local channel (``api_url = "local"``)."""
    from publisher.adapters.standin.server import ViberStandIn

    token = service.token or secrets.token_hex(24)
    service.token = token
    return ViberStandIn(
        token,
        channel_name="Local channel",
        require_https=False,
        allow_private_media=True,
    )


def _channel_page(local: Any, service: Service) -> WSGIApp | None:
    """The local channel's page at /channel, when that module is present."""
    import importlib

    try:
        module = importlib.import_module("publisher.adapters.localchannel")
    except ImportError:
        return None
    app: WSGIApp = module.channel_app(local, service)
    return app


def health(service: Service) -> tuple[bool, dict[str, Any]]:
    """Alive: the loops are running (the process answers)."""
    return True, {"stopping": service._stop.is_set()}


def readiness(service: Service) -> tuple[bool, dict[str, Any]]:
    """Ready: token accepted, webhook set, database writable, every source
    polled successfully within a few of its intervals."""
    details: dict[str, Any] = {}
    ok = True
    stopped = service.store.channel().stopped_reason()
    details["posting"] = "stopped: " + stopped if stopped else "ok"
    if stopped:
        ok = False
    webhook = service.deliverer.webhook_url() if service.deliverer is not None else None
    if webhook is not None:
        is_set = service.store.channel().webhook_url() == webhook
        details["webhook"] = "set" if is_set else "not set"
        ok = ok and is_set
    try:
        service.store.check_writable()
        details["database"] = "writable"
    except Exception as exc:  # any storage failure means not ready
        details["database"] = f"not writable: {exc}"
        ok = False
    now = service.clock()
    sources: dict[str, str] = {}
    for source in service.config.sources:
        if not source.enabled:
            continue
        state = service.store.get_source(source.name)
        grace = max(source.every * 3, timedelta(minutes=1))
        if state.last_success is not None and now - state.last_success <= grace:
            sources[source.name] = "ok"
        elif (
            state.last_poll is None
            and service.started_at is not None
            and (now - service.started_at <= grace)
        ):
            sources[source.name] = "starting"
        else:
            sources[source.name] = f"failing: {state.last_error or 'not polled recently'}"
            ok = False
    details["sources"] = sources
    return ok, details


def build_server(service: Service) -> tuple[HTTPServer, Any]:
    config = service.config
    local = build_local_channel(service) if config.viber.is_local else None
    extra: dict[str, WSGIApp] = {}
    if local is not None:
        extra["/pa"] = _remount(local.app)
        page = _channel_page(local, service)
        if page is not None:
            extra["/channel"] = page
    app = make_app(
        media=service.media,
        webhook_path=config.server.webhook_path,
        token_provider=lambda: service.token,
        max_body=config.server.max_body,
        health=lambda: health(service),
        ready=lambda: readiness(service),
        metrics=service.metrics.render,
        extra=extra,
    )
    host, port = config.server.host, config.server.port
    server = HTTPServer(app, host=host, port=port).start()
    log.info("serving media, webhook and health on %s", server.url)
    return server, local


def build_client(service: Service) -> ChannelClient:
    config = service.config
    if config.viber.is_local:
        assert service.server is not None, "the local channel runs on the built-in server"
        assert service.token is not None
        return ChannelClient(
            service.token,
            api_url=service.server.url + "/pa",
            timeout=config.viber.timeout.total_seconds(),
            sender_id=config.viber.sender_id,
        )
    assert service.token is not None
    return ChannelClient(
        service.token,
        api_url=config.viber.api_url,
        timeout=config.viber.timeout.total_seconds(),
        sender_id=config.viber.sender_id,
    )
