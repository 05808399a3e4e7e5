"""Typed shapes of the matter catalogue: the guide (实施清单) a version carries, and the import file."""

from __future__ import annotations

import enum
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Section(enum.StrEnum):
    """The seven one-window business sections (业务板块)."""

    investment = "investment"
    commercial = "commercial"
    real_estate = "real_estate"
    social_security = "social_security"
    tax = "tax"
    public_security = "public_security"
    general = "general"


SECTION_NAMES: dict[Section, str] = {
    Section.investment: "投资项目审批",
    Section.commercial: "商事登记",
    Section.real_estate: "不动产登记",
    Section.social_security: "社会保障",
    Section.tax: "税费缴纳",
    Section.public_security: "公安服务",
    Section.general: "其他综合服务",
}


class MatterType(enum.StrEnum):
    """Kinds of government service matters (事项类型)."""

    license = "license"
    confirmation = "confirmation"
    payment = "payment"
    levy = "levy"
    ruling = "ruling"
    reward = "reward"
    other_power = "other_power"
    public_service = "public_service"
    bundle = "bundle"  # 一件事 / 主题服务: several matters applied for once (see Bundle)


MATTER_TYPE_NAMES: dict[MatterType, str] = {
    MatterType.license: "行政许可",
    MatterType.confirmation: "行政确认",
    MatterType.payment: "行政给付",
    MatterType.levy: "行政征收",
    MatterType.ruling: "行政裁决",
    MatterType.reward: "行政奖励",
    MatterType.other_power: "其他行政权力",
    MatterType.public_service: "公共服务",
    MatterType.bundle: "一件事（主题服务）",
}


class MaterialForm(enum.StrEnum):
    """Whether a material is handed in as an original, a copy, both, or electronically."""

    original = "original"
    copy = "copy"
    original_and_copy = "original_and_copy"
    electronic = "electronic"


MATERIAL_FORM_NAMES: dict[MaterialForm, str] = {
    MaterialForm.original: "原件",
    MaterialForm.copy: "复印件",
    MaterialForm.original_and_copy: "原件及复印件",
    MaterialForm.electronic: "电子材料",
}

FILE_TYPES = frozenset({"pdf", "jpg", "png", "ofd", "doc", "docx", "xls", "xlsx"})
MATTER_CODE_RE = re.compile(r"^[0-9A-Z][0-9A-Z\-]{5,39}$")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_]{1,31}$")

Text = Annotated[str, Field(min_length=1, max_length=2000)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Material(_Strict):
    """One material (申请材料) a citizen provides."""

    name: ShortText
    form: MaterialForm = MaterialForm.original
    copies: int = Field(default=1, ge=1, le=20)
    required: bool = True
    file_types: tuple[str, ...] = ("pdf", "jpg", "png")
    source: str = Field(default="申请人自备", max_length=200)
    example: str = Field(default="", max_length=500)
    notes: str = Field(default="", max_length=1000)
    members: tuple[str, ...] = ()  # in a bundle: the member matters this one upload serves

    @field_validator("file_types")
    @classmethod
    def _known_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - FILE_TYPES)
        if unknown:
            raise ValueError(f"不支持的文件类型: {', '.join(unknown)}")
        if not value:
            raise ValueError("至少允许一种文件类型")
        return tuple(dict.fromkeys(value))


class Step(_Strict):
    """One step of the procedure (办理流程): who does it and how long it takes."""

    name: ShortText
    actor: ShortText
    days: int = Field(default=0, ge=0, le=365)
    description: str = Field(default="", max_length=1000)


class Fee(_Strict):
    """A fee item with its standard in fen and its legal basis."""

    name: ShortText
    amount_fen: int = Field(ge=0, le=10**10)
    basis: str = Field(default="", max_length=500)
    notes: str = Field(default="", max_length=500)


class SpecialProcedure(_Strict):
    """A special procedure (特殊环节) excluded from the time limit."""

    name: ShortText
    max_days: int = Field(ge=0, le=365)


class Faq(_Strict):
    """A frequently asked question and its answer."""

    question: Text
    answer: Text


class BundleStage(_Strict):
    """One stage of a bundle: member matters that run in parallel once the stage before is decided."""

    name: ShortText
    matters: tuple[Annotated[str, Field(pattern=MATTER_CODE_RE.pattern)], ...] = Field(min_length=1, max_length=20)
    promised_days: int = Field(ge=0, le=365)


class BundleCap(_Strict):
    """A legal cap over some stages together, e.g. the first four stages of investment approval ≤ 48 working days."""

    name: ShortText
    stages: tuple[Annotated[int, Field(ge=1, le=20)], ...] = Field(min_length=1)
    days: int = Field(ge=0, le=365)


