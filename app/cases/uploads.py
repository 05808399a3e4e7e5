"""Uploads: a multipart body streamed to disk with its limit enforced while reading, typed by its bytes.

The file part is hashed as it is written to a temporary file (on disk, never whole in memory); the
finished file goes to its content address in the material store (`ab/cd/abcd…`: a file under
UPLOAD_DIR or an object in a bucket, see app.storage), so the client's file name never reaches storage.
Its type is what its first bytes say (and, for zip containers, what the archive holds),
checked against the types the material accepts. An upload belongs to its owner and expires after
`upload_keep_hours` unless a case takes it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import re
import unicodedata
import uuid
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import filetype
import multipart

from app import clock
from app.cache import LocalCache
from app.cases.deps import CaseDeps
from app.cases.errors import (
    FileTypeMismatch,
    MaterialUnknown,
    StorageUnavailable,
    UploadInvalid,
    UploadNotFound,
    UploadTooLarge,
)
from app.cases.models import Upload
from app.cases.types import FormUploads, UploadInfo
from app.errors import DomainError
from app.matters import guides
from app.matters.schemas import FILE_TYPES
from app.ratelimit import Limit, hit
from app.settings import Settings
from app.storage import MaterialMissing, Opened, content_key

log = logging.getLogger("app.cases.uploads")

FLUSH_BYTES = 1 << 20  # write to disk in 1 MiB batches (off the event loop)
HEAD_BYTES = 8192
MULTIPART_OVERHEAD = 64 * 1024  # headers and small fields beside the file part
_BOUNDARY = re.compile(r'boundary="?([^";]{1,70})"?', re.IGNORECASE)
_ZIP_MARKERS = (("docx", "word/document.xml"), ("xlsx", "xl/workbook.xml"), ("ofd", "OFD.xml"))
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Word 97 and Excel 97 documents (the directory tells them apart)
TYPE_NAMES = {"pdf": "PDF", "jpg": "JPG 图片", "png": "PNG 图片", "ofd": "OFD 版式文件", "doc": "Word",
              "docx": "Word", "xls": "Excel", "xlsx": "Excel"}  # fmt: skip


def clean_filename(raw: str | None) -> str:
    """The client's file name for display only: no path, no control characters, at most 120 characters."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C")
    name = name.strip().lstrip(".") or "file"
    return name[-120:]


def sniff(head: bytes, path: Path) -> set[str]:
    """What a file is, from its bytes: a set of our type names (empty when none of ours)."""
    if head.startswith(_OLE2):
        return {"doc", "xls"}
    kind = filetype.guess_extension(head)
    if kind in {"pdf", "png"}:
        return {kind}
    if kind in {"jpg", "jpeg"}:
        return {"jpg"}
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError, ValueError):
            return set()
        return {t for t, marker in _ZIP_MARKERS if marker in names}
    return set()


def check_type(found: set[str], accepted: Iterable[str], *, filename: str) -> str:
    """The file's type when it is one the material accepts, else 422 FILE_TYPE_MISMATCH."""
    allowed = [t for t in accepted if t in FILE_TYPES]
    match = [t for t in allowed if t in found]
    if not match:
        raise FileTypeMismatch(
            f"文件「{filename}」的实际类型不是允许的类型（{'、'.join(dict.fromkeys(TYPE_NAMES[t] for t in allowed))}）",
            details={"filename": filename, "detected": sorted(found), "accepted": allowed},
        )
    return match[0]


class _Sink:
    """The file part on its way to disk: hashed, counted and capped."""

    def __init__(self, tmp: Path, limit: int) -> None:
        self.tmp, self.limit = tmp, limit
        self.hash = hashlib.sha256()
        self.size = 0
        self.head = bytearray()
        self.pending = bytearray()
        self.fh: Any = None

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise UploadTooLarge(details={"max_bytes": self.limit})
        self.hash.update(chunk)
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        self.pending += chunk
        if len(self.pending) >= FLUSH_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if self.fh is None:
            self.fh = await asyncio.to_thread(_open_new, self.tmp)
        if self.pending:
            data, self.pending = bytes(self.pending), bytearray()
            await asyncio.to_thread(self.fh.write, data)

    async def close(self) -> None:
        if self.fh is not None:
            await asyncio.to_thread(self.fh.close)
            self.fh = None

    async def discard(self) -> None:
        await asyncio.to_thread(self.tmp.unlink, True)


UPLOADS_PER_HOUR = Limit("upload-citizen-1h", 120, 3600)


