"""Two instances behind nginx behave as one (issue 22): PostgreSQL, Redis and a local S3 server shared.

The instances are separate `python -m app run` processes with two workers each, started at the same moment on an
empty database; nginx (Debian's) balances over them with `deploy/nginx/zuiduo.conf.template`. Steps that show a
cross-instance effect write through one instance's own address and read through the other's, so the balancer's
choice cannot hide a miss. The last test kills one instance during a load of submissions and prints the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.jobs import LEASE_SECONDS, LEASE_TICK
from auth.idcard import make_id_number
from tests.conftest import BACKEND, REDIS_URL
from tests.e2e import h5
from tests.e2e.cluster import NGINX, Cluster, running_cluster
from tests.e2e.conftest import ROOT, Server
from tests.e2e.staff_login import staff_bearer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("cluster"),  # one cluster per run: these tests share it, in this order
    pytest.mark.skipif(BACKEND != "postgres" or not REDIS_URL, reason="two instances share PostgreSQL and Redis"),
]
REDIS_DB = 6  # the cluster's own Redis database (tests/e2e use 7-12; the suites 13-15)
MATTER = "4308-XK-SS-003"  # the demo matter applied for online: a PDF form and an ID photo
SEEN_WITHIN = 2.0  # seconds: a publish or a retarget through one instance, served by the other
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """The two instances, nginx, the local S3 server and the fakes; stopped after the module."""
    assert Path(NGINX).exists(), "nginx is missing: scripts/test.sh installs Debian's package"
    assert REDIS_URL
    with running_cluster(tmp_path_factory.mktemp("cluster"), REDIS_URL.rsplit("/", 1)[0] + f"/{REDIS_DB}") as running:
        yield running


def _psql(cluster: Cluster, query: str) -> list[list[str]]:
    """Rows of a query on the cluster's database (psql, tab-separated)."""
    out = subprocess.run(["psql", cluster.database_url, "-AtF", "\t", "-c", query], capture_output=True, text=True,
                         check=True, timeout=30).stdout  # fmt: skip
    return [line.split("\t") for line in out.splitlines() if line]


def _staff(cluster: Cluster, role: str, **scope: str) -> dict[str, str]:
    """A new staff account (CLI), signed in through the balancer: its bearer header."""
    username, password = f"{role}-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(12)
    extra = [arg for key, value in scope.items() for arg in (f"--{key}", value)]
    cluster.cli("staff", "create", "--role", role, "--username", username, *extra, "--password-stdin",
                stdin=password + "\n")  # fmt: skip
    return staff_bearer(cluster.url, username, password)


def _citizens(cluster: Cluster, count: int) -> list[dict[str, str]]:
    """Bearer headers of new citizens at LoA 2 (dev tokens, signed for the balancer's address)."""
    tokens = cluster.cli("dev", "token", "--citizens", str(count), "--loa", "2").split()
    return [{"Authorization": f"Bearer {t}"} for t in tokens[-count:]]


def _sms_code(cluster: Cluster, phone: str, timeout: float = 10) -> str:
    """The newest sign-in code the gateway received for the phone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for call in reversed(cluster.sms.received):
            found = re.search(r"验证码为 (\d{6})", call.text)
            if call.phone == phone and found:
                return found.group(1)
        time.sleep(0.05)
    raise AssertionError(f"no code sent to {phone}")


def _until(condition, timeout: float) -> float:
    """Seconds until condition() holds; fails after timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


def _every_worker_sees(url: str, check, reads: int = 12) -> bool:
    """`reads` requests on new connections (spread over the instance's two workers) all pass the check."""
    return all(check(httpx.get(url, headers={"Accept": "application/json"}, timeout=5)) for _ in range(reads))


