"""Two service instances behind nginx on this machine, as the two-instance tests start them (issue 22).

    .venv/bin/python scripts/cluster.py          # start and keep running: try it at the printed address
    .venv/bin/python scripts/cluster.py check    # run tests/e2e/test_cluster.py and print its figures

Both share PostgreSQL (a scratch database next to TEST_DATABASE_URL, default the local `test` database's server),
Redis (db 6 of TEST_REDIS_URL's server, default 127.0.0.1:6379) and a local S3 server (moto); SMS and WeChat are
the test fakes. Needs Debian's nginx (`make test` installs it). Ctrl-C stops everything and drops the database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
sys.path.insert(0, str(ROOT))


def up() -> int:
    """Start the cluster and wait for Ctrl-C."""
    from tests.e2e.cluster import running_cluster
    from tests.e2e.test_cluster import REDIS_DB

    # A `kill` (SIGTERM) stops everything as Ctrl-C does, so no nginx or instance is left behind.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    redis_url = os.environ["TEST_REDIS_URL"].rsplit("/", 1)[0] + f"/{REDIS_DB}"
    try:
        with running_cluster(Path(tempfile.mkdtemp(prefix="zuiduo-cluster-")), redis_url) as cluster:
            assert cluster.nginx is not None
            print(f"balancer:  {cluster.url}/m   (nginx access log: {cluster.nginx.access_log})")
            for i, server in enumerate(cluster.instances):
                print(f"instance {i}: {server.url}   (log: {server.log})")
            print(f"database {cluster.database_url}, Redis {redis_url}, S3 {cluster.s3.url} bucket {cluster.bucket}")
            print("Ctrl-C stops everything.")
            while all(s.proc.poll() is None for s in cluster.instances):
                time.sleep(1)
            print("an instance exited: stopping", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        return 0


def check() -> int:
    """The two-instance tests, with their figures printed."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/e2e/test_cluster.py"]
    return subprocess.call(cmd, cwd=ROOT)  # noqa: S603 - a fixed command


if __name__ == "__main__":
    sys.exit(check() if sys.argv[1:] == ["check"] else up())