async def accepted_types(cache: LocalCache, base_url: str, matter_code: str | None, material: str | None) -> list[str]:
    """The file types a guide's material accepts; every type we know when no material is named."""
    if not (matter_code and material):
        return sorted(FILE_TYPES)
    _, _, guide = await guides.guide_document(cache, matter_code, base_url=base_url)
    for m in guide["materials"]:
        if m["name"] == material:
            return list(m["file_types"])
    raise MaterialUnknown(details={"name": material, "materials": [m["name"] for m in guide["materials"]]})


async def accept(
    deps: CaseDeps,
    *,
    owner_id: str,
    matter_code: str | None,
    material: str | None,
    content_type: str | None,
    content_length: int | None,
    chunks: AsyncIterator[bytes],
) -> UploadInfo:
    """An upload as the API takes it: the owner's hourly limit, the material's types, then the stream."""
    await hit(deps.store, UPLOADS_PER_HOUR, owner_id)
    accepted = await accepted_types(deps.cache, deps.settings.base_url, matter_code, material)
    return await receive(
        deps, owner_id=owner_id, content_type=content_type, content_length=content_length, chunks=chunks,
        accepted=accepted,
    )  # fmt: skip


async def receive(
    deps: CaseDeps,
    *,
    owner_id: str,
    content_type: str | None,
    content_length: int | None,
    chunks: AsyncIterator[bytes],
    accepted: Iterable[str] | None = None,
) -> UploadInfo:
    """Stream a multipart body's `file` part to storage and record it for its owner."""
    settings = deps.settings
    limit = settings.upload_max_bytes
    if content_length is not None and content_length > limit + MULTIPART_OVERHEAD:
        raise UploadTooLarge(details={"max_bytes": limit})  # refused before reading a byte of the body
    match = _BOUNDARY.search(content_type or "")
    if not (content_type or "").lower().startswith("multipart/form-data") or match is None:
        raise UploadInvalid(details={"content_type": (content_type or "")[:100]})
    parser = multipart.PushMultipartParser(match.group(1), max_segment_count=8, max_header_size=2048)
    sink = _Sink(deps.materials.scratch_dir() / uuid.uuid4().hex, limit)
    filename: str | None = None
    fields: dict[str, bytearray] = {}
    current: str | None = None
    try:
        try:
            async for chunk in _bounded(chunks, limit + MULTIPART_OVERHEAD):
                for event in parser.parse(chunk):
                    if isinstance(event, multipart.MultipartSegment):
                        current = event.name
                        if current == "file":
                            if filename is not None:
                                raise UploadInvalid("一次只能上传一个文件")
                            filename = clean_filename(event.filename)
                        elif current in fields or len(fields) >= 4:
                            raise UploadInvalid("表单字段重复或过多")
                        else:
                            fields[current] = bytearray()
                    elif event is None:
                        current = None
                    elif current == "file":
                        await sink.write(event)
                    elif current is not None:
                        fields[current] += event
                        if len(fields[current]) > 200:
                            raise UploadInvalid("表单字段过长")
            for _ in parser.parse(b""):
                pass
            parser.close()
        except multipart.MultipartError as exc:  # malformed, over a parser limit, or cut short
            raise UploadInvalid(details={"reason": str(exc)[:200]}) from None
        if filename is None:
            raise UploadInvalid()
        return await _store(deps, owner_id, sink, filename, accepted if accepted is not None else sorted(FILE_TYPES))
    finally:
        await sink.close()
        await sink.discard()


async def _store(deps: CaseDeps, owner_id: str, sink: _Sink, filename: str, accepted: Iterable[str]) -> UploadInfo:
    """A received file checked (not empty, a type the material accepts), recorded and put at its address."""
    settings = deps.settings
    if sink.size == 0:
        raise UploadInvalid("文件为空")
    await sink.flush()
    await sink.close()
    found = await asyncio.to_thread(sniff, bytes(sink.head), sink.tmp)
    file_type = check_type(found, accepted, filename=filename)
    sha = sink.hash.hexdigest()
    now = clock.now()
    row = await Upload.create(
        id=uuid.uuid4(),
        owner_id=uuid.UUID(owner_id),
        sha256=sha,
        size=sink.size,
        file_type=file_type,
        filename=filename,
        created_at=now,
        expires_at=now + dt.timedelta(hours=settings.upload_keep_hours),
    )
    # After the row: a sweep that removed this content meanwhile sees the row and puts it back (see sweep).
    try:
        await deps.materials.put_file(content_key(sha), sink.tmp)
    except Exception:  # the object store unreachable or refusing: no row may promise bytes that are not there
        log.exception("upload content %s… could not be stored in the %s store", sha[:12], deps.materials.backend)
        await Upload.filter(id=row.id).delete()
        raise StorageUnavailable() from None
    return upload_info(row)


