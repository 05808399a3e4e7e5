"""The container image and the compose stack: two instances behind nginx, migrations once, MinIO, pinned images.

No Docker daemon runs where these tests run, so the stack is checked as Compose would read it: the YAML with its
anchors, then Compose's `${...}` substitution with a plausible production .env, then what each piece does with
the result (the settings validate, the healthcheck and the bucket script run against stand-ins).
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from app.settings import REQUIRED_IN_PRODUCTION, Settings, SettingsError
from tests.unit.test_settings import PRODUCTION

ROOT = Path(__file__).resolve().parents[2]
APPS = ("app1", "app2")

# What an operator puts in .env: the settings tests' strong production values plus the stack's own secrets.
DOTENV = {
    **{k: v for k, v in PRODUCTION.items() if k not in {"APP_ENV", "DATABASE_URL", "ADMIN_TOKEN"}},
    "FORWARDED_SECRET": "9f2c41d7b8e05a6c3d1f7e2b94a0c58d",
    "POSTGRES_PASSWORD": "q7Rk2mVx9LpT4wZs",
    "MINIO_ROOT_USER": "zuiduo-root",
    "MINIO_ROOT_PASSWORD": "Hs8vQ2nLx5Tc9pWr",
    "MINIO_KMS_SECRET_KEY": "zuiduo-key:" + base64.b64encode(bytes(range(7, 39))).decode(),
    "STORAGE_S3_ACCESS_KEY": "zuiduo-app",
    "STORAGE_S3_SECRET_KEY": "Jm4xR8pV2kQw7nTz",
}


# ---------------------------------------------------------------- reading the files as Docker and Compose do


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


class Unset(Exception):
    """Compose refuses the file: a `${NAME:?...}` variable is missing."""


_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)")


def _substitute(value: Any, dotenv: dict[str, str]) -> Any:
    """Compose's interpolation: `$$` is a `$`; `${V}`, `${V:-default}`, `${V-default}`, `${V:?error}`, `${V?error}`."""
    if isinstance(value, dict):
        return {k: _substitute(v, dotenv) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, dotenv) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg, got = m.group("op"), m.group("arg"), dotenv.get(name)
        missing = got is None or (got == "" and op is not None and op.startswith(":"))
        if op in {"-", ":-"}:
            return arg if missing else got
        if op in {"?", ":?"} and missing:
            raise Unset(f"{name}: {arg}")
        return got or ""

    return _VARIABLE.sub(one, value)


def _resolved(dotenv: dict[str, str] = DOTENV) -> dict:
    """compose.yaml as Compose runs it with this .env."""
    return _substitute(_compose(), dotenv)


def _instance_env(dotenv: dict[str, str] = DOTENV) -> dict[str, str]:
    """An instance's environment as Compose passes it (paths as the container sees them)."""
    return {k: str(v) for k, v in _resolved(dotenv)["services"]["app1"]["environment"].items()}


def _tmpfs(service: dict) -> dict[str, dict[str, str]]:
    """A service's tmpfs mounts: target -> mount options (`/path:mode=1777,size=...`)."""
    out = {}
    for mount in service.get("tmpfs", []):
        target, _, options = mount.partition(":")
        out[target] = dict(o.partition("=")[::2] for o in options.split(",") if o)
    return out


def _instance_settings(root: Path, dotenv: dict[str, str] = DOTENV) -> Settings:
    """The settings an instance starts with, each of its tmpfs mounts standing in as a new directory under root."""
    env = _instance_env(dotenv)
    for target in _tmpfs(_resolved(dotenv)["services"]["app1"]):
        local = root / target.lstrip("/")
        local.mkdir(parents=True, exist_ok=True)
        env = {k: str(local) if v == target else v for k, v in env.items()}
    return Settings.from_env(env)


def _our_image() -> str:
    return _compose()["services"]["migrate"]["image"]


def _port(service: dict) -> str:
    """The port the service listens on: PORT from its environment, else the image's."""
    return str(service["environment"].get("PORT", _env(_dockerfile())["PORT"]))


# ---------------------------------------------------------------- the image


def test_base_image_is_pinned_by_digest():
    """The way it was found: `FROM python:3.11-slim`, a moving tag."""
    instructions = _dockerfile()
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for k, a in instructions if k == "ARG" and "=" in a}
    (base,) = [a for k, a in instructions if k == "FROM"]
    image = args.get(base.strip("${}"), base)
    assert re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*@sha256:[0-9a-f]{64}", image), image


