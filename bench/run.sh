#!/usr/bin/env bash
# The one entry point of the benchmark: installs wrk, GNU time and pgbench (postgresql-client) if missing, ensures the
# venv, runs bench.py (the harness is the package bench/; it reads PostgreSQL with asyncpg and flushes Redis with
# redis-py, from the venv).
# Env overrides: BENCH_DURATION (s per measurement, 8), BENCH_CONNECTIONS (64), BENCH_THREADS (2), BENCH_ROUNDS (3),
# BENCH_WARMUP (s per path, 2), BENCH_LATENCY_CONNECTIONS (8) and BENCH_LATENCY_THREADS (1) for latency phases;
# passed through as set: BENCH_BOOKING_CITIZENS, BENCH_DESK_BOOKINGS (the booking phase), BENCH_PHASES (which phases),
# BENCH_PATHS (which paths of them; each phase keeps its baseline), BENCH_REDIS_DB (the Redis db, 13),
# BENCH_PGBENCH_CLIENTS (pgbench -c; wrk's connections).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
export BENCH_DURATION=${BENCH_DURATION:-8} BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-64}
export BENCH_THREADS=${BENCH_THREADS:-2} BENCH_ROUNDS=${BENCH_ROUNDS:-3} BENCH_WARMUP=${BENCH_WARMUP:-2}
export BENCH_LATENCY_CONNECTIONS=${BENCH_LATENCY_CONNECTIONS:-8} BENCH_LATENCY_THREADS=${BENCH_LATENCY_THREADS:-1}

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[ -x /usr/bin/time ] || missing+=(time)
[ -x /usr/bin/pgbench ] || missing+=(postgresql-client)  # the database ceiling (bench/ceilings.py)
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing ${missing[*]} from Debian" >&2
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 "${sudo[@]}" apt-get update -qq
    timeout 600 "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -f "$ROOT/Makefile" ] && make -C "$ROOT" -n venv >/dev/null 2>&1; then
    timeout 900 make -C "$ROOT" venv
elif [ ! -x "$ROOT/.venv/bin/python" ]; then
    echo "bench: creating $ROOT/.venv" >&2
    (cd "$ROOT" && python3 -m venv .venv && timeout 900 .venv/bin/pip install -q -r requirements-dev.txt)
fi

# bench.py bounds its own run (over all phases) and always stops the server; this outer bound is only a backstop,
# set from bench.py's own bound so that adding paths or phases never lets the backstop fire first.
cd "$ROOT"
bound=$("$ROOT/.venv/bin/python" "$BENCH_DIR/bench.py" --time-bound 2>/dev/null) || bound=""
[[ "$bound" =~ ^[0-9]+$ ]] || bound=3600
budget=$(( bound + 120 ))
exec timeout --foreground --kill-after=30 "$budget" "$ROOT/.venv/bin/python" "$BENCH_DIR/bench.py"
