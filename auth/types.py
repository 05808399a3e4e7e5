"""What the identity services answer that channels use too: staff roles and accounts (no ORM here)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass


class Role(enum.StrEnum):
    """Staff roles."""

    clerk = "clerk"
    reviewer = "reviewer"
    admin = "admin"


@dataclass(frozen=True)
class StaffAccount:
    """A staff account as the services hand it on (never its password hash)."""

    id: uuid.UUID
    username: str
    display_name: str
    role: Role
    hall: str | None
    departments: tuple[str, ...]
    disabled: bool
    # Whether an authenticator is bound (admins and reviewers must have one to sign in).
    totp_enrolled: bool = False
