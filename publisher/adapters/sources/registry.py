"""The source types: the one place that knows which module reads which ``type``.

Adding a source type is one module with a class implementing
:class:`publisher.ports.Source` (``read`` and ``finish``) and one line here.
The table is plain strings so that reading the config (``check``,
``--help``) does not import any parser.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from publisher.core.config import SourceConfig
    from publisher.ports import Fetcher, Source


@dataclass(frozen=True)
class SourceType:
    #: ``module:Class`` of the adapter; the class takes (config, fetcher).
    adapter: str
    #: The key that says where the source is: ``url`` or ``path``.
    location: str
    #: What ``check`` says when that key is missing.
    needs: str


SOURCE_TYPES: dict[str, SourceType] = {
    "rss": SourceType("publisher.adapters.sources.rss_source:FeedSource", "url", "the feed's url"),
    "folder": SourceType(
        "publisher.adapters.sources.folder_source:FolderSource", "path", "the folder's path"
    ),
}


def make_source(config: SourceConfig, fetcher: Fetcher | None) -> Source:
    """The adapter for one configured source (``fetcher`` None: one that will
    only ``finish`` items, never read)."""
    kind = SOURCE_TYPES[config.type]
    module_name, _, class_name = kind.adapter.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    source: Source = cls(config, fetcher)
    return source
