"""Drafts of applications in the browser: what was typed and uploaded, kept until submitted; the receipt's code once.

The H5 form is filled over several visits (a photo now, the ID card later): its typed fields and the
uploads chosen per material live in the store under the citizen and the form's scope (`apply:<matter>`,
`resubmit:<case>`), encrypted (they hold names and ID numbers), and last as long as an unused upload.
Each file is its own hash field, so uploads arriving together never overwrite each other.

After a submission the query code waits, encrypted, for the receipt page, which takes it once; the form's
idempotency key remembers the case, so the same form posted again finds its case instead of a new draft.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping

from app import clock
from app.cases.deps import CaseDeps
from app.cases.models import Upload
from app.cases.types import Draft, UploadInfo
from app.cases.uploads import upload_info
from app.errors import InvalidInput
from app.jsontext import dumps
from auth.pii import PiiDecryptError

FILES_PER_MATERIAL = 10  # as an application takes them (MaterialIn)
FIELDS_MAX = 40
FIELD_CHARS = 500
RECEIPT_SECONDS = 3600  # the query code waits this long for the receipt page
_FORM = b"form"
_FILE = "u:"


class TooManyFiles(InvalidInput):
    code, message = "TOO_MANY_FILES", f"每项材料最多上传 {FILES_PER_MATERIAL} 个文件"


def _key(owner_id: str, scope: str) -> str:
    return f"draft:{owner_id}:{scope}"


def _aad(owner_id: str, scope: str) -> str:
    return f"draft:{owner_id}:{scope}"


def _ttl(deps: CaseDeps) -> int:
    return deps.settings.upload_keep_hours * 3600  # the uploads it names are gone by then anyway


async def load(deps: CaseDeps, *, owner_id: str, scope: str) -> Draft:
    """The draft as it stands: typed fields and the files still usable, per material (empty when none)."""
    raw = await deps.store.hgetall(_key(owner_id, scope))
    fields: dict[str, str] = {}
    if raw.get(_FORM):
        try:
            fields = json.loads(deps.cipher.decrypt(raw[_FORM].decode(), aad=_aad(owner_id, scope)))
        except (PiiDecryptError, ValueError):
            fields = {}  # written under a retired key or damaged: start the typing again, keep the files
    named = {k.decode()[len(_FILE) :]: v.decode() for k, v in raw.items() if k.decode().startswith(_FILE)}
    ids = []
    for text in named:
        try:
            ids.append(uuid.UUID(text))
        except ValueError:
            continue
    rows = await Upload.filter(id__in=ids, owner_id=uuid.UUID(owner_id)).order_by("created_at") if ids else []
    now = clock.now()
    files: dict[str, list[UploadInfo]] = {}
    usable = set()
    for row in rows:
        if row.case_id is None and (row.expires_at is None or row.expires_at > now):
            files.setdefault(named[str(row.id)], []).append(upload_info(row))
            usable.add(str(row.id))
    gone = [text for text in named if text not in usable]
    if gone:
        await deps.store.hdel(_key(owner_id, scope), *[_FILE + text for text in gone])
    lost = tuple(dict.fromkeys(named[text] for text in gone if named[text] not in files))
    return Draft({str(k): str(v) for k, v in fields.items()}, {k: tuple(v) for k, v in files.items()}, lost)


async def save_fields(deps: CaseDeps, *, owner_id: str, scope: str, fields: Mapping[str, str]) -> None:
    """Keep what was typed (replacing what was kept before)."""
    kept = {str(k)[:64]: str(v)[:FIELD_CHARS] for k, v in list(fields.items())[:FIELDS_MAX]}
    token = deps.cipher.encrypt(dumps(kept).decode(), aad=_aad(owner_id, scope))
    key = _key(owner_id, scope)
    async with deps.store.pipeline(transaction=True) as pipe:
        pipe.hset(key, _FORM, token)
        pipe.expire(key, _ttl(deps))
        await pipe.execute()


async def attach(deps: CaseDeps, *, owner_id: str, scope: str, material: str, uploads: tuple[UploadInfo, ...]) -> None:
    """Add the owner's uploads to a material of the draft (at most FILES_PER_MATERIAL per material)."""
    if not uploads:
        return
    key = _key(owner_id, scope)
    held = sum(1 for v in (await deps.store.hgetall(key)).values() if v.decode() == material)
    if held + len(uploads) > FILES_PER_MATERIAL:
        raise TooManyFiles(details={"material": material, "max": FILES_PER_MATERIAL})
    async with deps.store.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping={_FILE + str(u.id): material for u in uploads})
        pipe.expire(key, _ttl(deps))
        await pipe.execute()


async def detach(deps: CaseDeps, *, owner_id: str, scope: str, upload_id: str) -> None:
    """Take a file off the draft (the upload itself expires unused)."""
    await deps.store.hdel(_key(owner_id, scope), _FILE + upload_id[:64])


async def discard(deps: CaseDeps, *, owner_id: str, scope: str) -> None:
    """Forget a draft (after it was submitted)."""
    await deps.store.delete(_key(owner_id, scope))


def _done_key(owner_id: str, form_key: str) -> str:
    return f"applied:{owner_id}:{hashlib.sha256(form_key.encode()).hexdigest()[:32]}"


async def submitted(
    deps: CaseDeps, *, owner_id: str, scope: str, form_key: str, case_no: str, query_code: str | None
) -> None:
    """A draft became a case: forget it, keep the query code for the receipt and the case for the form's key."""
    async with deps.store.pipeline(transaction=True) as pipe:
        pipe.delete(_key(owner_id, scope))
        pipe.set(_done_key(owner_id, form_key), case_no, ex=24 * 3600)
        if query_code:
            token = deps.cipher.encrypt(query_code, aad=f"receipt:{owner_id}:{case_no}")
            pipe.set(f"receipt:{owner_id}:{case_no}", token, ex=RECEIPT_SECONDS)
        await pipe.execute()


async def case_of(deps: CaseDeps, *, owner_id: str, form_key: str) -> str | None:
    """The case a form (by its idempotency key) was already submitted as, if it was."""
    value = await deps.store.get(_done_key(owner_id, form_key))
    return value.decode() if value else None


async def take_query_code(deps: CaseDeps, *, owner_id: str, case_no: str) -> str | None:
    """The new case's query code, once: the receipt page shows it and then it is gone."""
    token = await deps.store.getdel(f"receipt:{owner_id}:{case_no}")
    if not token:
        return None
    try:
        return deps.cipher.decrypt(token.decode(), aad=f"receipt:{owner_id}:{case_no}")
    except PiiDecryptError:
        return None
