"""HTTP helpers shared by every blueprint: input parsing, JSON and cached responses, API docs."""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from sanic import HTTPResponse, Request
from sanic_ext import openapi
from sanic_ext.extensions.openapi.types import Schema

from app.errors import DomainError, InvalidInput, pydantic_details
from app.jsontext import dumps, loads

log = logging.getLogger("app.http")

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

JSON_TYPE = "application/json; charset=utf-8"
# What templates write for the CSP nonce (`{{ csp_nonce }}`); every HTML response replaces it (app/observe.py).
CSP_NONCE_PLACEHOLDER = "<%zd-csp-nonce-xxxxx%>"  # 22 characters, as long as a nonce: Content-Length is unchanged


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    """A JSON response."""
    return HTTPResponse(dumps(data), status=status, headers=headers, content_type=JSON_TYPE)


def parse_query(request: Request, model: type[M]) -> M:
    """Validate query parameters against a model; 422 with per-field details."""
    if "\x00" in request.query_string or "%00" in request.query_string:
        raise InvalidInput("查询参数不能包含空字符（U+0000）", code="NUL_CHARACTER")
    data: dict[str, Any] = {}
    for key, values in request.args.items():
        data[key] = values[0] if len(values) == 1 else values
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("查询参数不合法", details=pydantic_details(exc)) from None


def parse_body(request: Request, model: type[M] | None = None) -> Any:
    """The JSON body, validated against a model when given; 422 on malformed JSON or fields."""
    try:
        data = loads(request.body or b"null")
    except ValueError:
        raise InvalidInput("请求体不是合法的 JSON", code="MALFORMED_JSON") from None
    if b"\\u0000" in (request.body or b"") and not getattr(model, "ALLOW_NUL", False):
        # PostgreSQL text cannot hold U+0000, and no real input has one.
        raise InvalidInput("请求内容不能包含空字符（U+0000）", code="NUL_CHARACTER")
    if model is None:
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("请求内容不合法", details=pydantic_details(exc)) from None


@dataclass(frozen=True)
class Answered:
    """What an idempotent write answered: its status and body, and whether this was a replay."""

    status: int
    body: Any
    replayed: bool = False
    text: str | None = None  # a replay's stored text, byte for byte


async def idempotent(
    request: Request,
    *,
    owner: str,
    payload: Any,
    run: Callable[[Any], Awaitable[Any]],
    status: int = 201,
    precheck: Callable[[str, str], Awaitable[Any]] | None = None,
    replay: Callable[[str], str] | None = None,
    key_required: bool = True,
) -> HTTPResponse:
    """Run a retryable write once per Idempotency-Key: replay its answer, 422 for another body, 409 in flight.

    `run(claim)` performs the write and calls `claim.complete(status, body)` inside its transaction.
    `precheck(owner, key)` may refuse a request (a DomainError) before its key is claimed, and must do so only
    when the key is new: a storm of hopeless attempts costs reads only; a key with history gets its replay.
    A precheck returning `Precheck(known=False)` lets the write record the key itself: `run` then gets an
    `idempotency.Pending` (with the precheck's `seen`) and stores key and answer in its own transaction;
    `KeyTaken` from it sends the request down the claim path after all.
    `replay(text)` turns a stored answer back into the response (e.g. opens a sealed one-time secret).
    With `key_required=False` a request without the header simply runs once (`run(None)`).
    """
    if not key_required and not request.headers.get("idempotency-key"):
        return json_response(await finish_even_if_disconnected(run(None)), status=status)
    answer = await idempotent_answer(
        request, key=request.headers.get("idempotency-key"), owner=owner, payload=payload, run=run,
        status=status, precheck=precheck, replay=replay,
    )  # fmt: skip
    if answer.replayed:
        return HTTPResponse(
            answer.text, status=answer.status, content_type=JSON_TYPE, headers={"Idempotent-Replayed": "true"}
        )
    return json_response(answer.body, status=answer.status)


