"""A minimal keep-alive HTTP/1.1 client over asyncio streams, so one core can play
thousands of workers heartbeating without the client being the bottleneck (a full
client library costs several times more CPU per request than the server under test)."""

from __future__ import annotations

import asyncio


class RawHttpPool:
    def __init__(self, host: str, port: int, connections: int) -> None:
        self.host, self.port = host, port
        self.size = connections
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.opened = 0

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle.empty() and self.opened < self.size:
            self.opened += 1
            try:
                return await asyncio.open_connection(self.host, self.port)
            except OSError:
                self.opened -= 1
                raise
        return await self.idle.get()

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        """POST and return the status; the connection goes back to the pool."""
        reader, writer = await self._connection()
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{head}\r\n"
        ).encode() + body
        try:
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            status = int(status_line.split()[1])
        except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
            writer.close()
            self.opened -= 1
            raise ConnectionError("request failed") from None
        self.idle.put_nowait((reader, writer))
        return status

    async def close(self) -> None:
        while not self.idle.empty():
            _, writer = self.idle.get_nowait()
            writer.close()
