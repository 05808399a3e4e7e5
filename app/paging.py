"""One page of a list, and the API's list envelope `{"items", "total", "page", "page_size"}`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: its items, how many there are in all, which page and its size."""

    items: Sequence[T]
    total: int
    page: int
    page_size: int


def envelope(page: Page[T], item: Callable[[T], Any]) -> dict[str, Any]:
    """The list envelope of one page, each item presented by `item`."""
    return {"items": [item(i) for i in page.items], "total": page.total, "page": page.page, "page_size": page.page_size}
