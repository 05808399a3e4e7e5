"""Throughput (and, in latency phases, p99 latency) of the service's routes relative to its trivial baseline route,
measured with wrk on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
HOST = "127.0.0.1"  # every request of this harness goes to the loopback address only
PG_HOST, PG_PORT, PG_USER, PG_DB = "127.0.0.1", 5432, "postgres", "zuiduo_bench"
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 13
WORKERS = 2
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
TOKEN_TIMEOUT = 60.0  # seconds `python -m app dev token` may take
BENCH_CITIZEN = "13800138000"  # the phone of the citizen whose dev token the authenticated paths send
WRK_SLACK = 30.0  # seconds a wrk run may take beyond its duration before it counts as hung
TIME_BIN = Path("/usr/bin/time")

EXIT_OK, EXIT_SERVER, EXIT_WRK = 0, 2, 3


@dataclass(frozen=True)
class Context:
    """What a path's callables may use: the server's base URL, its environment and data picked at run time."""

    base_url: str
    matter_code: str
    server_env: Mapping[str, str]  # the environment the server of this phase runs with
    deadline: Deadline
    _tokens: dict[tuple[str, ...], str] = field(default_factory=dict, repr=False, compare=False)
    _slugs: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        """One request to the server under test (for setup such as logging in); returns status and body."""
        return http_request(self.base_url, method, path, body=body, headers=headers)

    def citizen_token(self, phone: str = BENCH_CITIZEN, loa: int = 2) -> str:
        """An access token of the citizen with this phone (created if needed), minted once per phase."""
        args = ("--citizen", phone, "--loa", str(loa))
        if args not in self._tokens:
            self._tokens[args] = dev_token(self.server_env, args, self.deadline)
            print(f"minted a dev access token for citizen {phone} (LoA {loa})", flush=True)
        return self._tokens[args]

    def qr_slug(self, matter_code: str | None = None) -> str:
        """The slug of a matter's default QR code (`links.qr.slug` of `GET /api/v1/matters/{code}`; the picked
        matter when none is given), read once per phase."""
        code = matter_code or self.matter_code
        if code not in self._slugs:
            path = f"/api/v1/matters/{code}"
            status, body = self.request("GET", path)
            if status != 200:
                raise BenchError(f"GET {path} answered {status}: {body[:300]!r}", EXIT_SERVER)
            qr = (json.loads(body).get("links") or {}).get("qr") or {}
            slug = qr.get("slug") if isinstance(qr, dict) else None
            if not isinstance(slug, str) or not slug:
                raise BenchError(f"GET {path} names no default QR code (links.qr.slug): {body[:300]!r}", EXIT_SERVER)
            self._slugs[code] = slug
            print(f"default QR code of matter {code}: {slug}", flush=True)
        return self._slugs[code]


Headers = Mapping[str, str]


@dataclass(frozen=True)
class BenchPath:
    """One measured request and the throughput it must reach as a fraction of the baseline's."""

    name: str
    method: str
    path: str | Callable[[Context], str]
    target: float | None  # minimum ratio to the baseline's req/s; None for the baseline and report-only paths
    script: str | None = None  # a Lua file under bench/ for what wrk's flags cannot express
    headers: Headers | Callable[[Context], Headers] = field(default_factory=dict)
    body: str | None = None
    report_only: bool = False  # measured and reported with its ratio, but judged against no target
    expect_status: int | None = None  # the preflight request must answer exactly this, or the run stops
    p99_max_ms: float | None = None  # the median p99 latency must not exceed this (put it in a latency phase)


@dataclass(frozen=True)
class Phase:
    """One server start: extra environment for the server and the paths measured against it."""

    name: str
    title: str
    paths: list[BenchPath]
    env: Mapping[str, str] = field(default_factory=dict)  # added to the server's environment in this phase
    latency: bool = False  # run wrk at BENCH_LATENCY_THREADS/BENCH_LATENCY_CONNECTIONS instead of the normal load


def _bearer(c: Context) -> Headers:
    """The Authorization header of the benchmark citizen (LoA 2)."""
    return {"Authorization": f"Bearer {c.citizen_token()}"}


def _qr(c: Context) -> str:
    """The scan URL of the picked matter's default QR code."""
    return f"/q/{c.qr_slug()}"


