"""The case state machine (app/cases/lifecycle.py) against the documented moves, written out here by hand.

Every action × every status × every role: `allowed()` says yes exactly where the table below does, and
`actions_for()` lists exactly those actions, in table order. The table is the specification, not a copy
of `MOVES`: a move added, dropped or widened in the app fails here.
"""

from __future__ import annotations

import pytest

from app.cases import lifecycle
from app.cases.lifecycle import actions_for, allowed
from app.cases.models import CaseStatus


@pytest.fixture(autouse=True)
def clean() -> None:
    """Pure table checks: override the suite-wide database reset, these tests touch no database."""


STATUSES = (
    "submitted",
    "accepted",
    "rejected",
    "correction_required",
    "resubmitted",
    "under_review",
    "suspended",
    "approved",
    "denied",
    "delivered",
    "completed",
    "withdrawn",
)
ROLES = ("clerk", "reviewer", "admin", "citizen", "system")
KINDS = ("single", "bundle", "part")
STAFF = frozenset({"clerk", "reviewer", "admin"})
SENIOR = frozenset({"reviewer", "admin"})
CITIZEN = frozenset({"citizen"})
SYSTEM = frozenset({"system"})
INTAKE = frozenset({"single", "bundle"})  # a bundle (一件事) is accepted, delivered and completed as one
REVIEW = frozenset({"single", "part"})  # … and reviewed through its parts, one per member matter
ANY = frozenset(KINDS)

# action -> (statuses it starts from, roles that may take it, kinds of case); in the order the table lists them.
EXPECTED: dict[str, tuple[frozenset[str], frozenset[str], frozenset[str]]] = {
    "submit": (frozenset(), CITIZEN, INTAKE),  # creates a case: never a move from a status
    "accept": (frozenset({"submitted", "resubmitted"}), STAFF, INTAKE),
    "reject": (frozenset({"submitted", "resubmitted"}), STAFF, INTAKE),
    "require_correction": (frozenset({"submitted", "resubmitted"}), STAFF, INTAKE),
    "request_correction": (frozenset({"accepted", "under_review"}), SENIOR, frozenset({"part"})),
    "resubmit": (frozenset({"correction_required"}), CITIZEN, ANY),
    "withdraw": (frozenset({"submitted", "correction_required", "resubmitted"}), CITIZEN, INTAKE),
    "start_review": (frozenset({"accepted"}), SENIOR, REVIEW),
    "suspend": (frozenset({"accepted", "under_review"}), SENIOR, REVIEW),
    "resume": (frozenset({"suspended"}), SENIOR, REVIEW),
    "approve": (frozenset({"under_review"}), SENIOR, REVIEW),
    "deny": (frozenset({"under_review"}), SENIOR, REVIEW),
    "open_stage": (frozenset({"accepted", "under_review"}), SYSTEM, frozenset({"bundle"})),
    "conclude": (frozenset({"accepted", "under_review"}), SYSTEM, frozenset({"bundle"})),
    "deliver": (frozenset({"approved", "denied"}), STAFF, INTAKE),
    "complete": (frozenset({"delivered"}), STAFF, INTAKE),
    "deliver_with_bundle": (frozenset({"approved", "denied"}), SYSTEM, frozenset({"part"})),
    "complete_with_bundle": (frozenset({"delivered"}), SYSTEM, frozenset({"part"})),
}
ORDER = tuple(EXPECTED)


def expected_allowed(action: str, status: str, role: str, kind: str = "single") -> bool:
    sources, roles, kinds = EXPECTED[action]
    return status in sources and role in roles and kind in kinds


def test_the_statuses_are_the_documented_twelve():
    assert {s.value for s in CaseStatus} == set(STATUSES)
    assert len(STATUSES) == 12


def test_the_table_has_exactly_the_documented_actions_in_order():
    assert tuple(lifecycle.MOVES) == ORDER


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("action", ORDER)
def test_allowed_matches_the_documented_table(action: str, kind: str):
    wrong = [
        (status, role, allowed(action, CaseStatus(status), role, kind))
        for status in STATUSES
        for role in ROLES
        if allowed(action, CaseStatus(status), role, kind) is not expected_allowed(action, status, role, kind)
    ]
    assert wrong == [], f"{action}: (status, role, allowed() said) disagreeing with the documented table"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("role", ROLES)
