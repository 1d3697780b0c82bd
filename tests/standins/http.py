"""A small threaded HTTP server on 127.0.0.1 with a per-request handler function."""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client: str = ""  # the caller's address (aws:SourceIp)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering


Handler = Callable[[Request], Response]


class Server:
    def __init__(
        self, handler: Handler, port: int = 0, host: str = "127.0.0.1", clock: Callable[[], float] = time.time
    ) -> None:
        outer = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stalls

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    str(self.client_address[0]),
                )
                response = outer.handler(request)
                if response.drop:
                    self.close_connection = True
                    return
                self.send_response(response.status)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def date_time_string(self, timestamp: float | None = None) -> str:
                # The Date header by the server's clock (the AWS stand-in's may be set apart).
                return email.utils.formatdate(outer.clock() if timestamp is None else timestamp, usegmt=True)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.handler = handler
        self.clock = clock
        ThreadingHTTPServer.allow_reuse_address = True
        self._httpd = ThreadingHTTPServer((host, port), _H)  # host: a loopback address
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
