"""The goal-review chain (domain guide, Link 2) driven through the engine API.

Unit compiles -> competent department checks -> review center (preliminary review) ->
performance section (re-examination) -> third party (key projects only) -> funding section
(final review). Any level can return the goals; the resubmission goes straight back to it.
"""
from __future__ import annotations

import copy

import pytest
from sqlalchemy import select

from engine.demo import sample_goals
from engine.errors import Conflict, InvalidData, PermissionDenied
from storage import queries
from storage.models import Case, ProjectGoals


ALL_USERS = ("admin", "supervisor", "review1", "perf1", "edu_section", "agri_section", "edu_bureau",
             "agri_bureau", "school_unit", "farm_unit", "expert1")

# project code -> (unit user, competent user, funding user, project name)
PROJECTS = {
    "EDU-2027-001": ("school_unit", "edu_bureau", "edu_section", "Campus safety upgrade"),
    "EDU-2027-002": ("school_unit", "edu_bureau", "edu_section", "Smart classroom renovation"),
    "AGR-2027-001": ("farm_unit", "agri_bureau", "agri_section", "High-standard farmland construction"),
    "AGR-2027-002": ("farm_unit", "agri_bureau", "agri_section", "Agricultural technology extension training"),
}

USER_ORG = {"school_unit": "school", "farm_unit": "farm_station", "edu_bureau": "edu_bureau",
            "agri_bureau": "agri_bureau", "edu_section": "edu_funding", "agri_section": "agri_funding"}

STEP_NAMES = {
    "compile_goals": "Compile performance goals",
    "competent_check": "Competent department check",
    "preliminary_review": "Preliminary review",
    "re_examination": "Re-examination",
    "third_party_review": "Third-party opinion",
    "final_review": "Final review",
}
NON_KEY_CHAIN = ["compile_goals", "competent_check", "preliminary_review", "re_examination", "final_review"]
KEY_CHAIN = ["compile_goals", "competent_check", "preliminary_review", "re_examination", "third_party_review",
             "final_review"]
APPROVE = {"decision": "approve", "comment": "Fine."}
PRELIMINARY_APPROVE = {"decision": "approve", "grade": "good", "comment": "Fine."}


def approval_for(step: str) -> dict:
    return dict(PRELIMINARY_APPROVE if step == "preliminary_review" else APPROVE)


class Flow:
    """Drives goal-review cases as the demo users would, reading back through the engine."""

    def __init__(self, core, actor, project_id):
        self.core = core
        self._actor = actor
        self.project_id = project_id
        self._actors = {}

    def actor(self, username: str):
        if username not in self._actors:
            self._actors[username] = self._actor(username)
        return self._actors[username]

    def user_for(self, code: str, step: str) -> str:
        unit, competent, funding, _ = PROJECTS[code]
        return {"compile_goals": unit, "competent_check": competent, "preliminary_review": "review1",
                "re_examination": "perf1", "third_party_review": "expert1", "final_review": funding}[step]

    def start(self, code: str) -> int:
        case = self.core.cases.start(self.actor(PROJECTS[code][0]), "goal_review", self.project_id(code))
        return case.id

    def case(self, case_id: int) -> dict:
        return self.core.reads.case(self.actor("supervisor"), case_id)

    def task(self, case_id: int) -> dict:
        tasks = self.core.reads.case(self.actor("supervisor"), case_id, with_data=False)["tasks"]
        assert len(tasks) == 1, tasks
        return tasks[0]

    def project(self, code: str) -> dict:
        return self.core.reads.project(self.actor("supervisor"), self.project_id(code))

    def complete(self, username: str, task_id: int, data: dict):
        return self.core.cases.complete(self.actor(username), task_id, data)

    def act(self, case_id: int, code: str, step: str, data: dict | None = None):
        """Complete the open task of the case, which must be `step`, as the user of that step."""
        task = self.task(case_id)
        assert task["step"] == step, f"expected {step}, case is at {task['step']}"
        if data is None:
            data = sample_goals(PROJECTS[code][3]) if step == "compile_goals" else approval_for(step)
            if step == "compile_goals" and self.case(case_id)["data"].get("adjustment"):
                data["adjustment_reason"] = "In-year change."     # an adjustment needs its reason
        return self.complete(self.user_for(code, step), task["id"], data)

    def walk(self, case_id: int, code: str, steps: list[str]):
        result = None
        for step in steps:
            result = self.act(case_id, code, step)
        return result

    def inbox_ids(self, username: str, scope: str = "all") -> set[int]:
        rows, total = self.core.reads.inbox(self.actor(username), scope)
        assert total == len(rows)
        return {row["id"] for row in rows}

    def snapshot(self, case_id: int) -> dict:
        """What must not change when an action is refused."""
        with self.core.db.reading() as s:
            row = s.get(Case, case_id)
            lock_version, state, status = row.lock_version, row.state, row.status
        view = self.case(case_id)
        return {"lock_version": lock_version, "state": state, "status": status,
                "open_tasks": [(t["id"], t["step"], t["assignee"]) for t in view["tasks"]],
                "history": len(view["history"]), "data": view["data"]}

    def goal_rows(self, code: str) -> list[ProjectGoals]:
        with self.core.db.reading() as s:
            return list(s.scalars(select(ProjectGoals).where(ProjectGoals.project_id == self.project_id(code))
                                  .order_by(ProjectGoals.version)))


