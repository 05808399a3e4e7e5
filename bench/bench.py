"""Throughput (and, in latency phases, p99 latency) of the service's routes relative to its trivial baseline route,
measured with wrk on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

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

# The booking phase (see the README): the hall, its calendar and the sizes of the storm and of the desk's bookings.
BOOKING_HALL = "main"
SHANGHAI = ZoneInfo("Asia/Shanghai")  # the service's calendar days
SLOT_MINUTES = 10  # 143 slots a day around the clock: enough seats starting soon for the desk (below)
STORM_WAVE = 40  # citizens per storm wave; a wave storms STORM_SLOTS slots of one day ...
STORM_SLOTS = 2
STORM_SEATS = 8  # ... of this many seats each: 16 seats for 40 citizens, so every wave sees 201 and 409 SLOT_FULL
STORM_LEAD = timedelta(hours=2)  # storm slots start at least this late (they stay bookable through the phase)
DESK_SEATS = 1000  # seats per slot of every other section: the desk's bookings never run out of seats
DESK_MATTERS = 5  # the desk's bookings go to up to this many bookable matters of the hall, one per section
DESK_SOON = (timedelta(minutes=2), timedelta(minutes=200))  # their slots start this soon (check-in opens 240 min early)
DESK_SCANS_PER_S = 2500  # default BENCH_DESK_BOOKINGS: this many first scans per second of desk_checkin load ...
DESK_TICKETS_MAX = 80_000  # ... at most
DESK_COUNTER = "W01"
SETUP_CLIENTS = 16  # parallel connections creating the desk's bookings
PER_CITIZEN_S = 0.1  # the most minting one citizen's token may take (`python -m app dev token --citizens N`)
PER_BOOKING_S = 0.05  # the most creating one desk booking may take (SETUP_CLIENTS in parallel)

# The cases phase (see the README): a matter of the bench's own that offers online application without required
# materials, the citizens who apply for it and the cases whose progress is queried.
CASE_MATTER = "BENCH-APPLY-001"  # created (and published) through the admin API, from a demo matter's guide
CASE_MATTER_NAME = "基准测试：网上申报（无必需材料）"
CASE_CITIZENS = 200  # citizens case_submit cycles through (plus one for the preflight and progress_query's cases)
CASE_APPLICANT = "张三"  # the applicant's name in every submission (the citizens have no verified identity)
PROGRESS_CASES = 50  # cases progress_query cycles through, created in its setup
PER_CASE_S = 0.5  # the most creating one of those cases may take (one at a time)

# The wechat phase (see the README): SCAN events of the picked matter's default QR code posted to the official
# account's callback in safe mode, every one a message of its own (new nonce, new subscriber), generated in the setup
# with the server's token, EncodingAESKey and app id (set explicitly in the phase's env, so the bench knows them).
WECHAT_TOKEN = "zuiduobenchwechat2024"  # WECHAT_MP_TOKEN: 3-32 letters or digits
WECHAT_AES_KEY = base64.b64encode(b"zuiduo-bench-wechat-aes-key-0032").decode().rstrip("=")  # 43 chars: 32 bytes
WECHAT_APPID = "wxbenchofficialacct"
WECHAT_OA = "gh_zjjzwfwbench"  # the official account's id (ToUserName)
WECHAT_WINDOW = 3600  # WECHAT_CALLBACK_WINDOW (the most the service allows): the messages' timestamps stay valid
WECHAT_SCANS_PER_S = 4000  # default BENCH_WECHAT_MESSAGES: this many messages per second of wechat_scan load ...
WECHAT_MESSAGES_MAX = 100_000  # ... at most
PER_MESSAGE_S = 0.0005  # the most generating (encrypting, signing, writing) one message may take
SCAN_FLUSH_S = 2.0  # every worker's ScanRecorder flushes its counts to qr_scan_daily this often (app/server.py)
SCAN_FLUSH_WAIT = 3 * SCAN_FLUSH_S + 2  # the most the check waits for the last scans to reach qr_scan_daily
SCAN_TOLERANCE = 0  # scans answered 200 that may be missing from qr_scan_daily after that wait (see the README)

EXIT_OK, EXIT_SERVER, EXIT_WRK = 0, 2, 3


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
    # Scripted writes (see "Scripted writes" in the README): data prepared once per phase, a preflight of their own,
    # a check of what the runs wrote, answers that are not failures, wrk's --timeout, and time for all that.
    setup: Callable[[Context], Mapping[str, str]] | None = None  # prepares data; returns Lua globals for the script
    preflight: Callable[[Context], tuple[int, bytes]] | None = None  # replaces the static preflight request
    check: Callable[[Context, Sequence[WrkResult]], dict[str, Any]] | None = None  # after the rounds (all runs)
    answers: frozenset[int] = frozenset()  # non-2xx statuses that are answers, not failures (script counts them)
    wrk_timeout_s: int | None = None  # wrk --timeout (wrk's default is 2 s)
    setup_s: Callable[[Config], float] | None = None  # the most setup + check may take (for the time bound)


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

# The booking phase: a storm of citizens booking few seats, then a desk checking bookings in. Their setups, preflights
# and checks are defined with the booking phase further down (hence the lambdas).
BOOKING_STORM = BenchPath(
    "booking_storm", "POST", "/api/v1/bookings", 0.05, script="lua/booking_storm.lua", expect_status=201,
    setup=lambda c: storm_setup(c), preflight=lambda c: storm_preflight(c), check=lambda c, r: storm_check(c, r),
    answers=frozenset({409}), wrk_timeout_s=10, setup_s=lambda cfg: storm_setup_s(cfg),
)  # fmt: skip
DESK_CHECKIN = BenchPath(
    "desk_checkin", "POST", "/api/v1/desk/checkins", 0.1, script="lua/desk_checkin.lua", expect_status=200,
    setup=lambda c: desk_setup(c), preflight=lambda c: desk_preflight(c), check=lambda c, r: desk_check(c, r),
    wrk_timeout_s=10, setup_s=lambda cfg: desk_setup_s(cfg),
)  # fmt: skip
DESK_RESCAN = BenchPath(
    "desk_rescan", "POST", "/api/v1/desk/checkins", None, script="lua/desk_checkin.lua", expect_status=200,
    report_only=True, setup=lambda c: rescan_setup(c), preflight=lambda c: rescan_preflight(c),
    check=lambda c, r: rescan_check(c, r), wrk_timeout_s=10, setup_s=lambda cfg: 60.0,
)  # fmt: skip
BOOKING_PATHS: list[BenchPath] = [BASELINE, BOOKING_STORM, DESK_CHECKIN, DESK_RESCAN]

# The cases phase: online applications (every one a new case) and anonymous progress queries of cases made in its
# setup. No targets (report only); setups, preflights and checks are defined with the cases phase further down.
CASE_SUBMIT = BenchPath(
    "case_submit", "POST", "/api/v1/cases", None, script="lua/case_submit.lua", expect_status=201, report_only=True,
    setup=lambda c: case_submit_setup(c), preflight=lambda c: case_submit_preflight(c),
    check=lambda c, r: case_submit_check(c, r), wrk_timeout_s=10, setup_s=lambda cfg: case_submit_setup_s(cfg),
)  # fmt: skip
PROGRESS_QUERY = BenchPath(
    "progress_query", "GET", "/api/v1/progress", None, script="lua/progress_query.lua", expect_status=200,
    report_only=True, setup=lambda c: progress_setup(c), preflight=lambda c: progress_preflight(c),
    check=lambda c, r: progress_check(c, r), wrk_timeout_s=10, setup_s=lambda cfg: progress_setup_s(cfg),
)  # fmt: skip
CASES_PATHS: list[BenchPath] = [BASELINE, CASE_SUBMIT, PROGRESS_QUERY]

# The wechat phase: SCAN events posted to the official account's callback in safe mode, each a message of its own
# generated in the setup; report only. Setup, preflight and check are defined with the wechat phase further down.
WECHAT_SCAN = BenchPath(
    "wechat_scan", "POST", "/wechat/callback", None, script="lua/wechat_scan.lua", expect_status=200,
    report_only=True, setup=lambda c: wechat_setup(c), preflight=lambda c: wechat_preflight(c),
    check=lambda c, r: wechat_check(c, r), wrk_timeout_s=10, setup_s=lambda cfg: wechat_setup_s(cfg),
)  # fmt: skip
WECHAT_PATHS: list[BenchPath] = [BASELINE, WECHAT_SCAN]

# Each phase starts the server afresh with its extra env (same database: it is reset once, before the first phase)
# and measures its paths in their own interleaved rounds, against its own baseline. Adding a phase is one line.
PHASES: list[Phase] = [
    Phase("main", "phase: main", PATHS),
    # Absolute latency targets need a load that does not queue: wrk -t1 -c8 by default (see README).
    Phase("latency", "phase: latency", [BASELINE, QR_JSON_P99], latency=True),
    Phase("token_cache_off", "phase: token cache off", [BASELINE, ME_UNCACHED], env={"TOKEN_CACHE_SIZE": "0"}),
    # Scripted writes with their own setup and checks (see "The booking phase" in the README). Each citizen may hold
    # up to 100 active bookings (a storm citizen books up to one per day of the window); tokens outlive the phase.
    Phase(
        "booking", "phase: booking", BOOKING_PATHS, env={"BOOKING_MAX_ACTIVE": "100", "ACCESS_TOKEN_SECONDS": "3600"}
    ),
    # Online applications and progress queries (see "The cases phase" in the README): the anonymous progress query's
    # rate limits (per client address: wrk is one; per case number) raised out of the way; tokens outlive the phase.
    Phase(
        "cases",
        "phase: cases",
        CASES_PATHS,
        env={
            "PROGRESS_RATE_PER_MINUTE": "10000000",
            "PROGRESS_RATE_PER_CASE_HOUR": "10000000",
            "ACCESS_TOKEN_SECONDS": "3600",
        },
    ),
    # The official account's callback (see "The wechat phase" in the README): the callback's credentials set here so
    # that the setup signs and encrypts with the server's own, and the longest timestamp window the service allows.
    Phase(
        "wechat",
        "phase: wechat",
        WECHAT_PATHS,
        env={
            "WECHAT_CALLBACK_WINDOW": str(WECHAT_WINDOW),
            "WECHAT_MP_TOKEN": WECHAT_TOKEN,
            "WECHAT_MP_AES_KEY": WECHAT_AES_KEY,
            "WECHAT_MP_APPID": WECHAT_APPID,
        },
    ),
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
    citizens: int = 400  # citizens of the booking storm (BENCH_BOOKING_CITIZENS)
    desk_bookings: int = 0  # tickets desk_checkin scans (BENCH_DESK_BOOKINGS); 0: sized from the run's length
    wechat_messages: int = 0  # messages wechat_scan sends (BENCH_WECHAT_MESSAGES); 0: sized from the run's length

    @classmethod
    def from_env(cls) -> Config:
        """Read BENCH_DURATION, BENCH_CONNECTIONS, BENCH_THREADS, BENCH_ROUNDS, BENCH_WARMUP,
        BENCH_LATENCY_CONNECTIONS, BENCH_LATENCY_THREADS, BENCH_BOOKING_CITIZENS, BENCH_DESK_BOOKINGS and
        BENCH_WECHAT_MESSAGES."""
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


def run_sql(sql: str, deadline: Deadline) -> list[list[str]]:
    """Rows of one SQL script run by psql on the benchmark's database (unaligned, `|`-separated)."""
    cmd = ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", PG_DB, "-v", "ON_ERROR_STOP=1", "-q"]
    cmd += ["-At", "-F", "|", "-f", "-"]
    env = {**os.environ, "PGCONNECT_TIMEOUT": "5"}
    try:
        done = subprocess.run(
            cmd, input=sql, capture_output=True, text=True, timeout=deadline.clip(60), env=env, check=False
        )
    except subprocess.TimeoutExpired:
        raise deadline.timed_out("psql did not answer within 60 s", EXIT_SERVER) from None
    if done.returncode != 0:
        raise BenchError(f"psql failed on {PG_DB}: {done.stderr.strip()[:500]}", EXIT_SERVER)
    return [line.split("|") for line in done.stdout.splitlines() if line]


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
def wrk_script(target: Resolved, cfg: Config) -> Iterator[tuple[Path | None, Path | None]]:
    """The Lua script wrk needs for this path (the method/body prelude, the globals of its setup, then its own
    script) and the report file the script may write; (None, None) when plain wrk flags do."""
    spec = target.spec
    prelude = []
    if spec.method.upper() != "GET":
        prelude.append(f"wrk.method = {_lua_string(spec.method.upper())}")
    if spec.body is not None:
        prelude.append(f"wrk.body = {_lua_string(spec.body)}")
    own = (BENCH_DIR / spec.script).read_text("utf-8") if spec.script else ""
    if not prelude and not own:
        yield None, None
        return
    with tempfile.TemporaryDirectory(prefix="bench-lua-") as tmp:
        report = Path(tmp) / "report.txt"
        if own:  # the globals a script may use: its report file, wrk -t and what the path's setup returned
            values = {"bench_report": str(report), **target.lua_vars}
            prelude += [f"{name} = {_lua_string(value)}" for name, value in values.items()]
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


