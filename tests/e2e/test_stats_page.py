"""The reform dashboard (/stats) in real headless Chromium, against the admin API of the same server.

A real `python -m app run` process without the demo catalogue (PostgreSQL when the suite runs on it,
SQLite otherwise); the March 2026 data set of tests/unit/test_indicators.py written into its database by
a separate process; an admin from the CLI. The browser loads /stats for March, and what it shows (table
values, SVG bars measured on screen) is compared with GET /api/v1/admin/indicators for the same period
and with the hand-worked numbers. Every request the page makes must go to the server's own origin.

Sync Playwright in a plain test, as in test_desk_page.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import BACKEND
from tests.e2e.staff_login import staff_bearer
from tests.unit.test_indicators import VALUES

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
ADMIN, ADMIN_PASSWORD = "stats-admin", "stats admin password 1"
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}
SHARES = {"one_visit_rate", "zero_visit_rate", "online_depth_rate", "online_case_rate", "on_time_rate",
          "no_show_rate", "satisfaction_rate"}  # fmt: skip
CITY_CHART = ["one_visit_rate", "zero_visit_rate", "online_depth_rate", "online_case_rate", "on_time_rate",
              "satisfaction_rate"]  # fmt: skip
SEED = """
import asyncio, sys
from app import db
from app.settings import Settings
from tests.unit.test_indicators import seed_march

async def main():
    await db.init_db(Settings(database_url=sys.argv[1]))
    try:
        await seed_march()
    finally:
        await db.close_db()

asyncio.run(main())
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) not installed")
expect = sync_api.expect

# Every indicator row of the city table: key, data-value, the text shown.
READ_TABLE = """rows => rows.map(r => {
  const cell = r.querySelector('td.value');
  return [r.dataset.indicator, cell.dataset.value, cell.textContent.trim()];
})"""
# Every bar of a chart: its value, and its drawn width against its 100 % track, measured on screen.
READ_BARS = """bars => bars.map(b => {
  const track = b.previousElementSibling;
  return {
    value: b.dataset.value,
    width: b.getBoundingClientRect().width,
    track: track.getBoundingClientRect().width,
    trackWidth: track.getAttribute('width'),
    fill: b.getAttribute('fill'),
  };
})"""
# The target line's position along the track (0..1) in a chart.
READ_TARGET = """svg => {
  const track = svg.querySelector('rect:not(.bar)').getBoundingClientRect();
  const line = svg.querySelector('line').getBoundingClientRect();
  return (line.left - track.left) / track.width;
}"""


def _cli(database_url: str, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "app", *args],
        input=stdin, text=True, capture_output=True, timeout=120, cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
    )  # fmt: skip
    assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _seed(database_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SEED, database_url], text=True, capture_output=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def _admin(url: str, database_url: str) -> dict[str, str]:
    _cli(database_url, "staff", "create", "--role", "admin", "--username", ADMIN, "--password-stdin",
         stdin=ADMIN_PASSWORD + "\n")  # fmt: skip
    return staff_bearer(url, ADMIN, ADMIN_PASSWORD)


