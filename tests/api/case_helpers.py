"""Helpers for the case API tests: a catalogue, uploads, submission, staff actions and driving a case to a status."""

from __future__ import annotations

import uuid
from typing import Any

from auth.idcard import make_id_number
from tests import factories

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
MATTER = "4308-XK-SS-001"  # scjgj, hall main, 3 promised working days, postal delivery offered
LONG_MATTER = "4308-XK-SS-010"  # as MATTER but 10 promised working days
OTHER_MATTER = "4308-GG-ZF-001"  # gjjzx, hall gongjijin
FORM = "公司登记（备案）申请书"  # pdf
ID_CARD = "居民身份证"  # jpg / png
ADDRESS = {"name": "张三", "phone": "13900001111", "region": "湖南省张家界市永定区", "detail": "子午路 1 号 2 栋"}

# What each action needs to pass its own checks (a reason, the materials to correct, the special procedure).
ARGS: dict[str, dict[str, Any]] = {
    "reject": {"reason": "不属于本部门受理范围"},
    "require_correction": {"reason": "身份证照片不清晰", "materials": [ID_CARD]},
    "suspend": {"reason": "需现场核查", "procedure": "现场核查"},
    "deny": {"reason": "不符合许可条件"},
}
# How to get a fresh (submitted) case to each status: staff actions, or the citizen's `resubmit` / `withdraw`.
PATHS: dict[str, list[str]] = {
    "submitted": [],
    "accepted": ["accept"],
    "rejected": ["reject"],
    "correction_required": ["require_correction"],
    "resubmitted": ["require_correction", "resubmit"],
    "withdrawn": ["withdraw"],
    "under_review": ["accept", "start_review"],
    "suspended": ["accept", "start_review", "suspend"],
    "approved": ["accept", "start_review", "approve"],
    "denied": ["accept", "start_review", "deny"],
    "delivered": ["accept", "start_review", "approve", "deliver"],
    "completed": ["accept", "start_review", "approve", "deliver", "complete"],
}
CITIZEN_ACTIONS = {"resubmit", "withdraw"}


def catalogue() -> dict[str, Any]:
    """The test departments and halls with a 3-day and a 10-day matter (scjgj, main) and one of gjjzx."""
    return factories.catalogue(
        factories.entry(MATTER, special_procedures=[{"name": "现场核查", "max_days": 5}]),
        factories.entry(LONG_MATTER, name="食品经营许可", promised_limit_days=10),
        factories.entry(
            OTHER_MATTER,
            name="住房公积金提取",
            type="public_service",
            section="social_security",
            department="gjjzx",
            hall="gongjijin",
        ),
    )


async def upload(client, headers, data: bytes = PNG, name: str = "id.png") -> str:
    """Upload one file; its id."""
    files = {"file": (name, data, "application/octet-stream")}
    _, r = await client.post("/api/v1/uploads", headers=headers, files=files)
    assert r.status_code == 201, r.text
    return r.json["id"]


async def submit(client, headers, *, matter: str = MATTER, delivery: dict[str, Any] | None = None) -> dict[str, Any]:
    """Submit a complete application; the 201 body."""
    pdf = await upload(client, headers, PDF, "申请书.pdf")
    png = await upload(client, headers, PNG, "id.png")
    body = {
        "matter_code": matter,
        "applicant": {"kind": "self", "name": "张三", "id_number": make_id_number()},
        "form": {"company_name": "张家界测试有限公司"},
        "materials": [{"name": FORM, "upload_ids": [pdf]}, {"name": ID_CARD, "upload_ids": [png]}],
        "delivery": delivery or {"method": "window"},
    }
    _, r = await client.post("/api/v1/cases", json=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    return r.json


async def act(client, headers, case_no: str, action: str, **args: Any):
    """POST a staff action; the response."""
    _, r = await client.post(f"/api/v1/staff/cases/{case_no}/actions", json={"action": action, **args}, headers=headers)
    return r


async def resubmit(client, headers, case_no: str, name: str = ID_CARD, data: bytes = PNG):
    """The citizen hands in a new upload for one material; the response."""
    upload_id = await upload(client, headers, data, "new.png" if data == PNG else "new.pdf")
    body = {"materials": [{"name": name, "upload_ids": [upload_id]}]}
    _, r = await client.post(f"/api/v1/cases/{case_no}/resubmit", json=body, headers=headers)
    return r


async def withdraw(client, headers, case_no: str):
    """The applicant withdraws; the response."""
    _, r = await client.post(f"/api/v1/cases/{case_no}/withdraw", json={"reason": "不办了"}, headers=headers)
    return r


async def step(client, citizen, staff, case_no: str, action: str):
    """One step of a path, by the citizen or the staff member; the response (asserted 200)."""
    if action == "resubmit":
        r = await resubmit(client, citizen, case_no)
    elif action == "withdraw":
        r = await withdraw(client, citizen, case_no)
    else:
        r = await act(client, staff, case_no, action, **ARGS.get(action, {}))
    assert r.status_code == 200, (action, r.text)
    return r


async def drive(client, citizen, staff, status: str, *, matter: str = MATTER, **submit_kw: Any) -> str:
    """A fresh case of the citizen's, moved along PATHS[status]; its case number."""
    case_no = (await submit(client, citizen, matter=matter, **submit_kw))["case_no"]
    for action in PATHS[status]:
        await step(client, citizen, staff, case_no, action)
    assert (await staff_case(client, staff, case_no))["status"] == status
    return case_no


async def staff_case(client, headers, case_no: str) -> dict[str, Any]:
    """The staff view of a case (asserted 200)."""
    _, r = await client.get(f"/api/v1/staff/cases/{case_no}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json


async def staff_list(client, headers, **params: Any) -> list[str]:
    """Case numbers of a staff list, in order."""
    _, r = await client.get("/api/v1/staff/cases", headers=headers, params=params)
    assert r.status_code == 200, r.text
    assert r.json["total"] == len(r.json["items"])
    return [item["case_no"] for item in r.json["items"]]


async def staff_headers(auth_deps, staff) -> dict[str, str]:
    """Fresh bearer headers for a staff account (after the fake clock has moved past the old token's expiry)."""
    from auth.logins import issue_for_staff

    pair = await issue_for_staff(auth_deps, staff=staff)
    return {"Authorization": f"Bearer {pair.access_token}"}
