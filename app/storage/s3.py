"""The S3 backend: any S3-compatible object store (MinIO, and the S3 APIs of the government clouds).

Client: obstore (Python bindings of the Rust `object_store` crate used by Arrow/DataFusion). Chosen over
aiobotocore/aioboto3 because importing it costs about 7 MiB of RSS against about 26 MiB for botocore
(a worker's budget is 120 MiB), it is async natively (no thread pool), it streams both ways (a get is
read chunk by chunk as the response is written; a put of an async iterator is a multipart upload whose
parts are the only bytes held), and it takes a custom endpoint, path-style addressing and SSE-S3
(`x-amz-server-side-encryption`, also sent on the copies a rename makes) as plain settings.
This module is imported only when `STORAGE_BACKEND=s3`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

import obstore
from obstore.store import S3Store

from app.settings import Settings
from app.storage import CHUNK_BYTES, MaterialMissing, Opened

# S3's smallest multipart part (but the last): a file above it goes up in parts of this size, one at a time,
# so an upload holds at most one part in memory; a smaller file is sent in one PUT.
PART_BYTES = 5 * 1024 * 1024


class S3MaterialStore:
    """Material files as objects in one bucket, keyed by content address."""

    backend = "s3"

    def __init__(self, store: Any, *, scratch: Path | None = None) -> None:
        self.store = store
        self._scratch = scratch or Path(tempfile.gettempdir()) / "zuiduo-uploads"

    @classmethod
    def from_settings(cls, settings: Settings) -> S3MaterialStore:
        """A client for the configured bucket (no I/O until the first request)."""
        config: dict[str, Any] = {
            "region": settings.storage_s3_region,
            "virtual_hosted_style_request": not settings.storage_s3_path_style,
        }
        if settings.storage_s3_endpoint:
            config["endpoint"] = settings.storage_s3_endpoint
        if settings.storage_s3_access_key and settings.storage_s3_secret_key:
            config["access_key_id"] = settings.storage_s3_access_key
            config["secret_access_key"] = settings.storage_s3_secret_key
        if settings.storage_s3_sse:
            config["server_side_encryption"] = "AES256"  # SSE-S3: the store encrypts each object at rest
        client: Any = {
            "allow_http": (settings.storage_s3_endpoint or "").startswith("http://"),
            "connect_timeout": "5s",
            # the whole request, body included: a download streams at the pace of the citizen's or clerk's link
            "timeout": "600s",
        }
        # A few quick retries (the default keeps trying for three minutes: a request would hang that long)
        retry: Any = {"max_retries": 3, "retry_timeout": dt.timedelta(seconds=10)}
        store = S3Store(settings.storage_s3_bucket, config=config, client_options=client, retry_config=retry)
        return cls(store)

    def scratch_dir(self) -> Path:
        """The system temporary directory: no volume of ours is needed with this backend."""
        return self._scratch

    async def put_file(self, key: str, path: Path) -> None:
        """Upload the file unless its content is already stored (the key is its hash), then remove it."""
        try:
            if not await self.exists(key):
                size = (await asyncio.to_thread(path.stat)).st_size
                await obstore.put_async(
                    self.store, key, _file_chunks(path), use_multipart=size > PART_BYTES,
                    chunk_size=PART_BYTES, max_concurrency=1,
                )  # fmt: skip
        finally:
            await asyncio.to_thread(path.unlink, True)

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Upload a stream as a multipart upload (parts of PART_BYTES)."""
        size = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in chunks:
                size += len(chunk)
                yield chunk

        await obstore.put_async(self.store, key, counted(), chunk_size=PART_BYTES, max_concurrency=1)
        return size

    async def open(self, key: str) -> Opened:
        """A GET whose body is read as the chunks are consumed."""
        try:
            got = await obstore.get_async(self.store, key)
        except FileNotFoundError:
            raise MaterialMissing(key) from None
        return Opened(got.meta["size"], got.stream(min_chunk_size=CHUNK_BYTES))

    async def exists(self, key: str) -> bool:
        """A HEAD of the object."""
        try:
            await obstore.head_async(self.store, key)
        except FileNotFoundError:
            return False
        return True

    async def move(self, key: str, to: str) -> bool:
        """A server-side copy, then a delete of the original."""
        try:
            await obstore.rename_async(self.store, key, to, overwrite=True)
        except FileNotFoundError:
            return False
        return True

    async def delete(self, key: str) -> None:
        """DELETE (S3 answers the same whether or not the object was there)."""
        await obstore.delete_async(self.store, key)

    async def iter_keys(self) -> AsyncIterator[str]:
        """Every object's key, listed a thousand at a time."""
        async for batch in obstore.list(self.store, None, chunk_size=1000):
            for meta in batch:
                yield meta["path"]

    async def ping(self) -> None:
        """A one-prefix listing: fails when the bucket is missing or the credentials are refused."""
        await obstore.list_with_delimiter_async(self.store, "ping/")

    async def aclose(self) -> None:
        """The client's connections close with it."""


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    fh = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(fh.read, CHUNK_BYTES):
            yield chunk
    finally:
        fh.close()