def _api(url: str, headers: dict[str, str], params: dict[str, str]) -> dict:
    r = httpx.get(url + "/api/v1/admin/indicators", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _shown(key: str, value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.1f}%" if key in SHARES else str(value)


def _check_table(page, report: dict) -> None:
    rows = page.locator("table#city tr[data-indicator]")
    expect(rows).to_have_count(len(report["names"]))
    got = rows.evaluate_all(READ_TABLE)
    assert [key for key, _, _ in got] == list(report["names"])
    for key, data_value, text in got:
        value = report["city"]["indicators"][key]["value"]
        assert data_value == ("" if value is None else str(value)), key
        assert text == _shown(key, value), (key, text)


def _check_bars(page, chart: str, expected: list[float]) -> list[dict]:
    bars = page.locator(f"svg#{chart} rect.bar").evaluate_all(READ_BARS)
    assert [float(b["value"]) for b in bars] == expected, chart
    for bar in bars:
        assert bar["trackWidth"] == "300" and bar["track"] > 100, bar
        # Drawn width against the 100 % track is the value (to a pixel's worth of rounding).
        assert bar["width"] / bar["track"] == pytest.approx(float(bar["value"]), abs=0.005), bar
    return bars


def test_stats_dashboard_in_chromium_matches_the_api(start_server, tmp_path, request):
    if BACKEND == "postgres":
        database_url = request.getfixturevalue("pg_scratch_db")
    else:
        database_url = f"sqlite://{tmp_path / 'stats.sqlite3'}"
    server = start_server(DATABASE_URL=database_url, LOAD_DEMO="false")
    _seed(database_url)
    admin = _admin(server.url, database_url)
    march = _api(server.url, admin, MARCH)
    first_day = _api(server.url, admin, {"from": "2026-03-01", "to": "2026-03-01"})
    origin = urlsplit(server.url)

    requests: list[str] = []
    page_errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1024, "height": 900}, locale="zh-CN")
            context.set_default_timeout(15_000)
            page = context.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: page_errors.append(str(e)))

            response = page.goto(server.url + "/stats?from=2026-03-01&to=2026-03-31")
            assert response is not None and response.status == 200
            expect(page.locator("h1")).to_have_text("“最多跑一次”改革成效")
            expect(page.locator("input[name=from]")).to_have_value("2026-03-01")
            expect(page.locator("input[name=to]")).to_have_value("2026-03-31")

            # -- the city table: the API's values, which are the hand-worked ones ---------------------
            _check_table(page, march)
            for key, value in VALUES["city"].items():
                assert march["city"]["indicators"][key]["value"] == value, key
            met = page.locator("table#city tr[data-indicator=on_time_rate] td").nth(3)
            expect(met).to_have_text("✘ 未达标")  # 0.8 < 0.95

            # -- the charts: bars proportional to their values, the target line at 95 % ---------------
            city = march["city"]["indicators"]
            bars = _check_bars(page, "chart-city", [city[k]["value"] for k in CITY_CHART])
            for key, bar in zip(CITY_CHART, bars, strict=True):
                if city[key]["met"] is not None:  # green when the target is met, red otherwise
                    assert bar["fill"] == ("#16803c" if city[key]["met"] else "#c8161d"), key
            _check_bars(page, "chart-sections", [s["indicators"]["one_visit_rate"]["value"] for s in
                                                 march["by_section"]])  # fmt: skip
            _check_bars(page, "chart-departments", [d["indicators"]["satisfaction_rate"]["value"] for d in
                                                    march["by_department"]])  # fmt: skip
            for chart in ("chart-city", "chart-sections", "chart-departments"):
                position = page.locator(f"svg#{chart}").evaluate(READ_TARGET)
                assert position == pytest.approx(march["target_percent"] / 100, abs=0.005), chart
            # commercial: 最多跑一次率 2 / 2 = 1.0 fills the whole track; social security 1 / 3
            section_bars = page.locator("svg#chart-sections rect.bar").evaluate_all(READ_BARS)
            assert section_bars[0]["width"] == pytest.approx(section_bars[0]["track"], abs=0.5)
            assert section_bars[1]["width"] / section_bars[1]["track"] == pytest.approx(1 / 3, abs=0.005)

            # -- the departments table ----------------------------------------------------------------
            rows = page.locator("table#departments tr[data-department]")
            expect(rows).to_have_count(len(march["by_department"]))
            for i, d in enumerate(march["by_department"]):
                expect(rows.nth(i)).to_have_attribute("data-department", d["department"])
                expect(rows.nth(i).locator("td").first).to_have_text(d["name"])
                expect(rows.nth(i).locator("td").nth(4)).to_have_text(str(d["counts"]["online_cases"]))

            # -- another period through the page's own form --------------------------------------------
            page.fill("input[name=to]", "2026-03-01")
            with page.expect_navigation():
                page.click("form.search button[type=submit]")
            assert "from=2026-03-01" in page.url and "to=2026-03-01" in page.url
            _check_table(page, first_day)
            # 2026-03-01: no case finished yet, no rating; 12 scans of M1's first code over 5 matters
            expect(page.locator("table#city tr[data-indicator=scans_per_matter] td.value")).to_have_text("2.4")
            expect(page.locator("table#city tr[data-indicator=on_time_rate] td.value")).to_have_text("—")
            expect(page.locator("table#city tr[data-indicator=on_time_rate] td.value")).to_have_attribute(
                "data-value", ""
            )
            page.screenshot(path=str(tmp_path / "stats.png"), full_page=True)
        finally:
            browser.close()

    assert page_errors == []
    assert requests, "the page made no request at all"
    foreign = [u for u in requests if (urlsplit(u).scheme, urlsplit(u).netloc) != (origin.scheme, origin.netloc)]
    assert foreign == [], foreign
    assert (tmp_path / "stats.png").stat().st_size > 10_000
