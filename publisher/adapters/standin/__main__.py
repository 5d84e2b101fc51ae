"""``python -m publisher.adapters.standin``: run a Viber stand-in by hand."""

from __future__ import annotations

import argparse
import os

from publisher.adapters.standin.server import ViberStandIn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m publisher.adapters.standin",
        description="Serve a stand-in for Viber's Channels Post API at http://HOST:PORT/pa.",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("VIBER_AUTH_TOKEN"),
        help="the auth token it accepts (default $VIBER_AUTH_TOKEN)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--name", default="Stand-in Channel", help="the channel's name")
    parser.add_argument(
        "--no-webhook", action="store_true", help="accept posts without a webhook set"
    )
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("give --token or set VIBER_AUTH_TOKEN")
    ViberStandIn(args.token, args.name, require_webhook=not args.no_webhook).run(
        args.host, args.port
    )


if __name__ == "__main__":
    main()