QR_JSON_HEADERS = {"Accept": "application/json"}  # what the mini program and apps send to resolve a scan
MOBILE_BROWSER = {  # a phone's browser opening a scanned code
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    "Accept-Language": "zh-CN,zh;q=0.9",
    "User-Agent": (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36"
    ),
}

BASELINE = BenchPath("baseline", "GET", "/bench/baseline", None)
ME_UNCACHED = BenchPath("me_uncached", "GET", "/api/v1/me", None, headers=_bearer, report_only=True, expect_status=200)
# qr_json is judged twice: its throughput ratio in the main phase, its p99 latency in the latency phase.
QR_JSON = BenchPath("qr_json", "GET", _qr, 0.8, headers=QR_JSON_HEADERS, expect_status=200)
QR_JSON_P99 = BenchPath("qr_json", "GET", _qr, None, headers=QR_JSON_HEADERS, expect_status=200, p99_max_ms=10.0)

# The measured paths of the main phase, in the order each round runs them. The first one is the baseline.
# Adding a path is one line; callables receive the Context (e.g. the matter code picked at run time).
PATHS: list[BenchPath] = [
    BASELINE,
    BenchPath("guide_json", "GET", lambda c: f"/api/v1/matters/{c.matter_code}", 0.6),
    BenchPath("h5_guide", "GET", lambda c: f"/m/{c.matter_code}", 0.5),
    BenchPath("me_cached", "GET", "/api/v1/me", 0.5, headers=_bearer, expect_status=200),
    QR_JSON,
    BenchPath("qr_h5", "GET", _qr, 0.6, headers=MOBILE_BROWSER, expect_status=200),
]

# Each phase starts the server afresh with its extra env (same database: it is reset once, before the first phase)
# and measures its paths in their own interleaved rounds, against its own baseline. Adding a phase is one line.
PHASES: list[Phase] = [
    Phase("main", "phase: main", PATHS),
    # Absolute latency targets need a load that does not queue: wrk -t1 -c8 by default (see README).
    Phase("latency", "phase: latency", [BASELINE, QR_JSON_P99], latency=True),
    Phase("token_cache_off", "phase: token cache off", [BASELINE, ME_UNCACHED], env={"TOKEN_CACHE_SIZE": "0"}),
]


class BenchError(RuntimeError):
    """A failure that makes the run meaningless; carries the process exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Config:
    """Run parameters, from BENCH_* environment variables."""

    duration: int
    connections: int
    threads: int
    rounds: int
    warmup: int
    latency_connections: int = 8
    latency_threads: int = 1

    @classmethod
    def from_env(cls) -> Config:
        """Read BENCH_DURATION, BENCH_CONNECTIONS, BENCH_THREADS, BENCH_ROUNDS, BENCH_WARMUP,
        BENCH_LATENCY_CONNECTIONS and BENCH_LATENCY_THREADS."""
        cfg = cls(
            duration=_env_int("BENCH_DURATION", 8),
            connections=_env_int("BENCH_CONNECTIONS", 64),
            threads=_env_int("BENCH_THREADS", 2),
            rounds=_env_int("BENCH_ROUNDS", 3),
            warmup=_env_int("BENCH_WARMUP", 2),
            latency_connections=_env_int("BENCH_LATENCY_CONNECTIONS", 8),
            latency_threads=_env_int("BENCH_LATENCY_THREADS", 1),
        )
        for conns, threads, prefix in (
            (cfg.connections, cfg.threads, "BENCH_"),
            (cfg.latency_connections, cfg.latency_threads, "BENCH_LATENCY_"),
        ):
            if conns < threads:  # wrk refuses to start otherwise
                raise BenchError(f"{prefix}CONNECTIONS ({conns}) must be >= {prefix}THREADS ({threads})", EXIT_SERVER)
        return cfg

    def for_phase(self, phase: Phase) -> Config:
        """The settings a phase runs wrk with: the latency load in latency phases, else the normal one."""
        if not phase.latency:
            return self
        return replace(self, connections=self.latency_connections, threads=self.latency_threads)


def _env_int(name: str, default: int) -> int:
    """A positive integer from the environment, or the default when unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise BenchError(f"{name} must be a positive integer, got {raw!r}", EXIT_SERVER)
    return int(raw)


