"""Render matter QR codes: PNG, SVG, the printable A5 poster, ETags and ZIP bundles (pure, no Sanic)."""

from __future__ import annotations

import functools
import io
import math
import re
import unicodedata
import zipfile
from collections.abc import Iterable
from typing import Literal
from xml.sax.saxutils import escape

import qrcode
import qrcode.constants
from pydantic import BaseModel, ConfigDict, Field, field_validator
from qrcode.image.svg import SvgPathImage

from app.jsontext import etag_for

MAX_DATA_LENGTH = 1000
POSTER_EC = "Q"  # posters hang on walls and get scuffed: 25 % recovery for a short URL costs one version at most
MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}

_EC_LEVELS = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}
_SVG_UNIT = 10  # qrcode's SVG unit is box_size / 10, so box_size 10 puts every module on a 1-unit grid


class ImageOptions(BaseModel):
    """How to draw a QR image; read from the query string (unknown keys ignored, bounds give 422)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    size: int = Field(default=8, ge=1, le=40, description="模块尺寸：PNG 为像素，SVG 为用户单位（1–40，默认 8）")
    margin: int = Field(
        default=4,
        ge=0,
        le=16,
        description="静区宽度（模块数，0–16，默认 4）：标准要求 4，扫码器至少需要 2；0 表示由排版方自留白边",
    )
    ec: Literal["L", "M", "Q", "H"] = Field(default="M", description="纠错等级 L/M/Q/H（约 7/15/25/30 %），默认 M")

    @field_validator("ec", mode="before")
    @classmethod
    def _upper_ec(cls, value: object) -> object:
        """Accept `ec=q` as well as `ec=Q`."""
        return value.strip().upper() if isinstance(value, str) else value


def _qr(data: str, ec: str, border: int, box_size: int) -> qrcode.QRCode:
    """A fitted QR code for the data; ValueError for empty or over-long data."""
    if not isinstance(data, str) or not data:
        raise ValueError("二维码内容不能为空")
    if len(data) > MAX_DATA_LENGTH:
        raise ValueError(f"二维码内容不能超过 {MAX_DATA_LENGTH} 个字符")
    qr = qrcode.QRCode(version=None, error_correction=_EC_LEVELS[ec], box_size=box_size, border=border)
    qr.add_data(data)
    qr.make(fit=True)
    return qr


def _svg_path(qr: qrcode.QRCode) -> str:
    """The dark modules as one SVG path `d`, one unit per module, quiet zone included in the offsets."""
    image = qr.make_image(image_factory=SvgPathImage)
    return str(image.path.get("d"))


def render_png(data: str, opts: ImageOptions) -> bytes:
    """A 1-bit black-on-white PNG, `opts.size` pixels per module."""
    qr = _qr(data, opts.ec, opts.margin, opts.size)
    buffer = io.BytesIO()
    qr.make_image().get_image().save(buffer, format="PNG")
    return buffer.getvalue()


def render_svg(data: str, opts: ImageOptions) -> bytes:
    """A standalone SVG: white background and one path, `opts.size` user units per module."""
    qr = _qr(data, opts.ec, opts.margin, _SVG_UNIT)
    n = qr.modules_count + 2 * opts.margin
    side = n * opts.size
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{side}" height="{side}" '
        f'viewBox="0 0 {n} {n}" shape-rendering="crispEdges">'
        f'<rect width="{n}" height="{n}" fill="#fff"/><path d="{_svg_path(qr)}" fill="#000"/></svg>'
    ).encode()


# --- poster -----------------------------------------------------------------------------------------

_FONTS = "'Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Microsoft YaHei',sans-serif"
_HEADER = "张家界市政务服务 · 扫码办事"
_FOOTER = "微信或浏览器扫码：查看办事指南 · 预约 · 申报 · 进度查询 · 咨询 · 评价"
_ACCENT = "#c62828"
_PAGE_W, _PAGE_H = 148, 210  # A5 portrait, millimetres
_TEXT_W = 128  # usable line width
_QR_SIDE, _QR_TOP = 84, 68  # the code with its 4-module quiet zone: ≥ 2 mm modules for a short URL
_TITLE_EM = 14.0  # about 14 Chinese characters per title line
_NO_LINE_START = set("，。、；：？！）》」』】〕〉”’·…—,.;:?!)]}%")
_NO_LINE_END = set("（《「『【〔〈“‘([{")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: str) -> str:
    """Single-line text without characters XML 1.0 cannot carry."""
    return " ".join(_XML_ILLEGAL.sub("", text or "").split())


def _em(char: str) -> float:
    """Estimated advance of one character, in em (CJK full width, Latin about half)."""
    return 1.0 if unicodedata.east_asian_width(char) in "WF" else 0.56


def _width(text: str) -> float:
    """Estimated width of a line, in em."""
    return sum(_em(c) for c in text)


def _ellipsize(text: str, max_em: float) -> str:
    """The text cut to fit max_em, with an ellipsis when anything was cut."""
    if _width(text) <= max_em:
        return text
    while text and _width(text + "…") > max_em:
        text = text[:-1]
    return text.rstrip() + "…"


def _wrap_title(text: str, max_em: float = _TITLE_EM, max_lines: int = 3) -> list[str]:
    """Balanced lines of at most ~max_em, no closing punctuation at a line start; ellipsis past max_lines."""
    total = _width(text)
    if total <= max_em:
        return [text] if text else []
    balanced = min(max_em, total / min(max_lines, math.ceil(total / max_em)) + 0.5)
    lines = _greedy_lines(text, balanced)
    if len(lines) > max_lines and balanced < max_em:
        lines = _greedy_lines(text, max_em)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], _ellipsize(lines[max_lines - 1] + "…", max_em)]
    return lines


def _greedy_lines(text: str, limit: float) -> list[str]:
    """Fill lines up to limit em; closing punctuation may overhang, opening punctuation moves down."""
    lines: list[str] = []
    current, width = "", 0.0
    for char in text:
        if current and width + _em(char) > limit and char not in _NO_LINE_START:
            carry = ""
            while len(current) > 1 and current[-1] in _NO_LINE_END:
                carry, current = current[-1] + carry, current[:-1]
            lines.append(current.rstrip())
            current, width = carry, _width(carry)
        if not current and char == " ":
            continue
        current += char
        width += _em(char)
    if current:
        lines.append(current)
    return lines


def _text(x: float, y: float, text: str, size: float, *, fill: str = "#222", weight: int = 400) -> str:
    """One centred, escaped <text> element."""
    bold = f' font-weight="{weight}"' if weight != 400 else ""
    return (
        f'<text x="{x:g}" y="{y:.2f}" font-size="{size:.2f}" fill="{fill}"{bold} text-anchor="middle">'
        f"{escape(text)}</text>"
    )


def _line(y: float, text: str, size: float, *, fill: str = "#222", weight: int = 400, min_size: float = 2.6) -> str:
    """A centred single line, shrunk (then ellipsized) to fit the usable width."""
    text = _clean(text)
    if not text:
        return ""
    fitted = min(size, _TEXT_W / _width(text))
    if fitted < min_size:
        fitted, text = min_size, _ellipsize(text, _TEXT_W / min_size)
    return _text(_PAGE_W / 2, y, text, fitted, fill=fill, weight=weight)


def render_poster_svg(*, data: str, title: str, matter_code: str, slug: str, hall: str, label: str = "") -> bytes:
    """A printable A5 portrait poster (vector QR, 148×210 mm, no external resources)."""
    qr = _qr(data, POSTER_EC, 4, _SVG_UNIT)
    n = qr.modules_count + 8
    name = _clean(title)
    lines = _wrap_title(name)
    size = min(9.0, _TEXT_W / max((_width(line) for line in lines), default=1.0))
    step = size * 1.3
    first = 29 + (35 - step * len(lines)) / 2 + size * 0.88  # title block between the header and the QR frame
    left = (_PAGE_W - _QR_SIDE) / 2
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{_PAGE_W}mm" height="{_PAGE_H}mm" '
        f'viewBox="0 0 {_PAGE_W} {_PAGE_H}" font-family="{_FONTS}">',
        f"<title>{escape(name)} · 事项编码 {escape(_clean(matter_code))}</title>",
        f'<rect width="{_PAGE_W}" height="{_PAGE_H}" fill="#fff"/>',
        f'<rect width="{_PAGE_W}" height="24" fill="{_ACCENT}"/>',
        f'<rect y="24" width="{_PAGE_W}" height="1.2" fill="#f2c94c"/>',
        _text(_PAGE_W / 2, 15.2, _HEADER, 7.2, fill="#fff", weight=700),
        *(_text(_PAGE_W / 2, first + i * step, line, size, fill="#111", weight=700) for i, line in enumerate(lines)),
        f'<rect x="{left - 2:g}" y="{_QR_TOP - 2}" width="{_QR_SIDE + 4}" height="{_QR_SIDE + 4}" rx="3" '
        'fill="#fff" stroke="#d0d7e2" stroke-width="0.4"/>',
        f'<g id="qr" transform="translate({left:g} {_QR_TOP}) scale({_QR_SIDE / n:.6f})" shape-rendering="crispEdges">'
        f'<rect width="{n}" height="{n}" fill="#fff"/><path d="{_svg_path(qr)}" fill="#000"/></g>',
        _line(161, f"事项编码 {_clean(matter_code)}", 4.2, fill="#333"),
        _line(167.5, f"短码 {_clean(slug)}", 4.2, fill="#333"),
        _line(176.5, hall, 5.2, fill="#111", weight=700),
        _line(183.5, label, 4.2, fill="#555"),
        f'<rect y="190" width="{_PAGE_W}" height="20" fill="#f3f4f6"/>',
        f'<rect y="190" width="{_PAGE_W}" height="0.8" fill="{_ACCENT}"/>',
        _line(201.5, _FOOTER, 3.8, fill="#333"),
        "</svg>",
    ]
    return "\n".join(p for p in parts if p).encode()


# --- caching, ETags, bundles ------------------------------------------------------------------------

_RENDERERS = {"png": render_png, "svg": render_svg}


def etag_of(content: bytes) -> str:
    """A strong ETag from the bytes."""
    return etag_for(content)


@functools.lru_cache(maxsize=2048)
def cached_render(kind: str, data: str, opts: ImageOptions) -> bytes:
    """render_png / render_svg memoised per worker by (kind, data, options)."""
    renderer = _RENDERERS.get(kind)
    if renderer is None:
        raise ValueError(f"unknown image kind {kind!r}")
    return renderer(data, opts)


@functools.lru_cache(maxsize=2048)
def cached_image(kind: str, data: str, opts: ImageOptions) -> tuple[bytes, str]:
    """`cached_render` with its ETag, both memoised: the code images' route answers with both on every request."""
    content = cached_render(kind, data, opts)
    return content, etag_of(content)


