"""What a reload of ``sources.toml`` changes (:func:`plan_reload`, pure), and
the pid file that ``reload`` and ``status`` find the service by.

``SIGHUP`` (or ``viber-publisher reload``, which sends it) makes the service
read its config file again, between two turns of the main loop (never inside
the signal handler), and apply it as one swap
(:meth:`publisher.service.runner.Service.reload`):

- a file with problems changes nothing: the running config stays, and each
  problem is logged on a line of its own;
- sources added start polling at once; sources removed stop polling and
  their metrics series are dropped (their queued posts stay and are still
  delivered); a changed ``every`` applies at once (the next poll is
  computed again from the last one, see :mod:`publisher.core.schedule`);
- ``[delivery]``, ``[alerts]`` and ``[media]`` take effect for the next post,
  alert or item (each channel's delivery policy too); ``[server]``,
  ``[storage]``, ``[fetch]``, a channel added or removed and a channel's API
  settings (``[viber]``) need a restart (a warning says so, and the running
  values stay).

The queue is never touched: it lives in the state file.

The pid file sits beside the state file (``publisher.sqlite3.pid``); ``run``
writes it on start and removes it on a clean stop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from publisher.config import load_config
from publisher.core.config import ChannelConfig, Config
from publisher.core.errors import ConfigError, PublisherError

log = logging.getLogger("publisher.service.reload")

#: Sections that cannot change in a running process.
RESTART_SECTIONS = ("server", "storage", "fetch")


class ReloadError(PublisherError):
    """The running service could not be found or signalled."""


# --------------------------------------------------------------------------
# the pid file


def pid_path(config: Config) -> Path:
    """Where the running service writes its pid: beside the state file."""
    state = config.storage.path
    return state.with_name(state.name + ".pid")


def write_pid(path: Path) -> bool:
    """Write this process's pid (atomically: replicas started together in
    one folder each write their own temporary file; the last one named
    wins). A pid file that cannot be written is a warning, not a stop:
    ``reload`` and ``status`` then do not find this service. True if written."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(f"{os.getpid()}\n", encoding="ascii")
        tmp.replace(path)
    except OSError as exc:
        log.warning(
            "could not write the pid file %s (%s); `reload` and `status` will not find "
            "this service: send it SIGHUP to reload",
            path,
            exc.strerror or exc,
        )
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False
    return True


def read_pid(path: Path) -> int | None:
    """The pid in the file, or None when there is no (readable) pid file."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def remove_pid(path: Path) -> None:
    """Remove the pid file if it is this process's."""
    if read_pid(path) == os.getpid():
        try:
            path.unlink()
        except OSError as exc:
            log.warning("could not remove the pid file %s: %s", path, exc)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is someone else's
    return True


def signal_service(config: Config, signum: int = signal.SIGHUP) -> int:
    """Send ``signum`` to the running service; its pid, or ReloadError."""
    path = pid_path(config)
    pid = read_pid(path)
    if pid is None:
        raise ReloadError(
            f"no service is running: there is no pid file {path} "
            "(`viber-publisher run` writes it while it runs)"
        )
    if not process_alive(pid):
        raise ReloadError(
            f"no service is running: the pid file {path} names process {pid}, which does "
            "not exist (the service did not stop cleanly; start it again)"
        )
    try:
        os.kill(pid, signum)
    except PermissionError as exc:
        raise ReloadError(
            f"process {pid} (from {path}) belongs to another user; run this as that user"
        ) from exc
    except ProcessLookupError as exc:
        raise ReloadError(f"process {pid} (from {path}) has just stopped") from exc
    return pid


# --------------------------------------------------------------------------
# what a reload changes


@dataclass
class ReloadPlan:
    """The difference between the running config and the new file."""

    config: Config
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    #: Sources whose ``every`` changed (a subset of ``changed``).
    rescheduled: list[str] = field(default_factory=list)
    #: Sections that differ but need a restart.
    restart_needed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [
            f"{label} {', '.join(names)}"
            for label, names in (
                ("added", self.added),
                ("removed", self.removed),
                ("changed", self.changed),
            )
            if names
        ]
        return "; ".join(parts) if parts else "no source changed"


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """What applying ``new`` to a service running ``old`` does (pure).

    The plan's config is ``new`` with the sections that need a restart kept
    as they are in ``old``.
    """
    keep = {name: getattr(old, name) for name in RESTART_SECTIONS}
    restart = [name for name in RESTART_SECTIONS if getattr(new, name) != keep[name]]
    channels, channel_restart = _channels_after(old, new)
    restart.extend(channel_restart)
    effective = dataclasses.replace(new, channels=channels, **keep)
    before = {s.name: s for s in old.sources}
    after = {s.name: s for s in effective.sources}
    plan = ReloadPlan(effective, restart_needed=restart)
    plan.added = [name for name in after if name not in before]
    plan.removed = [name for name in before if name not in after]
    for name, source in after.items():
        if name in before and before[name] != source:
            plan.changed.append(name)
            if before[name].every != source.every or before[name].enabled != source.enabled:
                plan.rescheduled.append(name)
    return plan


def _channels_after(old: Config, new: Config) -> tuple[tuple[ChannelConfig, ...], list[str]]:
    """The running channels with their new delivery policies; a channel added
    or removed, or one whose API settings changed, needs a restart."""
    restart: list[str] = []
    if [c.name for c in old.channels] != [c.name for c in new.channels]:
        restart.append("channels (added or removed)")
        return old.channels, restart
    kept = []
    for before, after in zip(old.channels, new.channels, strict=True):
        if before.viber != after.viber:
            restart.append(f"the API settings of channel {before.name}")
        kept.append(dataclasses.replace(before, delivery=after.delivery))
    return tuple(kept), restart


def read_config(path: Path) -> Config | None:
    """The config file read again, or None (each problem logged on its own line)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("reload: %s; keeping the running config", problem)
        return None
