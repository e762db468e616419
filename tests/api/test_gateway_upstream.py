"""The gateway's engine client against the real mock engine process: keep-alive reuse,
streamed bodies handed over as they arrive, a dropped stream stopping the engine, a
stale pooled connection replaced transparently, and failures that say whether the
request may have reached the engine."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from inventiv_api.gateway.upstream import ConnectFailed, UpstreamError, UpstreamPool
from inventiv_common.net import free_port
from tests.support.mock_engine import MOCK_MODEL, MockEngineProcess
from tests.support.waiting import wait_until_async

KEY = "ek_upstream_test"
AUTH = [(b"authorization", b"Bearer " + KEY.encode()), (b"content-type", b"application/json")]
# At the engine's 40 ms a token, 40 s of work: an engine that did not stop when its
# client left would still be generating when the tests below stop waiting for it.
LONG = 1000
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


def chat(max_tokens: int, *, stream: bool = False) -> bytes:
    return json.dumps(
        {
            "model": MOCK_MODEL,
            "messages": [{"role": "user", "content": "one two three"}],
            "max_tokens": max_tokens,
            "stream": stream,
        }
    ).encode()


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.fixture
def engine(tmp_path: Path):
    process = MockEngineProcess(tmp_path, "--api-key", KEY, "--token-delay-ms", "40")
    yield process
    process.stop()


def responses_completed(engine: MockEngineProcess) -> float:
    """Answers the engine sent to their last byte (a stream stopped early is not one)."""
    for line in httpx.get(f"{engine.url}/metrics", timeout=5).text.splitlines():
        if line.startswith("mock:responses_completed_total{"):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError("mock:responses_completed_total")


async def generation_ended(engine: MockEngineProcess) -> None:
    """Wait for the engine to run no request any more: its generation task has ended."""

    async def idle() -> bool:
        return await asyncio.to_thread(engine.metric, "num_requests_running") == 0

    await wait_until_async(idle, 30, "the engine stopped generating for a client that left")


async def test_requests_reuse_one_connection(engine: MockEngineProcess) -> None:
    pool = UpstreamPool()
    connects = 0
    original = pool._connect

    async def counting(host: str, port: int):
        nonlocal connects
        connects += 1
        return await original(host, port)

    pool._connect = counting  # type: ignore[method-assign]
    try:
        for _ in range(3):
            response = await pool.send(
                "127.0.0.1", engine.port, "POST", "/v1/chat/completions", AUTH, chat(2)
            )
            body = json.loads(await response.read())
            assert response.status == 200
            assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        assert connects == 1
    finally:
        await pool.close()


async def test_a_stream_comes_through_whole(engine: MockEngineProcess) -> None:
    pool = UpstreamPool()
    try:
        response = await pool.send(
            "127.0.0.1", engine.port, "POST", "/v1/chat/completions", AUTH, chat(8, stream=True)
        )
        assert response.status == 200
        assert response.header(b"content-type") == b"text/event-stream"
        text = b"".join([piece async for piece in response.iter_body()])
        events = [e for e in text.split(b"\n\n") if e.startswith(b"data: {")]
        assert len(events) == 8
        assert text.rstrip().endswith(b"data: [DONE]")
    finally:
        await pool.close()


async def test_stream_pieces_are_handed_over_before_the_end() -> None:
    """A server that sends the end of its stream only once the reader holds the first
    piece: a pool that kept the pieces until the end would never hand that one over."""
    first_read = asyncio.Event()

    async def hold_back_the_end(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(STREAM_HEAD + chunked(b"data: first\n\n"))
        await writer.drain()
        await first_read.wait()
        writer.write(chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()

    server = await asyncio.start_server(hold_back_the_end, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = UpstreamPool()
    try:
        response = await pool.send("127.0.0.1", port, "POST", "/v1/chat/completions", AUTH, b"{}")
        pieces = response.iter_body()
        try:
            first = await asyncio.wait_for(anext(pieces), 30)
        except TimeoutError:
            raise AssertionError("the first piece was held back until the end") from None
        assert first == b"data: first\n\n"
        first_read.set()
        assert b"".join([piece async for piece in pieces]) == b"data: [DONE]\n\n"
    finally:
        await pool.close()
        server.close()


async def test_aborting_a_stream_stops_the_engine(engine: MockEngineProcess) -> None:
    pool = UpstreamPool()
    try:
        before = engine.metric("generation_tokens_total")
        completed = responses_completed(engine)
        response = await pool.send(
            "127.0.0.1", engine.port, "POST", "/v1/chat/completions", AUTH, chat(LONG, stream=True)
        )
        async for _ in response.iter_body():
            break  # the client went away after the first piece
        assert engine.metric("num_requests_running") == 1
        response.abort()
        await generation_ended(engine)
        # It ended early: not one answer sent to its end, a fraction of its tokens made.
        assert responses_completed(engine) == completed
        assert 1 <= engine.metric("generation_tokens_total") - before < LONG
        assert pool._idle.get(("127.0.0.1", engine.port), []) == []
    finally:
        await pool.close()


async def test_hanging_up_stops_the_engine_and_hands_over_all_it_wrote(
    engine: MockEngineProcess,
) -> None:
    pool = UpstreamPool()
    try:
        before = engine.metric("generation_tokens_total")
        completed = responses_completed(engine)
        response = await pool.send(
            "127.0.0.1", engine.port, "POST", "/v1/chat/completions", AUTH, chat(LONG, stream=True)
        )
        text, hung_up = b"", False
        with pytest.raises(UpstreamError, match="closed the connection"):
            async for piece in response.iter_body():
                text += piece
                if not hung_up:
                    response.hang_up()  # the client left after the first piece
                    hung_up = True
        received = text.count(b"data: {")
        await generation_ended(engine)
        assert responses_completed(engine) == completed  # it stopped before its end
        # Every token the engine counted reached us.
        assert engine.metric("generation_tokens_total") - before == received
        assert 1 <= received < LONG
        assert pool._idle.get(("127.0.0.1", engine.port), []) == []
    finally:
        await pool.close()


async def test_a_connection_hung_up_on_is_never_reused(engine: MockEngineProcess) -> None:
    pool = UpstreamPool()
    try:
        response = await pool.send(
            "127.0.0.1", engine.port, "POST", "/v1/chat/completions", AUTH, chat(1)
        )
        response.hang_up()  # the answer may still arrive complete
        await response.read()
        assert pool._idle.get(("127.0.0.1", engine.port), []) == []
        again = await pool.send("127.0.0.1", engine.port, "GET", "/version", [])
        assert again.status == 200
    finally:
        await pool.close()


async def test_a_stale_pooled_connection_is_replaced(engine: MockEngineProcess) -> None:
    pool = UpstreamPool()
    try:
        response = await pool.send("127.0.0.1", engine.port, "GET", "/version", [])
        await response.read()
        assert len(pool._idle[("127.0.0.1", engine.port)]) == 1
        engine.restart()  # the pooled connection is now dead
        response = await pool.send("127.0.0.1", engine.port, "GET", "/version", [])
        assert response.status == 200
        await response.read()
        assert len(pool._idle[("127.0.0.1", engine.port)]) == 1
    finally:
        await pool.close()


async def test_failures_say_whether_the_request_may_have_arrived(
    engine: MockEngineProcess,
) -> None:
    pool = UpstreamPool(connect_timeout_s=1)
    try:
        with pytest.raises(ConnectFailed):
            await pool.send("127.0.0.1", free_port(), "POST", "/v1/chat/completions", AUTH, b"{}")
        # The engine's own refusals are answers, not transport failures.
        response = await pool.send(
            "127.0.0.1", engine.port, "POST", "/v1/chat/completions", [], chat(1)
        )
        assert response.status == 401
        assert json.loads(await response.read())["error"]["code"] == "invalid_api_key"
    finally:
        await pool.close()


async def test_an_engine_that_ignores_the_hang_up_is_cut_off() -> None:
    """A server that keeps streaming after our side is closed, as a non-uvicorn engine
    might: the gateway stops reading it after the drain time, whatever it sends."""

    async def stream_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        try:
            while True:
                writer.write(b"6\r\ndata:x\r\n")
                await writer.drain()
                await asyncio.sleep(0.05)
        except (ConnectionError, OSError):
            pass

    server = await asyncio.start_server(stream_forever, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = UpstreamPool()
    pieces = 0

    async def read_all() -> None:
        nonlocal pieces
        async for _ in response.iter_body():
            pieces += 1
            if pieces == 1:
                response.hang_up(drain_s=0.3)

    try:
        response = await pool.send("127.0.0.1", port, "POST", "/v1/chat/completions", AUTH, b"{}")
        started = time.monotonic()
        with pytest.raises(UpstreamError, match="did not stop"):
            # Without the cut-off this would read for ever: the generous bound says so.
            await asyncio.wait_for(read_all(), 30)
        # Read until the drain time was over (the hang-up came after `started`), not less,
        # and what it went on writing meanwhile was read.
        assert time.monotonic() - started >= 0.3
        assert pieces > 1
    finally:
        await pool.close()
        server.close()
