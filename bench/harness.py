"""What every part of the benchmark shares: the run's settings (BENCH_*) and time bound, a phase's Context, the
declarations of paths and phases, wrk's numbers, requests to the server under test, the service's CLI (dev tokens,
staff accounts) and the helpers of scripted writes."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
HOST = "127.0.0.1"  # every request of this harness goes to the loopback address only
WORKERS = 2
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
TOKEN_TIMEOUT = 60.0  # seconds `python -m app dev token` may take
PER_CITIZEN_S = 0.1  # the most minting one citizen's token may take (`python -m app dev token --citizens N`)
BENCH_CITIZEN = "13800138000"  # the phone of the citizen whose dev token the authenticated paths send
WRK_SLACK = 30.0  # seconds a wrk run may take beyond its duration before it counts as hung
TIME_BIN = Path("/usr/bin/time")
REDIS_DB = 13  # the Redis db of the benchmark unless BENCH_REDIS_DB names another (the reset flushes it)
STORM_WAVE = 40  # citizens per storm wave; a wave storms STORM_SLOTS slots of one day ...
DESK_SCANS_PER_S = 2500  # default BENCH_DESK_BOOKINGS: this many first scans per second of desk_checkin load ...
DESK_TICKETS_MAX = 80_000  # ... at most
WECHAT_SCANS_PER_S = 4000  # default BENCH_WECHAT_MESSAGES: this many messages per second of wechat_scan load ...
WECHAT_MESSAGES_MAX = 100_000  # ... at most
EXIT_OK, EXIT_SERVER, EXIT_WRK = 0, 2, 3
PGBENCH_BIN = Path("/usr/bin/pgbench")
PGBENCH_DB = "zuiduo_pgbench"  # the scratch database of the pgbench ceiling, dropped and recreated once per run
PGBENCH_SCALE = 10  # pgbench -i -s: 1,000,000 accounts (about 160 MB with indexes); see "The ceilings" in the README
PGBENCH_INIT_TIMEOUT = 240.0  # seconds the scratch database's reset and `pgbench -i` may take
WORKER_RSS_MAX_MIB = 120  # the most peak RSS (VmHWM) a worker of the service may reach in any phase

PgbenchMode = Literal["N", "S"]  # pgbench -N (simple-update: the write ceiling) or -S (select-only: the read ceiling)
PGBENCH_MODES: tuple[PgbenchMode, ...] = ("N", "S")


class BenchError(RuntimeError):
    """A failure that makes the run meaningless; carries the process exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Context:
    """What a path's callables may use: the server's base URL, its environment and data picked at run time."""

    base_url: str
    matter_code: str
    server_env: Mapping[str, str]  # the environment the server of this phase runs with
    deadline: Deadline
    cfg: Config  # the wrk settings of this phase (and the sizes of the booking phase)
    work_dir: Path  # a temporary directory of this phase, for data files of Lua scripts
    state: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # what path setups share
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
    """One measured request and what it must reach: fractions of the ceilings' throughput and/or p99 limits."""

    name: str
    method: str
    path: str | Callable[[Context], str]
    target: float | None  # minimum ratio to the in-app baseline's req/s; None when not judged against it
    script: str | None = None  # a Lua file under bench/ for what wrk's flags cannot express
    headers: Headers | Callable[[Context], Headers] = field(default_factory=dict)
    body: str | None = None
    report_only: bool = False  # measured and reported with its ratio, but judged against no target
    expect_status: int | None = None  # the preflight request must answer exactly this, or the run stops
    p99_max_ms: float | None = None  # the median p99 latency must not exceed this (put it in a latency phase)
    # Scripted writes (see "Scripted writes" in the README): data prepared once per phase, a preflight of their own,
    # a check of what the runs wrote, answers that are not failures, wrk's --timeout, and time for all that.
    setup: Callable[[Context], Mapping[str, str]] | None = None  # prepares data; returns Lua globals for the script
    preflight: Callable[[Context], tuple[int, bytes]] | None = None  # replaces the static preflight request
    check: Callable[[Context, Sequence[WrkResult]], dict[str, Any]] | None = None  # after the rounds (all runs)
    answers: frozenset[int] = frozenset()  # non-2xx statuses that are answers, not failures (script counts them)
    wrk_timeout_s: int | None = None  # wrk --timeout (wrk's default is 2 s)
    setup_s: Callable[[Config], float] | None = None  # the most setup + check may take (for the time bound)
    # The machine's ceilings (see "The ceilings" in the README): a bare Sanic hello-world and pgbench on a scratch
    # database, both measured in every round of the phase.
    vs_hello: float | None = None  # minimum ratio to the hello-world's req/s
    ceiling: PgbenchMode | None = None  # the pgbench mode this path's database work compares with (runs it)
    vs_pgbench: float | None = None  # minimum ratio to that pgbench mode's tps (needs `ceiling`)
    p99_vs_hello: float | None = None  # the median p99 must not exceed this many times the hello-world's median p99

    @property
    def judged(self) -> bool:
        """Whether any target or limit is set on this path."""
        limits = (self.target, self.vs_hello, self.vs_pgbench, self.p99_vs_hello, self.p99_max_ms)
        return any(v is not None for v in limits)


