"""Guide and MatterEntry validation: every 实施清单 rule the schema enforces."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.errors import pydantic_details
from app.matters.schemas import FILE_TYPES, Guide, Material, MatterEntry
from tests import factories


def reasons(exc_info: pytest.ExceptionInfo[ValidationError]) -> dict[str, list[str]]:
    """Field path -> reasons, as the API reports them."""
    return pydantic_details(exc_info.value)["fields"]


def test_factory_guide_is_valid():
    guide = Guide.model_validate(factories.guide())
    assert guide.name == "营业执照设立登记"
    assert guide.promised_limit_days <= guide.legal_limit_days
    assert [m.name for m in guide.materials] == ["公司登记（备案）申请书", "居民身份证"]


def test_defaults_are_filled_in():
    guide = Guide.model_validate(factories.guide(materials=[{"name": "申请书"}]))
    material = guide.materials[0]
    assert material.form == "original"
    assert material.copies == 1
    assert material.required is True
    assert material.file_types == ("pdf", "jpg", "png")
    assert material.source == "申请人自备"


def test_promised_limit_above_legal_limit_is_rejected():
    with pytest.raises(ValidationError) as exc:
        Guide.model_validate(factories.guide(legal_limit_days=5, promised_limit_days=6))
    assert reasons(exc) == {"__root__": ["承诺时限不得超过法定时限"]}


def test_promised_limit_equal_to_legal_limit_is_allowed():
    guide = Guide.model_validate(factories.guide(legal_limit_days=5, promised_limit_days=5))
    assert guide.promised_limit_days == 5


@pytest.mark.parametrize("visits", [-1, -10, 11])
def test_visits_out_of_range_is_rejected(visits):
    with pytest.raises(ValidationError) as exc:
        Guide.model_validate(factories.guide(visits=visits))
    assert list(reasons(exc)) == ["visits"]


@pytest.mark.parametrize("visits", [0, 1, 10])
def test_visits_in_range(visits):
    assert Guide.model_validate(factories.guide(visits=visits)).visits == visits


@pytest.mark.parametrize("depth", [0, 5, -1])
def test_online_depth_outside_1_to_4_is_rejected(depth):
    with pytest.raises(ValidationError) as exc:
        Guide.model_validate(factories.guide(online_depth=depth, online_apply=False))
    assert list(reasons(exc)) == ["online_depth"]


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_online_depth_1_to_4_without_online_apply(depth):
    assert Guide.model_validate(factories.guide(online_depth=depth, online_apply=False)).online_depth == depth


@pytest.mark.parametrize("depth", [1, 2])
def test_online_apply_needs_depth_3(depth):
    with pytest.raises(ValidationError) as exc:
        Guide.model_validate(factories.guide(online_depth=depth, online_apply=True))
    assert reasons(exc) == {"__root__": ["支持网上申报的事项网办深度不得低于 3"]}


@pytest.mark.parametrize("depth", [3, 4])
def test_online_apply_with_depth_3_or_more(depth):
    guide = Guide.model_validate(factories.guide(online_depth=depth, online_apply=True))
    assert guide.online_apply is True


def test_duplicate_material_names_are_rejected():
    materials = [{"name": "居民身份证"}, {"name": "申请书"}, {"name": "居民身份证", "form": "copy"}]
    with pytest.raises(ValidationError) as exc:
        Guide.model_validate(factories.guide(materials=materials))
    assert reasons(exc) == {"__root__": ["申请材料名称重复"]}


def test_material_names_differing_only_by_whitespace_are_duplicates():
    materials = [{"name": "居民身份证"}, {"name": "  居民身份证 "}]
    with pytest.raises(ValidationError) as exc:
        Guide.model_validate(factories.guide(materials=materials))
    assert reasons(exc) == {"__root__": ["申请材料名称重复"]}


def test_unknown_file_type_is_rejected_and_named():
    materials = [{"name": "申请书", "file_types": ["pdf", "exe", "bat"]}]
    with pytest.raises(ValidationError) as exc:
        Guide.model_validate(factories.guide(materials=materials))
    assert reasons(exc) == {"materials.0.file_types": ["不支持的文件类型: bat, exe"]}


def test_empty_file_types_are_rejected():
    with pytest.raises(ValidationError) as exc:
        Material.model_validate({"name": "申请书", "file_types": []})
    assert reasons(exc) == {"file_types": ["至少允许一种文件类型"]}


def test_every_known_file_type_is_accepted_and_duplicates_collapse():
    material = Material.model_validate({"name": "申请书", "file_types": [*sorted(FILE_TYPES), "pdf"]})
    assert set(material.file_types) == FILE_TYPES
    assert len(material.file_types) == len(FILE_TYPES)


def test_unknown_top_level_field_is_rejected():
    with pytest.raises(ValidationError) as exc:
        Guide.model_validate(factories.guide(colour="red"))
    assert list(reasons(exc)) == ["colour"]


def test_unknown_nested_field_is_rejected():
    with pytest.raises(ValidationError) as exc:
        Guide.model_validate(factories.guide(steps=[{"name": "受理", "actor": "窗口", "hours": 2}]))
    assert reasons(exc)["steps.0.hours"]


def test_unknown_enum_values_are_rejected():
    with pytest.raises(ValidationError) as exc:
        Guide.model_validate(factories.guide(section="bogus", type="permit"))
    assert set(reasons(exc)) == {"section", "type"}


@pytest.mark.parametrize("field", ["name", "legal_basis", "conditions", "steps", "consult_phone", "department"])
def test_required_fields(field):
    data = factories.guide()
    del data[field]
    with pytest.raises(ValidationError) as exc:
        Guide.model_validate(data)
    assert field in reasons(exc)


@pytest.mark.parametrize("field", ["conditions", "steps"])
def test_conditions_and_steps_need_at_least_one_item(field):
    with pytest.raises(ValidationError) as exc:
        Guide.model_validate(factories.guide(**{field: []}))
    assert field in reasons(exc)


def test_negative_fee_is_rejected():
    with pytest.raises(ValidationError) as exc:
        Guide.model_validate(factories.guide(fees=[{"name": "工本费", "amount_fen": -1}]))
    assert list(reasons(exc)) == ["fees.0.amount_fen"]


def test_every_error_is_reported_not_just_the_first():
    with pytest.raises(ValidationError) as exc:
        Guide.model_validate(factories.guide(visits=-1, online_depth=9, name="", colour="red"))
    assert {"visits", "online_depth", "name", "colour"} <= set(reasons(exc))


def test_guide_is_immutable():
    guide = Guide.model_validate(factories.guide())
    with pytest.raises(ValidationError):
        guide.name = "别的名字"


# ---------------------------------------------------------------- MatterEntry


@pytest.mark.parametrize("code", ["4308-XK-SS-001", "123456", "A" * 40, "11430800MB1234567X"])
def test_good_matter_codes(code):
    assert MatterEntry.model_validate(factories.entry(code)).code == code


@pytest.mark.parametrize(
    "code",
    [
        "",
        "12345",  # too short
        "A" * 41,  # too long
        "4308-xk-ss-001",  # lower case
        "-4308-XK",  # leading hyphen
        "4308 XK SS",  # spaces inside
        "4308_XK_SS",  # underscore
        "营业执照设立登记",  # Chinese
        "4308-XK-SS-001'; DROP TABLE matter; --",
        "4308-XK\n-1",
    ],
)
def test_bad_matter_codes(code):
    with pytest.raises(ValidationError) as exc:
        MatterEntry.model_validate(factories.entry(code))
    assert "code" in reasons(exc)


def test_surrounding_whitespace_of_a_code_is_stripped():
    assert MatterEntry.model_validate(factories.entry(" 4308-XK-SS-001\n")).code == "4308-XK-SS-001"


def test_entry_without_code_is_rejected():
    with pytest.raises(ValidationError) as exc:
        MatterEntry.model_validate(factories.guide())
    assert "code" in reasons(exc)


def test_entry_keeps_guide_rules():
    with pytest.raises(ValidationError) as exc:
        MatterEntry.model_validate(factories.entry("4308-XK-SS-001", legal_limit_days=1, promised_limit_days=2))
    assert reasons(exc) == {"__root__": ["承诺时限不得超过法定时限"]}


def test_entry_rejects_extra_fields():
    with pytest.raises(ValidationError) as exc:
        MatterEntry.model_validate(factories.entry("4308-XK-SS-001", replaced_by="4308-XK-SS-002"))
    assert list(reasons(exc)) == ["replaced_by"]


def test_entry_retirement_fields():
    entry = MatterEntry.model_validate(factories.entry("4308-XK-SS-001", retired=True, successor="4308-XK-SS-002"))
    assert entry.retired is True
    assert entry.successor == "4308-XK-SS-002"
    plain = MatterEntry.model_validate(factories.entry("4308-XK-SS-001"))
    assert plain.retired is False
    assert plain.successor is None