@pytest.fixture
def flow(demo_core, actor, project_id):
    return Flow(demo_core, actor, project_id)


def goal_fields(data: dict) -> dict:
    keys = ("project_overview", "basis", "schedule", "safeguards", "long_term_goal", "annual_goal", "indicators")
    return {k: data[k] for k in keys if k in data}


# ---- happy paths ---------------------------------------------------------------------------

@pytest.mark.parametrize("code", ["EDU-2027-001", "AGR-2027-002"])
def test_non_key_project_walks_the_chain_and_is_approved(flow, actor, code):
    unit, competent, funding, name = PROJECTS[code]
    assert flow.project(code)["goals_status"] == "none"
    case_id = flow.start(code)
    assert flow.project(code)["goals_status"] == "in_review"

    seen = []
    for step in NON_KEY_CHAIN:
        task = flow.task(case_id)
        seen.append((task["step"], task["name"], task["role"], task["org"]))
        result = flow.act(case_id, code, step)
    # Case-scoped roles resolve to the project's organisations; bureau-wide ones to none.
    assert seen == [
        ("compile_goals", "Compile performance goals", "unit", USER_ORG[unit]),
        ("competent_check", "Competent department check", "competent", USER_ORG[competent]),
        ("preliminary_review", "Preliminary review", "review_center", None),
        ("re_examination", "Re-examination", "performance", None),
        ("final_review", "Final review", "funding", USER_ORG[funding]),
    ]
    assert result.case.status == "completed"
    assert result.next_tasks == []
    view = flow.case(case_id)
    assert view["status"] == "completed"
    assert view["tasks"] == []
    assert view["current_steps"] == ""
    assert "third_party_review" not in view["completed_steps"]
    assert "goals_approved" in view["completed_steps"]

    project = flow.project(code)
    assert project["goals_status"] == "approved"
    approved = project["approved_goals"]
    assert approved["version"] == 1
    assert approved["case_id"] == case_id
    assert goal_fields(approved) == sample_goals(name)
    rows = flow.goal_rows(code)
    assert [(r.version, r.case_id) for r in rows] == [(1, case_id)]
    assert rows[0].approved_by_id == actor(funding).id


@pytest.mark.parametrize("code", ["EDU-2027-002", "AGR-2027-001"])
def test_key_project_gets_third_party_opinion_before_final_review(flow, code):
    case_id = flow.start(code)
    flow.walk(case_id, code, ["compile_goals", "competent_check", "preliminary_review"])
    with pytest.raises(PermissionDenied):      # the agency sees only cases it is asked to work on
        flow.core.reads.case(flow.actor("expert1"), case_id)
    result = flow.act(case_id, code, "re_examination")
    assert [(t.step, t.name, t.role, t.org_id) for t in result.next_tasks] == [
        ("third_party_review", "Third-party opinion", "third_party", None)]
    assert flow.inbox_ids("expert1") == {result.next_tasks[0].id}
    assert flow.core.reads.case(flow.actor("expert1"), case_id)["tasks"][0]["step"] == "third_party_review"
    assert flow.inbox_ids(PROJECTS[code][2]) == set()       # the funding section waits
    result = flow.act(case_id, code, "third_party_review")
    assert [t.step for t in result.next_tasks] == ["final_review"]
    result = flow.act(case_id, code, "final_review")
    assert result.case.status == "completed"
    view = flow.case(case_id)
    assert [e["step"] for e in view["history"] if e["action"] == "completed"] == KEY_CHAIN
    assert [e["actor"] for e in view["history"] if e["action"] == "completed"] == [
        flow.user_for(code, step) for step in KEY_CHAIN]
    assert flow.project(code)["goals_status"] == "approved"
    assert flow.project(code)["approved_goals"]["version"] == 1


