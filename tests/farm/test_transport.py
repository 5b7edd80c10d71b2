"""The farm client's HTTP transport against a real local server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pytest_shadowfarm.farm.transport import HttpError, request


class Handler(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, bytes, str | None]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        Handler.seen.append((self.command, self.path, body, self.headers.get("X-Sig")))
        if self.path == "/moved":
            self.send_response(307)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/slow":
            threading.Event().wait(2)
        data = json.dumps({"path": self.path, "got": body.decode()}).encode()
        self.send_response(404 if self.path == "/missing" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


@pytest.fixture
def server() -> Iterator[str]:
    Handler.seen = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)


def test_a_post_carries_its_body_and_headers_and_reads_the_json_answer(server: str) -> None:
    answer = request(
        "POST", server + "/api/x?k=1", body=b'{"a": 1}', headers={"X-Sig": "m"}, timeout=5
    )
    assert answer.ok
    assert answer.status_code == 200
    assert answer.json() == {"path": "/api/x?k=1", "got": '{"a": 1}'}
    assert Handler.seen == [("POST", "/api/x?k=1", b'{"a": 1}', "m")]


def test_an_error_status_is_an_answer_not_an_exception(server: str) -> None:
    answer = request("GET", server + "/missing", body=None, headers={}, timeout=5)
    assert not answer.ok
    assert answer.status_code == 404


def test_a_redirect_is_not_followed(server: str) -> None:
    """A signed request must not be carried to another address."""
    answer = request("GET", server + "/moved", body=None, headers={}, timeout=5)
    assert answer.status_code == 307
    assert [path for _, path, _, _ in Handler.seen] == ["/moved"]


def test_a_slow_farm_is_a_timeout(server: str) -> None:
    with pytest.raises(TimeoutError):
        request("GET", server + "/slow", body=None, headers={}, timeout=0.2)


def test_a_refused_connection_is_an_http_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nobody listens there
    with pytest.raises(HttpError, match="ConnectionRefusedError"):
        request("GET", f"http://127.0.0.1:{port}/", body=None, headers={}, timeout=5)


def test_an_answer_that_is_not_json_is_a_value_error(server: str) -> None:
    answer = request("GET", server + "/moved", body=None, headers={}, timeout=5)
    with pytest.raises(ValueError, match="Expecting value"):
        answer.json()


@pytest.mark.parametrize("url", ["ftp://farm/", "farm:8000", "http:///nohost"])
def test_only_http_urls_are_asked(url: str) -> None:
    with pytest.raises(HttpError, match="not an http"):
        request("GET", url, body=None, headers={}, timeout=5)
