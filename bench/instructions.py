"""Instructions per request, which do not move with the machine's load: the app driven in-process through its ASGI
interface (no sockets) under valgrind's callgrind (bench/README.md, "Instructions per request").

    .venv/bin/python bench/instructions.py                      # every path, 500 requests each
    .venv/bin/python bench/instructions.py qr_json me --n 300   # some of them
    .venv/bin/python bench/instructions.py qr_json --native     # no valgrind: statuses and wall time only
    .venv/bin/python bench/instructions.py qr_json --cprofile   # no valgrind: cProfile of the requests

The script prepares a SQLite file natively (migrations, the demo catalogue; kept in --work for the next run), then
runs itself under `valgrind --tool=callgrind --dump-before=os_getppid`: the child starts the app through the ASGI
lifespan, stops its scheduler (timers would add work per second of valgrind's slow clock, not per request), warms
each path, then calls `os.getppid()` around the N requests of each path and the flushes they owe (the scan and
metrics flushes the stopped jobs would have done). Each call closes a callgrind dump, so the dump between two
calls holds exactly those requests: instructions / N is the cost of one request, and
`callgrind_annotate <work>/callgrind.out.<pid>.<k>` shows where it goes. The hello-world (bench/hello.py) runs in
a process of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1:8000"
PHONE = "13800138000"  # the bench's citizen (me_cached)
MOBILE_BROWSER = [  # bench/phases.py MOBILE_BROWSER: a phone's browser opening a scanned code
    ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
    ("accept-language", "zh-CN,zh;q=0.9"),
    (
        "user-agent",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36",
    ),
]
# name -> (path template, extra headers); {code}, {slug} and {token} are filled in after start-up.
PATHS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "hello": ("/", []),
    "baseline": ("/bench/baseline", []),
    "guide_json": ("/api/v1/matters/{code}", []),
    "h5_guide": ("/m/{code}", []),
    "me": ("/api/v1/me", [("authorization", "Bearer {token}")]),
    "qr_json": ("/q/{slug}", [("accept", "application/json")]),
    "qr_png": ("/q/{slug}.png", []),
    "qr_h5": ("/q/{slug}", MOBILE_BROWSER),
}
MARKER = "os_getppid"  # the C function of os.getppid(): called by nothing else here, it closes a callgrind dump


def _settings(db_file: Path) -> Any:
    from app.settings import Settings

    return Settings(
        env="development",
        database_url=f"sqlite://{db_file}",
        redis_url=None,  # the in-process fake store
        host="127.0.0.1",
        port=8000,
        base_url=f"http://{HOST}",
        access_log=False,  # as bench/run.sh starts the service
        log_level="WARNING",
        upload_dir=db_file.parent / "uploads",
    )


def prepare(db_file: Path) -> None:
    """Migrate the SQLite file and load the demo catalogue (natively: under valgrind it would take minutes)."""
    from app import db
    from app.server import prepare as prepare_service

    settings = _settings(db_file)

    async def work() -> None:
        await db.init_db(settings)
        try:
            await prepare_service(settings)
        finally:
            await db.close_db()

    asyncio.run(work())


class Driver:
    """Sends requests to an ASGI app in-process and keeps the last answer."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.status = 0
        self.body = b""

    async def _receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.body = b""
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    async def get(self, path: str, headers: list[tuple[bytes, bytes]]) -> int:
        """One GET of `path` (with wrk's Host header and these headers); its status."""
        raw, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": raw,
            "raw_path": raw.encode(),
            "query_string": query.encode(),
            "headers": [(b"host", HOST.encode()), *headers],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
        }
        await self.app(scope, self._receive, self._send)
        return self.status

    async def lifespan(self, event: str) -> None:
        """Run the app's ASGI lifespan `startup` (returns once complete) or `shutdown`."""
        sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await sent.put({"type": f"lifespan.{event}"})
        if event == "startup":
            self._lifespan = asyncio.ensure_future(self.app({"type": "lifespan"}, sent.get, received.put))
            self._lifespan_queue = sent
        else:
            await self._lifespan_queue.put({"type": "lifespan.shutdown"})
            received = None  # type: ignore[assignment]
            await self._lifespan
            return
        answer = await received.get()
        if answer["type"] != "lifespan.startup.complete":
            raise SystemExit(f"the app did not start: {answer}")


