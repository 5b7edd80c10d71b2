"""One HTTP request to the farm, on the standard library's ``http.client``.

The plugin talks to its farm a handful of times per run (prove, reserve, claim, give
back), on the run's critical path: ``requests`` took 80-200 ms to import in the
controller before the first claim, ``http.client`` a few. What the farm client needs is
small: a method, a URL (``http`` or ``https``), a body, headers, one timeout for connect
and read, and no redirects followed (a redirect would carry a signed request elsewhere).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["HttpError", "Response", "request"]


class HttpError(OSError):
    """The request did not get an answer (refused, reset, a malformed answer)."""


@dataclass(frozen=True)
class Response:
    status_code: int
    body: bytes

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not JSON."""
        return json.loads(self.body)


def request(
    method: str,
    url: str,
    *,
    body: bytes | None,
    headers: Mapping[str, str],
    timeout: float,
) -> Response:
    """``method url`` on a connection of its own; TimeoutError when the farm is slower
    than ``timeout`` (to connect, or between any two reads), HttpError on any other
    failure."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(f"not an http(s) URL: {url!r}")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    conn = kind(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, target, body=body, headers=dict(headers))
        answer = conn.getresponse()
        return Response(answer.status, answer.read())
    except TimeoutError:
        raise
    except (OSError, http.client.HTTPException) as exc:
        raise HttpError(type(exc).__name__) from exc
    finally:
        conn.close()
