"""GET /api/v1/admin/indicators (JSON and CSV) and the public /stats dashboard, over HTTP.

The data set and its hand-worked numbers are those of tests/unit/test_indicators.py (March 2026).
"""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from app.stats import indicators
from tests.unit.test_indicators import DEPARTMENT_NAMES, VALUES, seed_march

URL = "/api/v1/admin/indicators"
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}
SHARES = {"one_visit_rate", "zero_visit_rate", "online_depth_rate", "online_case_rate", "on_time_rate",
          "bundle_on_time_rate", "no_show_rate", "satisfaction_rate"}  # fmt: skip
CITY_CHART = ["one_visit_rate", "zero_visit_rate", "online_depth_rate", "online_case_rate", "on_time_rate",
              "satisfaction_rate"]  # fmt: skip


# ---------------------------------------------------------------- a small HTML tree (stdlib only)


class Node:
    """An element: tag, attributes, children and its own text."""

    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.parts: list[str | Node] = []

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str, **attrs: str | bool) -> list[Node]:
        """Descendants with this tag whose attributes are equal (or present, for True)."""
        out = []
        for node in self.iter():
            if node is self or node.tag != tag:
                continue
            ok = True
            for name, want in attrs.items():
                name = name.rstrip("_").replace("_", "-")
                have = node.attrs.get(name)
                if want is True:
                    ok = ok and name in node.attrs
                elif name == "class":
                    ok = ok and want in (have or "").split()
                else:
                    ok = ok and have == want
            if ok:
                out.append(node)
        return out

    def one(self, tag: str, **attrs: str | bool) -> Node:
        found = self.find_all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p.text for p in self.parts)


class Tree(HTMLParser):
    VOID = frozenset({"meta", "input", "br", "img", "link", "hr", "source", "area", "base", "col", "wbr"})

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.stack = [self.root]
        self.feed(html)
        self.close()

    def _add(self, tag: str, attrs: list[tuple[str, str | None]]) -> Node:
        parent = self.stack[-1]
        node = Node(tag, dict(attrs), parent)
        parent.children.append(node)
        parent.parts.append(node)
        return node

    def handle_starttag(self, tag, attrs):
        node = self._add(tag, attrs)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self._add(tag, attrs)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        self.stack[-1].parts.append(data)


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


# ---------------------------------------------------------------- fixtures


@pytest.fixture
async def march(client):
    await seed_march()
    return client


async def _report(client, headers, **params: str) -> dict[str, Any]:
    _, r = await client.get(URL, params={**MARCH, **params}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json


# ---------------------------------------------------------------- access and validation


async def test_only_administrators_read_the_indicators(march, make_staff, admin_headers):
    client = march
    _, r = await client.get(URL, params=MARCH)
    assert r.status_code == 401 and r.json["error"]["code"] == "TOKEN_MISSING"
    _, r = await client.get(URL, params=MARCH, headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    _, clerk = await make_staff("clerk", hall="main")
    for headers in (reviewer, clerk):
        for params in (MARCH, {**MARCH, "format": "csv"}):
            _, r = await client.get(URL, params=params, headers=headers)
            assert r.status_code == 403 and r.json["error"]["code"] == "INSUFFICIENT_ROLE", r.text
    _, r = await client.get(URL, params=MARCH, headers=admin_headers)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "private, no-store"
    assert r.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-02-30"},
        {"from": "not-a-date"},
        {"to": "2026-13-01"},
        {"from": "2026/03/01"},
        {**MARCH, "format": "xlsx"},
    ],
)
async def test_malformed_query_is_422(march, admin_headers, params):
    _, r = await march.get(URL, params=params, headers=admin_headers)
    assert r.status_code == 422, r.text
    assert r.json["error"]["code"] == "INVALID_INPUT"