def test_started_together_they_migrate_and_load_the_demo_once(cluster: Cluster):
    logs = [server.log.read_text(errors="replace") for server in cluster.instances]
    applied = [re.findall(r"applied migration ([\w.]+)", log) for log in logs]
    migrations = sorted(p.stem for p in (ROOT / "app" / "migrations").glob("[0-9][0-9][0-9][0-9]_*.py"))
    assert sorted(len(a) for a in applied) == [0, len(migrations)], applied  # one instance applied all, one none
    assert sorted(name.rsplit(".", 1)[-1] for names in applied for name in names) == migrations
    loaded = [int(n) for log in logs for n in re.findall(r"demo catalogue loaded: (\d+) matters", log)]
    assert len(loaded) == 1 and loaded[0] > 0
    rows = _psql(cluster, "SELECT name, count(*) FROM tortoise_migrations GROUP BY name HAVING count(*) > 1")
    assert rows == []
    waited = sum("another migration run holds the lock" in log for log in logs)
    codes = _psql(cluster, "SELECT count(*), count(DISTINCT code) FROM matter")
    assert codes == [[str(loaded[0]), str(loaded[0])]]
    print(f"started together: migrations applied by one instance ({len(migrations)}), "
          f"{waited} waited for the lock; demo catalogue loaded once ({loaded[0]} matters)")  # fmt: skip


def test_a_citizen_signed_in_through_one_instance_is_signed_in_on_the_other(cluster: Cluster):
    one, other = cluster.instances
    phone = h5.new_phone()
    browser = httpx.Client(follow_redirects=False, timeout=10)
    page = browser.get(one.url + "/m/login?sms=1")
    csrf = CSRF.search(page.text).group(1)
    sent = browser.post(one.url + "/m/login/code", data={"csrf": csrf, "phone": phone, "next": "/m/me"})
    assert sent.status_code == 200, sent.text
    # The code sent through the first instance is checked by the second: codes live in Redis.
    form = {"csrf": csrf, "phone": phone, "otp": _sms_code(cluster, phone), "next": "/m/me"}
    signed = browser.post(other.url + "/m/login", data=form)
    assert signed.status_code == 303, signed.text
    me = browser.get(one.url + "/m/me")
    assert me.status_code == 200 and h5.masked(phone) in me.text
    # Signed out through the first, the session is refused by the second's every worker within the cache tick.
    out = browser.post(one.url + "/m/logout", data={"csrf": csrf})
    assert out.status_code == 303
    cookies = {name: value for name, value in me.request.headers.items() if name == "cookie"}
    took = _until(lambda: all(httpx.get(other.url + "/m/me", headers=cookies).status_code in (302, 303)
                              for _ in range(8)), SEEN_WITHIN + 1)  # fmt: skip
    print(f"signed out through one instance: refused by the other after {took:.2f} s")


def test_a_material_uploaded_through_one_instance_is_previewed_through_the_other(cluster: Cluster):
    one, other = cluster.instances
    (citizen,) = _citizens(cluster, 1)
    guide = httpx.get(f"{cluster.url}/api/v1/matters/{MATTER}").json()
    sent, materials = {}, []
    for spec in guide["materials"]:
        photo = "jpg" in spec["file_types"]
        data, name = (h5.small_jpeg(), "证.jpg") if photo else (h5.one_page_pdf(uuid.uuid4().hex), "申请书.pdf")
        up = httpx.post(f"{one.url}/api/v1/uploads", headers=citizen, files={"file": (name, data)})
        assert up.status_code == 201, up.text
        sent[up.json()["id"]] = data
        materials.append({"name": spec["name"], "upload_ids": [up.json()["id"]]})
    body = {"matter_code": MATTER, "applicant": {"kind": "self", "name": "赵六", "id_number": make_id_number()},
            "form": {}, "materials": materials, "delivery": {"method": "window"}}  # fmt: skip
    case = httpx.post(f"{one.url}/api/v1/cases", json=body, headers={**citizen, "Idempotency-Key": uuid.uuid4().hex})
    assert case.status_code == 201, case.text
    reviewer = _staff(cluster, "reviewer", department=guide["department"]["code"])
    for upload_id, data in sent.items():
        got = httpx.get(f"{other.url}/api/v1/staff/cases/{case.json()['case_no']}/materials/{upload_id}",
                        headers=reviewer)  # fmt: skip
        assert got.status_code == 200, got.text
        assert got.content == data
    for i in range(2):  # neither instance kept a file of its own
        assert not [p for p in (cluster.workdir / f"uploads{i}").rglob("*") if p.is_file()]


