"""Disk faults of the media store become messages, not lost items.

:class:`GuardedMedia` wraps any :class:`publisher.ports.MediaStore` (the
composition root puts it around the folder or the bucket). When storing
fails because of where media are kept, not because of the item (the disk is
full, the folder is read-only or not ours, an I/O error), it raises a
:class:`StoreError` that says what to do instead of the ``OSError``. The
transform stage turns an ``OSError`` or a ``MediaError`` into a fallback
for that one item (a post without its picture); a ``StoreError`` passes
through it, so the whole poll fails with the reason, writes nothing, and the
same items are read again at the next poll: once the disk is fixed they go
out as they should, by themselves.

It also remembers the last such failure (cleared by the next write that
succeeds) for ``/readyz`` (:attr:`GuardedMedia.failure`).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from publisher.core.errors import StoreError
from publisher.ports import MediaStore

#: The errors that are about where media are kept, whatever the item.
DISK_FAULTS = {
    errno.ENOSPC: "is full: free some space",
    errno.EDQUOT: "is over its disk quota: free some space or raise the quota",
    errno.EROFS: "is on a read-only file system: remount it read-write",
    errno.EIO: "could not be written (I/O error): check the disk (the kernel log says more)",
    errno.EACCES: "cannot be written: check that this user may write it",
    errno.EPERM: "cannot be written: check that this user may write it",
}


class GuardedMedia:
    """A MediaStore whose disk faults are StoreErrors and are remembered.

    ``open_store`` makes the real store; a folder that cannot be created is
    a failure like the others (the service stays up, readyz says why), and
    it is tried again at each use until it works."""

    def __init__(self, open_store: Callable[[], MediaStore], where: str) -> None:
        self._open = open_store
        self._inner: MediaStore | None = None
        #: What the operator knows it as (the folder, or the bucket).
        self.where = where
        #: The last disk fault (a line that says what to do), or None.
        self.failure: str | None = None
        with contextlib.suppress(StoreError):  # remembered in failure; tried again later
            self.inner()

    def inner(self) -> MediaStore:
        """The real store (opened now if it could not be before)."""
        if self._inner is None:
            try:
                self._inner = self._open()
            except OSError as exc:
                line = (
                    f"the media folder {self.where} cannot be created or used "
                    f"({exc.strerror or exc}); check [storage] media_dir and that this user "
                    "may write it; new items wait and go out by themselves once it is fixed"
                )
                self.failure = line
                raise StoreError(line) from exc
        return self._inner

    def _guarded(self, exc: OSError, source: Path | None = None) -> StoreError | None:
        what = DISK_FAULTS.get(exc.errno or 0)
        if what is None:
            return None
        refused = exc.errno in (errno.EACCES, errno.EPERM)
        if refused and exc.filename is not None and Path(str(exc.filename)) == source:
            return None  # reading the item's own file was what was refused
        line = (
            f"the media folder {self.where} {what} ({exc.strerror or exc}); new items wait "
            "and go out by themselves once it is fixed"
        )
        self.failure = line
        return StoreError(line)

    def put(self, data: bytes, ext: str) -> str:
        inner = self.inner()
        try:
            name = inner.put(data, ext)
        except OSError as exc:
            error = self._guarded(exc)
            if error is None:
                raise
            raise error from exc
        self.failure = None
        return name

    def put_file(self, source: Path, ext: str | None = None) -> str:
        inner = self.inner()
        try:
            name = inner.put_file(source, ext)
        except OSError as exc:
            error = self._guarded(exc, source)
            if error is None:
                raise
            raise error from exc
        self.failure = None
        return name

    def exists(self, name: str) -> bool:
        try:
            return self.inner().exists(name)
        except StoreError:
            return False

    def open(self, name: str) -> tuple[BinaryIO, os.stat_result]:
        try:
            inner = self.inner()
        except StoreError as exc:
            raise FileNotFoundError(errno.ENOENT, str(exc), name) from exc
        return inner.open(name)

    def url(self, public_url: str, name: str) -> str:
        return self.inner().url(public_url, name)

    def prune(self, in_use: set[str], older_than: datetime) -> list[str]:
        try:
            inner = self.inner()
        except StoreError as exc:
            raise OSError(errno.EIO, str(exc)) from exc
        return inner.prune(in_use, older_than)

    def __getattr__(self, name: str) -> Any:
        # Anything else of the real store (its root, path...) as it is.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.inner(), name)
