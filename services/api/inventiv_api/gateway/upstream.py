"""Keep-alive HTTP/1.1 from the gateway to the engines.

A general-purpose client costs more CPU per request than the whole rest of the
gateway, so this one does only what proxying to an engine needs: one request on a
pooled connection, the response head parsed by httptools (the parser uvicorn uses),
the body handed over piece by piece as it arrives (chunked or sized), and the
connection returned to its pool when the response is complete.

Failures say whether the request may have reached the engine: `ConnectFailed` means
it certainly did not (refused, unreachable, or a pooled connection the engine had
already closed), so the caller may send it to another instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Collection

import httptools

READ_SIZE = 65536
# How long an engine may keep writing after it was told the client left.
HANG_UP_DRAIN_S = 2.0
DRAIN_OVER = "the engine did not stop within the drain time after the hang-up"


class UpstreamError(Exception):
    """The engine failed us after the request may have reached it."""


class ConnectFailed(UpstreamError):
    """Nothing was delivered: safe to send the request elsewhere."""


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _ResponseParser:
    """httptools callbacks: the head, then body pieces, then the end."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.keep_alive = False
        self.complete = False
        self.pieces: deque[bytes] = deque()
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.head_done = True
        # Asked now: once the message is complete the parser no longer knows.
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.pieces.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class UpstreamResponse:
    def __init__(
        self,
        pool: UpstreamPool,
        key: tuple[str, int],
        connection: _Connection,
        parser: _ResponseParser,
        read_timeout_s: float,
    ) -> None:
        self._pool, self._key, self._connection = pool, key, connection
        self._parser = parser
        self._read_timeout_s = read_timeout_s
        self.status: int = parser.parser.get_status_code()
        self.headers = parser.headers
        self._finished = False
        self._reusable = True
        self._drain_until: float | None = None

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def iter_body(self) -> AsyncIterator[bytes]:
        """Body pieces as they arrive; the connection is pooled again at the end."""
        parser = self._parser
        # Whatever ends the iteration early (an error, the consumer leaving, a cancel)
        # drops the connection; only a complete response puts it back in the pool.
        try:
            while True:
                while parser.pieces:
                    yield parser.pieces.popleft()
                if parser.complete:
                    break
                timeout = self._read_timeout_s
                if self._drain_until is not None:
                    timeout = min(timeout, self._drain_until - time.monotonic())
                    if timeout <= 0:
                        raise UpstreamError(DRAIN_OVER)
                try:
                    data = await asyncio.wait_for(self._connection.reader.read(READ_SIZE), timeout)
                except TimeoutError:
                    if self._drain_until is not None:
                        raise UpstreamError(DRAIN_OVER) from None
                    raise UpstreamError("the engine stopped answering") from None
                except OSError as exc:
                    raise UpstreamError(f"the engine stopped answering: {exc!r}") from exc
                if not data:
                    raise UpstreamError("the engine closed the connection mid-response")
                try:
                    parser.parser.feed_data(data)
                except httptools.HttpParserError as exc:
                    raise UpstreamError(f"unreadable response from the engine: {exc}") from exc
            self._release()
        finally:
            self.abort()

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self.iter_body()])

    def hang_up(self, drain_s: float = HANG_UP_DRAIN_S) -> None:
        """The client left: close our sending side, which an engine served by uvicorn
        (vLLM, the mock engine) takes as a disconnect and stops generating. What it had
        already written still arrives, so the tokens it counted can be counted here too;
        an engine that keeps going is cut off `drain_s` later, whatever it sends."""
        if self._finished:
            return  # complete and maybe pooled again: nothing left to stop
        self._drain_until = time.monotonic() + drain_s
        self._reusable = False
        writer = self._connection.writer
        try:
            if writer.can_write_eof():
                writer.write_eof()
                return
        except OSError:
            pass
        self.abort()

    def abort(self) -> None:
        """Drop the connection (the client left, or the response broke): it cannot be
        reused, and closing it tells the engine to stop generating."""
        if not self._finished:
            self._finished = True
            self._connection.close()

    def _release(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._parser.keep_alive and self._reusable:
            self._pool._put(self._key, self._connection)
        else:
            self._connection.close()


class UpstreamPool:
    def __init__(
        self,
        *,
        max_idle_per_endpoint: int = 256,
        idle_timeout_s: float = 30.0,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 600.0,
    ) -> None:
        self.max_idle = max_idle_per_endpoint
        self.idle_timeout_s = idle_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def send(
        self,
        host: str,
        port: int,
        method: str,
        path: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes = b"",
    ) -> UpstreamResponse:
        """Send one request and wait for the response head."""
        key = (host, port)
        head = [
            f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n".encode(),
            b"Content-Length: %d\r\n" % len(body),
        ]
        head += [name + b": " + value + b"\r\n" for name, value in headers]
        request = b"".join(head) + b"\r\n" + body
        pooled = self._take(key)
        if pooled is not None:
            try:
                return await self._exchange(key, pooled, request, reused=True)
            except ConnectFailed:
                pass  # the engine had closed that idle connection: a fresh one, once
        connection = await self._connect(host, port)
        return await self._exchange(key, connection, request, reused=False)

    async def _connect(self, host: str, port: int) -> _Connection:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self.connect_timeout_s
            )
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(f"cannot connect to {host}:{port}: {exc}") from exc
        return _Connection(reader, writer)

    async def _exchange(
        self, key: tuple[str, int], connection: _Connection, request: bytes, *, reused: bool
    ) -> UpstreamResponse:
        parser = _ResponseParser()
        received = False
        try:
            connection.writer.write(request)
            while not parser.head_done:
                data = await asyncio.wait_for(
                    connection.reader.read(READ_SIZE), self.read_timeout_s
                )
                if not data:
                    raise ConnectionResetError("closed before answering")
                received = True
                parser.parser.feed_data(data)
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            connection.close()
            # A pooled connection the engine closed while idle fails before any byte
            # of an answer: the engine never took the request.
            if reused and not received and not isinstance(exc, TimeoutError):
                raise ConnectFailed(f"stale connection: {exc}") from exc
            raise UpstreamError(f"engine at {key[0]}:{key[1]} failed: {exc}") from exc
        except BaseException:
            connection.close()
            raise
        return UpstreamResponse(self, key, connection, parser, self.read_timeout_s)

    def _take(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if now - connection.idle_since < self.idle_timeout_s and not (
                connection.reader.at_eof()
            ):
                return connection
            connection.close()
        return None

    def _put(self, key: tuple[str, int], connection: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) >= self.max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    def keep_only(self, addresses: Collection[tuple[str, int]]) -> None:
        """Close the idle connections to every engine not in `addresses` (the route
        table's: the others' instances went away). A connection still in use is pooled
        again when its response ends, and closed by the next call."""
        for key in [key for key in self._idle if key not in addresses]:
            for connection in self._idle.pop(key):
                connection.close()

    async def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
