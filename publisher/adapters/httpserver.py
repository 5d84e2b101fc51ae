"""The embedded HTTP server (waitress) running a WSGI app in background
threads: ``start()`` returns once the socket listens, ``stop()`` closes every
connection and waits for the requests in flight. Port 0 picks a free port
(``.port`` tells).

Why waitress: one event loop reads every request, headers and body, before
a worker thread sees it, so clients that send slowly (or never finish) cost
a socket, not a worker; ``/healthz``, ``/readyz`` and Viber's media fetches
are answered while hundreds of such clients hang on. A thread-per-connection
server (cheroot, before) stopped answering with eight of them. A connection
idle for :data:`IDLE_TIMEOUT` seconds is closed; a request head larger than
:data:`MAX_HEADER` bytes, or a body larger than ``max_body``, is refused
before the application runs.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from publisher.core.urls import reachable_url

#: Worker threads running the application (requests arrive complete).
THREADS = 8
#: Connections held at once (idle or slow ones included); beyond it, new
#: connections wait in the listen backlog.
CONNECTION_LIMIT = 1000
#: Seconds a connection may stay idle (nothing received, nothing to send).
IDLE_TIMEOUT = 30
#: The largest request head accepted.
MAX_HEADER = 64 * 1024
#: The largest request body accepted by default (the webhook's own cap is lower).
MAX_BODY = 16 * 1024 * 1024


class HTTPServer:
    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = THREADS,
        *,
        max_body: int = MAX_BODY,
    ) -> None:
        self.app = app
        self._options: dict[str, Any] = {
            "host": host,
            "port": port,
            "threads": threads,
            "connection_limit": CONNECTION_LIMIT,
            "channel_timeout": IDLE_TIMEOUT,
            "cleanup_interval": 5,
            "max_request_header_size": MAX_HEADER,
            "max_request_body_size": max_body,
            # poll(), not select(): no limit of 1024 file descriptors
            "asyncore_use_poll": True,
            "ident": "viber-publisher",
            "clear_untrusted_proxy_headers": True,
        }
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._host = host
        self._port = port

    @property
    def host(self) -> str:
        return str(self._server.effective_host) if self._server is not None else self._host

    @property
    def port(self) -> int:
        return int(self._server.effective_port) if self._server is not None else self._port

    @property
    def url(self) -> str:
        return reachable_url(self.host, self.port)

    def start(self) -> HTTPServer:
        """Bind and listen now (errors such as "address in use" raise here),
        then serve in a background thread."""
        self._server = create_server(self.app, **self._options)
        self._thread = threading.Thread(
            target=self._server.run, name=f"http-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        server = self._server
        socket_map = server._map

        def close_everything() -> None:  # runs in the server's loop
            wasyncore.close_all(socket_map, ignore_all=True)

        server.trigger.pull_trigger(close_everything)
        self._thread.join(timeout=10)
        self._thread = None
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)

    def __enter__(self) -> HTTPServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# waitress logs each connection refused over the limit and a busy queue as
# warnings; a flood of slow clients is not the operator's news every second.
logging.getLogger("waitress.queue").setLevel(logging.ERROR)
