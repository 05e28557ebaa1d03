"""The coalescing HTTP protocol `felles serve` runs (felles.web.http), over real sockets:
a small response leaves in one send, a streamed one chunk by chunk, and keep-alive,
close and errors behave as in plain uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from felles.web.http import CoalescingHttpProtocol, CoalescingTransport


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.sent.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


async def test_writes_in_one_turn_leave_as_one_send() -> None:
    inner = RecordingTransport()
    outer = CoalescingTransport(inner, asyncio.get_running_loop())
    outer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    outer.write(b"ok")
    assert inner.sent == []  # nothing yet: the turn is not over
    assert outer.get_write_buffer_size() == 40
    await asyncio.sleep(0)
    assert inner.sent == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    outer.write(b"next")
    await asyncio.sleep(0)
    assert inner.sent[-1] == b"next"  # a later turn: its own send


async def test_close_sends_what_was_written_first() -> None:
    inner = RecordingTransport()
    outer = CoalescingTransport(inner, asyncio.get_running_loop())
    outer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    outer.close()
    assert inner.sent == [b"HTTP/1.1 400 Bad Request\r\n\r\n"] and inner.closed
    await asyncio.sleep(0)  # the scheduled flush finds nothing more to send
    assert len(inner.sent) == 1


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for n in range(3):
            await send({"type": "http.response.body", "body": b"chunk%d;" % n, "more_body": True})
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    body = b"hello " + scope["path"].encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=CoalescingHttpProtocol,
        log_config=None,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # bounded: at most 5 s to start
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start in 5 s"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_keep_alive_requests_in_a_row() -> None:
    async with serving() as base, httpx.AsyncClient(base_url=base) as client:
        for n in range(20):
            response = await client.get(f"/r{n}")
            assert response.status_code == 200
            assert response.text == f"hello /r{n}"


async def test_a_streamed_response_arrives_chunk_by_chunk() -> None:
    async with serving() as base, httpx.AsyncClient(base_url=base) as client:
        loop = asyncio.get_running_loop()
        arrivals: list[tuple[float, bytes]] = []
        async with client.stream("GET", "/stream") as response:
            async for chunk in response.aiter_raw():
                arrivals.append((loop.time(), chunk))
        assert b"".join(c for _, c in arrivals) == b"chunk0;chunk1;chunk2;"
        # The first chunk came well before the last was written (no holding back).
        assert arrivals[-1][0] - arrivals[0][0] >= 0.05


async def test_an_app_error_still_answers_500_and_a_bad_request_400() -> None:
    async with serving() as base:
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/boom")).status_code == 500
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 400")


@pytest.mark.parametrize("path", ["/a", "/b"])
async def test_pipelined_requests_answered_in_order(path: str) -> None:
    async with serving() as base:
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        writer.write(request * 3)
        await writer.drain()
        data = b""
        while data.count(b"hello") < 3:
            data += await asyncio.wait_for(reader.read(4096), 5)
        writer.close()
        assert data.count(f"hello {path}".encode()) == 3