def test_a_guide_published_and_a_code_retargeted_through_one_are_served_by_the_other_within_2_s(cluster: Cluster):
    one, other = cluster.instances
    admin = _staff(cluster, "admin")
    items = httpx.get(cluster.url + "/api/v1/matters", params={"page_size": 2}).json()["items"]
    first, second = items[0]["code"], items[1]["code"]
    guide_url = f"{other.url}/api/v1/matters/{first}"
    version = httpx.get(guide_url).json()["version"]
    assert _every_worker_sees(guide_url, lambda r: r.json()["version"] == version)  # cached on both workers
    content = httpx.get(f"{one.url}/api/v1/admin/matters/{first}/versions/{version}", headers=admin).json()["content"]
    content["summary"] = f"新版本 {uuid.uuid4().hex[:6]}"
    draft = httpx.put(f"{one.url}/api/v1/admin/matters/{first}/draft", json={"content": content}, headers=admin)
    assert draft.status_code == 200, draft.text
    no = draft.json()["version"]["no"]
    published = httpx.post(f"{one.url}/api/v1/admin/matters/{first}/versions/{no}/publish", headers=admin)
    assert published.status_code == 200, published.text
    guide_took = _until(lambda: _every_worker_sees(guide_url, lambda r: r.json()["version"] == no), SEEN_WITHIN)

    slug = httpx.get(f"{one.url}/api/v1/matters/{first}").json()["links"]["qr"]["slug"]
    scan_url = f"{other.url}/q/{slug}"
    assert _every_worker_sees(scan_url, lambda r: r.json()["matter"]["code"] == first)
    moved = httpx.patch(f"{one.url}/api/v1/admin/codes/{slug}", json={"matter_code": second}, headers=admin)
    assert moved.status_code == 200, moved.text
    code_took = _until(lambda: _every_worker_sees(scan_url, lambda r: r.json()["matter"]["code"] == second),
                       SEEN_WITHIN)  # fmt: skip
    print(f"through one instance, served by the other: guide v{no} after {guide_took:.2f} s, "
          f"code retargeted after {code_took:.2f} s")  # fmt: skip


def _metric_sum(cluster: Cluster, name: str, labels: str) -> float:
    """A metric's value summed over both instances (each sums its own workers)."""
    total = 0.0
    for server in cluster.instances:
        text = httpx.get(server.url + "/metrics", timeout=5).text
        found = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
        total += float(found.group(1)) if found else 0.0
    return total


def test_cluster_jobs_run_once_across_both_instances(cluster: Cluster):
    # Four workers started together each tried the hourly housekeeping at once: one ran it.
    assert _metric_sum(cluster, "app_job_runs_total", 'job="housekeeping"') == 1
    up_for = time.monotonic() - cluster.started_at
    no_shows = _metric_sum(cluster, "app_job_runs_total", 'job="booking-no-shows"')
    assert 1 <= no_shows <= up_for // 60 + 1, (no_shows, up_for)  # once a minute, not four times
    leases = _psql(cluster, "SELECT name, owner FROM job_lease ORDER BY name")
    assert [name for name, _ in leases] == ["booking-no-shows", "housekeeping"]


