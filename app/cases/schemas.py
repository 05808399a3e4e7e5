"""What an online application is made of (申报): the input every channel validates the same way.

The mini-program/app API and the H5 apply form both parse applications with these models, so the
rules they carry (an agent names a principal, EMS needs an address, a company's credit code has a
valid check character, the form stays small) are written once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from app.jsontext import dumps

FORM_MAX_BYTES = 16 * 1024

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9\- ]{6,19}$")]


class PrincipalIn(BaseModel):
    """The person or company an agent applies for (被代办人)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["person", "company"] = "person"
    name: Name
    id_number: Annotated[str, StringConstraints(strip_whitespace=True, min_length=15, max_length=18)] = Field(
        description="身份证号码（个人）或统一社会信用代码（企业）"
    )
    phone: Phone | None = None

    @model_validator(mode="after")
    def _company_code(self) -> PrincipalIn:
        if self.kind == "company" and not uscc_ok(self.id_number):
            raise ValueError("统一社会信用代码不正确")
        return self


class ApplicantIn(BaseModel):
    """Who applies: the signed-in citizen themself, or an agent for a principal (代办)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["self", "agent"] = "self"
    name: Name | None = Field(default=None, description="申请人姓名（未实名认证时必填）")
    id_number: str | None = Field(default=None, max_length=18, description="申请人身份证号码（未实名认证时必填）")
    phone: Phone | None = None
    principal: PrincipalIn | None = None

    @model_validator(mode="after")
    def _agent_names_principal(self) -> ApplicantIn:
        if self.kind == "agent" and self.principal is None:
            raise ValueError("代办申请须填写被代办人（principal）")
        if self.kind == "self" and self.principal is not None:
            raise ValueError("本人申请不应填写 principal")
        return self


class MaterialIn(BaseModel):
    """The files handed in for one material of the guide."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    upload_ids: list[Annotated[str, StringConstraints(max_length=64)]] = Field(min_length=1, max_length=10)


class AddressIn(BaseModel):
    """Where EMS delivers the result."""

    model_config = ConfigDict(extra="forbid")
    name: Name
    phone: Phone
    region: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=60)] = Field(
        description="省市区，如 湖南省张家界市永定区"
    )
    detail: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=120)]


class DeliveryIn(BaseModel):
    """How the result reaches the applicant: at the window, or by EMS to an address."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["window", "ems"] = "window"
    address: AddressIn | None = None

    @model_validator(mode="after")
    def _ems_needs_address(self) -> DeliveryIn:
        if self.method == "ems" and self.address is None:
            raise ValueError("邮寄送达须填写收件地址")
        return self


class CaseIn(BaseModel):
    """An online application."""

    model_config = ConfigDict(extra="forbid")
    matter_code: str = Field(min_length=1, max_length=40)
    applicant: ApplicantIn = Field(default_factory=ApplicantIn)
    form: dict[str, Any] = Field(default_factory=dict, description="申请表内容（JSON 对象，不超过 16 KB）")
    materials: list[MaterialIn] = Field(default_factory=list, max_length=50)
    delivery: DeliveryIn = Field(default_factory=DeliveryIn)

    @field_validator("form")
    @classmethod
    def _small_form(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(dumps(value)) > FORM_MAX_BYTES:
            raise ValueError("申请表内容超过 16 KB")
        return value


class ResubmitIn(BaseModel):
    """The materials a 补正 asked for."""

    model_config = ConfigDict(extra="forbid")
    materials: list[MaterialIn] = Field(min_length=1, max_length=50)


_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc_ok(code: str) -> bool:
    """GB 32100-2015 check character of a unified social credit code (统一社会信用代码)."""
    code = code.strip().upper()
    if len(code) != 18 or any(ch not in _USCC_CHARS for ch in code):
        return False
    total = sum(_USCC_CHARS.index(ch) * w for ch, w in zip(code[:17], _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31] == code[17]