# ---- returns -------------------------------------------------------------------------------

@pytest.mark.parametrize("level", ["competent_check", "preliminary_review", "re_examination",
                                   "third_party_review", "final_review"])
def test_return_at_each_level_resubmits_straight_to_that_level(flow, level):
    code = "EDU-2027-002"   # a key project, so every level is on the way
    case_id = flow.start(code)
    before = KEY_CHAIN[:KEY_CHAIN.index(level)]
    flow.walk(case_id, code, before)
    comment = f"Returned at {level}: the satisfaction target needs a survey method."
    result = flow.act(case_id, code, level, {"decision": "return", "comment": comment})

    assert result.case.status == "running"
    assert [(t.step, t.name, t.role) for t in result.next_tasks] == [
        ("compile_goals", "Compile performance goals", "unit")]
    back = flow.task(case_id)
    assert back["org"] == "school"
    assert back["id"] in flow.inbox_ids("school_unit")
    assert flow.project(code)["goals_status"] == "in_review"
    opinions = [e["data"] for e in flow.case(case_id)["history"] if e["step"] == level]
    assert opinions[-1] == {"decision": "return", "comment": comment}

    revised = sample_goals(PROJECTS[code][3])
    revised["annual_goal"] = "Revised after the return: renovate 40 classrooms by year end."
    result = flow.act(case_id, code, "compile_goals", revised)
    assert [(t.step, t.name) for t in result.next_tasks] == [(level, STEP_NAMES[level])]

    flow.walk(case_id, code, KEY_CHAIN[KEY_CHAIN.index(level):])
    view = flow.case(case_id)
    assert view["status"] == "completed"
    assert [e["step"] for e in view["history"] if e["action"] == "completed"] == (
        before + [level, "compile_goals"] + KEY_CHAIN[KEY_CHAIN.index(level):])
    approved = flow.project(code)["approved_goals"]
    assert approved["version"] == 1
    assert approved["annual_goal"] == "Revised after the return: renovate 40 classrooms by year end."


def test_later_return_is_not_misrouted_by_an_earlier_one(flow):
    """A level that returned and then approved must not capture a later resubmission."""
    code = "EDU-2027-001"
    case_id = flow.start(code)
    flow.walk(case_id, code, ["compile_goals", "competent_check"])
    flow.act(case_id, code, "preliminary_review", {"decision": "return", "comment": "Add a cost indicator."})
    result = flow.act(case_id, code, "compile_goals")
    assert [t.step for t in result.next_tasks] == ["preliminary_review"]
    flow.walk(case_id, code, ["preliminary_review", "re_examination"])
    flow.act(case_id, code, "final_review", {"decision": "return", "comment": "Targets too low."})
    result = flow.act(case_id, code, "compile_goals")
    assert [t.step for t in result.next_tasks] == ["final_review"]
    flow.act(case_id, code, "final_review")
    assert flow.case(case_id)["status"] == "completed"
    assert flow.project(code)["goals_status"] == "approved"


def test_competent_return_then_resubmission_walks_the_whole_chain_again(flow):
    code = "AGR-2027-002"
    case_id = flow.start(code)
    flow.act(case_id, code, "compile_goals")
    flow.act(case_id, code, "competent_check", {"decision": "return", "comment": "Wrong department plan."})
    result = flow.act(case_id, code, "compile_goals")
    assert [(t.step, t.role) for t in result.next_tasks] == [("competent_check", "competent")]
    flow.walk(case_id, code, ["competent_check", "preliminary_review", "re_examination", "final_review"])
    assert flow.project(code)["goals_status"] == "approved"


# ---- final reject --------------------------------------------------------------------------

def test_final_reject_ends_the_case_and_marks_goals_rejected(flow):
    code = "EDU-2027-001"
    case_id = flow.start(code)
    flow.walk(case_id, code, NON_KEY_CHAIN[:-1])
    result = flow.act(case_id, code, "final_review", {"decision": "reject", "comment": "No budget this year."})
    assert result.case.status == "completed"
    assert result.next_tasks == []
    project = flow.project(code)
    assert project["goals_status"] == "rejected"
    assert project["approved_goals"] is None
    assert flow.goal_rows(code) == []
    view = flow.case(case_id)
    assert "goals_rejected" in view["completed_steps"]
    assert "goals_approved" not in view["completed_steps"]
    assert view["history"][-1]["action"] == "finished"
    assert view["history"][-1]["data"] == {"end": "Goals rejected"}