@dataclass(frozen=True)
class Phase:
    """One server start: extra environment for the server and the paths measured against it."""

    name: str
    title: str
    paths: list[BenchPath]
    env: Mapping[str, str] = field(default_factory=dict)  # added to the server's environment in this phase
    latency: bool = False  # run wrk at BENCH_LATENCY_THREADS/BENCH_LATENCY_CONNECTIONS instead of the normal load

    @property
    def pgbench_modes(self) -> list[PgbenchMode]:
        """The pgbench modes some path of the phase compares with, in PGBENCH_MODES order (only these run)."""
        return [m for m in PGBENCH_MODES if any(p.ceiling == m for p in self.paths)]


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
    citizens: int = 400  # citizens of the booking storm (BENCH_BOOKING_CITIZENS)
    desk_bookings: int = 0  # tickets desk_checkin scans (BENCH_DESK_BOOKINGS); 0: sized from the run's length
    wechat_messages: int = 0  # messages wechat_scan sends (BENCH_WECHAT_MESSAGES); 0: sized from the run's length
    redis_db: int = REDIS_DB  # the Redis db the server uses and the reset flushes (BENCH_REDIS_DB)
    pgbench_clients: int = 0  # pgbench -c (BENCH_PGBENCH_CLIENTS); 0: the phase's wrk connection count

    @classmethod
    def from_env(cls) -> Config:
        """Read BENCH_DURATION, BENCH_CONNECTIONS, BENCH_THREADS, BENCH_ROUNDS, BENCH_WARMUP,
        BENCH_LATENCY_CONNECTIONS, BENCH_LATENCY_THREADS, BENCH_BOOKING_CITIZENS, BENCH_DESK_BOOKINGS,
        BENCH_WECHAT_MESSAGES, BENCH_REDIS_DB and BENCH_PGBENCH_CLIENTS."""
        cfg = cls(
            duration=_env_int("BENCH_DURATION", 8),
            connections=_env_int("BENCH_CONNECTIONS", 64),
            threads=_env_int("BENCH_THREADS", 2),
            rounds=_env_int("BENCH_ROUNDS", 3),
            warmup=_env_int("BENCH_WARMUP", 2),
            latency_connections=_env_int("BENCH_LATENCY_CONNECTIONS", 8),
            latency_threads=_env_int("BENCH_LATENCY_THREADS", 1),
            citizens=_env_int("BENCH_BOOKING_CITIZENS", 400),
            desk_bookings=_env_int("BENCH_DESK_BOOKINGS", 0),
            wechat_messages=_env_int("BENCH_WECHAT_MESSAGES", 0),
            redis_db=_env_int("BENCH_REDIS_DB", REDIS_DB, minimum=0),
            pgbench_clients=_env_int("BENCH_PGBENCH_CLIENTS", 0, minimum=0),
        )
        if cfg.citizens < STORM_WAVE:
            raise BenchError(f"BENCH_BOOKING_CITIZENS must be at least {STORM_WAVE} (one storm wave)", EXIT_SERVER)
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

    @property
    def pgbench_load(self) -> tuple[int, int]:
        """pgbench's -c and -j: wrk's connections and threads unless BENCH_PGBENCH_CLIENTS sets the clients."""
        clients = self.pgbench_clients or self.connections
        return clients, min(self.threads, clients)

    @property
    def measured_s(self) -> int:
        """Seconds of wrk load per path: the warm-up and every round."""
        return self.warmup + self.rounds * self.duration

    @property
    def desk_tickets(self) -> int:
        """Bookings to create for desk_checkin: BENCH_DESK_BOOKINGS, else enough for DESK_SCANS_PER_S first scans per
        second of its load."""
        return self.desk_bookings or min(DESK_TICKETS_MAX, max(200, DESK_SCANS_PER_S * self.measured_s))

    @property
    def wechat_count(self) -> int:
        """Messages to generate for wechat_scan: BENCH_WECHAT_MESSAGES, else enough for WECHAT_SCANS_PER_S per second of
        its load."""
        return self.wechat_messages or min(WECHAT_MESSAGES_MAX, max(200, WECHAT_SCANS_PER_S * self.measured_s))


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    """An integer of at least `minimum` (a positive one by default) from the environment, or the default when unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise BenchError(f"{name} must be {what}, got {raw!r}", EXIT_SERVER)
    return int(raw)


@dataclass(frozen=True)
class Resolved:
    """A BenchPath with its callables evaluated against the running server."""

    spec: BenchPath
    path: str
    headers: dict[str, str]
    lua_vars: dict[str, str] = field(default_factory=dict)  # globals the path's setup gave its Lua script


@dataclass(frozen=True)
class WrkResult:
    """The numbers of one wrk run."""

    rps: float
    p99_ms: float
    requests: int
    non_2xx_3xx: int
    socket_errors: dict[str, int]
    counts: dict[str, int] = field(default_factory=dict)  # `count NAME N` lines of the script's report file
    report: tuple[str, ...] = ()  # the report file's other lines (for the path's check)


@dataclass(frozen=True)
class PgbenchResult:
    """The numbers of one pgbench run."""

    tps: float  # without initial connection time
    latency_ms: float  # pgbench's "latency average"
    p99_ms: float  # from the per-transaction log
    transactions: int
    failed: int
    clients: int = 0  # pgbench -c of the run


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


def http_request_typed(base_url: str, path: str) -> tuple[int, str, bytes]:
    """One plain GET (no redirects followed, 10 s timeout); returns status, Content-Type and body."""
    host, _, port = base_url.removeprefix("http://").partition(":")
    assert host == HOST, f"refusing to send traffic to {host}"
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        conn.close()


_JWT_RE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def run_cli(
    env: Mapping[str, str], args: Iterable[str], deadline: Deadline, timeout: float = TOKEN_TIMEOUT, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """`python -m app ARGS` run with the server's environment (same stores and issuer); fails unless it exits 0."""
    cmd = [sys.executable, "-m", "app", *args]
    shown = "python " + " ".join(cmd[1:])
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, env=dict(env), input=stdin, capture_output=True, text=True,
            timeout=deadline.clip(timeout), check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise deadline.timed_out(f"`{shown}` did not finish within {timeout:.0f} s", EXIT_SERVER) from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise BenchError(f"`{shown}` exited {done.returncode}: {tail}", EXIT_SERVER)
    return done


