"""qr.render: every PNG, SVG and poster decodes with a real decoder (zxing-cpp); bounds, cache, ZIP."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
import zipfile

import pytest
import zxingcpp
from PIL import Image, ImageDraw
from pydantic import ValidationError

from app.jsontext import etag_for
from qr.render import (
    MAX_DATA_LENGTH,
    ImageOptions,
    build_zip,
    cached_render,
    etag_of,
    render_png,
    render_poster_svg,
    render_svg,
    safe_filename,
)

SHORT = "https://zwfw.zjj.gov.cn/q/7k3mq9xa"
LONG = (
    "https://zwfw.zjj.gov.cn/m/11430800MB1234567X4430800113000/apply"
    "?channel=poster&hall=main&counter=B12&utm_source=print&utm_campaign=2025"
)
CHINESE = (  # /m/search?q=不动产登记&hall=市民之家, percent-encoded as a browser would
    "https://zwfw.zjj.gov.cn/m/search?q=%E4%B8%8D%E5%8A%A8%E4%BA%A7%E7%99%BB%E8%AE%B0"
    "&hall=%E5%B8%82%E6%B0%91%E4%B9%8B%E5%AE%B6"
)
URLS = {"short": SHORT, "long": LONG, "chinese": CHINESE}
SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def clean() -> None:
    """Pure rendering: override the suite-wide database reset, these tests touch no database."""


def decode(image: Image.Image) -> zxingcpp.Barcode:
    """The one QR code in the image, read by zxing-cpp."""
    found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1, f"expected one QR code, found {len(found)}"
    return found[0]


# --- a minimal SVG rasteriser for what qr.render writes: rects, rect-only paths, translate/scale ---

_SUBPATH = re.compile(r"M(-?[\d.]+),(-?[\d.]+)H(-?[\d.]+)V(-?[\d.]+)H(-?[\d.]+)z")
_TRANSFORM = re.compile(r"(translate|scale)\(([^)]*)\)")


def path_rects(d: str) -> list[tuple[float, float, float, float]]:
    """The rectangles of a qrcode SvgPathImage path; fails on any other path syntax."""
    matches = list(_SUBPATH.finditer(d))
    assert "".join(m.group(0) for m in matches) == d, "unexpected path syntax"
    rects = []
    for m in matches:
        x0, y0, x1, y1, back = (float(v) for v in m.groups())
        assert back == x0
        rects.append((x0, y0, x1, y1))
    return rects


def _gray(fill: str | None) -> int | None:
    if fill in (None, "none"):
        return None
    named = {"white": "#ffffff", "black": "#000000"}
    value = named.get(fill, fill).lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    r, g, b = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    return round(0.299 * r + 0.587 * g + 0.114 * b)


def _compose(matrix: tuple[float, float, float], transform: str | None) -> tuple[float, float, float]:
    scale, tx, ty = matrix
    for kind, args in _TRANSFORM.findall(transform or ""):
        values = [float(v) for v in re.split(r"[\s,]+", args.strip())]
        if kind == "translate":
            tx, ty = tx + scale * values[0], ty + scale * (values[1] if len(values) > 1 else 0.0)
        else:
            assert len(values) == 1 or values[0] == values[1], "only uniform scale is supported"
            scale *= values[0]
    return scale, tx, ty


def rasterise(svg: bytes, px_per_unit: float) -> Image.Image:
    """Draw the SVG's rects and paths in grey levels over a white page; text is skipped."""
    root = ET.fromstring(svg)
    vx, vy, vw, vh = (float(v) for v in root.get("viewBox", "").split())
    image = Image.new("L", (round(vw * px_per_unit), round(vh * px_per_unit)), 255)
    draw = ImageDraw.Draw(image)

    def box(matrix: tuple[float, float, float], x0: float, y0: float, x1: float, y1: float, fill: int) -> None:
        s, tx, ty = matrix
        left, top, right, bottom = (round(v) for v in (s * x0 + tx, s * y0 + ty, s * x1 + tx, s * y1 + ty))
        if right > left and bottom > top:
            draw.rectangle((left, top, right - 1, bottom - 1), fill=fill)

    def walk(element: ET.Element, matrix: tuple[float, float, float], fill: str | None) -> None:
        matrix = _compose(matrix, element.get("transform"))
        fill = element.get("fill", fill)
        tag = element.tag.removeprefix(SVG_NS)
        gray = _gray(fill)
        if tag == "rect" and gray is not None:
            x, y = float(element.get("x", 0)), float(element.get("y", 0))
            box(matrix, x, y, x + float(element.get("width", 0)), y + float(element.get("height", 0)), gray)
        elif tag == "path" and gray is not None:
            for x0, y0, x1, y1 in path_rects(element.get("d", "")):
                box(matrix, x0, y0, x1, y1, gray)
        elif tag not in ("svg", "g", "text", "title", "rect", "path"):
            raise AssertionError(f"unexpected SVG element <{tag}>")
        for child in element:
            walk(child, matrix, fill)

    walk(root, (px_per_unit, -vx * px_per_unit, -vy * px_per_unit), None)
    return image