@dataclass(frozen=True)
class Resolved:
    """A BenchPath with its callables evaluated against the running server."""

    spec: BenchPath
    path: str
    headers: dict[str, str]


@dataclass(frozen=True)
class WrkResult:
    """The numbers of one wrk run."""

    rps: float
    p99_ms: float
    requests: int
    non_2xx_3xx: int
    socket_errors: dict[str, int]


class Deadline:
    """A bound on the whole run that every subprocess timeout is clipped to."""

    def __init__(self, seconds: float) -> None:
        """Start the clock."""
        self.end = time.monotonic() + seconds

    def clip(self, seconds: float) -> float:
        """The given timeout, shortened to what is left; raises when nothing is left."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise BenchError("the benchmark ran past its total time bound", EXIT_WRK)
        return min(seconds, left)

    def timed_out(self, message: str, exit_code: int) -> BenchError:
        """The error for a clipped timeout: the run's time bound when that is what ran out, else message."""
        if self.end - time.monotonic() <= 0.5:
            return BenchError(f"the benchmark ran past its total time bound ({message})", EXIT_WRK)
        return BenchError(message, exit_code)


# ---------------------------------------------------------------- HTTP and setup


def http_request(
    base_url: str, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    """One plain HTTP request (no redirects followed) with a 10 s timeout."""
    host, _, port = base_url.removeprefix("http://").partition(":")
    assert host == HOST, f"refusing to send traffic to {host}"
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def reset_database(deadline: Deadline) -> None:
    """Drop and recreate the benchmark's own PostgreSQL database."""
    base = ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q"]
    cmd = [*base, "-c", f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)", "-c", f"CREATE DATABASE {PG_DB}"]
    env = {**os.environ, "PGCONNECT_TIMEOUT": "5"}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=deadline.clip(30), env=env, check=False)
    except FileNotFoundError:
        raise BenchError("psql not found (apt-get install postgresql-client)", EXIT_SERVER) from None
    except subprocess.TimeoutExpired:
        raise deadline.timed_out("psql timed out resetting the database", EXIT_SERVER) from None
    if done.returncode != 0:
        raise BenchError(f"cannot reset database {PG_DB}: {done.stderr.strip()}", EXIT_SERVER)


def _resp(*parts: str) -> bytes:
    """A Redis command in the RESP wire format."""
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def flush_redis() -> None:
    """Empty the benchmark's Redis database (SELECT + FLUSHDB over a plain socket)."""
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=5) as sock:
            sock.sendall(_resp("SELECT", str(REDIS_DB)) + _resp("FLUSHDB"))
            reply = b""
            while reply.count(b"\r\n") < 2:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                reply += chunk
    except OSError as exc:
        raise BenchError(f"cannot reach Redis at {REDIS_HOST}:{REDIS_PORT}: {exc}", EXIT_SERVER) from None
    if reply != b"+OK\r\n+OK\r\n":
        raise BenchError(f"Redis refused to flush db {REDIS_DB}: {reply!r}", EXIT_SERVER)


