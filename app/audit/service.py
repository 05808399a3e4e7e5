"""Record an audit entry in the current transaction; search and export the log (there is no update or delete).

`record` uses the ambient connection: inside a service's `async with in_transaction():` the entry is
written on that transaction, so it commits and rolls back with the change it describes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app import clock
from app.audit.context import current
from app.audit.models import AuditEntry
from app.jsontext import dumps
from app.paging import Page

# The one exception to "audit imports only infrastructure": the log redactor, so the audit log masks
# ID numbers and phones by exactly the rule the logs use (.importlinter ignores this one import).
from auth.redact import redact

# Keys whose values are personal data whatever they look like: never stored, not even masked.
_PERSONAL_KEYS = frozenset(
    {"name", "real_name", "citizen_name", "applicant_name", "phone", "mobile", "id_number", "id_card", "address"}
)
_HIDDEN = "[redacted]"
_MAX_SUMMARY = 500
_CSV_LIMIT = 50_000
CSV_COLUMNS = (
    "at",
    "actor",
    "actor_name",
    "actor_role",
    "ip",
    "action",
    "object_type",
    "object_id",
    "summary",
    "changes",
    "request_id",
)


@dataclass(frozen=True)
class AuditRecord:
    """One entry of the audit log as read back."""

    id: int
    at: dt.datetime
    actor: str
    actor_name: str
    actor_role: str
    ip: str
    action: str
    object_type: str
    object_id: str
    summary: str
    changes: dict[str, Any]
    request_id: str


@dataclass(frozen=True)
class AuditQuery:
    """Search filters: every one optional; `since`/`until` are inclusive dates (local)."""

    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None


def scrub(value: Any) -> Any:
    """`value` with ID numbers and phones masked in every string and personal keys' values dropped."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            str(key): (_HIDDEN if str(key).lower() in _PERSONAL_KEYS and val not in (None, "") else scrub(val))
            for key, val in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(item) for item in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        text = str(value)  # a phone given as a number is still a phone
        return value if redact(text) == text else redact(text)
    return redact(str(value))  # dates, UUIDs, enums: stored as text


def _entry(
    principal: Any, *, action: str, object_type: str, object_id: Any, summary: str, changes: Mapping[str, Any] | None
) -> dict[str, Any]:
    origin = current()
    who = principal if principal is not None else origin.principal
    if who is not None:
        actor = getattr(who, "subject", "") or "system"
        name, role = str(getattr(who, "name", "") or ""), str(getattr(who, "role", "") or "")
    else:
        actor, name, role = "system", "", ""
    return {
        "at": clock.now(),
        "actor": actor[:80],
        "actor_name": redact(name)[:100],
        "actor_role": role[:16],
        "ip": origin.ip[:64],
        "action": action,
        "object_type": object_type,
        "object_id": redact(str(object_id))[:100],
        "summary": redact(summary)[:_MAX_SUMMARY],
        "changes": scrub(dict(changes or {})),
        "request_id": origin.request_id[:64],
    }


async def record(
    principal: Any = None,
    *,
    action: str,
    object_type: str,
    object_id: Any,
    summary: str = "",
    changes: Mapping[str, Any] | None = None,
) -> None:
    """Append one entry on the ambient connection (the caller's transaction); actor and ip from the request."""
    entry = _entry(
        principal, action=action, object_type=object_type, object_id=object_id, summary=summary, changes=changes
    )
    await AuditEntry.create(**entry)


# -- The SQL fragment for a PostgreSQL statement that records its own write (as the idempotency records do) --
# Named parameters (app/sql.py `named`), all prefixed `audit_`; their values come from `entry_values`.

_COLUMNS = ("at", "actor", "actor_name", "actor_role", "ip", "action", "object_type", "object_id", "summary")


def entry_sql(source: str) -> str:
    """An INSERT writing the entry once when CTE `source` has a row (use it as a CTE of the write's statement)."""
    values = ", ".join(f":audit_{c}" + ("::timestamptz" if c == "at" else "::varchar") for c in _COLUMNS)
    return (
        f"INSERT INTO audit_log ({', '.join(_COLUMNS)}, changes, request_id) "  # noqa: S608 - constant names only
        f"SELECT {values}, :audit_changes::jsonb, :audit_request_id::varchar FROM {source} LIMIT 1"
    )


def entry_values(
    principal: Any = None,
    *,
    action: str,
    object_type: str,
    object_id: Any,
    summary: str = "",
    changes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`entry_sql`'s values: the same entry `record` would write."""
    entry = _entry(
        principal, action=action, object_type=object_type, object_id=object_id, summary=summary, changes=changes
    )
    entry["changes"] = _json(entry["changes"])
    return {f"audit_{k}": v for k, v in entry.items()}


def _record(row: AuditEntry) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        at=row.at,
        actor=row.actor,
        actor_name=row.actor_name,
        actor_role=row.actor_role,
        ip=row.ip,
        action=row.action,
        object_type=row.object_type,
        object_id=row.object_id,
        summary=row.summary,
        changes=dict(row.changes or {}),
        request_id=row.request_id,
    )


def _filtered(query: AuditQuery) -> Any:
    rows = AuditEntry.all()
    if query.actor:
        # A subject ("staff:<uuid>") or a name as shown in the console.
        rows = rows.filter(actor=query.actor) if ":" in query.actor else rows.filter(actor_name=query.actor)
    if query.action:
        # "case" finds every case action, "case.accept" one of them.
        rows = (
            rows.filter(action=query.action)
            if "." in query.action
            else rows.filter(action__startswith=query.action + ".")
        )
    if query.object_type:
        rows = rows.filter(object_type=query.object_type)
    if query.object_id:
        rows = rows.filter(object_id=query.object_id)
    if query.since:
        rows = rows.filter(at__gte=clock.day_start(query.since))
    if query.until:
        rows = rows.filter(at__lt=clock.day_start(query.until + dt.timedelta(days=1)))
    return rows


async def search(query: AuditQuery, *, page: int = 1, page_size: int = 50) -> Page[AuditRecord]:
    """One page of matching entries, newest first."""
    page, page_size = max(1, page), min(max(1, page_size), 200)
    rows = _filtered(query)
    total = await rows.count()
    found = await rows.order_by("-at", "-id").offset((page - 1) * page_size).limit(page_size)
    return Page([_record(r) for r in found], total, page, page_size)


async def export_csv(query: AuditQuery) -> str:
    """The matching entries (newest first, at most 50 000) as CSV text with a header row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in await _filtered(query).order_by("-at", "-id").limit(_CSV_LIMIT):
        entry = _record(row)
        writer.writerow(
            [
                clock.iso(entry.at),
                entry.actor,
                _no_formula(entry.actor_name),
                entry.actor_role,
                entry.ip,
                entry.action,
                entry.object_type,
                _no_formula(entry.object_id),
                _no_formula(entry.summary),
                _no_formula(_json(entry.changes)),
                entry.request_id,
            ]
        )
    return out.getvalue()


def _json(value: Any) -> str:
    return dumps(value, sort_keys=True).decode()


def _no_formula(text: str) -> str:
    # A spreadsheet opening the export must not run a cell as a formula (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
