"""Security tests of the access-token layer through HTTP.

A JWT attack pack against a citizen endpoint (GET /api/v1/me) and an admin endpoint; signing-key
rotation and retirement (in process and through `python -m app keys`); the per-worker verified-token
cache against revocation from another worker; refresh edge cases; partner introspection; cookie
auth and CSRF; level-of-assurance and scope guards.

Tokens are forged by hand (compact JWS built here) so that nothing in PyJWT's encoder can quietly
"fix" a malicious header; tokens signed with the REAL key are made with the private key decrypted
from the signing_key table, exactly as a key thief would.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from sanic import Request

from app import cache as cache_module
from app.http import json_response
from app.server import create_app
from auth import accounts, logins
from auth import staff as staff_accounts
from auth.deps import TokenPair
from auth.errors import OutOfScope
from auth.guards import citizen_required, staff_required
from auth.idcard import make_id_number
from auth.models import AuthSession, Citizen, RefreshToken, SigningKey
from tests.conftest import AppClient

ROOT = Path(__file__).resolve().parents[2]
ME = "/api/v1/me"
ADMIN = "/api/v1/admin/catalogue/export"
ENDPOINTS = {"citizen": ME, "admin": ADMIN}
PARTNER = ("city-portal", "s3cret-value")
INVALID, EXPIRED, REVOKED = "TOKEN_INVALID", "TOKEN_EXPIRED", "TOKEN_REVOKED"


@pytest.fixture
def settings(base_settings, request):
    """Partner credentials for introspection; the fake WeChat API for tests that ask for it."""
    base = request.getfixturevalue("wechat_settings") if "fake_wechat" in request.fixturenames else base_settings
    return base.replace(partner_clients={PARTNER[0]: PARTNER[1]})


# ---------------------------------------------------------------- forging helpers


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict[str, Any], claims: dict[str, Any] | bytes, sign: Callable[[bytes], bytes] | None) -> str:
    """A compact JWS with exactly this header and payload, signed by `sign` (None: empty signature)."""
    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing_input = f"{b64u(json.dumps(header).encode())}.{b64u(payload)}"
    return f"{signing_input}.{b64u(sign(signing_input.encode()) if sign else b'')}"


def hmac_signer(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


def rsa_signer(key: rsa.RSAPrivateKey) -> Callable[[bytes], bytes]:
    return lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def ec_signer(key: ec.EllipticCurvePrivateKey) -> Callable[[bytes], bytes]:
    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def header_of(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


async def real_signing_key(auth_deps) -> tuple[str, Ed25519PrivateKey]:
    """The active key's kid and private key, decrypted from the database."""
    row = await SigningKey.get(active=True)
    pem = auth_deps.cipher.decrypt(row.private_enc, aad=f"signing-key:{row.kid}")
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return row.kid, key


def bearer(token: str) -> dict[str, Any]:
    value = f"Bearer {token}"
    return {"Authorization": value if value.isascii() else value.encode()}


def error_code(resp) -> str | None:
    try:
        return resp.json["error"]["code"]
    except (TypeError, KeyError, ValueError):
        return None


DROP = object()


@dataclass
class Forge:
    """What an attacker (or a key thief) has: valid tokens of both kinds and, for some cases, the real key."""

    target: str  # "citizen" | "admin"
    kid: str
    key: Ed25519PrivateKey
    pairs: dict[str, TokenPair]
    other_sid: str  # a live session of a different citizen

    @property
    def mine(self) -> TokenPair:
        return self.pairs["citizen" if self.target == "citizen" else "staff"]

    @property
    def other(self) -> TokenPair:
        return self.pairs["staff" if self.target == "citizen" else "citizen"]

    @property
    def kind(self) -> str:
        return "citizen" if self.target == "citizen" else "staff"

    def claims(self, **changes: Any) -> dict[str, Any]:
        claims = claims_of(self.mine.access_token)
        for name, value in changes.items():
            if value is DROP:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def header(self, **changes: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"alg": "EdDSA", "kid": self.kid, "typ": "at+jwt"}
        for name, value in changes.items():
            if value is DROP:
                header.pop(name, None)
            else:
                header[name] = value
        return header

    def real(self, claims: dict[str, Any] | None = None, **header: Any) -> str:
        """Signed with the real active key."""
        return compact(self.header(**header), claims if claims is not None else self.claims(), self.key.sign)

    def public_raw(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _attacker_jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}


def _tamper(f: Forge) -> str:
    """A valid token whose payload is swapped for a more powerful one, signature kept."""
    head, _, sig = f.mine.access_token.split(".")
    better = f.claims(loa=3, role="admin", hall=None, departments=["*"], exp=int(time.time()) + 86400)
    return f"{head}.{b64u(json.dumps(better).encode())}.{sig}"


def _stranger(f: Forge) -> str:
    return f.real(f.claims(sub=f"{f.kind}:{uuid.uuid4()}"))