_JWT_RE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def dev_token(env: Mapping[str, str], args: Iterable[str], deadline: Deadline) -> str:
    """One access token from `python -m app dev token ARGS`, run with the server's environment (same issuer)."""
    cmd = [sys.executable, "-m", "app", "dev", "token", *args]
    shown = "python " + " ".join(cmd[1:])
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, env=dict(env), stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=deadline.clip(TOKEN_TIMEOUT), check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise deadline.timed_out(f"`{shown}` did not finish within {TOKEN_TIMEOUT:.0f} s", EXIT_SERVER) from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise BenchError(f"`{shown}` exited {done.returncode}: {tail}", EXIT_SERVER)
    tokens = [line.strip() for line in done.stdout.splitlines() if _JWT_RE.fullmatch(line.strip())]
    if len(tokens) != 1:
        raise BenchError(f"`{shown}` printed {len(tokens)} tokens, expected one: {done.stdout[:300]!r}", EXIT_SERVER)
    return tokens[0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- the server under test


class Server:
    """The service as a subprocess in its own process group, optionally wrapped in /usr/bin/time -v."""

    def __init__(
        self,
        port: int,
        log_path: Path,
        time_path: Path | None,
        extra_env: Mapping[str, str] | None = None,
        drop_env: Iterable[str] = (),
    ) -> None:
        """Remember where to listen, the phase's environment and where to write the logs."""
        self.port = port
        self.base_url = f"http://{HOST}:{port}"
        self.log_path = log_path
        self.time_path = time_path
        self.extra_env = dict(extra_env or {})
        self.drop_env = frozenset(drop_env)
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """The server's environment (also used by CLI commands that must see the same stores and issuer)."""
        dropped = {"APP_ENV", "BASE_URL", "LOAD_DEMO", "AUTO_MIGRATE"} | self.drop_env
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        env.update(
            DATABASE_URL=f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_DB}",
            REDIS_URL=f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
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
        """Poll /readyz until it answers 200; fail early if the process exits."""
        assert self.proc is not None
        end = time.monotonic() + deadline.clip(READY_TIMEOUT)
        last = "no answer"
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise BenchError(f"the server exited with code {self.proc.returncode} before it was ready", EXIT_SERVER)
            try:
                status, body = http_request(self.base_url, "GET", "/readyz")
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if status == 200:
                    return
                last = f"HTTP {status}: {body[:200].decode(errors='replace')}"
            time.sleep(0.25)
        raise deadline.timed_out(
            f"the server was not ready within {READY_TIMEOUT:.0f} s (last /readyz: {last})", EXIT_SERVER
        )

    def processes(self) -> list[dict[str, Any]]:
        """Peak and current RSS of every live server process (the time wrapper excluded), from /proc."""
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


# ---------------------------------------------------------------- wrk


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


def _lua_string(text: str) -> str:
    """A Lua long-bracket string literal holding text verbatim."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[\n{text}]{eq}]"  # a newline right after the opening bracket is skipped by Lua


@contextmanager
def wrk_script(spec: BenchPath) -> Iterator[Path | None]:
    """The Lua script wrk needs for this path: the method/body prelude plus the path's own script, if any."""
    prelude = []
    if spec.method.upper() != "GET":
        prelude.append(f"wrk.method = {_lua_string(spec.method.upper())}")
    if spec.body is not None:
        prelude.append(f"wrk.body = {_lua_string(spec.body)}")
    own = (BENCH_DIR / spec.script).read_text("utf-8") if spec.script else ""
    if not prelude and not own:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="bench-lua-") as tmp:
        script = Path(tmp) / f"{spec.name}.lua"
        script.write_text("\n".join([*prelude, own]) + "\n", "utf-8")
        yield script


def run_wrk(url: str, target: Resolved, cfg: Config, duration: int, deadline: Deadline) -> WrkResult:
    """One wrk run against url; raises BenchError when wrk fails, hangs or measures nothing."""
    assert url.startswith(f"http://{HOST}:"), url
    cmd = ["wrk", f"-t{cfg.threads}", f"-c{cfg.connections}", f"-d{duration}s", "--latency"]
    for key, value in target.headers.items():
        cmd += ["-H", f"{key}: {value}"]
    with wrk_script(target.spec) as script:
        if script is not None:
            cmd += ["-s", str(script)]
        cmd.append(url)
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=deadline.clip(duration + WRK_SLACK), check=False
            )
        except subprocess.TimeoutExpired:
            raise deadline.timed_out(
                f"wrk did not finish within {duration + WRK_SLACK:.0f} s on {url}", EXIT_WRK
            ) from None
    if done.returncode != 0:
        raise BenchError(f"wrk exited {done.returncode} on {url}: {(done.stderr or done.stdout).strip()}", EXIT_WRK)
    try:
        result = parse_wrk(done.stdout)
    except ValueError as exc:
        raise BenchError(f"cannot read wrk's output on {url} ({exc}):\n{done.stdout}{done.stderr}", EXIT_WRK) from None
    if result.requests == 0:
        raise BenchError(f"wrk completed no request on {url}:\n{done.stdout}", EXIT_WRK)
    return result


# ---------------------------------------------------------------- the run


