"""The run: reset the stores (and pgbench's scratch database) once, then per phase start the server and the
hello-world, set up, preflight and warm every path and ceiling, measure them in interleaved rounds, run the checks and
stop both; print and save the report."""

from __future__ import annotations

import json
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import stores
from .ceilings import HelloServer, ceiling_summary, init_pgbench, run_pgbench
from .harness import (
    EXIT_OK,
    EXIT_SERVER,
    EXIT_WRK,
    HELLO,
    PGBENCH_BIN,
    PGBENCH_DB,
    PGBENCH_INIT_TIMEOUT,
    PGBENCH_SCALE,
    READY_TIMEOUT,
    RESULTS_DIR,
    ROOT,
    STOP_TIMEOUT,
    TIME_BIN,
    TOKEN_TIMEOUT,
    WORKER_RSS_MAX_MIB,
    WORKERS,
    BenchError,
    BenchPath,
    Config,
    Context,
    Deadline,
    PgbenchMode,
    PgbenchResult,
    Phase,
    Resolved,
    WrkResult,
    counts_text,
    free_port,
    http_request,
)
from .phases import PHASES, check_phases, selected_paths, selected_phases
from .report import git_commit, print_report, print_summary, summarize, write_results
from .server import Server, parse_time_report
from .wrk import run_wrk


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


def _round_line(
    round_no: int, rounds: int, name: str, rps: float, p99: float, extra: str = "", unit: str = "req/s"
) -> str:
    """One printed run of a round: its req/s (tps for pgbench) and p99."""
    return f"round {round_no}/{rounds} {name:<14} {rps:>10.1f} {unit:<5}  p99 {p99:8.2f} ms{extra}"


def measure(
    server: Server,
    hello: HelloServer,
    paths: list[BenchPath],
    modes: list[PgbenchMode],
    cfg: Config,
    deadline: Deadline,
) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """Set up and warm every path and ceiling, run them in interleaved rounds (each round: the hello-world, the
    phase's pgbench modes, then the paths), then run the paths' checks; returns the matter code, one row per path
    and the ceilings' medians."""
    code = pick_matter(server.base_url)
    hello_target = Resolved(spec=HELLO, path="/", headers={})
    with tempfile.TemporaryDirectory(prefix="bench-phase-") as work_dir:
        ctx = Context(
            base_url=server.base_url, matter_code=code, server_env=server.env(), deadline=deadline, cfg=cfg,
            work_dir=Path(work_dir),
        )  # fmt: skip
        targets = [resolve(spec, ctx) for spec in paths]
        print(f"matter code: {code}", flush=True)
        print(f"warming hello: GET {hello.base_url}/ ({cfg.warmup} s)", flush=True)
        run_wrk(hello.base_url + "/", hello_target, cfg, cfg.warmup, deadline)
        for mode in modes:
            clients, threads = cfg.pgbench_load
            shown = f"{PGBENCH_DB} -c{clients} -j{threads}"
            print(f"warming pgbench -{mode}: {shown} ({cfg.warmup} s)", flush=True)
            run_pgbench(mode, cfg, cfg.warmup, deadline)
        warm: dict[str, WrkResult] = {}
        for target in targets:
            answer = preflight(ctx, target)
            name, shown = target.spec.name, f"{target.spec.method} {target.path}"
            print(f"warming {name}: {shown} ({answer}; {cfg.warmup} s)", flush=True)
            warm[name] = run_wrk(server.base_url + target.path, target, cfg, cfg.warmup, deadline)
        runs: dict[str, list[WrkResult]] = {t.spec.name: [] for t in targets}
        hello_runs: list[WrkResult] = []
        pg_runs: dict[str, list[PgbenchResult]] = {m: [] for m in modes}
        for round_no in range(1, cfg.rounds + 1):
            # The ceilings first, each while the service idles (and the service's paths while the hello-world and
            # PostgreSQL idle): every round measures the machine and the service under the same outside noise.
            result = run_wrk(hello.base_url + "/", hello_target, cfg, cfg.duration, deadline)
            hello_runs.append(result)
            extra = f", {result.non_2xx_3xx} non-2xx/3xx" if result.non_2xx_3xx else ""
            print(_round_line(round_no, cfg.rounds, "hello", result.rps, result.p99_ms, extra), flush=True)
            for mode in modes:
                pg = run_pgbench(mode, cfg, cfg.duration, deadline)
                pg_runs[mode].append(pg)
                extra = f" (latency avg {pg.latency_ms:.2f} ms" + (f", {pg.failed} failed)" if pg.failed else ")")
                line = _round_line(round_no, cfg.rounds, f"pgbench -{mode}", pg.tps, pg.p99_ms, extra, unit="tps")
                print(line, flush=True)
            for target in targets:
                result = run_wrk(server.base_url + target.path, target, cfg, cfg.duration, deadline)
                runs[target.spec.name].append(result)
                extra = f", {result.non_2xx_3xx} non-2xx/3xx" if result.non_2xx_3xx else ""
                if result.counts:
                    extra += f" [{counts_text(result.counts)}]"
                print(_round_line(round_no, cfg.rounds, target.spec.name, result.rps, result.p99_ms, extra), flush=True)
        checked: dict[str, dict[str, Any]] = {}
        for target in targets:  # what the runs wrote, with every run of the path (the warm-up first)
            if target.spec.check is not None:
                name = target.spec.name
                checked[name] = target.spec.check(ctx, [warm[name], *runs[name]])
                print(f"check {name}: {checked[name].get('summary', '')}", flush=True)
                for problem in checked[name].get("problems", []):
                    print(f"  problem: {problem}", flush=True)
    baseline = runs[targets[0].spec.name]
    ceilings = ceiling_summary(hello_runs, pg_runs)
    rows = [summarize(t, runs[t.spec.name], baseline, ceilings, checked.get(t.spec.name)) for t in targets]
    return code, rows, ceilings


