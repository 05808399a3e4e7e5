"""Command line: run the service, apply migrations, import and export the catalogue."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.settings import Settings, SettingsError

if TYPE_CHECKING:
    from app.bootstrap import Services
    from auth.deps import AuthDeps


def _services(settings: Settings) -> Services:
    """The command's services, built once by the same bootstrap the workers use.

    Writes from the CLI invalidate the running workers' caches through the shared store (Redis).
    """
    from app.bootstrap import build_services

    global _built
    if _built is None or _built.settings is not settings:
        _built = build_services(settings)
    return _built


_built: Services | None = None


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

    from app import devserver
    from app.server import create_app
    from app.workers import set_ack_threshold

    if settings.workers > 1 and not settings.redis_url:
        print("WORKERS > 1 needs REDIS_URL: workers share caches and limits through Redis.", file=sys.stderr)
        return 2
    set_ack_threshold(settings.worker_ack_seconds)
    loader = AppLoader(factory=partial(create_app, settings))
    app = loader.load()
    app.prepare(
        host=settings.host,
        port=settings.port,
        backlog=settings.listen_backlog,
        workers=settings.workers,
        single_process=settings.workers == 1 and args.single_process,
        motd=False,
        access_log=False,
    )
    print(f"最多跑一次 service: {settings.base_url}/m  (API docs: {settings.base_url}/docs)", flush=True)

    def announce(app: Sanic) -> None:
        """Development: once its port is bound, record the server's issuer for `dev token` (removed at the end)."""
        devserver.announce(settings)

    def withdraw(app: Sanic) -> None:
        devserver.withdraw(settings)

    app.main_process_ready(announce)  # Sanic.serve always runs the worker manager (and so this listener)
    app.main_process_stop(withdraw)  # before Sanic waits for the workers (a SIGKILL may follow)
    try:
        Sanic.serve(primary=app, app_loader=loader)
    finally:
        devserver.withdraw(settings)
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Apply pending migrations."""
    from app import db

    async def work() -> None:
        async with db.migration_lock(settings, quiet=False):  # replicas starting together migrate one at a time
            await db.migrate(settings, quiet=False)
            await _services(settings).tokens.ensure_key()

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

    deps = _services(settings).catalogue
    try:
        report = _with_db(
            settings, lambda: service.import_catalogue(deps, data=data, partial=args.partial, progress=progress)
        )
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


def _auth_deps(settings: Settings) -> AuthDeps:
    """Identity services outside the HTTP app (CLI): the same wiring the workers use."""
    return _services(settings).auth


def cmd_staff_create(settings: Settings, args: argparse.Namespace) -> int:
    """Create a staff account; the password comes from --password-stdin or is generated and printed once."""
    import secrets as _secrets

    from app.errors import DomainError
    from auth.staff import create_staff

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        generated = False
    else:
        password = _secrets.token_urlsafe(12)
        generated = True
    try:
        staff = _with_db(
            settings,
            lambda: create_staff(
                username=args.username,
                password=password,
                role=args.role,
                hall=args.hall,
                departments=args.department or [],
                display_name=args.name or "",
            ),
        )
    except DomainError as exc:
        print(f"{exc.code}: {exc.message} {json.dumps(exc.details, ensure_ascii=False)}", file=sys.stderr)
        return 1
    print(f"created staff {staff.username} ({staff.role.value})")
    if generated:
        print(f"password: {password}")
    return 0


def cmd_staff_disable(settings: Settings, args: argparse.Namespace) -> int:
    """Disable or enable a staff account (disabling revokes its sessions at once)."""
    from app.errors import DomainError
    from auth.staff import set_staff_disabled

    deps = _auth_deps(settings)
    try:
        _with_db(settings, lambda: set_staff_disabled(deps, username=args.username, disabled=args.disable))
    except DomainError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return 1
    print(f"{args.username}: {'disabled' if args.disable else 'enabled'}")
    return 0


def cmd_citizen_reset_real_name(settings: Settings, args: argparse.Namespace) -> int:
    """Support: clear the real name of the account an ID number (read from stdin) is verified on."""
    from app.errors import DomainError
    from auth import accounts

    deps = _auth_deps(settings)
    number = sys.stdin.readline().strip()  # never in argv, so never in shell history or the process list

    async def work() -> str:
        citizen_id = await accounts.citizen_for_id_number(deps, id_number=number)
        await accounts.reset_real_name(deps, citizen_id=citizen_id, reason=args.reason)
        return str(citizen_id)

    try:
        citizen_id = _with_db(settings, work)
    except DomainError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return 1
    print(f"real name cleared on citizen {citizen_id}; its sessions are revoked")
    return 0


def cmd_dev_token(settings: Settings, args: argparse.Namespace) -> int:
    """Development only: print access tokens for local testing of clients and load tests."""
    from app import devserver
    from app.errors import DomainError
    from auth import devtokens

    if settings.is_production:
        print("dev token is not available in production mode", file=sys.stderr)
        return 2
    server = devserver.running(settings)
    if server is not None and server["jwt_issuer"] != settings.jwt_issuer:
        # The server on this database was started with another HOST/PORT/BASE_URL: sign for the issuer it accepts.
        settings = settings.replace(jwt_issuer=server["jwt_issuer"])
        print(f"tokens for the development server at {server['base_url']}", file=sys.stderr)
    deps = _auth_deps(settings)

    async def work() -> list[str]:
        await deps.tokens.ensure_key()
        if args.staff:
            return [await devtokens.dev_token_for_staff(deps, username=args.staff)]
        if args.citizen:
            return [await devtokens.dev_token_for_phone(deps, phone=args.citizen, loa=args.loa)]
        return await devtokens.dev_tokens_for_new_citizens(deps, count=args.citizens, loa=args.loa)

    if not (args.staff or args.citizen or args.citizens):
        print("give --citizen PHONE, --citizens N or --staff USERNAME", file=sys.stderr)
        return 2
    try:
        tokens = _with_db(settings, work)
    except DomainError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return 1
    print("\n".join(tokens))
    return 0


def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    """List, rotate or retire token signing keys."""
    from auth.models import SigningKey

    tokens = _services(settings).tokens

    async def work() -> str:
        if args.action == "rotate":
            kid = await tokens.create_key(activate=True)
            return f"new active key {kid}; older keys keep verifying until retired"
        if args.action == "retire":
            ok = await tokens.retire_key(args.kid)
            return f"retired {args.kid}" if ok else f"{args.kid} is unknown, active or already retired"
        rows = await SigningKey.all().order_by("created_at")
        return (
            "\n".join(
                f"{r.kid}  {'active' if r.active else ('retired' if r.retired_at else 'verify-only')}" for r in rows
            )
            or "no keys"
        )

    print(_with_db(settings, work))
    return 0


def cmd_codes_zip(settings: Settings, args: argparse.Namespace) -> int:
    """Issue or fetch the default codes of a section and write one ZIP of print files."""
    from tqdm import tqdm

    from app.errors import DomainError
    from qr import service

    bar = tqdm(unit="matter", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    deps = _services(settings).codes
    try:
        content, count = _with_db(settings, lambda: service.section_zip(deps, section=args.section, progress=progress))
    except DomainError as exc:
        bar.close()
        print(f"{exc.code}: {exc.message} {json.dumps(exc.details, ensure_ascii=False)}", file=sys.stderr)
        return 1
    bar.close()
    out = Path(args.out or f"qr-{args.section}.zip")
    out.write_bytes(content)
    print(f"wrote {count} matters' print files to {out}")
    return 0


def cmd_wechat_menu(settings: Settings, args: argparse.Namespace) -> int:
    """Check a custom menu file and publish it to the official account."""
    from app.store import make_store
    from app.wechat import menu
    from app.wechat.client import WeChatClient
    from app.wechat.errors import WeChatError

    try:
        data = menu.load(Path(args.file) if args.file else None, settings)
    except (OSError, menu.MenuInvalid) as exc:
        print(f"menu not published: {exc}", file=sys.stderr)
        return 1

    async def work() -> None:
        store = make_store(settings)
        client = WeChatClient(settings, store)
        try:
            await menu.publish(client, data)
        finally:
            await client.aclose()
            await store.aclose()

    try:
        asyncio.run(work())
    except WeChatError as exc:
        print(f"menu not published: WeChat answered {exc.code} {exc.errcode or ''}".rstrip(), file=sys.stderr)
        return 1
    print(f"menu published: {len(data['button'])} buttons")
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

    staff = sub.add_parser("staff", help="staff accounts")
    ssub = staff.add_subparsers(dest="action", required=True)
    create = ssub.add_parser("create", help="create a staff account")
    create.add_argument("--role", required=True, choices=["clerk", "reviewer", "admin"])
    create.add_argument("--username", required=True)
    create.add_argument("--hall", help="hall code (clerks)")
    create.add_argument("--department", action="append", help="department code (reviewers; repeatable)")
    create.add_argument("--name", help="display name")
    create.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    create.set_defaults(func=cmd_staff_create)
    for action, flag in (("disable", True), ("enable", False)):
        p = ssub.add_parser(action, help=f"{action} a staff account")
        p.add_argument("--username", required=True)
        p.set_defaults(func=cmd_staff_disable, disable=flag)

    citizen = sub.add_parser("citizen", help="citizen accounts (support)")
    csub2 = citizen.add_subparsers(dest="action", required=True)
    reset_rn = csub2.add_parser("reset-real-name", help="clear a real name: the ID number is read from stdin")
    reset_rn.add_argument("--reason", required=True, help="why (kept in the audit log)")
    reset_rn.set_defaults(func=cmd_citizen_reset_real_name)

    dev = sub.add_parser("dev", help="development helpers (refused in production)")
    dsub = dev.add_subparsers(dest="action", required=True)
    token = dsub.add_parser("token", help="print access tokens")
    token.add_argument("--citizen", metavar="PHONE")
    token.add_argument("--citizens", type=int, metavar="N")
    token.add_argument("--loa", type=int, default=2, choices=[2, 3])
    token.add_argument("--staff", metavar="USERNAME")
    token.set_defaults(func=cmd_dev_token)

    codes = sub.add_parser("codes", help="matter QR codes")
    qsub = codes.add_subparsers(dest="action", required=True)
    zip_ = qsub.add_parser("zip", help="print files (posters and PNGs) of a whole section, as one ZIP")
    zip_.add_argument("--section", required=True, help="investment, commercial, real_estate, ...")
    zip_.add_argument("--out", help="output file (default qr-SECTION.zip)")
    zip_.set_defaults(func=cmd_codes_zip)

    keys = sub.add_parser("keys", help="token signing keys")
    ksub = keys.add_subparsers(dest="action", required=True)
    ksub.add_parser("list").set_defaults(func=cmd_keys)
    ksub.add_parser("rotate").set_defaults(func=cmd_keys)
    wechat = sub.add_parser("wechat", help="the WeChat official account")
    wsub = wechat.add_subparsers(dest="area", required=True)
    menu = wsub.add_parser("menu", help="the custom menu")
    msub = menu.add_subparsers(dest="action", required=True)
    publish = msub.add_parser("publish", help="check a menu file (default: app/wechat/menu.json) and publish it")
    publish.add_argument("file", nargs="?", help="menu JSON ({base_url} is replaced by BASE_URL)")
    publish.set_defaults(func=cmd_wechat_menu)
    retire = ksub.add_parser("retire")
    retire.add_argument("kid")
    retire.set_defaults(func=cmd_keys)
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