def pick_matter(base_url: str) -> str:
    """The code of the first matter in the catalogue; fails clearly when the catalogue is empty."""
    status, body = http_request(base_url, "GET", "/api/v1/matters?page_size=1")
    if status != 200:
        raise BenchError(f"GET /api/v1/matters?page_size=1 answered {status}: {body[:300]!r}", EXIT_SERVER)
    items = json.loads(body).get("items") or []
    if not items:
        raise BenchError(
            "the catalogue is empty: GET /api/v1/matters?page_size=1 returned no items "
            "(is app/matters/demo_catalogue.json present and non-empty?)",
            EXIT_SERVER,
        )
    return str(items[0]["code"])


def resolve(spec: BenchPath, ctx: Context) -> Resolved:
    """Evaluate a path's callables against the running server."""
    path = spec.path(ctx) if callable(spec.path) else spec.path
    headers = spec.headers(ctx) if callable(spec.headers) else spec.headers
    return Resolved(spec=spec, path=path, headers=dict(headers))


def preflight(base_url: str, target: Resolved) -> str:
    """One request per path before load, so a broken route is named instead of merely being fast."""
    body = target.spec.body.encode() if target.spec.body is not None else None
    status, payload = http_request(base_url, target.spec.method, target.path, body=body, headers=target.headers)
    expected = target.spec.expect_status
    if expected is not None and status != expected:
        text = payload[:300].decode(errors="replace")
        raise BenchError(
            f"preflight {target.spec.method} {target.path} ({target.spec.name}) answered {status}, "
            f"expected {expected}: {text}",
            EXIT_SERVER,
        )
    if status >= 400:
        text = payload[:200].decode(errors="replace")
        print(f"  warning: {target.spec.method} {target.path} answered {status}: {text}", flush=True)
    return f"HTTP {status}, {len(payload)} B body"


def summarize(target: Resolved, runs: list[WrkResult], baseline: list[WrkResult]) -> dict[str, Any]:
    """Medians over rounds, the ratio to the baseline, the p99 check and the verdict of one path."""
    rps = statistics.median(r.rps for r in runs)
    p99 = statistics.median(r.p99_ms for r in runs)
    baseline_rps = statistics.median(r.rps for r in baseline)
    baseline_p99 = statistics.median(r.p99_ms for r in baseline)
    non2xx = sum(r.non_2xx_3xx for r in runs)
    sockets = {k: sum(r.socket_errors[k] for r in runs) for k in runs[0].socket_errors}
    ratio = rps / baseline_rps if baseline_rps else 0.0
    goal, p99_max = target.spec.target, target.spec.p99_max_ms
    problems = []
    if non2xx:
        problems.append(f"{non2xx} non-2xx/3xx responses")
    met = not problems and (goal is None or ratio >= goal) and (p99_max is None or p99 <= p99_max)
    verdict = ("-" if goal is None and p99_max is None else "PASS") if met else "FAIL"
    return {
        "name": target.spec.name,
        "method": target.spec.method,
        "path": target.path,
        "target_ratio": goal,
        "p99_max_ms": p99_max,
        "report_only": target.spec.report_only,
        "median_rps": round(rps, 2),
        "median_p99_ms": round(p99, 3),
        "baseline_p99_ms": round(baseline_p99, 3),
        "ratio": round(ratio, 4),
        "result": verdict,
        "non_2xx_3xx": non2xx,
        "socket_errors": sockets,
        "problems": problems,
        "runs": [
            {"round": i + 1, "rps": r.rps, "p99_ms": r.p99_ms, "requests": r.requests,
             "non_2xx_3xx": r.non_2xx_3xx, "socket_errors": r.socket_errors}
            for i, r in enumerate(runs)
        ],
    }  # fmt: skip


def _target_text(row: dict[str, Any]) -> str:
    """The target column: the ratio to reach and/or the p99 limit, "report" for report-only paths, "-" for the
    baseline."""
    parts = []
    if row["target_ratio"] is not None:
        parts.append(f"{row['target_ratio']:.2f}x")
    if row.get("p99_max_ms") is not None:
        parts.append(f"p99<={row['p99_max_ms']:g}ms")
    if parts:
        return " ".join(parts)
    return "report" if row.get("report_only") else "-"