def test_the_upload_directory_is_prepared_for_the_local_backend_without_a_volume():
    """The way it was found: UPLOAD_DIR defaulted under the root-owned /srv/app, so uploads failed as user app."""
    instructions = _dockerfile()
    upload_dir = _env(instructions)["UPLOAD_DIR"]
    assert not upload_dir.startswith(_workdir(instructions))  # outside the root-owned code
    # No VOLUME in the image: only the local backend needs one, mounted by the operator (README "Production").
    assert not [a for k, a in instructions if k == "VOLUME"]
    runs = " && ".join(a for k, a in instructions if k == "RUN")
    assert f"mkdir -p {upload_dir}" in runs
    owned = re.search(r"chown -R app:app (\S+)", runs)
    assert owned and upload_dir.startswith(owned.group(1))
    users = [a for k, a in instructions if k == "USER"]
    assert users == ["app"]
    # the settings read the variable: the service writes where the image prepared
    assert Settings.from_env({"UPLOAD_DIR": upload_dir}).upload_dir == Path(upload_dir)


def test_the_s3_scratch_files_go_where_the_image_keeps_the_directory_writable(monkeypatch):
    """With s3, uploads stream to the system temporary directory: the build checks the one the service uses."""
    from app.storage.s3 import S3MaterialStore

    instructions = _dockerfile()
    assert not {"TMPDIR", "TEMP", "TMP"} & set(_env(instructions))  # nothing moves Python's tempfile elsewhere
    runs = " && ".join(a for k, a in instructions if k == "RUN")
    checked = re.search(r'test "\$\(stat -c %a (\S+)\)" = 1777', runs)
    assert checked, "the build no longer checks that the temporary directory is world-writable (sticky)"
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", None)  # as in a fresh process of the image
    assert S3MaterialStore(store=None).scratch_dir().parent == Path(checked.group(1))


def _workdir(instructions: list[tuple[str, str]]) -> str:
    return next(a for k, a in instructions if k == "WORKDIR")


def test_the_image_does_not_migrate_on_every_replica_start():
    """The way it was found: CMD ran `migrate && run` on each replica at once."""
    cmd = [a for k, a in _dockerfile() if k == "CMD"]
    assert cmd == ['["python", "-m", "app", "run"]']


def test_dockerignore_keeps_secrets_local_data_and_caches_out_of_the_build():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", ".env", "data", "*.sqlite3*", "**/__pycache__", "tests"} <= ignored
    copied = [a.split()[0] for k, a in _dockerfile() if k == "COPY"]
    assert not [c for c in copied if c in ignored]  # nothing the image needs is ignored


# ---------------------------------------------------------------- the instances


def test_two_instances_run_the_same_image_with_the_same_settings():
    services = _compose()["services"]
    ours = sorted(name for name, s in services.items() if s.get("image") == _our_image() and name != "migrate")
    assert ours == list(APPS)
    first, second = (services[name] for name in APPS)
    assert first == second  # one definition (the anchor): image, settings, healthcheck, dependencies
    # migrations see the same settings; only the instances have the metrics directory and serve /metrics
    own = {k: v for k, v in first["environment"].items() if k not in {"PROMETHEUS_MULTIPROC_DIR", "METRICS_TOKEN"}}
    assert own == services["migrate"]["environment"]
    assert "ports" not in first  # reached through nginx only
    assert "command" not in first  # the image's CMD: `python -m app run`


def test_the_instances_production_settings_pass_validation(tmp_path):
    settings = _instance_settings(tmp_path)
    assert settings.is_production and (settings.load_demo, settings.auto_migrate) == (False, False)
    assert settings.redis_url and settings.redis_url.startswith("redis://redis:")  # shared by both instances
    assert settings.forwarded_secret == DOTENV["FORWARDED_SECRET"]
    assert (settings.storage_backend, settings.storage_s3_path_style) == ("s3", True)
    assert urlsplit(settings.storage_s3_endpoint).hostname == "minio"
    assert (settings.storage_s3_access_key, settings.storage_s3_secret_key) == (
        DOTENV["STORAGE_S3_ACCESS_KEY"], DOTENV["STORAGE_S3_SECRET_KEY"],
    )  # fmt: skip
    # the instances log in to the database the db service creates
    db = _resolved()["services"]["db"]["environment"]
    url = urlsplit(settings.database_url)
    assert (url.hostname, url.username, url.password, url.path.lstrip("/")) == (
        "db", db["POSTGRES_USER"], db["POSTGRES_PASSWORD"], db["POSTGRES_DB"],
    )  # fmt: skip


