"""The API's JSON of the identity results (auth.types)."""

from __future__ import annotations

from typing import Any

from auth.types import StaffAccount


def staff_json(staff: StaffAccount) -> dict[str, Any]:
    """A staff account as the administration API answers it."""
    return {
        "id": str(staff.id),
        "username": staff.username,
        "display_name": staff.display_name,
        "role": staff.role.value,
        "hall": staff.hall,
        "departments": list(staff.departments),
        "disabled": staff.disabled,
    }
