"""TokenAuthority and the key ring, without HTTP: issuing, verifying, the per-worker verified cache
across workers (shared store), key rotation, and the staff scope of a Principal."""

from __future__ import annotations

import asyncio
import base64
import re
import uuid
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.cache import LocalCache
from app.settings import Settings
from app.store import make_store
from auth import sessions
from auth.errors import TokenExpired, TokenInvalid, TokenRevoked
from auth.guards import _same_origin, bearer
from auth.models import AuthSession, Citizen, Role, SigningKey, Staff
from auth.pii import PiiCipher, PiiDecryptError
from auth.tokens import (
    _FORBIDDEN_HEADERS,
    ALL_AUDIENCES,
    CITIZEN_AUDIENCES,
    STAFF_AUDIENCE,
    Principal,
    TokenAuthority,
    cache_key,
    public_jwk,
    utc_from_ts,
)

DOWN_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1
APP = frozenset({"app"})


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[Callable[..., TokenAuthority]]:
    """Make TokenAuthority instances like workers' (own LocalCache, one shared store); closed at the end."""
    stores = []

    def make(*, ttl: float = 300.0, store_settings: Settings | None = None, **changes) -> TokenAuthority:
        s = settings.replace(**changes) if changes else settings
        store = make_store(store_settings or s)
        stores.append(store)
        return TokenAuthority(s, PiiCipher.from_settings(s), LocalCache(store, ttl=ttl))

    yield make
    for store in stores:
        await store.aclose()


@pytest.fixture
def keys(worker: Callable[..., TokenAuthority]) -> TokenAuthority:
    """Key administration from another process (the CLI): its own cache on the shared store."""
    return worker()


async def _citizen(authority: TokenAuthority, *, loa: int = 2, audience: str = "app") -> tuple[Citizen, str]:
    citizen = await Citizen.create(id=uuid.uuid4(), loa=loa)
    rotation = await sessions.open_session(subject=f"citizen:{citizen.id}", audience=audience, refresh_days=30)
    token, _ = await authority.issue(
        subject=f"citizen:{citizen.id}", audience=audience, session_id=str(rotation.session.id), extra={"loa": loa}
    )
    return citizen, token


async def _staff(authority: TokenAuthority, *, role: str = "clerk") -> tuple[Staff, str]:
    staff = await Staff.create(
        id=uuid.uuid4(),
        username=f"s_{uuid.uuid4().hex[:8]}",
        password_hash="x",
        role=Role(role),
        hall_code="main",
        departments=["scjgj"],
    )
    rotation = await sessions.open_session(subject=f"staff:{staff.id}", audience=STAFF_AUDIENCE, refresh_days=30)
    token, _ = await authority.issue(
        subject=f"staff:{staff.id}",
        audience=STAFF_AUDIENCE,
        session_id=str(rotation.session.id),
        extra={"role": role, "hall": "main", "departments": ["scjgj"]},
    )
    return staff, token


def _kid(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def _sid(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["sid"]


# ---------------------------------------------------------------- keys


def test_public_jwk_has_only_public_fields():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    jwk = public_jwk("k1", private.public_key())
    assert set(jwk) == {"kty", "crv", "x", "kid", "use", "alg"}
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"], jwk["kid"]) == ("OKP", "Ed25519", "EdDSA", "sig", "k1")
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4)) == raw
    assert "d" not in jwk and "=" not in jwk["x"]
    assert isinstance(jwt.PyJWK(jwk).key, type(private.public_key()))


