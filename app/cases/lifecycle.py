"""The case state machine: which action moves a case from which status to which, and who may take it.

One table, read by the service (to refuse an illegal move with 409 naming the current status), by
the staff API (which actions a case offers now) and by the tests (every legal and illegal move).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.cases.types import CaseStatus as S

CLERK, REVIEWER, ADMIN, CITIZEN, SYSTEM = "clerk", "reviewer", "admin", "citizen", "system"
STAFF = frozenset({CLERK, REVIEWER, ADMIN})
# What kind of case a move applies to: a single matter's, a bundle application (一件事: the one window
# accepts it once, delivers once, and its decision follows from its parts) or a member's part of one.
SINGLE, BUNDLE, PART = "single", "bundle", "part"
_INTAKE_KINDS = {SINGLE, BUNDLE}
_REVIEW_KINDS = {SINGLE, PART}


@dataclass(frozen=True)
class Move:
    """An action: the statuses it starts from, where it leads and who may take it."""

    action: str
    sources: frozenset[S]
    target: S | None  # None: back to the status a suspension interrupted
    roles: frozenset[str]
    label: str  # what the timeline shows
    kinds: frozenset[str]


def _m(action: str, sources: set[S], target: S | None, roles: set[str], label: str, kinds: set[str]) -> Move:
    return Move(action, frozenset(sources), target, frozenset(roles), label, frozenset(kinds))


_INTAKE = {S.submitted, S.resubmitted}
MOVES: dict[str, Move] = {
    m.action: m
    for m in (
        _m("submit", set(), S.submitted, {CITIZEN}, "提交申请", _INTAKE_KINDS),
        _m("accept", _INTAKE, S.accepted, {CLERK, REVIEWER, ADMIN}, "已受理", _INTAKE_KINDS),
        _m("reject", _INTAKE, S.rejected, {CLERK, REVIEWER, ADMIN}, "不予受理", _INTAKE_KINDS),
        _m("require_correction", _INTAKE, S.correction_required, {CLERK, REVIEWER, ADMIN}, "需补正材料", _INTAKE_KINDS),
        # A part's department asks for more after acceptance: the part's clock stops until the citizen answers.
        _m(
            "request_correction",
            {S.accepted, S.under_review},
            S.correction_required,
            {REVIEWER, ADMIN},
            "部门要求补正（暂停计时）",
            {PART},
        ),
        _m("resubmit", {S.correction_required}, S.resubmitted, {CITIZEN}, "已补正材料", {SINGLE, BUNDLE, PART}),
        _m(
            "withdraw",
            {S.submitted, S.correction_required, S.resubmitted},
            S.withdrawn,
            {CITIZEN},
            "申请人撤回",
            _INTAKE_KINDS,
        ),
        _m("start_review", {S.accepted}, S.under_review, {REVIEWER, ADMIN}, "审查中", _REVIEW_KINDS),
        _m(
            "suspend",
            {S.accepted, S.under_review},
            S.suspended,
            {REVIEWER, ADMIN},
            "特殊环节（暂停计时）",
            _REVIEW_KINDS,
        ),
        _m("resume", {S.suspended}, None, {REVIEWER, ADMIN}, "恢复办理", _REVIEW_KINDS),
        _m("approve", {S.under_review}, S.approved, {REVIEWER, ADMIN}, "审批通过", _REVIEW_KINDS),
        _m("deny", {S.under_review}, S.denied, {REVIEWER, ADMIN}, "不予许可", _REVIEW_KINDS),
        # A bundle moves by itself as its parts are decided: the next stage opens, or the whole is decided.
        _m("open_stage", {S.accepted, S.under_review}, S.under_review, {SYSTEM}, "进入下一阶段", {BUNDLE}),
        _m("conclude", {S.accepted, S.under_review}, None, {SYSTEM}, "各部门办理完毕", {BUNDLE}),
        _m("deliver", {S.approved, S.denied}, S.delivered, {CLERK, REVIEWER, ADMIN}, "已送达", _INTAKE_KINDS),
        _m("complete", {S.delivered}, S.completed, {CLERK, REVIEWER, ADMIN}, "已办结", _INTAKE_KINDS),
        # A part's result goes out with the bundle's: delivered and completed together.
        _m("deliver_with_bundle", {S.approved, S.denied}, S.delivered, {SYSTEM}, "随「一件事」统一送达", {PART}),
        _m("complete_with_bundle", {S.delivered}, S.completed, {SYSTEM}, "随「一件事」办结", {PART}),
    )
}
STAFF_ACTIONS = tuple(a for a, m in MOVES.items() if m.roles & STAFF)
TERMINAL = frozenset({S.rejected, S.withdrawn, S.completed})
# The promised time runs from acceptance to the decision being delivered; a suspension stops it.
CLOCK_RUNNING = frozenset({S.accepted, S.under_review, S.approved, S.denied})
# A bundle's part is done when decided: its result goes out with the bundle's, on the bundle's clock.
PART_CLOCK_RUNNING = frozenset({S.accepted, S.under_review})
OPEN = frozenset(set(S) - TERMINAL)

STATUS_NAMES: dict[S, str] = {
    S.submitted: "已提交，待受理",
    S.accepted: "已受理",
    S.rejected: "不予受理",
    S.correction_required: "待补正材料",
    S.resubmitted: "已补正，待受理",
    S.under_review: "审查中",
    S.suspended: "特殊环节（暂停计时）",
    S.approved: "审批通过，待送达",
    S.denied: "不予许可，待送达",
    S.delivered: "已送达",
    S.completed: "已办结",
    S.withdrawn: "已撤回",
}


def allowed(action: str, status: S, role: str, kind: str = SINGLE) -> bool:
    """Whether `role` may take `action` on a case of `kind` in `status`."""
    move = MOVES.get(action)
    return move is not None and status in move.sources and role in move.roles and kind in move.kinds


def actions_for(status: S, role: str, kind: str = SINGLE) -> list[str]:
    """The actions a role may take on a case of `kind` in this status, in table order."""
    return [a for a, m in MOVES.items() if status in m.sources and role in m.roles and kind in m.kinds]
