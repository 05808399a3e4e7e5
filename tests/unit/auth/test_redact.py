"""Log redaction: patterns, and the filter on real handlers (formatted output, caplog, tracebacks)."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest

import auth.redact as redact_module
from app.observe import JsonFormatter
from auth.idcard import make_id_number
from auth.redact import RedactingFilter, install_redaction, redact, uninstall_redaction

ID_NUMBER = make_id_number()  # 43080219900101123?
PHONE = "13812345678"
JWT = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiJjaXRpemVuOjEyMyJ9.c2lnbmF0dXJlLWJ5dGVz_-0"
OPAQUE = "opaque-Refresh-Token-9f8e7d"
PEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBkM0y5Hw3JYk8x9PRIVATEBYTES\n-----END PRIVATE KEY-----"
SECRETS = (ID_NUMBER, ID_NUMBER[3:14], PHONE, "12345678", JWT, "eyJ", OPAQUE, "PRIVATEBYTES", "wx-code-777")


def assert_clean(text: str) -> None:
    assert text, "nothing was logged"
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked in {text!r}"


# --- the patterns ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (f"id={ID_NUMBER}", f"id={ID_NUMBER[:3]}***********{ID_NUMBER[-4:]}"),
        ("身份证43080219900101123x号", "身份证430***********123x号"),
        (f"phone {PHONE}.", "phone 138****5678."),
        ("call +86 138-1234-5678 now", "call +86 138****5678 now"),
        ("8613812345678", "86138****5678"),
        ("tel:138 1234 5678", "tel:138****5678"),
        (f"Authorization: Bearer {OPAQUE}", "Authorization: Bearer [redacted]"),
        (f"authorization=bearer {JWT}", "authorization=bearer [redacted]"),
        ("Basic dXNlcjpwYXNzd29yZA==", "Basic [redacted]"),
        (f"token {JWT} end", "token [token] end"),
        (
            "GET /api/v1/auth/wechat/callback?code=wx-code-777&state=s1",
            "GET /api/v1/auth/wechat/callback?code=[redacted]&state=s1",
        ),
        (
            "/x?access_token=AT&js_code=JC&session_key=SK&otp=123456&a=1",
            "/x?access_token=[redacted]&js_code=[redacted]&session_key=[redacted]&otp=[redacted]&a=1",
        ),
        (
            "/x?TOKEN=a&secret=b&password=c&refresh_token=d",
            "/x?TOKEN=[redacted]&secret=[redacted]&password=[redacted]&refresh_token=[redacted]",
        ),
        ("next=%2Fcb%3Fcode%3Dwx-code-777%26state%3D1", "next=%2Fcb%3Fcode%3D[redacted]%26state%3D1"),
        (
            '{"password": "p\\"w", "phone": "1", "otp": 654321}',
            '{"password": "[redacted]", "phone": "1", "otp": "[redacted]"}',
        ),
        ("{'session_key': 'SK', 'n': 1}", "{'session_key': '[redacted]', 'n': 1}"),
        (f"key:\n{PEM}\nafter", "key:\n[key]\nafter"),
        ("-----BEGIN EC PRIVATE KEY-----\ntruncated PRIVATEBYTES", "[key]"),
    ],
)
def test_redact_patterns(raw, expected):
    assert redact(raw) == expected


@pytest.mark.parametrize(
    "text",
    [
        "plain text 你好, nothing to hide",
        "4308021990010112345",  # 19 digits: not an ID number
        "113812345678",  # 12 digits: not a mobile
        "1381234567",  # 10 digits
        "12812345678",  # not a mobile prefix
        "order 2026011500012",
        "/api/v1/matters?matter_code=4308-XK-SS-001&page=2",
        "qrcode=abc",
        "Basic auth failed",
        "138****5678 and 430***********1234 are already masked",
        "",
    ],
)
def test_redact_leaves_harmless_text_alone(text):
    assert redact(text) == text


def test_redact_is_idempotent():
    samples = [f"{ID_NUMBER} {PHONE} Bearer {OPAQUE} {JWT} ?code=x {PEM} " + '{"token": "t"}']
    for sample in samples:
        once = redact(sample)
        assert redact(once) == once
        assert_clean(once)


def test_redact_handles_large_input_quickly():
    import time

    text = ("1" * 50_000) + " " + ("eyJ" + "a" * 50_000) + " -----BEGIN X-----" + ("y" * 50_000)
    started = time.monotonic()
    redact(text)
    assert time.monotonic() - started < 1.0


# --- identifiers are not numbers of a person ---------------------------------------------------

# Hex identifiers whose digit runs look like an ID number or a mobile (the request id is the one a log once
# showed as "326a4c5f54ad431***********0000a0").
IDENTIFIERS = [
    "326a4c5f54ad431000000000000000a0",  # a request id: per-process hex prefix + hex counter
    "0f13812345678c" + "0" * 18,  # a mobile's digits inside a 32-hex id
    "550e8400-e29b-41d4-a716-a13812345678",  # a UUID whose last group ends in a mobile's digits
    "13812345-678a-4bcd-8ef0-123456789abc",
    "ab430802199001011234cd" + "e" * 42,  # an ID number's digits inside a SHA-256 hex digest
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
]


@pytest.mark.parametrize("identifier", IDENTIFIERS)
def test_identifiers_pass_whole(identifier):
    for text in (identifier, f"request_id={identifier}", f'ETag: W/"{identifier}"', f"[{identifier}] 已受理"):
        assert redact(text) == text


def test_generated_ids_and_digests_pass_whole():
    import hashlib

    for i in range(2000):
        seed = f"{i}-13812345678-{ID_NUMBER}".encode()
        for value in (
            uuid.uuid4().hex,
            str(uuid.uuid4()),
            hashlib.sha256(seed).hexdigest(),
            f'W/"{hashlib.blake2b(seed, digest_size=16).hexdigest()}"',  # an ETag
        ):
            assert redact(value) == value


def test_request_id_field_survives_the_filter(capture):
    logger, stream = capture
    logger.handlers[0].setFormatter(JsonFormatter())
    rid, path = "326a4c5f54ad431000000000000000a0", f"/api/v1/uploads/{uuid.uuid4()}"
    logger.info("request %s for %s", rid, PHONE, extra={"request_id": rid, "path": path})
    line = json.loads(stream.getvalue())
    assert line["request_id"] == rid and line["path"] == path
    assert line["msg"] == f"request {rid} for 138****5678"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (f"手机{PHONE}，身份证{ID_NUMBER}。", f"手机138****5678，身份证{ID_NUMBER[:3]}***********{ID_NUMBER[-4:]}。"),
        (f"联系电话：{PHONE}（白天）", "联系电话：138****5678（白天）"),
        (f"申请人{ID_NUMBER[:-1]}X办理", f"申请人{ID_NUMBER[:3]}***********{ID_NUMBER[-4:-1]}X办理"),
        (f"({PHONE})", "(138****5678)"),
        (f"phone={PHONE}&id={ID_NUMBER}", f"phone=138****5678&id={ID_NUMBER[:3]}***********{ID_NUMBER[-4:]}"),
        (f"user_{PHONE}", "user_138****5678"),
        (
            f"rid 326a4c5f54ad431000000000000000a0 phone {PHONE}",
            "rid 326a4c5f54ad431000000000000000a0 phone 138****5678",
        ),
    ],
)
def test_numbers_next_to_chinese_or_punctuation_are_masked(raw, expected):
    assert redact(raw) == expected


# --- the filter on a real handler --------------------------------------------------------------


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A private logger with a StreamHandler whose formatted output we read back."""
    logger = logging.getLogger(f"test.redact.{uuid.uuid4().hex}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    handler.addFilter(RedactingFilter())
    yield logger, stream
    logger.removeHandler(handler)


def test_message_with_pii(capture):
    logger, out = capture
    logger.info(f"citizen {ID_NUMBER} phone {PHONE}")
    text = out.getvalue()
    assert_clean(text)
    assert f"{ID_NUMBER[:3]}***********{ID_NUMBER[-4:]}" in text and "138****5678" in text


def test_string_args_are_redacted_in_place(capture):
    logger, out = capture
    records: list[logging.LogRecord] = []
    keep = logging.Handler()
    keep.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(keep)
    try:
        logger.info("citizen %s phone %s count %d", ID_NUMBER, PHONE, 3)
    finally:
        logger.removeHandler(keep)
    assert_clean(out.getvalue())
    assert "count 3" in out.getvalue()
    [record] = records
    assert record.msg == "citizen %s phone %s count %d"
    assert record.args == (f"{ID_NUMBER[:3]}***********{ID_NUMBER[-4:]}", "138****5678", 3)
    assert isinstance(record.args[2], int)  # non-matching args are kept as they are


def test_non_string_args(capture):
    logger, out = capture

    class Citizen:
        def __str__(self) -> str:
            return f"Citizen(phone={PHONE})"

    class Boom:
        def __str__(self) -> str:
            raise RuntimeError("no str")

        def __repr__(self) -> str:
            return "Boom()"

    logger.info("a %s b %r c %s d %s", Citizen(), Boom(), 13812345678, 4.5)
    logger.info("as number %d", 13812345678)  # replacing the int would break "%d": rendered instead
    logger.info("none %s bytes %s list %s", None, PHONE.encode(), [ID_NUMBER])
    text = out.getvalue()
    assert_clean(text)
    assert "Boom()" in text and "4.5" in text and "None" in text
    assert "as number 138****5678" in text
    assert "--- Logging error ---" not in text


def test_mapping_args(capture):
    logger, out = capture
    logger.info("phone %(phone)s id %(id)s n %(n)d", {"phone": PHONE, "id": ID_NUMBER, "n": 7})
    assert_clean(out.getvalue())
    assert "n 7" in out.getvalue()


def test_secret_split_between_message_and_args(capture):
    logger, out = capture
    logger.info("Authorization: Bearer %s", OPAQUE)
    logger.info("GET %s?code=%s&state=%s", "/cb", "wx-code-777", "s")
    text = out.getvalue()
    assert_clean(text)
    assert "Authorization: Bearer [redacted]" in text
    assert "GET /cb?code=[redacted]&state=s" in text


def test_tokens_keys_and_urls(capture):
    logger, out = capture
    logger.warning("issued %s", JWT)
    logger.warning("loaded key %s", PEM)
    logger.warning("redirect to %s", "https://open.weixin.qq.com/x?appid=wx1&code=wx-code-777#wechat_redirect")
    text = out.getvalue()
    assert_clean(text)
    assert "[token]" in text and "[key]" in text and "appid=wx1" in text


def test_non_string_msg(capture):
    logger, out = capture
    logger.info({"phone": PHONE, "ok": True})
    logger.info(12345)
    assert_clean(out.getvalue())
    assert "12345" in out.getvalue()


def test_extra_attributes(capture):
    logger, out = capture
    logger.handlers[0].setFormatter(
        logging.Formatter("%(message)s|%(path)s|%(query)s|%(detail)s|%(request)s|%(status)s")
    )
    logger.info(
        "request",
        extra={
            "path": f"/api/v1/citizens/by-id/{ID_NUMBER}",
            "query": f"phone={PHONE}&token={OPAQUE}",
            "detail": {"authorization": f"Bearer {OPAQUE}"},
            "request": "GET /cb?code=wx-code-777",
            "status": 200,
        },
    )
    text = out.getvalue()
    assert_clean(text)
    assert text.strip().endswith("|200")


def test_traceback_is_redacted(capture):
    logger, out = capture
    try:
        raise ValueError(f"duplicate id_number {ID_NUMBER} for phone {PHONE}")
    except ValueError:
        logger.exception("could not save citizen")
    text = out.getvalue()
    assert_clean(text)
    assert "Traceback" in text and "ValueError: duplicate id_number 430***" in text


def test_traceback_is_redacted_for_formatters_that_read_exc_info(capture):
    logger, out = capture
    logger.handlers[0].setFormatter(JsonFormatter())
    try:
        raise ValueError(f"bad {ID_NUMBER}")
    except ValueError:
        logger.exception("boom %s", PHONE)
    line = json.loads(out.getvalue())
    assert_clean(out.getvalue())
    assert line["msg"] == "boom 138****5678"


def test_clean_traceback_kept_as_is(capture):
    logger, out = capture
    records: list[logging.LogRecord] = []
    keep = logging.Handler()
    keep.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(keep)
    try:
        raise KeyError("harmless")
    except KeyError:
        logger.exception("oops")
    logger.removeHandler(keep)
    assert records[0].exc_info is not None
    assert "KeyError: 'harmless'" in out.getvalue()


def test_stack_info_redacted(capture):
    logger, out = capture
    phone = PHONE  # noqa: F841 - the source line below shows up in the stack
    logger.info("where", stack_info=True)  # 13812345678
    assert_clean(out.getvalue())


def test_redaction_failure_drops_the_message(capture, monkeypatch):
    logger, out = capture

    def broken(text: str) -> str:
        raise RuntimeError("bug")

    monkeypatch.setattr(redact_module, "redact", broken)
    logger.error("phone %s", PHONE)
    assert_clean(out.getvalue())
    assert "[log message dropped: redaction failed]" in out.getvalue()


def test_filter_never_drops_records():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "phone %s", (PHONE,), None)
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == "phone 138****5678"


