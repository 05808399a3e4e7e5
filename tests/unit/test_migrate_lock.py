"""`python -m app migrate` run by replicas at once: one applies the migrations, the others wait and find none."""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from app.db import MIGRATION_LOCK_KEY

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = sorted(p.stem for p in (ROOT / "app" / "migrations").glob("0*.py"))
pytestmark = pytest.mark.slow


def _start_migrate(database_url: str) -> subprocess.Popen[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "APP_ENV": "development",
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "app", "migrate"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _race(database_url: str, held: Callable[[], int], release: Callable[[], None]) -> list[tuple[int, str, str]]:
    """Start two migrate runs while the test holds the lock, let both queue on it, then release it."""
    procs = [_start_migrate(database_url) for _ in range(2)]
    try:
        _wait_for(lambda: held() == 2 or any(p.poll() is not None for p in procs), "both runs to wait for the lock")
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        release()  # now both contend for it at once
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs, strict=True)]


def _assert_applied_once(results: list[tuple[int, str, str]]) -> None:
    for code, out, err in results:
        assert code == 0, (out, err)
        assert "another migration run holds the lock: waiting for it to finish" in out
        assert out.rstrip().endswith("migrations up to date")
    applied = [[line for line in out.splitlines() if line.startswith("applied migration")] for _, out, _ in results]
    assert sorted(len(a) for a in applied) == [0, len(MIGRATIONS)]  # one run applied all, the other none
    assert [line.rsplit(".", 1)[1] for line in max(applied, key=len)] == MIGRATIONS


@pytest.mark.postgres
def test_two_concurrent_migrate_runs_on_postgresql_apply_the_schema_once():
    from tests.conftest import scratch_pg_database

    with scratch_pg_database("zuiduo_migrate") as url:
        loop = asyncio.new_event_loop()
        holder = loop.run_until_complete(asyncpg.connect(url))
        database = url.rsplit("/", 1)[1].split("?")[0]
        try:
            loop.run_until_complete(holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY))
            waiting = "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database " \
                      "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = $1"  # fmt: skip
            results = _race(
                url,
                held=lambda: loop.run_until_complete(holder.fetchval(waiting, database)),
                release=lambda: loop.run_until_complete(
                    holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
                ),
            )
            _assert_applied_once(results)
            rows = loop.run_until_complete(holder.fetch("SELECT name FROM tortoise_migrations ORDER BY name"))
            assert [r["name"] for r in rows] == MIGRATIONS  # each recorded once
            keys = loop.run_until_complete(holder.fetchval("SELECT count(*) FROM signing_key WHERE active"))
            assert keys == 1  # the first signing key is made once too
        finally:
            loop.run_until_complete(holder.close())
            loop.close()


def test_two_concurrent_migrate_runs_on_sqlite_apply_the_schema_once(tmp_path):
    db_path = tmp_path / "race.sqlite3"
    handle = os.open(f"{db_path}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(handle, fcntl.LOCK_EX)
    lock_file = f"{db_path}.migrate-lock"

    def waiting() -> int:
        """Runs queued on the file lock, as /proc/locks lists them (`->` marks a blocked request)."""
        inode = os.stat(lock_file).st_ino
        return sum(1 for line in Path("/proc/locks").read_text().splitlines() if "->" in line and f":{inode} " in line)

    try:
        results = _race(f"sqlite://{db_path}", held=waiting, release=lambda: fcntl.flock(handle, fcntl.LOCK_UN))
    finally:
        os.close(handle)
    _assert_applied_once(results)
