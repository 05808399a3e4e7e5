"""Keep personal data and secrets out of every log line.

`RedactingFilter` rewrites each record before a handler formats it:

* 18-character identity card numbers (17 digits + digit/X) are masked like "430***********1234";
  11-digit mainland mobile numbers (optionally "+86"/"0086"/"86" prefixed or written "138-1234-5678")
  like "138****5678"; either only when it stands alone, not inside a longer run of ASCII letters and
  digits, so request ids, UUIDs and hex digests (SHA-256, ETags) pass whole; Chinese text or
  punctuation around a number does not protect it;
* JWTs (three base64url segments starting "eyJ") become "[token]"; "Bearer <anything>" becomes
  "Bearer [redacted]" (and "Basic <base64 credentials>" "Basic [redacted]");
* the values of query parameters (also URL-encoded ones, "code%3D…") and of JSON / repr keys named
  token, secret, password, passwd or anything ending in those (access_token, refresh_token,
  client_secret, appsecret, …), js_code, session_key, otp, api_key, secret_key, private_key,
  sms_code, verify_code, verification_code, and code (query parameters only) become "[redacted]";
* PEM blocks ("-----BEGIN … KEY-----" … "-----END …-----", or to the end of a truncated text) become
  "[key]".

It covers `record.msg`, `record.args` (string args are redacted in place; other args are kept as
they are unless their `str()` contains a match, in which case that string, redacted, replaces
them; when a secret only appears once message and args are put together — "Bearer %s" — the
rendered, redacted message replaces both), every `extra` attribute (path, query, detail, request,
…; non-strings by the same rule as args), a traceback (formatted, redacted and kept as
`exc_text`, with `exc_info` dropped when it contained a match) and `stack_info`. If redaction
itself fails the message is dropped, never logged raw. Not covered: 15-digit first-generation ID
numbers, numbers split by spaces other than the phone formats above, numbers glued to ASCII letters
("ID430802…", "13812345678abc": indistinguishable from a hex id), and handlers added to the root
logger after `install_redaction` ran.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from auth.pii import mask_id_number, mask_phone

# Any name ending in token/secret/password/passwd (access_token, refresh_token, client_secret, appsecret,
# csrf_token, …) and a few more; "code" (OAuth / WeChat login codes) only as a query parameter.
_HIDDEN_NAMES = (
    r"[A-Za-z0-9_]*(?:token|secret|password|passwd)"
    r"|js_code|session_key|otp|api_key|secret_key|private_key|sms_code|verify_code|verification_code"
)
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]{1,64}-----.*?(?:-----END [A-Z0-9 ]{1,64}-----|\Z)", re.DOTALL)
_AUTH = re.compile(r"\b(Bearer\s+[^\s\"',;]+|Basic\s+[A-Za-z0-9+/]{8,}={0,2})", re.IGNORECASE)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_QUERY = re.compile(
    rf"(?:(?<![A-Za-z0-9_])|(?<=%3F)|(?<=%26))((?:{_HIDDEN_NAMES}|code)(?:=|%3D))(?:(?!%26)[^&\s#\"',;])+",
    re.IGNORECASE,
)
_KEYED = re.compile(
    rf"""(["'])({_HIDDEN_NAMES})\1(\s*:\s*)(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s,}}\]]+)""",
    re.IGNORECASE,
)
# ASCII letters and digits on either side mean the digits are part of an identifier (a request id, a UUID,
# a hex digest), never a number of a person; \b or \w would also count Chinese characters as word characters.
_ALONE_BEFORE, _ALONE_AFTER = r"(?<![A-Za-z0-9])", r"(?![A-Za-z0-9])"
_ID_NUMBER = re.compile(rf"{_ALONE_BEFORE}\d{{17}}[\dXx]{_ALONE_AFTER}")
_MOBILE = re.compile(rf"{_ALONE_BEFORE}((?:\+|00)?86[ -]?)?(1[3-9]\d(?:[ -]?\d{{4}}){{2}}){_ALONE_AFTER}")
_NOT_DIGIT = re.compile(r"\D")

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("x", logging.INFO, __file__, 0, "", None, None))) | {
    "asctime",
    "taskName",
}
_DROPPED = "[log message dropped: redaction failed]"


def _mask_mobile(match: re.Match[str]) -> str:
    return (match.group(1) or "") + mask_phone(_NOT_DIGIT.sub("", match.group(2)))


