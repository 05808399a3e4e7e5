"""Uploads through the HTTP API: typed by their bytes, capped while streaming, content-addressed, owned, expiring."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import unicodedata
import uuid
import zipfile
from pathlib import Path

import pytest

from app.cases import uploads as upload_service
from app.cases.models import Upload
from app.matters import service as catalogue
from auth.idcard import make_id_number
from tests import factories

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64
JPG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 200
MATTER = "4308-XK-SS-001"
UPLOADS = "/api/v1/uploads"
BOUNDARY = "zdtestboundary7MA4YWxkTrZu0gW"


@pytest.fixture
def settings(base_settings, tmp_path, request):
    """Per test: a private upload directory two levels down (so `../..` would land inside tmp_path), and overrides."""
    upload_dir = tmp_path / "a" / "b" / "uploads"
    upload_dir.mkdir(parents=True)
    return base_settings.replace(upload_dir=upload_dir, **getattr(request, "param", {}))


@pytest.fixture
async def seeded(client):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())
    return client


def docx_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        z.writestr("word/document.xml", '<?xml version="1.0"?><w:document/>')
    return buf.getvalue()


def plain_zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "hello")
    return buf.getvalue()


def pdf_of_size(size: int) -> bytes:
    return (PDF + b"%" * size)[:size]


def part(name: str, data: bytes, *, filename: bytes | None = None, content_type: str = "application/octet-stream"):
    """One raw multipart part (filename as raw bytes: nothing escaped by a client library)."""
    disposition = b'Content-Disposition: form-data; name="' + name.encode() + b'"'
    if filename is not None:
        disposition += b'; filename="' + filename + b'"'
    head = disposition + b"\r\n"
    if filename is not None:
        head += f"Content-Type: {content_type}\r\n".encode()
    return b"--" + BOUNDARY.encode() + b"\r\n" + head + b"\r\n" + data + b"\r\n"


def multipart_body(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--" + BOUNDARY.encode() + b"--\r\n"


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


async def upload(client, headers, data: bytes, name: str = "file.bin", **params):
    files = {"file": (name, data, "application/octet-stream")}
    _, r = await client.post(UPLOADS, headers=headers, files=files, params=params)
    return r


async def raw_post(client, headers, content, *, extra: dict[str, str] | None = None, params=None):
    _, r = await client.post(UPLOADS, headers={**headers, **(extra or MULTIPART)}, content=content, params=params)
    return r


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def tmp_files(settings) -> list[Path]:
    tmp = settings.upload_dir / "tmp"
    return [p for p in tmp.iterdir()] if tmp.exists() else []


def address(settings, sha: str) -> Path:
    return settings.upload_dir / sha[:2] / sha[2:4] / sha


async def submit_case(client, headers, pdf_id: str, png_id: str, *, key: str | None = None):
    body = {
        "matter_code": MATTER,
        "applicant": {"kind": "self", "name": "张三", "id_number": make_id_number()},
        "materials": [
            {"name": "公司登记（备案）申请书", "upload_ids": [pdf_id]},
            {"name": "居民身份证", "upload_ids": [png_id]},
        ],
    }
    _, r = await client.post(
        "/api/v1/cases", json=body, headers={**headers, "Idempotency-Key": key or uuid.uuid4().hex}
    )
    return r


# -- types from bytes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "name", "file_type"),
    [
        (PDF, "申请书.pdf", "pdf"),
        (PNG, "id.png", "png"),
        (JPG, "photo.jpg", "jpg"),
        (PNG, "really-a-png.pdf", "png"),  # the name says pdf, the bytes say png
        (PDF, "scan.jpg", "pdf"),
    ],
)
async def test_accepted_types_are_told_by_their_bytes(seeded, settings, make_citizen, data, name, file_type):
    owner, headers = await make_citizen()
    r = await upload(seeded, headers, data, name)
    assert r.status_code == 201, r.text
    body = r.json
    sha = hashlib.sha256(data).hexdigest()
    assert body["file_type"] == file_type
    assert body["filename"] == name
    assert body["size"] == len(data)
    assert body["sha256"] == sha
    assert body["in_use"] is False
    created = dt.datetime.fromisoformat(body["created_at"])
    assert dt.datetime.fromisoformat(body["expires_at"]) - created == dt.timedelta(hours=settings.upload_keep_hours)
    assert r.headers["cache-control"] == "private, no-store"
    # stored once, at its content address, byte for byte
    assert address(settings, sha).read_bytes() == data
    assert files_under(settings.upload_dir) == {address(settings, sha)}
    row = await Upload.get(id=body["id"])
    assert (row.owner_id, row.sha256, row.case_id) == (owner.id, sha, None)
    _, again = await seeded.get(f"{UPLOADS}/{body['id']}", headers=headers)
    assert again.status_code == 200 and again.json == body


async def test_exe_named_pdf_is_a_type_mismatch_and_leaves_nothing(seeded, settings, make_citizen):
    _, headers = await make_citizen()
    r = await upload(seeded, headers, EXE, "setup.pdf")
    assert r.status_code == 422, r.text
    err = r.json["error"]
    assert err["code"] == "FILE_TYPE_MISMATCH"
    assert err["details"]["filename"] == "setup.pdf" and err["details"]["detected"] == []
    assert await Upload.all().count() == 0
    assert files_under(settings.upload_dir) == set()


async def test_zip_holding_a_word_document_is_docx(seeded, settings, make_citizen):
    _, headers = await make_citizen()
    data = docx_bytes()
    r = await upload(seeded, headers, data, "申请书.zip")
    assert r.status_code == 201, r.text
    assert r.json["file_type"] == "docx"
    assert address(settings, hashlib.sha256(data).hexdigest()).read_bytes() == data


async def test_plain_zip_named_docx_is_refused(seeded, settings, make_citizen):
    _, headers = await make_citizen()
    r = await upload(seeded, headers, plain_zip_bytes(), "申请书.docx")
    assert r.status_code == 422 and r.json["error"]["code"] == "FILE_TYPE_MISMATCH", r.text
    assert await Upload.all().count() == 0


async def test_material_types_are_checked_when_the_material_is_named(seeded, make_citizen):
    _, headers = await make_citizen()
    params = {"matter_code": MATTER, "material": "居民身份证"}
    r = await upload(seeded, headers, PDF, "身份证.pdf", **params)
    assert r.status_code == 422, r.text
    assert r.json["error"]["code"] == "FILE_TYPE_MISMATCH"
    assert r.json["error"]["details"]["accepted"] == ["jpg", "png"]
    assert r.json["error"]["details"]["detected"] == ["pdf"]
    r = await upload(seeded, headers, JPG, "身份证.jpg", **params)
    assert r.status_code == 201 and r.json["file_type"] == "jpg", r.text
    r = await upload(seeded, headers, PNG, "x.png", matter_code=MATTER, material="不存在的材料")
    assert r.status_code == 422 and r.json["error"]["code"] == "MATERIAL_UNKNOWN", r.text
    assert await Upload.all().count() == 1


# -- size, enforced while reading ----------------------------------------------------------------------

SMALL_LIMIT = pytest.mark.parametrize("settings", [{"upload_max_bytes": 4096}], indirect=True)


@SMALL_LIMIT
async def test_oversize_file_is_413(seeded, settings, make_citizen):
    assert settings.upload_max_bytes == 4096
    _, headers = await make_citizen()
    r = await upload(seeded, headers, pdf_of_size(10 * 1024), "big.pdf")
    assert r.status_code == 413, r.text
    assert r.json["error"]["code"] == "UPLOAD_TOO_LARGE"
    assert r.json["error"]["details"]["max_bytes"] == 4096
    assert await Upload.all().count() == 0
    assert files_under(settings.upload_dir) == set()
    # one byte over is refused, exactly the limit is fine
    r = await upload(seeded, headers, pdf_of_size(4097), "over.pdf")
    assert r.status_code == 413, r.text
    r = await upload(seeded, headers, pdf_of_size(4096), "exact.pdf")
    assert r.status_code == 201 and r.json["size"] == 4096, r.text


@SMALL_LIMIT
async def test_declared_length_far_above_the_limit_is_refused_before_reading(seeded, settings, make_citizen):
    _, headers = await make_citizen()
    read = []
    never = asyncio.Event()

    async def body():
        read.append("started")
        yield part("file", b"", filename=b"big.pdf")[:-2]
        await never.wait()  # a body that never ends: only a refusal before reading can answer

    r = await asyncio.wait_for(
        raw_post(seeded, headers, body(), extra={**MULTIPART, "Content-Length": str(50 * 1024 * 1024)}), timeout=10
    )
    assert r.status_code == 413, r.text
    assert r.json["error"]["code"] == "UPLOAD_TOO_LARGE"
    assert read == [], "the body should not have been read at all"
    assert await Upload.all().count() == 0


@SMALL_LIMIT
async def test_chunked_body_over_the_limit_is_stopped_while_streaming(seeded, settings, make_citizen):
    _, headers = await make_citizen()
    sent = 0
    total_chunks = 200

    async def body():
        nonlocal sent
        yield part("file", b"", filename=b"stream.pdf")[:-2]  # the part's head, then its data
        yield PDF
        for _ in range(total_chunks):
            sent += 1
            yield b"%" * 1024
        yield b"\r\n--" + BOUNDARY.encode() + b"--\r\n"

    _, r = await seeded.post(UPLOADS, headers={**headers, **MULTIPART}, content=body())
    assert r.status_code == 413, r.text
    assert r.json["error"]["code"] == "UPLOAD_TOO_LARGE"
    assert sent < 10, f"read {sent} KiB of a body whose file passed 4 KiB after 4"
    assert tmp_files(settings) == []
    assert files_under(settings.upload_dir) == set()
    assert await Upload.all().count() == 0


@pytest.mark.parametrize("settings", [{"upload_max_bytes": 3 * 1024 * 1024}], indirect=True)
async def test_chunked_body_over_the_limit_leaves_no_partial_file(seeded, settings, make_citizen):
    """A file past the first 1 MiB flush has a temporary file on disk; the refusal removes it."""
    _, headers = await make_citizen()
    seen_tmp: list[int] = []
    chunk = b"%" * (64 * 1024)

    async def body():
        yield part("file", b"", filename=b"stream.pdf")[:-2]
        yield PDF
        for i in range(100):  # 6.25 MiB in all
            if i == 40:  # 2.5 MiB in: the first flush has happened
                seen_tmp.append(len(tmp_files(settings)))
            yield chunk
        yield b"\r\n--" + BOUNDARY.encode() + b"--\r\n"

    _, r = await seeded.post(UPLOADS, headers={**headers, **MULTIPART}, content=body())
    assert r.status_code == 413, r.text
    assert r.json["error"]["code"] == "UPLOAD_TOO_LARGE"
    assert seen_tmp == [1], "a temporary file should have existed while streaming"
    assert tmp_files(settings) == []
    assert files_under(settings.upload_dir) == set()
    assert await Upload.all().count() == 0


# -- client file names never reach the file system ---------------------------------------------------


@pytest.mark.parametrize(
    ("raw_name", "expected"),
    [
        (b"../../etc/passwd", "passwd"),
        (b"../../../../../../tmp/evil.pdf", "evil.pdf"),
        (b"..\\..\\windows\\system32\\evil.pdf", "evil.pdf"),
        (b"a\x00b\x01c\x1f.pdf", "abc.pdf"),
        ("\u202efdp.exe".encode(), "fdp.exe"),
        ("合同\u202egpj.pdf".encode(), "合同gpj.pdf"),
        (b"..", "file"),
        (b"/", "file"),
    ],
)
async def test_hostile_file_names_are_cleaned_and_stored_by_content(
    seeded, settings, tmp_path, make_citizen, raw_name, expected
):
    _, headers = await make_citizen()
    r = await raw_post(seeded, headers, multipart_body(part("file", PDF, filename=raw_name)))
    assert r.status_code == 201, r.text
    name = r.json["filename"]
    assert name == expected
    assert name and "/" not in name and "\\" not in name and not name.startswith(".")
    assert all(unicodedata.category(ch)[0] != "C" for ch in name), ascii(name)
    sha = hashlib.sha256(PDF).hexdigest()
    # the one file written anywhere under tmp_path is the content address inside upload_dir
    assert files_under(tmp_path) == {address(settings, sha)}
    assert address(settings, sha).read_bytes() == PDF
    row = await Upload.get(id=r.json["id"])
    assert row.filename == name


async def test_file_name_is_cut_to_120_characters(seeded, make_citizen):
    _, headers = await make_citizen()
    long_name = "很" * 300 + ".pdf"
    r = await raw_post(seeded, headers, multipart_body(part("file", PDF, filename=long_name.encode())))
    assert r.status_code == 201, r.text
    assert len(r.json["filename"]) == 120 and r.json["filename"].endswith(".pdf")


# -- ownership and use ----------------------------------------------------------------------------


async def test_another_citizens_upload_is_not_found(seeded, make_citizen):
    _, alice = await make_citizen()
    _, bob = await make_citizen()
    pdf = (await upload(seeded, alice, PDF, "a.pdf")).json
    png = (await upload(seeded, alice, PNG, "a.png")).json
    bob_png = (await upload(seeded, bob, PNG, "b.png")).json
    _, r = await seeded.get(f"{UPLOADS}/{pdf['id']}", headers=bob)
    assert r.status_code == 404 and r.json["error"]["code"] == "UPLOAD_NOT_FOUND", r.text
    for bad in (uuid.uuid4().hex, "not-a-uuid"):
        _, r = await seeded.get(f"{UPLOADS}/{bad}", headers=alice)
        assert r.status_code == 404 and r.json["error"]["code"] == "UPLOAD_NOT_FOUND", r.text
    # bob cannot hand in alice's file either
    r = await submit_case(seeded, bob, pdf["id"], bob_png["id"])
    assert r.status_code == 404, r.text
    assert r.json["error"]["code"] == "UPLOAD_NOT_FOUND"
    assert r.json["error"]["details"]["upload_id"] == pdf["id"]
    assert await Upload.filter(case_id__isnull=False).count() == 0
    # alice can
    r = await submit_case(seeded, alice, pdf["id"], png["id"])
    assert r.status_code == 201, r.text


async def test_unauthenticated_upload_is_refused(seeded):
    _, r = await seeded.post(UPLOADS, files={"file": ("a.pdf", PDF, "application/pdf")})
    assert r.status_code == 401, r.text
    assert await Upload.all().count() == 0


async def test_upload_used_by_a_case_cannot_be_used_again(seeded, make_citizen):
    _, headers = await make_citizen()
    pdf = (await upload(seeded, headers, PDF, "a.pdf")).json
    png = (await upload(seeded, headers, PNG, "a.png")).json
    first = await submit_case(seeded, headers, pdf["id"], png["id"])
    assert first.status_code == 201, first.text
    _, r = await seeded.get(f"{UPLOADS}/{pdf['id']}", headers=headers)
    assert r.json["in_use"] is True and r.json["expires_at"] is None
    png2 = (await upload(seeded, headers, PNG, "b.png")).json
    r = await submit_case(seeded, headers, pdf["id"], png2["id"])
    assert r.status_code == 409, r.text
    assert r.json["error"]["code"] == "UPLOAD_IN_USE"
    assert (await Upload.get(id=png2["id"])).case_id is None


# -- expiry --------------------------------------------------------------------------------------------


async def test_sweep_removes_expired_unused_uploads_only(seeded, settings, fake_clock, make_citizen):
    phone = "13900000001"
    _, headers = await make_citizen(phone=phone)
    lonely = b"%PDF-1.4\n% lonely\n%%EOF\n"
    shared = b"%PDF-1.4\n% shared\n%%EOF\n"
    unused = (await upload(seeded, headers, lonely, "unused.pdf")).json
    pdf = (await upload(seeded, headers, PDF, "a.pdf")).json
    png = (await upload(seeded, headers, PNG, "a.png")).json
    r = await submit_case(seeded, headers, pdf["id"], png["id"])
    assert r.status_code == 201, r.text
    early = (await upload(seeded, headers, shared, "early.pdf")).json
    fake_clock.advance(hours=13)
    _, headers = await make_citizen(phone=phone)  # a fresh token (the first one has expired)
    late = (await upload(seeded, headers, shared, "late.pdf")).json  # same bytes, expires 13 h later
    assert late["sha256"] == early["sha256"]
    fake_clock.advance(hours=12)  # 25 h after the first uploads, 12 h after the late one

    removed = await upload_service.sweep(seeded.sanic_app.ctx.cases)
    _, headers = await make_citizen(phone=phone)

    assert removed == 2
    remaining = set(await Upload.all().values_list("id", flat=True))
    assert {str(i) for i in remaining} == {pdf["id"], png["id"], late["id"]}
    assert not address(settings, unused["sha256"]).exists()
    assert address(settings, pdf["sha256"]).read_bytes() == PDF
    assert address(settings, png["sha256"]).read_bytes() == PNG
    assert address(settings, late["sha256"]).read_bytes() == shared, "the late upload still needs these bytes"
    _, r = await seeded.get(f"{UPLOADS}/{unused['id']}", headers=headers)
    assert r.status_code == 404 and r.json["error"]["code"] == "UPLOAD_NOT_FOUND"
    _, r = await seeded.get(f"{UPLOADS}/{late['id']}", headers=headers)
    assert r.status_code == 200

    assert await upload_service.sweep(seeded.sanic_app.ctx.cases) == 0  # nothing else expired yet
    fake_clock.advance(hours=13)
    assert await upload_service.sweep(seeded.sanic_app.ctx.cases) == 1
    assert not address(settings, late["sha256"]).exists()
    assert {str(i) for i in await Upload.all().values_list("id", flat=True)} == {pdf["id"], png["id"]}
    assert address(settings, pdf["sha256"]).exists() and address(settings, png["sha256"]).exists()
    assert not list((settings.upload_dir).rglob("*.gone"))


async def test_sweep_keeps_content_a_case_holds_when_an_unused_copy_expires(seeded, settings, fake_clock, make_citizen):
    """The same bytes uploaded twice: one copy used by a case, the other left to expire."""
    _, headers = await make_citizen()
    pdf = (await upload(seeded, headers, PDF, "a.pdf")).json
    png = (await upload(seeded, headers, PNG, "a.png")).json
    spare = (await upload(seeded, headers, PDF, "copy.pdf")).json
    assert (await submit_case(seeded, headers, pdf["id"], png["id"])).status_code == 201
    fake_clock.advance(hours=25)
    assert await upload_service.sweep(seeded.sanic_app.ctx.cases) == 1
    assert not await Upload.exists(id=spare["id"])
    assert address(settings, pdf["sha256"]).read_bytes() == PDF


# -- malformed bodies ----------------------------------------------------------------------------------


async def test_multipart_without_boundary_is_invalid(seeded, make_citizen):
    _, headers = await make_citizen()
    body = multipart_body(part("file", PDF, filename=b"a.pdf"))
    r = await raw_post(seeded, headers, body, extra={"Content-Type": "multipart/form-data"})
    assert r.status_code == 422 and r.json["error"]["code"] == "UPLOAD_INVALID", r.text


async def test_json_body_is_invalid(seeded, make_citizen):
    _, headers = await make_citizen()
    _, r = await seeded.post(UPLOADS, headers=headers, json={"file": "JVBERi0xLjcK"})
    assert r.status_code == 422 and r.json["error"]["code"] == "UPLOAD_INVALID", r.text


async def test_no_content_type_is_invalid(seeded, make_citizen):
    _, headers = await make_citizen()
    _, r = await seeded.post(UPLOADS, headers=headers, content=PDF)
    assert r.status_code == 422 and r.json["error"]["code"] == "UPLOAD_INVALID", r.text


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(multipart_body(part("file", b"", filename=b"empty.pdf")), id="empty-file"),
        pytest.param(
            multipart_body(part("file", PDF, filename=b"a.pdf"), part("file", PNG, filename=b"b.png")),
            id="two-files",
        ),
        pytest.param(multipart_body(part("note", b"hello")), id="no-file-part"),
        pytest.param(multipart_body(), id="no-parts"),
        pytest.param(b"", id="empty-body"),
        pytest.param(part("file", PDF, filename=b"a.pdf"), id="no-closing-boundary"),
        pytest.param(b"this is not multipart at all\r\n", id="garbage"),
        pytest.param(multipart_body(part("note", b"x" * 500), part("file", PDF, filename=b"a.pdf")), id="long-field"),
        pytest.param(
            multipart_body(*(part(f"f{i}", b"x") for i in range(5)), part("file", PDF, filename=b"a.pdf")),
            id="too-many-fields",
        ),
        pytest.param(
            multipart_body(part("file", PDF, filename=b'a.pdf"\r\nX-Long: "' + b"h" * 5000)),
            id="huge-header",
        ),
    ],
)
async def test_malformed_multipart_is_422_never_500(seeded, settings, make_citizen, body):
    _, headers = await make_citizen()
    r = await raw_post(seeded, headers, body)
    assert r.status_code == 422, r.text
    assert r.json["error"]["code"] == "UPLOAD_INVALID"
    assert await Upload.all().count() == 0
    assert files_under(settings.upload_dir) == set()
