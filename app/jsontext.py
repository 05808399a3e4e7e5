"""The one JSON text format of the service (compact UTF-8, Chinese readable), also for stored answers."""

from __future__ import annotations

import json
from typing import Any


def dumps(data: Any) -> bytes:
    """Compact UTF-8 JSON (Chinese kept readable)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
