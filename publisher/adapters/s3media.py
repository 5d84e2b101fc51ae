"""Media in an S3-compatible object store: the same content-addressed names
as the media folder (:mod:`publisher.adapters.mediafolder`), as objects
``<prefix><name>`` in one bucket, fetched by Viber from ``public_media_url``.

``[storage] media_url = "s3://bucket/prefix"`` chooses it (see
:func:`publisher.compose.open_media`). The endpoint is ``[storage]
s3_endpoint`` if set, else boto3's own (``AWS_ENDPOINT_URL_S3``,
``AWS_ENDPOINT_URL``, else AWS); the region and the credentials are boto3's
(``AWS_REGION``, ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, a profile,
an instance role): never in the TOML.

- A PUT is atomic in S3, so a reader sees the whole object or none; a file is
  uploaded with its SHA-256 (``ChecksumSHA256``), so a source file that
  changes during the upload is refused by the store rather than stored under
  a name that is not its content's.
- Storing bytes that are already there copies the object onto itself, which
  refreshes its ``LastModified`` the way the folder refreshes a file's mtime:
  :meth:`S3MediaStore.prune` does not take it away from a new post.
- The objects are written without an ACL: making them readable at
  ``public_media_url`` is the bucket's policy or the CDN's business.
- Errors of the store become :class:`S3MediaError` (an ``OSError``) with one
  line that says what to do, so callers handle them as any storage error.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import stat
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from publisher.adapters.mediafolder import (
    HASH_CHARS,
    NAME_RE,
    check_name,
    file_name,
    sanitize_ext,
)
from publisher.adapters.web import CACHE_CONTROL, media_type

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
#: S3 deletes at most this many keys per request.
_DELETE_BATCH = 1000
_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3MediaError(OSError):
    """The object store failed; ``str()`` says what to do."""


class S3MediaStore:
    """Content-addressed media objects under ``prefix`` in ``bucket``.
    Thread-safe (a boto3 client is); several processes may share the bucket."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        public_media_url: str,
        *,
        endpoint_url: str | None = None,
        client: S3Client | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.public_media_url = public_media_url.rstrip("/")
        self.location = f"s3://{bucket}/{self.prefix}"
        # A session of its own: credentials are read from the environment now,
        # not from the ones boto3's default session cached earlier.
        self.client: S3Client = client or boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url or None,
            config=BotoConfig(
                connect_timeout=10,
                read_timeout=60,
                retries={"max_attempts": 4, "mode": "standard"},
            ),
        )

    def __repr__(self) -> str:
        return f"S3MediaStore({self.location!r})"

    def key(self, name: str) -> str:
        """The object key of a stored name; ValueError for an invalid name."""
        return self.prefix + check_name(name)

    # ---------------------------------------------------------------- writing

    def put(self, data: bytes, ext: str) -> str:
        """Store ``data``; return its name (``<hash>.<ext>``), as the folder does."""
        suffix = sanitize_ext(ext)
        digest = hashlib.sha256(data)
        name = digest.hexdigest()[:HASH_CHARS] + suffix
        if self._reuse(name, len(data)):
            return name
        self._upload(name, io.BytesIO(data), len(data), digest.digest())
        return name

    def put_file(self, source: Path, ext: str | None = None) -> str:
        """Store a copy of the file ``source``, streamed (never whole in memory)."""
        source = Path(source)
        name, size, sha256 = file_name(source, ext)
        if self._reuse(name, size):
            return name
        with source.open("rb") as fh:
            self._upload(name, fh, size, sha256, source=source)
        return name

    def _upload(
        self, name: str, body: BinaryIO, size: int, sha256: bytes, source: Path | None = None
    ) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.key(name),
                Body=body,
                ContentLength=size,
                ContentType=media_type(name),
                CacheControl=CACHE_CONTROL,
                ChecksumSHA256=base64.b64encode(sha256).decode("ascii"),
            )
        except ClientError as exc:
            if source is not None and _code(exc) in ("BadDigest", "XAmzContentSHA256Mismatch"):
                raise S3MediaError(
                    f"the source file changed while it was being stored as {name}"
                ) from exc
            raise self._error(exc, f"storing {name}") from exc
        except BotoCoreError as exc:
            raise self._error(exc, f"storing {name}") from exc
        log.debug("stored %s in %s", name, self.location)

    def _reuse(self, name: str, size: int) -> bool:
        """An object of this name and size is there: refresh its LastModified
        (a copy onto itself) so that pruning spares it, and reuse it."""
        head = self._head(name)
        if head is None or head.get("ContentLength") != size:
            return False
        key = self.key(name)
        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": key},
                MetadataDirective="REPLACE",
                Metadata={"stored": datetime.now().astimezone().isoformat(timespec="seconds")},
                ContentType=media_type(name),
                CacheControl=CACHE_CONTROL,
            )
        except (ClientError, BotoCoreError) as exc:  # pruned meanwhile, or no copy right
            log.debug("refreshing %s failed (%s): writing it again", name, exc)
            return False
        return True

    # ---------------------------------------------------------------- reading

    def _head(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=self.key(name)))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise self._error(exc, f"looking up {name}") from exc
        except BotoCoreError as exc:
            raise self._error(exc, f"looking up {name}") from exc

    def exists(self, name: str) -> bool:
        """True when ``name`` is valid and an object of that name is stored."""
        if not NAME_RE.fullmatch(name if isinstance(name, str) else ""):
            return False
        return self._head(name) is not None

    def open(self, name: str) -> tuple[BinaryIO, os.stat_result]:
        """A stored object for reading (streamed), with a stat made from its
        size and LastModified. ValueError for an invalid name;
        FileNotFoundError when there is no such object."""
        key = self.key(name)
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise FileNotFoundError(f"no media file {name}") from exc
            raise self._error(exc, f"reading {name}") from exc
        except BotoCoreError as exc:
            raise self._error(exc, f"reading {name}") from exc
        size = int(obj["ContentLength"])
        mtime = obj["LastModified"].timestamp()
        st = os.stat_result(
            (stat.S_IFREG | 0o644, 0, 0, 1, 0, 0, size, int(mtime), int(mtime), int(mtime))
        )
        return io.BufferedReader(_Body(obj["Body"]), _CHUNK), st

    def url(self, public_url: str | None, name: str) -> str:
        """``{public_media_url}/{name}``: Viber fetches media from the bucket
        (or its CDN), not from this service, so ``public_url`` is not used."""
        return f"{self.public_media_url}/{check_name(name)}"

    # ---------------------------------------------------------------- pruning

    def _listing(self) -> Iterator[tuple[str, datetime]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", ()):
                yield obj["Key"], obj["LastModified"]

    def prune(self, in_use: set[str], older_than: datetime) -> list[str]:
        """Delete stored objects not in ``in_use`` last modified before
        ``older_than``; anything under the prefix that is not a stored name
        (a "folder" below it, another program's file) is left alone.
        Returns the names deleted, sorted."""
        if older_than.tzinfo is None:
            raise ValueError("older_than must be timezone-aware")
        doomed: list[str] = []
        try:
            for key, modified in self._listing():
                name = key[len(self.prefix) :]
                if NAME_RE.fullmatch(name) and name not in in_use and modified < older_than:
                    doomed.append(name)
            deleted: list[str] = []
            for start in range(0, len(doomed), _DELETE_BATCH):
                batch = doomed[start : start + _DELETE_BATCH]
                answer = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self.key(n)} for n in batch], "Quiet": True},
                )
                failed = {e.get("Key", "") for e in answer.get("Errors", ())}
                for error in answer.get("Errors", ()):
                    log.warning(
                        "media: cannot delete %s: %s", error.get("Key"), error.get("Message")
                    )
                deleted.extend(n for n in batch if self.key(n) not in failed)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "pruning") from exc
        for name in deleted:
            log.debug("pruned media object %s", name)
        return sorted(deleted)

    # ---------------------------------------------------------------- errors

    def _error(self, exc: ClientError | BotoCoreError, doing: str) -> S3MediaError:
        """One line that says what failed and what to do."""
        where = self.location
        if isinstance(exc, NoCredentialsError):
            return S3MediaError(
                f"{doing} in {where}: no S3 credentials; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the service's environment"
            )
        if isinstance(exc, BotoCoreError):
            return S3MediaError(
                f"{doing} in {where}: {exc}; check [storage] s3_endpoint (or AWS_ENDPOINT_URL) "
                "and that the store is reachable"
            )
        code = _code(exc)
        if code == "NoSuchBucket":
            return S3MediaError(
                f"{doing}: the bucket {self.bucket} does not exist; create it, or correct "
                "[storage] media_url"
            )
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return S3MediaError(
                f"{doing} in {where}: access denied ({code}); check AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, and that they may get, put, delete and list objects there"
            )
        message = exc.response.get("Error", {}).get("Message") or str(exc)
        return S3MediaError(f"{doing} in {where}: {code or 'error'}: {message}")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class _Body(io.RawIOBase):
    """A botocore streaming body as a raw binary stream (for io.BufferedReader)."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
