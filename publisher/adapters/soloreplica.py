"""The leases of a service that is alone on its state (a SQLite file, or in
memory): every lease is granted, and giving them up frees the state lock
that made it alone (:mod:`publisher.adapters.sqlite.lock`)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

from publisher.core.records import ReplicaInfo


class Releasable(Protocol):
    def release(self) -> None: ...


class SoloReplica:
    """:class:`publisher.ports.Leases` for one process."""

    shared = False

    def __init__(self, lock: Releasable | None = None) -> None:
        self.lock = lock
        self.replica = f"{socket.gethostname()}:{os.getpid()}"
        self._started = datetime.now(UTC)
        self._channels: set[str] = set()

    def take_source(self, name: str) -> bool:
        return True

    def release_source(self, name: str) -> None:
        return None

    def take_channel(self, name: str) -> bool:
        self._channels.add(name)
        return True

    def release_channel(self, name: str) -> None:
        self._channels.discard(name)

    def problem(self) -> str | None:
        return None

    def replicas(self, channels: Iterable[str] = ()) -> list[ReplicaInfo]:
        return [ReplicaInfo(self.replica, self._started, tuple(sorted(self._channels)), me=True)]

    def release(self) -> None:
        if self.lock is not None:
            lock, self.lock = self.lock, None
            lock.release()
