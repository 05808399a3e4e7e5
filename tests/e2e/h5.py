"""Helpers for the citizen's H5 journey in real headless Chromium: the service with demo data, the dev SMS
codes it prints, the fake WeChat it calls, a phone-sized browser, axe-core on every page, screenshots.

Built so later steps (booking, applying, consulting, rating) add one function each to the journey and get
the accessibility check and the screenshot by calling `Journey.visit` / `Journey.check` on their pages.
Also here: staff accounts made with the CLI (`Service.staff`), the text messages a citizen was sent
(`Service.wait_for_text`), every HTML page's size (`Journey.watch`), and real files to upload (a one-page
PDF, a JPEG drawn with Pillow).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.staff_login import staff_bearer
from tests.fakes.wechat import FakeWeChat

ROOT = Path(__file__).resolve().parents[2]
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
PHONE = {"width": 390, "height": 844}
WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.50(0x1800323a) NetType/WIFI Language/zh_CN"
)
MOBILE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
BLOCKING = ("serious", "critical")  # the impacts the journey refuses
SMS_LINE = re.compile(r"\[dev sms\] to (\d{11}): .*?验证码为 (\d{6})")  # sign-in codes only
SMS_TEXT = re.compile(r"^\[dev sms\] to (\d{11}): (.*)$", re.MULTILINE)  # every text, notifications too
MAX_PAGE_BYTES = 60 * 1024  # each HTML page, as the server sends it (it does not compress)


def new_phone() -> str:
    """A random mainland mobile number (each step its own: one code per phone per minute)."""
    return "139" + f"{uuid.uuid4().int % 10**8:08d}"


def masked(phone: str) -> str:
    """How the pages show a phone number."""
    return phone[:3] + "****" + phone[-4:]


def wechat_env(fake: FakeWeChat) -> dict[str, str]:
    """The service's environment that points its WeChat client at the fake (both API and OAuth hosts).

    The app ids and secrets are the development ones of app/settings.py, which the fake knows by default.
    """
    from app.settings import Settings

    dev = Settings()
    assert fake.apps.get(dev.wechat_mp_appid) == dev.wechat_mp_secret, "the fake does not know the dev apps"
    assert fake.apps.get(dev.wechat_mini_appid) == dev.wechat_mini_secret, "the fake does not know the dev apps"
    return {
        "WECHAT_API_BASE": fake.url,
        "WECHAT_OAUTH_BASE": fake.url,
        "WECHAT_MP_APPID": dev.wechat_mp_appid,
        "WECHAT_MP_SECRET": dev.wechat_mp_secret,
        "WECHAT_MINI_APPID": dev.wechat_mini_appid,
        "WECHAT_MINI_SECRET": dev.wechat_mini_secret,
    }


def sms_codes(log: Path) -> list[tuple[str, str]]:
    """Every (phone, code) the dev SMS sender printed to the server log, oldest first."""
    return SMS_LINE.findall(log.read_text(encoding="utf-8", errors="replace"))


def latest_sms_code(log: Path, phone: str, *, after: int = 0, timeout: float = 10) -> str:
    """Wait for a code sent to `phone` beyond the first `after` codes of the log; the newest such code."""
    deadline = time.monotonic() + timeout
    while True:
        mine = [code for to, code in sms_codes(log)[after:] if to == phone]
        if mine:
            return mine[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no SMS code for {phone} in {log}")
        time.sleep(0.1)


def sms_texts(log: Path, phone: str) -> list[str]:
    """Every text the dev SMS sender printed for `phone` (sign-in codes and notifications), oldest first."""
    return [text for to, text in SMS_TEXT.findall(log.read_text(encoding="utf-8", errors="replace")) if to == phone]


def wait_for_text(log: Path, phone: str, *needles: str, timeout: float = 20) -> str:
    """Wait for a text to `phone` that contains every needle (the notification job runs every second)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [t for t in sms_texts(log, phone) if all(n in t for n in needles)]
        if found:
            return found[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no text to {phone} with {needles}; its texts: {sms_texts(log, phone)}")
        time.sleep(0.2)


def demo_slug(base_url: str, *, name: str = "营业执照") -> tuple[dict[str, Any], str]:
    """A published demo matter whose name contains `name`, and its default code's slug."""
    found = httpx.get(base_url + "/api/v1/matters", params={"q": name}).json()["items"]
    assert found, f"no demo matter named like {name}"
    detail = httpx.get(base_url + f"/api/v1/matters/{found[0]['code']}").json()
    return detail, detail["links"]["qr"]["slug"]


def decode_qr(png: bytes) -> str:
    """The text of the one QR code in a PNG, read by a real decoder (zxing-cpp)."""
    import zxingcpp
    from PIL import Image

    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    codes = [r for r in results if r.format == zxingcpp.BarcodeFormat.QRCode]
    assert len(codes) == 1, f"expected one QR code, decoded {[r.text for r in results]}"
    return codes[0].text


def one_page_pdf(title: str = "Application form") -> bytes:
    """A valid one-page PDF (catalogue, page tree, page, content stream, font; the cross-reference table right)."""
    content = f"BT /F1 18 Tf 72 760 Td ({title}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def small_jpeg(width: int = 320, height: int = 200) -> bytes:
    """A real JPEG photo-sized image drawn with Pillow (an ID card's outline)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (236, 240, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle((10, 10, width - 10, height - 10), outline=(20, 86, 200), width=4)
    draw.rectangle((24, 40, 104, 140), fill=(180, 190, 205))
    for row in range(5):
        draw.line((124, 50 + row * 20, width - 30, 50 + row * 20), fill=(60, 60, 60), width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


class Service:
    """The running service (`tests.e2e.conftest.Server`), its log, and the fake WeChat it talks to."""

    def __init__(self, server: Any, fake: FakeWeChat, database_url: str = "") -> None:
        """Wrap a started server and fake (and its database, for the CLI)."""
        self.server = server
        self.url: str = server.url
        self.log: Path = server.log
        self.fake = fake
        self.database_url = database_url

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """`python -m app ...` against the server's database and base URL (the tokens' issuer); its stdout."""
        proc = subprocess.run(
            [sys.executable, "-m", "app", *args],
            input=stdin, text=True, capture_output=True, timeout=120, cwd=ROOT,
            env={**os.environ, "DATABASE_URL": self.database_url, "BASE_URL": self.url},
        )  # fmt: skip
        assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def staff(self, role: str, *, hall: str | None = None, department: str | None = None) -> dict[str, str]:
        """A new staff account made with the CLI, signed in through the API: its bearer header."""
        username, password = f"{role}-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(12)
        scope = (["--hall", hall] if hall else []) + (["--department", department] if department else [])
        self.cli("staff", "create", "--role", role, "--username", username, *scope, "--password-stdin",
                 stdin=password + "\n")  # fmt: skip
        return staff_bearer(self.url, username, password)

    def texts(self, phone: str) -> list[str]:
        """Every text sent to `phone` so far."""
        return sms_texts(self.log, phone)

    def wait_for_text(self, phone: str, *needles: str, timeout: float = 20) -> str:
        """The newest text to `phone` containing every needle, waited for."""
        return wait_for_text(self.log, phone, *needles, timeout=timeout)

    def sms_mark(self) -> int:
        """How many SMS codes the log holds now (read only newer ones afterwards)."""
        return len(sms_codes(self.log))

    def sms_code(self, phone: str, after: int = 0) -> str:
        """The newest code sent to `phone` after the mark."""
        return latest_sms_code(self.log, phone, after=after)


# Hidden per-form tokens every post form must carry with a value (an empty one is refused, or breaks the
# once-only rule): the CSRF token and the idempotency key. The elder-mode toggle is the one exception: it
# sits on cached public pages and is checked by origin only.
EMPTY_TOKENS_JS = """() => Array.from(document.querySelectorAll('form')).filter(
    f => (f.getAttribute('method') || '').toLowerCase() === 'post' && f.getAttribute('action') !== '/m/elder'
  ).flatMap(f => Array.from(f.querySelectorAll('input[name=csrf], input[name=idem]'))
    .filter(i => !i.value).map(i => `${f.getAttribute('action')}: ${i.name}`))"""
# Lazy images load only when scrolled to; a full-page screenshot does not scroll, so load them first.
EAGER_IMAGES_JS = "() => document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; })"
IMAGES_DONE_JS = "() => Array.from(document.images).every(i => i.complete)"


@dataclass
class Visit:
    """One page the journey looked at: its axe result, its form-token problems and its screenshot."""

    step: str
    url: str
    impacts: Counter[str]
    violations: list[dict[str, Any]]
    empty_tokens: list[str]
    screenshot: Path
    axe_run: bool = True

    def blocking(self) -> list[dict[str, Any]]:
        """The serious and critical violations."""
        return [v for v in self.violations if v.get("impact") in BLOCKING]


@dataclass
class Document:
    """One HTML page the browser received: its address, status and body size (bytes, uncompressed)."""

    url: str
    status: int
    size: int


@dataclass
class Journey:
    """Checks each page visited (axe-core, form tokens) and screenshots it; the test asserts at the end.

    Every HTML document a watched page receives (`watch`, done for each page of the `phone` fixture's
    contexts) is measured too, with JavaScript on or off: none may be over MAX_PAGE_BYTES.
    """

    shots: Path
    keep: Path | None = None
    prefix: str = ""
    visits: list[Visit] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Make the screenshot directories."""
        self.shots.mkdir(parents=True, exist_ok=True)
        if self.keep is not None:
            self.keep.mkdir(parents=True, exist_ok=True)

    @classmethod
    def in_dir(cls, tmp_path: Path, test_name: str) -> Journey:
        """Screenshots in tmp_path/h5, copied to $H5_SCREENSHOTS (named after the test) when it is set."""
        keep = os.environ.get("H5_SCREENSHOTS")
        return cls(tmp_path / "h5", Path(keep) if keep else None, _slug(test_name.removeprefix("test_")))

    def check(self, page: Any, step: str, *, axe: bool = True) -> Visit:
        """axe-core on the page as it is now, a one-line summary printed, a full-page screenshot saved.

        `axe=False` only for a context with JavaScript off: axe.run() waits on timers that never fire
        there (the same pages are checked with JavaScript on). A non-HTML answer (JSON, an image) is
        screenshotted but not checked.
        """
        from axe_playwright_python.sync_playwright import Axe

        page.wait_for_load_state("load")
        content_type = page.evaluate("document.contentType")
        skipped = None if content_type == "text/html" else f"not an HTML page: {content_type}"
        skipped = "JavaScript off" if not axe else skipped
        result = Axe().run(page, options={"resultTypes": ["violations"]}) if skipped is None else None
        violations = result.response["violations"] if result else []
        impacts: Counter[str] = Counter()
        for violation in violations:
            impacts[violation.get("impact") or "none"] += len(violation["nodes"])
        empty_tokens = page.evaluate(EMPTY_TOKENS_JS) if content_type == "text/html" else []
        # Wider than the screen means sideways scrolling on a phone; reported, not asserted: how wide a
        # line of text is depends on the fonts installed.
        width, screen = page.evaluate("document.documentElement.scrollWidth"), page.viewport_size["width"]
        if axe:  # with JavaScript off lazy loading is off too (the images load at once)
            page.evaluate(EAGER_IMAGES_JS)
            with contextlib.suppress(Exception):  # a broken image shows as broken; never fail for it here
                page.wait_for_function(IMAGES_DONE_JS, timeout=5_000)
        name = f"{len(self.visits) + 1:02d}-{_slug(step)}.png"
        shot = self.shots / name
        page.screenshot(path=str(shot), full_page=True)
        if self.keep is not None:
            shutil.copy(shot, self.keep / (f"{self.prefix}--{name}" if self.prefix else name))
        visit = Visit(step, page.url, impacts, violations, empty_tokens, shot, axe_run=skipped is None)
        self.visits.append(visit)
        by_impact = ", ".join(f"{k} {impacts[k]}" for k in ("critical", "serious", "moderate", "minor") if impacts[k])
        summary = f"not run ({skipped})" if skipped else f"{len(violations)} violations ({by_impact or 'none'})"
        print(f"[axe] {step}: {page.url} — {summary}", flush=True)
        for violation in visit.blocking():
            targets = "; ".join(", ".join(n["target"]) for n in violation["nodes"][:5])
            print(f"[axe]   {violation['impact']} {violation['id']}: {violation['help']} — {targets}", flush=True)
        for token in empty_tokens:
            print(f"[form]  empty hidden field {token}", flush=True)
        if width > screen:
            print(f"[layout] {step}: {width} px wide on a {screen} px screen", flush=True)
        return visit

    def watch(self, page: Any) -> None:
        """Measure every HTML page this tab receives (redirects have no body and are left out)."""

        def measured(response: Any) -> None:
            if response.request.resource_type != "document" or not 200 <= response.status < 300:
                return
            if not (response.headers.get("content-type") or "").startswith("text/html"):
                return
            try:
                size = len(response.body())
            except Exception:  # the tab moved on before the body was read: the header says it
                size = int(response.headers.get("content-length") or -1)
            self.documents.append(Document(response.url, response.status, size))

        page.on("response", measured)

    def visit(self, page: Any, url: str, step: str) -> Visit:
        """Open `url` and check it."""
        response = page.goto(url)
        assert response is not None and response.ok, f"{url}: {response and response.status}"
        return self.check(page, step)

    def assert_accessible(self) -> None:
        """No serious or critical axe violation, and no post form with an empty token, on any page visited."""
        problems = [
            f"{v.step} ({v.url}): {x['impact']} {x['id']} — {x['help']} — "
            + "; ".join(", ".join(n["target"]) for n in x["nodes"][:5])
            for v in self.visits
            for x in v.blocking()
        ]
        problems += [f"{v.step} ({v.url}): form {token} is empty" for v in self.visits for token in v.empty_tokens]
        problems += [
            f"{d.url}: {d.size} bytes, over {MAX_PAGE_BYTES}" for d in self.documents if d.size > MAX_PAGE_BYTES
        ]
        problems += [f"{d.url}: size unknown" for d in self.documents if d.size < 0]
        self.report()
        assert problems == [], "problems on the pages visited:\n" + "\n".join(problems)

    def report(self) -> None:
        """One line for the axe results of the journey and one for its pages' sizes."""
        impacts: Counter[str] = Counter()
        for visit in self.visits:
            impacts.update(visit.impacts)
        checked = sum(1 for v in self.visits if v.axe_run)
        by_impact = ", ".join(f"{k} {impacts[k]}" for k in ("critical", "serious", "moderate", "minor") if impacts[k])
        verdict = (by_impact or "no violations") if checked else "axe not run (JavaScript off)"
        print(f"[axe] summary: {len(self.visits)} pages checked ({checked} with axe): {verdict}", flush=True)
        if self.documents:
            largest = max(self.documents, key=lambda d: d.size)
            sizes = sorted(d.size for d in self.documents)
            print(
                f"[size] {len(sizes)} HTML pages: median {sizes[len(sizes) // 2]} B, largest {largest.size} B "
                f"({largest.url}), limit {MAX_PAGE_BYTES} B",
                flush=True,
            )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "page"


def font_px(locator: Any) -> float:
    """The computed font size of an element, in CSS pixels (from the stylesheet: no font file matters)."""
    return float(locator.evaluate("e => getComputedStyle(e).fontSize").removesuffix("px"))
