"""Material files sent to the browser: streamed from the store, a chunk at a time, with our headers."""

from __future__ import annotations

from collections.abc import Mapping

from sanic import Request

from app.storage import Opened


async def stream(request: Request, opened: Opened, *, content_type: str, headers: Mapping[str, str]) -> None:
    """Send an opened material (its length stated) without holding more than one chunk of it.

    The response is sent here: the handler returns None (Sanic refuses a second response).
    """
    response = await request.respond(headers={**headers, "Content-Length": str(opened.size)}, content_type=content_type)
    async for chunk in opened.chunks:
        await response.send(chunk)
    await response.eof()
