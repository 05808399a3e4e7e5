"""The service under test as a subprocess: started with a phase's environment, polled until ready, its memory read
from /proc and /usr/bin/time, always stopped."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

from . import stores
from .harness import (
    EXIT_SERVER,
    HOST,
    READY_TIMEOUT,
    ROOT,
    STOP_TIMEOUT,
    TIME_BIN,
    WORKERS,
    BenchError,
    Deadline,
    http_request,
)


class Server:
    """The service as a subprocess in its own process group, optionally wrapped in /usr/bin/time -v."""

    ready_path = "/readyz"  # polled until it answers 200
    name = "the server"  # in messages

    def __init__(
        self,
        port: int,
        log_path: Path,
        time_path: Path | None,
        redis_db: int,
        extra_env: Mapping[str, str] | None = None,
        drop_env: Iterable[str] = (),
    ) -> None:
        """Remember where to listen, the Redis db, the phase's environment and where to write the logs."""
        self.port = port
        self.base_url = f"http://{HOST}:{port}"
        self.log_path = log_path
        self.time_path = time_path
        self.redis_db = redis_db
        self.extra_env = dict(extra_env or {})
        self.drop_env = frozenset(drop_env)
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """The server's environment (also used by CLI commands that must see the same stores and issuer)."""
        dropped = {"APP_ENV", "BASE_URL", "LOAD_DEMO", "AUTO_MIGRATE"} | self.drop_env
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        env.update(
            DATABASE_URL=stores.database_url(),
            REDIS_URL=stores.redis_url(self.redis_db),
            WORKERS=str(WORKERS),
            HOST=HOST,
            PORT=str(self.port),
            ACCESS_LOG="false",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        """Launch the service with two workers on PostgreSQL and Redis."""
        cmd = [sys.executable, "-m", "app", "run"]
        if self.time_path is not None:
            self.time_path.unlink(missing_ok=True)
            cmd = [str(TIME_BIN), "-v", "-o", str(self.time_path), *cmd]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=self.env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, deadline: Deadline) -> None:
        """Poll the ready path until it answers 200; fail early if the process exits."""
        assert self.proc is not None
        end = time.monotonic() + deadline.clip(READY_TIMEOUT)
        last = "no answer"
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise BenchError(f"{self.name} exited with code {code} before it was ready", EXIT_SERVER)
            try:
                status, body = http_request(self.base_url, "GET", self.ready_path)
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if status == 200:
                    return
                last = f"HTTP {status}: {body[:200].decode(errors='replace')}"
            time.sleep(0.25)
        raise deadline.timed_out(
            f"{self.name} was not ready within {READY_TIMEOUT:.0f} s (last {self.ready_path}: {last})", EXIT_SERVER
        )

    def processes(self) -> list[dict[str, Any]]:
        """Peak and current RSS of every live server process (the time wrapper excluded), from /proc; `worker` marks
        Sanic's server workers (their environment names them: SANIC_WORKER_NAME), apart from the main process and
        its helpers (multiprocessing's resource tracker and manager)."""
        if self.proc is None:
            return []
        rows = []
        for pid in _group_members(self.proc.pid):
            if self.time_path is not None and pid == self.proc.pid:
                continue
            status = _proc_status(pid)
            if not status:
                continue
            cmdline = _read(f"/proc/{pid}/cmdline").replace("\0", " ").strip()
            rows.append(
                {
                    "pid": pid,
                    "cmd": cmdline[:120],
                    "vm_hwm_kb": status.get("VmHWM", 0),
                    "vm_rss_kb": status.get("VmRSS", 0),
                    "worker": _is_worker(pid),
                }
            )
        return rows

    def stop(self) -> None:
        """SIGINT the process group; SIGKILL what is left after 10 s (Sanic may hang on SIGINT)."""
        proc = self.proc
        if proc is None:
            return
        pgid = proc.pid
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGINT)  # /usr/bin/time ignores SIGINT and waits for its child
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"server did not stop within {STOP_TIMEOUT:.0f} s of SIGINT; killing it", flush=True)
                # Kill the server processes first so that the time wrapper can still write its report.
                _kill(pid for pid in _group_members(pgid) if pid != proc.pid)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    with suppress(ProcessLookupError):
                        os.killpg(pgid, signal.SIGKILL)
                    with suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=5)
        _kill(_group_members(pgid))  # orphaned workers, if any

    def log_tail(self, lines: int = 25) -> str:
        """The last lines of the server's output."""
        try:
            text = self.log_path.read_text("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _read(path: str) -> str:
    """A /proc file's text, or '' when the process is gone."""
    try:
        return Path(path).read_text("utf-8", errors="replace")
    except OSError:
        return ""


def _is_worker(pid: int) -> bool:
    """Whether the process is one of Sanic's server workers (Sanic sets SANIC_WORKER_NAME=Sanic-Server-... in each)."""
    names = [v for v in _read(f"/proc/{pid}/environ").split("\0") if v.startswith("SANIC_WORKER_NAME=")]
    return any(v.removeprefix("SANIC_WORKER_NAME=").startswith("Sanic-Server-") for v in names)


def _group_members(pgid: int) -> list[int]:
    """Live pids whose process group is pgid."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _read(f"/proc/{entry.name}/stat")
        fields = stat.rpartition(")")[2].split()  # after "pid (comm)": state ppid pgrp ...
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _proc_status(pid: int) -> dict[str, int]:
    """The kB-valued fields of /proc/<pid>/status."""
    out = {}
    for line in _read(f"/proc/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[key] = int(parts[0])
    return out


def _kill(pids: Iterable[int]) -> None:
    """SIGKILL each pid that still exists."""
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def parse_time_report(path: Path) -> dict[str, Any]:
    """Maximum resident set size and exit status from a `/usr/bin/time -v` report."""
    text = _read(str(path))
    out: dict[str, Any] = {}
    if m := re.search(r"Maximum resident set size \(kbytes\): (\d+)", text):
        out["max_rss_kb"] = int(m.group(1))
    if m := re.search(r"Exit status: (-?\d+)", text):
        out["exit_status"] = int(m.group(1))
    if m := re.search(r"Command terminated by signal (\d+)", text):
        out["terminated_by_signal"] = int(m.group(1))
    return out