def _verdict_text(row: dict[str, Any]) -> str:
    """A judged path's summary: the ratio against its target and/or the p99 against its limit (with the
    baseline's p99 of the same phase for comparison), then PASS or FAIL."""
    parts = []
    if row["target_ratio"] is not None:
        parts.append(f"{row['ratio']:.2f}x baseline (target {row['target_ratio']:g}x)")
    if row.get("p99_max_ms") is not None:
        base = row["baseline_p99_ms"]
        parts.append(
            f"p99 {row['median_p99_ms']:.2f} ms (limit {row['p99_max_ms']:g} ms; baseline p99 {base:.2f} ms, "
            f"{row['median_p99_ms'] - base:+.2f} ms)"
        )
        if row["target_ratio"] is None:
            parts.append(f"{row['ratio']:.2f}x baseline req/s (not judged here)")
    return ", ".join(parts) + f" {row['result']}"


def _load_text(phase: dict[str, Any]) -> str:
    """The wrk load a phase ran with, e.g. "wrk -t2 -c64"."""
    load = phase.get("load") or {}
    return f"wrk -t{load['threads']} -c{load['connections']}" if load else ""


def print_report(phase: dict[str, Any]) -> None:
    """One phase's section: the results table, one summary line per path and the memory figures."""
    rows, memory = phase["paths"], phase["memory"]
    env = " ".join(f"{k}={v}" for k, v in phase["env"].items())
    load = _load_text(phase)
    print()
    print(f"== {phase['title']}" + (f" ({env})" if env else "") + (f" [{load}]" if load else "") + " ==")
    print(f"{'path':<14}{'req/s (median)':>16}{'p99 ms':>10}{'ratio':>9}{'target':>16}  result")
    for row in rows:
        print(
            f"{row['name']:<14}{row['median_rps']:>16.1f}{row['median_p99_ms']:>10.2f}"
            f"{row['ratio']:>8.2f}x{_target_text(row):>16}  {row['result']}"
        )
    print()
    for row in rows:
        notes = f" ({'; '.join(row['problems'])})" if row["problems"] else ""
        sock = {k: v for k, v in row["socket_errors"].items() if v}
        if sock:
            notes += f" [socket errors: {', '.join(f'{k} {v}' for k, v in sock.items())}]"
        if row.get("report_only"):
            fail = " FAIL" if row["result"] == "FAIL" else ""
            print(
                f"{row['name']}: {row['ratio']:.2f}x baseline (report only), {row['median_rps']:.1f} req/s, "
                f"p99 {row['median_p99_ms']:.2f} ms{fail}{notes}"
            )
        elif row["target_ratio"] is None and row.get("p99_max_ms") is None:
            print(f"{row['name']}: {row['median_rps']:.1f} req/s, p99 {row['median_p99_ms']:.2f} ms{notes}")
        else:
            print(f"{row['name']}: {_verdict_text(row)}{notes}")
    print()
    if "max_rss_kb" in memory:
        kb = memory["max_rss_kb"]
        print(f"server Maximum resident set size (/usr/bin/time -v, largest process): {kb} kB ({kb / 1024:.1f} MiB)")
    else:
        print("server Maximum resident set size: not measured (/usr/bin/time missing or no report)")
    procs = memory.get("processes") or []
    if procs:
        total = memory["sum_vm_hwm_kb"]
        print(f"server peak RSS per process (VmHWM), sum {total} kB ({total / 1024:.1f} MiB):")
        for p in procs:
            print(f"  pid {p['pid']:>7}  {p['vm_hwm_kb']:>8} kB  {p['cmd']}")


def git_commit() -> str | None:
    """The checked-out commit of the project, marked -dirty when the tree has changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")


def write_results(payload: dict[str, Any]) -> Path:
    """Save the run as bench/results/latest.json."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / "latest.json"
    out.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return out


