"""Unit tests of the harness's own logic (no server, no wrk, no pgbench): the phase rules, pgbench's output, the
verdicts against the ceilings, the memory verdict and the time bound. Run: .venv/bin/pytest -q bench -p no:cacheprovider
"""

from __future__ import annotations

from dataclasses import replace

from bench.ceilings import ceiling_summary, parse_pgbench
from bench.harness import BASELINE, BenchPath, Config, PgbenchResult, Phase, Resolved, WrkResult
from bench.phases import PHASES, check_phases
from bench.report import summarize
from bench.runner import judge_memory, time_bound

PGBENCH_OUTPUT = """pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: <builtin: simple update>
scaling factor: 10
query mode: prepared
number of clients: 64
number of threads: 2
maximum number of tries: 1
duration: 3 s
number of transactions actually processed: 14321
number of failed transactions: 0 (0.000%)
latency average = 13.409 ms
initial connection time = 25.120 ms
tps = 4773.700123 (without initial connection time)
"""


def _wrk(rps: float, p99: float) -> WrkResult:
    """A wrk run with these numbers and no errors."""
    return WrkResult(rps=rps, p99_ms=p99, requests=int(rps), non_2xx_3xx=0, socket_errors={"connect": 0})


def _ceilings(hello_rps: float = 10_000.0, hello_p99: float = 10.0, n_tps: float = 4000.0) -> dict:
    """The ceilings of a phase with one round of each."""
    pg = PgbenchResult(tps=n_tps, latency_ms=10.0, p99_ms=30.0, transactions=100, failed=0)
    return ceiling_summary([_wrk(hello_rps, hello_p99)], {"N": [pg]})


def test_bench_phases_are_valid() -> None:
    """The declared phases pass their own rules, and pgbench runs only where a path names a mode."""
    assert check_phases(PHASES) is None
    modes = {ph.name: ph.pgbench_modes for ph in PHASES}
    assert modes["main"] == [] and modes["booking"] == ["N"] and modes["cases"] == ["N", "S"]


def test_bench_phase_rules_refuse_bad_targets() -> None:
    """vs_pgbench needs a ceiling, report-only paths carry no target, the baseline has no ceiling."""
    bad_pg = BenchPath("x", "GET", "/", None, vs_pgbench=0.5)
    bad_report = BenchPath("x", "GET", "/", None, report_only=True, vs_hello=0.5)
    unjudged = BenchPath("x", "GET", "/", None)
    for path in (bad_pg, bad_report, unjudged):
        assert check_phases([Phase("p", "p", [BASELINE, path])]) is not None
    assert check_phases([Phase("p", "p", [replace(BASELINE, ceiling="N")])]) is not None
    assert check_phases([Phase("p", "p", [BASELINE, BenchPath("hello", "GET", "/", None, vs_hello=1)])]) is not None


def test_bench_parse_pgbench() -> None:
    """Tps without connection time, average latency, counts and the log's p99."""
    result = parse_pgbench(PGBENCH_OUTPUT, [*range(1, 101), 5000])
    assert result.tps == 4773.700123 and result.latency_ms == 13.409
    assert result.transactions == 14321 and result.failed == 0
    assert result.p99_ms == 0.1  # the 100th of 101 values (µs), in ms


def test_bench_summarize_against_the_ceilings() -> None:
    """Ratios to hello, pgbench and the baseline; the tighter p99 limit applies; every miss is named."""
    spec = BenchPath("w", "POST", "/w", None, ceiling="N", vs_pgbench=0.5, p99_max_ms=100.0, p99_vs_hello=2.0)
    row = summarize(Resolved(spec, "/w", {}), [_wrk(2500.0, 15.0)], [_wrk(9000.0, 9.0)], _ceilings())
    assert row["vs_hello"] == 0.25 and row["vs_pgbench"] == 0.625 and row["p99_limit_ms"] == 20.0
    assert row["result"] == "PASS"
    row = summarize(Resolved(spec, "/w", {}), [_wrk(1000.0, 25.0)], [_wrk(9000.0, 9.0)], _ceilings())
    assert row["result"] == "FAIL" and len(row["misses"]) == 2
    plain = summarize(Resolved(BASELINE, "/b", {}), [_wrk(9500.0, 9.0)], [_wrk(9500.0, 9.0)], _ceilings())
    assert plain["vs_pgbench"] is None and plain["result"] == "PASS"


def test_bench_memory_judges_workers_only() -> None:
    """The main process may be larger; a worker over 120 MiB fails the phase."""
    memory = {"processes": [{"vm_hwm_kb": 300_000, "worker": False}, {"vm_hwm_kb": 100_000, "worker": True}]}
    judge_memory(memory)
    assert memory["result"] == "PASS"
    memory = {"processes": [{"vm_hwm_kb": 130 * 1024, "worker": True}]}
    judge_memory(memory)
    assert memory["result"] == "FAIL"


def test_bench_time_bound_counts_the_ceilings() -> None:
    """The hello-world and each pgbench mode add runs (and pgbench's reset) to the bound."""
    cfg = Config(duration=8, connections=64, threads=2, rounds=3, warmup=2)
    plain = Phase("a", "a", [BASELINE, BenchPath("r", "GET", "/", None, vs_hello=0.8)])
    with_pg = Phase("a", "a", [BASELINE, BenchPath("r", "GET", "/", None, ceiling="N", vs_pgbench=0.5)])
    assert time_bound([with_pg], cfg) > time_bound([plain], cfg) + 26
