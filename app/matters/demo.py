"""The demo catalogue shipped with the service (loaded into an empty database in dev mode)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from app.matters import service


def demo_data() -> dict[str, Any]:
    """The parsed demo catalogue file."""
    return json.loads(resources.files("app.matters").joinpath("demo_catalogue.json").read_text("utf-8"))


async def load_demo(deps: service.CatalogueDeps) -> service.ImportReport:
    """Import the demo catalogue (idempotent)."""
    return await service.import_catalogue(deps, data=demo_data())