def measure(
    server: Server, paths: list[BenchPath], cfg: Config, deadline: Deadline
) -> tuple[str, list[dict[str, Any]]]:
    """Warm every path, then run them in interleaved rounds; returns the matter code and one row per path."""
    code = pick_matter(server.base_url)
    ctx = Context(base_url=server.base_url, matter_code=code, server_env=server.env(), deadline=deadline)
    targets = [resolve(spec, ctx) for spec in paths]
    print(f"matter code: {code}", flush=True)
    for target in targets:
        answer = preflight(server.base_url, target)
        print(f"warming {target.spec.name}: {target.spec.method} {target.path} ({answer}; {cfg.warmup} s)", flush=True)
        run_wrk(server.base_url + target.path, target, cfg, cfg.warmup, deadline)
    runs: dict[str, list[WrkResult]] = {t.spec.name: [] for t in targets}
    for round_no in range(1, cfg.rounds + 1):
        for target in targets:
            result = run_wrk(server.base_url + target.path, target, cfg, cfg.duration, deadline)
            runs[target.spec.name].append(result)
            extra = f", {result.non_2xx_3xx} non-2xx/3xx" if result.non_2xx_3xx else ""
            print(
                f"round {round_no}/{cfg.rounds} {target.spec.name:<12} {result.rps:>10.1f} req/s  "
                f"p99 {result.p99_ms:8.2f} ms{extra}",
                flush=True,
            )
    baseline = runs[targets[0].spec.name]
    return code, [summarize(t, runs[t.spec.name], baseline) for t in targets]


def check_phases(phases: list[Phase]) -> str | None:
    """What is wrong with the phase list, or None: each phase starts with the baseline, every other path is judged
    against a target ratio and/or a p99 limit or marked report-only, and names are unique."""
    if not phases:
        return "PHASES is empty"
    if len({ph.name for ph in phases}) != len(phases):
        return "phase names must be unique"
    for ph in phases:
        if not re.fullmatch(r"[a-z0-9_]+", ph.name):
            return f"phase name {ph.name!r} must be lower-case letters, digits and underscores (it names files)"
        first = ph.paths[0] if ph.paths else None
        if (
            first is None
            or first.name != "baseline"
            or first.target is not None
            or first.p99_max_ms is not None
            or first.report_only
        ):
            return f"phase {ph.name}: the paths must start with the baseline entry (target None, no p99_max_ms)"
        if len({p.name for p in ph.paths}) != len(ph.paths):
            return f"phase {ph.name}: path names must be unique"
        for path in ph.paths[1:]:
            where = f"phase {ph.name}, path {path.name}"
            if path.report_only and (path.target is not None or path.p99_max_ms is not None):
                return f"{where}: a report-only path has no target and no p99_max_ms"
            if path.target is not None and path.target <= 0:
                return f"{where}: a target ratio must be > 0"
            if path.p99_max_ms is not None and path.p99_max_ms <= 0:
                return f"{where}: p99_max_ms must be > 0"
            if not path.report_only and path.target is None and path.p99_max_ms is None:
                return f"{where}: give a target > 0, a p99_max_ms > 0 or report_only=True"
    return None


def time_bound(phases: list[Phase], cfg: Config) -> float:
    """Seconds the whole run may take: the reset, then per phase start-up, setup, every wrk run and slack."""
    total = 60.0  # database reset and Redis flush
    for ph in phases:
        n = len(ph.paths)
        wrk_s = n * (cfg.rounds * cfg.duration + cfg.warmup)
        total += READY_TIMEOUT + 2 * STOP_TIMEOUT + TOKEN_TIMEOUT + 60 + wrk_s + n * (cfg.rounds + 1) * 15
    return total


def phase_files(index: int, phase: Phase) -> tuple[Path, Path | None]:
    """The server log and /usr/bin/time report of a phase (the first phase keeps the plain names)."""
    suffix = "" if index == 0 else f".{phase.name}"
    time_path = RESULTS_DIR / f"server-time{suffix}.txt" if TIME_BIN.exists() else None
    return RESULTS_DIR / f"server{suffix}.log", time_path


def run_phase(index: int, phase: Phase, cfg: Config, deadline: Deadline, result: dict[str, Any]) -> None:
    """Start the server with the phase's env, measure its paths, always stop it; fills result in place."""
    cfg = cfg.for_phase(phase)
    result["load"] = {"threads": cfg.threads, "connections": cfg.connections}
    log_path, time_path = phase_files(index, phase)
    drop = {k for ph in PHASES for k in ph.env}  # a phase's variables never leak from the caller into another
    server = Server(free_port(), log_path, time_path, extra_env=phase.env, drop_env=drop)
    result["server_log"] = str(log_path.relative_to(ROOT))
    memory: dict[str, Any] = result["memory"]
    env = " ".join(f"{k}={v}" for k, v in phase.env.items())
    print(
        f"\n-- {phase.title}" + (f" ({env})" if env else "") + f" [wrk -t{cfg.threads} -c{cfg.connections}]"
        f": server on {server.base_url}",
        flush=True,
    )
    try:
        server.start()
        started = time.monotonic()
        server.wait_ready(deadline)
        print(f"server ready after {time.monotonic() - started:.1f} s", flush=True)
        code, rows = measure(server, phase.paths, cfg, deadline)
        result["matter_code"] = code
        result["paths"] = rows
        procs = server.processes()
        memory["processes"] = procs
        memory["sum_vm_hwm_kb"] = sum(p["vm_hwm_kb"] for p in procs)
    except BenchError:
        tail = server.log_tail()
        if tail:
            result["server_log_tail"] = tail
        raise
    finally:
        server.stop()
        if time_path is not None:
            memory.update(parse_time_report(time_path))