class Bundle(_Strict):
    """What makes a guide a bundle (一件事): its stages in order and an optional cap over some of them."""

    stages: tuple[BundleStage, ...] = Field(min_length=1, max_length=20)
    cap: BundleCap | None = None

    def members(self) -> list[str]:
        """Every member matter, stage by stage."""
        return [code for stage in self.stages for code in stage.matters]


class Guide(_Strict):
    """The content of one version of a matter: every 实施清单 element."""

    name: ShortText
    type: MatterType
    section: Section
    department: Annotated[str, Field(min_length=1, max_length=40)]
    hall: Annotated[str, Field(min_length=1, max_length=40)]
    counter: str = Field(default="", max_length=200)
    summary: str = Field(default="", max_length=1000)
    legal_basis: Text
    conditions: tuple[Text, ...] = Field(min_length=1)
    materials: tuple[Material, ...] = ()
    steps: tuple[Step, ...] = Field(min_length=1)
    legal_limit_days: int = Field(ge=0, le=365)
    promised_limit_days: int = Field(ge=0, le=365)
    special_procedures: tuple[SpecialProcedure, ...] = ()
    fees: tuple[Fee, ...] = ()
    visits: int = Field(ge=0, le=10)
    online_depth: int = Field(ge=1, le=4)
    booking: bool = True
    online_apply: bool = False
    apply_loa: int = Field(default=2, ge=2, le=3)  # level of assurance an online application needs (3 = real name)
    postal_delivery: bool = False
    consult_phone: Annotated[str, Field(min_length=3, max_length=40)]
    complaint_phone: Annotated[str, Field(min_length=3, max_length=40)]
    faq: tuple[Faq, ...] = ()
    bundle: Bundle | None = None  # set for a bundle (一件事): the guide's department is the lead department

    @model_validator(mode="after")
    def _rules(self) -> Guide:
        if self.promised_limit_days > self.legal_limit_days:
            raise ValueError("承诺时限不得超过法定时限")
        names = [m.name for m in self.materials]
        if len(names) != len(set(names)):
            raise ValueError("申请材料名称重复")
        if self.online_apply and self.online_depth < 3:
            raise ValueError("支持网上申报的事项网办深度不得低于 3")
        if (self.type is MatterType.bundle) != (self.bundle is not None):
            raise ValueError("「一件事」类型的事项须列出办理阶段，其他事项不得列出")
        if self.bundle is None:
            if any(m.members for m in self.materials):
                raise ValueError("只有「一件事」的材料可以注明所属成员事项")
            return self
        return _bundle_rules(self, self.bundle)


def _bundle_rules(guide: Guide, bundle: Bundle) -> Guide:
    """What a bundle's own content must agree with (its members' limits are checked against the catalogue)."""
    members = bundle.members()
    if len(members) != len(set(members)):
        raise ValueError("同一成员事项只能出现在一个阶段中")
    total = sum(stage.promised_days for stage in bundle.stages)
    if guide.promised_limit_days != total:
        raise ValueError(
            f"承诺时限（{guide.promised_limit_days} 个工作日）应等于各阶段承诺时限之和（{total} 个工作日）"
        )
    for material in guide.materials:
        if not material.members:
            raise ValueError(f"材料「{material.name}」须注明用于哪些成员事项")
        strangers = [code for code in material.members if code not in members]
        if strangers:
            raise ValueError(f"材料「{material.name}」所注事项不是本「一件事」的成员：{'、'.join(strangers)}")
    if bundle.cap is not None:
        beyond = [n for n in bundle.cap.stages if n > len(bundle.stages)]
        if beyond:
            raise ValueError(f"时限上限所列阶段不存在：第 {'、'.join(map(str, beyond))} 阶段")
        capped = sum(bundle.stages[n - 1].promised_days for n in set(bundle.cap.stages))
        if capped > bundle.cap.days:
            raise ValueError(f"{bundle.cap.name}承诺合计 {capped} 个工作日，超过上限 {bundle.cap.days} 个工作日")
    return guide


class MatterEntry(Guide):
    """One matter in an import file: its code plus the guide content."""

    code: Annotated[str, Field(pattern=MATTER_CODE_RE.pattern)]
    retired: bool = False
    successor: str | None = None


class Department(_Strict):
    """A department (实施主体)."""

    code: Annotated[str, Field(pattern=SLUG_RE.pattern)]
    name: ShortText
    phone: str = Field(default="", max_length=40)


class Hall(_Strict):
    """A service hall (政务服务大厅) or sub-hall."""

    code: Annotated[str, Field(pattern=SLUG_RE.pattern)]
    name: ShortText
    kind: Annotated[str, Field(pattern=r"^(main|sub)$")] = "main"
    address: ShortText
    phone: Annotated[str, Field(min_length=3, max_length=40)]
    hours: ShortText
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)


class CatalogueFile(BaseModel):
    """The import/export file: departments, halls and matters (entries are validated one by one)."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    departments: list[dict] = []
    halls: list[dict] = []
    matters: list[dict] = []