def test_compose_requires_every_secret_production_requires_and_an_https_base_url(tmp_path):
    env = _compose()["services"]["app1"]["environment"]
    required = [
        Settings.variables()[name]
        for name, info in Settings.model_fields.items()
        if REQUIRED_IN_PRODUCTION in info.metadata
    ]
    assert "SECRET_KEY" in required and "BASE_URL" in required
    for name in required:
        assert name in env, name
        assert f"${{{name}:?" in env[name] or name == "DATABASE_URL", name  # no default: .env must say it
    assert "${POSTGRES_PASSWORD:?" in env["DATABASE_URL"]
    assert env["APP_ENV"] == "production"
    with pytest.raises(SettingsError, match="BASE_URL must start with https://"):
        _instance_settings(tmp_path, {**DOTENV, "BASE_URL": "http://zwfw.example.gov.cn"})


@pytest.mark.parametrize("name", sorted(DOTENV))
def test_compose_refuses_to_start_without_each_value_of_the_env_file(name):
    dotenv = {k: v for k, v in DOTENV.items() if k != name}
    with pytest.raises(Unset, match=rf"^{name}:"):
        _resolved(dotenv)


class _Ready(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/readyz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def readyz() -> Iterator[tuple[type[_Ready], int]]:
    """A stand-in instance answering /readyz with `handler.status`; (handler, port)."""
    handler = type("Handler", (_Ready,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_every_instance_is_healthy_only_when_readyz_says_ready(readyz):
    handler, port = readyz
    services = _resolved()["services"]
    for name in APPS:
        check = services[name]["healthcheck"]
        assert check["test"][:2] == ["CMD", "python"], name  # exec form: the image has python, not curl
        argv = [sys.executable, *check["test"][2:]]
        results = {}
        for status in (200, 503):
            handler.status = status
            done = subprocess.run(argv, env={"PORT": str(port)}, capture_output=True, timeout=30)
            results[status] = done.returncode
        assert results[200] == 0 and results[503] != 0, (name, results)
        assert check["start_period"] and check["retries"] >= 1


# What one worker of an instance does with its requests' counts (app.observe), in a process of its own.
_WORKER = """
from app import observe
observe._observe("GET", "/api/v1/matters/<code:str>", 200, 0.004)
observe.flush_request_metrics()
"""


def test_each_instance_sums_its_workers_metrics_in_a_fresh_directory(tmp_path):
    from app.observe import metrics_payload

    services = _resolved()["services"]
    (user,) = [a for k, a in _dockerfile() if k == "USER"]
    assert user != "root"
    for name in APPS:
        target = services[name]["environment"]["PROMETHEUS_MULTIPROC_DIR"]
        mounts = _tmpfs(services[name])
        assert target in mounts, name  # a tmpfs: empty at each container start, nothing kept on the host
        mode = int(mounts[target].get("mode", "0"), 8)
        assert mode & 0o1002 == 0o1002, (name, oct(mode))  # user app may write there, as in /tmp (sticky)
    # migrate has neither: the settings refuse a directory that is not there
    assert "tmpfs" not in services["migrate"]
    assert "PROMETHEUS_MULTIPROC_DIR" not in services["migrate"]["environment"]
    with pytest.raises(SettingsError, match="PROMETHEUS_MULTIPROC_DIR"):
        Settings.from_env({**_instance_env(), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "absent")})

    directory = _instance_settings(tmp_path).prometheus_multiproc_dir
    assert directory is not None and directory.is_dir() and not list(directory.iterdir())
    # Two workers, each a process started with the instance's variable: prometheus_client reads it at import.
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"}
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER], cwd=ROOT, env=env, stderr=subprocess.PIPE) for _ in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err.decode()
    text = metrics_payload(directory).decode()
    line = 'http_requests_total{method="GET",route="/api/v1/matters/<code:str>",status="200"}'
    (total,) = [row.split()[-1] for row in text.splitlines() if row.startswith(line + " ")]
    assert float(total) == 2.0  # both workers' counts in one scrape


