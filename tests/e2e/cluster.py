"""Two service instances behind Debian's nginx, sharing PostgreSQL, Redis and a local S3 server.

Each instance is its own `python -m app run` (two workers, its own port, its own UPLOAD_DIR), both with the
balancer's address as BASE_URL, as two hosts behind one address would be. nginx runs with the project's own
`deploy/nginx/zuiduo.conf.template` (the file compose.yaml mounts), rendered with the instances' addresses, under a
minimal main configuration of its own prefix directory. Used by tests/e2e/test_cluster.py and scripts/cluster.py.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.e2e.conftest import ROOT, Server, free_port
from tests.fakes.s3 import ACCESS_KEY, REGION, SECRET_KEY, LocalS3
from tests.fakes.sms import FakeSmsGateway
from tests.fakes.wechat import FakeWeChat

TEMPLATE = ROOT / "deploy" / "nginx" / "zuiduo.conf.template"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
_PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")


def render_template(text: str, values: dict[str, str]) -> str:
    """Substitute `${NAME}` for the names given, as the nginx image's envsubst does; nginx's `$vars` stay."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


@dataclass(frozen=True)
class LbEntry:
    """One line of the balancer's access log: which instance answered what, when."""

    at: float  # epoch seconds (nginx's $msec)
    status: int
    upstreams: tuple[str, ...]  # every instance nginx tried, in order
    upstream_statuses: tuple[str, ...]
    seconds: float
    method: str
    path: str


