"""A phase's results: medians, ratios to the ceilings and the in-app baseline and verdicts per path, its printed
section, the summary of every phase, and bench/results/latest.json."""

from __future__ import annotations

import json
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .harness import RESULTS_DIR, ROOT, BenchPath, Resolved, WrkResult, counts_text, sum_counts


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


def _judge(spec: BenchPath, row: dict[str, Any]) -> list[str]:
    """The targets and limits of a path that its medians miss (empty when every one is met)."""
    misses = []
    for goal, key, what in (
        (spec.target, "ratio", "baseline"),
        (spec.vs_hello, "vs_hello", "hello-world"),
        (spec.vs_pgbench, "vs_pgbench", f"pgbench -{spec.ceiling}"),
    ):
        if goal is not None and (row[key] is None or row[key] < goal):
            shown = "n/a" if row[key] is None else f"{row[key]:.2f}x"
            misses.append(f"{shown} {what} < {goal:g}x")
    limit = row["p99_limit_ms"]
    if limit is not None and row["median_p99_ms"] > limit:
        misses.append(f"p99 {row['median_p99_ms']:.2f} ms > {limit:.2f} ms")
    return misses


def summarize(
    target: Resolved,
    runs: list[WrkResult],
    baseline: list[WrkResult],
    ceilings: dict[str, Any],
    checked: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Medians over rounds, the ratios to the in-app baseline, the hello-world and the path's pgbench mode, the p99
    limits, the path's own check (if any) and the verdict of one path."""
    spec = target.spec
    rps = statistics.median(r.rps for r in runs)
    p99 = statistics.median(r.p99_ms for r in runs)
    baseline_rps = statistics.median(r.rps for r in baseline)
    baseline_p99 = statistics.median(r.p99_ms for r in baseline)
    hello_rps, hello_p99 = ceilings["hello"]["median_rps"], ceilings["hello"]["median_p99_ms"]
    pg = ceilings["pgbench"].get(spec.ceiling) if spec.ceiling else None
    non2xx = sum(r.non_2xx_3xx for r in runs)
    problems = _failed_answers(spec, runs)
    sockets = {k: sum(r.socket_errors[k] for r in runs) for k in runs[0].socket_errors}
    limits = []  # the p99 limit is the tighter of the absolute one and the one relative to the hello-world
    if spec.p99_max_ms is not None:
        limits.append(spec.p99_max_ms)
    if spec.p99_vs_hello is not None:
        limits.append(spec.p99_vs_hello * hello_p99)
    if checked is not None:
        problems += checked.get("problems", [])
    row: dict[str, Any] = {
        "name": spec.name,
        "method": spec.method,
        "path": target.path,
        "target_ratio": spec.target,
        "target_vs_hello": spec.vs_hello,
        "target_vs_pgbench": spec.vs_pgbench,
        "ceiling": spec.ceiling,
        "p99_max_ms": spec.p99_max_ms,
        "p99_vs_hello": spec.p99_vs_hello,
        "p99_limit_ms": round(min(limits), 3) if limits else None,
        "report_only": spec.report_only,
        "median_rps": round(rps, 2),
        "median_p99_ms": round(p99, 3),
        "baseline_p99_ms": round(baseline_p99, 3),
        "hello_p99_ms": hello_p99,
        "ratio": round(rps / baseline_rps if baseline_rps else 0.0, 4),
        "vs_hello": round(rps / hello_rps if hello_rps else 0.0, 4),
        "vs_pgbench": round(rps / pg["median_tps"], 4) if pg and pg["median_tps"] else None,
        "non_2xx_3xx": non2xx,
        "socket_errors": sockets,
        "problems": problems,
        "counts": sum_counts(runs),
        "check": checked,
        "runs": [
            {"round": i + 1, "rps": r.rps, "p99_ms": r.p99_ms, "requests": r.requests,
             "non_2xx_3xx": r.non_2xx_3xx, "socket_errors": r.socket_errors, "counts": r.counts}
            for i, r in enumerate(runs)
        ],
    }  # fmt: skip
    row["misses"] = _judge(spec, row)
    met = not problems and not row["misses"]
    row["result"] = ("PASS" if spec.judged else "-") if met else "FAIL"
    return row


def _target_text(row: dict[str, Any]) -> str:
    """The target column, e.g. `0.80xH p99<=1.5xH`, `0.25x-N p99<=100ms` (legend under the table); "report" for
    report-only paths, "-" for none."""
    parts = []
    if row.get("target_vs_hello") is not None:
        parts.append(f"{row['target_vs_hello']:.2f}xH")
    if row.get("target_vs_pgbench") is not None:
        parts.append(f"{row['target_vs_pgbench']:.2f}x-{row['ceiling']}")
    if row["target_ratio"] is not None:
        parts.append(f"{row['target_ratio']:.2f}xB")
    if row.get("p99_vs_hello") is not None:
        parts.append(f"p99<={row['p99_vs_hello']:g}xH")
    if row.get("p99_max_ms") is not None:
        parts.append(f"p99<={row['p99_max_ms']:g}ms")
    if parts:
        return " ".join(parts)
    return "report" if row.get("report_only") else "-"


def _x(value: float | None, suffix: str = "") -> str:
    """A ratio cell: `0.85x` (with the pgbench mode, e.g. `0.42x-N`), or `-` where the path has no such ceiling."""
    return "-" if value is None else f"{value:.2f}x{suffix}"


def _verdict_text(row: dict[str, Any]) -> str:
    """A path's summary line: every ratio (with its target), the p99 (with its limit and the hello-world's and the
    baseline's p99 of the same phase), then PASS, FAIL or `(report only)`."""
    parts = [
        f"{row['vs_hello']:.2f}x hello-world"
        + (f" (target {row['target_vs_hello']:g}x)" if row.get("target_vs_hello") is not None else "")
    ]
    if row.get("vs_pgbench") is not None:
        goal = row.get("target_vs_pgbench")
        parts.append(f"{row['vs_pgbench']:.2f}x pgbench -{row['ceiling']}" + (f" (target {goal:g}x)" if goal else ""))
    parts.append(
        f"{row['ratio']:.2f}x baseline"
        + (f" (target {row['target_ratio']:g}x)" if row["target_ratio"] is not None else "")
    )
    p99 = f"p99 {row['median_p99_ms']:.2f} ms"
    if row.get("p99_limit_ms") is not None:
        p99 += f" (limit {row['p99_limit_ms']:.2f} ms"
        if row.get("p99_vs_hello") is not None:
            p99 += f" = min of {row['p99_vs_hello']:g}x hello p99" + (
                f", {row['p99_max_ms']:g} ms" if row.get("p99_max_ms") is not None else ""
            )
        p99 += ")"
    p99 += f" [hello p99 {row['hello_p99_ms']:.2f} ms, baseline p99 {row['baseline_p99_ms']:.2f} ms]"
    parts.append(p99)
    tail = " (report only)" if row.get("report_only") else ""
    verdict = "" if row["result"] == "-" else f" {row['result']}"
    return ", ".join(parts) + tail + verdict


def _load_text(phase: dict[str, Any]) -> str:
    """The wrk load a phase ran with, e.g. "wrk -t2 -c64"."""
    load = phase.get("load") or {}
    return f"wrk -t{load['threads']} -c{load['connections']}" if load else ""


def ceilings_text(ceilings: dict[str, Any]) -> str:
    """The ceilings measured in a phase, in one line."""
    hello = ceilings.get("hello") or {}
    parts = [f"hello-world {hello.get('median_rps', 0):.1f} req/s, p99 {hello.get('median_p99_ms', 0):.2f} ms"]
    for mode, pg in (ceilings.get("pgbench") or {}).items():
        failed = f", {pg['failed']} failed" if pg.get("failed") else ""
        parts.append(
            f"pgbench -{mode} -c{pg.get('clients', '?')} {pg['median_tps']:.1f} tps, "
            f"latency avg {pg['median_latency_ms']:.2f} ms, p99 {pg['median_p99_ms']:.2f} ms{failed}"
        )
    return "ceilings (medians): " + "; ".join(parts)


_HEADER = f"{'req/s':>10}{'p99 ms':>9}{'vs hello':>10}{'vs pgbench':>12}{'vs base':>9}  {'target':<24}result"
_LEGEND = "target: H = hello-world, -N/-S = pgbench -N/-S, B = in-app baseline (req/s ratios; p99 limits)"


def _cells(row: dict[str, Any]) -> str:
    """The numeric cells of a row, aligned under _HEADER."""
    return (
        f"{row['median_rps']:>10.1f}{row['median_p99_ms']:>9.2f}{_x(row['vs_hello']):>10}"
        f"{_x(row.get('vs_pgbench'), '-' + str(row.get('ceiling'))):>12}{_x(row['ratio']):>9}  "
        f"{_target_text(row):<24}{row['result']}"
    )


def _memory_text(memory: dict[str, Any]) -> str:
    """The memory verdict of a phase: the largest worker's peak RSS against the limit."""
    if "workers_max_vm_hwm_kb" not in memory:
        why = memory.get("problem", "no process list")
        return f"workers' peak RSS: not measured ({why}) {memory.get('result', '')}"
    kb, limit = memory["workers_max_vm_hwm_kb"], memory["worker_limit_kb"]
    return f"workers' peak RSS (VmHWM): max {kb / 1024:.1f} MiB (limit {limit / 1024:g} MiB) {memory['result']}"


def print_report(phase: dict[str, Any]) -> None:
    """One phase's section: the ceilings, the results table, one summary line per path and the memory figures."""
    rows, memory = phase["paths"], phase["memory"]
    env = " ".join(f"{k}={v}" for k, v in phase["env"].items())
    load = _load_text(phase)
    print()
    print(f"== {phase['title']}" + (f" ({env})" if env else "") + (f" [{load}]" if load else "") + " ==")
    if phase.get("ceilings"):
        print(ceilings_text(phase["ceilings"]))
    print(f"{'path':<16}{_HEADER}")
    for row in rows:
        print(f"{row['name']:<16}{_cells(row)}")
    print(_LEGEND)
    print()
    for row in rows:
        notes = f" ({'; '.join(row['problems'])})" if row["problems"] else ""
        if row.get("misses"):
            notes += f" [missed: {'; '.join(row['misses'])}]"
        sock = {k: v for k, v in row["socket_errors"].items() if v}
        if sock:
            notes += f" [socket errors: {', '.join(f'{k} {v}' for k, v in sock.items())}]"
        print(f"{row['name']}: {row['median_rps']:.1f} req/s, {_verdict_text(row)}{notes}")
        if row.get("counts"):
            print(f"  answers over the rounds: {counts_text(row['counts'])}")
        if row.get("check"):
            print(f"  check (all runs, warm-up included): {row['check'].get('summary', '')}")
    print()
    if "result" in memory:
        print(_memory_text(memory))
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
            role = "worker" if p.get("worker") else "main/helper"
            print(f"  pid {p['pid']:>7}  {p['vm_hwm_kb']:>8} kB  {role:<11}  {p['cmd']}")


def print_summary(phases: Sequence[dict[str, Any]]) -> None:
    """Every judged path of every phase (and each phase's memory verdict) in one table: the issue's closing note."""
    print()
    print("== summary: every judged path (medians of interleaved rounds) ==")
    print(f"{'phase':<16}{'path':<16}{_HEADER}")
    for ph in phases:
        for row in ph["paths"]:
            if row["result"] != "-":
                print(f"{ph['name']:<16}{row['name']:<16}{_cells(row)}")
        memory = ph["memory"]
        if "result" in memory:
            peak = memory.get("workers_max_vm_hwm_kb")
            shown = f"max worker RSS {peak / 1024:.1f} MiB" if peak is not None else "max worker RSS n/a"
            limit = f"<={memory['worker_limit_kb'] / 1024:g}MiB"
            print(f"{ph['name']:<16}{'memory':<16}{shown:>50}  {limit:<24}{memory['result']}")
    print(_LEGEND)


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
