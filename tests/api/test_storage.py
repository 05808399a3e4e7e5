"""Material storage on both backends: the local directory and an S3-compatible store (moto, started by the tests).

Upload, download by the case's reviewer, the sweep of expired uploads, streaming of a 20 MB file,
server-side encryption and readiness, each against `STORAGE_BACKEND=local` and `STORAGE_BACKEND=s3`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import subprocess
import sys
import tracemalloc
import uuid
from collections.abc import AsyncIterator

import pytest

from app.cases import uploads as upload_service
from app.cases.models import Upload
from app.matters import service as matters
from app.settings import Settings, SettingsError
from app.storage import MaterialMissing, MaterialStore, content_key, make_material_store
from auth.logins import issue_for_staff
from tests.api import case_helpers as h
from tests.fakes.s3 import ACCESS_KEY, REGION, SECRET_KEY

UPLOADS = "/api/v1/uploads"
MiB = 1024 * 1024


def s3_settings(base: Settings, server, bucket: str | None = None, **changes: object) -> Settings:
    """Settings whose material store is a fresh bucket of the local S3 server."""
    return base.replace(
        storage_backend="s3",
        storage_s3_endpoint=server.url,
        storage_s3_bucket=bucket or server.new_bucket(),
        storage_s3_region=REGION,
        storage_s3_access_key=ACCESS_KEY,
        storage_s3_secret_key=SECRET_KEY,
        **changes,
    )


@pytest.fixture(params=["local", "s3"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def settings(base_settings, tmp_path, backend, request):
    """Per test: a private upload directory (local) or a private bucket (s3)."""
    local = base_settings.replace(upload_dir=tmp_path / "uploads")
    if backend == "local":
        return local
    return s3_settings(local, request.getfixturevalue("s3_server"))


@pytest.fixture
def materials(client) -> MaterialStore:
    return client.sanic_app.ctx.services.materials


@pytest.fixture
async def world(fake_clock, client, make_citizen, make_staff):
    await matters.import_catalogue(client.sanic_app.ctx.catalogue, data=h.catalogue())
    _, citizen = await make_citizen()
    reviewer, api = await make_staff("reviewer", departments=["scjgj"])
    return dataclasses.make_dataclass("World", ["client", "citizen", "reviewer", "api"])(client, citizen, reviewer, api)


async def read(store: MaterialStore, key: str) -> bytes:
    opened = await store.open(key)
    data = b"".join([c async for c in opened.chunks])
    assert len(data) == opened.size
    return data


async def stored_keys(store: MaterialStore) -> set[str]:
    return {k async for k in store.iter_keys()}


def object_head(settings: Settings, s3_server, key: str) -> dict:
    return s3_server.client().head_object(Bucket=settings.storage_s3_bucket, Key=key)


async def upload(client, headers, data: bytes, name: str) -> dict:
    _, r = await client.post(UPLOADS, headers=headers, files={"file": (name, data, "application/octet-stream")})
    assert r.status_code == 201, r.text
    return r.json


# -- the interface, on both backends -------------------------------------------------------------------


async def test_the_store_puts_streams_moves_and_deletes_by_key(settings):
    store = make_material_store(settings)
    assert store.backend == settings.storage_backend
    await store.ping()
    key = content_key("ab" * 32)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            yield bytes([i]) * 1000

    assert not await store.exists(key)
    assert await store.put_stream(key, chunks()) == 3000
    assert await store.exists(key)
    assert await read(store, key) == b"\x00" * 1000 + b"\x01" * 1000 + b"\x02" * 1000
    assert await stored_keys(store) == {key}
    assert await store.move(key, key + ".gone") is True
    assert await store.move(key, key + ".gone") is False
    assert await stored_keys(store) == {key + ".gone"}
    await store.delete(key + ".gone")
    await store.delete(key + ".gone")  # absent: nothing happens
    assert await stored_keys(store) == set()
    with pytest.raises(MaterialMissing):
        await store.open(key)
    await store.aclose()


async def test_an_upload_is_stored_once_at_its_content_address(client, settings, materials, make_citizen, request):
    _, headers = await make_citizen()
    first = await upload(client, headers, h.PDF, "a.pdf")
    again = await upload(client, headers, h.PDF, "b.pdf")  # same bytes: same key, stored once
    sha = hashlib.sha256(h.PDF).hexdigest()
    assert first["sha256"] == again["sha256"] == sha
    assert await stored_keys(materials) == {f"{sha[:2]}/{sha[2:4]}/{sha}"}
    assert await read(materials, content_key(sha)) == h.PDF
    if settings.storage_backend == "local":  # today's layout, so existing data keeps working
        assert (settings.upload_dir / sha[:2] / sha[2:4] / sha).read_bytes() == h.PDF
        assert not list((settings.upload_dir / "tmp").iterdir())
    else:
        head = object_head(settings, request.getfixturevalue("s3_server"), content_key(sha))
        assert head["ServerSideEncryption"] == "AES256" and head["ContentLength"] == len(h.PDF)


async def test_a_refused_upload_leaves_nothing_in_the_store(client, materials, make_citizen):
    _, headers = await make_citizen()
    files = {"file": ("setup.pdf", b"MZ\x90\x00" + b"\x00" * 200, "application/octet-stream")}
    _, r = await client.post(UPLOADS, headers=headers, files=files)
    assert r.status_code == 422 and r.json["error"]["code"] == "FILE_TYPE_MISMATCH", r.text
    assert await stored_keys(materials) == set()
    if materials.backend == "local":
        assert not list(materials.scratch_dir().iterdir())


async def test_an_upload_over_the_limit_leaves_nothing_in_the_store(client, settings, materials, make_citizen):
    _, headers = await make_citizen()
    limit = settings.upload_max_bytes

    async def body() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n\r\n%PDF-1.7\n'
        for _ in range(limit // MiB + 2):
            yield b"%" * MiB
        yield b"\r\n--b--\r\n"

    multipart = {**headers, "Content-Type": "multipart/form-data; boundary=b"}
    _, r = await client.post(UPLOADS, headers=multipart, content=body())
    assert r.status_code == 413 and r.json["error"]["code"] == "UPLOAD_TOO_LARGE", r.text
    assert await stored_keys(materials) == set() and await Upload.all().count() == 0
    if materials.backend == "local":
        assert not list(materials.scratch_dir().iterdir())


# -- downloads go through our authorised routes --------------------------------------------------------


async def test_a_reviewer_downloads_a_material_a_citizen_uploaded(world, auth_deps, make_staff):
    client = world.client
    case = await h.submit(client, world.citizen)
    case_no = case["case_no"]
    by_name = {m["name"]: m["upload_id"] for m in case["materials"]}
    pdf_id, png_id = by_name[h.FORM], by_name[h.ID_CARD]

    _, r = await client.get(f"/api/v1/staff/cases/{case_no}/materials/{pdf_id}", headers=world.api)
    assert r.status_code == 200, r.text
    assert r.body == h.PDF and r.headers["content-type"] == "application/pdf"
    assert r.headers["content-length"] == str(len(h.PDF))
    assert r.headers["content-disposition"] == f'attachment; filename="{case_no}-{pdf_id}.pdf"'
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "private, no-store"

    pair = await issue_for_staff(auth_deps, staff=world.reviewer)  # the console, signed in by cookie
    client.cookies.set("zd_st", pair.access_token)
    _, page = await client.get(f"/console/cases/{case_no}/materials/{png_id}")
    assert page.status == 200 and page.body == h.PNG and page.headers["content-type"] == "image/png"
    assert page.headers["content-disposition"].startswith("inline")
    client.cookies.clear()

    _, other = await make_staff("reviewer", departments=["gjjzx"])
    _, r = await client.get(f"/api/v1/staff/cases/{case_no}/materials/{pdf_id}", headers=other)
    assert r.status_code in (403, 404) and r.body != h.PDF
    _, r = await client.get(f"/api/v1/staff/cases/{case_no}/materials/{pdf_id}")
    assert r.status_code == 401


async def test_a_material_whose_content_is_gone_is_404_not_500(world, materials):
    client = world.client
    case = await h.submit(client, world.citizen)
    upload_id = case["materials"][0]["upload_id"]
    row = await Upload.get(id=upload_id)
    await materials.delete(content_key(row.sha256))
    _, r = await client.get(f"/api/v1/staff/cases/{case['case_no']}/materials/{upload_id}", headers=world.api)
    assert r.status_code == 404 and r.json["error"]["code"] == "UPLOAD_NOT_FOUND", r.text


# -- the sweep ----------------------------------------------------------------------------------------


async def test_the_sweep_deletes_expired_unreferenced_content_and_keeps_what_a_case_holds(
    world, fake_clock, materials, auth_deps
):
    client = world.client
    lonely = b"%PDF-1.4\n% lonely\n%%EOF\n"
    case = await h.submit(client, world.citizen)  # h.PDF and h.PNG, held by the case
    unused = await upload(client, world.citizen, lonely, "unused.pdf")
    spare = await upload(client, world.citizen, h.PDF, "copy.pdf")  # the case's bytes, uploaded again
    fake_clock.advance(hours=25)

    assert await upload_service.sweep(client.sanic_app.ctx.cases) == 2
    api = {"Authorization": f"Bearer {(await issue_for_staff(auth_deps, staff=world.reviewer)).access_token}"}
    assert not await Upload.exists(id=unused["id"]) and not await Upload.exists(id=spare["id"])
    keys = await stored_keys(materials)
    assert content_key(unused["sha256"]) not in keys
    assert keys == {content_key(hashlib.sha256(d).hexdigest()) for d in (h.PDF, h.PNG)}
    _, r = await client.get(
        f"/api/v1/staff/cases/{case['case_no']}/materials/{case['materials'][0]['upload_id']}", headers=api
    )
    assert r.status_code == 200 and r.body == h.PDF
    assert await upload_service.sweep(client.sanic_app.ctx.cases) == 0


class _UploadDuringSweep:
    """A store that lets an upload of the same bytes record its row right after the sweep moved them aside."""

    def __init__(self, inner: MaterialStore, row: dict) -> None:
        self.inner, self.row, self.moves = inner, row, 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    async def move(self, key: str, to: str) -> bool:
        moved = await self.inner.move(key, to)
        self.moves += 1
        if self.moves == 1:
            await Upload.create(**self.row)
        return moved


async def test_the_sweep_puts_content_back_when_an_upload_of_it_arrives_meanwhile(
    client, settings, fake_clock, materials, make_citizen, request
):
    citizen, headers = await make_citizen()
    old = await upload(client, headers, h.PDF, "a.pdf")
    fake_clock.advance(hours=25)
    now = fake_clock()
    racing = _UploadDuringSweep(materials, {
        "id": uuid.uuid4(), "owner_id": citizen.id, "sha256": old["sha256"], "size": len(h.PDF), "file_type": "pdf",
        "filename": "b.pdf", "created_at": now, "expires_at": now + dt.timedelta(hours=24),
    })  # fmt: skip
    deps = dataclasses.replace(client.sanic_app.ctx.cases, materials=racing)

    assert await upload_service.sweep(deps) == 1
    assert racing.moves == 2  # aside, then back
    assert await stored_keys(materials) == {content_key(old["sha256"])}
    assert await read(materials, content_key(old["sha256"])) == h.PDF
    if settings.storage_backend == "s3":  # the server-side copies keep the encryption
        head = object_head(settings, request.getfixturevalue("s3_server"), content_key(old["sha256"]))
        assert head["ServerSideEncryption"] == "AES256"


# -- 20 MB, streamed both ways -------------------------------------------------------------------------


def _peak_rss_reset() -> int:
    """Reset the process's peak RSS (Linux) and return the current RSS in bytes."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