def main() -> int:
    """Reset the stores, run every phase (start the server, measure, stop it), report."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below on SIGTERM too
    if problem := check_phases(PHASES):
        print(f"bench: {problem}", file=sys.stderr)
        return EXIT_SERVER
    try:
        cfg = Config.from_env()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return exc.exit_code
    bound = time_bound(PHASES, cfg)
    if "--time-bound" in sys.argv[1:]:  # run.sh sets its outer backstop from this
        print(round(bound))
        return EXIT_OK
    if shutil.which("wrk") is None:
        print("bench: wrk not found (apt-get install wrk, or use bench/run.sh)", file=sys.stderr)
        return EXIT_WRK
    deadline = Deadline(bound)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "config": {
            "duration_s": cfg.duration, "connections": cfg.connections, "threads": cfg.threads,
            "rounds": cfg.rounds, "warmup_s": cfg.warmup, "workers": WORKERS,
            "latency_connections": cfg.latency_connections, "latency_threads": cfg.latency_threads,
            "database": f"postgres://{PG_HOST}:{PG_PORT}/{PG_DB}", "redis": f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
            "time_bound_s": round(bound),
        },
        "phases": [],
    }  # fmt: skip
    n_paths = sum(len(ph.paths) for ph in PHASES)
    print(
        f"bench: {len(PHASES)} phases, {n_paths} paths x {cfg.rounds} rounds x {cfg.duration} s, "
        f"wrk -t{cfg.threads} -c{cfg.connections} (latency phases -t{cfg.latency_threads} "
        f"-c{cfg.latency_connections}), server {WORKERS} workers, time bound {bound:.0f} s",
        flush=True,
    )
    exit_code = EXIT_OK
    phases: list[dict[str, Any]] = payload["phases"]
    current: dict[str, Any] | None = None
    try:
        reset_database(deadline)
        flush_redis()
        for index, phase in enumerate(PHASES):
            current = {"name": phase.name, "title": phase.title, "env": dict(phase.env), "paths": [], "memory": {}}
            phases.append(current)
            run_phase(index, phase, cfg, deadline, current)
    except BenchError as exc:
        exit_code = exc.exit_code
        payload["error"] = str(exc)
        if current is not None:
            current["error"] = str(exc)
        print(f"\nbench: FAILED: {exc}", file=sys.stderr)
        tail = current.get("server_log_tail", "") if current else ""
        if tail and exit_code == EXIT_SERVER and current:
            print(f"--- last lines of {current.get('server_log')} ---\n{tail}", file=sys.stderr)
        if "demo_catalogue.json" in tail:
            print("bench: the demo catalogue app/matters/demo_catalogue.json is missing or invalid", file=sys.stderr)
    except KeyboardInterrupt:
        exit_code = 130
        payload["error"] = "interrupted"
        print("\nbench: interrupted", file=sys.stderr)
    measured = [ph for ph in phases if ph["paths"]]
    for ph in measured:
        print_report(ph)
    out = write_results(payload)
    logs = ", ".join(ph["server_log"] for ph in phases if "server_log" in ph)
    print(f"\nresults: {out.relative_to(ROOT)}  (server logs: {logs or 'none'})")
    if measured:
        missed = [f"{ph['name']}/{r['name']}" for ph in measured for r in ph["paths"] if r["result"] == "FAIL"]
        print("bench: all targets met" if not missed else f"bench: targets missed: {', '.join(missed)}")
    return exit_code


if __name__ == "__main__":
    raise SystemExit(main())
