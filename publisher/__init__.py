"""viber-publisher: feed a Viber Channel from feeds and folders.

The layers, each a package (docs/architecture.md draws them)::

    core/       pure: the item model, Viber's limits, identity and planning,
                poll scheduling, the delivery policy, text and media transforms
    ports.py    the seams, as Protocols
    adapters/   I/O behind the seams: HTTP fetching, feed and folder sources,
                SQLite, the media folder, the Viber client, the local channel
    pipeline/   the pipeline, written once: poll (read, plan, render, apply)
                and deliver; preview is the pipeline without its writes
    compose.py  the composition root: builds the parts from the config
    service/    runs them: threads, signals, reload, the HTTP endpoints
    cli/        the command line, each command loaded when it is used

The pipeline::

    sources due → fetch (http / folder) → parse → plan (dedup, filters, first run)
    → render (text caps, media) → queue (outbox) → deliver (policy, rate, windows)
    → post → record
"""

__version__ = "0.1.0"
