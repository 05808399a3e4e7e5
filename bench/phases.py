"""What is measured: the paths of the main, latency and token-cache-off phases, the list of every phase, and the
selection BENCH_PHASES / BENCH_PATHS makes. Adding a path or a phase is one line here."""

from __future__ import annotations

import os
import re
from dataclasses import replace

from .booking import BOOKING_PATHS
from .cases import CASES_PATHS
from .console import CONSOLE_PATHS
from .h5 import H5_PATHS
from .harness import (
    BASELINE,
    EXIT_SERVER,
    PGBENCH_MODES,
    BenchError,
    BenchPath,
    Context,
    Headers,
    Phase,
    http_request_typed,
)
from .wechat import WECHAT_AES_KEY, WECHAT_APPID, WECHAT_PATHS, WECHAT_TOKEN, WECHAT_WINDOW


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


def _qr_png_preflight(c: Context) -> tuple[int, bytes]:
    """The printed code's PNG must be an image: 200 with `image/png` and a PNG signature, or the run stops."""
    path = f"/q/{c.qr_slug()}.png"
    status, kind, body = http_request_typed(c.base_url, path)
    if status == 200 and (not kind.startswith("image/png") or not body.startswith(b"\x89PNG")):
        raise BenchError(f"GET {path} answered 200 with {kind!r}, not a PNG image", EXIT_SERVER)
    return status, body


# me_uncached verifies the token and reads the session and account in PostgreSQL per request: its ratio to pgbench
# -S is shown (report only).
ME_UNCACHED = BenchPath(
    "me_uncached", "GET", "/api/v1/me", None, headers=_bearer, report_only=True, expect_status=200, ceiling="S"
)
# qr_json is judged twice: its throughput and p99 against the hello-world in the main phase, its absolute p99 at
# moderate concurrency in the latency phase.
CACHED = 0.8  # the cached reads' target: at least this fraction of the hello-world's req/s ...
CACHED_P99 = 1.5  # ... with a median p99 at most this many times the hello-world's median p99 of the same phase
QR_JSON = BenchPath(
    "qr_json", "GET", _qr, None, headers=QR_JSON_HEADERS, expect_status=200, vs_hello=CACHED, p99_vs_hello=CACHED_P99
)
QR_JSON_P99 = BenchPath("qr_json", "GET", _qr, None, headers=QR_JSON_HEADERS, expect_status=200, p99_max_ms=10.0)
# The measured paths of the main phase, in the order each round runs them (after the hello-world). The first one is
# the in-app baseline. Adding a path is one line; callables receive the Context (e.g. the matter code picked at run
# time).
PATHS: list[BenchPath] = [
    BASELINE,
    BenchPath("guide_json", "GET", lambda c: f"/api/v1/matters/{c.matter_code}", None, vs_hello=CACHED,
              p99_vs_hello=CACHED_P99),
    BenchPath("h5_guide", "GET", lambda c: f"/m/{c.matter_code}", None, vs_hello=CACHED, p99_vs_hello=CACHED_P99),
    BenchPath("me_cached", "GET", "/api/v1/me", None, headers=_bearer, expect_status=200, vs_hello=CACHED,
              p99_vs_hello=CACHED_P99),
    QR_JSON,
    # The printed code's image (`links.qr.png` of the guide): rendered once per worker, then served from memory.
    BenchPath("qr_png", "GET", lambda c: f"/q/{c.qr_slug()}.png", None, expect_status=200,
              preflight=_qr_png_preflight, vs_hello=CACHED, p99_vs_hello=CACHED_P99),
    BenchPath("qr_h5", "GET", _qr, None, headers=MOBILE_BROWSER, expect_status=200, vs_hello=0.7,
              p99_vs_hello=CACHED_P99),
]  # fmt: skip


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
    # The signed-in citizen's H5 pages (my bookings, a ticket) with a browser's session cookie; my bookings is judged
    # against the hello-world, the others are report-only.
    Phase("h5", "phase: h5 pages", [BASELINE, *H5_PATHS], env={"ACCESS_TOKEN_SECONDS": "3600"}),
    # The staff console's pages with an administrator's session cookie; report-only ratios.
    Phase("console", "phase: console pages", [BASELINE, *CONSOLE_PATHS], env={"ACCESS_TOKEN_SECONDS": "3600"}),
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


def check_phases(phases: list[Phase]) -> str | None:
    """What is wrong with the phase list, or None: each phase starts with the in-app baseline, every other path is
    judged against a target (a ratio to a ceiling or the baseline, a p99 limit) or marked report-only, a pgbench
    target names its mode, and names are unique."""
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
            or first.ceiling is not None
            or first.report_only
        ):
            return (
                f"phase {ph.name}: the paths must start with the baseline entry (no target ratio to itself, no "
                "p99_max_ms, no pgbench ceiling, not report-only)"
            )
        names = [p.name for p in ph.paths]
        if len(set(names)) != len(names) or "hello" in names:
            return f"phase {ph.name}: path names must be unique (and not `hello`, the hello-world's row)"
        for path in ph.paths:
            where = f"phase {ph.name}, path {path.name}"
            if path.report_only and path.judged:
                return f"{where}: a report-only path has no target and no p99 limit"
            for label, value in (
                ("target", path.target),
                ("vs_hello", path.vs_hello),
                ("vs_pgbench", path.vs_pgbench),
                ("p99_vs_hello", path.p99_vs_hello),
                ("p99_max_ms", path.p99_max_ms),
            ):
                if value is not None and value <= 0:
                    return f"{where}: {label} must be > 0"
            if path.ceiling is not None and path.ceiling not in PGBENCH_MODES:
                return f"{where}: ceiling must be one of {', '.join(PGBENCH_MODES)} (pgbench -N or -S)"
            if path.vs_pgbench is not None and path.ceiling is None:
                return f"{where}: vs_pgbench needs a ceiling (the pgbench mode, N or S)"
            if path is not first and not path.report_only and not path.judged:
                return f"{where}: give a target (vs_hello, vs_pgbench, target, p99_vs_hello, p99_max_ms) or report_only"
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