FORM_FIELDS_MAX = 40
FORM_FIELD_BYTES = 1000


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB" if size >= 1024 * 1024 else f"{size // 1024} KB"


async def accept_form(
    deps: CaseDeps,
    *,
    owner_id: str,
    parts: Mapping[str, tuple[str, Sequence[str]]],
    content_type: str | None,
    content_length: int | None,
    chunks: AsyncIterator[bytes],
    check: Callable[[Mapping[str, str]], Awaitable[bool]],
) -> FormUploads:
    """A form posted with files for several materials (the H5 form without script), each file on its own.

    `parts` maps a file part's name to (material, accepted types). Every file is streamed, typed and
    recorded like an API upload; a refused file (wrong type, too large, empty) is reported against its
    material and the others go on. `check(fields)` sees the text fields sent before the first file (the
    form's token) before anything is stored; when it answers False the files are read and dropped.
    The files of one post together may not pass `upload_max_bytes`: past it the post stops there and what
    was stored before is kept.
    """
    settings = deps.settings
    limit = settings.upload_max_bytes
    total = limit + MULTIPART_OVERHEAD
    fields: dict[str, str] = {}
    files: dict[str, list[UploadInfo]] = {}
    errors: dict[str, DomainError] = {}
    too_much = UploadTooLarge(
        f"所选文件合计超过 {_mb(limit)}，请分几次上传（每次选择部分材料）", details={"max_bytes": limit}
    )
    if content_length is not None and content_length > total:
        return FormUploads(fields, {}, {}, too_much)  # refused before reading a byte of the body
    match = _BOUNDARY.search(content_type or "")
    if not (content_type or "").lower().startswith("multipart/form-data") or match is None:
        return FormUploads(fields, {}, {}, UploadInvalid(details={"content_type": (content_type or "")[:100]}))
    parser = multipart.PushMultipartParser(
        match.group(1), max_segment_count=len(parts) * 12 + FORM_FIELDS_MAX, max_header_size=2048
    )
    raw: dict[str, bytearray] = {}
    keep: bool | None = None  # the check's answer, asked once before the first file
    current: str | None = None
    sink: _Sink | None = None
    filename = ""
    material = ""
    accepted: Sequence[str] = ()
    refused: DomainError | None = None

    async def open_file(name: str, given: str | None) -> None:
        nonlocal keep, sink, filename, material, accepted
        if keep is None:
            keep = await check(_text(raw))
        material, accepted = parts[name]
        filename = clean_filename(given) if given else ""
        sink = None
        if keep and given:  # a file input left empty still sends a part with no file name: nothing to do
            try:
                await hit(deps.store, UPLOADS_PER_HOUR, owner_id)
            except DomainError as exc:
                errors[material] = exc
                return
            sink = _Sink(deps.materials.scratch_dir() / uuid.uuid4().hex, limit)

    async def close_file() -> None:
        nonlocal sink
        if sink is None:
            return
        done, sink = sink, None
        try:
            stored = await _store(deps, owner_id, done, filename, accepted)
            files.setdefault(material, []).append(stored)
        except DomainError as exc:
            errors[material] = exc
        finally:
            await done.close()
            await done.discard()

    try:
        async for chunk in _bounded(chunks, total):
            for event in parser.parse(chunk):
                if isinstance(event, multipart.MultipartSegment):
                    current = event.name
                    if current in parts:
                        await open_file(current, event.filename)
                    elif current in raw or len(raw) >= FORM_FIELDS_MAX:
                        raise UploadInvalid("表单字段重复或过多")
                    else:
                        raw[current] = bytearray()
                elif event is None:
                    if current in parts:
                        await close_file()
                    current = None
                elif current in parts:
                    if sink is not None:
                        try:
                            await sink.write(event)
                        except UploadTooLarge:
                            errors[material] = UploadTooLarge(
                                f"文件「{filename}」超过 {_mb(limit)}，请压缩或拍摄清晰度较低的照片后重新上传",
                                details={"max_bytes": limit, "filename": filename},
                            )
                            await sink.close()
                            await sink.discard()
                            sink = None  # the rest of this file is read and dropped
                elif current is not None:
                    raw[current] += event
                    if len(raw[current]) > FORM_FIELD_BYTES:
                        raise UploadInvalid("表单字段过长")
        for _ in parser.parse(b""):
            pass
        parser.close()
    except UploadTooLarge:
        refused = too_much
    except UploadInvalid as exc:
        refused = exc
    except multipart.MultipartError as exc:  # malformed, over a parser limit, or cut short
        refused = UploadInvalid(details={"reason": str(exc)[:200]})
    finally:
        if sink is not None:
            await sink.close()
            await sink.discard()
    fields = _text(raw)
    if keep is None:
        keep = await check(fields)
    return FormUploads(fields, {k: tuple(v) for k, v in files.items()} if keep else {}, errors if keep else {}, refused)


def _text(raw: Mapping[str, bytearray]) -> dict[str, str]:
    """Text fields as strings (U+0000 dropped: no stored text may hold it)."""
    return {k: bytes(v).decode("utf-8", "replace").replace("\x00", "") for k, v in raw.items()}


async def _bounded(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """The body's chunks, stopping with 413 as soon as more than `limit` bytes came (chunked bodies too)."""
    total = 0
    async for chunk in chunks:
        if not chunk:
            continue  # an empty read is no end of the body, but the parser takes b"" for one
        total += len(chunk)
        if total > limit:
            raise UploadTooLarge(details={"max_bytes": limit - MULTIPART_OVERHEAD})
        yield chunk


def _open_new(path: Path) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "wb")


def upload_info(row: Upload) -> UploadInfo:
    """An upload as its owner sees it."""
    return UploadInfo(
        row.id,
        row.filename,
        row.size,
        row.file_type,
        row.sha256,
        row.created_at,
        row.expires_at,
        row.case_id is not None,
    )


async def get_upload(*, owner_id: str, upload_id: str) -> UploadInfo:
    """One of the caller's uploads (anyone else's is 404)."""
    return upload_info(await own_upload(owner_id, upload_id))


async def own_upload(owner_id: str, upload_id: str) -> Upload:
    """The caller's upload row, or 404."""
    try:
        uid, oid = uuid.UUID(str(upload_id)), uuid.UUID(owner_id)
    except ValueError:
        raise UploadNotFound(details={"upload_id": str(upload_id)[:64]}) from None
    row = await Upload.get_or_none(id=uid, owner_id=oid)
    if row is None:
        raise UploadNotFound(details={"upload_id": str(upload_id)[:64]})
    return row


def path_of(settings: Settings, row: Upload) -> str:
    """The key of an upload's bytes in the material store."""
    return content_key(row.sha256)


async def open_material(deps: CaseDeps, key: str, upload_id: object) -> Opened:
    """Start reading a material's bytes; a row whose content is gone is logged and answered 404."""
    try:
        return await deps.materials.open(key)
    except MaterialMissing:
        log.error("material content %s missing from the %s store", key.rsplit("/", 1)[-1][:12], deps.materials.backend)
        raise UploadNotFound(details={"upload_id": str(upload_id)}) from None
    except Exception:
        log.exception("material content %s could not be read from the %s store", key[-64:][:12], deps.materials.backend)
        raise StorageUnavailable() from None


async def sweep(deps: CaseDeps, *, batch: int = 500) -> int:
    """Delete uploads no case took before they expired, and their files once nothing else holds them."""
    now = clock.now()
    rows = await Upload.filter(case_id__isnull=True, expires_at__lt=now).limit(batch).values_list("id", "sha256")
    if not rows:
        return 0
    await Upload.filter(id__in=[r[0] for r in rows], case_id__isnull=True).delete()
    for sha in {r[1] for r in rows}:
        await _drop_content(deps, sha)
    return len(rows)


async def _drop_content(deps: CaseDeps, sha: str) -> None:
    """Remove content nobody holds, safe against an upload of the same bytes at this moment.

    The content is moved aside first (a rename on disk; a server-side copy and a delete in a bucket) and
    the rows checked again. An upload records its row before it puts its content (and, in a bucket, only
    then asks whether the object exists), so either we see its row and move the content back, or its
    put comes after our move and stores the bytes again. Works the same on both backends.
    """
    if await Upload.exists(sha256=sha):
        return
    key = content_key(sha)
    aside = key + ".gone"
    if not await deps.materials.move(key, aside):
        return
    if await Upload.exists(sha256=sha):
        await deps.materials.move(aside, key)
        return
    await deps.materials.delete(aside)
    log.info("upload content %s… removed (expired, unused)", sha[:12])