# ---------------------------------------------------------------- the booking phase
#
# Setup goes through the service's own CLI and API (staff accounts, dev tokens, the hall's calendar, the desk's
# bookings); the checks read the database with psql and the slots API. The Lua scripts are bench/lua/*.lua.


def _jwt_subject(token: str) -> str:
    """The `sub` claim of an access token (read, not verified: to spot the same citizen twice)."""
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("sub", ""))


def _api(ctx: Context, method: str, path: str, token: str, body: Any = None, expect: int = 200) -> Any:
    """One JSON API call of the setup with a bearer token; anything but `expect` stops the run (a broken setup)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    status, payload = ctx.request(method, path, body=data, headers=headers)
    if status != expect:
        raise BenchError(f"{method} {path} answered {status}, expected {expect}: {payload[:300]!r}", EXIT_SERVER)
    return json.loads(payload)


def _lua_table(values: Iterable[str]) -> str:
    """A Lua array of strings (values are tokens, slot ids, tickets: no quotes or backslashes)."""
    return "{" + ",".join(f'"{v}"' for v in values) + "}"


def _sql_array(values: Iterable[str], kind: str = "text") -> str:
    """An SQL array literal of ids (UUIDs, slot ids: no quotes)."""
    return "ARRAY[" + ",".join(f"'{v}'" for v in values) + f"]::{kind}[]"


def _citizen_count(cfg: Config) -> int:
    """Citizens to mint: the storm's, or enough for DESK_MATTERS desk bookings each, plus one for the preflights."""
    return max(cfg.citizens, math.ceil(cfg.desk_tickets / DESK_MATTERS)) + 1


def storm_setup_s(cfg: Config) -> float:
    """The most the shared setup (two staff accounts and their tokens, matters, calendar, citizens) and the storm's
    own setup and check take."""
    return 4 * TOKEN_TIMEOUT + (TOKEN_TIMEOUT + PER_CITIZEN_S * _citizen_count(cfg)) + 120


def desk_setup_s(cfg: Config) -> float:
    """The most creating the desk's bookings and checking them takes."""
    return 60 + PER_BOOKING_S * cfg.desk_tickets + 60


@dataclass(frozen=True)
class BookingSetup:
    """What the booking phase's paths share: staff tokens, the matters picked, the citizens' tokens."""

    admin: str
    clerk: str
    storm_matter: str
    storm_section: str
    desk_matters: list[tuple[str, str]]  # (code, section), one matter per section
    citizens: list[str]  # access tokens of distinct citizens; the last one is kept for the preflights


def _staff_token(ctx: Context, role: str, username: str) -> str:
    """A dev access token of a staff account of the hall, created through the CLI when missing."""
    args = ["staff", "create", "--role", role, "--username", username, "--password-stdin"]
    if role == "clerk":
        args += ["--hall", BOOKING_HALL]
    try:
        run_cli(ctx.server_env, args, ctx.deadline, stdin=secrets.token_urlsafe(18) + "\n")
    except BenchError as exc:
        if "USERNAME_TAKEN" not in str(exc):
            raise
    return dev_token(ctx.server_env, ["--staff", username], ctx.deadline)


def _catalogue_codes(ctx: Context) -> list[str]:
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


def _bookable_matters(ctx: Context) -> list[dict[str, Any]]:
    """The guides of the hall's active matters that offer booking, in catalogue order."""
    guides = []
    for code in _catalogue_codes(ctx):
        status, body = ctx.request("GET", f"/api/v1/matters/{code}")
        guide = json.loads(body) if status == 200 else {}
        hall = (guide.get("hall") or {}).get("code")
        if guide.get("booking") and guide.get("status") == "active" and hall == BOOKING_HALL:
            guides.append(guide)
    return guides


def booking_schedule(storm_section: str) -> dict[str, Any]:
    """The hall's calendar for the phase: open around the clock every day, 10-minute slots, few seats in the storm's
    section and many elsewhere, the longest window, no booking cutoff, check-in from 240 minutes before a slot."""
    return {
        "hours": {str(day): [["00:00", "23:59"]] for day in range(1, 8)},
        "slot_minutes": SLOT_MINUTES,
        "capacity": {storm_section: STORM_SEATS},
        "default_capacity": DESK_SEATS,
        "window_days": 60,
        "same_day": True,
        "cutoff_minutes": 0,
        "early_minutes": 240,
        "grace_minutes": 60,
    }


