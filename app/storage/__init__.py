"""Material storage: one interface, two backends chosen by `STORAGE_BACKEND`.

Keys are content addresses (`ab/cd/abcd…`, the file's SHA-256): the local backend keeps today's
directory layout under `UPLOAD_DIR`, the S3 backend uses the same string as the object key, so a
directory copied into a bucket (`aws s3 sync`, `mc mirror`) is a working store.

Downloads always go through our own authorised routes, which stream the bytes from the store
(never presigned URLs): authorisation, the audit trail and the response headers that make a
hostile file harmless (`Content-Disposition`, `nosniff`, the type we sniffed) stay in one place,
a link cannot be forwarded or outlive the staff member's scope, and the store need not be
reachable from browsers (it usually sits on a government cloud's internal network).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from app.settings import Settings

CHUNK_BYTES = 256 * 1024  # what a download or an upload to the store holds in memory at a time


class MaterialMissing(FileNotFoundError):
    """The store holds nothing under this key."""


@dataclass(frozen=True)
class Opened:
    """A stored object being read: its size, then its bytes in chunks (read as they are consumed)."""

    size: int
    chunks: AsyncIterator[bytes]


class MaterialStore(Protocol):
    """Where material files live, by content key."""

    backend: str

    def scratch_dir(self) -> Path:
        """A local directory for files on their way in (hashed and sniffed before they are stored)."""
        ...

    async def put_file(self, key: str, path: Path) -> None:
        """Store a local file under `key` and remove the local file (content-addressed: same key, same bytes)."""
        ...

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Store a stream of bytes under `key`; the number of bytes."""
        ...

    async def open(self, key: str) -> Opened:
        """Start reading `key` (MaterialMissing when absent); nothing is read before the chunks are."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether `key` holds an object."""
        ...

    async def move(self, key: str, to: str) -> bool:
        """Rename `key` to `to` (replacing it); False when `key` held nothing."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key` (nothing happens when it is absent)."""
        ...

    def iter_keys(self) -> AsyncIterator[str]:
        """Every key in the store (files on their way in excluded)."""
        ...

    async def ping(self) -> None:
        """Raise unless the store answers (readiness)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def content_key(sha256: str) -> str:
    """The key of a content hash: `ab/cd/abcd…` (two levels of 256 directories, as on disk)."""
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def make_material_store(settings: Settings) -> MaterialStore:
    """The configured backend; the S3 client is imported only when the S3 backend is chosen."""
    if settings.storage_backend == "s3":
        from app.storage.s3 import S3MaterialStore  # lazily: the default configuration pays no memory for it

        return S3MaterialStore.from_settings(settings)
    from app.storage.local import LocalMaterialStore

    return LocalMaterialStore(settings.upload_dir)