def test_actions_for_lists_the_documented_actions_in_table_order(status: str, role: str, kind: str):
    expected = [a for a in ORDER if expected_allowed(a, status, role, kind)]
    assert actions_for(CaseStatus(status), role, kind) == expected


def test_a_single_case_is_the_default_kind():
    for status in STATUSES:
        for role in ROLES:
            assert actions_for(CaseStatus(status), role) == actions_for(CaseStatus(status), role, "single")


@pytest.mark.parametrize("role", [*ROLES, "", "auditor", "ADMIN"])
def test_unknown_actions_and_roles_are_never_allowed(role: str):
    for status in STATUSES:
        assert not allowed("frobnicate", CaseStatus(status), role)
        assert not allowed("", CaseStatus(status), role)
        if role not in ROLES:
            assert actions_for(CaseStatus(status), role) == []
            assert not any(allowed(a, CaseStatus(status), role) for a in ORDER)


def test_terminal_statuses_offer_nothing_to_anyone():
    for status in ("rejected", "withdrawn", "completed"):
        for role in ROLES:
            assert actions_for(CaseStatus(status), role) == [], (status, role)
    assert {s.value for s in lifecycle.TERMINAL} == {"rejected", "withdrawn", "completed"}
    assert {s.value for s in lifecycle.OPEN} == set(STATUSES) - {"rejected", "withdrawn", "completed"}


@pytest.mark.parametrize("kind", KINDS)
def test_every_open_status_offers_someone_a_way_on(kind: str):
    # A part waits in "resubmitted" never (its correction returns it to where it was); a bundle never
    # waits in "suspended" (its parts pause): those statuses are unreachable for that kind.
    unreachable = {"part": {"submitted", "resubmitted"}, "bundle": {"suspended"}}.get(kind, set())
    for status in set(STATUSES) - {"rejected", "withdrawn", "completed"} - unreachable:
        assert any(actions_for(CaseStatus(status), role, kind) for role in ROLES), (kind, status)


def test_staff_actions_are_the_ones_staff_may_take():
    assert lifecycle.STAFF_ACTIONS == (
        "accept",
        "reject",
        "require_correction",
        "request_correction",
        "start_review",
        "suspend",
        "resume",
        "approve",
        "deny",
        "deliver",
        "complete",
    )


@pytest.mark.parametrize(
    ("action", "target"),
    [
        ("submit", "submitted"),
        ("accept", "accepted"),
        ("reject", "rejected"),
        ("require_correction", "correction_required"),
        ("request_correction", "correction_required"),
        ("resubmit", "resubmitted"),  # a part's returns to where its correction found it (the service)
        ("withdraw", "withdrawn"),
        ("start_review", "under_review"),
        ("suspend", "suspended"),
        ("resume", None),  # back to whatever the suspension interrupted
        ("approve", "approved"),
        ("deny", "denied"),
        ("open_stage", "under_review"),
        ("conclude", None),  # approved, or denied when a part was denied (the service decides)
        ("deliver", "delivered"),
        ("complete", "completed"),
        ("deliver_with_bundle", "delivered"),
        ("complete_with_bundle", "completed"),
    ],
)
def test_each_action_leads_where_documented(action: str, target: str | None):
    move = lifecycle.MOVES[action]
    assert (move.target.value if move.target else None) == target
    assert move.label  # the timeline shows a label for every action


def test_the_clock_runs_from_acceptance_to_delivery_and_not_while_suspended():
    assert {s.value for s in lifecycle.CLOCK_RUNNING} == {"accepted", "under_review", "approved", "denied"}


def test_every_status_has_a_display_name():
    assert set(lifecycle.STATUS_NAMES) == set(CaseStatus)
    assert all(name.strip() for name in lifecycle.STATUS_NAMES.values())
