"""Throughput (and, in latency phases, p99 latency) of the service's routes relative to its trivial baseline route,
measured with wrk on 127.0.0.1. The entry point of `bench/run.sh`; the harness is the package `bench` (runner.py)."""

import sys
from pathlib import Path

if __name__ == "__main__":
    # Run as a script, this file's directory comes first on sys.path, where `bench` would be this file itself: put
    # the project root there instead, so that `bench` is the package around it.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    from bench.runner import main

    raise SystemExit(main())
