"""`python -m app run` with STORAGE_BACKEND=s3 against a local S3 server (moto), over real HTTP/1.1:
ready with the object store checked, a citizen's files stored as encrypted objects, a reviewer's download streamed
back from the bucket byte for byte with its length stated, and no upload directory made.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.storage import content_key
from auth.idcard import make_id_number
from tests.e2e import h5
from tests.e2e.conftest import Server
from tests.fakes.s3 import ACCESS_KEY, REGION, SECRET_KEY, LocalS3
from tests.fakes.wechat import FakeWeChat

pytestmark = pytest.mark.slow
MATTER = "4308-XK-SS-003"  # the demo matter applied for online: a PDF form and an ID photo


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[h5.Service, LocalS3, str]]:
    """The service on the demo catalogue, its materials in a fresh bucket; (service, S3 server, bucket)."""
    db = tmp_path / "s3.sqlite3"
    with FakeWeChat() as fake, LocalS3() as s3:
        bucket = s3.new_bucket()
        server = Server(
            {"APP_ENV": "development", "LOAD_DEMO": "true", "SMS_SENDER": "console", "REALNAME_VERIFIER": "dev",
             "DATABASE_URL": f"sqlite://{db}", "ACCESS_LOG": "false", **h5.wechat_env(fake),
             "UPLOAD_DIR": str(tmp_path / "never-made"), "STORAGE_BACKEND": "s3", "STORAGE_S3_ENDPOINT": s3.url,
             "STORAGE_S3_BUCKET": bucket, "STORAGE_S3_REGION": REGION, "STORAGE_S3_ACCESS_KEY": ACCESS_KEY,
             "STORAGE_S3_SECRET_KEY": SECRET_KEY},
            tmp_path / "server.log",
        )  # fmt: skip
        try:
            server.wait_ready()
            yield h5.Service(server, fake, f"sqlite://{db}"), s3, bucket
        finally:
            server.stop()


def test_materials_go_to_the_bucket_encrypted_and_come_back_through_the_reviewers_route(service, tmp_path):
    svc, s3, bucket = service
    ready = httpx.get(f"{svc.url}/readyz").json()
    assert ready["checks"]["materials"] == "ok", ready

    token = svc.cli("dev", "token", "--citizen", h5.new_phone(), "--loa", "2").strip().splitlines()[-1]
    citizen = {"Authorization": f"Bearer {token}"}
    guide = httpx.get(f"{svc.url}/api/v1/matters/{MATTER}").json()
    materials, sent = [], {}
    for spec in guide["materials"]:
        if not spec.get("required", True) and materials:
            continue
        photo = "jpg" in spec["file_types"]
        data, name = (h5.small_jpeg(), "证.jpg") if photo else (h5.one_page_pdf(), "申请书.pdf")
        up = httpx.post(f"{svc.url}/api/v1/uploads", headers=citizen,
                        files={"file": (name, data, "application/octet-stream")})  # fmt: skip
        assert up.status_code == 201, up.text
        sent[up.json()["id"]] = data
        materials.append({"name": spec["name"], "upload_ids": [up.json()["id"]]})
    body = {
        "matter_code": MATTER,
        "applicant": {"kind": "self", "name": "赵六", "id_number": make_id_number()},
        "form": {},
        "materials": materials,
        "delivery": {"method": "window"},
    }
    r = httpx.post(f"{svc.url}/api/v1/cases", json=body, headers={**citizen, "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    case_no = r.json()["case_no"]

    client = s3.client()
    for data in sent.values():
        head = client.head_object(Bucket=bucket, Key=content_key(hashlib.sha256(data).hexdigest()))
        assert head["ServerSideEncryption"] == "AES256" and head["ContentLength"] == len(data)

    reviewer = svc.staff("reviewer", department=guide["department"]["code"])
    for upload_id, data in sent.items():
        got = httpx.get(f"{svc.url}/api/v1/staff/cases/{case_no}/materials/{upload_id}", headers=reviewer)
        assert got.status_code == 200, got.text
        assert got.content == data and got.headers["content-length"] == str(len(data))
        assert got.headers["x-content-type-options"] == "nosniff"
    assert not (tmp_path / "never-made").exists()  # the local directory is not needed with this backend