async def test_create_key_keeps_exactly_one_active_and_encrypts_the_private_key(settings, fake_clock, keys):
    cipher = keys.cipher
    first = await keys.create_key(activate=True)
    spare = await keys.create_key(activate=False)
    assert re.fullmatch(r"20260930-[0-9a-f]{8}", first)
    assert [k.kid for k in await SigningKey.filter(active=True)] == [first]
    second = await keys.create_key(activate=True)
    assert [k.kid for k in await SigningKey.filter(active=True)] == [second]
    assert {first, spare, second} == {k.kid for k in await SigningKey.all()}
    row = await SigningKey.get(kid=second)
    assert "PRIVATE KEY" not in row.private_enc and row.private_enc.startswith("v1.")
    # The private key is bound to its kid: it cannot be moved to another row.
    with pytest.raises(PiiDecryptError):
        cipher.decrypt(row.private_enc, aad=f"signing-key:{first}")
    assert "BEGIN PRIVATE KEY" in cipher.decrypt(row.private_enc, aad=f"signing-key:{second}")


async def test_ensure_key_is_idempotent_and_replaces_a_missing_active_key(settings, keys):
    await keys.ensure_key()
    await keys.ensure_key()
    assert await SigningKey.all().count() == 1
    await SigningKey.all().update(active=False)
    await keys.ensure_key()
    assert await SigningKey.filter(active=True).count() == 1 and await SigningKey.all().count() == 2


async def test_retire_key_rules(settings, keys):
    old = await keys.create_key(activate=True)
    new = await keys.create_key(activate=True)
    assert await keys.retire_key(new) is False  # the signer cannot be retired
    assert await keys.retire_key("missing") is False
    assert await keys.retire_key(old) is True
    assert await keys.retire_key(old) is False
    assert (await SigningKey.get(kid=old)).retired_at is not None


def test_forbidden_headers_cover_key_injection():
    assert {"jku", "jwk", "x5u", "x5c", "crit"} <= _FORBIDDEN_HEADERS


# ---------------------------------------------------------------- issue and verify


