"""What changed between two versions of a guide, field by field (the draft against the published one)."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

# Chinese labels of the guide's fields, in the order an administrator reads a guide.
FIELD_LABELS: dict[str, str] = {
    "name": "事项名称",
    "type": "事项类型",
    "section": "业务板块",
    "department": "实施主体",
    "hall": "办理大厅",
    "counter": "办理窗口",
    "summary": "简介",
    "legal_basis": "设定依据",
    "conditions": "受理条件",
    "materials": "申请材料",
    "steps": "办理流程",
    "legal_limit_days": "法定时限（工作日）",
    "promised_limit_days": "承诺时限（工作日）",
    "special_procedures": "特殊环节",
    "fees": "收费",
    "visits": "到现场次数",
    "online_depth": "网办深度",
    "booking": "可预约",
    "online_apply": "可网上申报",
    "apply_loa": "网上申报所需认证等级",
    "postal_delivery": "可邮寄送达",
    "consult_phone": "咨询电话",
    "complaint_phone": "监督投诉电话",
    "faq": "常见问题",
}


@dataclass(frozen=True)
class Line:
    """One line of a text diff: '+' added, '-' removed, ' ' kept."""

    op: str
    text: str


@dataclass(frozen=True)
class FieldChange:
    """One changed field: its old and new value as text, the line diff, and added/removed list rows."""

    key: str
    label: str
    old: str
    new: str
    lines: tuple[Line, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = field(default=())


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True)


def _rows(value: Any) -> dict[str, Any]:
    """A list of named rows (materials, fees, steps...) keyed by name (or question, or position)."""
    out: dict[str, Any] = {}
    for index, row in enumerate(value if isinstance(value, list | tuple) else ()):
        key = str(row.get("name") or row.get("question") or f"#{index + 1}") if isinstance(row, dict) else str(row)
        out[key] = row
    return out


def guide_diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[FieldChange]:
    """The fields whose value differs between two guide contents (old may be None: nothing published)."""
    old = old or {}
    keys = list(FIELD_LABELS) + sorted((set(old) | set(new)) - set(FIELD_LABELS))
    changes: list[FieldChange] = []
    for key in keys:
        before, after = old.get(key), new.get(key)
        if _normalise(before) == _normalise(after):
            continue
        a, b = _text(before), _text(after)
        lines = tuple(Line(d[0], d[2:]) for d in difflib.ndiff(a.splitlines(), b.splitlines()) if d[:1] in "+- ")
        added = removed = changed = ()
        if isinstance(before, list | tuple) or isinstance(after, list | tuple):
            rows_a, rows_b = _rows(before), _rows(after)
            added = tuple(k for k in rows_b if k not in rows_a)
            removed = tuple(k for k in rows_a if k not in rows_b)
            changed = tuple(k for k in rows_b if k in rows_a and _normalise(rows_a[k]) != _normalise(rows_b[k]))
        changes.append(FieldChange(key, FIELD_LABELS.get(key, key), a, b, lines, added, removed, changed))
    return changes


def _normalise(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
