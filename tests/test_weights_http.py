"""A local HTTP server on 127.0.0.1 for the weights tests (never the network).

Serves bytes the test registers, honours `Range: bytes=N-` (206 + Content-Range), and can cut
the connection after a given number of body bytes on the next N requests of a path, or answer
a status code instead of the file. Every request is recorded (path, Range header).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    """What the server does for one path."""

    body: bytes = b""
    cut_after: int | None = None  # send only this many body bytes, then drop the connection
    cuts_left: int = 0  # how many requests get cut
    status: int = 200  # e.g. 404 / 503 to make this mirror fail
    honour_range: bool = True
    requests: list = field(default_factory=list)  # Range header of every request ("" if none)


class _Handler(BaseHTTPRequestHandler):
    server_version = "weights-test/1"

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        spec: Behaviour | None = self.server.files.get(self.path)
        if spec is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range", "")
        spec.requests.append(rng)
        if spec.status != 200:
            self.send_error(spec.status)
            return
        body, start = spec.body, 0
        if rng and spec.honour_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        part = body[start:]
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        if spec.cuts_left > 0 and spec.cut_after is not None:
            spec.cuts_left -= 1
            self.wfile.write(part[: spec.cut_after])
            self.wfile.flush()
            self.close_connection = True  # the client sees a short body: a cut connection
            return
        self.wfile.write(part)


class LocalServer:
    """`with LocalServer() as srv: srv.add('/f', b'...'); url = srv.url('/f')`."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.files = {}
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def add(self, path: str, body: bytes = b"", **kwargs) -> Behaviour:
        """Serve `body` at `path` with the given Behaviour options."""
        spec = Behaviour(body=body, **kwargs)
        self.httpd.files[path] = spec
        return spec

    def url(self, path: str) -> str:
        """Full http://127.0.0.1:PORT URL of `path`."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _get(url: str, rng: str = "") -> tuple[int, bytes]:
    import http.client
    import urllib.request

    req = urllib.request.Request(url, headers={"Range": rng} if rng else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        try:
            return resp.status, resp.read()
        except http.client.IncompleteRead as err:
            return -1, err.partial


def test_server_honours_range_and_cuts_mid_file():
    body = bytes(range(256)) * 40
    with LocalServer() as srv:
        spec = srv.add("/f", body, cut_after=1000, cuts_left=1)
        status, got = _get(srv.url("/f"))
        assert status == -1 and got == body[:1000]  # cut: short body against Content-Length
        status, got = _get(srv.url("/f"), "bytes=1000-")
        assert status == 206 and got == body[1000:]
        assert spec.requests == ["", "bytes=1000-"]