async def test_issue_shape_and_independent_verification_with_jwks(worker, settings, fake_clock):
    authority = worker()
    citizen, token = await _citizen(authority, loa=2, audience="miniprogram")
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "kid": header["kid"], "typ": "at+jwt"}
    jwks = await authority.jwks()
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"]))
    now = int(fake_clock().timestamp())
    claims = jwt.decode(
        token,
        key,
        algorithms=["EdDSA"],
        audience="miniprogram",
        issuer=settings.jwt_issuer,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims["sub"] == f"citizen:{citizen.id}" and claims["typ"] == "access" and claims["loa"] == 2
    assert claims["iat"] == claims["nbf"] == now and claims["exp"] == now + settings.access_token_seconds
    assert re.fullmatch(r"[0-9a-f]{32}", claims["jti"]) and uuid.UUID(claims["sid"])
    _, second = await _citizen(authority)
    assert jwt.decode(second, options={"verify_signature": False})["jti"] != claims["jti"]


async def test_verify_gives_the_principal(worker):
    authority = worker()
    citizen, token = await _citizen(authority, loa=3, audience="h5")
    p = await authority.verify(token, audiences=CITIZEN_AUDIENCES)
    assert (p.kind, p.id, p.audience, p.loa, p.role) == ("citizen", str(citizen.id), "h5", 3, None)
    assert p.subject == f"citizen:{citizen.id}" and p.session_id == _sid(token)
    staff, stoken = await _staff(authority, role="reviewer")
    s = await authority.verify(stoken, audiences=frozenset({STAFF_AUDIENCE}))
    assert (s.kind, s.id, s.role, s.hall, s.departments, s.loa) == (
        "staff",
        str(staff.id),
        "reviewer",
        "main",
        ("scjgj",),
        0,
    )
    assert utc_from_ts(s.expires_at).timestamp() == s.expires_at


async def test_verified_tokens_are_cached_per_worker(worker, monkeypatch):
    authority = worker()
    _, token = await _citizen(authority)
    calls = []
    original = AuthSession.get_or_none

    async def counting(*args, **kwargs):
        calls.append(1)
        return await original(*args, **kwargs)

    monkeypatch.setattr(AuthSession, "get_or_none", counting)
    first = await authority.verify(token, audiences=APP)
    second = await authority.verify(token, audiences=APP)
    assert second is first and len(calls) == 1
    other = worker()  # another worker has its own cache
    await other.verify(token, audiences=APP)
    assert len(calls) == 2


async def test_cache_can_be_turned_off(worker):
    authority = worker(token_cache_size=0)
    _, token = await _citizen(authority)
    await authority.verify(token, audiences=APP)
    await sessions.revoke_session(_sid(token), reason="logout")  # no invalidation published at all
    with pytest.raises(TokenRevoked):
        await authority.verify(token, audiences=APP)


async def test_cached_token_still_checks_audience_and_expiry(worker, fake_clock, settings):
    authority = worker()
    _, token = await _citizen(authority)
    await authority.verify(token, audiences=APP)
    with pytest.raises(TokenInvalid) as wrong:
        await authority.verify(token, audiences=frozenset({STAFF_AUDIENCE}))
    assert wrong.value.details == {"reason": "audience"}
    fake_clock.advance(seconds=settings.access_token_seconds)
    with pytest.raises(TokenExpired):
        await authority.verify(token, audiences=APP)


async def test_failures_are_not_cached(worker):
    authority = worker()
    _, token = await _citizen(authority)
    for bad in ("x" * 5000, token + "x", "a.b.c"):
        with pytest.raises(TokenInvalid):
            await authority.verify(bad, audiences=APP)
        assert authority.cache.get("tokens", cache_key(bad)) is None
    assert authority.cache.size("tokens") == 0


async def test_the_verified_cache_holds_digests_not_tokens(worker):
    """Each entry is keyed by a 16-byte digest (a token is ~500 characters) and keeps no decoded claims."""
    authority = worker()
    _, token = await _citizen(authority)
    principal = await authority.verify(token, audiences=APP)
    assert authority.cache.get("tokens", cache_key(token)) is principal
    assert authority.cache.get("tokens", token) is None
    assert len(cache_key(token)) == 16 and cache_key(token) != cache_key(token + "x")
    assert not hasattr(principal, "__dict__") and principal.issued_at == jwt.decode(
        token, options={"verify_signature": False}
    )["iat"]


async def test_the_verified_cache_is_bounded_by_token_cache_size(worker, monkeypatch):
    authority = worker(token_cache_size=3)
    tokens = [(await _citizen(authority))[1] for _ in range(5)]
    for token in tokens:
        await authority.verify(token, audiences=APP)
    assert authority.cache.size("tokens") == 3
    calls = []
    original = AuthSession.get_or_none

    async def counting(*args, **kwargs):
        calls.append(1)
        return await original(*args, **kwargs)

    monkeypatch.setattr(AuthSession, "get_or_none", counting)
    await authority.verify(tokens[-1], audiences=APP)  # among the 3 most recent: cached
    assert calls == []
    await authority.verify(tokens[0], audiences=APP)  # pushed out: verified again
    assert calls == [1] and authority.cache.size("tokens") == 3


def _variants(token: str) -> list[str]:
    """Other texts of the same signed bytes: padding on a segment, another last character of a segment."""
    b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    parts = token.split(".")
    out = [token + "==", token + "=", ".".join([parts[0] + "=", *parts[1:]])]
    for i, part in enumerate(parts):
        unused = 6 * len(part) % 8
        last = b64.index(part[-1])
        for bits in range(1, 1 << unused):
            changed = [*parts]
            changed[i] = part[:-1] + b64[last | bits]
            out.append(".".join(changed))
    return out


async def test_only_the_canonical_encoding_of_a_token_is_accepted(worker):
    """Issue 20 point 11: a JWT with `==` appended to its signature was accepted."""
    authority = worker()
    citizen, token = await _citizen(authority)
    key = authority._public[_kid(token)]
    variants = _variants(token)
    assert len(variants) >= 3 + 15  # the 64-byte signature alone leaves 4 unused bits
    lenient = []
    for variant in variants:
        try:  # PyJWT reads most of them as the very same token...
            jwt.decode(variant, key, algorithms=["EdDSA"], options={"verify_aud": False})
            lenient.append(variant)
        except jwt.DecodeError:
            pass
        # ...we accept exactly the text we issued.
        with pytest.raises(TokenInvalid) as info:
            await authority.verify(variant, audiences=APP)
        assert info.value.details == {"reason": "malformed"}, variant
    assert token + "==" in lenient  # the variant the issue found; PyJWT refuses the others itself
    assert (await authority.verify(token, audiences=APP)).id == str(citizen.id)


async def test_session_must_belong_to_the_subject(worker, settings):
    authority = worker()
    a, _ = await _citizen(authority)
    _b, b_token = await _citizen(authority)
    # a token naming citizen a with b's session id (as a key thief would mint it)
    forged, _ = await authority.issue(
        subject=f"citizen:{a.id}", audience="app", session_id=_sid(b_token), extra={"loa": 2}
    )
    with pytest.raises(TokenRevoked):
        await authority.verify(forged, audiences=APP)


async def test_disabled_or_missing_account_is_revoked(worker):
    authority = worker()
    citizen, token = await _citizen(authority)
    await Citizen.filter(id=citizen.id).update(disabled=True)  # without revoking sessions
    with pytest.raises(TokenRevoked):
        await authority.verify(token, audiences=APP)
    ghost_sid = str(
        (await sessions.open_session(subject=f"citizen:{uuid.uuid4()}", audience="app", refresh_days=1)).session.id
    )
    ghost = (await AuthSession.get(id=ghost_sid)).subject
    forged, _ = await authority.issue(subject=ghost, audience="app", session_id=ghost_sid, extra={"loa": 3})
    with pytest.raises(TokenRevoked):
        await authority.verify(forged, audiences=APP)


@pytest.mark.parametrize(
    "extra", [{"typ": "refresh"}, {"typ": None}, {"sub": "citizen:"}, {"sub": "robot:1"}, {"sid": "not-a-uuid"}]
)
async def test_reserved_claims_are_checked_even_when_signed_by_us(worker, extra):
    authority = worker()
    citizen, token = await _citizen(authority)
    forged, _ = await authority.issue(
        subject=f"citizen:{citizen.id}", audience="app", session_id=_sid(token), extra={"loa": 2, **extra}
    )
    with pytest.raises(TokenInvalid):
        await authority.verify(forged, audiences=APP)


# ---------------------------------------------------------------- several workers, one store


async def test_revocation_reaches_another_worker_after_its_sync(worker):
    a, b = worker(), worker()
    _, token = await _citizen(a)
    await a.verify(token, audiences=APP)
    await a.cache.sync()  # steady state: a has seen the namespace's generation
    await sessions.revoke_session(_sid(token), reason="logout")
    await b.revoked()  # worker b handled the logout
    await a.cache.sync()  # a's tick
    with pytest.raises(TokenRevoked):
        await a.verify(token, audiences=APP)


async def test_worker_whose_store_is_down_stops_trusting_its_cache(worker, settings):
    down = settings.replace(redis_url=DOWN_REDIS)
    a = worker(store_settings=down)
    _, token = await _citizen(a)
    await a.verify(token, audiences=APP)
    await sessions.revoke_session(_sid(token), reason="logout")  # the invalidation cannot reach a
    await a.cache.sync()  # the store cannot be read: a drops everything and asks the database
    with pytest.raises(TokenRevoked):
        await a.verify(token, audiences=APP)


async def test_rotation_seen_by_fresh_workers_and_by_unknown_kid_reload(worker, settings, keys):
    a = worker()
    _, old_token = await _citizen(a)
    old_kid = _kid(old_token)
    new_kid = await keys.create_key(activate=True)
    b = worker()  # started after the rotation
    _, new_token = await _citizen(b)
    assert _kid(new_token) == new_kid
    await b.verify(old_token, audiences=APP)  # old keys keep verifying
    # a meets the new kid: it reloads its key ring once, verifies, and signs with the new key from then on
    await a.verify(new_token, audiences=APP)
    _, later = await _citizen(a)
    assert _kid(later) == new_kid and old_kid != new_kid


async def test_stale_key_ring_is_bounded_by_the_cache_ttl(worker, settings, keys):
    """Without an invalidation, a worker picks up a rotation and a retirement when its cache entries expire."""
    a = worker(ttl=0.2)
    _, old_token = await _citizen(a)
    await a.verify(old_token, audiences=APP)
    new_kid = await keys.create_key(activate=True)
    assert await keys.retire_key(_kid(old_token))
    await asyncio.sleep(0.3)
    with pytest.raises(TokenInvalid) as exc:
        await a.verify(old_token, audiences=APP)
    assert exc.value.details == {"reason": "kid"}
    _, fresh = await _citizen(a)
    assert _kid(fresh) == new_kid


async def test_retired_key_is_not_reloaded_for_an_unknown_kid(worker, settings, keys):
    a = worker()
    _, old_token = await _citizen(a)
    await keys.create_key(activate=True)
    assert await keys.retire_key(_kid(old_token))
    b = worker()
    with pytest.raises(TokenInvalid):
        await b.verify(old_token, audiences=ALL_AUDIENCES)
    assert _kid(old_token) not in {k["kid"] for k in (await b.jwks())["keys"]}


# ---------------------------------------------------------------- staff scope of a principal (Principal.covers)


def _p(role: str | None, *, hall: str | None = None, departments: tuple[str, ...] = (), kind: str = "staff"):
    return Principal(
        kind=kind,
        id=str(uuid.uuid4()),
        audience="staff",
        session_id=str(uuid.uuid4()),
        role=role,
        hall=hall,
        departments=departments,
    )


def test_hall_scope():
    clerk = _p("clerk", hall="main")
    assert clerk.covers(department=None, hall="main")
    for other in ("wulingyuan", "", "MAIN", "main "):
        assert not clerk.covers(department=None, hall=other)
    assert _p("admin").covers(department=None, hall="wulingyuan")
    assert not _p("reviewer", departments=("scjgj",)).covers(department=None, hall="main")
    assert not _p(None, kind="citizen").covers(department=None, hall="main")
    assert not _p("clerk", hall=None).covers(department=None, hall="main")


def test_department_scope():
    reviewer = _p("reviewer", departments=("scjgj", "gaj"))
    assert reviewer.covers(department="scjgj", hall=None)
    assert reviewer.covers(department="gaj", hall=None)
    for other in ("swj", "", "SCJGJ", "scj"):
        assert not reviewer.covers(department=other, hall=None)
    assert _p("admin").covers(department="swj", hall=None)
    assert not _p("clerk", hall="main").covers(department="scjgj", hall=None)
    assert not _p("reviewer").covers(department="scjgj", hall=None)


def _matches(filters: dict[str, object], record: dict[str, str | None]) -> bool:
    """Evaluate ORM filter arguments (`field` and `field__in`) against a record, as the database would."""
    for key, wanted in filters.items():
        field, _, op = key.partition("__")
        value = record[field]
        if not (value in wanted if op == "in" else value == wanted):  # type: ignore[operator]
            return False
    return True


@pytest.mark.parametrize(
    "principal",
    [
        _p("admin"),
        _p("reviewer", departments=("scjgj", "gaj")),
        _p("reviewer"),
        _p("clerk", hall="main"),
        _p("clerk", hall=None),
        _p(None, kind="citizen"),
    ],
    ids=["admin", "reviewer", "reviewer-without-departments", "clerk", "clerk-without-hall", "citizen"],
)
def test_the_query_form_of_the_scope_is_the_record_form(principal):
    # One rule in two forms: a staff list filtered by scope_filter holds exactly the records covers() admits.
    departments, halls = ("scjgj", "gaj", "swj", ""), ("main", "wulingyuan", "")  # codes are never "-"
    for department in departments:
        for hall in halls:
            record = {"department_code": department, "hall_code": hall}
            assert _matches(principal.scope_filter(), record) == (
                principal.covers(department=department, hall=None) or principal.covers(department=None, hall=hall)
            )
            # Records that belong to a department only (questions).
            assert _matches(principal.scope_filter(hall=None), record) == principal.covers(
                department=department, hall=None
            )


def _request(headers: dict[str, str], cookies: dict[str, str] | None = None, base_url: str = "https://zw.example.cn"):
    app = SimpleNamespace(ctx=SimpleNamespace(settings=SimpleNamespace(base_url=base_url)))
    return SimpleNamespace(headers={k.lower(): v for k, v in headers.items()}, cookies=cookies or {}, app=app)


@pytest.mark.parametrize(
    ("headers", "cookies", "expected"),
    [
        ({"Authorization": "Bearer abc"}, {}, ("abc", False)),
        ({"Authorization": "bearer   abc  "}, {}, ("abc", False)),
        ({"Authorization": "Bearer abc"}, {"zd_at": "cookie"}, ("abc", False)),
        ({"Authorization": "Basic abc"}, {"zd_at": "cookie"}, ("cookie", True)),
        ({"Authorization": "Bearer "}, {"zd_at": "cookie"}, ("cookie", True)),
        ({}, {"zd_at": "cookie"}, ("cookie", True)),
        ({}, {"zd_rt": "refresh"}, (None, False)),
        ({}, {}, (None, False)),
    ],
)
def test_bearer_extraction(headers, cookies, expected):
    assert bearer(_request(headers, cookies)) == expected


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        ({"Origin": "https://zw.example.cn"}, True),
        ({"Referer": "https://zw.example.cn/m/x?y=1"}, True),
        ({}, False),
        ({"Origin": "null"}, False),
        ({"Origin": "https://zw.example.cn.evil.cn"}, False),
        ({"Origin": "https://zw.example.cn:8443"}, False),
        ({"Origin": "https://evil.cn", "Referer": "https://zw.example.cn/"}, False),
        ({"Referer": "https://evil.cn/?next=https://zw.example.cn/"}, False),
    ],
)
def test_same_origin(headers, ok):
    assert _same_origin(_request(headers)) is ok