async def idempotent_answer(
    request: Request,
    *,
    key: str | None,
    owner: str,
    payload: Any,
    run: Callable[[Any], Awaitable[Any]],
    status: int = 201,
    precheck: Callable[[str, str], Awaitable[Any]] | None = None,
    replay: Callable[[str], str] | None = None,
) -> Answered:
    """`idempotent`'s rule for any channel: the key may come from a header or a form's hidden field."""
    from app import idempotency

    key = idempotency.check_key(key)
    digest = idempotency.fingerprint(f"{request.method} {request.path}", payload)
    checked = await precheck(owner, key) if precheck is not None else None
    if isinstance(checked, idempotency.Precheck) and not checked.known:
        # A new key is recorded by the write itself, with its answer: one transaction, nothing to release.
        try:
            body = await finish_even_if_disconnected(run(idempotency.Pending(owner, key, digest, checked.seen)))
        except idempotency.KeyTaken:
            pass  # a concurrent request with this key recorded first: answer as for any known key
        else:
            return Answered(status, body)

    async def claim_and_write() -> Any:
        claimed = await idempotency.claim(owner=owner, key=key, digest=digest)
        if isinstance(claimed, idempotency.Replay):
            return claimed
        try:
            return await run(claimed)
        except Exception:
            await claimed.release()  # the write failed and changed nothing: the client may retry the key
            raise

    # Claim and write run as one shielded task: a client that leaves between the two cannot strand a claimed key.
    result = await finish_even_if_disconnected(claim_and_write())
    if isinstance(result, idempotency.Replay):
        # The stored text itself: a replay is byte for byte the first answer.
        text = replay(result.body) if replay is not None else result.body
        return Answered(result.status, loads(text), replayed=True, text=text)
    return Answered(status, result)


async def finish_even_if_disconnected(
    write: Awaitable[T], *, on_error: Callable[[], Awaitable[Any]] | None = None
) -> T:
    """Run a write to its end even when the client goes away (Sanic cancels the handler then).

    A transaction cut by a cancellation can leave its pooled connection unusable. Shielded, the
    write commits or rolls back normally, and an idempotent write stores its answer for the retry.
    """
    task = asyncio.ensure_future(write)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        # The write goes on in `task` (an idempotent one stores its answer for the retry); if it fails
        # there, it is cleaned up there too, or its idempotency key would stay claimed until swept.
        task.add_done_callback(lambda done: _after_orphaned_write(done, on_error))
        raise
    except Exception:
        if on_error is not None:
            await on_error()  # the write failed and changed nothing (e.g. free its idempotency key)
        raise


_cleanups: set[asyncio.Future[Any]] = set()  # strong references: the loop keeps only weak ones


def _after_orphaned_write(task: asyncio.Future[Any], on_error: Callable[[], Awaitable[Any]] | None) -> None:
    """A write whose client went away has ended: retrieve its error and undo its claim if it failed."""
    if task.cancelled() or task.exception() is None:
        return
    exc = task.exception()
    if not isinstance(exc, DomainError):
        log.warning("write failed after its client went away: %r", exc)
    if on_error is not None:
        cleanup = asyncio.ensure_future(on_error())
        _cleanups.add(cleanup)
        cleanup.add_done_callback(_cleanups.discard)


