"""Online application in the browser: the materials form, uploads without script, drafts, submit once, the receipt,
my cases, a case with its corrections and withdrawal, and the words every page shares."""

from __future__ import annotations

import html
import io
import re
import uuid

import pytest
from PIL import Image

from app.matters import service as catalogue
from auth.idcard import make_id_number
from tests import factories
from tests.api.test_h5_account import _csrf, _sign_in

MATTER = "4308-XK-SS-001"  # 公司登记（备案）申请书 (pdf) + 居民身份证 (jpg/png), EMS offered
NO_ONLINE = "4308-XK-SS-003"
REAL_NAME = "4308-XK-SS-005"
ZERO = "4308-GG-ZF-009"  # 零跑路, 即办, one material whose name holds 、, one optional material
FORM = "公司登记（备案）申请书"
ID_CARD = "居民身份证"
JOINED = "户口簿、结婚证复印件"
OPTIONAL = "授权委托书"
APPLICANT_ID = make_id_number(seq="531")


def pdf_bytes() -> bytes:
    """A small, well-formed PDF (header, one page, cross-reference table, trailer)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def jpeg_bytes(size: int = 64, quality: int = 85) -> bytes:
    """A real JPEG photo-like image (noise, so its size grows with its dimensions)."""
    image = Image.effect_noise((size, size), 64).convert("RGB")
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


PDF = pdf_bytes()
JPG = jpeg_bytes()
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 200
NO_FILE = ("", b"", "application/octet-stream")  # what a browser sends for a file input left empty


@pytest.fixture
def settings(base_settings, tmp_path):
    upload_dir = tmp_path / "uploads"
    upload_dir.mkdir()
    return base_settings.replace(upload_dir=upload_dir, upload_max_bytes=64 * 1024)


@pytest.fixture
async def seeded(client):
    zero = factories.entry(
        ZERO,
        name="住房公积金提取",
        type="public_service",
        section="social_security",
        department="gjjzx",
        hall="gongjijin",
        visits=0,
        online_depth=4,
        legal_limit_days=0,
        promised_limit_days=0,
        postal_delivery=False,
        materials=[
            {"name": JOINED, "form": "copy", "required": True, "file_types": ["jpg", "png", "pdf"]},
            {"name": OPTIONAL, "form": "original", "required": False, "file_types": ["pdf"]},
        ],
    )
    await catalogue.import_catalogue(
        client.sanic_app.ctx.catalogue,
        data=factories.catalogue(
            factories.entry(MATTER),
            factories.entry(NO_ONLINE, name="不可网办的事项", online_apply=False),
            factories.entry(REAL_NAME, name="须实名的事项", apply_loa=3),
            zero,
        ),
    )
    return client


@pytest.fixture
async def citizen(seeded, app):
    """A citizen signed in through the pages (phone: level of assurance 2)."""
    done = await _sign_in(seeded, app, phone="13900005555", next_path=f"/m/{MATTER}/apply")
    assert done.status == 303
    return seeded


def hidden(text: str, name: str) -> str | None:
    found = re.search(rf'name="{name}" value="([^"]*)"', text)
    return found.group(1) if found else None


async def open_form(client, matter: str = MATTER):
    _, r = await client.get(f"/m/{matter}/apply")
    assert r.status == 200, r.text[:300]
    return r


def typed(**overrides: str) -> dict[str, str]:
    data = {"fields": "1", "applicant_kind": "self", "name": "张三", "id_number": APPLICANT_ID, "phone": "",
            "principal_kind": "person", "delivery": "window"}  # fmt: skip
    data.update(overrides)
    return data


async def post(client, path: str, form_page, data: dict[str, str], files: list | None = None, **extra):
    """Post the form as a browser does: its token and key first, every file input (empty ones too)."""
    key = {"idem": hidden(form_page.text, "idem")} if hidden(form_page.text, "idem") else {}
    fields = {"csrf": _csrf(form_page.text), **key, **data}
    parts = files if files is not None else [("file-0", NO_FILE), ("file-1", NO_FILE)]
    _, r = await client.post(path, data=fields, files=parts, follow_redirects=False, **extra)
    return r


def error_of(text: str, key: str) -> str:
    found = re.search(rf'<p class="err" id="{key}-err">([^<]*)</p>', text)
    return html.unescape(found.group(1)) if found else ""


# ---------------------------------------------------------------- who may apply


async def test_apply_sends_to_sign_in_and_back(seeded):
    _, r = await seeded.get(f"/m/{MATTER}/apply", follow_redirects=False)
    assert r.status == 303 and r.headers["location"] == f"/m/login?next=/m/{MATTER}/apply"


async def test_a_matter_without_online_apply_explains_itself_to_anyone(seeded):
    _, r = await seeded.get(f"/m/{NO_ONLINE}/apply")
    assert r.status == 200 and "暂不支持网上申报" in r.text
    assert f'href="/m/{NO_ONLINE}/book"' in r.text and 'href="tel:' in r.text and "<h1>网上申报</h1>" in r.text


async def test_a_matter_needing_real_name_sends_there_and_back(citizen):
    _, r = await citizen.get(f"/m/{REAL_NAME}/apply", follow_redirects=False)
    assert r.status == 303 and r.headers["location"] == f"/m/me/real-name?next=/m/{REAL_NAME}/apply"
    _, form = await citizen.get(r.headers["location"])
    _, done = await citizen.post(
        "/m/me/real-name",
        data={"csrf": _csrf(form.text), "name": "张三", "id_number": APPLICANT_ID, "next": f"/m/{REAL_NAME}/apply"},
        follow_redirects=False,
    )
    assert done.status == 303 and done.headers["location"] == f"/m/{REAL_NAME}/apply"
    page = await open_form(citizen, REAL_NAME)
    assert "已实名认证" in page.text and 'name="id_number"' not in page.text  # the verified identity is used


# ---------------------------------------------------------------- the form


async def test_the_form_asks_for_each_material_with_its_types_camera_and_limit(citizen):
    text = (await open_form(citizen)).text
    assert f'action="/m/{MATTER}/apply"' in text and 'enctype="multipart/form-data"' in text
    assert re.search(r'name="idem" value="[^"]{16,}"', text)
    assert FORM in text and ID_CARD in text and text.count('<span class="req">必需</span>') == 2
    # the application form (PDF): a file chooser only; the ID card (image): the camera too
    pdf_inputs = re.findall(r'<input[^>]*name="file-0"[^>]*>', text)
    assert len(pdf_inputs) == 1 and 'accept="application/pdf,.pdf"' in pdf_inputs[0]
    assert "capture" not in pdf_inputs[0]
    img_inputs = re.findall(r'<input[^>]*name="file-1"[^>]*>', text)
    assert len(img_inputs) == 2 and any('capture="environment"' in i for i in img_inputs)
    assert all('accept="image/jpeg,.jpg,.jpeg,image/png,.png"' in i for i in img_inputs)
    assert "每个文件不超过 64 KB" in text
    for name in ("name", "id_number", "phone", "principal_name", "principal_id_number", "addr_region"):
        assert f'name="{name}"' in text and f'for="f-{name}"' in text  # every input has its label
    assert 'value="ems"' in text  # this matter offers EMS
    assert re.search(r'<script nonce="[A-Za-z0-9_-]{22}" src="/static/apply.js" defer></script>', text)
    assert len(text.encode()) < 60 * 1024


async def test_the_script_is_served(client):
    _, r = await client.get("/static/apply.js")
    assert r.status == 200 and "XMLHttpRequest" in r.text and "upload.onprogress" in r.text


async def test_uploads_without_script_are_kept_with_what_was_typed_until_coming_back(citizen):
    page = await open_form(citizen)
    r = await post(citizen, f"/m/{MATTER}/apply/upload", page, typed(op="save", name="李四"),
                   [("file-0", ("申请书.pdf", PDF, "application/pdf")), ("file-1", NO_FILE)])  # fmt: skip
    assert r.status == 303 and r.headers["location"] == f"/m/{MATTER}/apply?saved=1"
    _, saved = await citizen.get(r.headers["location"])
    assert saved.status == 200 and "已保存" in saved.text
    again = (await open_form(citizen)).text
    assert "申请书.pdf" in again and 'value="李四"' in again and f'value="{APPLICANT_ID}"' in again
    # a script's upload sends the token and one file: what was typed stays as it was
    script = {"csrf": _csrf(again)}
    _, r = await citizen.post(f"/m/{MATTER}/apply/upload", data=script,
                              files=[("file-1", ("id.jpg", JPG, "image/jpeg"))], follow_redirects=True)  # fmt: skip
    assert r.status == 200 and 'id="mat-file-1"' in r.text  # the form's HTML: the script swaps the block in
    later = (await open_form(citizen)).text
    assert "id.jpg" in later and "申请书.pdf" in later and 'value="李四"' in later
    # remove one file
    upload_id = re.search(r'value="remove:([0-9a-f-]{36})"[^>]*aria-label="删除 申请书.pdf"', later).group(1)
    r = await post(citizen, f"/m/{MATTER}/apply/upload", (await open_form(citizen)), typed(op=f"remove:{upload_id}"))
    assert r.status == 303
    final = (await open_form(citizen)).text
    assert "申请书.pdf" not in final and "id.jpg" in final


async def test_wrong_type_or_size_is_told_next_to_that_material_and_the_rest_is_kept(citizen):
    page = await open_form(citizen)
    big = jpeg_bytes(300, quality=95)
    assert 64 * 1024 < len(big) < 120 * 1024  # one file over the limit, the post within what a post may carry
    files = [("file-0", ("setup.pdf", EXE, "application/pdf")), ("file-1", ("ok.jpg", JPG, "image/jpeg"))]
    r = await post(citizen, f"/m/{MATTER}/apply/upload", page, typed(op="save", name="王五"), files)
    assert r.status == 422
    assert "setup.pdf" in error_of(r.text, "file-0") and "PDF" in error_of(r.text, "file-0")
    assert 'aria-describedby="file-0-hint file-0-err"' in r.text and error_of(r.text, "file-1") == ""
    assert "ok.jpg" in r.text and 'value="王五"' in r.text
    r = await post(citizen, f"/m/{MATTER}/apply/upload", page, typed(op="save"),
                   [("file-0", NO_FILE), ("file-1", ("big.jpg", big, "image/jpeg"))])  # fmt: skip
    assert r.status == 413 and "超过 64 KB" in error_of(r.text, "file-1") and "ok.jpg" in r.text
    # files that together pass what one post may carry: refused by its length before a byte is stored
    huge = [("file-0", ("a2.pdf", PDF, "application/pdf")), ("file-1", ("big1.jpg", big, "image/jpeg")),
            ("file-1", ("big2.jpg", big, "image/jpeg"))]  # fmt: skip
    r = await post(citizen, f"/m/{MATTER}/apply/upload", page, typed(op="save"), huge)
    assert r.status == 413 and "所选文件合计超过 64 KB，请分几次上传" in r.text
    assert "a2.pdf" not in r.text and "ok.jpg" in r.text
    # a photo where the material takes PDF only
    r = await post(citizen, f"/m/{MATTER}/apply/upload", page, typed(op="save"),
                   [("file-0", ("scan.jpg", JPG, "image/jpeg")), ("file-1", NO_FILE)])  # fmt: skip
    assert r.status == 422 and "允许的类型（PDF）" in error_of(r.text, "file-0")


async def test_a_form_from_another_site_or_without_its_token_stores_nothing(citizen):
    page = await open_form(citizen)
    files = [("file-0", ("a.pdf", PDF, "application/pdf")), ("file-1", NO_FILE)]
    _, r = await citizen.post(f"/m/{MATTER}/apply/upload", data={"idem": "k", **typed()}, files=files,
                              follow_redirects=False)  # fmt: skip
    assert r.status == 403 and "FORM_EXPIRED" in r.text
    r = await post(citizen, f"/m/{MATTER}/apply/upload", page, typed(), files,
                   headers={"Origin": "https://evil.example.com"})  # fmt: skip
    assert r.status == 403 and "CSRF_REJECTED" in r.text
    assert "a.pdf" not in (await open_form(citizen)).text


# ---------------------------------------------------------------- submit


async def test_missing_materials_are_named_at_each_material_and_nothing_typed_is_lost(citizen):
    page = await open_form(citizen)
    r = await post(citizen, f"/m/{MATTER}/apply", page, typed(name="赵六"),
                   [("file-0", ("申请书.pdf", PDF, "application/pdf")), ("file-1", NO_FILE)])  # fmt: skip
    assert r.status == 422
    assert error_of(r.text, "file-1") == "请上传此材料（必需）" and error_of(r.text, "file-0") == ""
    assert f"「{ID_CARD}」" in html.unescape(r.text)
    assert "申请书.pdf" in r.text and 'value="赵六"' in r.text
    assert hidden(r.text, "idem") == hidden(page.text, "idem")  # the same form, the same key


async def test_applicant_and_delivery_errors_sit_by_their_fields(citizen):
    page = await open_form(citizen)
    both = [("file-0", ("a.pdf", PDF, "application/pdf")), ("file-1", ("b.jpg", JPG, "image/jpeg"))]
    r = await post(citizen, f"/m/{MATTER}/apply", page, typed(name="", id_number=""), both)
    assert r.status == 422 and error_of(r.text, "name") == "请填写申请人姓名"
    assert error_of(r.text, "id_number") == "请填写申请人身份证号码"
    r = await post(citizen, f"/m/{MATTER}/apply", page, typed(id_number="430802199001011230"))
    assert r.status == 422 and "身份证号码不正确" in error_of(r.text, "id_number")
    r = await post(citizen, f"/m/{MATTER}/apply", page, typed(delivery="ems", addr_name="张三", addr_phone="1"))
    assert r.status == 422 and error_of(r.text, "addr_phone") and error_of(r.text, "addr_region")
    agent = typed(applicant_kind="agent", principal_name="李四", principal_id_number=make_id_number(seq="777"))
    r = await post(citizen, f"/m/{MATTER}/apply", page, agent)
    assert r.status == 403 and "实名认证" in error_of(r.text, "applicant_kind")  # an agent needs real name
    assert 'value="李四"' in r.text and "a.pdf" in r.text and "b.jpg" in r.text


async def test_submit_files_once_and_the_receipt_shows_the_query_code_once(citizen):
    page = await open_form(citizen)
    files = [("file-0", ("申请书.pdf", PDF, "application/pdf")), ("file-1", ("身份证.jpg", JPG, "image/jpeg"))]
    r = await post(citizen, f"/m/{MATTER}/apply", page, typed(), files)
    assert r.status == 303, r.text[:500]
    receipt_path = r.headers["location"]
    case_no = re.fullmatch(r"/m/me/cases/(ZJJ\d+)/receipt", receipt_path).group(1)
    _, receipt = await citizen.get(receipt_path)
    assert receipt.status == 200 and receipt.headers["cache-control"] == "no-store"
    code = re.search(r'id="query-code">([2-9A-Z]{8})<', receipt.text).group(1)
    assert case_no in receipt.text and "只显示这一次" in receipt.text
    assert re.search(r'<img src="data:image/svg\+xml;base64,[A-Za-z0-9+/=]+" alt="[^"]*回执二维码', receipt.text)
    # a reload no longer shows it
    _, reload = await citizen.get(receipt_path)
    assert reload.status == 200 and code not in reload.text and "只在提交成功时显示一次" in reload.text
    # the same form posted again finds its case: no second case, no code again, the draft stays empty
    again = await post(citizen, f"/m/{MATTER}/apply", page, typed(), files)
    assert again.status == 303 and again.headers["location"] == receipt_path
    _, mine = await citizen.get("/m/me/cases")
    assert mine.text.count(f'href="/m/me/cases/{case_no}"') == 1 and "共 1 件" in mine.text
    fresh = (await open_form(citizen)).text
    assert "申请书.pdf" not in fresh and "尚未上传" in fresh
    # the code opens the progress page (posted, never in an address)
    _, progress = await citizen.post("/p", data={"case_no": case_no, "query_code": code.lower()})
    assert progress.status == 200 and "提交申请" in progress.text and "申请已提交，等待窗口受理" in progress.text


async def test_receipt_of_another_citizens_case_is_404(citizen, make_citizen):
    from tests.api.case_helpers import submit

    _, headers = await make_citizen()
    other = await submit(citizen, headers)
    _, r = await citizen.get(f"/m/me/cases/{other['case_no']}/receipt")
    assert r.status == 404 and "CASE_NOT_FOUND" in r.text
    _, r = await citizen.get(f"/m/me/cases/{other['case_no']}")
    assert r.status == 404


# ---------------------------------------------------------------- my cases, a case, corrections, withdrawal


async def _apply(client) -> str:
    page = await open_form(client)
    files = [("file-0", ("申请书.pdf", PDF, "application/pdf")), ("file-1", ("身份证.jpg", JPG, "image/jpeg"))]
    r = await post(client, f"/m/{MATTER}/apply", page, typed(), files)
    assert r.status == 303, r.text[:500]
    return r.headers["location"].split("/")[4]


async def _act(client, headers, case_no: str, action: str, **args) -> None:
    _, r = await client.post(f"/api/v1/staff/cases/{case_no}/actions", json={"action": action, **args},
                             headers=headers)  # fmt: skip
    assert r.status_code == 200, r.text


async def test_my_cases_and_the_case_page_with_its_timeline_and_next_date(citizen, make_staff):
    case_no = await _apply(citizen)
    _, mine = await citizen.get("/m/me/cases")
    assert mine.status == 200 and case_no in mine.text and "已提交，待受理" in mine.text
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    await _act(citizen, reviewer, case_no, "accept")
    _, r = await citizen.get(f"/m/me/cases/{case_no}")
    text = html.unescape(r.text)
    assert r.status == 200 and "已受理" in text and "提交申请" in text
    assert re.search(r'id="next-step">审批决定，预计 \d{4}-\d{2}-\d{2} 前', text)
    assert re.search(r'id="due-on">\d{4}-\d{2}-\d{2}（3 个工作日）', text)
    assert FORM in text and "申请书.pdf" in text and "首次提交" in text
    assert "撤回申请" not in text  # accepted: no longer withdrawable


async def test_withdraw_after_confirming(citizen):
    case_no = await _apply(citizen)
    _, r = await citizen.get(f"/m/me/cases/{case_no}")
    assert "<summary>撤回申请</summary>" in r.text and 'for="f-reason"' in r.text
    _, done = await citizen.post(f"/m/me/cases/{case_no}/withdraw", data={"csrf": _csrf(r.text), "reason": "信息填错"},
                                 follow_redirects=False)  # fmt: skip
    assert done.status == 303 and done.headers["location"] == f"/m/me/cases/{case_no}?done=withdraw"
    _, after = await citizen.get(done.headers["location"])
    assert "申请已撤回" in after.text and "已撤回" in after.text and "确认撤回" not in after.text
    _, twice = await citizen.post(f"/m/me/cases/{case_no}/withdraw", data={"csrf": _csrf(r.text)})
    assert twice.status == 409 and "不能执行此操作" in twice.text and 'class="alert"' in twice.text


async def test_correction_asked_then_uploaded_and_handed_in(citizen, make_staff):
    case_no = await _apply(citizen)
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    await _act(citizen, reviewer, case_no, "require_correction", reason="身份证照片不清晰", materials=[ID_CARD])
    _, r = await citizen.get(f"/m/me/cases/{case_no}")
    text = html.unescape(r.text)
    assert "需补正材料" in text and "身份证照片不清晰" in text and f"请补正以下材料：「{ID_CARD}」" in text
    assert f'action="/m/me/cases/{case_no}/resubmit"' in r.text and 'capture="environment"' in r.text
    assert "撤回申请" in text  # withdrawal is still allowed while a correction is asked
    path = f"/m/me/cases/{case_no}/resubmit"
    nothing = await post(citizen, path, r, {"op": "submit"}, [("file-0", NO_FILE)])
    assert nothing.status == 422 and error_of(nothing.text, "file-0") == "请上传此材料（必需）"
    wrong = await post(citizen, path, r, {"op": "submit"}, [("file-0", ("x.pdf", PDF, "application/pdf"))])
    assert wrong.status == 422 and "允许的类型" in error_of(wrong.text, "file-0")
    saved = await post(citizen, f"{path}/upload", r, {"op": "save"}, [("file-0", ("清晰.jpg", JPG, "image/jpeg"))])
    assert saved.status == 303
    _, kept = await citizen.get(f"/m/me/cases/{case_no}")
    assert "清晰.jpg" in kept.text
    done = await post(citizen, path, kept, {"op": "submit"}, [("file-0", NO_FILE)])
    assert done.status == 303 and done.headers["location"] == f"/m/me/cases/{case_no}?done=resubmit"
    _, after = await citizen.get(done.headers["location"])
    text = html.unescape(after.text)
    assert "补正材料已提交" in text and "已补正" in text and "第 1 次补正" in text and "清晰.jpg" in text
    assert "提交补正材料" not in text


async def test_a_completed_case_invites_a_rating_with_a_link(citizen, make_staff):
    case_no = await _apply(citizen)
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    for action in ("accept", "start_review", "approve", "deliver", "complete"):
        await _act(citizen, reviewer, case_no, action)
    link = f'href="/m/rate/new?subject_type=case&amp;subject_id={case_no}"'
    _, r = await citizen.get(f"/m/me/cases/{case_no}")
    assert "欢迎对本次服务进行评价" in r.text and link in r.text
    _, mine = await citizen.get("/m/me/cases")
    assert link in mine.text


# ---------------------------------------------------------------- progress without signing in


async def test_progress_query_code_never_travels_in_an_address(citizen):
    case_no = await _apply(citizen)
    _, receipt = await citizen.get(f"/m/me/cases/{case_no}/receipt")
    code = re.search(r'id="query-code">([2-9A-Z]{8})<', receipt.text).group(1)
    _, moved = await citizen.get("/p", params={"case_no": case_no, "query_code": code}, follow_redirects=False)
    assert moved.status == 303 and moved.headers["location"] == f"/p?case_no={case_no}"  # the code leaves the address
    _, form = await citizen.get(moved.headers["location"])
    assert form.status == 200 and 'method="post" action="/p"' in form.text
    assert "提交申请" not in form.text and code not in form.text and f'value="{case_no}"' in form.text
    _, wrong = await citizen.post("/p", data={"case_no": case_no, "query_code": "ZZZZZZZZ"})
    assert wrong.status == 404 and error_of(wrong.text, "query_code") == "办件编号或查询码不正确"
    assert "ZZZZZZZZ" not in wrong.text and f'value="{case_no}"' in wrong.text
    _, empty = await citizen.post("/p", data={"case_no": "", "query_code": ""})
    assert empty.status == 422 and error_of(empty.text, "case_no") and error_of(empty.text, "query_code")


async def test_a_damaged_receipt_code_says_so_and_offers_the_form(seeded):
    _, r = await seeded.get("/p/ZC1AAAABBBBCCCC")
    assert r.status == 404 and "二维码无效或已失效" in r.text
    assert "办件编号或查询码不正确" not in r.text and 'name="query_code"' in r.text


# ---------------------------------------------------------------- words and the API's list of missing materials


async def test_a_missing_material_whose_name_holds_a_separator_is_listed_whole(seeded, make_citizen):
    _, headers = await make_citizen()
    body = {"matter_code": ZERO, "applicant": {"kind": "self", "name": "张三", "id_number": APPLICANT_ID}}
    _, r = await seeded.post("/api/v1/cases", json=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 422 and r.json["error"]["code"] == "MATERIALS_MISSING"
    assert r.json["error"]["details"]["missing"] == [JOINED]  # a JSON list: the 、 in the name splits nothing
    assert r.json["error"]["message"] == f"缺少 1 项必需的申请材料：「{JOINED}」"


async def test_guide_words_agree_with_the_form_and_zero_visit_leads_with_apply(citizen):
    _, guide = await citizen.get(f"/m/{ZERO}")
    assert "非必需" not in guide.text and '<span class="opt">按需</span>' in guide.text
    assert "<b>即办</b>承诺时限" in guide.text and "<b>即办</b>法定时限" in guide.text
    assert "0 个工作日" not in guide.text and "<b>0</b>" not in guide.text
    nav = guide.text[guide.text.index('<nav class="actions"') :]
    assert nav.index(f"/m/{ZERO}/apply") < nav.index(f"/m/{ZERO}/book")
    assert f'<a href="/m/{ZERO}/apply" class="primary">申报</a>' in nav and 'class="primary">预约' not in nav
    form = (await open_form(citizen, ZERO)).text
    assert '<span class="opt">按需</span>' in form and "承诺时限 即办" in form and 'value="ems"' not in form
    _, other = await citizen.get(f"/m/{MATTER}")
    assert f'<a href="/m/{MATTER}/book" class="primary">' in other.text  # one visit: booking leads


async def test_a_same_day_case_is_accepted_as_即办(citizen, make_staff):
    page = await open_form(citizen, ZERO)
    r = await post(citizen, f"/m/{ZERO}/apply", page, typed(), [("file-0", ("户口簿.jpg", JPG, "image/jpeg")),
                                                                  ("file-1", NO_FILE)])  # fmt: skip
    assert r.status == 303, r.text[:400]
    case_no = r.headers["location"].split("/")[4]
    _, clerk = await make_staff("reviewer", departments=["gjjzx"])
    await _act(citizen, clerk, case_no, "accept")
    _, case = await citizen.get(f"/m/me/cases/{case_no}")
    text = html.unescape(case.text)
    assert "承诺办结时限 即办" in text and "0 个工作日" not in text and "（即办）" in text


async def test_pages_stay_small_and_the_api_says_what_the_applicant_may_do(citizen):
    case_no = await _apply(citizen)
    for path in (f"/m/me/cases/{case_no}/receipt", f"/m/me/cases/{case_no}", "/m/me/cases", f"/m/{MATTER}/apply"):
        _, r = await citizen.get(path)
        assert r.status == 200 and len(r.content) < 60 * 1024, (path, len(r.content))
    # the same case through the API (the session's token): the applicant may withdraw it now
    access = citizen.cookies.get("zd_at")
    _, r = await citizen.get(f"/api/v1/cases/{case_no}", headers={"Authorization": f"Bearer {access}"})
    assert r.status_code == 200 and r.json["actions"] == ["withdraw"]