ATTACKS: list[tuple[str, Callable[[Forge], str], str]] = [
    # algorithm confusion
    ("alg-none", lambda f: compact(f.header(alg="none"), f.claims(), None), INVALID),
    ("alg-None", lambda f: compact(f.header(alg="None"), f.claims(), None), INVALID),
    ("alg-none-with-real-signature", lambda f: compact(f.header(alg="none"), f.claims(), f.key.sign), INVALID),
    ("alg-missing", lambda f: f.real(alg=DROP), INVALID),
    ("alg-eddsa-lowercase", lambda f: f.real(alg="eddsa"), INVALID),
    ("alg-Ed25519-name", lambda f: f.real(alg="Ed25519"), INVALID),
    (
        "hs256-public-key-raw-bytes",
        lambda f: compact(f.header(alg="HS256"), f.claims(), hmac_signer(f.public_raw())),
        INVALID,
    ),
    (
        "hs256-jwk-x-as-secret",
        lambda f: compact(f.header(alg="HS256"), f.claims(), hmac_signer(b64u(f.public_raw()).encode())),
        INVALID,
    ),
    ("hs256-public-pem", lambda f: compact(f.header(alg="HS256"), f.claims(), hmac_signer(f.public_pem())), INVALID),
    ("hs512-empty-secret", lambda f: compact(f.header(alg="HS512"), f.claims(), hmac_signer(b"")), INVALID),
    (
        "rs256",
        lambda f: compact(
            f.header(alg="RS256"),
            f.claims(),
            rsa_signer(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ),
        INVALID,
    ),
    (
        "es256",
        lambda f: compact(f.header(alg="ES256"), f.claims(), ec_signer(ec.generate_private_key(ec.SECP256R1()))),
        INVALID,
    ),
    # key selection
    ("unknown-kid", lambda f: f.real(kid="20990101-deadbeef"), INVALID),
    ("no-kid", lambda f: f.real(kid=DROP), INVALID),
    ("kid-path-traversal", lambda f: f.real(kid="../../../../../../etc/passwd"), INVALID),
    ("kid-path-traversal-null", lambda f: f.real(kid="../../dev/null\u0000"), INVALID),
    ("kid-sql", lambda f: f.real(kid="' OR '1'='1' -- "), INVALID),
    ("kid-sql-union", lambda f: f.real(kid="x' UNION SELECT private_enc FROM signing_key --"), INVALID),
    ("kid-object", lambda f: f.real(kid={"$ne": None}), INVALID),
    ("kid-list", lambda f: f.real(kid=[f.kid]), INVALID),
    ("jku-header", lambda f: f.real(jku="https://evil.example.com/jwks.json"), INVALID),
    ("x5u-header", lambda f: f.real(x5u="https://evil.example.com/cert.pem"), INVALID),
    ("x5c-header", lambda f: f.real(x5c=["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]), INVALID),
    ("crit-header", lambda f: f.real(crit=["exp"]), INVALID),
    ("jwk-header-real-key", lambda f: f.real(jwk=_attacker_jwk(f.key)), INVALID),
    (
        "jwk-header-attacker-key",
        lambda f: (lambda evil: compact(f.header(jwk=_attacker_jwk(evil)), f.claims(), evil.sign))(
            Ed25519PrivateKey.generate()
        ),
        INVALID,
    ),
    (
        "other-ed25519-key-real-kid",
        lambda f: compact(f.header(), f.claims(), Ed25519PrivateKey.generate().sign),
        INVALID,
    ),
    ("tampered-payload", _tamper, INVALID),
    ("signature-stripped", lambda f: f.mine.access_token.rsplit(".", 1)[0] + ".", INVALID),
    (
        "signature-of-other-token",
        lambda f: f.mine.access_token.rsplit(".", 1)[0] + "." + f.other.access_token.rsplit(".", 1)[1],
        INVALID,
    ),
    # claims (signed with the real key: only a key thief gets this far)
    ("wrong-aud", lambda f: f.real(f.claims(aud="https://evil.example.com")), INVALID),
    ("wrong-iss", lambda f: f.real(f.claims(iss="https://evil.example.com")), INVALID),
    *[
        (f"missing-{name}", (lambda n: lambda f: f.real(f.claims(**{n: DROP})))(name), INVALID)
        for name in ("exp", "iat", "nbf", "sub", "aud", "iss", "jti", "sid", "typ")
    ],
    ("typ-refresh", lambda f: f.real(f.claims(typ="refresh")), INVALID),
    ("typ-id", lambda f: f.real(f.claims(typ="id")), INVALID),
    ("exp-past", lambda f: f.real(f.claims(exp=int(time.time()) - 5)), EXPIRED),
    ("nbf-future", lambda f: f.real(f.claims(nbf=int(time.time()) + 3600)), INVALID),
    ("exp-not-a-number", lambda f: f.real(f.claims(exp="tomorrow")), INVALID),
    ("sub-unknown-account", _stranger, REVOKED),
    ("sub-not-a-uuid", lambda f: f.real(f.claims(sub=f"{f.kind}:../../admin")), INVALID),
    ("sub-unknown-kind", lambda f: f.real(f.claims(sub=f"root:{uuid.uuid4()}")), INVALID),
    ("sub-not-a-string", lambda f: f.real(f.claims(sub=12345)), INVALID),
    ("sid-unknown", lambda f: f.real(f.claims(sid=str(uuid.uuid4()))), REVOKED),
    ("sid-not-a-uuid", lambda f: f.real(f.claims(sid="1 OR 1=1")), INVALID),
    ("sid-of-another-account", lambda f: f.real(f.claims(sid=f.other_sid)), REVOKED),
    # whole tokens that are not ours to use here
    ("token-of-the-other-audience", lambda f: f.other.access_token, INVALID),
    ("refresh-token-as-bearer", lambda f: f.mine.refresh_token, INVALID),
    ("refresh-token-of-other-as-bearer", lambda f: f.other.refresh_token, INVALID),
    # garbage
    ("10kb-garbage", lambda f: "a" * 10_240, INVALID),
    ("10kb-signed", lambda f: f.real(f.claims(pad="x" * 10_240)), INVALID),
    ("10kb-header", lambda f: f.real(pad="x" * 10_240), INVALID),
    ("non-ascii-garbage", lambda f: "令牌.无效.签名" + "é" * 40, INVALID),
    ("non-ascii-in-segments", lambda f: "\u00ff\u00fe." + f.mine.access_token.split(".", 1)[1], INVALID),
    ("one-segment", lambda f: "abc", INVALID),
    ("empty-segments", lambda f: "..", INVALID),
    ("four-segments", lambda f: f.mine.access_token + ".x", INVALID),
    ("header-not-json", lambda f: b64u(b"{not json") + "." + f.mine.access_token.split(".", 1)[1], INVALID),
    ("header-json-array", lambda f: b64u(b"[1,2]") + "." + f.mine.access_token.split(".", 1)[1], INVALID),
    ("payload-json-array", lambda f: compact(f.header(), b"[1,2]", f.key.sign), INVALID),
    ("payload-not-json", lambda f: compact(f.header(), b"\xff\xfe", f.key.sign), INVALID),
    ("bad-base64", lambda f: "!!!.@@@.###", INVALID),
]


@pytest.fixture
async def forge_ctx(auth_deps, make_citizen, make_staff):
    """Tokens of a citizen and an admin, plus the real signing key."""
    citizen, _ = await make_citizen(loa=2)
    other_citizen, _ = await make_citizen(loa=2)
    staff, _ = await make_staff("admin")
    pairs = {
        "citizen": await logins.issue_for_citizen(auth_deps, citizen=citizen, audience="app"),
        "staff": await logins.issue_for_staff(auth_deps, staff=staff),
    }
    other = await logins.issue_for_citizen(auth_deps, citizen=other_citizen, audience="app")
    kid, key = await real_signing_key(auth_deps)
    return kid, key, pairs, claims_of(other.access_token)["sid"]


@pytest.mark.parametrize("target", ["citizen", "admin"])
async def test_forged_or_foreign_token_is_401(client, forge_ctx, target):
    """Every attack of ATTACKS, one app per target (an app per case would cost minutes): all must be a clean
    401 with the expected code; the failures are listed together."""
    kid, key, pairs, other_sid = forge_ctx
    f = Forge(target=target, kid=kid, key=key, pairs=pairs, other_sid=other_sid)
    path = ENDPOINTS[target]
    # The genuine token works (and is now in the verified cache) ...
    _, ok = await client.get(path, headers=bearer(f.mine.access_token))
    assert ok.status == 200, ok.text
    wrong: dict[str, tuple[int, str]] = {}
    for case, make, code in ATTACKS:
        token = make(f)
        # ... an attack does not, twice in a row (nothing it did was cached as verified).
        for attempt in (1, 2):
            _, resp = await client.get(path, headers=bearer(token))
            if resp.status != 401 or error_code(resp) != code:
                wrong[f"{case} (attempt {attempt}, expected 401 {code})"] = (resp.status, resp.text[:160])
                break
    assert not wrong, "\n".join(f"{case}: got {got}" for case, got in wrong.items())
    # The genuine token still works after the barrage.
    _, still = await client.get(path, headers=bearer(f.mine.access_token))
    assert still.status == 200


def test_attack_pack_names_are_unique():
    names = [case for case, _, _ in ATTACKS]
    assert len(names) == len(set(names)) and len(names) > 60


async def test_token_of_other_audience_is_refused_from_the_verified_cache(client, forge_ctx):
    """A token verified (and cached) on its own endpoint is still refused by an endpoint of another audience."""
    _, _, pairs, _ = forge_ctx
    for token, own, foreign in ((pairs["citizen"].access_token, ME, ADMIN), (pairs["staff"].access_token, ADMIN, ME)):
        _, ok = await client.get(own, headers=bearer(token))
        assert ok.status == 200
        _, resp = await client.get(foreign, headers=bearer(token))
        assert resp.status == 401 and error_code(resp) == INVALID


async def test_citizen_session_with_staff_audience_gets_no_admin_role(client, forge_ctx, auth_deps):
    """Even a key thief who sets aud=staff on a citizen subject gets no further than the role check."""
    kid, key, pairs, _ = forge_ctx
    f = Forge(target="citizen", kid=kid, key=key, pairs=pairs, other_sid="")
    token = f.real(f.claims(aud="staff", role="admin"))
    _, resp = await client.get(ADMIN, headers=bearer(token))
    assert resp.status in (401, 403) and error_code(resp) in {INVALID, REVOKED, "INSUFFICIENT_ROLE"}


@pytest.mark.parametrize(
    "header",
    [
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer    "},
        {"Authorization": "Basic Y2l0eS1wb3J0YWw6czNjcmV0LXZhbHVl"},
        {"Authorization": "Token abc"},
        {},
    ],
)
async def test_no_usable_token_is_401_missing(client, header):
    for path in (ME, ADMIN):
        _, resp = await client.get(path, headers=header)
        assert resp.status == 401 and error_code(resp) == "TOKEN_MISSING"
        assert resp.headers.get("www-authenticate") == "Bearer"


# ---------------------------------------------------------------- time: exp and nbf on our clock


@pytest.mark.parametrize("target", ["citizen", "admin"])
async def test_expiry_on_the_service_clock(client, fake_clock, make_citizen, make_staff, settings, target):
    _, headers = await (make_citizen() if target == "citizen" else make_staff("admin"))
    path = ENDPOINTS[target]
    _, ok = await client.get(path, headers=headers)
    assert ok.status == 200  # verified and cached
    fake_clock.advance(seconds=settings.access_token_seconds - 1)
    _, still = await client.get(path, headers=headers)
    assert still.status == 200
    fake_clock.advance(seconds=1)  # now == exp: expired (exp is exclusive)
    _, at_exp = await client.get(path, headers=headers)
    assert at_exp.status == 401 and error_code(at_exp) == EXPIRED
    fake_clock.advance(days=3)
    _, later = await client.get(path, headers=headers)
    assert later.status == 401 and error_code(later) == EXPIRED


@pytest.mark.parametrize("target", ["citizen", "admin"])
async def test_exp_exactly_now_is_expired_even_uncached(client, fake_clock, forge_ctx, target):
    kid, key, pairs, other_sid = forge_ctx
    f = Forge(target=target, kid=kid, key=key, pairs=pairs, other_sid=other_sid)
    now = int(fake_clock().timestamp())
    _, resp = await client.get(ENDPOINTS[target], headers=bearer(f.real(f.claims(exp=now))))
    assert resp.status == 401 and error_code(resp) == EXPIRED
    _, ok = await client.get(ENDPOINTS[target], headers=bearer(f.real(f.claims(exp=now + 1))))
    assert ok.status == 200, ok.text


async def test_not_yet_valid_becomes_valid_at_nbf(client, fake_clock, forge_ctx):
    kid, key, pairs, other_sid = forge_ctx
    f = Forge(target="citizen", kid=kid, key=key, pairs=pairs, other_sid=other_sid)
    now = int(fake_clock().timestamp())
    token = f.real(f.claims(nbf=now + 60, exp=now + 600))
    _, early = await client.get(ME, headers=bearer(token))
    assert early.status == 401 and error_code(early) == INVALID
    fake_clock.advance(seconds=60)
    _, ok = await client.get(ME, headers=bearer(token))
    assert ok.status == 200, ok.text


# ---------------------------------------------------------------- signing-key rotation and retirement


async def _jwks_kids(client) -> list[str]:
    _, resp = await client.get("/.well-known/jwks.json")
    assert resp.status == 200
    return [k["kid"] for k in resp.json["keys"]]


async def test_rotation_old_tokens_keep_verifying_new_tokens_use_new_kid(
    client, app, auth_deps, make_citizen, settings
):
    citizen, old_headers = await make_citizen()
    old_token = old_headers["Authorization"].split()[1]
    old_kid = header_of(old_token)["kid"]
    _, ok = await client.get(ME, headers=old_headers)
    assert ok.status == 200
    new_kid = await auth_deps.tokens.create_key(activate=True)
    assert new_kid != old_kid
    assert set(await _jwks_kids(client)) == {old_kid, new_kid}
    assert (await _jwks_kids(client))[0] == new_kid  # newest first
    # The old token keeps verifying, cached or not.
    _, still = await client.get(ME, headers=old_headers)
    assert still.status == 200
    second = create_app(settings)  # a worker started after the rotation
    c2 = AppClient(second)
    await c2.start()
    try:
        _, fresh = await c2.get(ME, headers=old_headers)
        assert fresh.status == 200
        # New sign-ins on that worker carry the new kid and verify on the old worker too.
        pair = await logins.issue_for_citizen(second.ctx.auth, citizen=citizen, audience="app")
        assert header_of(pair.access_token)["kid"] == new_kid
        _, cross = await client.get(ME, headers=bearer(pair.access_token))
        assert cross.status == 200
    finally:
        await c2.stop()
    assert await SigningKey.filter(active=True).count() == 1


async def test_running_worker_signs_with_new_key_after_rotation_and_one_sync(client, app, auth_deps, make_citizen):
    citizen, headers = await make_citizen()
    _, ok = await client.get(ME, headers=headers)  # the worker has loaded its key ring
    assert ok.status == 200
    new_kid = await auth_deps.tokens.create_key(activate=True)
    await app.ctx.cache.sync()
    pair = await logins.issue_for_citizen(app.ctx.auth, citizen=citizen, audience="app")
    assert header_of(pair.access_token)["kid"] == new_kid


async def test_retired_key_leaves_jwks_and_fresh_workers_refuse_its_tokens(
    client, app, auth_deps, make_citizen, settings
):
    _, old_headers = await make_citizen()
    old_kid = header_of(old_headers["Authorization"].split()[1])["kid"]
    new_kid = await auth_deps.tokens.create_key(activate=True)
    assert await auth_deps.tokens.retire_key(new_kid) is False  # the active key cannot be retired
    assert await auth_deps.tokens.retire_key("no-such-kid") is False
    assert await auth_deps.tokens.retire_key(old_kid) is True
    assert await auth_deps.tokens.retire_key(old_kid) is False  # already retired
    assert await _jwks_kids(client) == [new_kid]
    second = create_app(settings)
    c2 = AppClient(second)
    await c2.start()
    try:
        _, resp = await c2.get(ME, headers=old_headers)
        assert resp.status == 401 and error_code(resp) == INVALID
    finally:
        await c2.stop()


@pytest.mark.parametrize("seen_before", [True, False], ids=["cached-token", "never-seen-token"])
async def test_running_worker_refuses_retired_key_after_one_sync(client, app, auth_deps, make_citizen, seen_before):
    _, warm = await make_citizen()  # the worker loads its key ring with this one
    _, old_headers = await make_citizen()
    _, ok = await client.get(ME, headers=old_headers if seen_before else warm)
    assert ok.status == 200
    old_kid = header_of(old_headers["Authorization"].split()[1])["kid"]
    await auth_deps.tokens.create_key(activate=True)
    assert await auth_deps.tokens.retire_key(old_kid)
    await app.ctx.cache.sync()
    _, resp = await client.get(ME, headers=old_headers)
    assert resp.status == 401 and error_code(resp) == INVALID


async def test_retired_key_is_refused_once_the_worker_cache_ttl_passes(
    client, app, auth_deps, make_citizen, settings, monkeypatch
):
    """What a deployment gets today: a retired key stops verifying within the cache TTL (guide_cache_seconds)."""
    _, old_headers = await make_citizen()
    _, ok = await client.get(ME, headers=old_headers)
    assert ok.status == 200
    old_kid = header_of(old_headers["Authorization"].split()[1])["kid"]
    await auth_deps.tokens.create_key(activate=True)
    assert await auth_deps.tokens.retire_key(old_kid)
    assert old_kid not in await _jwks_kids(client)

    class Later:
        @staticmethod
        def monotonic() -> float:
            return time.monotonic() + (settings.guide_cache_seconds or 1) + 1

    monkeypatch.setattr(cache_module, "time", Later)
    _, resp = await client.get(ME, headers=old_headers)
    assert resp.status == 401 and error_code(resp) == INVALID


async def _cli(settings, *args: str) -> tuple[int, str, str]:
    """`python -m app ...` against the test database (and store), with nothing else of this environment."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "APP_ENV": "test",
        "DATABASE_URL": settings.database_url,
        "LOG_LEVEL": "WARNING",
    }
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_rotate_list_retire_against_the_live_database(client, app, make_citizen, settings):
    _, old_headers = await make_citizen()
    old_token = old_headers["Authorization"].split()[1]
    old_kid = header_of(old_token)["kid"]
    _, ok = await client.get(ME, headers=old_headers)
    assert ok.status == 200

    rc, out, err = await _cli(settings, "keys", "rotate")
    assert rc == 0, err
    new_kid = out.split("new active key ")[1].split(";")[0].strip()
    rc, out, err = await _cli(settings, "keys", "list")
    assert rc == 0, err
    listing = dict(line.split() for line in out.strip().splitlines())
    assert listing == {old_kid: "verify-only", new_kid: "active"}
    assert set(await _jwks_kids(client)) == {old_kid, new_kid}
    _, still = await client.get(ME, headers=old_headers)
    assert still.status == 200  # rotation never logs anyone out

    rc, out, err = await _cli(settings, "keys", "retire", new_kid)
    assert rc == 0 and "is unknown, active or already retired" in out
    rc, out, err = await _cli(settings, "keys", "retire", old_kid)
    assert rc == 0 and out.strip() == f"retired {old_kid}"
    rc, out, _ = await _cli(settings, "keys", "list")
    assert dict(line.split() for line in out.strip().splitlines()) == {old_kid: "retired", new_kid: "active"}
    assert await _jwks_kids(client) == [new_kid]
    second = create_app(settings)
    c2 = AppClient(second)
    await c2.start()
    try:
        _, refused = await c2.get(ME, headers=old_headers)
        assert refused.status == 401 and error_code(refused) == INVALID
    finally:
        await c2.stop()


# ---------------------------------------------------------------- verified-token cache vs revocation elsewhere


@pytest.fixture
async def second_worker(settings):
    """Another worker of the same deployment: own app, own caches, same database and store."""
    other = create_app(settings)
    c = AppClient(other)
    await c.start()
    try:
        yield other, c
    finally:
        await c.stop()


async def test_logout_on_another_worker_reaches_this_worker_within_one_tick(client, app, second_worker, make_citizen):
    _, c2 = second_worker
    _, headers = await make_citizen()
    _, ok = await client.get(ME, headers=headers)
    assert ok.status == 200  # cached as verified on worker 1
    await app.ctx.cache.sync()  # steady state: the tick has seen the current generation
    _, out = await c2.post("/api/v1/auth/logout", headers=headers)
    assert out.status == 204
    await app.ctx.cache.sync()  # worker 1's cache-sync tick
    _, after = await client.get(ME, headers=headers)
    assert after.status == 401 and error_code(after) == REVOKED


async def test_logout_elsewhere_is_seen_by_the_scheduled_tick(client, app, second_worker, make_citizen, settings):
    _, c2 = second_worker
    _, headers = await make_citizen()
    _, ok = await client.get(ME, headers=headers)
    assert ok.status == 200
    _, out = await c2.post("/api/v1/auth/logout", headers=headers)
    assert out.status == 204
    # No manual sync: the scheduler's cache-sync tick (every cache_poll_seconds) does it.
    deadline = time.monotonic() + max(2.0, settings.cache_poll_seconds * 20)
    while True:
        _, after = await client.get(ME, headers=headers)
        if after.status != 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(settings.cache_poll_seconds)
    assert after.status == 401 and error_code(after) == REVOKED


async def test_disabling_a_citizen_elsewhere_reaches_this_worker_within_one_tick(client, app, auth_deps, make_citizen):
    citizen, headers = await make_citizen()
    _, ok = await client.get(ME, headers=headers)
    assert ok.status == 200
    await app.ctx.cache.sync()  # steady state: the tick has seen the current generation
    # auth_deps has its own token cache on the shared store: another worker / an admin process.
    await accounts.set_citizen_disabled(auth_deps, citizen_id=str(citizen.id), disabled=True)
    await app.ctx.cache.sync()
    _, after = await client.get(ME, headers=headers)
    assert after.status == 401 and error_code(after) == REVOKED
    # Re-enabling does not resurrect revoked sessions.
    await accounts.set_citizen_disabled(auth_deps, citizen_id=str(citizen.id), disabled=False)
    await app.ctx.cache.sync()
    _, still = await client.get(ME, headers=headers)
    assert still.status == 401 and error_code(still) == REVOKED


async def test_disabling_staff_elsewhere_reaches_this_worker_within_one_tick(client, app, second_worker, make_staff):
    other, _ = second_worker
    _staff, headers = await make_staff("admin", username="far_admin")
    _, ok = await client.get(ADMIN, headers=headers)
    assert ok.status == 200
    await app.ctx.cache.sync()
    await staff_accounts.set_staff_disabled(other.ctx.auth, username="far_admin", disabled=True)
    await app.ctx.cache.sync()
    _, after = await client.get(ADMIN, headers=headers)
    assert after.status == 401 and error_code(after) == REVOKED


async def test_revocation_during_verification_is_not_lost(client, app, second_worker, make_citizen, monkeypatch):
    """A revocation whose cache-sync lands while a token is being verified must not leave it cached as valid
    (verify takes the cache epoch before reading and puts with it)."""
    other, _ = second_worker
    _, bystander = await make_citizen()
    _, headers = await make_citizen()
    # Steady state: this worker has cached tokens before and its tick has seen the namespace's generation.
    _, warm = await client.get(ME, headers=bystander)
    assert warm.status == 200
    await app.ctx.cache.sync()
    tokens = app.ctx.tokens
    original = tokens._check_revocation
    fired = []

    async def check_then_revoke(kind: str, ident: str, sid: str, audience: str) -> None:
        await original(kind, ident, sid, audience)  # the session was live when we read it ...
        if not fired:
            fired.append(sid)
            principal = await other.ctx.tokens.verify(headers["Authorization"].split()[1], audiences=frozenset({"app"}))
            await logins.logout(other.ctx.auth, principal=principal)  # ... and is revoked elsewhere now
            await app.ctx.cache.sync()  # this worker's tick lands before our put

    monkeypatch.setattr(tokens, "_check_revocation", check_then_revoke)
    _, first = await client.get(ME, headers=headers)
    assert first.status == 200 and fired
    monkeypatch.setattr(tokens, "_check_revocation", original)
    _, after = await client.get(ME, headers=headers)
    assert after.status == 401 and error_code(after) == REVOKED


# ---------------------------------------------------------------- refresh


async def _pair(auth_deps, *, loa: int = 2, audience: str = "app", make_citizen=None):
    citizen, _ = await make_citizen(loa=loa)
    pair = await logins.issue_for_citizen(auth_deps, citizen=citizen, audience=audience)
    return citizen, pair


async def test_expired_refresh_token_is_401_expired(client, auth_deps, make_citizen, fake_clock, settings):
    _, pair = await _pair(auth_deps, make_citizen=make_citizen)
    _, second = await _pair(auth_deps, make_citizen=make_citizen)
    fake_clock.advance(days=settings.refresh_token_days, seconds=-1)
    _, ok = await client.post("/api/v1/auth/refresh", json={"refresh_token": second.refresh_token})
    assert ok.status == 200, ok.text
    fake_clock.advance(seconds=1)  # exactly refresh_token_days after issue
    _, resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert resp.status == 401 and error_code(resp) == EXPIRED
    fake_clock.advance(days=400)
    _, resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert resp.status == 401 and error_code(resp) == EXPIRED


async def test_concurrent_use_of_one_refresh_token_has_one_winner_and_revokes_the_family(
    client, auth_deps, make_citizen
):
    _, pair = await _pair(auth_deps, make_citizen=make_citizen)
    results = await asyncio.gather(
        *(client.post("/api/v1/auth/refresh", json={"refresh_token": pair.refresh_token}) for _ in range(5))
    )
    responses = [r for _, r in results]
    statuses = sorted(r.status for r in responses)
    assert statuses == [200, 401, 401, 401, 401], [r.text[:200] for r in responses]
    assert all(r.status < 500 for r in responses)
    losers = [r for r in responses if r.status == 401]
    assert {error_code(r) for r in losers} <= {"REFRESH_TOKEN_REUSED", REVOKED}
    winner = next(r for r in responses if r.status == 200)
    sid = claims_of(pair.access_token)["sid"]
    session = await AuthSession.get(id=sid)
    assert session.revoked_at is not None and session.revoked_reason == "refresh_reuse"
    _, again = await client.post("/api/v1/auth/refresh", json={"refresh_token": winner.json["refresh_token"]})
    assert again.status == 401
    _, me = await client.get(ME, headers=bearer(winner.json["access_token"]))
    assert me.status == 401 and error_code(me) == REVOKED
    assert await RefreshToken.filter(session_id=sid, used_at__isnull=True).count() <= 1


async def test_refresh_after_logout_is_revoked(client, auth_deps, make_citizen):
    _, pair = await _pair(auth_deps, make_citizen=make_citizen)
    _, out = await client.post("/api/v1/auth/logout", headers=bearer(pair.access_token))
    assert out.status == 204
    _, resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert resp.status == 401 and error_code(resp) == REVOKED


async def test_refresh_of_a_disabled_citizen_is_refused(client, auth_deps, make_citizen):
    citizen, pair = await _pair(auth_deps, make_citizen=make_citizen)
    await accounts.set_citizen_disabled(auth_deps, citizen_id=str(citizen.id), disabled=True)
    _, resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert resp.status == 401 and error_code(resp) == REVOKED


async def test_refresh_of_a_citizen_disabled_behind_the_service_revokes_the_session(client, auth_deps, make_citizen):
    """Disabled directly in the database (no session revocation): refresh still refuses, and ends the session."""
    citizen, pair = await _pair(auth_deps, make_citizen=make_citizen)
    await Citizen.filter(id=citizen.id).update(disabled=True)
    _, resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert resp.status == 401 and error_code(resp) == REVOKED
    session = await AuthSession.get(id=claims_of(pair.access_token)["sid"])
    assert session.revoked_at is not None


async def test_refresh_of_a_disabled_staff_member_is_refused(client, auth_deps, make_staff):
    staff, _ = await make_staff("admin", username="gone_admin")
    pair = await logins.issue_for_staff(auth_deps, staff=staff)
    await staff_accounts.set_staff_disabled(auth_deps, username="gone_admin", disabled=True)
    _, resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert resp.status == 401 and error_code(resp) == REVOKED


@pytest.mark.parametrize("audience", ["miniprogram", "h5", "app"])
async def test_refresh_keeps_the_audience(client, auth_deps, make_citizen, audience):
    _, pair = await _pair(auth_deps, make_citizen=make_citizen, audience=audience)
    _, resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert resp.status == 200, resp.text
    assert resp.json["audience"] == audience
    claims = claims_of(resp.json["access_token"])
    assert claims["aud"] == audience and claims["sid"] == claims_of(pair.access_token)["sid"]
    _, me = await client.get(ME, headers=bearer(resp.json["access_token"]))
    assert me.status == 200


async def test_staff_refresh_keeps_staff_audience_and_role(client, auth_deps, make_staff):
    staff, _ = await make_staff("clerk", hall="main")
    pair = await logins.issue_for_staff(auth_deps, staff=staff)
    _, resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert resp.status == 200 and resp.json["audience"] == "staff"
    claims = claims_of(resp.json["access_token"])
    assert (claims["aud"], claims["role"], claims["hall"]) == ("staff", "clerk", "main")


async def test_refresh_after_real_name_carries_loa_3(client, auth_deps, make_citizen):
    _, pair = await _pair(auth_deps, make_citizen=make_citizen, loa=2)
    headers = bearer(pair.access_token)
    _, rn = await client.post(f"{ME}/real-name", json={"name": "张三", "id_number": make_id_number()}, headers=headers)
    assert rn.status == 200 and rn.json["loa"] == 3, rn.text
    assert claims_of(pair.access_token)["loa"] == 2  # the old token still says 2 ...
    _, resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert resp.status == 200, resp.text
    assert claims_of(resp.json["access_token"])["loa"] == 3  # ... the refreshed one says 3


@pytest.mark.parametrize(
    "body", [{"refresh_token": ""}, {"refresh_token": "rt_" + "x" * 40}, {}, {"refresh_token": "é"}]
)
async def test_refresh_with_nothing_usable_is_401(client, body):
    _, resp = await client.post("/api/v1/auth/refresh", json=body)
    assert resp.status == 401 and error_code(resp) == INVALID


async def test_access_token_is_not_a_refresh_token(client, auth_deps, make_citizen):
    _, pair = await _pair(auth_deps, make_citizen=make_citizen)
    _, resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair.access_token[:200]})
    assert resp.status == 401 and error_code(resp) == INVALID


# ---------------------------------------------------------------- introspection (RFC 7662)


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def _introspect(client, token: Any, *, headers: dict[str, Any] | None = None, form: bool = True):
    headers = basic(*PARTNER) if headers is None else headers
    if form:
        from urllib.parse import urlencode

        _, resp = await client.post(
            "/api/v1/auth/introspect",
            content=urlencode({"token": token}),
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
    else:
        _, resp = await client.post("/api/v1/auth/introspect", json={"token": token}, headers=headers)
    return resp


@pytest.mark.parametrize("form", [True, False], ids=["form", "json"])
async def test_introspect_active_citizen_token(client, make_citizen, form):
    _, headers = await make_citizen(loa=2, audience="h5")
    token = headers["Authorization"].split()[1]
    resp = await _introspect(client, token, form=form)
    assert resp.status == 200, resp.text
    body = resp.json
    claims = claims_of(token)
    assert body["active"] is True
    assert (body["sub"], body["aud"], body["exp"], body["loa"]) == (claims["sub"], "h5", claims["exp"], 2)
    assert body["iss"] == claims["iss"] and body["token_type"] == "access_token"
    assert body["iat"] == claims["iat"]  # kept by the cached principal without the decoded claims
    assert "role" not in body and "sid" not in body and "phone" not in json.dumps(body)


@pytest.mark.parametrize("form", [True, False], ids=["form", "json"])
async def test_introspect_active_staff_token(client, make_staff, form):
    _, headers = await make_staff("reviewer")
    resp = await _introspect(client, headers["Authorization"].split()[1], form=form)
    assert resp.status == 200 and resp.json["active"] is True
    assert resp.json["aud"] == "staff" and resp.json["role"] == "reviewer" and "loa" not in resp.json


@pytest.mark.parametrize("form", [True, False], ids=["form", "json"])
async def test_introspect_revoked_expired_and_garbage_are_inactive(
    client, make_citizen, fake_clock, settings, forge_ctx, form
):
    _, revoked = await make_citizen()
    _, out = await client.post("/api/v1/auth/logout", headers=revoked)
    assert out.status == 204
    _, expiring = await make_citizen()
    kid, key, pairs, other_sid = forge_ctx
    f = Forge(target="citizen", kid=kid, key=key, pairs=pairs, other_sid=other_sid)
    candidates = [
        revoked["Authorization"].split()[1],
        compact(f.header(alg="none"), f.claims(), None),
        f.real(kid="unknown"),
        pairs["citizen"].refresh_token,
        "garbage",
        "",
        "x" * 10_000,
    ]
    for token in candidates:
        resp = await _introspect(client, token, form=form)
        assert resp.status == 200, resp.text
        assert resp.json == {"active": False}, token[:40]
    active = await _introspect(client, expiring["Authorization"].split()[1], form=form)
    assert active.json["active"] is True
    fake_clock.advance(seconds=settings.access_token_seconds)
    expired = await _introspect(client, expiring["Authorization"].split()[1], form=form)
    assert expired.json == {"active": False}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic(PARTNER[0], "wrong"),
        basic(PARTNER[0], ""),
        basic(PARTNER[0], PARTNER[1] + "x"),
        basic(PARTNER[0], PARTNER[1][:-1]),
        basic("other-client", PARTNER[1]),
        basic("", ""),
        {"Authorization": "Basic !!!not-base64!!!"},
        {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()},
        {"Authorization": "Basic " + base64.b64encode(PARTNER[0].encode()).decode()},
        {"Authorization": f"Bearer {PARTNER[1]}"},
    ],
    ids=[
        "missing",
        "wrong",
        "empty-secret",
        "longer",
        "prefix",
        "other-client",
        "empty",
        "not-base64",
        "not-utf8",
        "no-colon",
        "bearer-scheme",
    ],
)
@pytest.mark.parametrize("form", [True, False], ids=["form", "json"])
async def test_introspect_needs_client_credentials(client, make_citizen, headers, form):
    _, citizen = await make_citizen()
    resp = await _introspect(client, citizen["Authorization"].split()[1], headers=headers, form=form)
    assert resp.status == 401 and error_code(resp) == "CLIENT_UNAUTHORIZED", resp.text
    assert "active" not in resp.json


async def test_introspect_non_ascii_basic_credentials_is_401(client):
    _, resp = await client.post(
        "/api/v1/auth/introspect",
        content=b"token=x",
        headers={"Authorization": "Basic 令牌".encode(), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status == 401 and error_code(resp) == "CLIENT_UNAUTHORIZED"


@pytest.mark.parametrize("token", [["a", "b"], {"token": "x"}, None, ""], ids=["list", "object", "null", "empty"])
async def test_introspect_non_string_json_token_is_inactive(client, token):
    resp = await _introspect(client, token, form=False)
    assert resp.status == 200 and resp.json == {"active": False}


@pytest.mark.parametrize("token", [12345, 1.5, True], ids=["int", "float", "bool"])
async def test_introspect_numeric_json_token_is_inactive(client, token):
    resp = await _introspect(client, token, form=False)
    assert resp.status == 200 and resp.json == {"active": False}


async def test_introspect_does_not_cache_across_revocation(client, make_citizen):
    _, headers = await make_citizen()
    token = headers["Authorization"].split()[1]
    assert (await _introspect(client, token)).json["active"] is True
    _, out = await client.post("/api/v1/auth/logout", headers=headers)
    assert out.status == 204
    assert (await _introspect(client, token)).json == {"active": False}


# ---------------------------------------------------------------- cookie auth (H5) and CSRF


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"zd_at={token}"}


async def test_cookie_alone_authenticates_a_get(client, make_citizen):
    _, headers = await make_citizen(audience="h5")
    _, resp = await client.get(ME, headers=cookie(headers["Authorization"].split()[1]))
    assert resp.status == 200, resp.text


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"Origin": "https://evil.example.com"},
        {"Origin": "null"},
        {"Referer": "https://evil.example.com/page?u=http://testserver/"},
        {"Origin": "http://testserver.evil.example.com"},
        {"Origin": "http://testserver@evil.example.com"},
        {"Origin": "https://evil.example.com", "Referer": "http://testserver/m"},
    ],
    ids=[
        "none",
        "evil-origin",
        "null-origin",
        "evil-referer",
        "suffix-host",
        "userinfo-host",
        "evil-origin-good-referer",
    ],
)
async def test_cookie_post_from_elsewhere_is_csrf_rejected(client, make_citizen, extra):
    citizen, headers = await make_citizen(audience="h5")
    token = headers["Authorization"].split()[1]
    body = {"name": "张三", "id_number": make_id_number()}
    _, resp = await client.post(f"{ME}/real-name", json=body, headers={**cookie(token), **extra})
    assert resp.status == 403 and error_code(resp) == "CSRF_REJECTED", resp.text
    assert (await Citizen.get(id=citizen.id)).loa == 2  # nothing happened
    _, out = await client.post("/api/v1/auth/logout", headers={**cookie(token), **extra})
    assert out.status == 403 and error_code(out) == "CSRF_REJECTED"
    _, me = await client.get(ME, headers=cookie(token))
    assert me.status == 200  # still signed in


@pytest.mark.parametrize(
    "extra",
    [{"Origin": "http://testserver"}, {"Referer": "http://testserver/m/4308-XK-SS-001"}],
    ids=["origin", "referer"],
)
async def test_cookie_post_from_our_origin_is_accepted(client, make_citizen, extra):
    _citizen, headers = await make_citizen(audience="h5")
    token = headers["Authorization"].split()[1]
    body = {"name": "张三", "id_number": make_id_number()}
    _, resp = await client.post(f"{ME}/real-name", json=body, headers={**cookie(token), **extra})
    assert resp.status == 200 and resp.json["loa"] == 3, resp.text
    _, out = await client.post("/api/v1/auth/logout", headers={**cookie(token), **extra})
    assert out.status == 204


async def test_bearer_post_needs_no_origin(client, make_citizen):
    _, headers = await make_citizen()
    _, resp = await client.post(
        f"{ME}/real-name", json={"name": "张三", "id_number": make_id_number()}, headers=headers
    )
    assert resp.status == 200


async def test_bad_cookie_token_is_401_not_csrf_on_get(client):
    _, resp = await client.get(ME, headers=cookie("garbage"))
    assert resp.status == 401 and error_code(resp) == INVALID


# ---------------------------------------------------------------- guards: level of assurance and scope


def _guarded_routes(application) -> None:
    @citizen_required(loa=2)
    async def loa2(request: Request):
        return json_response({"loa": request.ctx.principal.loa})

    @citizen_required(loa=3)
    async def loa3(request: Request):
        return json_response({"loa": request.ctx.principal.loa})

    @staff_required("clerk", "admin")
    async def hall(request: Request, code: str):
        if not request.ctx.principal.covers(department=None, hall=code):
            raise OutOfScope(details={"hall": code})
        return json_response({"hall": code})

    @staff_required("reviewer", "admin")
    async def department(request: Request, code: str):
        if not request.ctx.principal.covers(department=code, hall=None):
            raise OutOfScope(details={"department": code})
        return json_response({"department": code})

    application.add_route(loa2, "/t/loa2", methods=["GET"], name="t_loa2")
    application.add_route(loa3, "/t/loa3", methods=["POST"], name="t_loa3")
    application.add_route(hall, "/t/hall/<code:str>", methods=["GET"], name="t_hall")
    application.add_route(department, "/t/department/<code:str>", methods=["GET"], name="t_department")


@pytest.fixture
async def guarded(settings):
    """A fresh app with a few guarded routes (no real endpoint requires LoA 2+ yet)."""
    application = create_app(settings)
    _guarded_routes(application)
    c = AppClient(application)
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


async def test_loa1_wechat_citizen_is_too_low_for_loa2(guarded, fake_wechat, settings):
    fake_wechat.add_code("loa-1", openid="o-loa-1", appid=settings.wechat_mini_appid)
    _, login = await guarded.post("/api/v1/auth/miniprogram", json={"code": "loa-1"})
    assert login.status == 200, login.text
    assert claims_of(login.json["access_token"])["loa"] == 1
    headers = bearer(login.json["access_token"])
    _, me = await guarded.get(ME, headers=headers)
    assert me.status == 200  # LoA 1 is enough for the profile
    _, resp = await guarded.get("/t/loa2", headers=headers)
    assert resp.status == 403 and error_code(resp) == "ASSURANCE_TOO_LOW"
    assert resp.json["error"]["details"] == {"required_loa": 2, "current_loa": 1}
    _, resp3 = await guarded.post("/t/loa3", headers=headers)
    assert resp3.status == 403 and resp3.json["error"]["details"]["required_loa"] == 3


async def test_loa_gate_follows_the_token_and_refresh(guarded, auth_deps, make_citizen):
    _, pair = await _pair(auth_deps, make_citizen=make_citizen, loa=2)
    headers = bearer(pair.access_token)
    _, ok = await guarded.get("/t/loa2", headers=headers)
    assert ok.status == 200 and ok.json == {"loa": 2}
    _, low = await guarded.post("/t/loa3", headers=headers)
    assert low.status == 403 and low.json["error"]["details"] == {"required_loa": 3, "current_loa": 2}
    _, rn = await guarded.post(f"{ME}/real-name", json={"name": "李四", "id_number": make_id_number()}, headers=headers)
    assert rn.status == 200
    _, still_low = await guarded.post("/t/loa3", headers=headers)
    assert still_low.status == 403  # the token says 2 until refreshed
    _, fresh = await guarded.post("/api/v1/auth/refresh", json={"refresh_token": pair.refresh_token})
    _, high = await guarded.post("/t/loa3", headers=bearer(fresh.json["access_token"]))
    assert high.status == 200 and high.json == {"loa": 3}


async def test_forged_loa_claim_does_not_pass_the_gate(guarded, forge_ctx):
    kid, key, pairs, other_sid = forge_ctx
    f = Forge(target="citizen", kid=kid, key=key, pairs=pairs, other_sid=other_sid)
    _, resp = await guarded.post("/t/loa3", headers=bearer(_tamper(f)))
    assert resp.status == 401 and error_code(resp) == INVALID
    _, no_loa = await guarded.get("/t/loa2", headers=bearer(f.real(f.claims(loa=DROP))))
    assert no_loa.status == 403 and no_loa.json["error"]["details"]["current_loa"] == 0


async def test_staff_token_on_loa_route_is_401(guarded, make_staff):
    _, headers = await make_staff("admin")
    _, resp = await guarded.get("/t/loa2", headers=headers)
    assert resp.status == 401 and error_code(resp) == INVALID


async def test_hall_scope(guarded, make_staff, make_citizen):
    _, clerk = await make_staff("clerk", hall="main")
    _, admin = await make_staff("admin")
    _, reviewer = await make_staff("reviewer", departments=["scjgj"])
    _, own = await guarded.get("/t/hall/main", headers=clerk)
    assert own.status == 200
    _, other = await guarded.get("/t/hall/wulingyuan", headers=clerk)
    assert other.status == 403 and error_code(other) == "OUT_OF_SCOPE"
    assert other.json["error"]["details"] == {"hall": "wulingyuan"}
    _, anywhere = await guarded.get("/t/hall/wulingyuan", headers=admin)
    assert anywhere.status == 200
    _, wrong_role = await guarded.get("/t/hall/main", headers=reviewer)
    assert wrong_role.status == 403 and error_code(wrong_role) == "INSUFFICIENT_ROLE"
    _, citizen = await make_citizen()
    _, resp = await guarded.get("/t/hall/main", headers=citizen)
    assert resp.status == 401


async def test_department_scope(guarded, make_staff):
    _, reviewer = await make_staff("reviewer", departments=["scjgj", "gaj"])
    _, admin = await make_staff("admin")
    for code in ("scjgj", "gaj"):
        _, ok = await guarded.get(f"/t/department/{code}", headers=reviewer)
        assert ok.status == 200
    _, other = await guarded.get("/t/department/swj", headers=reviewer)
    assert other.status == 403 and error_code(other) == "OUT_OF_SCOPE"
    assert other.json["error"]["details"] == {"department": "swj"}
    _, anywhere = await guarded.get("/t/department/swj", headers=admin)
    assert anywhere.status == 200