async def test_from_after_to_is_422_range_invalid(march, admin_headers):
    _, r = await march.get(URL, params={"from": "2026-03-31", "to": "2026-03-01"}, headers=admin_headers)
    assert r.status_code == 422 and r.json["error"]["code"] == "RANGE_INVALID", r.text
    assert r.json["error"]["details"] == {"from": "2026-03-31", "to": "2026-03-01"}
    _, r = await march.get(URL, params={"from": "2000-01-01", "to": "2026-03-01"}, headers=admin_headers)
    assert r.status_code == 422 and r.json["error"]["code"] == "RANGE_INVALID"
    _, r = await march.get(URL, params={"from": "2026-03-31", "to": "2026-03-01", "format": "csv"},
                           headers=admin_headers)  # fmt: skip
    assert r.status_code == 422 and r.json["error"]["code"] == "RANGE_INVALID"


async def test_default_period_is_this_year_to_today(fake_clock, march, admin_headers):
    _, r = await march.get(URL, headers=admin_headers)
    assert r.status_code == 200, r.text
    report = r.json
    # The fake clock stands at 2026-09-30 10:00 Shanghai: 2026-01-01 .. 2026-09-30, target of 2026.
    assert (report["from"], report["to"]) == ("2026-01-01", "2026-09-30")
    assert report["target_percent"] == 95 and report["year_of_reform"] == 9
    assert report["generated_at"] == "2026-09-30T10:00:00+08:00"
    # Everything seeded from February to April 2026 falls in it: the February ratings (level 1) and the
    # April one (level 5) join March's 5: 3 + 1 good of 7.
    assert report["city"]["counts"]["ratings"] == 7
    assert report["city"]["indicators"]["satisfaction_rate"]["value"] == 0.5714  # 4 / 7


async def test_json_report_of_march(march, admin_headers):
    report = await _report(march, admin_headers)
    assert (report["from"], report["to"], report["target_percent"]) == ("2026-03-01", "2026-03-31", 95)
    assert {k: v["value"] for k, v in report["city"]["indicators"].items()} == VALUES["city"]
    for s in report["by_section"]:
        assert {k: v["value"] for k, v in s["indicators"].items()} == VALUES[f"section:{s['section']}"], s["section"]
    assert [(d["department"], d["name"]) for d in report["by_department"]] == sorted(DEPARTMENT_NAMES.items())
    assert report["city"]["indicators"]["on_time_rate"] == {"value": 0.8, "target": 0.95, "met": False}


# ---------------------------------------------------------------- CSV


