"""wrk runs: a path's Lua script (method/body prelude, its setup's globals, its own file), the report the script
writes, and wrk's numbers."""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from .harness import BENCH_DIR, EXIT_WRK, HOST, WRK_SLACK, BenchError, Config, Deadline, Resolved, WrkResult, lua_string

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_RPS_RE = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.M)
_P99_RE = re.compile(r"^\s*99(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_REQUESTS_RE = re.compile(r"^\s*(\d+) requests in ", re.M)
_NON2XX_RE = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_RE = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def parse_wrk(output: str) -> WrkResult:
    """Req/s, p99 latency (ms), request count, non-2xx/3xx count and socket errors from `wrk --latency` output."""
    rps = _RPS_RE.search(output)
    p99 = _P99_RE.search(output)
    requests = _REQUESTS_RE.search(output)
    if not (rps and p99 and requests):
        raise ValueError("no Requests/sec, 99% latency or request count in the output")
    non2xx = _NON2XX_RE.search(output)
    sock = _SOCKET_RE.search(output)
    names = ("connect", "read", "write", "timeout")
    counts = sock.groups() if sock else ("0",) * len(names)
    return WrkResult(
        rps=float(rps.group(1)),
        p99_ms=float(p99.group(1)) * _UNITS_MS[p99.group(2)],
        requests=int(requests.group(1)),
        non_2xx_3xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors={n: int(v) for n, v in zip(names, counts, strict=True)},
    )


@contextmanager
def wrk_script(target: Resolved, cfg: Config) -> Iterator[tuple[Path | None, Path | None]]:
    """The Lua script wrk needs for this path (the method/body prelude, the globals of its setup, then its own
    script) and the report file the script may write; (None, None) when plain wrk flags do."""
    spec = target.spec
    prelude = []
    if spec.method.upper() != "GET":
        prelude.append(f"wrk.method = {lua_string(spec.method.upper())}")
    if spec.body is not None:
        prelude.append(f"wrk.body = {lua_string(spec.body)}")
    own = (BENCH_DIR / spec.script).read_text("utf-8") if spec.script else ""
    if not prelude and not own:
        yield None, None
        return
    with tempfile.TemporaryDirectory(prefix="bench-lua-") as tmp:
        report = Path(tmp) / "report.txt"
        if own:  # the globals a script may use: its report file, wrk -t and what the path's setup returned
            values = {"bench_report": str(report), **target.lua_vars}
            prelude += [f"{name} = {lua_string(value)}" for name, value in values.items()]
            prelude.append(f"bench_threads = {cfg.threads}")
        script = Path(tmp) / f"{spec.name}.lua"
        script.write_text("\n".join([*prelude, own]) + "\n", "utf-8")
        yield script, report if own else None


def read_report(path: Path | None) -> tuple[dict[str, int], tuple[str, ...]]:
    """The `count NAME N` lines of a script's report file, and its other lines."""
    if path is None or not path.exists():
        return {}, ()
    counts: dict[str, int] = {}
    other = []
    for line in path.read_text("utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "count" and parts[2].isdigit():
            counts[parts[1]] = counts.get(parts[1], 0) + int(parts[2])
        elif parts:
            other.append(line)
    return counts, tuple(other)


def run_wrk(url: str, target: Resolved, cfg: Config, duration: int, deadline: Deadline) -> WrkResult:
    """One wrk run against url; raises BenchError when wrk fails, hangs or measures nothing."""
    assert url.startswith(f"http://{HOST}:"), url
    cmd = ["wrk", f"-t{cfg.threads}", f"-c{cfg.connections}", f"-d{duration}s", "--latency"]
    timeout = target.spec.wrk_timeout_s
    if timeout is not None:
        cmd.append(f"--timeout={timeout}s")
    for key, value in target.headers.items():
        cmd += ["-H", f"{key}: {value}"]
    hang = duration + WRK_SLACK + (timeout or 0)
    with wrk_script(target, cfg) as (script, report):
        if script is not None:
            cmd += ["-s", str(script)]
        cmd.append(url)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=deadline.clip(hang), check=False)
        except subprocess.TimeoutExpired:
            raise deadline.timed_out(f"wrk did not finish within {hang:.0f} s on {url}", EXIT_WRK) from None
        counts, lines = read_report(report)
    if done.returncode != 0:
        raise BenchError(f"wrk exited {done.returncode} on {url}: {(done.stderr or done.stdout).strip()}", EXIT_WRK)
    try:
        result = parse_wrk(done.stdout)
    except ValueError as exc:
        raise BenchError(f"cannot read wrk's output on {url} ({exc}):\n{done.stdout}{done.stderr}", EXIT_WRK) from None
    if result.requests == 0:
        raise BenchError(f"wrk completed no request on {url}:\n{done.stdout}", EXIT_WRK)
    return replace(result, counts=counts, report=lines)
