"""JSON shapes of the catalogue's results (the API's, and what other domains read from a guide)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from app import clock
from app.matters.schemas import MATERIAL_FORM_NAMES, MATTER_TYPE_NAMES, SECTION_NAMES, MaterialForm
from app.matters.service import (
    DepartmentInfo,
    GuideVersion,
    HallInfo,
    ImportReport,
    MatterSummary,
    Page,
    Retirement,
    SectionCount,
    VersionChange,
    VersionContent,
    VersionInfo,
    visits_label,
)
from app.paging import envelope


def section(item: SectionCount) -> dict[str, Any]:
    """A section with its matter count."""
    return asdict(item)


def summary(item: MatterSummary) -> dict[str, Any]:
    """A matter's summary."""
    return asdict(item)


def hall(item: HallInfo) -> dict[str, Any]:
    """A hall."""
    return asdict(item)


def department(item: DepartmentInfo) -> dict[str, Any]:
    """A department."""
    return asdict(item)


def page(result: Page[Any], item: Callable[[Any], dict[str, Any]] = summary) -> dict[str, Any]:
    """The API list envelope of one page (a search's by default), each item shaped by `item`."""
    return envelope(result, item)


def version(item: VersionInfo) -> dict[str, Any]:
    """A version's metadata, times in ISO 8601 (+08:00)."""
    return {
        "no": item.no,
        "status": item.status,
        "content_hash": item.content_hash,
        "created_at": clock.iso(item.created_at),
        "updated_at": clock.iso(item.updated_at),
        "published_at": clock.iso(item.published_at),
        "superseded_at": clock.iso(item.superseded_at),
    }


def version_change(result: VersionChange) -> dict[str, Any]:
    """A matter and the version a write touched."""
    return {"code": result.code, "version": version(result.version)}


def version_content(result: VersionContent) -> dict[str, Any]:
    """A version with its raw content."""
    return {"code": result.code, "version": version(result.version), "content": result.content}


def retirement(result: Retirement) -> dict[str, Any]:
    """A retired matter."""
    return asdict(result)


def import_report(report: ImportReport) -> dict[str, Any]:
    """What an import did."""
    return asdict(report)


def guide(view: GuideVersion, *, base_url: str) -> dict[str, Any]:
    """A guide version as the catalogue describes it (the read model in app.guide adds codes and feedback)."""
    g = view.guide
    body = g.model_dump(mode="json")
    code = view.code
    successor = None
    if view.successor is not None:
        successor = {
            "code": view.successor.code,
            "name": view.successor.name,
            "url": f"{base_url}/m/{view.successor.code}",
        }
    dep = view.department
    body.update(
        code=code,
        version=view.no,
        version_status=view.version_status,
        published_at=clock.iso(view.published_at),
        status=view.status,
        successor=successor,
        type_name=MATTER_TYPE_NAMES[g.type],
        section_name=SECTION_NAMES[g.section],
        visits_label=visits_label(g.visits),
        department={
            "code": g.department,
            "name": dep.name if dep else g.department,
            "phone": dep.phone if dep else "",
        },
        hall=hall(view.hall) if view.hall else {"code": g.hall, "name": g.hall},
        fee_total_fen=sum(f.amount_fen for f in g.fees),
        links={
            "h5": f"{base_url}/m/{code}",
            "api": f"{base_url}/api/v1/matters/{code}",
            "book": f"{base_url}/m/{code}/book",
            "apply": f"{base_url}/m/{code}/apply",
            "progress": f"{base_url}/m/{code}/progress",
            "consult": f"{base_url}/m/{code}/consult",
            "rate": f"{base_url}/m/{code}/rate",
        },
    )
    for material in body["materials"]:
        material["form_name"] = MATERIAL_FORM_NAMES[MaterialForm(material["form"])]
    return body
