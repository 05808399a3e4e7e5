"""The audit log's search filters, as the admin API and the console accept them."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from app.audit import service as audit


class AuditFilter(BaseModel):
    """Search filters of the audit log (every one optional)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, str_strip_whitespace=True)
    actor: str | None = Field(default=None, max_length=100, description="操作人（staff:<id> 或姓名）")
    action: str | None = Field(
        default=None, max_length=64, description="操作（如 case.accept，或 case 表示全部办件操作）"
    )
    object_type: str | None = Field(default=None, max_length=32, description="对象类型（case、matter、code…）")
    object_id: str | None = Field(default=None, max_length=100, description="对象编号")
    date_from: dt.date | None = Field(default=None, alias="from", description="起始日期（含）")
    date_to: dt.date | None = Field(default=None, alias="to", description="结束日期（含）")

    def query(self) -> audit.AuditQuery:
        """The service's filters; empty strings mean no filter."""
        return audit.AuditQuery(
            actor=self.actor or None,
            action=self.action or None,
            object_type=self.object_type or None,
            object_id=self.object_id or None,
            since=self.date_from,
            until=self.date_to,
        )


class AuditSearch(AuditFilter):
    """Filters and the page."""

    page: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=50, ge=1, le=200)