# --- options -----------------------------------------------------------------------------------------


def test_defaults() -> None:
    opts = ImageOptions()
    assert (opts.size, opts.margin, opts.ec) == (8, 4, "M")


def test_query_string_values_are_coerced_and_unknown_keys_ignored() -> None:
    opts = ImageOptions.model_validate({"size": "12", "margin": "2", "ec": "q", "download": "1"})
    assert (opts.size, opts.margin, opts.ec) == (12, 2, "Q")


@pytest.mark.parametrize(
    "fields",
    [{"size": 0}, {"size": 41}, {"size": "abc"}, {"margin": -1}, {"margin": 17}, {"ec": "X"}, {"ec": ""}],
)
def test_out_of_bounds_options_are_rejected(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ImageOptions.model_validate(fields)


def test_bounds_are_inclusive() -> None:
    ImageOptions(size=1, margin=0, ec="L")
    ImageOptions(size=40, margin=16, ec="H")


def test_options_are_hashable_and_equal_by_value() -> None:
    assert ImageOptions() == ImageOptions(size=8, margin=4, ec="M")
    assert hash(ImageOptions()) == hash(ImageOptions.model_validate({"size": "8"}))


# --- PNG -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ec", ["L", "M", "Q", "H"])
@pytest.mark.parametrize("size", [1, 2, 3, 8])
@pytest.mark.parametrize("url", list(URLS), ids=list(URLS))
def test_png_decodes(url: str, size: int, ec: str) -> None:
    for margin in (0, 1, 2, 4, 16):
        opts = ImageOptions(size=size, margin=margin, ec=ec)
        image = Image.open(io.BytesIO(render_png(URLS[url], opts)))
        assert image.format == "PNG" and image.mode == "1"
        assert image.width == image.height and image.width % size == 0
        assert (image.width // size - 2 * margin - 17) % 4 == 0  # 17 + 4·version modules
        found = decode(image)
        assert (found.text, found.ec_level) == (URLS[url], ec), (size, margin)


@pytest.mark.parametrize(("url", "margin", "ec"), [(SHORT, 4, "M"), (SHORT, 16, "H"), (LONG, 2, "L")])
def test_png_largest_module_size_decodes(url: str, margin: int, ec: str) -> None:
    image = Image.open(io.BytesIO(render_png(url, ImageOptions(size=40, margin=margin, ec=ec))))
    assert decode(image).text == url


def test_png_of_the_longest_allowed_data_decodes() -> None:
    data = f"{SHORT}?x=" + "a1b2c3d4e5" * 100
    data = data[:MAX_DATA_LENGTH]
    for ec in ("L", "H"):
        image = Image.open(io.BytesIO(render_png(data, ImageOptions(size=3, ec=ec))))
        assert decode(image).text == data


# --- SVG -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ec", ["L", "M", "Q", "H"])
@pytest.mark.parametrize("url", list(URLS), ids=list(URLS))
def test_svg_decodes(url: str, ec: str) -> None:
    for margin in (0, 1, 2, 4, 16):
        for size in (1, 3, 8):
            svg = render_svg(URLS[url], ImageOptions(size=size, margin=margin, ec=ec))
            root = ET.fromstring(svg)
            n = int(root.get("viewBox", "").split()[2])  # one user unit per module, quiet zone included
            assert root.get("width") == root.get("height") == str(n * size)
            rects = path_rects(root.find(f"{SVG_NS}path").get("d", ""))  # type: ignore[union-attr]
            assert min(r[0] for r in rects) == min(r[1] for r in rects) == margin  # quiet zone
            assert max(r[2] for r in rects) == max(r[3] for r in rects) == n - margin
            found = decode(rasterise(svg, px_per_unit=size))  # drawn at its natural pixel size
            assert (found.text, found.ec_level) == (URLS[url], ec), (size, margin)


def test_svg_is_standalone_vector() -> None:
    svg = render_svg(SHORT, ImageOptions())
    text = svg.decode()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    for forbidden in ("<image", "href", "url(", "<style", "<script"):
        assert forbidden not in text
    root = ET.fromstring(svg)
    assert [child.tag.removeprefix(SVG_NS) for child in root] == ["rect", "path"]


def test_svg_and_png_draw_the_same_modules() -> None:
    opts = ImageOptions(size=1, margin=0)
    png = Image.open(io.BytesIO(render_png(LONG, opts))).convert("L")
    svg = rasterise(render_svg(LONG, opts), px_per_unit=1)
    assert png.size == svg.size and png.tobytes() == svg.tobytes()


# --- data limits ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", ["", "x" * (MAX_DATA_LENGTH + 1)], ids=["empty", "too-long"])
def test_bad_data_is_rejected(data: str) -> None:
    with pytest.raises(ValueError):
        render_png(data, ImageOptions())
    with pytest.raises(ValueError):
        render_svg(data, ImageOptions())
    with pytest.raises(ValueError):
        cached_render("png", data, ImageOptions())
    with pytest.raises(ValueError):
        render_poster_svg(data=data, title="出生登记", matter_code="X1", slug="7k3mq9xa", hall="市民之家")


# --- poster ----------------------------------------------------------------------------------------------

POSTER = {
    "data": SHORT,
    "title": "A&B <测试> 不动产登记",
    "matter_code": "11430800MB1234567X4430800113000",
    "slug": "7k3mq9xa",
    "hall": "张家界市政务服务中心 & 市民之家",
    "label": "一楼 <A> 区 3 号窗口旁",
}


def texts(svg: bytes) -> list[str]:
    """The content of every <text>, unescaped."""
    return [el.text or "" for el in ET.fromstring(svg).iter(f"{SVG_NS}text")]


def title_lines(svg: bytes) -> list[str]:
    """The matter-name lines: the bold texts between the header and the QR code."""
    root = ET.fromstring(svg)
    return [el.text or "" for el in root.iter(f"{SVG_NS}text") if 25 < float(el.get("y", 0)) < 66]


def test_poster_decodes_once_rasterised() -> None:
    svg = render_poster_svg(**POSTER)
    page = rasterise(svg, px_per_unit=4)  # 4 px/mm: 592 × 840, about 150 dpi
    assert page.size == (592, 840)
    found = decode(page)
    assert (found.text, found.ec_level) == (SHORT, "Q")


@pytest.mark.parametrize("data", [LONG, CHINESE, (f"{SHORT}?x=" + "a1b2c3d4e5" * 100)[:MAX_DATA_LENGTH]])
def test_poster_with_longer_data_decodes(data: str) -> None:
    page = rasterise(render_poster_svg(**{**POSTER, "data": data}), px_per_unit=12)
    assert decode(page).text == data


def test_poster_layout_and_text() -> None:
    svg = render_poster_svg(**POSTER)
    text = svg.decode()
    root = ET.fromstring(svg)  # well-formed despite & < > in every field
    assert root.get("viewBox") == "0 0 148 210"
    assert (root.get("width"), root.get("height")) == ("148mm", "210mm")
    assert "A&amp;B &lt;测试&gt; 不动产登记" in text and "<测试>" not in text
    assert "Noto Sans CJK SC" in root.get("font-family", "") and "Microsoft YaHei" in root.get("font-family", "")
    assert root.get("font-family", "").endswith("sans-serif")
    lines = texts(svg)
    assert lines[0] == "张家界市政务服务 · 扫码办事"
    assert "A&B <测试> 不动产登记" in lines
    for expected in (
        "事项编码 11430800MB1234567X4430800113000",
        "短码 7k3mq9xa",
        "张家界市政务服务中心 & 市民之家",
        "一楼 <A> 区 3 号窗口旁",
        "微信或浏览器扫码：查看办事指南 · 预约 · 申报 · 进度查询 · 咨询 · 评价",
    ):
        assert expected in lines
    assert root.find(f"{SVG_NS}title").text.startswith("A&B <测试> 不动产登记")  # type: ignore[union-attr]
    outside_namespace = text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    for forbidden in ("<image", "href", "url(", "<style", "<script", "http"):
        assert forbidden not in outside_namespace


def test_poster_qr_is_a_vector_path_with_a_four_module_quiet_zone() -> None:
    root = ET.fromstring(render_poster_svg(**POSTER))
    group = root.find(f"{SVG_NS}g[@id='qr']")
    assert group is not None
    background, path = list(group)
    n = float(background.get("width", 0))
    rects = path_rects(path.get("d", ""))
    assert min(r[0] for r in rects) == min(r[1] for r in rects) == 4
    assert max(r[2] for r in rects) == max(r[3] for r in rects) == n - 4
    scale, tx, _ = _compose((1.0, 0.0, 0.0), group.get("transform"))
    assert n * scale == pytest.approx(84, abs=0.01) and tx == pytest.approx((148 - 84) / 2)


def test_poster_without_label() -> None:
    with_label = texts(render_poster_svg(**POSTER))
    without = texts(render_poster_svg(**{**POSTER, "label": ""}))
    assert len(without) == len(with_label) - 1 and "一楼 <A> 区 3 号窗口旁" not in without


@pytest.mark.parametrize(
    ("title", "count"),
    [
        ("出生医学证明", 1),
        ("食品经营许可证核发（新办）", 1),
        ("建设工程规划许可证核发（建筑类）（含临时建设工程）", 2),
        ("企业投资项目核准（含《外商投资项目核准》）及备案事项变更登记，以及相关联的补充手续", 3),
    ],
)
def test_poster_wraps_long_names(title: str, count: int) -> None:
    lines = title_lines(render_poster_svg(**{**POSTER, "title": title}))
    assert len(lines) == count
    assert "".join(lines) == title
    assert all(len(line) <= 15 for line in lines)
    assert not any(line[0] in "，。、）》：；" for line in lines)


def test_poster_truncates_names_beyond_three_lines() -> None:
    title = "关于" + "企业投资项目核准及备案事项变更登记" * 4
    lines = title_lines(render_poster_svg(**{**POSTER, "title": title}))
    assert len(lines) == 3 and lines[-1].endswith("…")
    assert title.startswith("".join(lines).removesuffix("…"))


def test_poster_survives_control_characters_and_long_fields() -> None:
    svg = render_poster_svg(
        **{**POSTER, "title": "出生\x00登记\x1b", "hall": "大厅" * 80, "label": "\ud800位置"},
    )
    lines = texts(svg)
    assert "出生登记" in lines and "位置" in lines
    assert any(line.startswith("大厅") and line.endswith("…") for line in lines)
    assert decode(rasterise(svg, px_per_unit=4)).text == SHORT


# --- ETag and cache ---------------------------------------------------------------------------------------


def test_etag_is_strong_content_hash_matching_the_http_helper() -> None:
    png = render_png(SHORT, ImageOptions())
    assert etag_of(png) == etag_for(png)
    assert etag_of(png).startswith('"') and not etag_of(png).startswith("W/")
    assert etag_of(png) == etag_of(render_png(SHORT, ImageOptions()))  # rendering is deterministic
    assert etag_of(png) != etag_of(render_png(SHORT, ImageOptions(size=9)))


def test_cached_render_renders_once_per_key() -> None:
    cached_render.cache_clear()
    assert cached_render.cache_info().maxsize == 2048
    first = cached_render("png", SHORT, ImageOptions())
    again = cached_render("png", SHORT, ImageOptions.model_validate({"size": "8", "ec": "m"}))
    assert again is first and first == render_png(SHORT, ImageOptions())
    svg = cached_render("svg", SHORT, ImageOptions())
    assert svg == render_svg(SHORT, ImageOptions())
    info = cached_render.cache_info()
    assert (info.hits, info.misses, info.currsize) == (1, 2, 2)
    with pytest.raises(ValueError):
        cached_render("gif", SHORT, ImageOptions())


# --- ZIP --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("../../etc/passwd.png", "passwd.png"),
        ("a/b\\c.svg", "c.svg"),
        ("不动产登记 (首次).svg", "不动产登记_首次.svg"),
        ("（全角）<script>.png", "全角_script.png"),
        ("..", "file"),
        (".hidden.svg", "hidden.svg"),
        ("CON.png", "_CON.png"),
        ("", "file"),
    ],
)
def test_safe_filename(raw: str, safe: str) -> None:
    assert safe_filename(raw) == safe


