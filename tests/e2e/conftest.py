"""Real server processes for end-to-end tests (`python -m app run`), always killed at the end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running service process."""

    def __init__(self, env: dict[str, str], log: Path, *, port: int | None = None, base_url: str | None = None) -> None:
        """Start `python -m app run` on a free port (or `port`); BASE_URL is its own address unless given."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {**os.environ, **env, "HOST": "127.0.0.1", "PORT": str(self.port), "BASE_URL": base_url or self.url}
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "run"],
            cwd=ROOT,
            env=full,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 120) -> None:
        """Poll /readyz until it answers 200 (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready: {self.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        """SIGINT, then SIGKILL the process group (Sanic can hang on SIGINT right after start)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start service processes with extra environment; all are stopped after the test."""
    servers: list[Server] = []

    def start(**env: str) -> Server:
        env.setdefault("DATABASE_URL", f"sqlite://{tmp_path / 'e2e.sqlite3'}")
        env.setdefault("ACCESS_LOG", "false")
        server = Server(env, tmp_path / f"server{len(servers)}.log")
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def pg_scratch_db() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for a server process; dropped afterwards."""
    from tests.conftest import scratch_pg_database

    with scratch_pg_database("zuiduo_e2e") as url:
        yield url
