"""The public /stats dashboard's charts at phone, tablet and desktop widths in real headless Chromium.

Eight departments with long names (one mixing Chinese and Latin words) besides the March 2026 data set of
tests/unit/test_indicators.py. At 390, 768 and 1280 px: every label of every chart (names, values, the
target) lies inside its SVG, measured on screen and in SVG units; no two labels overlap; every chart has
a title; the date inputs are on screen whole; axe-core finds nothing serious or critical.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import BACKEND
from tests.e2e.h5 import CHROMIUM, CHROMIUM_ARGS, ROOT, Journey

LONG_NAMES = {
    "scjgj": "张家界市市场监督管理局（张家界市知识产权局）",
    "gjjzx": "张家界市住房公积金管理中心武陵源区管理部",
    "rsj": "张家界市人力资源和社会保障局（市社会保险事业管理服务中心）",
    "wly": "张家界市 Wulingyuan District Administrative Approval Service Bureau 武陵源区行政审批服务局",
    "zrzyj": "张家界市自然资源和规划局不动产登记中心永定区分中心",
    "swj": "国家税务总局张家界市税务局第一税务分局（办税服务厅）",
    "gaj": "张家界市公安局出入境管理支队暨户政管理支队",
    "zwfwj": "张家界市人民政府政务服务中心（市数据资源管理局）综合窗口",
}
SEED = """
import asyncio, datetime as dt, sys, uuid
from app import db
from app.settings import Settings
from app.feedback.models import Rating, SubjectType
from app.matters.models import Department
from tests.unit.test_indicators import at, make_matter, seed_march

NAMES = %r
SECTIONS = ["tax", "public_security", "real_estate", "general", "investment", "social_security"]

async def main():
    await db.init_db(Settings(database_url=sys.argv[1]))
    try:
        await seed_march()
        for i, (code, name) in enumerate(NAMES.items()):
            if not await Department.exists(code=code):
                await Department.create(code=code, name=name)
                matter = f"4308-LN-{i:02d}-{i:03d}"
                await make_matter(matter, section=SECTIONS[i %% len(SECTIONS)], department=code, visits=i %% 3,
                                  online_depth=3)
                for level in range(1, 2 + i %% 4):
                    await Rating.create(id=uuid.uuid4(), subject_type=SubjectType.visit, subject_id=str(uuid.uuid4()),
                                        citizen_id=uuid.uuid4(), level=5 - level %% 3, matter_code=matter,
                                        department_code=code, hall_code="main", created_at=at(2026, 3, 10))
            else:
                await Department.filter(code=code).update(name=name)
    finally:
        await db.close_db()

asyncio.run(main())
""" % (LONG_NAMES,)  # noqa: UP031 - a script with its own format braces
WIDTHS = (390, 768, 1280)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) not installed")

# Each chart: its box on screen, its viewBox, its title, and each label's box on screen and in SVG units.
READ_CHARTS = """() => [...document.querySelectorAll('svg.chart')].map(svg => {
  const box = svg.getBoundingClientRect();
  const title = svg.querySelector(':scope > title');
  const named = (svg.getAttribute('aria-labelledby') || '').split(' ').map(id => document.getElementById(id));
  const heading = document.getElementById(svg.id + '-h');
  return {
    id: svg.id,
    svg: {left: box.left, top: box.top, right: box.right, bottom: box.bottom},
    viewBox: svg.viewBox.baseVal ? [svg.viewBox.baseVal.width, svg.viewBox.baseVal.height] : null,
    title: title ? title.textContent.trim() : '',
    labelledBy: named.map(n => n ? n.textContent.trim() : null),
    heading: heading ? heading.textContent.trim() : '',
    headingShown: heading ? heading.getBoundingClientRect().height > 0 : false,
    labels: [...svg.querySelectorAll('text.label')].map(t => {
      const r = t.getBoundingClientRect();
      const b = t.getBBox();
      return {text: t.textContent, left: r.left, top: r.top, right: r.right, bottom: r.bottom,
              x: b.x, y: b.y, w: b.width, h: b.height};
    }),
  };
})"""
READ_DATES = """() => [...document.querySelectorAll('input[type=date]')].map(i => {
  const r = i.getBoundingClientRect();
  return {name: i.name, left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width,
          label: i.labels.length ? i.labels[0].textContent.trim() : '', innerWidth: window.innerWidth};
})"""
SLACK = 0.5  # px: sub-pixel rounding of the boxes


def _seed(database_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SEED, database_url], text=True, capture_output=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def _overlap(a: dict, b: dict) -> bool:
    return (
        min(a["right"], b["right"]) - max(a["left"], b["left"]) > SLACK
        and min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > SLACK
    )


def _check_charts(charts: list[dict], width: int) -> None:
    assert [c["id"] for c in charts] == ["chart-city", "chart-sections", "chart-departments"], width
    for chart in charts:
        where = f"{chart['id']} at {width} px"
        assert chart["title"] and chart["labelledBy"] == [chart["title"]], where
        assert chart["heading"] == chart["title"] and chart["headingShown"], where
        box, (vw, vh) = chart["svg"], chart["viewBox"]
        assert box["right"] <= width + SLACK, where
        for label in chart["labels"]:
            what = f"{where}: {label['text']!r}"
            # On screen, inside the SVG's box ...
            assert label["left"] >= box["left"] - SLACK and label["right"] <= box["right"] + SLACK, what
            assert label["top"] >= box["top"] - SLACK and label["bottom"] <= box["bottom"] + SLACK, what
            # ... and in SVG units, inside the viewBox (so nothing the SVG clips).
            assert label["x"] >= -SLACK and label["x"] + label["w"] <= vw + SLACK, what
            assert label["y"] >= -SLACK and label["y"] + label["h"] <= vh + SLACK, what
        labels = chart["labels"]
        for i, a in enumerate(labels):
            for b in labels[i + 1 :]:
                assert not _overlap(a, b), f"{where}: {a['text']!r} overlaps {b['text']!r}"
    # Every department with its whole name (a line breaks at a space, which is then not drawn).
    names = [t["text"].replace(" ", "") for t in charts[2]["labels"] if not t["text"].endswith(("%", "—"))]
    assert sorted(names) == sorted(n.replace(" ", "") for n in LONG_NAMES.values()), width


def test_chart_labels_fit_and_do_not_overlap_at_every_width(start_server, tmp_path, request):
    if BACKEND == "postgres":
        database_url = request.getfixturevalue("pg_scratch_db")
    else:
        database_url = f"sqlite://{tmp_path / 'labels.sqlite3'}"
    server = start_server(DATABASE_URL=database_url, LOAD_DEMO="false")
    _seed(database_url)
    journey = Journey.in_dir(tmp_path, request.node.name)

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            for width in WIDTHS:
                context = browser.new_context(viewport={"width": width, "height": 900}, locale="zh-CN")
                context.set_default_timeout(15_000)
                page = context.new_page()
                response = page.goto(server.url + "/stats?from=2026-03-01&to=2026-03-31")
                assert response is not None and response.status == 200
                page.evaluate("document.fonts.ready")
                _check_charts(page.evaluate(READ_CHARTS), width)
                dates = page.evaluate(READ_DATES)
                assert [(d["name"], d["label"]) for d in dates] == [("from", "起始日期"), ("to", "结束日期")]
                for d in dates:
                    assert d["left"] >= 0 and d["right"] <= d["innerWidth"], (width, d)
                    assert d["width"] >= 140, (width, d)  # room for the whole date and its picker button
                journey.check(page, f"stats at {width} px")
                context.close()
        finally:
            browser.close()
    journey.assert_accessible()