async def test_a_20_mb_upload_and_its_download_are_streamed_not_held(client, settings, materials, make_citizen):
    assert settings.upload_max_bytes == 20 * MiB
    _, headers = await make_citizen()
    block = b"%PDF-1.7\n" + bytes(range(256)) * 255 + b"\n"  # about 64 KiB
    size = 20 * MiB - 4096
    boundary = "storagetest20mb"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    sha = hashlib.sha256()

    async def body() -> AsyncIterator[bytes]:
        yield head
        sent = 0
        while sent < size:
            piece = block[: size - sent]
            sha.update(piece)
            sent += len(piece)
            yield piece
        yield f"\r\n--{boundary}--\r\n".encode()

    tracemalloc.start()
    rss = _peak_rss_reset()
    _, r = await client.post(
        UPLOADS, headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}, content=body()
    )
    peak_rss = _status("VmHWM") - rss
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert r.status_code == 201, r.text
    assert r.json["size"] == size and r.json["sha256"] == sha.hexdigest()
    # What Python held at once (the S3 client holds one 5 MiB part), and what the whole process grew by (the
    # client's own buffers included): a 20 MB file held whole would pass both.
    assert peak < 8 * MiB, f"upload peak {peak / MiB:.1f} MiB of Python memory"
    assert peak_rss < 14 * MiB, f"upload grew the process by {peak_rss / MiB:.1f} MiB"

    tracemalloc.start()
    opened = await materials.open(content_key(sha.hexdigest()))
    got, biggest = hashlib.sha256(), 0
    async for chunk in opened.chunks:
        got.update(chunk)
        biggest = max(biggest, len(chunk))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert opened.size == size and got.hexdigest() == sha.hexdigest()
    assert biggest <= 1 * MiB and peak < 4 * MiB, f"download chunks {biggest} B, peak {peak / MiB:.1f} MiB"