def test_zip_round_trip() -> None:
    png = render_png(SHORT, ImageOptions())
    svg = render_svg(SHORT, ImageOptions())
    poster = render_poster_svg(**POSTER)
    files = [
        ("../../etc/passwd.png", png),
        ("C:\\temp\\不动产登记 首次.svg", svg),
        ("海报/出生登记<A&B>.svg", poster),
        ("same.png", b"one"),
        ("SAME.png", b"two"),
    ]
    blob = build_zip(files)
    assert build_zip(files) == blob  # deterministic bytes: a stable ETag for the bundle
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names == ["passwd.png", "不动产登记_首次.svg", "出生登记_A_B.svg", "same.png", "SAME-2.png"]
        for name in names:
            assert re.fullmatch(r"[A-Za-z0-9._\-\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+", name)
        assert [archive.read(name) for name in names] == [content for _, content in files]
        kinds = {info.filename: info.compress_type for info in archive.infolist()}
        assert kinds["passwd.png"] == kinds["same.png"] == zipfile.ZIP_STORED
        assert kinds["不动产登记_首次.svg"] == kinds["出生登记_A_B.svg"] == zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        assert decode(Image.open(archive.open("passwd.png"))).text == SHORT
        assert decode(rasterise(archive.read("出生登记_A_B.svg"), px_per_unit=4)).text == SHORT


def test_empty_zip() -> None:
    with zipfile.ZipFile(io.BytesIO(build_zip([]))) as archive:
        assert archive.namelist() == []