def test_same_origin_requires_the_same_scheme():
    assert _same_origin(_request({"Origin": "http://zw.example.cn"})) is False


# --- signatures of personal codes (tickets, case codes) ---------------------------------------------


async def test_signed_agrees_with_verification_for_the_active_and_an_older_key(worker, settings, keys):
    """`signed` re-signs with the active key and verifies with older ones: the same verdicts either way."""
    a = worker()
    data = b"zd-ticket-v1\x00" + uuid.uuid4().bytes
    kids: list[str] = []

    def build(kid: str) -> bytes:
        kids.append(kid)
        return data

    _, old_sig = await a.sign(build)
    old_kid = kids[-1]
    # the active key: our own signature passes, a flipped bit, a foreign key's and a truncated one do not
    assert await a.signed(old_kid, data, old_sig) is True
    forged = bytes([old_sig[0] ^ 1]) + old_sig[1:]
    assert await a.signed(old_kid, data, forged) is False
    assert await a.signed(old_kid, data, Ed25519PrivateKey.generate().sign(data)) is False
    assert await a.signed(old_kid, data, old_sig[:63]) is False
    assert await a.signed(old_kid, data + b"x", old_sig) is False
    # after a rotation the old key only verifies (its signature still passes, a forgery still fails)
    new_kid = await keys.create_key(activate=True)
    b = worker()
    await b.sign(build)
    assert kids[-1] == new_kid
    assert await b.signed(old_kid, data, old_sig) is True
    assert await b.signed(old_kid, data, forged) is False
    assert await b.signed(new_kid, data, old_sig) is False  # right bytes, wrong key
    assert await b.signed("19700101-deadbeef", data, old_sig) is None  # no such key
    assert await keys.retire_key(old_kid)
    c = worker()
    assert await c.signed(old_kid, data, old_sig) is None  # a retired key verifies nothing
