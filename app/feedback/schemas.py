"""What a citizen sends to ask and to rate: the input every channel validates the same way (question
length, the five levels, tags from the list, comment length)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.feedback.ratings import TAG_LIST, TAGS
from app.feedback.types import SubjectType


class QuestionIn(BaseModel):
    """A question about the matter."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    text: str = Field(min_length=5, max_length=500, description="咨询内容（5–500 字）")


class RatingIn(BaseModel):
    """A rating: five levels, tags from the list, an optional comment."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    subject_type: SubjectType = Field(
        description="case 办件（办件编号）/ visit 窗口签到（签到 id）/ consultation 咨询（咨询 id）"
    )
    subject_id: str = Field(min_length=1, max_length=64)
    level: int = Field(ge=1, le=5, description="5 非常满意 4 满意 3 基本满意 2 不满意 1 非常不满意")
    tags: list[str] = Field(
        default_factory=list, max_length=5, description="评价标签（最多 5 个）：" + "、".join(TAG_LIST)
    )
    comment: str = Field(default="", max_length=500)

    @field_validator("tags")
    @classmethod
    def _known_tags(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in TAGS]
        if unknown:
            # Whoever sent it (a tampered form, an old app) learns what is accepted.
            raise ValueError(f"未知的评价标签：{'、'.join(unknown)}；可选标签：{'、'.join(TAG_LIST)}")
        return value


class AddendumIn(BaseModel):
    """What the citizen adds to a rating (once)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    comment: Annotated[str, StringConstraints(min_length=1, max_length=500)]