def dev_tokens(
    env: Mapping[str, str], args: Iterable[str], deadline: Deadline, count: int = 1, timeout: float = TOKEN_TIMEOUT
) -> list[str]:
    """`count` access tokens from `python -m app dev token ARGS`, run with the server's environment."""
    args = ["dev", "token", *args]
    done = run_cli(env, args, deadline, timeout)
    tokens = [line.strip() for line in done.stdout.splitlines() if _JWT_RE.fullmatch(line.strip())]
    if len(tokens) != count:
        raise BenchError(
            f"`python -m app {' '.join(args)}` printed {len(tokens)} tokens, expected {count}: {done.stdout[:300]!r}",
            EXIT_SERVER,
        )
    return tokens


def dev_token(env: Mapping[str, str], args: Iterable[str], deadline: Deadline) -> str:
    """One access token from `python -m app dev token ARGS`, run with the server's environment (same issuer)."""
    return dev_tokens(env, args, deadline)[0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def lua_string(text: str) -> str:
    """A Lua long-bracket string literal holding text verbatim."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[\n{text}]{eq}]"  # a newline right after the opening bracket is skipped by Lua


def lua_table(values: Iterable[str]) -> str:
    """A Lua array of strings (values are tokens, slot ids, tickets: no quotes or backslashes)."""
    return "{" + ",".join(f'"{v}"' for v in values) + "}"


def jwt_subject(token: str) -> str:
    """The `sub` claim of an access token (read, not verified: to spot the same citizen twice)."""
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("sub", ""))


def mint_citizens(ctx: Context, wanted: int) -> tuple[list[str], float]:
    """Tokens of `wanted` distinct new citizens at LoA 2, and the seconds minting took."""
    started = time.monotonic()
    minted = dev_tokens(
        ctx.server_env, ["--citizens", str(wanted + 3), "--loa", "2"], ctx.deadline, count=wanted + 3,
        timeout=TOKEN_TIMEOUT + PER_CITIZEN_S * wanted,
    )  # fmt: skip
    citizens = list({jwt_subject(t): t for t in minted}.values())[:wanted]  # random phones may repeat (rarely)
    if len(citizens) < wanted:
        raise BenchError(f"minted {len(citizens)} distinct citizens, needed {wanted}", EXIT_SERVER)
    return citizens, time.monotonic() - started


def api(ctx: Context, method: str, path: str, token: str, body: Any = None, expect: int = 200) -> Any:
    """One JSON API call of the setup with a bearer token; anything but `expect` stops the run (a broken setup)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    status, payload = ctx.request(method, path, body=data, headers=headers)
    if status != expect:
        raise BenchError(f"{method} {path} answered {status}, expected {expect}: {payload[:300]!r}", EXIT_SERVER)
    return json.loads(payload)


def staff_token(ctx: Context, role: str, username: str, hall: str | None = None) -> str:
    """A dev access token of a staff account of the hall, created through the CLI when missing."""
    args = ["staff", "create", "--role", role, "--username", username, "--password-stdin"]
    if hall is not None:
        args += ["--hall", hall]
    try:
        run_cli(ctx.server_env, args, ctx.deadline, stdin=secrets.token_urlsafe(18) + "\n")
    except BenchError as exc:
        if "USERNAME_TAKEN" not in str(exc):
            raise
    return dev_token(ctx.server_env, ["--staff", username], ctx.deadline)


def catalogue_codes(ctx: Context) -> list[str]:
    """The codes of the catalogue's active matters, in catalogue order (`GET /api/v1/matters`, every page)."""
    codes: list[str] = []
    page = 1
    while True:
        status, body = ctx.request("GET", f"/api/v1/matters?page_size=100&page={page}")
        if status != 200:
            raise BenchError(f"GET /api/v1/matters answered {status}: {body[:300]!r}", EXIT_SERVER)
        data = json.loads(body)
        codes += [str(item["code"]) for item in data.get("items") or []]
        if not data.get("items") or len(codes) >= int(data.get("total", 0)):
            break
        page += 1
    return codes


def report_lines(runs: Sequence[WrkResult], kind: str) -> list[str]:
    """The second field of every `KIND VALUE` line of the runs' reports."""
    return [line.split()[1] for run in runs for line in run.report if line.startswith(kind + " ")]


def report_per_slot(runs: Sequence[WrkResult], kind: str) -> dict[str, int]:
    """`KIND SLOT N` lines of the runs' reports, added up per slot."""
    out: dict[str, int] = {}
    for run in runs:
        for line in run.report:
            parts = line.split()
            if len(parts) == 3 and parts[0] == kind:
                out[parts[1]] = out.get(parts[1], 0) + int(parts[2])
    return out


def count_answers(counts: Mapping[str, int]) -> int:
    """Responses the script counted (one status each)."""
    return sum(v for k, v in counts.items() if k.startswith("status_"))


def sum_counts(runs: Iterable[WrkResult]) -> dict[str, int]:
    """The script's counts added up over runs."""
    total: dict[str, int] = {}
    for run in runs:
        for key, value in run.counts.items():
            total[key] = total.get(key, 0) + value
    return dict(sorted(total.items()))


def counts_text(counts: Mapping[str, int]) -> str:
    """A script's counts in one line, e.g. `201 x40, 409 x60, SLOT_FULL x60` (statuses first)."""
    statuses = [f"{k[7:]} x{v}" for k, v in sorted(counts.items()) if k.startswith("status_")]
    named = [f"{k.partition('_')[2]} x{v}" for k, v in sorted(counts.items()) if k.startswith(("code_", "result_"))]
    other = [f"{k} {v}" for k, v in sorted(counts.items()) if k == "wrapped" and v]
    return ", ".join(statuses + named + other)


# The in-app baseline: the app's own trivial route, with every middleware a request always pays; judged against the
# hello-world (what that middleware costs) and the reference of the `vs baseline` column.
BASELINE = BenchPath("baseline", "GET", "/bench/baseline", None, vs_hello=0.9)
HELLO = BenchPath("hello", "GET", "/", None)  # the bare Sanic hello-world's one route (bench/hello.py)
