"""Writes that outlive their client: `finish_even_if_disconnected` and the PostgreSQL socket URL form."""

from __future__ import annotations

import asyncio
import gc

import pytest

from app.db import tortoise_config
from app.errors import Conflict
from app.http import finish_even_if_disconnected
from app.settings import Settings


async def _handler(write, on_error) -> None:
    await finish_even_if_disconnected(write, on_error=on_error)


@pytest.mark.asyncio
async def test_write_finishes_after_the_client_goes_away() -> None:
    done = asyncio.Event()

    async def write() -> str:
        await asyncio.sleep(0.05)
        done.set()
        return "ok"

    handler = asyncio.ensure_future(_handler(write(), None))
    await asyncio.sleep(0.01)
    handler.cancel()  # what Sanic does when the client disconnects
    with pytest.raises(asyncio.CancelledError):
        await handler
    await asyncio.wait_for(done.wait(), 1)


@pytest.mark.asyncio
async def test_failed_orphaned_write_releases_its_claim_and_its_error_is_retrieved() -> None:
    released = asyncio.Event()
    unretrieved: list[dict] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))

    async def write() -> str:
        await asyncio.sleep(0.05)
        raise Conflict("满了", code="SLOT_FULL")

    async def release() -> None:
        released.set()

    try:
        handler = asyncio.ensure_future(_handler(write(), release))
        await asyncio.sleep(0.01)
        handler.cancel()
        with pytest.raises(asyncio.CancelledError):
            await handler
        await asyncio.wait_for(released.wait(), 1)
        gc.collect()  # an unretrieved task exception is reported when the task is collected
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert not [c for c in unretrieved if "never retrieved" in c.get("message", "")]


@pytest.mark.asyncio
async def test_failed_write_with_its_client_still_there_releases_and_raises() -> None:
    calls: list[str] = []

    async def write() -> str:
        raise Conflict("满了", code="SLOT_FULL")

    async def release() -> None:
        calls.append("released")

    with pytest.raises(Conflict):
        await finish_even_if_disconnected(write(), on_error=release)
    assert calls == ["released"]


def test_postgres_url_with_a_socket_directory() -> None:
    settings = Settings(database_url="postgres://postgres@localhost:5432/app?host=/var/run/postgresql")
    creds = tortoise_config(settings)["connections"]["default"]["credentials"]
    assert creds["host"] == "/var/run/postgresql"
    assert creds["database"] == "app"
    settings = Settings(database_url="postgres://postgres@127.0.0.1:5432/app")
    assert tortoise_config(settings)["connections"]["default"]["credentials"]["host"] == "127.0.0.1"