def test_metrics_are_scraped_with_the_token_from_the_env_file(tmp_path):
    assert _instance_settings(tmp_path).metrics_token is None  # optional: production then answers /metrics 404
    token = "7c1e9a4f2b8d6035e4a1c9f7"
    assert _instance_settings(tmp_path, {**DOTENV, "METRICS_TOKEN": token}).metrics_token == token
    assert "METRICS_TOKEN" not in _resolved()["services"]["migrate"]["environment"]


def test_migrations_run_once_before_both_instances(tmp_path):
    services = _compose()["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "-m", "app", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["db"] == {"condition": "service_healthy"}
    migrating = [name for name, s in services.items() if "migrate" in str(s.get("command", ""))]
    assert migrating == ["migrate"]  # one one-shot step; the instances never migrate
    for name in APPS:
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
    assert _instance_settings(tmp_path).auto_migrate is False


def test_the_instances_wait_for_healthy_redis_database_and_the_bucket():
    services = _compose()["services"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["db"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert services["minio"]["healthcheck"]["test"][:2] == ["CMD", "mc"]
    assert services["minio-init"]["depends_on"]["minio"] == {"condition": "service_healthy"}
    assert services["minio-init"]["restart"] == "no"
    for name in APPS:
        depends = services[name]["depends_on"]
        assert depends["redis"] == depends["db"] == {"condition": "service_healthy"}, name
        assert depends["minio-init"] == {"condition": "service_completed_successfully"}, name


# ---------------------------------------------------------------- the balancer


def _template() -> str:
    mount = next(v for v in _compose()["services"]["nginx"]["volumes"] if "/etc/nginx/templates/" in v)
    return (ROOT / mount.split(":")[0]).read_text()


def test_nginx_renders_the_template_with_both_instances_and_its_port():
    nginx = _resolved()["services"]["nginx"]
    (mount,) = [v for v in nginx["volumes"] if "/etc/nginx/templates/" in v]
    source, target, mode = mount.split(":")
    assert (ROOT / source).is_file() and mode == "ro"
    # The image renders templates/NAME.template to conf.d/NAME: this name replaces its default server on port 80.
    assert target == "/etc/nginx/templates/default.conf.template"
    env = nginx["environment"]
    template = _template()
    used = set(re.findall(r"\$\{([A-Za-z_]\w*)\}", template))
    assert used == set(env), "every variable of the template is set for nginx, and nothing else"
    # the image's envsubst replaces only variables of its environment: nginx's own ($remote_addr ...) stay
    assert not set(re.findall(r"\$([a-z_]\w*)", template)) & set(env)
    upstreams = [env[name] for name in sorted(env) if name.startswith("APP_UPSTREAM_")]
    services = _resolved()["services"]
    assert [u.split(":")[0] for u in upstreams] == list(APPS)
    assert [u.split(":")[1] for u in upstreams] == [_port(services[name]) for name in APPS]
    (published,) = nginx["ports"]
    assert published.rsplit(":", 1)[1] == env["LISTEN_PORT"] != "80"
    rendered = re.sub(r"\$\{([A-Za-z_]\w*)\}", lambda m: env[m.group(1)], template)
    assert f"listen {env['LISTEN_PORT']};" in rendered
    for upstream in upstreams:
        assert f"server {upstream} " in rendered
    for name in APPS:
        assert nginx["depends_on"][name]["condition"] == "service_healthy", name


def test_the_forwarded_secret_is_one_value_for_nginx_and_the_instances():
    raw = _compose()["services"]
    assert raw["nginx"]["environment"]["FORWARDED_SECRET"].startswith("${FORWARDED_SECRET:?")  # required, no default
    services = _resolved()["services"]
    secrets = {services[name]["environment"]["FORWARDED_SECRET"] for name in ("nginx", *APPS)}
    assert secrets == {DOTENV["FORWARDED_SECRET"]}
    assert 'secret=\\"${FORWARDED_SECRET}\\"' in _template()  # what nginx adds to every request's Forwarded header


async def test_the_balancer_lets_an_idle_connection_go_before_the_instance_closes_it(app):
    """A request nginx sends on a connection the instance is closing fails; nginx may not send a POST again."""
    (upstream,) = re.findall(r"^upstream \w+ \{(.*?)^\}", _template(), re.S | re.M)
    (idle,) = re.findall(r"^\s*keepalive_timeout (\d+)s;", upstream, re.M)
    assert 0 < int(idle) < app.config.KEEP_ALIVE_TIMEOUT  # the instances' own (Sanic's), app/server.py


# ---------------------------------------------------------------- the bucket


def _stub_mc(bin_dir: Path) -> Path:
    """An `mc` that records its arguments; `policy attach` and `user info` answer from the environment."""
    log = bin_dir / "mc.log"
    script = bin_dir / "mc"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{log}"\n'
        'case "$*" in\n'
        '  "admin policy attach "*) exit "${STUB_ATTACH_RC:-0}" ;;\n'
        '  "admin user info "*) printf "%s\\n" "${STUB_USER_INFO:-}" ;;\n'
        "esac\n"
    )
    script.chmod(0o755)
    return log


def _run_minio_init(tmp_path: Path, dotenv: dict[str, str], **stub: str) -> tuple[int, list[str]]:
    init = _resolved(dotenv)["services"]["minio-init"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = _stub_mc(bin_dir)
    log.write_text("")
    env = {**{k: str(v) for k, v in init["environment"].items()}, **stub}
    env |= {"PATH": f"{bin_dir}:/usr/bin:/bin", "TMPDIR": str(tmp_path)}
    done = subprocess.run([*init["entrypoint"], *init["command"]], env=env, capture_output=True, timeout=30)
    return done.returncode, log.read_text().splitlines()


def test_minio_init_creates_the_bucket_the_instances_use_and_a_user_for_it_alone(tmp_path):
    dotenv = {**DOTENV, "STORAGE_S3_BUCKET": "city-materials"}
    env = _instance_env(dotenv)
    bucket, key, secret = env["STORAGE_S3_BUCKET"], env["STORAGE_S3_ACCESS_KEY"], env["STORAGE_S3_SECRET_KEY"]
    assert bucket == "city-materials"
    code, calls = _run_minio_init(tmp_path, dotenv)
    assert code == 0, calls
    alias = calls[0].split()
    assert alias[:3] == ["alias", "set", "zd"] and alias[3] == env["STORAGE_S3_ENDPOINT"]
    assert alias[4:] == [DOTENV["MINIO_ROOT_USER"], DOTENV["MINIO_ROOT_PASSWORD"]]
    assert f"mb --ignore-existing zd/{bucket}" in calls  # idempotent: an existing bucket is kept
    assert f"admin user add zd {key} {secret}" in calls
    (created,) = [c.split() for c in calls if c.startswith("admin policy create zd ")]
    policy_name, policy = created[4], json.loads(Path(created[5]).read_text())
    assert f"admin policy attach zd {policy_name} --user {key}" in calls
    resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
    assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}  # that bucket only
    actions = {a for statement in policy["Statement"] for a in statement["Action"]}
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"} <= actions
    assert not [a for a in actions if not a.startswith("s3:") or "*" in a]


def test_minio_init_runs_again_where_the_policy_is_already_attached(tmp_path):
    # MinIO answers an attach that changes nothing with an error: the script checks the user instead
    code, _ = _run_minio_init(tmp_path, DOTENV, STUB_ATTACH_RC="1", STUB_USER_INFO="PolicyName: zuiduo-materials")
    assert code == 0
    code, _ = _run_minio_init(tmp_path, DOTENV, STUB_ATTACH_RC="1", STUB_USER_INFO="PolicyName: readonly")
    assert code != 0  # a real failure to attach still stops the stack


# ---------------------------------------------------------------- state and images


def test_no_service_but_the_database_and_minio_keeps_state_in_a_volume():
    compose = _compose()
    keeping = {}
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            parts = volume.split(":")
            if not (parts[0].startswith(("./", "/")) and parts[-1] == "ro"):  # read-only files of ours are no state
                keeping.setdefault(name, []).append(parts[0])
    assert keeping == {"db": ["pgdata"], "minio": ["minio-data"]}
    assert set(compose["volumes"]) == {"pgdata", "minio-data"}
    # Redis keeps nothing on disk either (README "Production": what a restart loses)
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--save") + 1] == "" and command[command.index("--appendonly") + 1] == "no"


def test_every_image_we_do_not_build_is_pinned_by_a_tag():
    for name, service in _compose()["services"].items():
        if "build" in service:
            continue
        image = service["image"]
        repository, _, tag = image.partition("@")[0].rpartition(":")
        assert repository and tag and tag != "latest" and "/" not in tag, (name, image)