async def _service_paths(driver: Driver, names: list[str]) -> dict[str, tuple[str, list[tuple[bytes, bytes]]]]:
    """The named paths with the matter code, the slug of its default QR code and a citizen's token filled in."""
    import orjson

    from auth import devtokens

    await driver.get("/api/v1/matters?page_size=1", [])
    if driver.status != 200 or not orjson.loads(driver.body)["items"]:
        raise SystemExit(f"no catalogue: {driver.status} {driver.body[:200]!r}")
    code = orjson.loads(driver.body)["items"][0]["code"]
    await driver.get(f"/api/v1/matters/{code}", [])
    slug = orjson.loads(driver.body)["links"]["qr"]["slug"]
    token = ""
    if "me" in names:
        token = await devtokens.dev_token_for_phone(driver.app.ctx.auth, phone=PHONE, loa=2)
    fill = {"code": code, "slug": slug, "token": token}
    out = {}
    for name in names:
        path, headers = PATHS[name]
        out[name] = (
            path.format(**fill),
            [(k.encode(), v.format(**fill).encode()) for k, v in headers],
        )
    return out


async def drive(names: list[str], n: int, warmup: int, db_file: Path, mode: str) -> None:
    """Start the app (the service, or the hello-world for `hello`), warm each path, then time N requests of each."""
    flushes: list[Callable[[], Awaitable[Any]]] = []
    if names == ["hello"]:
        sys.path.insert(0, str(ROOT))
        from bench.hello import app

        driver = Driver(app)
        await driver.lifespan("startup")
        paths = {"hello": ("/", [])}
    else:
        from app.observe import flush_request_metrics
        from app.server import create_app

        app = create_app(_settings(db_file))
        driver = Driver(app)
        await driver.lifespan("startup")
        # Timers would add work per second (and valgrind's seconds are long): stopped; what the periodic jobs would
        # have done for these requests (the scans' and the metrics' flushes) is done once after each path's N.
        await app.ctx.scheduler.stop()

        async def flush_metrics() -> None:
            flush_request_metrics()

        flushes = [app.ctx.services.scans.flush, flush_metrics]
        paths = await _service_paths(driver, names)
    for name, (path, headers) in paths.items():
        statuses: dict[int, int] = {}
        for _ in range(warmup):
            await driver.get(path, headers)
        for flush in flushes:
            await flush()
        if mode == "cprofile":
            import cProfile
            import pstats

            profile = cProfile.Profile()
            profile.enable()
        started = time.perf_counter()
        os.getppid()  # callgrind: the dump before this request is closed here
        for _ in range(n):
            status = await driver.get(path, headers)
            statuses[status] = statuses.get(status, 0) + 1
        for flush in flushes:
            await flush()
        os.getppid()  # ... and this one holds the N requests
        elapsed = time.perf_counter() - started
        if mode == "cprofile":
            profile.disable()
            print(f"== {name}: {path}")
            # e.g. PROFILE_SORT=cumulative PROFILE_FILTER='/(app|qr|auth)/' for the app's own functions only
            stats = pstats.Stats(profile).sort_stats(os.environ.get("PROFILE_SORT", "tottime"))
            stats.print_stats(os.environ.get("PROFILE_FILTER", ""), 25)
        print(f"{name} {path} statuses={statuses} {elapsed / n * 1e6:.0f} us/request", flush=True)
        if set(statuses) - {200}:
            print(f"  last answer: {driver.body[:300]!r}", flush=True)
    await driver.lifespan("shutdown")


def _groups(names: list[str]) -> list[list[str]]:
    """The hello-world alone, then the service's paths together: one process each."""
    service = [name for name in names if name != "hello"]
    return [["hello"]] * ("hello" in names) + [service] * bool(service)


def _child_args(n: int, warmup: int, db_file: Path) -> list[str]:
    return ["--child", "--n", str(n), "--warmup", str(warmup), "--db", str(db_file)]


