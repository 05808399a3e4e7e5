"""`python -m app` identity commands as an operator runs them: real subprocesses on a temp SQLite file.

The CLI opens and closes the ORM itself (asyncio.run), so it must not run inside this test process,
whose ORM belongs to the session's database; every command is a subprocess here.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from argon2 import PasswordHasher

from app.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
PHONE = "13800000000"
PASSWORD = "correct horse battery staple"
VERIFY = """
import asyncio, json, sys
from app import db
from app.cache import LocalCache
from app.settings import Settings
from app.store import make_store
from auth.errors import DomainError
from auth.pii import PiiCipher
from auth.tokens import ALL_AUDIENCES, TokenAuthority


async def main():
    settings = Settings.from_env()
    await db.init_db(settings)
    try:
        tokens = TokenAuthority(settings, PiiCipher.from_settings(settings), LocalCache(make_store(settings)))
        out = []
        for token in sys.stdin.read().split():
            try:
                p = await tokens.verify(token, audiences=ALL_AUDIENCES)
                out.append({"kind": p.kind, "id": p.id, "aud": p.audience, "loa": p.loa, "role": p.role})
            except DomainError as exc:
                out.append({"error": exc.code})
        print(json.dumps(out))
    finally:
        await db.close_db()


asyncio.run(main())
"""


def _env(db_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment: nothing of the developer's or the test run's settings leaks in."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite://{db_path}",
        "LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


def run(db_path: Path, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=_env(db_path, **env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def verify(db_path: Path, tokens: list[str]) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-c", VERIFY],
        cwd=ROOT,
        env=_env(db_path),
        input="\n".join(tokens),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def rows(db_path: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `python -m app migrate` per module; each test gets a copy."""
    path = tmp_path_factory.mktemp("cli") / "template.sqlite3"
    proc = run(path, "migrate")
    assert proc.returncode == 0, proc.stderr
    assert "migrations up to date" in proc.stdout
    return path


@pytest.fixture
def db(migrated_template: Path, tmp_path: Path) -> Path:
    target = tmp_path / "cli.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        source = Path(str(migrated_template) + suffix)
        if source.exists():
            shutil.copy(source, str(target) + suffix)
    return target


def _keys(db_path: Path) -> dict[str, str]:
    proc = run(db_path, "keys", "list")
    assert proc.returncode == 0, proc.stderr
    return dict(line.split() for line in proc.stdout.strip().splitlines())


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _verify_with_jwks_row(db_path: Path, token: str) -> dict:
    """Verify like a partner with our published key: the public JWK stored for the token's kid."""
    kid = jwt.get_unverified_header(token)["kid"]
    [(jwk_text,)] = rows(db_path, "SELECT public_jwk FROM signing_key WHERE kid = ? AND retired_at IS NULL", kid)
    jwk = json.loads(jwk_text) if isinstance(jwk_text, str) else jwk_text
    return jwt.decode(token, jwt.PyJWK(jwk), algorithms=["EdDSA"], audience="app", issuer="http://127.0.0.1:8000")


# ---------------------------------------------------------------- dev token


def test_migrate_creates_one_active_signing_key(db):
    assert list(_keys(db).values()) == ["active"]


def test_dev_token_for_a_phone_verifies(db):
    proc = run(db, "dev", "token", "--citizen", PHONE, "--loa", "3")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    token = lines[0]
    claims = _verify_with_jwks_row(db, token)
    assert claims["loa"] == 3 and claims["aud"] == "app" and claims["typ"] == "access"
    [principal] = verify(db, [token])
    assert principal["kind"] == "citizen" and principal["loa"] == 3 and principal["aud"] == "app"
    assert claims["sub"] == f"citizen:{principal['id']}"
    # One citizen with that (encrypted) phone; asking again reuses it.
    [(loa, phone_enc)] = rows(db, "SELECT loa, phone_enc FROM citizen")
    assert loa == 3 and PHONE not in phone_enc
    again = run(db, "dev", "token", "--citizen", PHONE, "--loa", "2")
    assert again.returncode == 0, again.stderr
    assert _claims(again.stdout.strip())["sub"] == claims["sub"]
    assert rows(db, "SELECT count(*) FROM citizen") == [(1,)]


def test_dev_tokens_for_new_citizens_are_distinct(db):
    proc = run(db, "dev", "token", "--citizens", "3", "--loa", "2")
    assert proc.returncode == 0, proc.stderr
    tokens = proc.stdout.split()
    assert len(tokens) == 3 and len(set(tokens)) == 3
    subjects = {_claims(t)["sub"] for t in tokens}
    assert len(subjects) == 3 and len({_claims(t)["sid"] for t in tokens}) == 3
    principals = verify(db, tokens)
    assert all(p.get("kind") == "citizen" and p["loa"] == 2 for p in principals), principals
    assert rows(db, "SELECT count(*) FROM citizen WHERE loa = 2") == [(3,)]


