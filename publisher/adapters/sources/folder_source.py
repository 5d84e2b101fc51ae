"""A local folder as a source (``type = "folder"``): files dropped in are
posted in name order, then moved to ``posted/`` or ``failed/``."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from publisher.adapters.sources.folder import move_done, scan_folder
from publisher.core.config import SourceConfig
from publisher.core.errors import SourceError
from publisher.core.records import SourceRead, SourceState
from publisher.ports import Fetcher


class FolderSource:
    def __init__(self, config: SourceConfig, fetcher: Fetcher | None = None) -> None:
        assert config.path is not None, "config checks that a folder has a path"
        self.config = config
        self.root: Path = config.path
        #: One move at a time (the deliverer's and a poll's recovery).
        self._moving = threading.Lock()

    def read(self, state: SourceState, now: datetime, *, conditional: bool = True) -> SourceRead:
        """Look at the folder once. A file still being written is pending (see
        ``settle``), one named unusably is rejected; send-at times without an
        offset are in the source's timezone."""
        if not self.root.is_dir():
            raise SourceError(
                f"folder {self.root} does not exist or is not a folder; create it or fix "
                f"sources.{self.config.name}.path"
            )
        scan = scan_folder(
            self.root,
            self.config.name,
            state.snapshot,
            now=now,
            timezone=self.config.policy.timezone,
            settle=self.config.settle,
        )
        return SourceRead(
            items=tuple(scan.items),
            notes=tuple(scan.problems),
            pending=tuple(path.name for path in scan.pending),
            rejected=tuple((str(path), why) for path, why in scan.rejected),
            snapshot=scan.snapshot,
        )

    def finish(self, files: Sequence[Path], ok: bool, reason: str | None) -> list[Path]:
        """Move the item's files to ``posted/`` (``ok``) or ``failed/`` with the reason."""
        if not files:
            return []
        with self._moving:
            return move_done(self.root, [Path(f) for f in files], ok=ok, reason=reason)
