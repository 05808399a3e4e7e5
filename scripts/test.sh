#!/usr/bin/env bash
# The whole test suite: ruff, the layer contracts, then pytest on SQLite + in-process store, then on PostgreSQL + Redis.
# Starts PostgreSQL and Redis when they are not running. Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PG_URL="${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
REDIS_URL="${TEST_REDIS_URL_PG:-redis://127.0.0.1:6379/15}"
status=0

step() { printf '\n==> %s\n' "$*"; }

ensure_services() {
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    step "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    step "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
  fi
  pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable" >&2; return 1; }
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis is not reachable" >&2; return 1; }
}

ensure_browser() {
  # The e2e tests drive real headless Chromium (Debian's package).
  if ! command -v chromium >/dev/null 2>&1; then
    step "installing chromium (Debian) for the e2e tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null) \
      || echo "warning: chromium could not be installed; browser tests will be skipped" >&2
  fi
}

ensure_nginx() {
  # The two-instance tests put Debian's nginx in front of the service, as in production.
  if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    step "installing nginx (Debian) for the two-instance tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null) \
      || echo "warning: nginx could not be installed; the two-instance tests will fail" >&2
  fi
}

run_pytest() {
  local label="$1"; shift
  step "pytest on ${label}"
  # Two pytest workers (the machine has two cores); each has its own database and Redis db.
  env "$@" "$BIN/python" -m pytest -q -p no:cacheprovider -n "${TEST_WORKERS:-2}" --dist loadgroup --durations=15
  local rc=$?
  if [ "$rc" -eq 5 ]; then echo "no tests collected on ${label}" >&2; rc=1; fi
  [ "$rc" -eq 0 ] || status=1
}

step "ruff"
"$BIN/ruff" check . || status=1

step "layer contracts (import-linter, .importlinter)"
"$BIN/lint-imports" --no-cache || status=1

ensure_browser
ensure_nginx
if ensure_services; then pg_up=1; else pg_up=0; fi
# The end-to-end tests (real servers, Chromium) run once: in the PostgreSQL + Redis pass when it can run.
run_pytest "SQLite + in-process store" TEST_DATABASE_URL= TEST_REDIS_URL= TEST_SKIP_E2E="$pg_up"

if [ "$pg_up" -eq 1 ]; then
  run_pytest "PostgreSQL + Redis" TEST_DATABASE_URL="$PG_URL" TEST_REDIS_URL="$REDIS_URL"
else
  status=1
fi

if [ "$status" -eq 0 ]; then step "all test runs passed"; else step "FAILED"; fi
exit "$status"