class Nginx:
    """Debian's nginx in the foreground with its own prefix directory, serving the project's template."""

    def __init__(self, workdir: Path, upstreams: list[str], forwarded_secret: str) -> None:
        """Render the configuration (not started yet)."""
        self.dir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.access_log = workdir / "access.log"
        self.error_log = workdir / "error.log"
        for sub in ("conf.d", "tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        values = {"APP_UPSTREAM_1": upstreams[0], "APP_UPSTREAM_2": upstreams[1],
                  "LISTEN_PORT": f"127.0.0.1:{self.port}", "FORWARDED_SECRET": forwarded_secret,
                  "LB_ACCESS_LOG": str(self.access_log)}  # fmt: skip
        rendered = render_template(TEMPLATE.read_text(), values)
        assert "${" not in re.sub(r"#.*", "", rendered), "a placeholder of the template was left unset"
        (workdir / "conf.d" / "zuiduo.conf").write_text(rendered)
        tmp = workdir / "tmp"
        # As root, nginx's workers would drop to `nobody`, who cannot enter pytest's private directories.
        user = "user root;\n" if os.geteuid() == 0 else ""
        (workdir / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {workdir / 'nginx.pid'};\nerror_log {self.error_log} warn;\n"
            "daemon off;\nevents { worker_connections 4096; }\n"
            f"http {{\n  client_body_temp_path {tmp / 'body'};\n  proxy_temp_path {tmp / 'proxy'};\n"
            f"  fastcgi_temp_path {tmp / 'fastcgi'};\n  uwsgi_temp_path {tmp / 'uwsgi'};\n"
            f"  scgi_temp_path {tmp / 'scgi'};\n  include {workdir / 'conf.d' / 'zuiduo.conf'};\n}}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        """Check the configuration, start nginx and wait until it accepts connections."""
        args = [NGINX, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"), "-e", str(self.error_log)]
        checked = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.error_log.read_text(errors='replace')[-2000:]}")
            try:
                httpx.get(self.url + "/healthz", timeout=2)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start")

    def entries(self) -> list[LbEntry]:
        """The access log so far."""
        if not self.access_log.exists():
            return []
        out = []
        for line in self.access_log.read_text(errors="replace").splitlines():
            found = re.fullmatch(r'(\S+) (\d+) (.+?) (\S+(?:, \S+)*|-) (\S+) "(\S+) (\S+)"', line)
            if not found:
                continue
            at, status, ups, ups_status, seconds, method, path = found.groups()
            upstreams = tuple(u.strip() for u in ups.split(","))
            statuses = tuple(s.strip() for s in ups_status.split(","))
            out.append(LbEntry(float(at), int(status), upstreams, statuses, float(seconds), method, path))
        return out

    def stop(self) -> None:
        """Stop nginx (QUIT lets it finish requests; KILL after 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@dataclass
class Cluster:
    """Two instances and their balancer, with the fakes they talk to and the shared stores' addresses."""

    workdir: Path
    database_url: str
    redis_url: str
    s3: LocalS3
    bucket: str
    sms: FakeSmsGateway
    wechat: FakeWeChat
    forwarded_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    instances: list[Server] = field(default_factory=list)
    nginx: Nginx | None = None
    started_at: float = 0.0

    @property
    def url(self) -> str:
        """The balancer's address: what citizens and staff use, and every instance's BASE_URL."""
        assert self.nginx is not None
        return self.nginx.url

    def env(self, index: int) -> dict[str, str]:
        """One instance's environment: everything shared except its port and its own upload directory."""
        assert self.nginx is not None
        from tests.e2e import h5

        # /metrics sums the instance's workers (as in production); a restarted instance starts a new directory.
        metrics = self.workdir / f"metrics{index}-{time.monotonic_ns()}"
        metrics.mkdir(parents=True)
        return {
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            "APP_ENV": "development", "LOAD_DEMO": "true", "AUTO_MIGRATE": "true", "WORKERS": "2",
            "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url, "BASE_URL": self.nginx.url,
            "ACCESS_LOG": "false", "FORWARDED_SECRET": self.forwarded_secret,
            "SMS_SENDER": "http", "SMS_GATEWAY_URL": self.sms.url, "REALNAME_VERIFIER": "dev",
            "UPLOAD_DIR": str(self.workdir / f"uploads{index}"),
            "STORAGE_BACKEND": "s3", "STORAGE_S3_ENDPOINT": self.s3.url, "STORAGE_S3_BUCKET": self.bucket,
            "STORAGE_S3_REGION": REGION, "STORAGE_S3_ACCESS_KEY": ACCESS_KEY, "STORAGE_S3_SECRET_KEY": SECRET_KEY,
            **h5.wechat_env(self.wechat),
        }  # fmt: skip

    def start(self) -> Cluster:
        """Start both instances at the same moment on the (empty) database, then the balancer in front."""
        ports = [free_port(), free_port()]
        self.nginx = Nginx(self.workdir / "nginx", [f"127.0.0.1:{p}" for p in ports], self.forwarded_secret)
        self.started_at = time.monotonic()
        self.instances = [
            Server(self.env(i), self.workdir / f"instance{i}.log", port=ports[i], base_url=self.nginx.url)
            for i in range(2)
        ]
        for server in self.instances:
            server.wait_ready()
        self.nginx.start()
        return self

    def instance_of(self, upstream: str) -> int:
        """Which instance (0 or 1) an nginx upstream address is."""
        return next(i for i, s in enumerate(self.instances) if upstream.endswith(f":{s.port}"))

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """`python -m app ...` against the cluster's database, for the balancer's address; its stdout."""
        import sys

        proc = subprocess.run(
            [sys.executable, "-m", "app", *args], input=stdin, text=True, capture_output=True, timeout=120, cwd=ROOT,
            env={**os.environ, "APP_ENV": "development", "DATABASE_URL": self.database_url, "BASE_URL": self.url,
                 "REDIS_URL": self.redis_url},
        )  # fmt: skip
        assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def stop(self) -> None:
        """Stop the balancer and both instances."""
        if self.nginx is not None:
            self.nginx.stop()
        for server in self.instances:
            server.stop()


@contextmanager
def running_cluster(workdir: Path, redis_url: str) -> Iterator[Cluster]:
    """A started cluster: a scratch database, a flushed Redis db, a local S3 server, the fakes; all stopped after."""
    import redis

    from tests.conftest import scratch_pg_database

    redis.Redis.from_url(redis_url).flushdb()
    with (
        scratch_pg_database("zuiduo_cluster") as database_url,
        LocalS3() as s3,
        FakeSmsGateway() as sms,
        FakeWeChat() as wechat,
    ):
        cluster = Cluster(workdir, database_url, redis_url, s3, s3.new_bucket(), sms, wechat)
        try:
            yield cluster.start()
        finally:
            cluster.stop()
