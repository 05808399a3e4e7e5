"""A phase's results: medians, ratios and verdicts per path, its printed section, and bench/results/latest.json."""

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
        "counts": sum_counts(runs),
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
            print(f"  answers over the rounds: {counts_text(row['counts'])}")
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
