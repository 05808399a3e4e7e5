"""The container image and the compose stack: writable uploads, migrations once, pinned base, healthy dependencies."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions (continuations joined, comments dropped) as (INSTRUCTION, arguments)."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for kind, args in instructions:
        if kind == "ENV":
            out.update(dict(item.split("=", 1) for item in shlex.split(args)))
    return out


def test_base_image_is_pinned_by_digest():
    """The way it was found: `FROM python:3.11-slim`, a moving tag."""
    instructions = _dockerfile()
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for k, a in instructions if k == "ARG" and "=" in a}
    (base,) = [a for k, a in instructions if k == "FROM"]
    image = args.get(base.strip("${}"), base)
    assert re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*@sha256:[0-9a-f]{64}", image), image


def test_uploads_are_a_volume_the_app_user_owns():
    """The way it was found: UPLOAD_DIR defaulted under the root-owned /srv/app, so uploads failed as user app."""
    instructions = _dockerfile()
    upload_dir = _env(instructions)["UPLOAD_DIR"]
    assert not upload_dir.startswith(_workdir(instructions))  # outside the root-owned code
    # No VOLUME in the image: only the local backend needs one, and compose mounts it (below).
    assert not [a for k, a in instructions if k == "VOLUME"]
    runs = " && ".join(a for k, a in instructions if k == "RUN")
    assert f"mkdir -p {upload_dir}" in runs
    owned = re.search(r"chown -R app:app (\S+)", runs)
    assert owned and upload_dir.startswith(owned.group(1))
    users = [a for k, a in instructions if k == "USER"]
    assert users == ["app"]
    # the settings read the variable: the service writes where the image prepared
    assert Settings.from_env({"UPLOAD_DIR": upload_dir}).upload_dir == Path(upload_dir)
    app = _compose()["services"]["app"]
    assert any(v.split(":")[1] == upload_dir for v in app["volumes"])
    assert "uploads" in _compose()["volumes"]


def _workdir(instructions: list[tuple[str, str]]) -> str:
    return next(a for k, a in instructions if k == "WORKDIR")


def test_the_image_does_not_migrate_on_every_replica_start():
    """The way it was found: CMD ran `migrate && run` on each replica at once."""
    cmd = [a for k, a in _dockerfile() if k == "CMD"]
    assert cmd == ['["python", "-m", "app", "run"]']


def test_compose_migrates_once_before_the_service():
    services = _compose()["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "-m", "app", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["db"] == {"condition": "service_healthy"}
    assert migrate["environment"] == services["app"]["environment"]  # the same production settings
    assert services["app"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert "migrate" not in str(services["app"].get("command", ""))


def test_compose_waits_for_healthy_redis_and_database():
    services = _compose()["services"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["db"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert services["app"]["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert services["app"]["depends_on"]["db"] == {"condition": "service_healthy"}


def test_compose_requires_an_https_base_url_and_every_secret():
    env = _compose()["services"]["app"]["environment"]
    assert env["APP_ENV"] == "production"
    assert env["BASE_URL"].startswith("${BASE_URL:?")  # no http:// default (production refuses it)
    for name in ("SECRET_KEY", "PII_KEYS", "PII_INDEX_KEY", "WECHAT_MP_TOKEN", "WECHAT_MP_AES_KEY"):
        assert env[name].startswith(f"${{{name}:?"), name


def test_dockerignore_keeps_secrets_local_data_and_caches_out_of_the_build():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", ".env", "data", "*.sqlite3*", "**/__pycache__", "tests"} <= ignored
    copied = [a.split()[0] for k, a in _dockerfile() if k == "COPY"]
    assert not [c for c in copied if c in ignored]  # nothing the image needs is ignored
