"""1,000 simultaneous connections are all answered: the listen backlog (LISTEN_BACKLOG) holds the burst."""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL

pytestmark = pytest.mark.slow
BURST = 1000


async def _attempt(port: int, path: str, start: asyncio.Event) -> str:
    """One connection opened at the signal: its status line, or the error that ended it."""
    await start.wait()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 60)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: burst\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readline(), 60)
        writer.close()
        return head.decode().strip() or "EOF"
    except (OSError, TimeoutError) as exc:  # ConnectionResetError, ConnectionRefusedError, ...
        return type(exc).__name__


async def burst(port: int, path: str, count: int = BURST) -> Counter[str]:
    """Open `count` connections at once, each sending one request; how each ended."""
    start = asyncio.Event()
    tasks = [asyncio.create_task(_attempt(port, path, start)) for _ in range(count)]
    await asyncio.sleep(0.1)
    start.set()
    return Counter(await asyncio.gather(*tasks))


def listen_queue(port: int) -> int:
    """The accept queue's limit of the socket listening on this port (`ss` shows it as Send-Q)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(out.split()[2])


def overflows() -> int:
    """The kernel's count of handshakes dropped because an accept queue was full (all sockets of this namespace)."""
    names, values = (
        line.split() for line in Path("/proc/net/netstat").read_text().splitlines() if line.startswith("TcpExt:")
    )
    return int(dict(zip(names, values, strict=True))["ListenOverflows"])


@pytest.mark.skipif(not REDIS_URL, reason="two workers need Redis (TEST_REDIS_URL)")
def test_every_connection_of_a_burst_of_1000_is_answered(start_server):
    """As the issue found it: 1,000 connections at once against two workers, each answered (none reset)."""
    server = start_server(WORKERS="2", REDIS_URL=REDIS_URL.rsplit("/", 1)[0] + "/7")  # default LISTEN_BACKLOG
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert listen_queue(server.port) == min(1024, somaxconn)  # Sanic's own default was 100
    before = overflows()
    outcomes = asyncio.run(burst(server.port, "/api/v1/matters?page_size=100"))
    assert outcomes == {"HTTP/1.1 200 OK": BURST}, outcomes
    print(f"somaxconn {somaxconn}; handshakes dropped on full accept queues meanwhile: {overflows() - before}")


@pytest.mark.skipif(not REDIS_URL, reason="two workers need Redis (TEST_REDIS_URL)")
def test_listen_backlog_is_configurable(start_server):
    server = start_server(WORKERS="2", REDIS_URL=REDIS_URL.rsplit("/", 1)[0] + "/7", LISTEN_BACKLOG="100")
    assert listen_queue(server.port) == 100
