"""What the case services answer: the status enumeration and typed results (no ORM, so channels may import it).

Dates and times stay `date` / aware `datetime` here; each channel's presenter formats them
(`app.cases.present` for JSON, the H5 page and the WeChat replies for their own text).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.errors import DomainError
from app.notify.types import NotificationView
from app.paging import Page


class CaseStatus(enum.StrEnum):
    """Where a case stands (see lifecycle.TRANSITIONS for the moves between them)."""

    submitted = "submitted"
    accepted = "accepted"
    rejected = "rejected"
    correction_required = "correction_required"
    resubmitted = "resubmitted"
    under_review = "under_review"
    suspended = "suspended"
    approved = "approved"
    denied = "denied"
    delivered = "delivered"
    completed = "completed"
    withdrawn = "withdrawn"


@dataclass(frozen=True)
class Sla:
    """Where a case stands against its promised time: green, yellow, red, paused, stopped or not_started."""

    state: str
    due_on: dt.date | None
    days_left: int | None
    suspended_on: dt.date | None = None  # only while paused


@dataclass(frozen=True)
class NextStep:
    """What happens next and by when (as far as the service can promise it)."""

    name: str
    expected_by: dt.date | None


@dataclass(frozen=True)
class CaseSummary:
    """A case in a list: its number, matter, status and time."""

    case_no: str
    matter_code: str
    matter_name: str
    guide_version: int
    status: CaseStatus
    status_name: str
    submitted_at: dt.datetime
    updated_at: dt.datetime
    promised_days: int
    accepted_on: dt.date | None
    sla: Sla
    next_step: NextStep | None
    kind: str = "single"  # single | bundle (一件事) | part (one member's case of a bundle)
    bundle_no: str | None = None  # a part's bundle number
    stage: int | None = None  # a part's stage


@dataclass(frozen=True)
class PartItem:
    """One member's case of a bundle, as the bundle's view lists it."""

    case_no: str
    matter_code: str
    matter_name: str
    department: str
    status: CaseStatus
    status_name: str
    accepted_on: dt.date | None
    due_on: dt.date | None
    decided_on: dt.date | None
    sla: Sla
    correction: Mapping[str, Any] | None


@dataclass(frozen=True)
class StageView:
    """One stage of a bundle: its parts (in parallel), when it started and was decided, against its promise.

    `state` is waiting (not opened yet), running, done or stopped (an earlier stage was denied, or withdrawn);
    `used_days` are the working days it took (or has taken so far), pauses excluded.
    """

    no: int
    name: str
    promised_days: int
    state: str
    started_on: dt.date | None
    due_on: dt.date | None
    decided_on: dt.date | None
    used_days: int | None
    paused_days: int
    overdue: bool
    parts: tuple[PartItem, ...]


@dataclass(frozen=True)
class CapView:
    """A legal cap over several stages (e.g. the first four ≤ 48 working days) and how much of it was used."""

    name: str
    stages: tuple[int, ...]
    days: int
    used_days: int
    finished: bool  # every capped stage decided: `used_days` is final
    within: bool


@dataclass(frozen=True)
class BundleView:
    """A bundle application's stages, what holds it up and the expected date of the whole."""

    bundle_no: str
    code: str
    name: str
    lead_department: str
    stages: tuple[StageView, ...]
    current_stage: int | None
    expected_on: dt.date | None
    holding: tuple[str, ...]  # what the bundle waits for now, in words
    cap: CapView | None


@dataclass(frozen=True)
class BundleRef:
    """Where a part belongs: its bundle, the bundle's name and lead department, and its stage."""

    bundle_no: str
    code: str
    name: str
    lead_department: str
    stage: int
    stage_name: str


@dataclass(frozen=True)
class StaffCaseItem:
    """A case in a staff list: the summary, where it is handled and what the caller may do now."""

    summary: CaseSummary
    hall: str
    department: str
    actions: tuple[str, ...]


@dataclass(frozen=True)
class TimelineEntry:
    """One step of a case's timeline; `actor_*`, `note` and `data` are filled for staff only."""

    action: str
    label: str
    status: CaseStatus
    status_name: str
    text: str
    at: dt.datetime
    actor_kind: str | None = None
    actor_id: str | None = None
    note: str | None = None
    data: Mapping[str, Any] | None = None
    source: str | None = None  # in a bundle's timeline: the part (member matter) the step belongs to
    case_no: str | None = None  # … and that part's number


@dataclass(frozen=True)
class MaterialItem:
    """A file handed in for one of the guide's materials (None where the upload is gone)."""

    name: str
    round: int
    upload_id: uuid.UUID
    filename: str | None
    file_type: str | None
    size: int | None
    sha256: str | None


