"""Development: the running server's address and token issuer, left where `python -m app dev token` finds them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from app.settings import ROOT, Settings

DIR = ROOT / "data" / "dev-servers"


def _path(settings: Settings, directory: Path | None = None) -> Path:
    """One file per database: the CLI signs with that database's keys, so it needs the server using the same one."""
    digest = hashlib.sha256(settings.database_url.encode()).hexdigest()[:16]
    return (directory or DIR) / f"{digest}.json"


def announce(settings: Settings, directory: Path | None = None) -> Path | None:
    """Record this (development) server process; production records nothing."""
    if settings.is_production:
        return None
    path = _path(settings, directory)
    record = {"pid": os.getpid(), "base_url": settings.base_url, "jwt_issuer": settings.jwt_issuer}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob("*.json"):  # records left by servers that were killed
            if not _alive(old):
                old.unlink(missing_ok=True)
        path.write_text(json.dumps(record), "utf-8")
    except OSError:  # a read-only checkout: `dev token` then falls back to its own settings
        return None
    return path


def withdraw(settings: Settings, directory: Path | None = None) -> None:
    """Remove this process's record (a record of another process stays)."""
    record = running(settings, directory)
    if record is not None and record["pid"] == os.getpid():
        _path(settings, directory).unlink(missing_ok=True)


def running(settings: Settings, directory: Path | None = None) -> dict[str, Any] | None:
    """The record of the development server running on this database, if its process is alive."""
    return _alive(_path(settings, directory))


def _alive(path: Path) -> dict[str, Any] | None:
    """The record in this file if its process is alive."""
    try:
        record = json.loads(path.read_text("utf-8"))
        os.kill(int(record["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):  # no record, a stale one (process gone) or an unreadable one
        return None
    return record if isinstance(record.get("jwt_issuer"), str) else None