def etag_matches(request: Request, etag: str) -> bool:
    """True when If-None-Match names this ETag (weak comparison, lists and * allowed)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in header.split(","))


def cached_response(request: Request, body: bytes, etag: str, *, content_type: str, max_age: int) -> HTTPResponse:
    """200 with ETag/Cache-Control, or 304 when the client already has this content."""
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}", "Vary": "Accept-Encoding"}
    if etag_matches(request, etag):
        return HTTPResponse(status=304, headers=headers)
    return HTTPResponse(body, headers=headers, content_type=content_type)


def doc(
    *,
    tag: str,
    summary: str,
    description: str | None = None,
    errors: Iterable[type[DomainError]] = (),
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | dict[str, Any] | None = None,
    response: Any = None,
    status: int = 200,
    secured: str | None = None,
    body_media: str = "application/json",
) -> Callable[[F], F]:
    """Document an endpoint in the OpenAPI spec, including every error code it can answer."""

    def decorate(func: F) -> F:
        func = openapi.tag(tag)(func)
        func = openapi.summary(summary)(func)
        if description:
            func = openapi.description(description)(func)
        if query is not None:
            for name, info in query.model_fields.items():
                func = openapi.parameter(
                    info.alias or name,
                    _py_type(info.annotation),
                    "query",
                    required=info.is_required(),
                    description=info.description or "",
                )(func)
        if body is not None:
            func = openapi.body({body_media: schema_of(body)})(func)
        func = openapi.response(status, {"application/json": schema_of(response or JsonObject)}, "成功")(func)
        by_status: dict[int, list[str]] = {}
        for err in errors:
            by_status.setdefault(err.status, []).append(f"`{err.code}` {err.message}")
        for code, lines in sorted(by_status.items()):
            errors_doc = {"application/json": {"schema": _error_schema()}}
            func = openapi.response(code, errors_doc, "错误码: " + "; ".join(lines))(func)
        if secured:
            func = openapi.secured(secured)(func)
        return func

    return decorate


@functools.cache
def _error_schema() -> Schema:
    """The error envelope's schema, made once: given as a class, every response it documents analysed it again."""
    return Schema.make(ErrorEnvelope)


def schema_of(model: Any) -> Any:
    """An OpenAPI schema for a pydantic model (pydantic's own JSON schema, with nested models inlined)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return model
    return copy.deepcopy(_model_schema(model))  # each route its own copy: the spec builder may annotate it


@functools.cache
def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's schema, made once per process (most of a worker's start was spent making the same ones again)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.rsplit("/", 1)[1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(schema)


def _py_type(annotation: Any) -> type:
    for candidate in (int, float, bool, str):
        if annotation is candidate or candidate in getattr(annotation, "__args__", ()):
            return candidate
    return str


class JsonObject(BaseModel):
    """A JSON object (the operation's description says what it holds)."""

    model_config = ConfigDict(extra="allow")


class ErrorDetail(BaseModel):
    """The inside of an error envelope."""

    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorEnvelope(BaseModel):
    """`{"error": {"code", "message", "details"}}`."""

    error: ErrorDetail


# ---------------------------------------------------------------- path parameters

# Path parameters naming a bounded column that their handlers pass straight to a lookup: a longer value names
# nothing, and must never reach the column's own length check (a 500). Keyed by the parameter's name, which means
# the same thing on every route (a `<hall>` is always a hall code), so a new route with such a parameter is covered
# too. Other parameters are checked by their handlers (tests/api/test_path_params.py walks every route).
PATH_VALUE_LIMITS: dict[str, int] = {"hall": 32, "username": 64}


class PathParameterInvalid(DomainError):
    code, message, status = "PATH_PARAMETER_INVALID", "请求的资源不存在", 404


def check_path_params(request: Request) -> None:
    """Bounded path parameters at the boundary: within their column's length and printable; else 404."""
    match_info = request.match_info
    if not match_info:
        return
    for name, limit in PATH_VALUE_LIMITS.items():
        value = match_info.get(name)
        if isinstance(value, str) and (not value or len(value) > limit or not value.isprintable()):
            raise PathParameterInvalid(details={"parameter": name})


def bound_path_params(app: Any) -> None:
    """Check the bounded parameters (PATH_VALUE_LIMITS) on the routes that have them, and only there.

    Run once the routes are final (a `before_server_start` listener): each handler of a route with such a
    parameter is wrapped in `check_path_params`, so a route added later is covered and no other request pays
    for it (a per-request hook costs every request a signal dispatch; bench/README.md).
    """
    for route in app.router.routes:
        names = {param.name for param in route.params.values()}
        if names & PATH_VALUE_LIMITS.keys() and not getattr(route.handler, "__path_checked__", False):
            route.handler = _path_checked(route.handler)


def _path_checked(handler: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(handler)
    async def checked(request: Request, *args: Any, **kwargs: Any) -> Any:
        check_path_params(request)
        return await handler(request, *args, **kwargs)

    checked.__path_checked__ = True  # type: ignore[attr-defined]
    return checked