def time_bound(phases: list[Phase], cfg: Config) -> float:
    """Seconds the whole run may take: the reset (and pgbench's scratch database when a phase needs it), then per
    phase start-up of the service and the hello-world, setup (with the paths' own setups and checks), every wrk and
    pgbench run and slack."""
    total = 60.0  # database reset and Redis flush
    if any(ph.pgbench_modes for ph in phases):
        total += PGBENCH_INIT_TIMEOUT
    for ph in phases:
        n = len(ph.paths) + 1 + len(ph.pgbench_modes)  # the paths, the hello-world and the pgbench modes
        load = cfg.for_phase(ph)
        wrk_s = n * (load.rounds * load.duration + load.warmup)
        total += 2 * (READY_TIMEOUT + 2 * STOP_TIMEOUT) + TOKEN_TIMEOUT + 60 + wrk_s + n * (load.rounds + 1) * 15
        total += sum(p.setup_s(cfg) for p in ph.paths if p.setup_s is not None)
    return total


def phase_files(index: int, phase: Phase) -> tuple[Path, Path | None, Path]:
    """The server log, /usr/bin/time report and hello-world log of a phase (the first phase keeps the plain names)."""
    suffix = "" if index == 0 else f".{phase.name}"
    time_path = RESULTS_DIR / f"server-time{suffix}.txt" if TIME_BIN.exists() else None
    return RESULTS_DIR / f"server{suffix}.log", time_path, RESULTS_DIR / f"hello{suffix}.log"


def judge_memory(memory: dict[str, Any]) -> None:
    """The memory verdict of a phase, in place: every Sanic worker's peak RSS (VmHWM) at most WORKER_RSS_MAX_MIB (the
    main process and its helpers are reported, not judged)."""
    workers = [p for p in memory.get("processes") or [] if p.get("worker")]
    limit_kb = WORKER_RSS_MAX_MIB * 1024
    memory["worker_limit_kb"] = limit_kb
    if not workers:
        memory["result"] = "FAIL"
        memory["problem"] = "no Sanic worker found among the server's processes"
        return
    peak = max(p["vm_hwm_kb"] for p in workers)
    memory["workers_max_vm_hwm_kb"] = peak
    memory["result"] = "PASS" if peak <= limit_kb else "FAIL"