def booking_setup(ctx: Context) -> BookingSetup:
    """Once per phase: an administrator and a clerk of the hall, the storm's matter and the desk's matters, the hall's
    calendar (PUT by the administrator) and the citizens' tokens."""
    if "booking" in ctx.state:
        return ctx.state["booking"]
    admin = _staff_token(ctx, "admin", "bench-admin")
    clerk = _staff_token(ctx, "clerk", "bench-clerk")
    guides = _bookable_matters(ctx)
    if not guides:
        raise BenchError(f"no active matter of hall {BOOKING_HALL} offers booking", EXIT_SERVER)
    storm = guides[0]
    desk: list[tuple[str, str]] = []
    for guide in guides[1:]:
        sections = {storm["section"], *(s for _, s in desk)}
        if guide["section"] not in sections and len(desk) < DESK_MATTERS:
            desk.append((str(guide["code"]), str(guide["section"])))
    if not desk:
        raise BenchError(f"hall {BOOKING_HALL} has no bookable matter outside section {storm['section']}", EXIT_SERVER)
    _api(ctx, "PUT", f"/api/v1/admin/halls/{BOOKING_HALL}/schedule", admin, booking_schedule(storm["section"]))
    wanted = _citizen_count(ctx.cfg)
    started = time.monotonic()
    minted = dev_tokens(
        ctx.server_env, ["--citizens", str(wanted + 3), "--loa", "2"], ctx.deadline, count=wanted + 3,
        timeout=TOKEN_TIMEOUT + PER_CITIZEN_S * wanted,
    )  # fmt: skip
    citizens = list({_jwt_subject(t): t for t in minted}.values())[:wanted]  # random phones may repeat (rarely)
    if len(citizens) < wanted:
        raise BenchError(f"minted {len(citizens)} distinct citizens, needed {wanted}", EXIT_SERVER)
    print(
        f"booking setup: storm matter {storm['code']} (section {storm['section']}, {STORM_SEATS} seats a slot), "
        f"desk matters {', '.join(c for c, _ in desk)}; {wanted} citizens minted in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    setup = BookingSetup(admin, clerk, str(storm["code"]), str(storm["section"]), desk, citizens)
    ctx.state["booking"] = setup
    return setup


def _slots(ctx: Context, matter: str, token: str, query: str = "") -> list[dict[str, Any]]:
    """The matter's slots (`GET /api/v1/matters/{code}/slots`)."""
    return list(_api(ctx, "GET", f"/api/v1/matters/{matter}/slots{query}", token).get("items") or [])


def _starts(item: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(item["starts_at"]))


def storm_setup(ctx: Context) -> dict[str, str]:
    """The storm's data: its citizens in waves of STORM_WAVE, and per day of the window the slots the waves storm."""
    setup = booking_setup(ctx)
    citizens = setup.citizens[:-1]
    spare = setup.citizens[-1]
    earliest = datetime.now(UTC) + STORM_LEAD
    by_day: dict[str, list[str]] = {}
    for item in _slots(ctx, setup.storm_matter, spare):
        if item["bookable"] and _starts(item) >= earliest:
            by_day.setdefault(str(item["date"]), []).append(str(item["slot_id"]))
    most = max((len(ids) for ids in by_day.values()), default=0)
    rounds = min(len(citizens) // STORM_WAVE, (most - 1) // STORM_SLOTS)  # one slot a day stays spare
    days = [ids for ids in by_day.values() if len(ids) >= rounds * STORM_SLOTS + 1]
    if rounds < 1 or not days:
        raise BenchError(f"matter {setup.storm_matter} lists no day with enough slots for the storm", EXIT_SERVER)
    days = [ids[: rounds * STORM_SLOTS + 1] for ids in days]  # the last slot of each day is spare (preflight)
    tokens = citizens[: rounds * STORM_WAVE]
    salt = secrets.token_hex(4)
    data = ctx.work_dir / "storm.lua"
    data.write_text(
        f'return {{matter="{setup.storm_matter}", salt="{salt}", wave={STORM_WAVE}, per_wave={STORM_SLOTS}, '
        f"tokens={_lua_table(tokens)}, days={{{','.join(_lua_table(ids[:-1]) for ids in days)}}}}}\n",
        "utf-8",
    )
    ctx.state["storm"] = {
        "slots": sorted(sid for ids in days for sid in ids[:-1]),
        "spare": days[-1][-1],
        "dates": (min(by_day), max(by_day)),
        "attempts_max": len(tokens) * len(days),
        "salt": salt,
    }
    print(
        f"storm: {len(tokens)} citizens in waves of {STORM_WAVE}, {len(days)} days x {rounds * STORM_SLOTS} slots "
        f"({len(tokens) * len(days)} attempts before a citizen would try a day twice)",
        flush=True,
    )
    return {"bench_data": str(data), "bench_state": str(ctx.work_dir / "storm.state")}


def storm_preflight(ctx: Context) -> tuple[int, bytes]:
    """One booking by the spare citizen, of a slot outside the storm's (left out of the storm's accounting)."""
    setup, storm = ctx.state["booking"], ctx.state["storm"]
    body = json.dumps({"matter_code": setup.storm_matter, "slot_id": storm["spare"]}).encode()
    headers = {
        "Authorization": f"Bearer {setup.citizens[-1]}",
        "Content-Type": "application/json",
        "Idempotency-Key": f"{storm['salt']}-preflight",
    }
    return ctx.request("POST", "/api/v1/bookings", body=body, headers=headers)


def _report_lines(runs: Sequence[WrkResult], kind: str) -> list[str]:
    """The second field of every `KIND VALUE` line of the runs' reports."""
    return [line.split()[1] for run in runs for line in run.report if line.startswith(kind + " ")]


def _report_per_slot(runs: Sequence[WrkResult], kind: str) -> dict[str, int]:
    """`KIND SLOT N` lines of the runs' reports, added up per slot."""
    out: dict[str, int] = {}
    for run in runs:
        for line in run.report:
            parts = line.split()
            if len(parts) == 3 and parts[0] == kind:
                out[parts[1]] = out.get(parts[1], 0) + int(parts[2])
    return out


def _answered(counts: Mapping[str, int]) -> int:
    """Responses the script counted (one status each)."""
    return sum(v for k, v in counts.items() if k.startswith("status_"))


def _slot_invariant_violations(deadline: Deadline) -> list[list[str]]:
    """Every slot row of the database whose seats are overbooked or disagree with its bookings."""
    return run_sql(
        "SELECT s.id, s.capacity, s.booked, count(b.id) FROM booking_slot s "
        "LEFT JOIN booking b ON b.slot_id = s.id AND b.status IN ('booked', 'checked_in') "
        "GROUP BY s.id, s.capacity, s.booked HAVING s.booked > s.capacity OR s.booked <> count(b.id);",
        deadline,
    )


def storm_check(ctx: Context, runs: Sequence[WrkResult]) -> dict[str, Any]:
    """Seats against answers: every 201 is a booking, the confirmed bookings are the successes (the answered 201s
    plus any booking committed while wrk stopped with its request in flight), no slot is overbooked, every slot that
    answered SLOT_FULL is sold out exactly, and the slots API shows the same seats taken as the database."""
    setup, storm = ctx.state["booking"], ctx.state["storm"]
    counts = _sum_counts(runs)
    problems: list[str] = []
    answered, sent = _answered(counts), counts.get("sent", 0)
    in_flight = max(sent - answered, 0)  # sent, but wrk stopped before the answer came
    created, full = counts.get("status_201", 0), counts.get("code_SLOT_FULL", 0)
    errors_5xx = sum(v for k, v in counts.items() if k.startswith("status_5"))
    other = {k[5:]: v for k, v in counts.items() if k.startswith("code_") and k != "code_SLOT_FULL"}
    if other:
        problems.append(f"refusals other than SLOT_FULL: {other}")
    if counts.get("wrapped"):
        problems.append(
            f"{counts['wrapped']} attempts reused a citizen-day (more than {storm['attempts_max']} attempts; "
            "raise BENCH_BOOKING_CITIZENS)"
        )
    observed = _report_lines(runs, "id")
    if len(set(observed)) != len(observed) or len(observed) != created:
        problems.append(f"{created} answers 201 name {len(set(observed))} distinct bookings")
    slots = storm["slots"]
    rows = run_sql(
        f"SELECT 's', id, capacity, booked FROM booking_slot WHERE id = ANY({_sql_array(slots)});\n"
        f"SELECT 'b', id, slot_id, status FROM booking WHERE slot_id = ANY({_sql_array(slots)});\n"
        f"SELECT 'k', count(*) FROM idempotency_record WHERE status IS NULL AND key LIKE '{storm['salt']}-%';",
        ctx.deadline,
    )
    stuck = sum(int(r[1]) for r in rows if r[0] == "k")  # keys claimed by a request that never finished or released
    seats = {r[1]: (int(r[2]), int(r[3])) for r in rows if r[0] == "s"}  # slot -> (capacity, booked)
    bookings = {r[1]: (r[2], r[3]) for r in rows if r[0] == "b"}  # booking id -> (slot, status)
    confirmed = {b for b, (_, status) in bookings.items() if status in ("booked", "checked_in")}
    missing = set(observed) - confirmed
    unobserved = confirmed - set(observed)
    if missing:
        problems.append(f"{len(missing)} answers 201 name no confirmed booking (e.g. {sorted(missing)[0]})")
    if len(unobserved) > in_flight:
        problems.append(f"{len(unobserved)} confirmed bookings were never answered 201 (only {in_flight} in flight)")
    capacity = sum(c for c, _ in seats.values())
    booked = sum(b for _, b in seats.values())
    violations = _slot_invariant_violations(ctx.deadline)
    if violations:
        shown = "; ".join(f"{v[0]} capacity {v[1]} booked {v[2]} bookings {v[3]}" for v in violations[:3])
        problems.append(f"{len(violations)} slots overbooked or miscounted: {shown}")
    full_per_slot = _report_per_slot(runs, "slot_full")
    not_sold_out = [s for s in full_per_slot if s in seats and seats[s][1] != seats[s][0]]
    if not_sold_out:
        problems.append(f"{len(not_sold_out)} slots answered SLOT_FULL with seats left (e.g. {not_sold_out[0]})")
    if booked != len(confirmed):
        problems.append(f"the storm's slots count {booked} seats taken for {len(confirmed)} confirmed bookings")
    first, last = storm["dates"]
    listed = _slots(ctx, setup.storm_matter, setup.citizens[-1], f"?from={first}&to={last}")
    api_taken = sum(int(i["capacity"]) - int(i["available"]) for i in listed if i["slot_id"] in seats)
    if api_taken != booked:
        problems.append(f"the slots API shows {api_taken} seats taken in the storm's slots, the database {booked}")
    successes = created + len(unobserved)
    expected = min(successes, capacity)
    if len(confirmed) != expected:
        problems.append(f"{len(confirmed)} confirmed bookings, expected min(successes, capacity) = {expected}")
    if errors_5xx:
        problems.append(f"{errors_5xx} answers 5xx (see the server log)")
    sold_out = sum(1 for c, b in seats.values() if b == c)
    facts = {
        "attempts": answered, "in_flight_unanswered": in_flight, "created_201": created, "slot_full_409": full,
        "other_refusals": other, "errors_5xx": errors_5xx, "confirmed_in_db": len(confirmed),
        "committed_unanswered": len(unobserved), "slots_stormed": len(seats), "slots_sold_out": sold_out,
        "capacity_of_slots_stormed": capacity, "seats_taken_db": booked, "seats_taken_api": api_taken,
        "slot_invariant_violations": len(violations), "idempotency_keys_left_claimed": stuck,
    }  # fmt: skip
    summary = (
        f"{answered} attempts: {created} x 201, {full} x 409 SLOT_FULL, {errors_5xx} x 5xx; {len(confirmed)} bookings "
        f"confirmed in the database = {created} answered 201 + {len(unobserved)} committed while wrk stopped "
        f"= min(successes, capacity {capacity} of the {len(seats)} slots stormed); {sold_out} slots sold out, "
        f"{len(violations)} slots overbooked or miscounted; API {api_taken} seats taken"
        + (f"; {stuck} Idempotency-Keys left claimed (no answer stored, not released)" if stuck else "")
    )
    return {"summary": summary, "problems": problems, "facts": facts}


def _create_bookings(ctx: Context, plan: list[tuple[str, str, str]], salt: str) -> list[dict[str, Any]]:
    """Book (token, matter, slot) for every entry through the API, SETUP_CLIENTS at a time; the bookings in plan
    order (each with its ticket). Anything but 201 stops the run."""
    host, _, port = ctx.base_url.removeprefix("http://").partition(":")
    assert host == HOST
    local = threading.local()
    end = time.monotonic() + ctx.deadline.clip(60 + PER_BOOKING_S * len(plan))

    def book(index: int) -> dict[str, Any]:
        token, matter, slot = plan[index]
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        if time.monotonic() > end:
            raise BenchError("creating the desk's bookings took too long", EXIT_SERVER)
        body = json.dumps({"matter_code": matter, "slot_id": slot})
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": f"{salt}-desk-{index}",
        }
        try:
            local.conn.request("POST", "/api/v1/bookings", body=body, headers=headers)
            response = local.conn.getresponse()
            status, payload = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            local.conn.close()
            raise BenchError(f"booking {matter} {slot} for the desk failed: {exc!r}", EXIT_SERVER) from None
        if status != 201:
            raise BenchError(f"booking {matter} {slot} for the desk answered {status}: {payload[:300]!r}", EXIT_SERVER)
        return json.loads(payload)

    with ThreadPoolExecutor(max_workers=SETUP_CLIENTS) as pool:
        return list(pool.map(book, range(len(plan))))


def desk_setup(ctx: Context) -> dict[str, str]:
    """The desk's data: BENCH_DESK_BOOKINGS bookings of slots starting within DESK_SOON (check-in is open), spread
    over the desk's matters, created through the API, and the clerk's token; plus one booking for the preflight."""
    setup = booking_setup(ctx)
    matters = setup.desk_matters
    citizens = setup.citizens[:-1]
    wanted = min(ctx.cfg.desk_tickets, len(citizens) * len(matters))
    now = datetime.now(UTC)
    today = now.astimezone(SHANGHAI).date()
    query = f"?from={today}&to={today + timedelta(days=1)}"
    soon: dict[str, list[str]] = {}
    for code, _ in matters:
        items = _slots(ctx, code, setup.citizens[-1], query)
        soon[code] = [
            str(i["slot_id"])
            for i in items
            if i["bookable"] and now + DESK_SOON[0] < _starts(i) <= now + DESK_SOON[1] and int(i["available"]) > 0
        ]
        if not soon[code]:
            raise BenchError(f"matter {code} lists no slot starting within {DESK_SOON[1]}", EXIT_SERVER)
    plan = []
    for k in range(wanted):
        code, _ = matters[k % len(matters)]
        person = k // len(matters)
        plan.append((citizens[person], code, soon[code][person % len(soon[code])]))
    first_code = matters[0][0]
    plan.append((setup.citizens[-1], first_code, soon[first_code][0]))  # the preflight's booking
    salt = secrets.token_hex(4)
    started = time.monotonic()
    made = _create_bookings(ctx, plan, salt)
    took = time.monotonic() - started
    print(f"desk: created {len(made)} bookings through the API in {took:.1f} s ({len(made) / took:.0f}/s)", flush=True)
    tickets = [str(b["ticket"]) for b in made[:-1]]
    data = ctx.work_dir / "desk.lua"
    data.write_text(
        f'return {{token="{setup.clerk}", counter="{DESK_COUNTER}", salt="{salt}", tickets={_lua_table(tickets)}}}\n',
        "utf-8",
    )
    state = ctx.work_dir / "desk_checkin.state"
    ctx.state["desk"] = {
        "ids": [str(b["id"]) for b in made[:-1]],
        "preflight": (str(made[-1]["id"]), str(made[-1]["ticket"])),
        "salt": salt,
        "data": str(data),
        "state": state,
    }
    return {"bench_data": str(data), "bench_state": str(state)}


def _scan(ctx: Context, ticket: str, nonce: str) -> tuple[int, bytes]:
    """One scan of a ticket by the clerk."""
    setup = ctx.state["booking"]
    body = json.dumps({"ticket": ticket, "nonce": nonce, "counter": DESK_COUNTER}).encode()
    headers = {"Authorization": f"Bearer {setup.clerk}", "Content-Type": "application/json"}
    return ctx.request("POST", "/api/v1/desk/checkins", body=body, headers=headers)


def _expect_result(status: int, body: bytes, result: str) -> None:
    if status == 200 and json.loads(body).get("result") != result:
        raise BenchError(f"the preflight scan answered {body[:300]!r}, expected result {result}", EXIT_SERVER)


def desk_preflight(ctx: Context) -> tuple[int, bytes]:
    """The first scan of the preflight's booking: 200, result checked_in."""
    desk = ctx.state["desk"]
    status, body = _scan(ctx, desk["preflight"][1], f"{desk['salt']}p1")
    _expect_result(status, body, "checked_in")
    return status, body


def rescan_setup(ctx: Context) -> dict[str, str]:
    """desk_rescan scans the tickets desk_checkin has reached (its data, its scan count)."""
    if "desk" not in ctx.state:
        raise BenchError("desk_rescan needs desk_checkin before it in the same phase", EXIT_SERVER)
    desk = ctx.state["desk"]
    return {
        "bench_data": desk["data"],
        "bench_state": str(ctx.work_dir / "desk_rescan.state"),
        "bench_rescan_of": str(desk["state"]),
    }


def rescan_preflight(ctx: Context) -> tuple[int, bytes]:
    """A second scan of the preflight's booking: 200, result already_checked_in."""
    desk = ctx.state["desk"]
    status, body = _scan(ctx, desk["preflight"][1], f"{desk['salt']}p2")
    _expect_result(status, body, "already_checked_in")
    return status, body


def _desk_rows(ctx: Context) -> dict[str, tuple[str, int]]:
    """Booking id -> (status, check-in rows) of the desk's bookings (and the preflight's)."""
    desk = ctx.state["desk"]
    ids = [*desk["ids"], desk["preflight"][0]]
    rows = run_sql(
        "SELECT b.id, b.status, count(c.id) FROM booking b LEFT JOIN checkin c ON c.booking_id = b.id "
        f"WHERE b.id = ANY({_sql_array(ids, 'uuid')}) GROUP BY b.id, b.status;",
        ctx.deadline,
    )
    return {r[0]: (r[1], int(r[2])) for r in rows}


def _desk_problems(rows: Mapping[str, tuple[str, int]], checked_in: Sequence[str]) -> list[str]:
    """What the database says against exactly one check-in per booking."""
    problems = []
    multiple = [b for b, (_, n) in rows.items() if n > 1]
    if multiple:
        problems.append(f"{len(multiple)} bookings have more than one check-in row (e.g. {multiple[0]})")
    mismatched = [b for b, (status, n) in rows.items() if (status == "checked_in") != (n == 1)]
    if mismatched:
        problems.append(f"{len(mismatched)} bookings' status disagrees with their check-in rows")
    twice = len(checked_in) - len(set(checked_in))
    if twice:
        problems.append(f"{twice} answers checked_in for a booking that had already been answered checked_in")
    unbacked = [b for b in set(checked_in) if rows.get(b, ("", 0))[1] != 1]
    if unbacked:
        problems.append(f"{len(unbacked)} answers checked_in have no check-in row (e.g. {unbacked[0]})")
    return problems


def _scan_results(counts: Mapping[str, int]) -> str:
    results = {k[7:]: v for k, v in counts.items() if k.startswith("result_")}
    return ", ".join(f"{v} x {k}" for k, v in sorted(results.items(), key=lambda kv: -kv[1])) or "none"


def _desk_scanned(ctx: Context) -> list[int]:
    """The indices of the tickets desk_checkin has scanned: each wrk thread scans its own region of the list in order
    (its count so far is in the script's state file)."""
    desk = ctx.state["desk"]
    threads = ctx.cfg.threads
    region = max(1, len(desk["ids"]) // threads)
    scanned: list[int] = []
    path = Path(desk["state"])
    for line in path.read_text("utf-8").splitlines() if path.exists() else []:
        tid, _, count = line.partition(" ")
        scanned += range(int(tid) * region, int(tid) * region + min(int(count), region))
    return sorted(scanned)


def desk_check(ctx: Context, runs: Sequence[WrkResult]) -> dict[str, Any]:
    """Every first scan checks its booking in, once: one check-in row per booking scanned (but for scans wrk cut off
    when it stopped), none for the bookings never scanned, status checked_in exactly where there is a row."""
    desk = ctx.state["desk"]
    counts = _sum_counts(runs)
    answered, sent = _answered(counts), counts.get("sent", 0)
    in_flight = max(sent - answered, 0)
    ids = desk["ids"]
    scanned = {ids[i] for i in _desk_scanned(ctx)}
    rows = _desk_rows(ctx)
    checked_in = _report_lines(runs, "checked_in")
    problems = _desk_problems(rows, checked_in)
    others = {k[7:]: v for k, v in counts.items() if k.startswith("result_") and k[7:] != "checked_in"}
    if counts.get("wrapped"):
        problems.append(
            f"ran out of fresh tickets: {counts['wrapped']} scans hit tickets scanned before "
            "(raise BENCH_DESK_BOOKINGS)"
        )
    elif others:
        problems.append(f"first scans answered other than checked_in: {others}")
    once = sum(1 for b in scanned if rows.get(b, ("", 0))[1] == 1)
    if len(scanned) - once > in_flight:
        problems.append(f"{len(scanned) - once} of the {len(scanned)} bookings scanned are not checked in")
    touched = [b for b in ids if b not in scanned and rows.get(b, ("", 0))[1] != 0]
    if touched:
        problems.append(f"{len(touched)} bookings never scanned have a check-in row (e.g. {touched[0]})")
    more = sum(1 for _, n in rows.values() if n > 1)
    facts = {
        "bookings": len(ids), "scans": answered, "in_flight_unanswered": in_flight, "results": _scan_results(counts),
        "bookings_scanned": len(scanned), "checked_in_once": once, "never_scanned": len(ids) - len(scanned),
        "with_more_than_one_checkin": more,
    }  # fmt: skip
    summary = (
        f"{answered} scans ({_scan_results(counts)}); of {len(ids)} bookings {len(scanned)} scanned, {once} of them "
        f"checked in exactly once (one check-in row), {len(ids) - len(scanned)} never scanned (fresh tickets left, "
        f"no row), {more} with more than one row"
    )
    return {"summary": summary, "problems": problems, "facts": facts}


def rescan_check(ctx: Context, runs: Sequence[WrkResult]) -> dict[str, Any]:
    """Scans of tickets already checked in answer already_checked_in and add no check-in row."""
    counts = _sum_counts(runs)
    rows = _desk_rows(ctx)
    problems = _desk_problems(rows, [])
    others = {k[7:]: v for k, v in counts.items() if k.startswith("result_") and k[7:] != "already_checked_in"}
    unexpected = {k: v for k, v in others.items() if k != "checked_in"}  # checked_in: a first scan cut off by wrk
    if unexpected:
        problems.append(f"rescans answered {unexpected}")
    total = len(rows)
    once = sum(1 for _, n in rows.values() if n == 1)
    summary = (
        f"{_answered(counts)} rescans ({_scan_results(counts)}); after all runs {once} of {total} bookings have "
        f"exactly one check-in row, {sum(1 for _, n in rows.values() if n > 1)} more than one"
    )
    facts = {"scans": _answered(counts), "results": _scan_results(counts), "bookings_checked_in_once": once}
    return {"summary": summary, "problems": problems, "facts": facts}


# ---------------------------------------------------------------- the cases phase
#
# Setup goes through the service's own CLI and API (the administrator, the bench matter created and published from a
# demo matter's guide, the citizens' dev tokens, progress_query's cases); the checks read the database with psql.


def id_number(n: int) -> str:
    """A valid 18-digit resident identity card number (GB 11643: region 430802, a birth date in 1990-1999, sequence
    and the ISO 7064 MOD 11-2 check character), a different one for each n below 3650 * 1000."""
    born = datetime(1990, 1, 1) + timedelta(days=n % 3650)
    body = f"430802{born:%Y%m%d}{n // 3650 % 1000:03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def case_body(matter: str, n: int, form: Mapping[str, Any]) -> dict[str, Any]:
    """An online application for oneself (`CaseIn`): name and ID number given (no verified identity), a small
    form, the result collected at the window, no materials."""
    applicant = {"kind": "self", "name": CASE_APPLICANT, "id_number": id_number(n)}
    return {"matter_code": matter, "applicant": applicant, "form": dict(form), "delivery": {"method": "window"}}


@dataclass(frozen=True)
class CasesSetup:
    """What the cases phase's paths share: the bench matter, the citizens' tokens and a salt for keys and forms."""

    matter: str
    template: str  # the demo matter whose guide the bench matter copies
    citizens: list[str]  # access tokens of distinct citizens; the last one is kept for the preflight and the cases
    salt: str


def cases_setup_s(cfg: Config) -> float:
    """The most the shared setup takes: the administrator (account, token), the bench matter (the catalogue's guides,
    create, publish) and the citizens' tokens."""
    return 2 * TOKEN_TIMEOUT + 60 + (TOKEN_TIMEOUT + PER_CITIZEN_S * (CASE_CITIZENS + 4))


def case_submit_setup_s(cfg: Config) -> float:
    """The shared setup, case_submit's preflight and its check."""
    return cases_setup_s(cfg) + 90


def progress_setup_s(cfg: Config) -> float:
    """Creating progress_query's cases and its check."""
    return 30 + PER_CASE_S * PROGRESS_CASES + 60


def _apply_template(ctx: Context) -> dict[str, Any]:
    """The guide of the first active matter of the catalogue that offers online application at LoA 2."""
    for code in _catalogue_codes(ctx):
        status, body = ctx.request("GET", f"/api/v1/matters/{code}")
        guide = json.loads(body) if status == 200 else {}
        if guide.get("status") == "active" and guide.get("online_apply") and int(guide.get("apply_loa", 2)) == 2:
            return guide
    raise BenchError("no active matter of the catalogue offers online application at LoA 2", EXIT_SERVER)


def _fits(guide: Mapping[str, Any]) -> bool:
    """Whether a guide takes online applications at LoA 2 without any required material."""
    return (
        guide.get("status") == "active"
        and bool(guide.get("online_apply"))
        and int(guide.get("apply_loa", 2)) == 2
        and not any(m.get("required") for m in guide.get("materials") or [])
    )


def bench_matter(ctx: Context, admin: str) -> tuple[str, str]:
    """The bench matter (CASE_MATTER): a copy of a demo matter's guide (same department, hall, section) that offers
    online application at LoA 2 with only its optional materials and no booking, created and published by the
    administrator (`POST /api/v1/admin/matters`, then `POST .../versions/{no}/publish`); (its code, the template's)."""
    template = _apply_template(ctx)
    raw = _api(ctx, "GET", f"/api/v1/admin/matters/{template['code']}/versions/{template['version']}", admin)
    content = dict(raw["content"])
    content.update(
        name=CASE_MATTER_NAME,
        materials=[m for m in content.get("materials") or [] if not m.get("required", True)],
        online_apply=True,
        apply_loa=2,
        online_depth=max(3, int(content.get("online_depth", 3))),
        booking=False,  # stays out of the booking phase's matters
    )
    headers = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
    body = json.dumps({"code": CASE_MATTER, "content": content}).encode()
    status, payload = ctx.request("POST", "/api/v1/admin/matters", body=body, headers=headers)
    if status == 201:
        no = int(json.loads(payload)["version"]["no"])
        _api(ctx, "POST", f"/api/v1/admin/matters/{CASE_MATTER}/versions/{no}/publish", admin)
    elif status != 409:  # 409: the matter exists (a database not reset): used when it fits (below)
        raise BenchError(f"POST /api/v1/admin/matters answered {status}: {payload[:300]!r}", EXIT_SERVER)
    status, payload = ctx.request("GET", f"/api/v1/matters/{CASE_MATTER}")
    guide = json.loads(payload) if status == 200 else {}
    if not _fits(guide):
        raise BenchError(
            f"matter {CASE_MATTER} does not take online applications at LoA 2 without required materials "
            f"(GET answered {status}: {payload[:300]!r})",
            EXIT_SERVER,
        )
    return CASE_MATTER, str(template["code"])


def cases_setup(ctx: Context) -> CasesSetup:
    """Once per phase: the administrator, the bench matter and the citizens' tokens (CASE_CITIZENS + 1)."""
    if "cases" in ctx.state:
        return ctx.state["cases"]
    admin = _staff_token(ctx, "admin", "bench-admin")
    matter, template = bench_matter(ctx, admin)
    wanted = CASE_CITIZENS + 1
    started = time.monotonic()
    minted = dev_tokens(
        ctx.server_env, ["--citizens", str(wanted + 3), "--loa", "2"], ctx.deadline, count=wanted + 3,
        timeout=TOKEN_TIMEOUT + PER_CITIZEN_S * wanted,
    )  # fmt: skip
    citizens = list({_jwt_subject(t): t for t in minted}.values())[:wanted]  # random phones may repeat (rarely)
    if len(citizens) < wanted:
        raise BenchError(f"minted {len(citizens)} distinct citizens, needed {wanted}", EXIT_SERVER)
    print(
        f"cases setup: matter {matter} (a copy of {template}: online application at LoA 2, no required material); "
        f"{wanted} citizens minted in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    setup = CasesSetup(matter, template, citizens, secrets.token_hex(4))
    ctx.state["cases"] = setup
    return setup


def _submit(ctx: Context, token: str, key: str, body: Mapping[str, Any]) -> tuple[int, bytes]:
    """One online application (`POST /api/v1/cases`) by the citizen with this token."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Idempotency-Key": key}
    return ctx.request("POST", "/api/v1/cases", body=json.dumps(body, ensure_ascii=False).encode(), headers=headers)


def case_submit_setup(ctx: Context) -> dict[str, str]:
    """case_submit's data: the citizens (all but the spare one), an ID number for each, and the application's JSON
    around them (the script puts in the ID number and the request's number)."""
    setup = cases_setup(ctx)
    citizens = setup.citizens[:-1]
    form = {"purpose": "基准测试", "bench": "case_submit", "run": setup.salt, "n": "@N@"}
    body = case_body(setup.matter, 0, form)
    body["applicant"]["id_number"] = "@ID@"
    # The JSON cut at the ID number and at the form's n: the script sends head .. ID .. mid .. n .. tail.
    head, _, rest = json.dumps(body, ensure_ascii=False, separators=(",", ":")).partition("@ID@")
    mid, _, tail = rest.partition('"@N@"')
    ids = (id_number(k) for k in range(len(citizens)))
    data = ctx.work_dir / "case_submit.lua"
    data.write_text(
        f'return {{salt="{setup.salt}", tokens={_lua_table(citizens)}, ids={_lua_table(ids)}, '
        f"head={_lua_string(head)}, mid={_lua_string(mid)}, tail={_lua_string(tail)}}}\n",
        "utf-8",
    )
    return {"bench_data": str(data), "bench_state": str(ctx.work_dir / "case_submit.state")}


def case_submit_preflight(ctx: Context) -> tuple[int, bytes]:
    """One application by the spare citizen (left out of the check: its form says `preflight`)."""
    setup = ctx.state["cases"]
    form = {"purpose": "基准测试", "bench": "preflight", "run": setup.salt}
    body = case_body(setup.matter, len(setup.citizens), form)
    return _submit(ctx, setup.citizens[-1], f"{setup.salt}-preflight", body)


def _run_cases(setup: CasesSetup) -> str:
    """The SQL condition (on `case_record c`) of case_submit's cases: the bench matter, this run's salt in the form."""
    return f"c.matter_code = '{setup.matter}' AND c.form->>'run' = '{setup.salt}' AND c.form->>'bench' = 'case_submit'"


def case_submit_check(ctx: Context, runs: Sequence[WrkResult]) -> dict[str, Any]:
    """Cases against answers: the case_record rows of the run (the bench matter, the form's run and `case_submit`)
    are the answered 201s plus those committed while wrk stopped with their request in flight (at most the requests
    left unanswered); every 201 names one of them, all case numbers distinct (over the whole table too), each case
    with exactly one timeline event (`submit`)."""
    setup = ctx.state["cases"]
    counts = _sum_counts(runs)
    problems: list[str] = []
    answered, sent = _answered(counts), counts.get("sent", 0)
    in_flight = max(sent - answered, 0)
    created = counts.get("status_201", 0)
    errors_5xx = sum(v for k, v in counts.items() if k.startswith("status_5"))
    refused = {k[5:]: v for k, v in counts.items() if k.startswith("code_")}
    if refused:
        problems.append(f"refusals: {refused}")
    if errors_5xx:
        problems.append(f"{errors_5xx} answers 5xx (see the server log)")
    observed = _report_lines(runs, "case")
    if len(set(observed)) != len(observed) or len(observed) != created:
        problems.append(f"{created} answers 201 name {len(set(observed))} distinct case numbers")
    rows = run_sql(
        "SELECT 'n', count(*), count(DISTINCT case_no), count(*) FILTER (WHERE status <> 'submitted') "
        f"FROM case_record c WHERE {_run_cases(setup)};\n"
        f"SELECT 'c', case_no FROM case_record c WHERE {_run_cases(setup)};\n"
        "SELECT 'e', count(*), count(DISTINCT e.case_id), count(*) FILTER (WHERE e.action <> 'submit') "
        f"FROM case_event e JOIN case_record c ON c.id = e.case_id WHERE {_run_cases(setup)};\n"
        "SELECT 'a', count(*), count(DISTINCT case_no) FROM case_record;\n"
        f"SELECT 'k', count(*) FROM idempotency_record WHERE status IS NULL AND key LIKE '{setup.salt}-%';",
        ctx.deadline,
    )
    by = {r[0]: r[1:] for r in rows if r[0] != "c"}
    total, distinct, not_submitted = (int(v) for v in by["n"])
    events, with_event, other_events = (int(v) for v in by["e"])
    all_rows, all_distinct = (int(v) for v in by["a"])
    stuck = int(by["k"][0])
    in_db = {r[1] for r in rows if r[0] == "c"}
    missing = set(observed) - in_db
    unobserved = in_db - set(observed)
    if missing:
        problems.append(f"{len(missing)} answers 201 name no case of the run (e.g. {sorted(missing)[0]})")
    if len(unobserved) > in_flight:
        problems.append(f"{len(unobserved)} cases were never answered 201 (only {in_flight} requests in flight)")
    if total != created + len(unobserved):
        problems.append(f"{total} case_record rows of the run, expected {created} answered 201 + {len(unobserved)}")
    if distinct != total:
        problems.append(f"{total} case_record rows of the run carry {distinct} distinct case numbers")
    if all_distinct != all_rows:
        problems.append(f"case_record holds {all_rows} rows with {all_distinct} distinct case numbers")
    if not_submitted:
        problems.append(f"{not_submitted} cases of the run are not in status submitted")
    if events != total or with_event != total or other_events:
        problems.append(f"{total} cases have {events} timeline events ({other_events} not `submit`)")
    facts = {
        "attempts": answered, "in_flight_unanswered": in_flight, "created_201": created, "refusals": refused,
        "errors_5xx": errors_5xx, "cases_in_db": total, "distinct_case_nos": distinct,
        "committed_unanswered": len(unobserved), "submit_events": events, "case_record_rows": all_rows,
        "case_record_distinct_case_nos": all_distinct, "idempotency_keys_left_claimed": stuck,
    }  # fmt: skip
    summary = (
        f"{answered} applications: {created} x 201, {sum(refused.values())} refused, {errors_5xx} x 5xx; "
        f"{total} case_record rows of the run = {created} answered 201 + {len(unobserved)} committed while wrk "
        f"stopped, {distinct} distinct case numbers ({all_rows} rows, {all_distinct} distinct in the whole table), "
        f"{events} submit events"
        + (f"; {stuck} Idempotency-Keys left claimed (no answer stored, not released)" if stuck else "")
    )
    return {"summary": summary, "problems": problems, "facts": facts}


def progress_setup(ctx: Context) -> dict[str, str]:
    """progress_query's data: PROGRESS_CASES cases of the bench matter, applied for through the API by the spare
    citizen, and their numbers and query codes (shown once, in the 201)."""
    setup = cases_setup(ctx)
    end = time.monotonic() + ctx.deadline.clip(30 + PER_CASE_S * PROGRESS_CASES)
    cases: list[tuple[str, str]] = []
    for k in range(PROGRESS_CASES):
        if time.monotonic() > end:
            raise BenchError("creating progress_query's cases took too long", EXIT_SERVER)
        form = {"purpose": "基准测试", "bench": "progress_query", "run": setup.salt, "n": k}
        status, payload = _submit(
            ctx, setup.citizens[-1], f"{setup.salt}-progress-{k}", case_body(setup.matter, len(setup.citizens), form)
        )
        if status != 201:
            raise BenchError(f"POST /api/v1/cases for progress_query answered {status}: {payload[:300]!r}", EXIT_SERVER)
        answer = json.loads(payload)
        cases.append((str(answer["case_no"]), str(answer["query_code"])))
    paths = [f"/api/v1/progress?case_no={no}&query_code={code}" for no, code in cases]
    data = ctx.work_dir / "progress_query.lua"
    data.write_text(f"return {{paths={_lua_table(paths)}, cases={_lua_table(no for no, _ in cases)}}}\n", "utf-8")
    ctx.state["progress"] = {"paths": paths, "cases": [no for no, _ in cases]}
    print(f"progress: created {len(cases)} cases of {setup.matter} to query", flush=True)
    return {"bench_data": str(data)}


def progress_preflight(ctx: Context) -> tuple[int, bytes]:
    """The first case's progress (200, that case)."""
    progress = ctx.state["progress"]
    status, body = ctx.request("GET", progress["paths"][0], headers={"Accept": "application/json"})
    if status == 200 and json.loads(body).get("case_no") != progress["cases"][0]:
        raise BenchError(f"the preflight query answered {body[:300]!r}, not case {progress['cases'][0]}", EXIT_SERVER)
    return status, body


def progress_check(ctx: Context, runs: Sequence[WrkResult]) -> dict[str, Any]:
    """Every query answered 200 with one of the queried cases (none refused by the rate limits: 429)."""
    progress = ctx.state["progress"]
    counts = _sum_counts(runs)
    answered = _answered(counts)
    ok, other = counts.get("result_case", 0), counts.get("result_other", 0)
    limited = counts.get("status_429", 0)
    problems = []
    if other:
        problems.append(f"{other} answers 200 name no case that was queried")
    if limited:
        problems.append(f"{limited} answers 429 (the rate limits were not raised?)")
    if ok != answered:
        problems.append(f"{answered - ok} of {answered} queries did not answer one of the cases queried")
    summary = (
        f"{answered} queries of {len(progress['cases'])} cases: {ok} x 200 with the case queried, "
        f"{limited} x 429 ({_counts_text(counts)})"
    )
    facts = {"queries": answered, "answered_case": ok, "answered_other": other, "rate_limited_429": limited}
    return {"summary": summary, "problems": problems, "facts": facts}


# ---------------------------------------------------------------- the wechat phase
#
# The messages are generated in the setup with wechatpy's WeChatCrypto (the server's token, EncodingAESKey and app id
# come from the phase's env), one per request, and sent once each by bench/lua/wechat_scan.lua; the check reads the
# WeChat scans the server counted in qr_scan_daily with psql.

WECHAT_TICKET = "gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2tUb1p4WG5sZmE"  # a QR code ticket, as WeChat sends
_REPLY_FIELD_RE = {
    name: re.compile(rf"<{name}>(?:<!\[CDATA\[)?([^<\]]*)(?:\]\]>)?</{name}>")
    for name in ("Encrypt", "MsgSignature", "TimeStamp", "Nonce")
}


def _sha1(*parts: str) -> str:
    """WeChat's signature: the SHA-1 of the sorted parts, concatenated."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def wechat_setup_s(cfg: Config) -> float:
    """The most generating the messages, the preflight and the check (with its wait for the scan flush) take."""
    return 30 + PER_MESSAGE_S * cfg.wechat_count + SCAN_FLUSH_WAIT + 60


def scan_event_xml(openid: str, slug: str, at: str) -> str:
    """A SCAN event (a subscriber scanning a parametric QR code whose scene is the code's slug), as WeChat sends it."""
    return (
        f"<xml><ToUserName><![CDATA[{WECHAT_OA}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{at}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[SCAN]]></Event>"
        f"<EventKey><![CDATA[{slug}]]></EventKey><Ticket><![CDATA[{WECHAT_TICKET}]]></Ticket></xml>"
    )


@dataclass(frozen=True)
class WeChatSigner:
    """Safe-mode messages signed and encrypted with the server's callback credentials (wechatpy's WeChatCrypto)."""

    token: str
    crypto: Any  # wechatpy.crypto.WeChatCrypto

    @classmethod
    def of(cls, ctx: Context) -> WeChatSigner:
        """The signer for the server of this phase (WECHAT_MP_TOKEN, WECHAT_MP_AES_KEY, WECHAT_MP_APPID of its env)."""
        env = ctx.server_env
        names = ("WECHAT_MP_TOKEN", "WECHAT_MP_AES_KEY", "WECHAT_MP_APPID")
        if not all(env.get(n) for n in names):
            raise BenchError(f"wechat_scan needs {', '.join(names)} in its phase's env", EXIT_SERVER)
        try:
            from wechatpy.crypto import WeChatCrypto
        except ImportError:
            raise BenchError("wechatpy is not importable: run bench.py with the venv's python", EXIT_SERVER) from None
        token, key, appid = (env[n] for n in names)
        return cls(token, WeChatCrypto(token, key, appid))

    def message(self, xml: str, nonce: str, timestamp: str, openid: str) -> tuple[str, str]:
        """(the callback's path with the signed query, the Encrypt value of the body) of one message."""
        envelope = self.crypto.encrypt_message(xml, nonce, timestamp)
        encrypt = _REPLY_FIELD_RE["Encrypt"].search(envelope)
        assert encrypt is not None, envelope
        query = (
            f"signature={_sha1(self.token, timestamp, nonce)}&timestamp={timestamp}&nonce={nonce}&openid={openid}"
            f"&encrypt_type=aes&msg_signature={_sha1(self.token, timestamp, nonce, encrypt.group(1))}"
        )
        return f"/wechat/callback?{query}", encrypt.group(1)

    def open_reply(self, body: bytes) -> Any:
        """The decrypted reply's XML root; raises ValueError when it is not an encrypted reply we can read."""
        text = body.decode("utf-8", "replace")
        found = [rx.search(text) for rx in _REPLY_FIELD_RE.values()]
        fields = [m.group(1) for m in found if m is not None]
        if len(fields) != len(found):
            raise ValueError(f"not an encrypted reply: {text[:200]!r}")
        _, sig, ts, nonce = fields  # Encrypt, MsgSignature, TimeStamp, Nonce
        try:  # the server's own reply (wechatpy's template, no DTD)
            return ElementTree.fromstring(self.crypto.decrypt_message(text, sig, ts, nonce))
        except Exception as exc:  # signature, padding, app id, XML
            raise ValueError(f"the reply does not decrypt: {exc!r}") from None


def _wechat_body(encrypt: str) -> str:
    """A safe-mode message's body: the official account and the encrypted message only."""
    return f"<xml><ToUserName><![CDATA[{WECHAT_OA}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"


def _news_problem(ctx: Context, signer: WeChatSigner, body: bytes) -> str | None:
    """What is wrong with a scan's answer, or None when it is an encrypted news reply (one article) linking to the
    picked matter's guide."""
    try:
        root = signer.open_reply(body)
    except ValueError as exc:
        return str(exc)
    url = root.findtext("Articles/item/Url") or ""
    kind, articles = root.findtext("MsgType"), root.findtext("ArticleCount")
    if kind != "news" or articles != "1" or f"/m/{ctx.matter_code}" not in url:
        content = (root.findtext("Content") or "")[:80]
        return f"reply MsgType {kind}, {articles} articles, Url {url!r}" + (f", Content {content!r}" if content else "")
    return None


def _wechat_scans(ctx: Context, slug: str) -> int:
    """The scans of the code counted in qr_scan_daily from the WeChat channel, over all days."""
    rows = run_sql(
        f"SELECT coalesce(sum(scans), 0) FROM qr_scan_daily WHERE slug = '{slug}' AND channel = 'wechat';", ctx.deadline
    )
    return int(rows[0][0])


def wechat_setup(ctx: Context) -> dict[str, str]:
    """wechat_scan's data: BENCH_WECHAT_MESSAGES SCAN events of the picked matter's default QR code, each from a
    subscriber of its own with a nonce of its own, all stamped with the current time, signed and encrypted for the
    server, in one Lua file per wrk thread; plus one message for the preflight, and the code's WeChat scans so far."""
    signer = WeChatSigner.of(ctx)
    cfg = ctx.cfg
    window = int(ctx.server_env.get("WECHAT_CALLBACK_WINDOW", "300"))
    lasts = len(WECHAT_PATHS) * (cfg.measured_s + (cfg.rounds + 1) * 15)  # from now to the end of the phase's last run
    if lasts > window - 60:
        raise BenchError(
            f"the wechat phase would send messages up to {lasts} s after generating them; their timestamps stay "
            f"valid for WECHAT_CALLBACK_WINDOW={window} s (shorten BENCH_DURATION, BENCH_ROUNDS or BENCH_WARMUP)",
            EXIT_SERVER,
        )
    slug = ctx.qr_slug()
    before = _wechat_scans(ctx, slug)
    threads = cfg.threads
    count = max(cfg.wechat_count, threads)
    region = count // threads
    salt = secrets.token_hex(4)
    timestamp = str(int(time.time()))
    started = time.monotonic()
    end = started + ctx.deadline.clip(30 + PER_MESSAGE_S * count)
    data = ctx.work_dir / "wechat_scan"
    head, tail = _wechat_body("@").split("@")
    widths: set[tuple[int, int]] = set()
    for tid in range(threads):
        records = []
        for i in range(tid * region, (tid + 1) * region):
            if time.monotonic() > end:
                raise BenchError("generating wechat_scan's messages took too long", EXIT_SERVER)
            openid = f"obench-{salt}-{i:07d}"  # fixed widths: every message of the phase has the same length
            path, encrypt = signer.message(scan_event_xml(openid, slug, timestamp), f"{salt}{i:07d}", timestamp, openid)
            widths.add((len(path), len(encrypt)))
            records.append(path + encrypt)
        if len(widths) != 1:
            raise BenchError(f"wechat_scan's messages differ in length: {sorted(widths)}", EXIT_SERVER)
        (path_len, encrypt_len) = next(iter(widths))
        # One long string per thread (records of fixed width): LuaJIT reads it several times faster than as many
        # small strings, and wrk runs a thread's init() while the threads started before it already send.
        Path(f"{data}.{tid}.lua").write_text(
            f"return {{n={len(records)}, path_len={path_len}, encrypt_len={encrypt_len}, head={_lua_string(head)}, "
            f"tail={_lua_string(tail)}, blob={_lua_string(''.join(records))}}}\n",
            "utf-8",
        )
    openid = f"obench-{salt}-preflight"
    preflight = signer.message(scan_event_xml(openid, slug, timestamp), f"{salt}pre", timestamp, openid)
    ctx.state["wechat"] = {
        "signer": signer, "slug": slug, "before": before, "messages": region * threads, "preflight": preflight,
    }  # fmt: skip
    print(
        f"wechat: {region * threads} SCAN events of code {slug} ({threads} x {region}, timestamp {timestamp}) signed "
        f"and encrypted in {time.monotonic() - started:.1f} s; the code's WeChat scans so far: {before}",
        flush=True,
    )
    return {"bench_data": str(data), "bench_state": str(ctx.work_dir / "wechat_scan.state")}


def wechat_preflight(ctx: Context) -> tuple[int, bytes]:
    """One SCAN event of a subscriber of its own: 200, an encrypted news reply linking to the matter's guide."""
    w = ctx.state["wechat"]
    path, encrypt = w["preflight"]
    status, body = ctx.request("POST", path, body=_wechat_body(encrypt).encode(), headers={"Content-Type": "text/xml"})
    if status == 200 and (problem := _news_problem(ctx, w["signer"], body)):
        raise BenchError(f"the preflight scan's answer is not an encrypted news reply: {problem}", EXIT_SERVER)
    return status, body


def wechat_check(ctx: Context, runs: Sequence[WrkResult]) -> dict[str, Any]:
    """Every answer 200 with an encrypted reply (the replies kept by the script decrypt to news of the matter), and
    every one of them counted as a WeChat scan of the code in qr_scan_daily once the workers have flushed."""
    w = ctx.state["wechat"]
    signer: WeChatSigner = w["signer"]
    counts = _sum_counts(runs)
    answered, sent = _answered(counts), counts.get("sent", 0)
    in_flight = max(sent - answered, 0)
    ok = counts.get("result_encrypted", 0)
    problems: list[str] = []
    if counts.get("wrapped"):
        problems.append(
            f"ran out of fresh messages: {counts['wrapped']} requests resent a message (raise BENCH_WECHAT_MESSAGES)"
        )
    if counts.get("code_WECHAT_TIMESTAMP_INVALID"):
        problems.append(f"{counts['code_WECHAT_TIMESTAMP_INVALID']} answers: the messages' timestamps went stale")
    if ok != answered:
        problems.append(f"{answered - ok} of {answered} answers are not 200 with an encrypted reply")
    samples = _report_lines(runs, "reply")
    wrong = [p for p in (_news_problem(ctx, signer, s.encode()) for s in samples) if p]
    if wrong:
        problems.append(f"{len(wrong)} of {len(samples)} replies decrypted are not news of the matter: {wrong[0]}")
    expected = ok + 1  # every scan answered with a reply, and the preflight's
    started = time.monotonic()
    while True:  # each worker flushes its scan counters every SCAN_FLUSH_S: wait for the last ones
        scans = _wechat_scans(ctx, w["slug"]) - w["before"]
        waited = time.monotonic() - started
        if scans >= expected or waited >= SCAN_FLUSH_WAIT:
            break
        time.sleep(0.5)
    if scans < expected - SCAN_TOLERANCE:
        problems.append(
            f"qr_scan_daily counts {scans} WeChat scans of code {w['slug']} after {waited:.1f} s, "
            f"expected at least {expected} ({ok} replies + the preflight)"
        )
    if scans > sent + 1:
        problems.append(f"qr_scan_daily counts {scans} WeChat scans for {sent} requests sent (+ the preflight)")
    facts = {
        "messages": w["messages"], "sent": sent, "answered": answered, "in_flight_unanswered": in_flight,
        "encrypted_replies": ok, "success_no_reply": counts.get("result_success", 0),
        "replies_decrypted": len(samples), "replies_not_news": len(wrong), "wechat_scans_counted": scans,
        "scans_expected_at_least": expected, "flush_wait_s": round(waited, 1),
    }  # fmt: skip
    counted = (
        f"= {ok} replies + 1 preflight + {scans - expected} of the {in_flight} requests left unanswered"
        if scans >= expected
        else f"< {expected} = {ok} replies + 1 preflight"
    )
    summary = (
        f"{answered} scans of {w['messages']} messages ({_counts_text(counts)}): {ok} x 200 with an encrypted reply, "
        f"{len(samples) - len(wrong)} of {len(samples)} decrypted news of {ctx.matter_code}; qr_scan_daily counts "
        f"{scans} new WeChat scans of code {w['slug']} (after {waited:.1f} s) {counted}"
    )
    return {"summary": summary, "problems": problems, "facts": facts}


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
    """Evaluate a path's callables against the running server (and run its setup, if any)."""
    path = spec.path(ctx) if callable(spec.path) else spec.path
    headers = spec.headers(ctx) if callable(spec.headers) else spec.headers
    lua_vars = dict(spec.setup(ctx)) if spec.setup is not None else {}
    return Resolved(spec=spec, path=path, headers=dict(headers), lua_vars=lua_vars)


def preflight(ctx: Context, target: Resolved) -> str:
    """One request per path before load, so a broken route is named instead of merely being fast (a path's own
    preflight when its script sends requests no static one can stand for)."""
    if target.spec.preflight is not None:
        status, payload = target.spec.preflight(ctx)
    else:
        body = target.spec.body.encode() if target.spec.body is not None else None
        status, payload = ctx.request(target.spec.method, target.path, body=body, headers=target.headers)
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


def _failed_answers(spec: BenchPath, runs: Sequence[WrkResult]) -> list[str]:
    """What is wrong with the responses: any non-2xx/3xx (wrk's count), or for a path with `answers` any status the
    script counted (`status_NNN`) that is neither 2xx/3xx nor one of those answers."""
    non2xx = sum(r.non_2xx_3xx for r in runs)
    if not spec.answers:
        return [f"{non2xx} non-2xx/3xx responses"] if non2xx else []
    per_status: dict[int, int] = {}
    for run in runs:
        for key, value in run.counts.items():
            if key.startswith("status_") and key[7:].isdigit():
                per_status[int(key[7:])] = per_status.get(int(key[7:]), 0) + value
    if sum(per_status.values()) < sum(r.requests for r in runs):
        return [f"the script of {spec.name} did not count every status (status_NNN in its report)"]
    bad = {code: n for code, n in sorted(per_status.items()) if not 200 <= code < 400 and code not in spec.answers}
    shown = ", ".join(f"{n}x {code}" for code, n in bad.items())
    return [f"{sum(bad.values())} failed responses ({shown})"] if bad else []


def _sum_counts(runs: Iterable[WrkResult]) -> dict[str, int]:
    """The script's counts added up over runs."""
    total: dict[str, int] = {}
    for run in runs:
        for key, value in run.counts.items():
            total[key] = total.get(key, 0) + value
    return dict(sorted(total.items()))


def summarize(
    target: Resolved, runs: list[WrkResult], baseline: list[WrkResult], checked: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Medians over rounds, the ratio to the baseline, the p99 check, the path's own check (if any) and the verdict
    of one path."""
    rps = statistics.median(r.rps for r in runs)
    p99 = statistics.median(r.p99_ms for r in runs)
    baseline_rps = statistics.median(r.rps for r in baseline)
    baseline_p99 = statistics.median(r.p99_ms for r in baseline)
    non2xx = sum(r.non_2xx_3xx for r in runs)
    problems = _failed_answers(target.spec, runs)
    sockets = {k: sum(r.socket_errors[k] for r in runs) for k in runs[0].socket_errors}
    ratio = rps / baseline_rps if baseline_rps else 0.0
    goal, p99_max = target.spec.target, target.spec.p99_max_ms
    if checked is not None:
        problems += checked.get("problems", [])
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
        "counts": _sum_counts(runs),
        "check": checked,
        "runs": [
            {"round": i + 1, "rps": r.rps, "p99_ms": r.p99_ms, "requests": r.requests,
             "non_2xx_3xx": r.non_2xx_3xx, "socket_errors": r.socket_errors, "counts": r.counts}
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
        if row.get("counts"):
            print(f"  answers over the rounds: {_counts_text(row['counts'])}")
        if row.get("check"):
            print(f"  check (all runs, warm-up included): {row['check'].get('summary', '')}")
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
    """Set up and warm every path, run them in interleaved rounds, then run the paths' checks; returns the matter
    code and one row per path."""
    code = pick_matter(server.base_url)
    with tempfile.TemporaryDirectory(prefix="bench-phase-") as work_dir:
        ctx = Context(
            base_url=server.base_url, matter_code=code, server_env=server.env(), deadline=deadline, cfg=cfg,
            work_dir=Path(work_dir),
        )  # fmt: skip
        targets = [resolve(spec, ctx) for spec in paths]
        print(f"matter code: {code}", flush=True)
        warm: dict[str, WrkResult] = {}
        for target in targets:
            answer = preflight(ctx, target)
            name, shown = target.spec.name, f"{target.spec.method} {target.path}"
            print(f"warming {name}: {shown} ({answer}; {cfg.warmup} s)", flush=True)
            warm[name] = run_wrk(server.base_url + target.path, target, cfg, cfg.warmup, deadline)
        runs: dict[str, list[WrkResult]] = {t.spec.name: [] for t in targets}
        for round_no in range(1, cfg.rounds + 1):
            for target in targets:
                result = run_wrk(server.base_url + target.path, target, cfg, cfg.duration, deadline)
                runs[target.spec.name].append(result)
                extra = f", {result.non_2xx_3xx} non-2xx/3xx" if result.non_2xx_3xx else ""
                if result.counts:
                    extra += f" [{_counts_text(result.counts)}]"
                print(
                    f"round {round_no}/{cfg.rounds} {target.spec.name:<12} {result.rps:>10.1f} req/s  "
                    f"p99 {result.p99_ms:8.2f} ms{extra}",
                    flush=True,
                )
        checked: dict[str, dict[str, Any]] = {}
        for target in targets:  # what the runs wrote, with every run of the path (the warm-up first)
            if target.spec.check is not None:
                name = target.spec.name
                checked[name] = target.spec.check(ctx, [warm[name], *runs[name]])
                print(f"check {name}: {checked[name].get('summary', '')}", flush=True)
                for problem in checked[name].get("problems", []):
                    print(f"  problem: {problem}", flush=True)
    baseline = runs[targets[0].spec.name]
    return code, [summarize(t, runs[t.spec.name], baseline, checked.get(t.spec.name)) for t in targets]


def _counts_text(counts: Mapping[str, int]) -> str:
    """A script's counts in one line, e.g. `201 x40, 409 x60, SLOT_FULL x60` (statuses first)."""
    statuses = [f"{k[7:]} x{v}" for k, v in sorted(counts.items()) if k.startswith("status_")]
    named = [f"{k.partition('_')[2]} x{v}" for k, v in sorted(counts.items()) if k.startswith(("code_", "result_"))]
    other = [f"{k} {v}" for k, v in sorted(counts.items()) if k == "wrapped" and v]
    return ", ".join(statuses + named + other)


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


def selected_phases() -> list[Phase]:
    """The phases to run: BENCH_PHASES (comma-separated names, in PHASES order), else all of them."""
    raw = os.environ.get("BENCH_PHASES", "").strip()
    if not raw:
        return list(PHASES)
    names = {name.strip() for name in raw.split(",") if name.strip()}
    unknown = names - {ph.name for ph in PHASES}
    if unknown:
        known = ", ".join(ph.name for ph in PHASES)
        raise BenchError(f"BENCH_PHASES names unknown phases {sorted(unknown)} (known: {known})", EXIT_SERVER)
    return [ph for ph in PHASES if ph.name in names]


def selected_paths(phases: list[Phase]) -> list[Phase]:
    """BENCH_PATHS (comma-separated path names) keeps only those paths, and each phase's baseline, in the phases."""
    raw = os.environ.get("BENCH_PATHS", "").strip()
    if not raw:
        return phases
    names = {name.strip() for name in raw.split(",") if name.strip()}
    unknown = names - {p.name for ph in phases for p in ph.paths}
    if unknown:
        raise BenchError(f"BENCH_PATHS names paths the selected phases do not have: {sorted(unknown)}", EXIT_SERVER)
    kept = [replace(ph, paths=[p for i, p in enumerate(ph.paths) if i == 0 or p.name in names]) for ph in phases]
    return [ph for ph in kept if len(ph.paths) > 1]


def time_bound(phases: list[Phase], cfg: Config) -> float:
    """Seconds the whole run may take: the reset, then per phase start-up, setup (with the paths' own setups and
    checks), every wrk run and slack."""
    total = 60.0  # database reset and Redis flush
    for ph in phases:
        n = len(ph.paths)
        wrk_s = n * (cfg.rounds * cfg.duration + cfg.warmup)
        total += READY_TIMEOUT + 2 * STOP_TIMEOUT + TOKEN_TIMEOUT + 60 + wrk_s + n * (cfg.rounds + 1) * 15
        total += sum(p.setup_s(cfg) for p in ph.paths if p.setup_s is not None)
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
        chosen = selected_paths(selected_phases())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return exc.exit_code
    bound = time_bound(chosen, cfg)
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
            "time_bound_s": round(bound), "phases": [ph.name for ph in chosen],
            "booking_citizens": cfg.citizens, "desk_bookings": cfg.desk_tickets, "wechat_messages": cfg.wechat_count,
        },
        "phases": [],
    }  # fmt: skip
    n_paths = sum(len(ph.paths) for ph in chosen)
    print(
        f"bench: {len(chosen)} phases, {n_paths} paths x {cfg.rounds} rounds x {cfg.duration} s, "
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
        for phase in chosen:
            # a phase's files keep their names when BENCH_PHASES (or BENCH_PATHS) picks some
            index = [ph.name for ph in PHASES].index(phase.name)
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