async def test_csv_export(march, admin_headers):
    report = await _report(march, admin_headers)
    _, r = await march.get(URL, params={**MARCH, "format": "csv"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="indicators-2026-03-01-2026-03-31.csv"'
    assert r.headers["cache-control"] == "private, no-store"
    assert r.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == ["scope", "key", "name", "indicator", "indicator_name", "value", "target", "met"]
    assert len(rows) == 1 + 10 * (1 + len(report["by_section"]) + len(report["by_department"])) == 51
    scopes = {("city", ""): report["city"]}
    scopes.update({("section", s["section"]): s for s in report["by_section"]})
    scopes.update({("department", d["department"]): d for d in report["by_department"]})
    seen = set()
    for scope, key, name, indicator, indicator_name, value, target, met in rows[1:]:
        data = scopes[(scope, key)]["indicators"][indicator]
        assert value == ("" if data["value"] is None else str(data["value"]))
        assert target == ("" if data["target"] is None else str(data["target"]))
        assert met == ("" if data["met"] is None else str(data["met"]).lower())
        assert indicator_name == indicators.NAMES[indicator]
        assert name == ("全市" if scope == "city" else scopes[(scope, key)]["name"])
        seen.add((scope, key, indicator))
    assert len(seen) == 50
    assert ["city", "", "全市", "online_case_rate", "网上申报办件占比", "0.6154", "0.95", "false"] in rows


# ---------------------------------------------------------------- the /stats page


async def test_stats_page_shows_the_apis_numbers(march, admin_headers):
    client = march
    report = await _report(client, admin_headers)
    _, r = await client.get("/stats", params=MARCH)  # public: no token
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    tree = Tree(r.text).root
    assert "统计期 2026-03-01 至 2026-03-31 · 改革第 9 年，目标 95%" in " ".join(r.text.split())

    # The city table: one row per indicator, in the API's order, with the value in data-value.
    city = tree.one("table", id="city")
    rows = city.find_all("tr", data_indicator=True)
    assert [row.attrs["data-indicator"] for row in rows] == list(report["names"])
    for row in rows:
        key = row.attrs["data-indicator"]
        data = report["city"]["indicators"][key]
        cell = row.one("td", class_="value")
        assert cell.attrs["data-value"] == ("" if data["value"] is None else str(data["value"])), key
        want = VALUES["city"][key]
        assert (None if want is None else float(cell.attrs["data-value"])) == want, key
        shown = cell.text.strip()
        assert shown == (pct(data["value"]) if key in SHARES else str(data["value"])), (key, shown)
        tds = row.find_all("td")
        assert tds[0].text.strip() == report["names"][key]
        assert tds[2].text.strip() == ("95.0%" if data["target"] is not None else "—"), key
        met = {None: "—", True: "✔ 达标", False: "✘ 未达标"}[data["met"]]
        assert tds[3].text.strip() == met, key

    # The departments table.
    rows = tree.one("table", id="departments").find_all("tr", data_department=True)
    assert [row.attrs["data-department"] for row in rows] == [d["department"] for d in report["by_department"]]
    for row, d in zip(rows, report["by_department"], strict=True):
        cells = [td.text.strip() for td in row.find_all("td")]
        ind = d["indicators"]
        assert cells == [d["name"], pct(ind["one_visit_rate"]["value"]), pct(ind["on_time_rate"]["value"]),
                         pct(ind["satisfaction_rate"]["value"]), str(d["counts"]["online_cases"])]  # fmt: skip

    # The charts are inline SVG: bars carry the API's values.
    chart = tree.one("svg", id="chart-city")
    values = [float(b.attrs["data-value"]) for b in chart.find_all("rect", class_="bar")]
    assert values == [report["city"]["indicators"][k]["value"] for k in CITY_CHART]
    chart = tree.one("svg", id="chart-sections")
    values = [float(b.attrs["data-value"]) for b in chart.find_all("rect", class_="bar")]
    assert values == [s["indicators"]["one_visit_rate"]["value"] for s in report["by_section"]] == [1.0, 0.3333]
    chart = tree.one("svg", id="chart-departments")
    values = [float(b.attrs["data-value"]) for b in chart.find_all("rect", class_="bar")]
    assert values == [d["indicators"]["satisfaction_rate"]["value"] for d in report["by_department"]]
    for bar in tree.find_all("rect", class_="bar"):
        # 300 units of width stand for 100 %.
        assert float(bar.attrs["width"]) == pytest.approx(float(bar.attrs["data-value"]) * 300, abs=0.051)


async def test_stats_page_is_self_contained(march):
    _, r = await march.get("/stats", params=MARCH)
    assert r.status_code == 200
    html = r.text
    tree = Tree(html).root
    assert tree.find_all("svg") and "<svg" in html
    assert tree.find_all("script") == []  # no script at all, let alone <script src=...>
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.I)
    for link in tree.find_all("link"):
        assert not (link.attrs.get("href") or "").lower().startswith(("http:", "https:", "//")), link.attrs
    # Every URL the page names is on this origin; the only absolute one is the SVG namespace.
    for node in tree.iter():
        for name in ("src", "href", "action", "xlink:href", "srcset", "poster", "data"):
            value = (node.attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), (node.tag, name, value)
    assert set(re.findall(r"(?:https?:)?//[^\s\"'<>)]+", html)) == {"http://www.w3.org/2000/svg"}
    assert "@import" not in html and not re.search(r"url\(\s*['\"]?(https?:)?//", html)


async def test_stats_page_period_errors(march):
    _, r = await march.get("/stats", params={"from": "2026-03-31", "to": "2026-03-01"}, headers={"Accept": "text/html"})
    assert r.status_code == 422
    assert "日期范围不正确" in r.text
    _, r = await march.get("/stats", params={"from": "2026-02-30"})
    assert r.status_code == 422
