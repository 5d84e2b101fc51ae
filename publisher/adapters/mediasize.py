"""How much the media folder holds: ``status`` shows it, ``/metrics`` reads
it at each scrape (``media_bytes``, ``media_files``).

Only the folder is measured. S3 media are "in the bucket": measuring them
means listing every object (one request per 1,000), which ``status`` and a
scrape every 15 seconds should not cost; the bucket's own metrics (or
``aws s3 ls --summarize --recursive``) say it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from publisher.adapters.mediafolder import NAME_RE


@dataclass(frozen=True)
class MediaSize:
    files: int
    bytes: int


def folder_size(root: Path) -> MediaSize:
    """The stored files in ``root`` (regular files with a stored name; no
    temporary files of writes in progress), and their bytes. A folder that
    does not exist (yet) holds nothing."""
    files = size = 0
    try:
        entries = os.scandir(root)
    except (FileNotFoundError, NotADirectoryError):
        return MediaSize(0, 0)
    with entries:
        for entry in entries:
            if not NAME_RE.fullmatch(entry.name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # pruned meanwhile
                continue
            if stat.S_ISREG(st.st_mode):
                files += 1
                size += st.st_size
    return MediaSize(files, size)


def human_bytes(size: int) -> str:
    """``1536`` → ``"1.5 KB"`` (powers of 1,024, one decimal from KB up)."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