def test_dev_token_needs_a_subject_and_a_valid_loa(db, capsys):
    proc = run(db, "dev", "token")
    assert proc.returncode == 2 and "give --citizen PHONE, --citizens N or --staff USERNAME" in proc.stderr
    assert proc.stdout == ""
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["dev", "token", "--citizen", PHONE, "--loa", "1"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    bad_phone = run(db, "dev", "token", "--citizen", "12345")
    assert bad_phone.returncode == 1 and "INVALID_PHONE" in bad_phone.stderr and bad_phone.stdout == ""


def _production_env(db_path: Path) -> dict[str, str]:
    # strong random values: production refuses development values, patterned keys and weak secrets
    return {
        "APP_ENV": "production",
        "DATABASE_URL": f"sqlite://{db_path}",
        "BASE_URL": "https://zwfw.zjj.example.gov.cn",
        "SECRET_KEY": "mnSgYaqIhenu_4ngOv9u_cK2CUnEJZP6m_S3Iks93b0",
        "PII_KEYS": "k1:7mDCT4BvcFHbUBDa6DT7JcUJXTchZWtKlZTNF/358MY=",
        "PII_INDEX_KEY": "hzbBLnypubwnh4poX33KtBTtZDRfWYYKDCZ7V2EFA94=",
        "WECHAT_MP_APPID": "wxprodofficial",
        "WECHAT_MP_SECRET": "c1df3408e12ab800588a94ee9c004773",
        "WECHAT_MINI_APPID": "wxprodmini",
        "WECHAT_MINI_SECRET": "79d95cf846cc60f4cbe5b427df11944a",
        "WECHAT_MP_TOKEN": "prodcallbacktoken42",
        "WECHAT_MP_AES_KEY": "6jB9r0jvPI/NmuSMSjWFpv5xbxf2HoGOPa58yRbSqFs",
        "SMS_GATEWAY_URL": "http://127.0.0.1:9/sms",
        "REALNAME_VERIFIER_URL": "http://127.0.0.1:9/verify",
    }


def test_dev_token_is_refused_in_production(db):
    for args in (["--citizen", PHONE, "--loa", "3"], ["--citizens", "3"], ["--staff", "boss"]):
        proc = run(db, "dev", "token", *args, **_production_env(db))
        assert proc.returncode == 2, proc.stderr
        assert "dev token is not available in production mode" in proc.stderr
        assert proc.stdout == ""
    assert rows(db, "SELECT count(*) FROM citizen") == [(0,)]
    assert rows(db, "SELECT count(*) FROM auth_session") == [(0,)]


def test_production_with_development_values_refuses_to_start_naming_each(db):
    """The way it was found: `run` started in production with the development secret and an http BASE_URL."""
    from app.settings import DEV_SECRET

    env = {**_production_env(db), "SECRET_KEY": DEV_SECRET, "BASE_URL": "http://zwfw.zjj.example.gov.cn",
           "PII_INDEX_KEY": "A" * 43 + "="}  # fmt: skip
    proc = run(db, "run", **env)
    assert proc.returncode == 2 and proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("configuration error:")]
    assert len(errors) == 1  # one message listing everything wrong
    assert "SECRET_KEY is the development value" in errors[0]
    assert "BASE_URL must start with https://" in errors[0]
    assert "PII_INDEX_KEY repeats one byte" in errors[0]
    assert DEV_SECRET not in proc.stderr


