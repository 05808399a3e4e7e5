"""The local-directory backend: `<root>/ab/cd/abcd…`, the layout uploads have always had."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import BinaryIO

from app.storage import CHUNK_BYTES, MaterialMissing, Opened

SCRATCH = "tmp"  # files on their way in: inside the root, so that placing one is an atomic rename


class LocalMaterialStore:
    """Material files in a directory (the embedded default: `make run` and single-host installs)."""

    backend = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in {"", ".", ".."} for p in parts) or parts[0] == SCRATCH:
            raise ValueError(f"not a material key: {key!r}")
        return self.root.joinpath(*parts)

    def scratch_dir(self) -> Path:
        """`<root>/tmp`: the same file system as the content, so a finished upload is renamed, not copied."""
        return self.root / SCRATCH

    async def put_file(self, key: str, path: Path) -> None:
        """Rename the file to its address (same content at the same address: replacing is harmless and atomic)."""
        await asyncio.to_thread(_place, path, self._path(key))

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Write the stream to a scratch file, then rename it into place."""
        tmp = self.scratch_dir() / uuid.uuid4().hex
        size = 0
        fh = await asyncio.to_thread(_open_new, tmp)
        try:
            async for chunk in chunks:
                size += len(chunk)
                await asyncio.to_thread(fh.write, chunk)
            await asyncio.to_thread(fh.close)
            await self.put_file(key, tmp)
        finally:
            fh.close()
            await asyncio.to_thread(tmp.unlink, True)
        return size

    async def open(self, key: str) -> Opened:
        """The open file (a sweep removing it meanwhile does not cut the reader short)."""
        try:
            fh = await asyncio.to_thread(open, self._path(key), "rb")
        except FileNotFoundError:
            raise MaterialMissing(key) from None
        size = os.fstat(fh.fileno()).st_size
        return Opened(size, _read(fh))

    async def exists(self, key: str) -> bool:
        """Whether the file is there."""
        return await asyncio.to_thread(self._path(key).is_file)

    async def move(self, key: str, to: str) -> bool:
        """An atomic rename."""
        try:
            await asyncio.to_thread(os.replace, self._path(key), self._path(to))
        except FileNotFoundError:
            return False
        return True

    async def delete(self, key: str) -> None:
        """Unlink the file."""
        await asyncio.to_thread(self._path(key).unlink, True)

    async def iter_keys(self) -> AsyncIterator[str]:
        """Every stored file's key (the scratch directory left out)."""
        for found in await asyncio.to_thread(self._walk):
            yield found

    def _walk(self) -> list[str]:
        out: list[str] = []
        for top, dirs, files in os.walk(self.root):
            if Path(top) == self.root:
                dirs[:] = [d for d in dirs if d != SCRATCH]
            rel = Path(top).relative_to(self.root).as_posix()
            out += [f"{rel}/{name}" for name in files]
        return sorted(out)

    async def ping(self) -> None:
        """The directory exists (created on first write otherwise)."""
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    async def aclose(self) -> None:
        """Nothing to release."""


async def _read(fh: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(fh.read, CHUNK_BYTES):
            yield chunk
    finally:
        fh.close()


def _open_new(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "wb")


def _place(tmp: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