def test_reject_needs_an_opinion(flow):
    code = "EDU-2027-001"
    case_id = flow.start(code)
    flow.walk(case_id, code, NON_KEY_CHAIN[:-1])
    task = flow.task(case_id)
    with pytest.raises(InvalidData) as err:
        flow.complete("edu_section", task["id"], {"decision": "reject"})
    assert err.value.details == {"comment": "This field is required."}
    assert flow.task(case_id)["id"] == task["id"]


def test_rejecting_a_later_change_keeps_the_goals_approved_earlier(flow):
    code = "EDU-2027-001"
    first = flow.start(code)
    flow.walk(first, code, NON_KEY_CHAIN)
    second = flow.start(code)
    flow.walk(second, code, NON_KEY_CHAIN[:-1])
    flow.act(second, code, "final_review", {"decision": "reject", "comment": "Change not justified."})
    project = flow.project(code)
    assert project["goals_status"] == "approved"
    assert project["approved_goals"]["version"] == 1
    assert project["approved_goals"]["case_id"] == first


# ---- inboxes -------------------------------------------------------------------------------

def test_each_step_is_in_the_inbox_of_its_holders_only(flow):
    edu = flow.start("EDU-2027-001")
    agr = flow.start("AGR-2027-002")
    for step in NON_KEY_CHAIN:
        tasks = {code: flow.task(case_id) for code, case_id in (("EDU-2027-001", edu), ("AGR-2027-002", agr))}
        for username in ALL_USERS:
            ids = flow.inbox_ids(username)
            for code, task in tasks.items():
                expected = username == flow.user_for(code, step)
                assert (task["id"] in ids) == expected, (step, code, username)
        flow.act(edu, "EDU-2027-001", step)
        flow.act(agr, "AGR-2027-002", step)
    for username in ALL_USERS:
        assert flow.inbox_ids(username) == set()


def test_agriculture_bureau_never_sees_education_tasks(flow):
    code = "EDU-2027-002"
    case_id = flow.start(code)
    for step in KEY_CHAIN:
        assert flow.inbox_ids("agri_bureau") == set()
        assert flow.inbox_ids("agri_section") == set()
        assert flow.inbox_ids("farm_unit") == set()
        flow.act(case_id, code, step)
    with pytest.raises(PermissionDenied):
        flow.core.reads.case(flow.actor("agri_bureau"), case_id)


def test_review_center_sees_bureau_wide_tasks_of_every_department(flow):
    cases = {code: flow.start(code) for code in ("EDU-2027-001", "AGR-2027-002", "AGR-2027-001")}
    for code, case_id in cases.items():
        flow.walk(case_id, code, ["compile_goals", "competent_check"])
    rows, total = flow.core.reads.inbox(flow.actor("review1"))
    assert total == 3
    assert sorted(r["project"]["code"] for r in rows) == sorted(cases)
    assert {(r["step"], r["role"], r["org"], r["org_name"]) for r in rows} == {
        ("preliminary_review", "review_center", None, "Finance bureau")}
    # The competent departments each had only their own projects' checks, now done.
    assert flow.inbox_ids("edu_bureau") == set()
    assert flow.inbox_ids("agri_bureau") == set()


def test_task_and_case_reads_are_refused_to_outsiders(flow):
    code = "EDU-2027-001"
    case_id = flow.start(code)
    task = flow.task(case_id)
    for outsider in ("agri_bureau", "farm_unit", "agri_section", "expert1"):
        with pytest.raises(PermissionDenied):
            flow.core.reads.task(flow.actor(outsider), task["id"])
        with pytest.raises(PermissionDenied):
            flow.core.reads.case(flow.actor(outsider), case_id)
    detail = flow.core.reads.task(flow.actor("school_unit"), task["id"])
    assert detail["may_act"] is True
    assert flow.core.reads.task(flow.actor("edu_bureau"), task["id"])["may_act"] is False


# ---- permission and conflicts --------------------------------------------------------------

def test_wrong_users_cannot_complete_and_nothing_changes(flow):
    code = "EDU-2027-001"
    case_id = flow.start(code)
    flow.act(case_id, code, "compile_goals")
    task = flow.task(case_id)
    assert task["step"] == "competent_check"
    before = flow.snapshot(case_id)
    for username in ("agri_bureau", "school_unit", "review1", "perf1", "edu_section", "expert1", "supervisor",
                     "admin", "farm_unit"):
        with pytest.raises(PermissionDenied):
            flow.complete(username, task["id"], APPROVE)
    assert flow.snapshot(case_id) == before
    result = flow.complete("edu_bureau", task["id"], APPROVE)
    assert [t.step for t in result.next_tasks] == ["preliminary_review"]


