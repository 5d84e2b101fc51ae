"""viber-publisher: feed a Viber Channel from feeds and folders.

The pipeline, one module a stage::

    sources due            publisher.runner      (schedule, jitter, back-off)
    → fetch                publisher.fetch       (httpx: timeouts, size cap, conditional GET)
    → parse                publisher.sources     (feedparser, JSON Feed, folders → Item)
    → plan                 publisher.plan        (dedup keys, filters, first-run backfill)
    → render               publisher.transform   (text caps, images, video, files → messages)
                           publisher.render      (pure text), publisher.media (pure bytes)
    → queue                publisher.store       (SQLite outbox, one transaction per item)
    → deliver              publisher.policy      (pure: which post may go, and when)
                           publisher.deliver     (retries, crash safety)
    → post                 publisher.viber       (Channels Post API client)
    → record               publisher.store

Planning, rendering and the delivery policy are pure functions of their
inputs (state, item, config, ``now``); I/O lives at the seams: the channel
client, the sources, the store and the media host (``publisher.web``).
"""

__version__ = "0.1.0"
