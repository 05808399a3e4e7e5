"""Command line: run the service, apply migrations, import and export the catalogue."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from app.settings import Settings, SettingsError


def _with_db(settings: Settings, work: Callable[[], Awaitable[Any]]) -> Any:
    """Run one coroutine with the ORM open."""
    from app import db

    async def runner() -> Any:
        await db.init_db(settings)
        try:
            return await work()
        finally:
            await db.close_db()

    return asyncio.run(runner())


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """Start the HTTP service (migrations and demo data first in dev mode)."""
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from app.server import create_app

    if settings.workers > 1 and not settings.redis_url:
        print("WORKERS > 1 needs REDIS_URL: workers share caches and limits through Redis.", file=sys.stderr)
        return 2
    loader = AppLoader(factory=partial(create_app, settings))
    app = loader.load()
    app.prepare(
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        single_process=settings.workers == 1 and args.single_process,
        motd=False,
        access_log=False,
    )
    print(f"最多跑一次 service: {settings.base_url}/m  (API docs: {settings.base_url}/docs)", flush=True)
    Sanic.serve(primary=app, app_loader=loader)
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Apply pending migrations."""
    from app import db

    async def work() -> None:
        await db.migrate(settings, quiet=False)

    _with_db(settings, work)
    print("migrations up to date")
    return 0


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    """Import a catalogue file with a progress bar."""
    from tqdm import tqdm

    from app.errors import ImportInvalid
    from app.matters import service

    try:
        data = json.loads(Path(args.file).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    bar = tqdm(total=len(data.get("matters", [])) if isinstance(data, dict) else 0, unit="matter", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        report = _with_db(settings, lambda: service.import_catalogue(data, partial=args.partial, progress=progress))
    except ImportInvalid as exc:
        bar.close()
        errors = exc.details.get("errors", [])
        print(f"{exc.message} ({len(errors)} 条):", file=sys.stderr)
        for err in errors:
            print("  " + _describe(err), file=sys.stderr)
        return 1
    bar.close()
    print(
        f"created {report.created}, updated {report.updated}, unchanged {report.unchanged}, "
        f"skipped {len(report.skipped)}"
    )
    for err in report.skipped:
        print("  skipped " + _describe(err))
    return 0


def _describe(err: dict[str, Any]) -> str:
    fields = json.dumps(err.get("fields", {}), ensure_ascii=False)
    return f"#{err.get('index')} {err.get('kind', '')} {err.get('code') or ''} {fields}"


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    """Export the catalogue as JSON to a file or stdout."""
    from app.matters import service

    data = _with_db(settings, service.export_catalogue)
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if args.file in (None, "-"):
        print(text)
    else:
        Path(args.file).write_text(text + "\n", "utf-8")
        print(f"exported {len(data['matters'])} matters to {args.file}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m app`."""
    parser = argparse.ArgumentParser(prog="python -m app", description="最多跑一次 matter-QR service")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the HTTP service")
    run.add_argument("--single-process", action="store_true", help="no worker manager (debugging)")
    run.set_defaults(func=cmd_run)
    sub.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_migrate)
    catalogue = sub.add_parser("catalogue", help="import or export the matter catalogue")
    csub = catalogue.add_subparsers(dest="action", required=True)
    imp = csub.add_parser("import", help="idempotent upsert from a JSON file")
    imp.add_argument("file")
    imp.add_argument("--partial", action="store_true", help="skip bad entries, import the rest")
    imp.set_defaults(func=cmd_import)
    exp = csub.add_parser("export", help="write the catalogue as JSON")
    exp.add_argument("file", nargs="?")
    exp.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return args.func(settings, args)
