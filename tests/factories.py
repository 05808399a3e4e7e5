"""Factories for test data: small, valid catalogue pieces that tests change as they need."""

from __future__ import annotations

import copy
from typing import Any

DEPARTMENTS = [
    {"code": "scjgj", "name": "市市场监督管理局", "phone": "0744-8200001"},
    {"code": "gjjzx", "name": "张家界市住房公积金管理中心", "phone": "0744-8200002"},
]
HALLS = [
    {
        "code": "main",
        "name": "张家界市政务服务中心",
        "kind": "main",
        "address": "永定区子午路 1 号",
        "phone": "0744-8300000",
        "hours": "周一至周五 09:00-12:00、13:30-17:00；法定节假日休息，调休上班日照常办公",
    },
    {
        "code": "gongjijin",
        "name": "住房公积金分厅",
        "kind": "sub",
        "address": "永定区大庸路 2 号",
        "phone": "0744-8300001",
        "hours": "周一至周五 09:00-12:00、13:30-17:00；法定节假日休息，调休上班日照常办公",
    },
]


def guide(**overrides: Any) -> dict[str, Any]:
    """A complete, valid guide (实施清单) dict."""
    data: dict[str, Any] = {
        "name": "营业执照设立登记",
        "type": "license",
        "section": "commercial",
        "department": "scjgj",
        "hall": "main",
        "counter": "商事登记区 A1-A8 号窗口",
        "summary": "企业设立登记。",
        "legal_basis": "《中华人民共和国市场主体登记管理条例》第三条",
        "conditions": ["申请人具有完全民事行为能力"],
        "materials": [
            {
                "name": "公司登记（备案）申请书",
                "form": "original",
                "copies": 1,
                "required": True,
                "file_types": ["pdf"],
            },
            {"name": "居民身份证", "form": "copy", "copies": 1, "required": True, "file_types": ["jpg", "png"]},
        ],
        "steps": [
            {"name": "受理", "actor": "窗口工作人员", "days": 0},
            {"name": "审核", "actor": "登记科", "days": 1},
            {"name": "决定", "actor": "科室负责人", "days": 1},
            {"name": "送达", "actor": "窗口工作人员", "days": 1},
        ],
        "legal_limit_days": 15,
        "promised_limit_days": 3,
        "special_procedures": [],
        "fees": [],
        "visits": 1,
        "online_depth": 3,
        "booking": True,
        "online_apply": True,
        "postal_delivery": True,
        "consult_phone": "0744-8200001",
        "complaint_phone": "0744-12345",
        "faq": [{"question": "可以委托他人办理吗？", "answer": "可以，需提供授权委托书。"}],
    }
    data.update(overrides)
    return data


def catalogue(*matters: dict[str, Any]) -> dict[str, Any]:
    """An import file with the test departments and halls and the given matter entries."""
    return {
        "version": 1,
        "departments": copy.deepcopy(DEPARTMENTS),
        "halls": copy.deepcopy(HALLS),
        "matters": [copy.deepcopy(m) for m in matters],
    }


def entry(code: str, **overrides: Any) -> dict[str, Any]:
    """A matter entry of an import file."""
    return {"code": code, **guide(**overrides)}


def small_catalogue() -> dict[str, Any]:
    """Three matters: two in the main hall, one in the 住房公积金 sub-hall."""
    return catalogue(
        entry("4308-XK-SS-001"),
        entry("4308-XK-SS-002", name="食品经营许可", visits=0, online_depth=4),
        entry(
            "4308-GG-ZF-001",
            name="住房公积金提取",
            type="public_service",
            section="social_security",
            department="gjjzx",
            hall="gongjijin",
            visits=0,
            online_depth=4,
            fees=[{"name": "工本费", "amount_fen": 0, "basis": "免收"}],
        ),
    )