@dataclass(frozen=True)
class PartyView:
    """The principal (被代办人 or the applicant) as the audience may see them (masked for citizens)."""

    kind: str
    name: str
    id_number: str
    phone: str | None


@dataclass(frozen=True)
class DeliveryView:
    """How the result reaches the applicant; the address only for EMS (masked for citizens)."""

    method: str
    tracking_no: str | None
    address: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Receipt:
    """The receipt's signed case code and the progress page it opens."""

    case_code: str
    progress_url: str


@dataclass(frozen=True)
class ProgressView:
    """A case as an anonymous query sees it: summary, the principal's masked name, the public timeline."""

    summary: CaseSummary
    principal_name: str
    timeline: tuple[TimelineEntry, ...]
    bundle: BundleView | None = None


@dataclass(frozen=True)
class CaseView:
    """A case as its applicant, agent or principal sees it (personal data masked)."""

    summary: CaseSummary
    id: uuid.UUID
    agent: bool
    principal: PartyView
    delivery: DeliveryView
    correction: Mapping[str, Any] | None
    materials: tuple[MaterialItem, ...]
    form: Mapping[str, Any]
    hall: str
    department: str
    timeline: tuple[TimelineEntry, ...]
    receipt: Receipt | None = None
    actions: tuple[str, ...] = ()  # what the reader may do now (withdraw, resubmit): the applicant only
    bundle: BundleView | None = None  # a bundle application: its stages and parts
    part_of: BundleRef | None = None  # a part: the bundle it belongs to


@dataclass(frozen=True)
class Submission:
    """A filed application: the case, its query code (shown this once) and its receipt."""

    case: CaseView
    query_code: str
    receipt: Receipt


@dataclass(frozen=True)
class StaffCaseView:
    """A case for staff: full data, internal notes, the actions they may take and the pushes' delivery."""

    summary: CaseSummary
    id: uuid.UUID
    agent: bool
    principal: PartyView
    applicant_account: uuid.UUID
    delivery: DeliveryView
    correction: Mapping[str, Any] | None
    form: Mapping[str, Any]
    materials: tuple[MaterialItem, ...]
    hall: str
    department: str
    suspended_days: int
    actions: tuple[str, ...]
    timeline: tuple[TimelineEntry, ...]
    notifications: tuple[NotificationView, ...]
    bundle: BundleView | None = None
    part_of: BundleRef | None = None


CasePage = Page[CaseSummary]


StaffCasePage = Page[StaffCaseItem]


@dataclass(frozen=True)
class FeedEvent:
    """One case event of the provincial feed (办件上报)."""

    event_id: int
    case_no: str
    matter_code: str
    matter_name: str
    department: str
    hall: str
    action: str
    from_status: str | None
    status: str
    at: dt.datetime
    submitted_at: dt.datetime
    promised_days: int
    due_on: dt.date | None


@dataclass(frozen=True)
class Feed:
    """Case events after a cursor, and where to continue."""

    items: tuple[FeedEvent, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class UploadInfo:
    """An uploaded file as its owner sees it."""

    id: uuid.UUID
    filename: str
    size: int
    file_type: str
    sha256: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    in_use: bool


@dataclass(frozen=True)
class MaterialFile:
    """A case material's stored file, for staff to download."""

    case_no: str
    upload_id: uuid.UUID
    file_type: str
    key: str  # in the material store (app.storage)


@dataclass(frozen=True)
class MaterialSpec:
    """A material as a form asks for it: its name, whether it is required and the file types it accepts."""

    name: str
    required: bool
    file_types: tuple[str, ...]


@dataclass(frozen=True)
class FormUploads:
    """A form posted with files: its text fields, the files stored per material and what was refused.

    `errors` names a material whose file was refused (wrong type, too large, empty); `refused` is set
    when the post as a whole stopped (too large together, malformed): what was stored before it is kept.
    """

    fields: Mapping[str, str]
    files: Mapping[str, tuple[UploadInfo, ...]]
    errors: Mapping[str, DomainError]
    refused: DomainError | None = None


@dataclass(frozen=True)
class Draft:
    """An application in the making (H5): what was typed and the files kept per material.

    `lost` names materials whose files expired or were used meanwhile (to be uploaded again).
    """

    fields: Mapping[str, str]
    files: Mapping[str, tuple[UploadInfo, ...]]
    lost: tuple[str, ...] = ()

    def materials(self) -> list[dict[str, Any]]:
        """The files as an application lists them (`MaterialIn`): one item per material with files."""
        return [{"name": name, "upload_ids": [str(u.id) for u in ups]} for name, ups in self.files.items() if ups]