def _dump_totals(work: Path, pid: int) -> list[int]:
    """The instructions of each of a callgrind run's dumps, by part (the last one, at exit, has no suffix)."""
    parts = {}
    for file in glob.glob(str(work / f"callgrind.out.{pid}")) + glob.glob(str(work / f"callgrind.out.{pid}.*")):
        text = Path(file).read_text(errors="replace")
        part = re.search(r"^part:\s+(\d+)", text, re.MULTILINE)
        total = re.search(r"^totals:\s+(\d+)", text, re.MULTILINE)
        parts[int(part.group(1)) if part else 1] = int(total.group(1)) if total else 0
    return [parts[k] for k in sorted(parts)]


def measure(names: list[str], n: int, warmup: int, db_file: Path, work: Path) -> dict[str, int]:
    """Run the child under callgrind (the hello-world in a process of its own); instructions per request by path."""
    results: dict[str, int] = {}
    for group in _groups(names):
        command = [
            "valgrind", "--tool=callgrind", f"--dump-before={MARKER}", "--compress-strings=no", "--compress-pos=no",
            f"--callgrind-out-file={work}/callgrind.out.%p", sys.executable, __file__, *group,
            *_child_args(n, warmup, db_file),
        ]  # fmt: skip
        print("$", " ".join(command), flush=True)
        proc = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        _, err = proc.communicate()
        if proc.returncode:
            sys.stderr.write(err)
            raise SystemExit(f"the callgrind run failed ({proc.returncode})")
        # Dumps: 1 start-up and warm-up of the first path, then per path its N requests, then the next warm-up.
        totals = _dump_totals(work, proc.pid)
        if len(totals) != 2 * len(group) + 1:  # something else called os.getppid(): the windows would be wrong
            raise SystemExit(f"expected {2 * len(group) + 1} callgrind dumps, found {len(totals)}")
        for i, name in enumerate(group):
            results[name] = totals[1 + 2 * i] // n
            print(f"{name}: {results[name]:,} instructions/request "
                  f"(profile: callgrind_annotate {work}/callgrind.out.{proc.pid}.{2 + 2 * i})", flush=True)  # fmt: skip
    return results


def main(argv: list[str] | None = None) -> int:
    """Measure instructions per request of the named paths (all by default)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", metavar="PATH", help="any of: " + ", ".join(PATHS) + " (default: all)")
    parser.add_argument("--n", type=int, default=500, help="measured requests per path (default 500)")
    parser.add_argument("--warmup", type=int, default=50, help="requests per path before measuring (default 50)")
    parser.add_argument("--work", type=Path, help="for the SQLite file and the dumps (default: temp)")
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--native", action="store_true", help="no valgrind: statuses and microseconds per request")
    mode.add_argument("--cprofile", action="store_true", help="no valgrind: cProfile of the measured requests")
    args = parser.parse_args(argv)
    names = args.paths or list(PATHS)
    if unknown := set(names) - set(PATHS):
        parser.error(f"unknown paths: {', '.join(sorted(unknown))}")
    sys.path.insert(0, str(ROOT))
    if args.child:
        asyncio.run(drive(names, args.n, args.warmup, args.db, "cprofile" if args.cprofile else "plain"))
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="instructions-"))
    work.mkdir(parents=True, exist_ok=True)
    db_file = work / "bench.sqlite3"
    if any(name != "hello" for name in names):
        prepare(db_file)
    if args.native or args.cprofile:  # still a process per app: Sanic's TouchUp rewrites its classes once
        for group in _groups(names):
            extra = ["--cprofile"] if args.cprofile else []
            command = [sys.executable, __file__, *group, *_child_args(args.n, args.warmup, db_file), *extra]
            subprocess.run(command, cwd=ROOT, check=True)
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    results = measure(names, args.n, args.warmup, db_file, work)
    hello = results.get("hello")
    print(f"\n{'path':<12} {'instructions/request':>21} {'x hello':>8}")
    for name, cost in results.items():
        ratio = f"{cost / hello:.2f}" if hello else "-"
        print(f"{name:<12} {cost:>21,} {ratio:>8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
