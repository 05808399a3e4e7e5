"""The staff console's pages as a signed-in administrator's browser asks for them: the home page, the case queue and
the catalogue, with the console's session cookie. Report-only ratios (the issue sets no target for them)."""

from __future__ import annotations

from .harness import BenchPath, Context, Headers, staff_token

CONSOLE_ADMIN = "bench-console"  # the administrator whose dev token the console pages send


def _cookie(ctx: Context) -> Headers:
    """A desktop browser signed in to the console: the staff access-token cookie (`zd_st`) of an administrator."""
    if "console_token" not in ctx.state:
        ctx.state["console_token"] = staff_token(ctx, "admin", CONSOLE_ADMIN)
    return {
        "Cookie": f"zd_st={ctx.state['console_token']}",
        "Accept": "text/html,application/xhtml+xml",
        "Accept-Language": "zh-CN,zh;q=0.9",
        "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0.0.0 Safari/537.36",
    }


CONSOLE_PATHS: list[BenchPath] = [
    BenchPath("console_home", "GET", "/console", None, headers=_cookie, report_only=True, expect_status=200),
    BenchPath("console_cases", "GET", "/console/cases", None, headers=_cookie, report_only=True, expect_status=200),
    BenchPath("console_matters", "GET", "/console/matters", None, headers=_cookie, report_only=True, expect_status=200),
]