# --- install_redaction -------------------------------------------------------------------------


@pytest.fixture
def installed() -> Iterator[str]:
    name = f"test.install.{uuid.uuid4().hex}"
    yield name
    uninstall_redaction(name)


def test_install_covers_root_handlers(installed, caplog):
    caplog.set_level(logging.INFO)
    install_redaction(installed)
    logger = logging.getLogger(installed)
    logger.info("citizen %s phone %s via %s", ID_NUMBER, PHONE, f"Bearer {OPAQUE}")
    logging.getLogger("some.other.module").warning("callback ?code=wx-code-777 token %s", JWT)
    assert_clean(caplog.text)
    assert all(ID_NUMBER not in r.getMessage() for r in caplog.records)
    assert "138****5678" in caplog.text and "Bearer [redacted]" in caplog.text and "[token]" in caplog.text


def test_install_covers_logger_and_its_own_handlers(installed):
    logger = logging.getLogger(installed)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s %(request)s"))
    logger.addHandler(handler)
    try:
        flt = install_redaction(logging.getLogger(installed))
        assert flt in logger.filters and flt in handler.filters
        # A child logger's records only meet the parent's handlers: the handler filter covers them.
        logging.getLogger(f"{installed}.child").info("x", extra={"request": f"GET /cb?js_code=wx-code-777&p={PHONE}"})
        logger.info("y %s", ID_NUMBER, extra={"request": "-"})
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert_clean(stream.getvalue())
    assert "js_code=[redacted]" in stream.getvalue()


def test_install_is_idempotent(installed):
    logger = logging.getLogger(installed)
    install_redaction(installed)
    install_redaction(installed, logger)
    assert sum(isinstance(f, RedactingFilter) for f in logger.filters) == 1
    for handler in logging.getLogger().handlers:
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    uninstall_redaction(installed)
    assert not any(isinstance(f, RedactingFilter) for f in logger.filters)
    for handler in logging.getLogger().handlers:
        assert not any(isinstance(f, RedactingFilter) for f in handler.filters)