def test_only_the_unit_may_start_a_goal_review(flow, demo_core, actor, project_id):
    pid = project_id("EDU-2027-001")
    for username in ("edu_bureau", "review1", "edu_section", "expert1"):
        with pytest.raises(PermissionDenied):
            demo_core.cases.start(actor(username), "goal_review", pid)
    with pytest.raises(PermissionDenied):
        demo_core.cases.start(actor("farm_unit"), "goal_review", pid)
    rows, total = demo_core.reads.cases(actor("supervisor"))
    assert total == 0
    assert flow.project("EDU-2027-001")["goals_status"] == "none"


def test_completing_the_same_task_twice_is_a_conflict(flow):
    code = "EDU-2027-001"
    case_id = flow.start(code)
    flow.act(case_id, code, "compile_goals")
    task = flow.task(case_id)
    flow.complete("edu_bureau", task["id"], APPROVE)
    before = flow.snapshot(case_id)
    with pytest.raises(Conflict) as err:
        flow.complete("edu_bureau", task["id"], {"decision": "return", "comment": "Second thoughts."})
    assert "already completed by Zhou Min (Education Bureau)" in err.value.message
    assert flow.snapshot(case_id) == before
    assert flow.task(case_id)["step"] == "preliminary_review"


def test_completing_a_task_of_a_finished_case_is_a_conflict(flow):
    code = "EDU-2027-001"
    case_id = flow.start(code)
    flow.walk(case_id, code, NON_KEY_CHAIN)
    last = [e for e in flow.case(case_id)["history"] if e["action"] == "completed"][-1]
    assert last["step"] == "final_review"
    assert flow.inbox_ids("edu_section") == set()
    with flow.core.db.reading() as s:
        final_id = [t.id for t in queries.tasks_of_case(s, case_id) if t.step == "final_review"][0]
    before = flow.snapshot(case_id)
    with pytest.raises(Conflict):
        flow.complete("edu_section", final_id, {"decision": "reject", "comment": "Too late."})
    assert flow.snapshot(case_id) == before
    assert flow.project(code)["goals_status"] == "approved"


def test_second_goal_review_while_one_runs_is_a_conflict(flow, demo_core, actor, project_id):
    code = "EDU-2027-001"
    first = flow.start(code)
    with pytest.raises(Conflict) as err:
        flow.start(code)
    assert err.value.details == {"case_id": first}
    rows, total = demo_core.reads.cases(actor("supervisor"), project_id=project_id(code))
    assert [r["id"] for r in rows] == [first]
    assert total == 1
    # Another project is not blocked, and the same project can start again once finished.
    other = flow.start("EDU-2027-002")
    assert other != first
    flow.walk(first, code, NON_KEY_CHAIN)
    again = flow.start(code)
    assert flow.task(again)["step"] == "compile_goals"


# ---- form data -----------------------------------------------------------------------------

def _goals_with(change) -> dict:
    goals = sample_goals(PROJECTS["EDU-2027-001"][3])
    change(goals)
    return goals


def _set(path_value):
    def change(goals):
        *path, value = path_value
        target = goals
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return change


INVALID_GOALS = [
    pytest.param(_goals_with(_set(("indicators", 0, "level2", "social"))),
                 {"indicators.0.level2": "Choose one of the listed values."}, id="level1-level2-mismatch"),
    pytest.param(_goals_with(lambda g: g["indicators"][3].pop("unit")),
                 {"indicators.3.unit": "This field is required."}, id="quantitative-without-unit"),
    pytest.param(_goals_with(_set(("indicators", 0, "unit", "")),),
                 {"indicators.0.unit": "This field is required."}, id="quantitative-empty-unit"),
    pytest.param(_goals_with(_set(("indicators", 4, "target", "about 3000"))),
                 {"indicators.4.target": "Enter a number."}, id="quantitative-target-not-a-number"),
    pytest.param(_goals_with(_set(("_internal", True))),
                 {"_internal": "Field names starting with '_' are not accepted."}, id="underscore-key"),
    pytest.param(_goals_with(_set(("returned_from", "final_review"))),
                 {"returned_from": "Unknown field."}, id="unknown-key-steering-the-route"),
    pytest.param(_goals_with(_set(("project", {"is_key": False}))),
                 {"project": "Unknown field."}, id="system-key"),
    pytest.param(_goals_with(_set(("indicators", 1, "_x", 1))),
                 {"indicators.1._x": "Field names starting with '_' are not accepted."}, id="underscore-in-row"),
    pytest.param(_goals_with(_set(("indicators", []))),
                 {"indicators": "Add at least 1 row(s)."}, id="no-indicators"),
    pytest.param(_goals_with(_set(("indicators", 0, "weight", 0))),
                 {"indicators.0.weight": "Must be more than 0."}, id="zero-weight"),
]