@pytest.mark.parametrize("backend", ["s3"])
async def test_an_unreachable_store_is_503_and_leaves_no_row(world, settings, s3_server):
    client = world.client
    case = await h.submit(client, world.citizen)
    pdf_id = case["materials"][0]["upload_id"]
    s3_server.stop()  # the store goes away
    try:
        _, r = await client.post(UPLOADS, headers=world.citizen, files={"file": ("a.png", h.PNG + b"x", "image/png")})
        assert r.status_code == 503 and r.json["error"]["code"] == "STORAGE_UNAVAILABLE", r.text
        assert await Upload.all().count() == 2  # the case's two; none for the refused file
        _, r = await client.get(f"/api/v1/staff/cases/{case['case_no']}/materials/{pdf_id}", headers=world.api)
        assert r.status_code == 503 and r.json["error"]["code"] == "STORAGE_UNAVAILABLE", r.text
        _, r = await client.get("/readyz")
        assert r.status == 503 and r.json["checks"]["materials"].startswith("error"), r.text
    finally:
        s3_server.start()  # a fresh server (on another port) for the tests after this one


# -- S3 only: encryption, readiness --------------------------------------------------------------------


async def test_server_side_encryption_is_requested_unless_turned_off(base_settings, s3_server, tmp_path):
    data = b"%PDF-1.4\n" + b"x" * (6 * MiB)  # over one part: a multipart upload carries the header too
    src = tmp_path / "f"
    for sse in (True, False):
        settings = s3_settings(base_settings, s3_server, storage_s3_sse=sse)
        store = make_material_store(settings)
        src.write_bytes(data)
        await store.put_file("aa/bb/multipart", src)
        assert not src.exists()
        src.write_bytes(b"small")
        await store.put_file("aa/bb/single", src)
        for key in ("aa/bb/multipart", "aa/bb/single"):
            head = object_head(settings, s3_server, key)
            assert head.get("ServerSideEncryption") == ("AES256" if sse else None), (sse, key)
        assert await read(store, "aa/bb/multipart") == data


