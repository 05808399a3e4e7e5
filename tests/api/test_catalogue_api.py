"""The public catalogue API through the ASGI client: sections, search, guides, versions."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from app.matters import service
from tests import factories

LICENCE = "4308-XK-SS-001"
FOOD = "4308-XK-SS-002"
FUND = "4308-GG-ZF-001"
SECTION_NAMES = ["投资项目审批", "商事登记", "不动产登记", "社会保障", "税费缴纳", "公安服务", "其他综合服务"]


@pytest.fixture
async def catalogue(services):
    """The small catalogue, imported through the service."""
    await service.import_catalogue(services.catalogue, data=factories.small_catalogue())


def assert_error(resp, status: int, code: str) -> dict:
    assert resp.status == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body["error"]


# ---------------------------------------------------------------- sections, halls, departments


async def test_sections(client, catalogue):
    _, resp = await client.get("/api/v1/sections")
    assert resp.status == 200
    items = resp.json["items"]
    assert len(items) == 7
    assert [s["name"] for s in items] == SECTION_NAMES
    counts = {s["code"]: s["matter_count"] for s in items}
    assert counts["commercial"] == 2
    assert counts["social_security"] == 1
    assert sum(counts.values()) == 3


async def test_sections_of_an_empty_catalogue(client):
    _, resp = await client.get("/api/v1/sections")
    assert resp.status == 200
    assert [s["matter_count"] for s in resp.json["items"]] == [0] * 7


async def test_halls_and_departments(client, catalogue):
    _, resp = await client.get("/api/v1/halls")
    assert resp.status == 200
    assert [h["code"] for h in resp.json["items"]] == ["main", "gongjijin"]
    assert resp.json["items"][0]["address"] == "永定区子午路 1 号"
    _, resp = await client.get("/api/v1/departments")
    assert resp.status == 200
    assert {d["code"]: d["name"] for d in resp.json["items"]} == {
        "gjjzx": "张家界市住房公积金管理中心",
        "scjgj": "市市场监督管理局",
    }


# ---------------------------------------------------------------- search


async def search(client, **params) -> dict:
    _, resp = await client.get("/api/v1/matters", params=params)
    assert resp.status == 200, resp.text
    return resp.json


async def test_search_envelope(client, catalogue):
    body = await search(client)
    assert set(body) == {"items", "total", "page", "page_size"}
    assert (body["total"], body["page"], body["page_size"]) == (3, 1, 20)
    assert [m["code"] for m in body["items"]] == [LICENCE, FOOD, FUND]
    item = body["items"][0]
    assert item["name"] == "营业执照设立登记"
    assert item["section_name"] == "商事登记"
    assert item["department_name"] == "市市场监督管理局"
    assert item["visits_label"] == "最多跑一次"


async def test_search_params(client, catalogue):
    assert [m["code"] for m in (await search(client, q="公积金"))["items"]] == [FUND]
    assert [m["code"] for m in (await search(client, q="xk-ss-002"))["items"]] == [FOOD]
    assert [m["code"] for m in (await search(client, section="commercial"))["items"]] == [LICENCE, FOOD]
    assert [m["code"] for m in (await search(client, department="gjjzx"))["items"]] == [FUND]
    assert [m["code"] for m in (await search(client, visits_max=0))["items"]] == [FOOD, FUND]
    assert (await search(client, q="  执照  "))["total"] == 1  # whitespace is stripped
    assert (await search(client, q="no such matter"))["total"] == 0


async def test_search_pagination(client, catalogue):
    first = await search(client, page=1, page_size=2)
    second = await search(client, page=2, page_size=2)
    third = await search(client, page=3, page_size=2)
    assert (first["total"], first["page"], first["page_size"]) == (3, 1, 2)
    assert [len(p["items"]) for p in (first, second, third)] == [2, 1, 0]
    assert (third["total"], third["page"]) == (3, 3)
    assert {m["code"] for m in first["items"] + second["items"]} == {LICENCE, FOOD, FUND}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": "0"}, "page"),
        ({"page": "abc"}, "page"),
        ({"page_size": "1000"}, "page_size"),
        ({"page_size": "0"}, "page_size"),
        ({"visits_max": "-1"}, "visits_max"),
        ({"section": "bogus"}, "section"),
        ({"q": "长" * 51}, "q"),
    ],
)
async def test_search_bad_params_are_422_with_field_details(client, params, field):
    _, resp = await client.get("/api/v1/matters", params=params)
    error = assert_error(resp, 422, "INVALID_INPUT")
    assert list(error["details"]["fields"]) == [field]
    assert error["details"]["fields"][field]


async def test_search_reports_every_bad_param(client):
    _, resp = await client.get("/api/v1/matters", params={"page": "0", "page_size": "1000", "visits_max": "-1"})
    error = assert_error(resp, 422, "INVALID_INPUT")
    assert set(error["details"]["fields"]) == {"page", "page_size", "visits_max"}


# ---------------------------------------------------------------- guide


async def test_guide_has_every_element(client, catalogue):
    _, resp = await client.get(f"/api/v1/matters/{LICENCE}")
    assert resp.status == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    g = resp.json
    assert (g["code"], g["name"], g["version"], g["version_status"], g["status"]) == (
        LICENCE,
        "营业执照设立登记",
        1,
        "published",
        "active",
    )
    assert (g["type"], g["type_name"], g["section"], g["section_name"]) == (
        "license",
        "行政许可",
        "commercial",
        "商事登记",
    )
    assert g["department"] == {"code": "scjgj", "name": "市市场监督管理局", "phone": "0744-8200001"}
    assert g["legal_basis"] == "《中华人民共和国市场主体登记管理条例》第三条"
    assert g["conditions"] == ["申请人具有完全民事行为能力"]
    assert [(m["name"], m["form"], m["form_name"], m["copies"], m["required"]) for m in g["materials"]] == [
        ("公司登记（备案）申请书", "original", "原件", 1, True),
        ("居民身份证", "copy", "复印件", 1, True),
    ]
    assert g["materials"][1]["file_types"] == ["jpg", "png"]
    assert [(s["name"], s["actor"], s["days"]) for s in g["steps"]] == [
        ("受理", "窗口工作人员", 0),
        ("审核", "登记科", 1),
        ("决定", "科室负责人", 1),
        ("送达", "窗口工作人员", 1),
    ]
    assert (g["legal_limit_days"], g["promised_limit_days"]) == (15, 3)
    assert g["special_procedures"] == []
    assert (g["fees"], g["fee_total_fen"]) == ([], 0)
    assert (g["visits"], g["visits_label"], g["online_depth"]) == (1, "最多跑一次", 3)
    assert (g["booking"], g["online_apply"], g["postal_delivery"]) == (True, True, True)
    assert g["hall"]["name"] == "张家界市政务服务中心"
    assert g["hall"]["address"] == "永定区子午路 1 号"
    assert g["hall"]["hours"] == "周一至周五 09:00-12:00、13:30-17:00；法定节假日休息，调休上班日照常办公"
    assert g["hall"]["phone"] == "0744-8300000"
    assert g["counter"] == "商事登记区 A1-A8 号窗口"
    assert (g["consult_phone"], g["complaint_phone"]) == ("0744-8200001", "0744-12345")
    assert g["faq"] == [{"question": "可以委托他人办理吗？", "answer": "可以，需提供授权委托书。"}]
    base = f"http://testserver/m/{LICENCE}"
    links = dict(g["links"])
    qr = links.pop("qr", None)  # the matter's printed code, when the QR feature is installed
    if qr is not None:
        assert qr["url"] == f"http://testserver/q/{qr['slug']}"
    assert links == {
        "h5": base,
        "api": f"http://testserver/api/v1/matters/{LICENCE}",
        "book": f"{base}/book",
        "apply": f"{base}/apply",
        "progress": f"{base}/progress",
        "consult": f"{base}/consult",
        "rate": f"{base}/rate",
    }
    assert g["published_at"].endswith("+08:00")
    assert g["successor"] is None


async def test_guide_with_special_procedures_and_fees(client):
    data = factories.catalogue(
        factories.entry(
            LICENCE,
            visits=2,
            special_procedures=[{"name": "专家评审", "max_days": 10}, {"name": "听证", "max_days": 20}],
            fees=[
                {"name": "登记费", "amount_fen": 8000, "basis": "发改价格〔2015〕1号"},
                {"name": "工本费", "amount_fen": 1050},
            ],
        )
    )
    await service.import_catalogue(client.sanic_app.ctx.catalogue, data=data)
    _, resp = await client.get(f"/api/v1/matters/{LICENCE}")
    g = resp.json
    assert g["special_procedures"] == [{"name": "专家评审", "max_days": 10}, {"name": "听证", "max_days": 20}]
    assert [f["amount_fen"] for f in g["fees"]] == [8000, 1050]
    assert g["fees"][0]["basis"] == "发改价格〔2015〕1号"
    assert g["fee_total_fen"] == 9050
    assert g["visits_label"] == "跑 2 次"


async def test_guide_etag_and_conditional_get(client, catalogue):
    _, resp = await client.get(f"/api/v1/matters/{LICENCE}")
    etag = resp.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert "max-age=" in resp.headers["cache-control"]
    assert resp.headers["cache-control"].startswith("public")

    _, resp = await client.get(f"/api/v1/matters/{LICENCE}", headers={"If-None-Match": etag})
    assert resp.status == 304
    assert resp.body == b""
    assert resp.headers["etag"] == etag

    _, resp = await client.get(f"/api/v1/matters/{LICENCE}", headers={"If-None-Match": f'W/{etag}, "other"'})
    assert resp.status == 304

    _, resp = await client.get(f"/api/v1/matters/{LICENCE}", headers={"If-None-Match": '"stale-etag"'})
    assert resp.status == 200
    assert resp.json["code"] == LICENCE
    assert resp.headers["etag"] == etag


async def test_etag_changes_when_a_new_version_is_published(client, catalogue):
    _, resp = await client.get(f"/api/v1/matters/{LICENCE}")
    old_etag = resp.headers["etag"]
    data = factories.small_catalogue()
    data["matters"][0]["promised_limit_days"] = 2
    await service.import_catalogue(client.sanic_app.ctx.catalogue, data=data)
    _, resp = await client.get(f"/api/v1/matters/{LICENCE}", headers={"If-None-Match": old_etag})
    assert resp.status == 200
    assert resp.json["promised_limit_days"] == 2
    assert resp.headers["etag"] != old_etag


async def test_lower_case_code_works(client, catalogue):
    _, resp = await client.get(f"/api/v1/matters/{LICENCE.lower()}")
    assert resp.status == 200
    assert resp.json["code"] == LICENCE


async def test_unknown_matter_is_404(client, catalogue):
    _, resp = await client.get("/api/v1/matters/4308-XX-XX-999")
    error = assert_error(resp, 404, "MATTER_NOT_FOUND")
    assert error["message"] == "未找到该政务服务事项"


async def test_draft_only_matter_is_404(client, catalogue):
    await service.create_matter(code="4308-XK-SS-099", content=factories.guide())
    _, resp = await client.get("/api/v1/matters/4308-XK-SS-099")
    assert_error(resp, 404, "MATTER_NOT_FOUND")


@pytest.mark.parametrize(
    "code",
    [
        "A" * 10_240,
        "营业执照设立登记",
        "💥🚀",
        "' OR '1'='1",
        "1; DROP TABLE matter; --",
        "../etc/passwd",
        "%00",
        "4308-XK-SS-001\u200b",
    ],
    ids=["10kb", "chinese", "emoji", "sql-or", "sql-drop", "traversal", "nul", "zero-width"],
)
async def test_garbage_codes_are_404_never_5xx(client, catalogue, code):
    _, resp = await client.get("/api/v1/matters/" + quote(code, safe=""))
    assert resp.status == 404, resp.text
    assert resp.json["error"]["code"] in {"MATTER_NOT_FOUND", "ROUTE_NOT_FOUND"}


async def test_garbage_code_details_are_bounded(client, catalogue):
    _, resp = await client.get("/api/v1/matters/" + "A" * 10_240)
    error = assert_error(resp, 404, "MATTER_NOT_FOUND")
    assert len(error["details"]["matter_code"]) <= 64


# ---------------------------------------------------------------- versions


async def test_superseded_version_is_readable(client, catalogue):
    data = factories.small_catalogue()
    data["matters"][0]["name"] = "企业设立登记"
    await service.import_catalogue(client.sanic_app.ctx.catalogue, data=data)

    _, resp = await client.get(f"/api/v1/matters/{LICENCE}/versions/1")
    assert resp.status == 200, resp.text
    assert (resp.json["version"], resp.json["version_status"], resp.json["name"]) == (
        1,
        "superseded",
        "营业执照设立登记",
    )
    assert resp.headers["cache-control"] == "public, max-age=86400"
    etag = resp.headers["etag"]
    _, again = await client.get(f"/api/v1/matters/{LICENCE.lower()}/versions/1", headers={"If-None-Match": etag})
    assert again.status == 304

    _, resp = await client.get(f"/api/v1/matters/{LICENCE}/versions/2")
    assert (resp.json["version"], resp.json["version_status"], resp.json["name"]) == (2, "published", "企业设立登记")
    _, current = await client.get(f"/api/v1/matters/{LICENCE}")
    assert current.json["version"] == 2


async def test_draft_and_missing_versions_are_404(client, catalogue):
    await service.save_draft(code=LICENCE, content=factories.guide(name="草稿"))
    for no in (2, 3, 0, -1):
        _, resp = await client.get(f"/api/v1/matters/{LICENCE}/versions/{no}")
        error = assert_error(resp, 404, "VERSION_NOT_FOUND")
        assert error["details"]["matter_code"] == LICENCE
    _, resp = await client.get("/api/v1/matters/4308-XX-XX-999/versions/1")
    assert_error(resp, 404, "MATTER_NOT_FOUND")


@pytest.mark.parametrize(
    "no", ["1000001", "2147483648", "9223372036854775807", "9223372036854775808", "99999999999999999999", "-99999"]
)
async def test_out_of_range_version_numbers_are_404_never_5xx(client, catalogue, no):
    _, resp = await client.get(f"/api/v1/matters/{LICENCE}/versions/{no}")
    error = assert_error(resp, 404, "VERSION_NOT_FOUND")
    assert error["details"] == {"matter_code": LICENCE, "version": int(no)}


async def test_the_highest_version_number_is_looked_up(client, catalogue):
    _, resp = await client.get(f"/api/v1/matters/{LICENCE}/versions/{service.MAX_VERSION_NO}")
    assert_error(resp, 404, "VERSION_NOT_FOUND")  # in range, just not there
    _, resp = await client.get(f"/api/v1/matters/{LICENCE}/versions/0001")
    assert (resp.status, resp.json["version"]) == (200, 1)