@pytest.mark.parametrize("data, errors", INVALID_GOALS)
def test_invalid_goals_are_refused_and_nothing_is_saved(flow, data, errors):
    code = "EDU-2027-001"
    case_id = flow.start(code)
    task = flow.task(case_id)
    before = flow.snapshot(case_id)
    with pytest.raises(InvalidData) as err:
        flow.complete("school_unit", task["id"], data)
    assert err.value.details == errors
    assert flow.snapshot(case_id) == before
    assert flow.task(case_id)["id"] == task["id"]
    assert task["id"] in flow.inbox_ids("school_unit")
    # A correct submission still goes through.
    result = flow.act(case_id, code, "compile_goals")
    assert [t.step for t in result.next_tasks] == ["competent_check"]


@pytest.mark.parametrize("data, errors", [
    ({"decision": "return"}, {"comment": "This field is required."}),
    ({"decision": "return", "comment": ""}, {"comment": "This field is required."}),
    ({"decision": "reject", "comment": "Not a choice here."}, {"decision": "Choose one of the listed values."}),
    ({}, {"decision": "This field is required."}),
    ({"decision": "approve", "grade": "good"}, {"grade": "Unknown field."}),
    ({"decision": "approve", "__class__": "x"}, {"__class__": "Field names starting with '_' are not accepted."}),
])
def test_invalid_review_opinions_are_refused_and_nothing_is_saved(flow, data, errors):
    code = "EDU-2027-001"
    case_id = flow.start(code)
    flow.act(case_id, code, "compile_goals")
    task = flow.task(case_id)
    before = flow.snapshot(case_id)
    with pytest.raises(InvalidData) as err:
        flow.complete("edu_bureau", task["id"], data)
    assert err.value.details == errors
    assert flow.snapshot(case_id) == before


def test_a_reviewer_leaving_out_a_field_does_not_inherit_the_previous_reviewers_value(flow):
    code = "EDU-2027-001"
    case_id = flow.start(code)
    flow.walk(case_id, code, ["compile_goals", "competent_check"])
    flow.act(case_id, code, "preliminary_review", {"decision": "approve", "grade": "excellent",
                                                    "comment": "Well argued."})
    flow.act(case_id, code, "re_examination", {"decision": "approve"})
    data = flow.case(case_id)["data"]
    assert data["decision"] == "approve"
    assert "comment" not in data
    assert data["grade"] == "excellent"    # a field the re-examination form does not own stays


# ---- claim / unclaim -----------------------------------------------------------------------

@pytest.fixture
def review2(demo_core, actor):
    demo_core.accounts.ensure_user("review2", "Second reviewer (Review Center)", "pw", enforce_policy=False)
    demo_core.accounts.grant("review2", "review_center", "review_center")
    return actor("review2")


