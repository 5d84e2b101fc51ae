"""A production-grade embedded HTTP server (cheroot) running a WSGI app in
background threads: ``start()`` returns once the socket listens, ``stop()``
waits for requests in flight. Port 0 picks a free port (``.port`` tells)."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from cheroot import wsgi


class HTTPServer:
    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, threads: int = 8) -> None:
        self.app = app
        self._server = wsgi.Server((host, port), app, numthreads=threads, shutdown_timeout=5)
        # Check for expired connections often, so stop() returns quickly.
        self._server.expiration_interval = 0.05
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.bind_addr[0])

    @property
    def port(self) -> int:
        return int(self._server.bind_addr[1])

    @property
    def url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def start(self) -> HTTPServer:
        """Bind and listen now (errors such as "address in use" raise here),
        then serve in a background thread."""
        self._server.prepare()
        self._thread = threading.Thread(
            target=self._server.serve, name=f"http-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._server.stop()
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> HTTPServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
