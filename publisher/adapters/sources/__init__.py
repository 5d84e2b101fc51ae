"""Sources: where items come from.

- :mod:`publisher.adapters.sources.feed` turns fetched bytes (RSS, Atom, RDF, JSON
  Feed) into items; :mod:`publisher.adapters.sources.jsonfeed` reads JSON Feed.
- :mod:`publisher.adapters.sources.folder` scans a local folder for pictures,
  videos, text posts and files, and moves them to ``posted/`` or
  ``failed/`` afterwards.

Fetching is not parsing: bytes come from :mod:`publisher.adapters.fetch`.
"""

from publisher.adapters.sources.feed import ParsedFeed, parse_feed
from publisher.adapters.sources.folder import FolderScan, move_done, scan_folder

__all__ = ["FolderScan", "ParsedFeed", "move_done", "parse_feed", "scan_folder"]
