"""Sources: where items come from.

- :mod:`publisher.adapters.sources.feed` turns fetched bytes (RSS, Atom, RDF, JSON
  Feed) into items; :mod:`publisher.adapters.sources.jsonfeed` reads JSON Feed.
- :mod:`publisher.adapters.sources.folder` scans a local folder for pictures,
  videos, text posts and files, and moves them to ``posted/`` or
  ``failed/`` afterwards.

Fetching is not parsing: bytes come from :mod:`publisher.adapters.fetch`.

Each source type is an adapter (``rss_source``, ``folder_source``) named in
:mod:`publisher.adapters.sources.registry`; nothing is imported here, so that
reading the registry loads no parser.
"""
