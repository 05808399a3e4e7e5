"""The machine's own ceilings, measured in the same rounds as the paths: a bare Sanic hello-world (bench/hello.py, a
separate process with the service's worker count) and pgbench on a scratch database (-N writes, -S reads)."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import stores
from .harness import (
    EXIT_WRK,
    HOST,
    PGBENCH_BIN,
    PGBENCH_DB,
    PGBENCH_INIT_TIMEOUT,
    PGBENCH_SCALE,
    ROOT,
    WORKERS,
    WRK_SLACK,
    BenchError,
    Config,
    Deadline,
    PgbenchMode,
    PgbenchResult,
    WrkResult,
)
from .server import Server


class HelloServer(Server):
    """bench/hello.py under `python -m sanic` (the venv's python, WORKERS workers, no access log), in its own process
    group, never wrapped in /usr/bin/time (its memory is not judged)."""

    ready_path = "/"
    name = "the hello-world"

    def __init__(self, port: int, log_path: Path) -> None:
        """Remember where to listen and where to write its output."""
        super().__init__(port, log_path, None, 0)

    def env(self) -> dict[str, str]:
        """The caller's environment with unbuffered output; nothing of the service's configuration is read."""
        return {**os.environ, "PYTHONUNBUFFERED": "1"}

    def start(self) -> None:
        """Launch the hello-world on 127.0.0.1 with the service's worker count."""
        cmd = [
            sys.executable, "-m", "sanic", "bench.hello:app", "--host", HOST, "--port", str(self.port),
            "--workers", str(WORKERS), "--no-access-logs", "--no-motd",
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=self.env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip


def _pg_args() -> list[str]:
    """Where pgbench connects: the benchmark's PostgreSQL, as the harness's own user."""
    return ["-h", stores.PG_HOST, "-p", str(stores.PG_PORT), "-U", stores.PG_USER]


def init_pgbench(deadline: Deadline) -> float:
    """Drop and recreate the scratch database and fill it with `pgbench -i -s PGBENCH_SCALE`; returns the seconds
    that took."""
    if not PGBENCH_BIN.exists():
        raise BenchError(f"{PGBENCH_BIN} not found (apt-get install postgresql-client)", EXIT_WRK)
    begin = time.monotonic()
    stores.reset_scratch_database(PGBENCH_DB, deadline)
    cmd = [str(PGBENCH_BIN), "-i", "-q", "-s", str(PGBENCH_SCALE), *_pg_args(), PGBENCH_DB]
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=deadline.clip(PGBENCH_INIT_TIMEOUT), check=False
        )
    except subprocess.TimeoutExpired:
        shown = " ".join(cmd)
        raise deadline.timed_out(f"`{shown}` did not finish within {PGBENCH_INIT_TIMEOUT:.0f} s", EXIT_WRK) from None
    if done.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` exited {done.returncode}: {done.stderr.strip()[-500:]}", EXIT_WRK)
    return time.monotonic() - begin


_TPS_RE = re.compile(r"^tps = ([\d.]+) \(without initial connection time\)", re.M)
_LATENCY_RE = re.compile(r"^latency average = ([\d.]+) ms", re.M)
_PROCESSED_RE = re.compile(r"^number of transactions actually processed: (\d+)", re.M)
_FAILED_RE = re.compile(r"^number of failed transactions: (\d+)", re.M)


def parse_pgbench(output: str, latencies_us: Sequence[int]) -> PgbenchResult:
    """Tps (without initial connection time), average latency, transactions and failures from pgbench's output, and
    the p99 of the per-transaction latencies of its log."""
    tps, latency, processed = _TPS_RE.search(output), _LATENCY_RE.search(output), _PROCESSED_RE.search(output)
    if not (tps and latency and processed):
        raise ValueError("no tps, latency average or transaction count in the output")
    failed = _FAILED_RE.search(output)
    return PgbenchResult(
        tps=float(tps.group(1)),
        latency_ms=float(latency.group(1)),
        p99_ms=_p99(latencies_us) / 1000.0,
        transactions=int(processed.group(1)),
        failed=int(failed.group(1)) if failed else 0,
    )


def _p99(values: Sequence[int]) -> float:
    """The 99th percentile (nearest rank) of the values; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, -(-99 * len(ordered) // 100) - 1))])


def _log_latencies(log_dir: Path) -> list[int]:
    """The latency (µs, the third field) of every transaction in pgbench's per-transaction logs (one per thread)."""
    out: list[int] = []
    for path in log_dir.iterdir():
        for line in path.read_text("utf-8", errors="replace").splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                out.append(int(fields[2]))
    return out


PGBENCH_TRIES = 3  # pgbench runs tried when PostgreSQL has no room for the clients (other sessions come and go)
PGBENCH_RETRY_S = 3.0  # seconds between those tries


def run_pgbench(mode: PgbenchMode, cfg: Config, duration: int, deadline: Deadline) -> PgbenchResult:
    """One pgbench run on the scratch database: -N or -S, as many clients as wrk has connections and as many threads
    (Config.pgbench_load), prepared statements (like asyncpg's), no vacuum between runs; retried a few times when
    PostgreSQL has no room for the clients; raises BenchError when it fails."""
    clients, threads = cfg.pgbench_load
    for attempt in range(1, PGBENCH_TRIES + 1):
        with tempfile.TemporaryDirectory(prefix="bench-pgbench-") as tmp:
            cmd = [
                str(PGBENCH_BIN), f"-{mode}", "-n", "-M", "prepared", f"-c{clients}", f"-j{threads}",
                f"-T{duration}", "-l", f"--log-prefix={tmp}/tx", *_pg_args(), PGBENCH_DB,
            ]  # fmt: skip
            hang = duration + WRK_SLACK
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=deadline.clip(hang), check=False)
            except subprocess.TimeoutExpired:
                raise deadline.timed_out(f"pgbench -{mode} did not finish within {hang:.0f} s", EXIT_WRK) from None
            latencies = _log_latencies(Path(tmp)) if done.returncode == 0 else []
        if done.returncode == 0:
            break
        full = "too many clients" in done.stderr or "remaining connection slots" in done.stderr
        if not full:
            raise BenchError(f"pgbench -{mode} exited {done.returncode}: {done.stderr.strip()[-500:]}", EXIT_WRK)
        if attempt == PGBENCH_TRIES:
            raise BenchError(
                f"pgbench -{mode} -c{clients}: PostgreSQL has no room for {clients} more clients "
                f"({stores.connection_room(deadline)}); close other sessions or set BENCH_PGBENCH_CLIENTS lower",
                EXIT_WRK,
            )
        print(f"  pgbench -{mode}: no room for {clients} clients; retrying in {PGBENCH_RETRY_S:g} s", flush=True)
        time.sleep(PGBENCH_RETRY_S)
    try:
        result = parse_pgbench(done.stdout, latencies)
    except ValueError as exc:
        shown = f"{done.stdout}{done.stderr}"
        raise BenchError(f"cannot read pgbench -{mode}'s output ({exc}):\n{shown}", EXIT_WRK) from None
    if result.transactions == 0:
        raise BenchError(f"pgbench -{mode} completed no transaction:\n{done.stdout}", EXIT_WRK)
    return replace(result, clients=clients)


def ceiling_summary(hello: Sequence[WrkResult], pgbench: dict[str, list[PgbenchResult]]) -> dict[str, Any]:
    """The ceilings' medians over the rounds (what the paths' ratios divide by) and every round's numbers."""
    out: dict[str, Any] = {
        "hello": {
            "median_rps": round(statistics.median(r.rps for r in hello), 2),
            "median_p99_ms": round(statistics.median(r.p99_ms for r in hello), 3),
            "non_2xx_3xx": sum(r.non_2xx_3xx for r in hello),
            "runs": [{"round": i + 1, "rps": r.rps, "p99_ms": r.p99_ms} for i, r in enumerate(hello)],
        },
        "pgbench": {},
    }
    for mode, runs in pgbench.items():
        out["pgbench"][mode] = {
            "clients": runs[0].clients,
            "median_tps": round(statistics.median(r.tps for r in runs), 2),
            "median_latency_ms": round(statistics.median(r.latency_ms for r in runs), 3),
            "median_p99_ms": round(statistics.median(r.p99_ms for r in runs), 3),
            "failed": sum(r.failed for r in runs),
            "runs": [
                {
                    "round": i + 1,
                    "tps": r.tps,
                    "latency_ms": r.latency_ms,
                    "p99_ms": r.p99_ms,
                    "transactions": r.transactions,
                    "failed": r.failed,
                }
                for i, r in enumerate(runs)
            ],
        }
    return out