def test_the_outbox_drained_by_both_instances_sends_each_message_once(cluster: Cluster):
    citizens = _citizens(cluster, 6)
    guide = httpx.get(f"{cluster.url}/api/v1/matters/{MATTER}").json()
    before = len(cluster.sms.received)
    started = _psql(cluster, "SELECT now()")[0][0]
    cases = []
    for n in range(30):  # through the balancer: both instances write cases and their notifications
        citizen = citizens[n % len(citizens)]
        materials = []
        for spec in guide["materials"]:
            photo = "jpg" in spec["file_types"]
            data = h5.small_jpeg() if photo else h5.one_page_pdf(uuid.uuid4().hex)
            up = httpx.post(f"{cluster.url}/api/v1/uploads", headers=citizen, files={"file": ("f", data)})
            assert up.status_code == 201, up.text
            materials.append({"name": spec["name"], "upload_ids": [up.json()["id"]]})
        body = {"matter_code": MATTER, "applicant": {"kind": "self", "name": "赵六", "id_number": make_id_number()},
                "form": {}, "materials": materials, "delivery": {"method": "window"}}  # fmt: skip
        r = httpx.post(f"{cluster.url}/api/v1/cases", json=body,
                       headers={**citizen, "Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
        assert r.status_code == 201, r.text
        cases.append(r.json()["case_no"])
    ids = {row[0] for row in _psql(cluster, f"SELECT id FROM notification WHERE created_at >= '{started}'")}
    assert len(ids) >= len(cases)
    _until(lambda: ids <= {c.key for c in cluster.sms.received[before:]}, 30)
    time.sleep(2)  # two more delivery ticks of all four workers: a second send would show now
    sent = Counter(c.key for c in cluster.sms.received[before:] if c.key in ids)
    assert set(sent.values()) == {1}, [k for k, n in sent.items() if n > 1]
    statuses = _psql(cluster, f"SELECT status, count(*) FROM notification WHERE id::text IN "
                              f"({','.join(repr(i) for i in ids)}) GROUP BY status")  # fmt: skip
    assert statuses == [["sent", str(len(ids))]]
    print(f"outbox: {len(ids)} notifications written by both instances, each sent once")


async def _load(cluster: Cluster, matter: str, citizens: list[dict[str, str]], seconds: float,
                kill_after: float, victim: Server) -> dict[str, Any]:  # fmt: skip
    """Submissions through the balancer from 16 clients; one instance killed (SIGKILL, every process) meanwhile.

    A client retries a failed submission (a 5xx, a broken connection, a claim still in flight) with the same
    Idempotency-Key until it is answered, as the mini program does.
    """
    answered: dict[str, tuple[int, str, float]] = {}  # key -> (status, case_no, when)
    errors: list[tuple[float, str]] = []  # (when, what)
    guide_reads: Counter[int] = Counter()
    stop_at = time.monotonic() + seconds
    killed_at: list[float] = []

    replays = 0

    async def client(n: int, http: httpx.AsyncClient) -> None:
        nonlocal replays
        k = 0
        while time.monotonic() < stop_at:
            k += 1
            key = f"failover-{n}-{k}-{uuid.uuid4().hex[:8]}"
            body = {"matter_code": matter, "applicant": {"kind": "self", "name": "张三", "id_number": make_id_number()},
                    "form": {"purpose": "failover", "client": n, "k": k}, "delivery": {"method": "window"}}  # fmt: skip
            headers = {**citizens[n % len(citizens)], "Idempotency-Key": key}
            deadline = time.monotonic() + 90
            while True:
                try:
                    r = await http.post("/api/v1/cases", json=body, headers=headers)
                    if r.status_code == 201:
                        answered[key] = (r.status_code, r.json()["case_no"], time.time())
                        replays += r.headers.get("idempotent-replayed") == "true"
                        break
                    # Whoever answered (an instance or the balancer), the error is the service's JSON shape.
                    code = r.json()["error"]["code"]
                    errors.append((time.time(), f"{r.status_code} {code}"))
                    assert r.status_code >= 500 or code == "IDEMPOTENCY_IN_FLIGHT", r.text  # nothing else is retried
                except httpx.TransportError as exc:
                    errors.append((time.time(), type(exc).__name__))
                assert time.monotonic() < deadline, f"{key} not answered within 90 s"
                await asyncio.sleep(0.2)
            if k % 3 == 0:
                guide_reads[(await http.get(f"/api/v1/matters/{matter}")).status_code] += 1

    async def killer() -> None:
        await asyncio.sleep(kill_after)
        killed_at.append(time.time())
        os.killpg(victim.proc.pid, signal.SIGKILL)  # the main process and its workers: a host gone

    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=cluster.url, timeout=30, limits=limits) as http:
        await asyncio.gather(killer(), *(client(n, http) for n in range(16)))
    return {"answered": answered, "errors": errors, "killed_at": killed_at[0], "guide_reads": guide_reads,
            "replays": replays}  # fmt: skip


def _no_material_matter(cluster: Cluster, admin: dict[str, str]) -> str:
    """A copy of the demo matter's guide without required materials (online, LoA 2), published: its code."""
    code = "CLUSTER-APPLY-001"
    template = httpx.get(f"{cluster.url}/api/v1/matters/{MATTER}").json()
    content = httpx.get(f"{cluster.url}/api/v1/admin/matters/{MATTER}/versions/{template['version']}",
                        headers=admin).json()["content"]  # fmt: skip
    content.update(name="集群测试：网上申报（无必需材料）", booking=False,
                   materials=[m for m in content.get("materials") or [] if not m.get("required", True)])  # fmt: skip
    created = httpx.post(f"{cluster.url}/api/v1/admin/matters", json={"code": code, "content": content}, headers=admin)
    assert created.status_code == 201, created.text
    no = created.json()["version"]["no"]
    published = httpx.post(f"{cluster.url}/api/v1/admin/matters/{code}/versions/{no}/publish", headers=admin)
    assert published.status_code == 200, published.text
    return code


def test_one_instance_killed_during_load_loses_nothing(cluster: Cluster):
    victim = cluster.instances[0]
    matter = _no_material_matter(cluster, _staff(cluster, "admin"))
    citizens = _citizens(cluster, 16)
    log_from = len(cluster.nginx.entries())
    load = asyncio.run(_load(cluster, matter, citizens, seconds=10, kill_after=3, victim=victim))
    answered, errors, killed_at = load["answered"], load["errors"], load["killed_at"]

    # Every 201 (or its replay) has its case, and each key made exactly one.
    query = f"SELECT case_no, form->>'client', form->>'k' FROM case_record WHERE matter_code = '{matter}'"
    rows = _psql(cluster, query)
    case_nos = {row[0] for row in rows}
    assert {case_no for _, case_no, _ in answered.values()} == case_nos
    assert len(case_nos) == len(rows) == len(answered)
    assert len({(client, k) for _, client, k in rows}) == len(rows)
    assert set(load["guide_reads"]) == {200}

    entries = [e for e in cluster.nginx.entries()[log_from:] if e.path.startswith("/api/v1/")]
    by_instance = Counter(cluster.instance_of(e.upstreams[-1]) for e in entries if e.upstreams[-1] != "-")
    before = [e for e in entries if e.at < killed_at]
    after = [e for e in entries if e.at >= killed_at]
    retried = sum(len(e.upstreams) > 1 for e in after)  # nginx moved the request to the survivor itself
    to_victim = [e.at for e in after if any(u.endswith(f":{victim.port}") for u in e.upstreams)]
    last_error = max((at for at, _ in errors), default=killed_at)

    def served(part: list) -> dict[int, int]:
        return dict(Counter(cluster.instance_of(e.upstreams[-1]) for e in part if e.upstreams[-1] != "-"))

    figures = {
        "answered_by_instance_before_kill": served(before),
        "answered_by_instance_after_kill": served(after),
        "requests": len(entries),
        "by_instance": dict(by_instance),
        "submissions_answered": len(answered),
        "replays_after_retry": load["replays"],
        "client_errors": dict(Counter(what for _, what in errors)),
        "nginx_moved_to_survivor": retried,
        "victim_probed_until_s": round(max(to_victim, default=killed_at) - killed_at, 2),
        "recovered_after_s": round(max(0.0, last_error - killed_at), 2),
    }
    # The cluster jobs go on: the survivor's workers hold their leases within LEASE_SECONDS of the last renewal.
    survivor = cluster.instances[1]
    pids = subprocess.run(["pgrep", "-P", str(survivor.proc.pid)], capture_output=True, text=True).stdout.split()

    def jobs_on_survivor() -> bool:
        owners = [owner for _, owner in _psql(cluster, "SELECT name, owner FROM job_lease")]
        return len(owners) == 2 and all(owner.split("-")[0] in pids for owner in owners)

    _until(jobs_on_survivor, LEASE_SECONDS + 2 * LEASE_TICK)
    figures["cluster_jobs_on_survivor_after_s"] = round(time.time() - killed_at, 1)
    (cluster.workdir / "failover.json").write_text(json.dumps(figures, indent=2))
    print("failover figures: " + json.dumps(figures, ensure_ascii=False))
    assert figures["answered_by_instance_before_kill"].get(0) and figures["answered_by_instance_before_kill"].get(1)
    assert not figures["answered_by_instance_after_kill"].get(0)  # nothing answered by the dead instance
    assert figures["answered_by_instance_after_kill"].get(1, 0) > 50  # the survivor carried on
    assert figures["recovered_after_s"] < 10  # then no client saw an error again
    # A submission cut off with its instance left no claim behind: its retry was answered at once, never 409.
    assert not [what for _, what in errors if what.startswith("409")]

    # The instance comes back on its address: nginx sends it requests again within its fail_timeout (3 s).
    cluster.instances[0] = back = Server(cluster.env(0), cluster.workdir / "instance0-again.log", port=victim.port,
                                         base_url=cluster.url)  # fmt: skip
    back.wait_ready()
    mark = len(cluster.nginx.entries())

    def rejoined() -> bool:
        httpx.get(cluster.url + "/healthz")
        return any(cluster.instance_of(e.upstreams[-1]) == 0 for e in cluster.nginx.entries()[mark:])

    took = _until(rejoined, 10)
    print(f"restarted instance serving through nginx again {took:.2f} s after it was ready")