def test_claim_takes_a_task_out_of_the_group_inbox_and_unclaim_puts_it_back(flow, review2):
    code = "EDU-2027-001"
    case_id = flow.start(code)
    flow.walk(case_id, code, ["compile_goals", "competent_check"])
    task = flow.task(case_id)
    assert task["step"] == "preliminary_review"
    assert task["id"] in flow.inbox_ids("review1", "group")
    assert task["id"] in flow.inbox_ids("review2", "group")

    claimed = flow.core.cases.claim(review2, task["id"])
    assert claimed.assignee_id == review2.id
    assert flow.task(case_id)["assignee"] == "review2"
    assert flow.inbox_ids("review1") == set()
    assert flow.inbox_ids("review2", "mine") == {task["id"]}
    assert flow.inbox_ids("review2", "group") == set()
    assert flow.inbox_ids("review2") == {task["id"]}

    before = flow.snapshot(case_id)
    review1 = flow.actor("review1")
    with pytest.raises(PermissionDenied) as err:
        flow.core.cases.complete(review1, task["id"], PRELIMINARY_APPROVE)
    assert "assigned to Second reviewer (Review Center)" in err.value.message
    with pytest.raises(PermissionDenied):
        flow.core.cases.claim(review1, task["id"])
    with pytest.raises(PermissionDenied):
        flow.core.cases.unclaim(review1, task["id"])
    with pytest.raises(PermissionDenied):
        flow.core.cases.claim(flow.actor("perf1"), task["id"])
    assert flow.snapshot(case_id) == before
    # Claiming again is harmless for the one who holds it.
    assert flow.core.cases.claim(review2, task["id"]).assignee_id == review2.id

    released = flow.core.cases.unclaim(review2, task["id"])
    assert released.assignee_id is None
    assert task["id"] in flow.inbox_ids("review1", "group")
    assert task["id"] in flow.inbox_ids("review2", "group")
    assert flow.inbox_ids("review2", "mine") == set()

    flow.core.cases.claim(review1, task["id"])
    result = flow.core.cases.complete(review1, task["id"], PRELIMINARY_APPROVE)
    assert [t.step for t in result.next_tasks] == ["re_examination"]
    history = flow.case(case_id)["history"]
    assert [(e["action"], e["actor"]) for e in history[-4:]] == [
        ("claimed", "review2"), ("unclaimed", "review2"), ("claimed", "review1"), ("completed", "review1")]


def test_claim_of_a_unit_task_by_a_second_officer_of_the_same_unit(flow, demo_core):
    demo_core.accounts.ensure_user("school_unit2", "Second officer (No. 1 Middle School)", "pw", enforce_policy=False)
    demo_core.accounts.grant("school_unit2", "unit", "school")
    code = "EDU-2027-001"
    case_id = flow.start(code)
    task = flow.task(case_id)
    assert task["id"] in flow.inbox_ids("school_unit2", "group")
    flow.core.cases.claim(flow.actor("school_unit2"), task["id"])
    assert flow.inbox_ids("school_unit") == set()
    assert flow.inbox_ids("school_unit2", "mine") == {task["id"]}
    with pytest.raises(PermissionDenied):
        flow.complete("school_unit", task["id"], sample_goals(PROJECTS[code][3]))
    # An officer of another unit cannot take it either, claimed or not.
    with pytest.raises(PermissionDenied):
        flow.core.cases.claim(flow.actor("farm_unit"), task["id"])
    flow.core.cases.unclaim(flow.actor("school_unit2"), task["id"])
    assert flow.inbox_ids("school_unit", "group") == {task["id"]}
    result = flow.complete("school_unit", task["id"], sample_goals(PROJECTS[code][3]))
    assert [t.step for t in result.next_tasks] == ["competent_check"]


def test_admin_may_release_a_claimed_task_but_not_complete_it(flow, review2):
    code = "EDU-2027-001"
    case_id = flow.start(code)
    flow.walk(case_id, code, ["compile_goals", "competent_check"])
    task = flow.task(case_id)
    flow.core.cases.claim(review2, task["id"])
    admin = flow.actor("admin")
    with pytest.raises(PermissionDenied):
        flow.core.cases.complete(admin, task["id"], PRELIMINARY_APPROVE)
    assert flow.core.cases.unclaim(admin, task["id"]).assignee_id is None
    assert flow.task(case_id)["assignee"] is None


def test_claim_of_a_completed_task_is_a_conflict(flow):
    code = "EDU-2027-001"
    case_id = flow.start(code)
    task = flow.task(case_id)
    flow.act(case_id, code, "compile_goals")
    with pytest.raises(Conflict):
        flow.core.cases.claim(flow.actor("school_unit"), task["id"])
    with pytest.raises(Conflict):
        flow.core.cases.unclaim(flow.actor("school_unit"), task["id"])


# ---- audit history -------------------------------------------------------------------------