async def test_an_existing_object_is_not_uploaded_again(base_settings, s3_server, tmp_path):
    settings = s3_settings(base_settings, s3_server)
    store = make_material_store(settings)
    src = tmp_path / "f"
    src.write_bytes(b"first")
    await store.put_file("aa/bb/k", src)
    modified = object_head(settings, s3_server, "aa/bb/k")["LastModified"]
    src.write_bytes(b"first")
    await store.put_file("aa/bb/k", src)
    assert not src.exists()  # the scratch file is removed either way
    assert object_head(settings, s3_server, "aa/bb/k")["LastModified"] == modified


@pytest.mark.parametrize("backend", ["s3"])
async def test_readyz_checks_the_object_store(client, settings, s3_server):
    _, r = await client.get("/readyz")
    assert r.status == 200, r.text
    assert r.json["checks"] == {"database": "ok", "store": "ok", "materials": "ok"}
    s3_server.client().delete_bucket(Bucket=settings.storage_s3_bucket)
    _, r = await client.get("/readyz")
    assert r.status == 503 and r.json["checks"]["materials"].startswith("error"), r.text


@pytest.mark.parametrize("backend", ["local"])
async def test_readyz_of_the_local_backend_is_unchanged(client):
    _, r = await client.get("/readyz")
    assert r.json["checks"] == {"database": "ok", "store": "ok"}


