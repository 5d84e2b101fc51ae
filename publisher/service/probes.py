"""The service's probes: ``/healthz`` (alive) and ``/readyz`` (ready to post).

Both only read: a probe every few seconds never writes to the state file.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from publisher.core.config import Config
from publisher.core.records import ReplicaInfo
from publisher.core.redact import redact_urls
from publisher.pipeline.deliver import Deliverer
from publisher.ports import Clock, Leases


class Probed(Protocol):
    """What the probes look at (the running :class:`~publisher.service.runner.Service`)."""

    @property
    def config(self) -> Config: ...

    @property
    def store(self) -> Any: ...

    @property
    def deliverers(self) -> dict[str, Deliverer]: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def started_at(self) -> datetime | None: ...

    @property
    def stopping(self) -> bool: ...

    @property
    def leases(self) -> Leases: ...


def health(service: Probed) -> tuple[bool, dict[str, Any]]:
    """Alive: the loops are running (the process answers)."""
    return True, {"stopping": service.stopping}


def readiness(service: Probed) -> tuple[bool, dict[str, Any]]:
    """Ready: every channel's token accepted and webhook set, database
    writable, media storable (no disk fault since the last write that
    worked), every source polled successfully within a few of its intervals.
    With several channels, ``channels`` has each one's ``posting`` and
    ``webhook``; with one, they are at the top. A replica among several
    (PostgreSQL) answers for itself: its name, whether it holds its leases
    (``leases``), and each channel's ``lease``: held here or by another
    replica (both are ready)."""
    details: dict[str, Any] = {}
    ok = True
    names = [c.name for c in service.config.channels]
    leases = service.leases
    holders: dict[str, ReplicaInfo] = {}
    if leases.shared:
        details["replica"] = leases.replica
        problem = leases.problem()
        details["leases"] = "ok" if problem is None else problem
        ok = ok and problem is None
        holders = {c: r for r in leases.replicas(names) for c in r.channels}
    lanes: dict[str, dict[str, str]] = {}
    for name in names:
        lane: dict[str, str] = {}
        state = service.store.channel(name)
        stopped = state.stopped_reason()
        lane["posting"] = "stopped: " + stopped if stopped else "ok"
        ok = ok and not stopped
        deliverer = service.deliverers.get(name)
        webhook = deliverer.webhook_url() if deliverer is not None else None
        if webhook is not None:
            is_set = state.webhook_url() == webhook
            lane["webhook"] = "set" if is_set else "not set"
            ok = ok and is_set
        if leases.shared:
            holder = holders.get(name)
            lane["lease"] = (
                "not held (a replica takes it within seconds)"
                if holder is None
                else "held here"
                if holder.me
                else f"held by replica {holder.name}"
            )
        lanes[name] = lane
    if len(names) == 1:
        details.update(lanes[names[0]])
    else:
        details["channels"] = lanes
    try:
        service.store.check_writable()
        details["database"] = "writable"
    except Exception as exc:  # any storage failure means not ready
        details["database"] = f"not writable: {exc}"
        ok = False
    media = _media_problem(service)
    details["media"] = "ok" if media is None else f"not writable: {media}"
    ok = ok and media is None
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
            error = redact_urls(state.last_error or "not polled recently")
            sources[source.name] = f"failing: {error}"
            ok = False
    details["sources"] = sources
    return ok, details


def _media_problem(service: Probed) -> str | None:
    """Why new media cannot be stored now (the media store's last disk fault,
    cleared by the next write that works), or None."""
    parts = getattr(service, "parts", None)
    media = getattr(parts, "media", None) if parts is not None else None
    failure = getattr(media, "failure", None)
    return failure if isinstance(failure, str) else None