DEFAULT_OPTIONS = ImageOptions()  # an image address without a query string (the printed code's)


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._\-\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_STORED = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".zip", ".gz"}  # already compressed


def safe_filename(name: str, *, max_length: int = 120) -> str:
    """A bare file name of [A-Za-z0-9._-] and CJK ideographs: no directories, no leading dot."""
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", name or ""))[-1]
    base = _UNSAFE_NAME.sub("_", base).strip("_").lstrip(".")
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    ext = ext[:16]
    stem = stem[: max(1, max_length - len(ext) - 1)].strip("._") or "file"
    if stem.split(".")[0].upper() in _WINDOWS_RESERVED:
        stem = "_" + stem
    return f"{stem}.{ext}" if ext else stem


def build_zip(
    files: Iterable[tuple[str, bytes]], *, date_time: tuple[int, int, int, int, int, int] = (1980, 1, 1, 0, 0, 0)
) -> bytes:
    """A ZIP of (name, bytes): names sanitised and de-duplicated, PNG stored, SVG deflated, deterministic."""
    buffer = io.BytesIO()
    seen: set[str] = set()
    with zipfile.ZipFile(buffer, "w") as archive:
        for raw_name, content in files:
            name = safe_filename(raw_name)
            stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
            candidate, counter = name, 1
            while candidate.lower() in seen:
                counter += 1
                candidate = f"{stem}-{counter}{dot}{ext}"
            seen.add(candidate.lower())
            info = zipfile.ZipInfo(candidate, date_time=date_time)
            info.external_attr = 0o644 << 16
            stored = ("." + ext.lower()) in _STORED if dot else False
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            archive.writestr(info, content, compresslevel=None if stored else 9)
    return buffer.getvalue()