def test_history_records_who_did_what_with_which_data(flow):
    code = "EDU-2027-001"
    case_id = flow.start(code)
    goals = sample_goals(PROJECTS[code][3])
    flow.act(case_id, code, "compile_goals", goals)
    flow.act(case_id, code, "competent_check", {"decision": "return", "comment": "Add a cost indicator."})
    flow.act(case_id, code, "compile_goals", goals)
    flow.walk(case_id, code, ["competent_check", "preliminary_review", "re_examination", "final_review"])
    history = flow.case(case_id)["history"]
    assert [(e["action"], e["actor"], e["step"]) for e in history] == [
        ("started", "school_unit", None),
        ("completed", "school_unit", "compile_goals"),
        ("completed", "edu_bureau", "competent_check"),
        ("completed", "school_unit", "compile_goals"),
        ("completed", "edu_bureau", "competent_check"),
        ("completed", "review1", "preliminary_review"),
        ("completed", "perf1", "re_examination"),
        ("completed", "edu_section", "final_review"),
        ("finished", None, None),
    ]
    started = history[0]["data"]["project"]
    assert (started["code"], started["is_key"], started["amount"], started["year"]) == (
        "EDU-2027-001", False, "1200000.00", 2027)
    assert history[1]["data"] == goals
    assert history[1]["task"] == "Compile performance goals"
    assert history[2]["data"] == {"decision": "return", "comment": "Add a cost indicator."}
    assert history[5]["data"] == PRELIMINARY_APPROVE
    assert history[-1]["data"] == {"end": "Goals approved"}
    assert history[-1]["actor_name"] == "System"
    assert [e["at"] for e in history] == sorted(e["at"] for e in history)


# ---- two cycles ----------------------------------------------------------------------------

def test_a_second_approval_adds_version_2_and_keeps_version_1(flow):
    code = "EDU-2027-002"
    first = flow.start(code)
    flow.walk(first, code, KEY_CHAIN)
    v1 = flow.project(code)["approved_goals"]
    assert v1["version"] == 1

    second = flow.start(code)
    assert flow.project(code)["goals_status"] == "in_review"
    assert flow.project(code)["approved_goals"]["version"] == 1    # still in force during the change
    changed = sample_goals(PROJECTS[code][3])
    changed["annual_goal"] = "In-year change: 30 classrooms instead of 40."
    changed["indicators"] = copy.deepcopy(changed["indicators"][:2])
    flow.act(second, code, "compile_goals", {**changed, "adjustment_reason": "Funds cut by the county."})
    flow.walk(second, code, KEY_CHAIN[1:])

    project = flow.project(code)
    assert project["goals_status"] == "approved"
    assert project["approved_goals"]["version"] == 2
    assert project["approved_goals"]["case_id"] == second
    assert goal_fields(project["approved_goals"]) == changed
    rows = flow.goal_rows(code)
    assert [(r.version, r.case_id) for r in rows] == [(1, first), (2, second)]
    assert rows[0].goals == goal_fields(v1) == sample_goals(PROJECTS[code][3])
    assert rows[1].goals == changed


# ---- concurrency ---------------------------------------------------------------------------

def _race(*calls):
    """Run the calls at the same moment in threads; return each one's result or exception."""
    import threading

    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:   # noqa: BLE001 - the test inspects what each call raised
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_users_completing_the_same_task_at_once_one_wins(flow, review2):
    code = "EDU-2027-001"
    case_id = flow.start(code)
    flow.walk(case_id, code, ["compile_goals", "competent_check"])
    task = flow.task(case_id)
    review1 = flow.actor("review1")
    results = _race(
        lambda: flow.core.cases.complete(review1, task["id"], PRELIMINARY_APPROVE),
        lambda: flow.core.cases.complete(review2, task["id"], {"decision": "return", "comment": "No."}))
    conflicts = [r for r in results if isinstance(r, Conflict)]
    done = [r for r in results if not isinstance(r, Exception)]
    assert len(conflicts) == 1 and len(done) == 1, results
    view = flow.case(case_id)
    completed = [e for e in view["history"] if e["action"] == "completed" and e["step"] == "preliminary_review"]
    assert len(completed) == 1
    expected_next = "re_examination" if completed[0]["data"]["decision"] == "approve" else "compile_goals"
    assert [t["step"] for t in view["tasks"]] == [expected_next]
    with flow.core.db.reading() as s:
        assert s.get(Case, case_id).lock_version == 4   # started at 1, three completions


def test_two_starts_at_once_for_the_same_project_give_one_case(flow, demo_core, actor, project_id):
    codes = ("EDU-2027-001", "EDU-2027-002", "EDU-2027-003", "AGR-2027-001", "AGR-2027-002", "AGR-2027-003")
    for code in codes:
        unit = actor("school_unit" if code.startswith("EDU") else "farm_unit")
        pid = project_id(code)
        results = _race(lambda: demo_core.cases.start(unit, "goal_review", pid),
                        lambda: demo_core.cases.start(unit, "goal_review", pid))
        assert sorted(type(r).__name__ for r in results) == ["Case", "Conflict"], (code, results)
    rows, total = demo_core.reads.cases(actor("supervisor"), status="running")
    assert total == len(codes)