def _redact_keyed(match: re.Match[str]) -> str:
    quote, name, colon = match.group(1), match.group(2), match.group(3)
    return f"{quote}{name}{quote}{colon}{quote}[redacted]{quote}"


def redact(text: str) -> str:
    """Return `text` with ID numbers, mobiles, tokens, secret parameters and PEM keys masked."""
    if not text:
        return text
    text = _PEM.sub("[key]", text)
    text = _AUTH.sub(lambda m: m.group(1).split(None, 1)[0] + " [redacted]", text)
    text = _JWT.sub("[token]", text)
    text = _KEYED.sub(_redact_keyed, text)
    text = _QUERY.sub(lambda m: f"{m.group(1)}[redacted]", text)
    text = _ID_NUMBER.sub(lambda m: mask_id_number(m.group(0)), text)
    return _MOBILE.sub(_mask_mobile, text)


def redact_value(value: Any) -> Any:
    """Redact a string; for any other value return it unchanged unless its `str()` needs redaction."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool):
        return value
    try:
        text = str(value)
    except Exception:  # a broken __str__ will fail in the formatter too; nothing to leak here
        return value
    cleaned = redact(text)
    return value if cleaned == text else cleaned


def _redact_args(args: Any) -> Any:
    if isinstance(args, Mapping):
        return {key: redact_value(value) for key, value in args.items()}
    if isinstance(args, tuple):
        return tuple(redact_value(value) for value in args)
    return redact_value(args)


def _render(msg: Any, args: Any) -> str | None:
    try:
        return str(msg) % args
    except Exception:
        return None


class RedactingFilter(logging.Filter):
    """A logging filter that masks personal data and secrets in a record (never drops the record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; on any internal error replace the message rather than leak it."""
        try:
            self._message(record)
            self._extras(record)
            self._traceback(record)
        except Exception:
            record.msg, record.args = _DROPPED, ()
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True

    @staticmethod
    def _message(record: logging.LogRecord) -> None:
        msg, args = record.msg, record.args
        if not args:
            record.msg = redact_value(msg)
            return
        new_msg, new_args = redact_value(msg), _redact_args(args)
        rendered = _render(new_msg, new_args)
        if rendered is not None and redact(rendered) == rendered:
            record.msg, record.args = new_msg, new_args
            return
        original = _render(msg, args)
        if original is not None:
            # The secret spans message and args ("Bearer %s"), or redacting an arg broke a "%d".
            record.msg, record.args = redact(original), ()
        else:
            # The format itself is broken; logging will report that, with the redacted parts only.
            record.msg, record.args = new_msg, new_args

    @staticmethod
    def _extras(record: logging.LogRecord) -> None:
        for key, value in list(vars(record).items()):
            if key in _STANDARD_ATTRS and key != "message":
                continue
            cleaned = redact_value(value)
            if cleaned is not value:
                setattr(record, key, cleaned)

    @staticmethod
    def _traceback(record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            cleaned = redact(text)
            if cleaned != text:
                # Formatters render `exc_text` when set; drop `exc_info` so none re-renders the raw one.
                record.exc_text, record.exc_info = cleaned, None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)


def _resolve(logger: logging.Logger | str) -> logging.Logger:
    return logging.getLogger(logger) if isinstance(logger, str) else logger


def _add(target: logging.Logger | logging.Handler, flt: RedactingFilter) -> None:
    if not any(isinstance(existing, RedactingFilter) for existing in target.filters):
        target.addFilter(flt)


def install_redaction(*loggers: logging.Logger | str) -> RedactingFilter:
    """Add a `RedactingFilter` to the given loggers, their handlers and every root handler (idempotent)."""
    flt = RedactingFilter()
    for logger in map(_resolve, loggers):
        _add(logger, flt)
        for handler in logger.handlers:
            _add(handler, flt)
    for handler in logging.getLogger().handlers:
        _add(handler, flt)
    return flt


def uninstall_redaction(*loggers: logging.Logger | str) -> None:
    """Remove every `RedactingFilter` from the given loggers, their handlers and the root handlers."""
    targets: list[logging.Logger | logging.Handler] = []
    for logger in map(_resolve, loggers):
        targets.append(logger)
        targets.extend(logger.handlers)
    targets.extend(logging.getLogger().handlers)
    for target in targets:
        for existing in [f for f in target.filters if isinstance(f, RedactingFilter)]:
            target.removeFilter(existing)
