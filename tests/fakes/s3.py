"""A local S3-compatible server for tests: moto in server mode, run as a child process on a free port.

It stands in for MinIO or a government cloud's object store the way tests/fakes/wechat.py stands in
for WeChat: the service talks real S3 over HTTP to it (signed requests, multipart uploads, SSE headers),
and tests look at what it holds through boto3 (installed with moto).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from types import TracebackType
from typing import Any

import httpx

ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"  # the fake accepts any
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalS3:
    """`python -m moto.server` on 127.0.0.1, started on entry and stopped on exit."""

    def __init__(self) -> None:
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The endpoint, e.g. http://127.0.0.1:54321."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalS3:
        """Start the server and wait until it answers (a few tries if a port is taken meanwhile)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        for _ in range(3):
            self.port = _free_port()
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
            )  # fmt: skip
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self._proc.poll() is None:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{self.url}/moto-api/", timeout=1).status_code < 500:
                        return self
                time.sleep(0.1)
            self.stop()
        raise RuntimeError("moto server did not start")

    def stop(self) -> None:
        """Stop the child process."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def client(self) -> Any:
        """A boto3 S3 client of the server (what tests look through)."""
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.url, region_name=REGION, aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )  # fmt: skip

    def new_bucket(self) -> str:
        """A fresh, empty bucket (one per test keeps tests apart)."""
        name = f"materials-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def __enter__(self) -> LocalS3:
        """Start on entry."""
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop on exit."""
        self.stop()