def test_production_without_its_secrets_is_a_configuration_error(monkeypatch, capsys):
    for name in list(os.environ):
        if name in {"ADMIN_TOKEN", "SECRET_KEY", "PII_KEYS", "PII_INDEX_KEY", "BASE_URL", "DATABASE_URL"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("APP_ENV", "production")
    assert main(["dev", "token", "--citizen", PHONE]) == 2  # refused before any database is touched
    err = capsys.readouterr().err
    assert "configuration error: production mode requires these environment variables" in err
    assert "SECRET_KEY" in err and "PII_KEYS" in err


# ---------------------------------------------------------------- staff


def test_staff_create_clerk_without_hall_fails_clearly(db):
    short = run(db, "staff", "create", "--role", "clerk", "--username", "x")
    assert short.returncode == 1 and short.stdout == ""
    assert "INVALID_INPUT" in short.stderr and "用户名格式不正确" in short.stderr
    proc = run(db, "staff", "create", "--role", "clerk", "--username", "clerk_x")
    assert proc.returncode == 1 and proc.stdout == ""
    assert "窗口人员必须指定所属大厅" in proc.stderr and '"hall"' in proc.stderr
    reviewer = run(db, "staff", "create", "--role", "reviewer", "--username", "rev_x")
    assert reviewer.returncode == 1 and "审核人员必须指定所属部门" in reviewer.stderr
    assert rows(db, "SELECT count(*) FROM staff") == [(0,)]
    bad_role = run(db, "staff", "create", "--role", "root", "--username", "root_x")
    assert bad_role.returncode == 2 and "invalid choice" in bad_role.stderr


def test_staff_create_with_password_stdin_then_disable_and_enable(db):
    proc = run(
        db, "staff", "create", "--role", "admin", "--username", "boss", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "created staff boss (admin)"  # no password echoed
    [(password_hash, role, disabled)] = rows(
        db, "SELECT password_hash, role, disabled FROM staff WHERE username = ?", "boss"
    )
    assert role == "admin" and not disabled
    assert PASSWORD not in password_hash and password_hash.startswith("$argon2id$")
    assert PasswordHasher().verify(password_hash, PASSWORD)

    token = run(db, "dev", "token", "--staff", "boss")
    assert token.returncode == 0, token.stderr
    [before] = verify(db, [token.stdout.strip()])
    assert before["kind"] == "staff" and before["role"] == "admin" and before["aud"] == "staff"

    disable = run(db, "staff", "disable", "--username", "boss")
    assert disable.returncode == 0, disable.stderr
    assert disable.stdout.strip() == "boss: disabled"
    assert rows(db, "SELECT disabled FROM staff WHERE username = 'boss'") == [(1,)]
    # Disabling revoked the session the token belongs to.
    assert verify(db, [token.stdout.strip()]) == [{"error": "TOKEN_REVOKED"}]
    assert rows(db, "SELECT count(*) FROM auth_session WHERE revoked_at IS NULL") == [(0,)]

    enable = run(db, "staff", "enable", "--username", "boss")
    assert enable.returncode == 0 and enable.stdout.strip() == "boss: enabled"
    assert rows(db, "SELECT disabled FROM staff WHERE username = 'boss'") == [(0,)]
    assert verify(db, [token.stdout.strip()]) == [{"error": "TOKEN_REVOKED"}]  # revoked stays revoked


def test_staff_create_generates_a_password_once_and_refuses_duplicates(db):
    proc = run(db, "staff", "create", "--role", "clerk", "--username", "clerk1", "--hall", "main")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "created staff clerk1 (clerk)" and lines[1].startswith("password: ")
    generated = lines[1].removeprefix("password: ")
    assert len(generated) >= 12
    [(password_hash,)] = rows(db, "SELECT password_hash FROM staff WHERE username = 'clerk1'")
    assert PasswordHasher().verify(password_hash, generated)
    dup = run(
        db, "staff", "create", "--role", "admin", "--username", "clerk1", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert dup.returncode == 1 and "USERNAME_TAKEN" in dup.stderr
    weak = run(db, "staff", "create", "--role", "admin", "--username", "weak1", "--password-stdin", stdin="short\n")
    assert weak.returncode == 1 and "密码至少 10 位" in weak.stderr
    empty = run(db, "staff", "create", "--role", "admin", "--username", "empty1", "--password-stdin", stdin="")
    assert empty.returncode == 1 and "密码至少 10 位" in empty.stderr


def test_staff_disable_unknown_user(db):
    proc = run(db, "staff", "disable", "--username", "nobody")
    assert proc.returncode == 1 and "STAFF_NOT_FOUND" in proc.stderr and proc.stdout == ""


def test_citizen_reset_real_name_reads_the_number_from_stdin(db):
    from auth.idcard import make_id_number

    number = make_id_number(seq="901")
    proc = run(db, "citizen", "reset-real-name", "--reason", "窗口核验后重置", stdin=number + "\n")
    assert proc.returncode == 1 and "NOT_FOUND" in proc.stderr and number not in proc.stderr + proc.stdout
    bad = run(db, "citizen", "reset-real-name", "--reason", "x", stdin="12345\n")
    assert bad.returncode == 1 and "INVALID_ID_NUMBER" in bad.stderr


# ---------------------------------------------------------------- signing keys


def test_keys_rotate_list_retire(db):
    [(old_kid, state)] = _keys(db).items()
    assert state == "active"
    old_token = run(db, "dev", "token", "--citizen", PHONE).stdout.strip()

    rotate = run(db, "keys", "rotate")
    assert rotate.returncode == 0, rotate.stderr
    assert "older keys keep verifying until retired" in rotate.stdout
    new_kid = rotate.stdout.split("new active key ")[1].split(";")[0].strip()
    listing = _keys(db)
    assert listing == {old_kid: "verify-only", new_kid: "active"}
    assert list(listing.values()).count("active") == 1

    new_token = run(db, "dev", "token", "--citizen", PHONE).stdout.strip()
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert all("error" not in p for p in verify(db, [old_token, new_token]))

    refused = run(db, "keys", "retire", new_kid)
    assert refused.returncode == 0 and f"{new_kid} is unknown, active or already retired" in refused.stdout
    retire = run(db, "keys", "retire", old_kid)
    assert retire.returncode == 0 and retire.stdout.strip() == f"retired {old_kid}"
    assert _keys(db) == {old_kid: "retired", new_kid: "active"}
    old_result, new_result = verify(db, [old_token, new_token])
    assert old_result == {"error": "TOKEN_INVALID"} and new_result["kind"] == "citizen"
    again = run(db, "keys", "retire", old_kid)
    assert "already retired" in again.stdout


def test_keys_rotate_twice_keeps_one_active(db):
    for _ in range(2):
        assert run(db, "keys", "rotate").returncode == 0
    listing = _keys(db)
    assert len(listing) == 3 and list(listing.values()).count("active") == 1
    assert list(listing.values()).count("verify-only") == 2
