"""One service per state file: an OS-level lock held for the life of a ``run``.

:meth:`StateLock.acquire` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on
``<state file>.lock`` beside the state file and writes the holder's pid in
it. A second ``run`` (or ``run --once``) on the same state finds it held and
stops at once with a :class:`StoreError` naming the holder's pid, before it
opens the state file: no crash recovery, no webhook, no pid file.

The kernel drops the lock when the holder exits, however it exits (a
``SIGKILL`` too), so a stale lock file never blocks the next start. The
other commands (``status``, ``preview``, ``post``, ``retry``) do not take it:
they work beside a running service, each change one short transaction.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from publisher.core.errors import StoreError


def lock_path(state_path: Path | str) -> Path:
    """The lock file of the state file ``state_path``."""
    path = Path(state_path)
    return path.with_name(path.name + ".lock")


class StateLock:
    """The held lock; :meth:`release` (or the process's exit) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, state_path: Path | str) -> StateLock:
        """Take the lock of ``state_path`` or raise StoreError naming its holder."""
        path = lock_path(state_path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(
                f"{path}: cannot create the state file's lock ({exc.strerror}); check that "
                "this user may write the state file's folder and that its disk is not "
                "mounted read-only"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise StoreError(f"{path}: cannot lock the state file ({exc.strerror})") from exc
            who = f"pid {holder}" if holder else "another process"
            raise StoreError(
                f"the state file {state_path} is in use by another viber-publisher run "
                f"({who}); stop that one first (`viber-publisher status` works beside it)"
            ) from exc
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the pid is a courtesy for the next one; the lock is what counts
        return cls(path, fd)

    def release(self) -> None:
        """Free the lock (the file stays: removing it would race a new holder)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
