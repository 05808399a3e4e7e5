"""The strict Content-Security-Policy in real headless Chromium (issue 20 point 12): no page of ours trips it.

A real `python -m app run` with the demo catalogue. Each page is opened with a listener (a Playwright init script,
which the page's policy does not govern) recording every `securitypolicyviolation`; the page's own styles and
scripts must still apply (the header's colour comes from base.html's nonced <style>; display.js connects).
"""

from __future__ import annotations

import pytest

from tests.e2e.test_stats_page import CHROMIUM, CHROMIUM_ARGS

RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + (e.sample || ""));
});
"""
PAGES = ["/m", "/m/4308-XK-TZ-002", "/m/login", "/p", "/m/no-such-matter", "/console/login", "/display/main"]


def test_pages_render_under_the_strict_policy_in_chromium(start_server):
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium")
    from playwright import sync_api

    server = start_server(LOAD_DEMO="true")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.add_init_script(RECORD_VIOLATIONS)
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
            for path in PAGES:
                response = page.goto(server.url + path, wait_until="load")
                assert response is not None
                csp = response.headers.get("content-security-policy", "")
                assert "'nonce-" in csp and "object-src 'none'" in csp, (path, csp)
                page.wait_for_timeout(300)  # deferred scripts have run
                assert page.evaluate("window.__csp") == [], path
                if path.startswith("/m"):
                    # base.html's nonced <style> applied: the header is the brand red.
                    color = page.evaluate("getComputedStyle(document.querySelector('header.top')).backgroundColor")
                    assert color == "rgb(200, 22, 29)", (path, color)
                if path.startswith("/display"):
                    # display.js ran (a nonced external script) and its event stream connected (connect-src).
                    sync_api.expect(page.locator("#status")).to_have_text("实时更新", timeout=10_000)
            assert console == []
        finally:
            browser.close()