def run_phase(index: int, phase: Phase, cfg: Config, deadline: Deadline, result: dict[str, Any]) -> None:
    """Start the server (and the hello-world) with the phase's env, measure its paths and the ceilings, always stop
    both; fills result in place."""
    cfg = cfg.for_phase(phase)
    result["load"] = {"threads": cfg.threads, "connections": cfg.connections}
    log_path, time_path, hello_log = phase_files(index, phase)
    drop = {k for ph in PHASES for k in ph.env}  # a phase's variables never leak from the caller into another
    server = Server(free_port(), log_path, time_path, cfg.redis_db, extra_env=phase.env, drop_env=drop)
    hello = HelloServer(free_port(), hello_log)
    result["server_log"] = str(log_path.relative_to(ROOT))
    result["hello_log"] = str(hello_log.relative_to(ROOT))
    memory: dict[str, Any] = result["memory"]
    env = " ".join(f"{k}={v}" for k, v in phase.env.items())
    modes = phase.pgbench_modes
    print(
        f"\n-- {phase.title}" + (f" ({env})" if env else "") + f" [wrk -t{cfg.threads} -c{cfg.connections}]"
        f": server on {server.base_url}, hello-world on {hello.base_url}"
        + (f", pgbench {' '.join('-' + m for m in modes)} on {PGBENCH_DB}" if modes else ""),
        flush=True,
    )
    try:
        server.start()
        hello.start()
        started = time.monotonic()
        server.wait_ready(deadline)
        hello.wait_ready(deadline)
        print(f"server and hello-world ready after {time.monotonic() - started:.1f} s", flush=True)
        code, rows, ceilings = measure(server, hello, phase.paths, modes, cfg, deadline)
        result["matter_code"] = code
        result["paths"] = rows
        result["ceilings"] = ceilings
        procs = server.processes()
        memory["processes"] = procs
        memory["sum_vm_hwm_kb"] = sum(p["vm_hwm_kb"] for p in procs)
        judge_memory(memory)
    except BenchError:
        tail = server.log_tail()
        if tail:
            result["server_log_tail"] = tail
        raise
    finally:
        hello.stop()
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
    if any(ph.pgbench_modes for ph in chosen) and not PGBENCH_BIN.exists():
        print(f"bench: {PGBENCH_BIN} not found (apt-get install postgresql-client)", file=sys.stderr)
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
            "database": f"postgres://{stores.PG_HOST}:{stores.PG_PORT}/{stores.PG_DB}",
            "redis": stores.redis_url(cfg.redis_db),
            "time_bound_s": round(bound), "phases": [ph.name for ph in chosen],
            "booking_citizens": cfg.citizens, "desk_bookings": cfg.desk_tickets, "wechat_messages": cfg.wechat_count,
            "hello": "bench/hello.py (python -m sanic, same workers)", "pgbench_database": PGBENCH_DB,
            "pgbench_scale": PGBENCH_SCALE, "pgbench_clients": cfg.pgbench_clients or "wrk connections",
            "worker_rss_max_mib": WORKER_RSS_MAX_MIB,
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
        stores.reset_database(deadline)
        stores.flush_redis(cfg.redis_db)
        if any(ph.pgbench_modes for ph in chosen):
            print(f"pgbench: resetting {PGBENCH_DB} (pgbench -i -s {PGBENCH_SCALE})", flush=True)
            took = init_pgbench(deadline)
            print(f"pgbench: {PGBENCH_DB} ready after {took:.1f} s", flush=True)
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
    if measured:
        print_summary(measured)
    out = write_results(payload)
    logs = ", ".join(ph["server_log"] for ph in phases if "server_log" in ph)
    print(f"\nresults: {out.relative_to(ROOT)}  (server logs: {logs or 'none'})")
    if measured:
        missed = []
        for ph in measured:  # per phase: its paths, then its memory verdict
            missed += [f"{ph['name']}/{r['name']}" for r in ph["paths"] if r["result"] == "FAIL"]
            missed += [f"{ph['name']}/memory"] if ph["memory"].get("result") == "FAIL" else []
        print("bench: all targets met" if not missed else f"bench: targets missed: {', '.join(missed)}")
    return exit_code
