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
ROLES = ("clerk", "reviewer", "admin", "citizen")
STAFF = frozenset({"clerk", "reviewer", "admin"})
SENIOR = frozenset({"reviewer", "admin"})
CITIZEN = frozenset({"citizen"})

# action -> (statuses it starts from, roles that may take it); in the order the table lists them.
EXPECTED: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "submit": (frozenset(), CITIZEN),  # creates a case: never a move from a status
    "accept": (frozenset({"submitted", "resubmitted"}), STAFF),
    "reject": (frozenset({"submitted", "resubmitted"}), STAFF),
    "require_correction": (frozenset({"submitted", "resubmitted"}), STAFF),
    "resubmit": (frozenset({"correction_required"}), CITIZEN),
    "withdraw": (frozenset({"submitted", "correction_required", "resubmitted"}), CITIZEN),
    "start_review": (frozenset({"accepted"}), SENIOR),
    "suspend": (frozenset({"accepted", "under_review"}), SENIOR),
    "resume": (frozenset({"suspended"}), SENIOR),
    "approve": (frozenset({"under_review"}), SENIOR),
    "deny": (frozenset({"under_review"}), SENIOR),
    "deliver": (frozenset({"approved", "denied"}), STAFF),
    "complete": (frozenset({"delivered"}), STAFF),
}
ORDER = tuple(EXPECTED)


def expected_allowed(action: str, status: str, role: str) -> bool:
    sources, roles = EXPECTED[action]
    return status in sources and role in roles


def test_the_statuses_are_the_documented_twelve():
    assert {s.value for s in CaseStatus} == set(STATUSES)
    assert len(STATUSES) == 12


def test_the_table_has_exactly_the_documented_actions_in_order():
    assert tuple(lifecycle.MOVES) == ORDER


@pytest.mark.parametrize("action", ORDER)
def test_allowed_matches_the_documented_table(action: str):
    wrong = [
        (status, role, allowed(action, CaseStatus(status), role))
        for status in STATUSES
        for role in ROLES
        if allowed(action, CaseStatus(status), role) is not expected_allowed(action, status, role)
    ]
    assert wrong == [], f"{action}: (status, role, allowed() said) disagreeing with the documented table"


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("role", ROLES)
def test_actions_for_lists_the_documented_actions_in_table_order(status: str, role: str):
    assert actions_for(CaseStatus(status), role) == [a for a in ORDER if expected_allowed(a, status, role)]


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


def test_every_open_status_offers_someone_a_way_on():
    for status in set(STATUSES) - {"rejected", "withdrawn", "completed"}:
        assert any(actions_for(CaseStatus(status), role) for role in ROLES), status


def test_staff_actions_are_the_ones_staff_may_take():
    assert lifecycle.STAFF_ACTIONS == (
        "accept",
        "reject",
        "require_correction",
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
        ("resubmit", "resubmitted"),
        ("withdraw", "withdrawn"),
        ("start_review", "under_review"),
        ("suspend", "suspended"),
        ("resume", None),  # back to whatever the suspension interrupted
        ("approve", "approved"),
        ("deny", "denied"),
        ("deliver", "delivered"),
        ("complete", "completed"),
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
