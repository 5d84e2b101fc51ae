"""``viber-publisher preview``: see exactly what the next poll would post."""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import click

from publisher.cli import EXIT_FAILURE, State, fail, pass_state
from publisher.core.errors import PublisherError


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


@click.command()
@click.option(
    "--source",
    "sources",
    metavar="NAME",
    multiple=True,
    help="Only this source (repeat for several; default: every enabled source).",
)
@click.option(
    "--limit", type=click.IntRange(min=1), metavar="N", help="At most N items per source."
)
@click.option("--new-only", is_flag=True, help="Leave out items that will not be posted.")
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per post on stdout (JSON Lines)."
)
@click.option(
    "--html",
    "html_dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write a page showing the posts as the channel would (DIR/index.html).",
)
@click.option(
    "--width", type=click.IntRange(min=40), default=None, help="Terminal width for the cards."
)
@click.option("--now", "now_text", metavar="TIME", hidden=True, help="Pretend it is TIME (UTC).")
@pass_state
def preview(
    state: State,
    sources: tuple[str, ...],
    limit: int | None,
    new_only: bool,
    as_json: bool,
    html_dir: Path | None,
    width: int | None,
    now_text: str | None,
) -> None:
    """Show what the next poll would post, without posting or changing anything.

    Runs the real pipeline: fetch, parse, dedup against the current state
    (read-only), filters and first-run backfill, rendering (media converted
    into a temporary folder) and the delivery policy (windows, rate limits,
    max_age). Prints one card per item, including those that will not be
    posted and why (unless --new-only). The state file, the media folder and
    folder sources are left exactly as they were.
    """
    from publisher.compose import build_preview
    from publisher.ui.preview import json_lines, print_cards, write_html

    config = state.load()
    known = {s.name for s in config.sources}
    for name in sources:
        if name not in known:
            fail(f"--source {name}: no such source; the sources are: {', '.join(sorted(known))}", 2)
    now = _parse_now(now_text)
    with tempfile.TemporaryDirectory(prefix="viber-preview-") as tmp:
        try:
            result = build_preview(
                config,
                Path(tmp),
                sources=list(sources) if sources else None,
                limit=limit,
                new_only=new_only,
                now=now,
            )
        except PublisherError as exc:
            fail(str(exc), EXIT_FAILURE)
        if as_json:
            sys.stdout.write(json_lines(result))
            sys.stdout.flush()
            for source, error in result.errors:
                click.echo(f"error: {source}: {error}", err=True)
        else:
            from rich.console import Console

            print_cards(result, Console(width=width, highlight=False, emoji=False))
        if html_dir is not None:
            page = write_html(result, html_dir)
            click.echo(f"wrote {page}", err=True)
    if result.errors:
        sys.exit(EXIT_FAILURE)
