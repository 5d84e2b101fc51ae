"""The content-addressed media store: the files Viber fetches from us.

Every stored file is named after its content: the first 32 hex digits of its
SHA-256 plus a lowercase extension (``3f2a…9c.jpg``), flat in one folder.
Storing the same bytes twice gives the same name and one file. Writes are
atomic (a hidden temporary file in the same folder, fsync, rename), so a
reader, the web server included, sees either the whole file or none.

Names are validated strictly (:data:`NAME_RE`); nothing here ever touches a
path outside the root, and :meth:`MediaStore.open` refuses symlinks.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from publisher.core.urls import media_url

log = logging.getLogger(__name__)

#: A stored file's name: hex content hash and a short lowercase extension.
NAME_RE = re.compile(r"[0-9a-f]{32,64}\.[a-z0-9]{1,10}")
#: How many hex digits of the SHA-256 a new name keeps (128 bits).
HASH_CHARS = 32
#: Temporary files of writes in progress start with this.
TEMP_PREFIX = ".tmp-"
_CHUNK = 1024 * 1024
_EXT_ALIASES = {"jpeg": "jpg", "jpe": "jpg"}


def sanitize_ext(ext: str) -> str:
    """``".JPG"``, ``"jpg"``, ``"photo.Jpeg"`` → ``".jpg"``; ``"x.tar.gz"`` → ``".gz"``.

    Keeps ASCII letters and digits only, lowercased, at most 10 of them.
    Raises ValueError when nothing usable is left (``""``, ``"."``, ``".ü"``).
    """
    last = ext.rsplit(".", 1)[-1].lower()
    clean = "".join(ch for ch in last if ch.isascii() and ch.isalnum())[:10]
    if not clean:
        raise ValueError(f"{ext!r} has no usable file extension")
    return "." + _EXT_ALIASES.get(clean, clean)


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid stored-file name, else raise ValueError."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValueError(f"not a media file name: {name!r}")
    return name


def file_name(source: Path, ext: str | None = None) -> tuple[str, int, bytes]:
    """The stored name a file gets (its extension ``ext`` if given, else its
    own), its size and its SHA-256, reading it a chunk at a time."""
    suffix = sanitize_ext(ext if ext is not None else source.name)
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest()[:HASH_CHARS] + suffix, size, digest.digest()


class MediaStore:
    """A flat folder of content-addressed files. Thread-safe; several
    processes may share the folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- writing

    def put(self, data: bytes, ext: str) -> str:
        """Store ``data``; return its name (``<hash>.<ext>``).

        ``ext`` is sanitised with :func:`sanitize_ext` (ValueError if unusable).
        An existing file of the same name and size is reused (and its mtime
        refreshed, so :meth:`prune` does not take it away from a new post).
        """
        suffix = sanitize_ext(ext)
        name = hashlib.sha256(data).hexdigest()[:HASH_CHARS] + suffix
        if self._reuse(name, len(data)):
            return name
        self._write_atomically(name, [data])
        return name

    def put_file(self, source: Path, ext: str | None = None) -> str:
        """Store a copy of the file ``source`` without reading it into memory.

        The extension is ``ext`` if given, else the file's own (sanitised).
        """
        source = Path(source)
        name, size, _ = file_name(source, ext)
        if self._reuse(name, size):
            return name
        with source.open("rb") as fh:
            self._write_atomically(name, iter(lambda: fh.read(_CHUNK), b""), check_hash=True)
        return name

    def _reuse(self, name: str, size: int) -> bool:
        path = self.root / name
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            return False
        try:
            os.utime(path)
        except OSError:  # read-only store or file just pruned: write it again
            return False
        return True

    def _write_atomically(
        self, name: str, chunks: Iterable[bytes], check_hash: bool = False
    ) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=TEMP_PREFIX, suffix=".part")
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    digest.update(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fchmod(fh.fileno(), 0o644)
                os.fsync(fh.fileno())
            if check_hash and not name.startswith(digest.hexdigest()[:HASH_CHARS]):
                raise OSError(f"the source file changed while it was being stored as {name}")
            os.replace(tmp, self.root / name)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        try:
            dir_fd = os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    # ---------------------------------------------------------------- reading

    def path(self, name: str) -> Path:
        """The file's path; ValueError unless ``name`` is a valid stored-file name."""
        return self.root / check_name(name)

    def exists(self, name: str) -> bool:
        """True when ``name`` is valid and a regular file (not a symlink) of that name exists."""
        try:
            st = os.lstat(self.path(name))
        except (ValueError, OSError):
            return False
        return stat.S_ISREG(st.st_mode)

    def open(self, name: str) -> tuple[BinaryIO, os.stat_result]:
        """Open a stored file for reading, with its stat.

        ValueError for an invalid name; FileNotFoundError when there is no
        such regular file (a symlink counts as none: it is never followed).
        """
        path = self.path(name)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except OSError as exc:  # ELOOP for a symlink, ENOENT, EISDIR, ...
            raise FileNotFoundError(f"no media file {name}") from exc
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise FileNotFoundError(f"no media file {name}")
        return os.fdopen(fd, "rb"), st

    @staticmethod
    def url(public_url: str, name: str) -> str:
        """``{public_url}/media/{name}`` (see :mod:`publisher.core.urls`)."""
        return media_url(public_url, check_name(name))

    # ---------------------------------------------------------------- pruning

    def prune(self, in_use: set[str], older_than: datetime) -> list[str]:
        """Delete stored files not in ``in_use`` last modified before ``older_than``.

        Also removes temporary files of writes that died before the cutoff;
        younger ones may be writes in progress and are left alone, as is
        anything that is not a regular file with a stored-file name.
        Returns the names deleted, sorted.
        """
        if older_than.tzinfo is None:
            raise ValueError("older_than must be timezone-aware")
        cutoff = older_than.timestamp()
        deleted: list[str] = []
        with os.scandir(self.root) as entries:
            for entry in entries:
                name = entry.name
                is_temp = name.startswith(TEMP_PREFIX)
                if not is_temp and (not NAME_RE.fullmatch(name) or name in in_use):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(st.st_mode) or st.st_mtime >= cutoff:
                    continue
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
                if not is_temp:
                    deleted.append(name)
                log.debug("pruned media file %s", name)
        return sorted(deleted)