# -- settings and cost ---------------------------------------------------------------------------------


def test_s3_settings_are_checked():
    with pytest.raises(SettingsError, match="STORAGE_S3_BUCKET"):
        Settings.from_env({"STORAGE_BACKEND": "s3"})
    with pytest.raises(SettingsError, match="go together"):
        Settings.from_env({"STORAGE_BACKEND": "s3", "STORAGE_S3_BUCKET": "b", "STORAGE_S3_ACCESS_KEY": "k"})
    with pytest.raises(SettingsError, match="STORAGE_S3_ENDPOINT"):
        Settings.from_env({"STORAGE_BACKEND": "s3", "STORAGE_S3_BUCKET": "b", "STORAGE_S3_ENDPOINT": "minio:9000"})
    ok = Settings.from_env({
        "STORAGE_BACKEND": "S3", "STORAGE_S3_BUCKET": "b", "STORAGE_S3_ENDPOINT": "http://minio:9000/",
        "STORAGE_S3_ACCESS_KEY": "AKIDEXAMPLE", "STORAGE_S3_SECRET_KEY": "very-secret-value", "STORAGE_S3_SSE": "false",
    })  # fmt: skip
    assert (ok.storage_backend, ok.storage_s3_endpoint, ok.storage_s3_sse) == ("s3", "http://minio:9000", False)
    assert ok.storage_s3_path_style is True and "very-secret-value" not in repr(ok)
    assert Settings.from_env({}).storage_backend == "local"


def test_production_refuses_s3_without_credentials():
    with pytest.raises(SettingsError, match="production requires STORAGE_S3_ACCESS_KEY"):
        Settings.from_env({"APP_ENV": "production", "STORAGE_BACKEND": "s3", "STORAGE_S3_BUCKET": "b"})


def test_the_default_configuration_does_not_import_the_s3_client():
    code = (
        "import sys\n"
        "from app.bootstrap import build_services\n"
        "from app.server import create_app\n"
        "from app.settings import Settings\n"
        "s = Settings(env='test')\n"
        "create_app(s); build_services(s)\n"
        "assert 'obstore' not in sys.modules and 'app.storage.s3' not in sys.modules, 'imported'\n"
        "build_services(s.replace(storage_backend='s3', storage_s3_bucket='b'))\n"
        "assert 'obstore' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
