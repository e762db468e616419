"""The fake cloud over HTTP: a threaded `http.server` on loopback and a small router.

Each request: recorded, matched to a route, checked against injected failures, then
authenticated (X-Auth-Token must be a known secret key) and answered under the cloud's
lock. Handlers are plain functions of (cloud, call) returning a `Reply` or raising
`ScalewayError`.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.fake_scaleway import errors
from tests.support.fake_scaleway.cloud import FakeScalewayCloud
from tests.support.fake_scaleway.faults import RawFailure
from tests.support.fake_scaleway.state import Account

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    body: bytes
    headers: dict[str, str]
    account: Account | None = None

    def json(self) -> dict[str, Any]:
        if not self.body.strip():
            return {}
        try:
            data = json.loads(self.body)
        except ValueError:
            raise errors.invalid_argument("body", "the body is not JSON", "format") from None
        if not isinstance(data, dict):
            raise errors.invalid_argument("body", "the body is not a JSON object", "format")
        return data

    def q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def q_list(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def page(self, size_name: str) -> tuple[int, int]:
        """(page, size) from the query, checked as Scaleway checks them."""
        try:
            page = int(self.q("page") or 1)
            size = int(self.q(size_name) or DEFAULT_PAGE_SIZE)
        except ValueError:
            raise errors.invalid_argument("page", "not a whole number", "format") from None
        if page < 1:
            raise errors.invalid_argument("page", "must be 1 or more")
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise errors.invalid_argument(size_name, f"must be between 1 and {MAX_PAGE_SIZE}")
        return page, size

    @property
    def account_or_fail(self) -> Account:
        assert self.account is not None
        return self.account


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def paged(call: Call, items: list[Any], size_name: str) -> tuple[list[Any], int]:
    """One page of `items` and their total (a page past the end is empty)."""
    page, size = call.page(size_name)
    return items[(page - 1) * size : page * size], len(items)


def listing(key: str, items: Any, total: int, *, header: bool) -> Reply:
    """A list answer. The Instance API also says the total in `x-total-count`, which the
    SDK copies over the body's `total_count` (as a string)."""
    headers = {"x-total-count": str(total)} if header else {}
    return Reply(200, {key: items, "total_count": total}, headers)


Handler = Callable[[FakeScalewayCloud, Call], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # with {name} for path parameters
    handler: Handler
    public: bool = False  # answered without credentials (the marketplace catalog)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.pattern) + "$"
        found = re.match(regex, path)
        return found.groupdict() if found else None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests print nothing
        pass

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        call = Call(
            method=self.command,
            path=parts.path,
            params={},
            query=parse_qs(parts.query, keep_blank_values=True),
            body=body,
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        reply = self.server.answer(call)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        headers = dict(reply.headers)
        if isinstance(reply.body, bytes):
            payload = reply.body
            headers.setdefault("Content-Type", "text/plain")
        elif reply.body is None:
            payload = b""
        else:
            payload = json.dumps(reply.body).encode()
            headers["Content-Type"] = "application/json"
        self.send_response(reply.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], cloud: FakeScalewayCloud, routes: list[Route]):
        super().__init__(address, _Handler)
        self.cloud = cloud
        self.routes = routes

    def answer(self, call: Call) -> Reply:
        try:
            reply = self._dispatch(call)
        except RawFailure as exc:
            reply = Reply(exc.status, exc.raw_text.encode())
        except errors.ScalewayError as exc:
            reply = Reply(exc.status, exc.body)
        with self.cloud.lock:
            self.cloud.requests.append((call.method, call.path, reply.status))
        return reply

    def _dispatch(self, call: Call) -> Reply:
        known_path = False
        for route in self.routes:
            params = route.match(call.method, call.path)
            if params is None:
                known_path = known_path or route.match(route.method, call.path) is not None
                continue
            failure = self.cloud.faults.failure_for(call.method, call.path)
            if failure is not None:
                raise failure
            call.params = params
            if not route.public:
                call.account = self.cloud.authenticate(call.headers.get("x-auth-token"))
                if call.method != "GET" and call.account.read_only:
                    raise errors.permissions_denied(call.path.split("/")[1], "write")
            with self.cloud.lock:
                return route.handler(self.cloud, call)
        if known_path:
            return Reply(405, {"type": "invalid_request_error", "message": "method not allowed"})
        raise errors.no_route(call.method, call.path)


class FakeScalewayServer:
    """Serves `cloud` on `host:port` (a free port when 0) in a thread of its own."""

    def __init__(self, cloud: FakeScalewayCloud, *, host: str = "127.0.0.1", port: int = 0):
        from tests.support.fake_scaleway.routes import all_routes

        self.cloud = cloud
        self._httpd = _Server((host, port), cloud, all_routes())
        self.host = str(self._httpd.server_address[0])
        self.port = int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """What the SDK takes as `api_url` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeScalewayServer:
        self.cloud.start()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.cloud.close()

    def __enter__(self) -> FakeScalewayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
