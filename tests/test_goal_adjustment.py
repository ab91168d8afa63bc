"""In-year goal adjustments (issue #3, item 2): a goal review of a project whose goals are
approved already changes them. It starts from the goals in force, needs a reason, runs the
same chain, shows reviewers what changed, and approval adds a version to the goal history
while the earlier versions stay.
"""
from __future__ import annotations

import copy

import pytest
from jsonschema import Draft202012Validator
from lxml import html as lxml_html
from sqlalchemy import select

from engine.demo import sample_goals
from engine.errors import InvalidData
from engine.goals import goal_changes, goals_from_data
from storage.models import ProjectGoals
from test_engine_goal_review import KEY_CHAIN, NON_KEY_CHAIN, PROJECTS, Flow
from webui.openapi import openapi_document

P = "/api/v1"
CODE = "EDU-2027-001"          # not a key project: the chain ends with the funding section
NAME = PROJECTS[CODE][3]
REASON = "The county cut the project's funds by a sixth in June."


def adjusted_goals() -> dict:
    """The approved sample goals as a unit would change them in the year."""
    goals = sample_goals(NAME)
    goals["annual_goal"] = "Complete 10 of the planned 12 sites this year; the rest next year."
    sites = goals["indicators"][0]
    sites["target"], sites["weight"] = "10", 25
    goals["indicators"] = [i for i in goals["indicators"] if i["name"] != "Cost per site"]
    goals["indicators"].append({"level1": "effect", "level2": "sustainable", "name": "Sites maintained after "
                                "handover", "operator": ">=", "target": "95", "unit": "%", "weight": 15})
    return goals


EXPECTED_CHANGES = [
    "Annual goal changed",
    "Indicator changed: Sites completed: target ≥ 12 sites → ≥ 10 sites; weight 30 → 25",
    "Indicator added: Sites maintained after handover (≥ 95 %, weight 15)",
    "Indicator removed: Cost per site (was ≤ 95000 yuan, weight 10)",
]


@pytest.fixture
def flow(demo_core, actor, project_id):
    return Flow(demo_core, actor, project_id)


def approve_initial(flow, code: str = CODE) -> int:
    case_id = flow.start(code)
    flow.walk(case_id, code, KEY_CHAIN if flow.project(code)["is_key"] else NON_KEY_CHAIN)
    assert flow.project(code)["goals_status"] == "approved"
    return case_id


def goal_rows(flow, code: str = CODE) -> list[tuple]:
    with flow.core.db.reading() as s:
        return [(r.version, r.kind, r.reason, r.case_id, r.goals)
                for r in s.scalars(select(ProjectGoals).where(ProjectGoals.project_id == flow.project_id(code))
                                   .order_by(ProjectGoals.version))]


# ---- the diff, as a plain function ------------------------------------------------------------

def test_the_same_goals_have_no_changes():
    goals = sample_goals(NAME)
    assert goal_changes(goals, copy.deepcopy(goals)) == []


def test_changes_name_fields_and_indicators_with_old_and_new_values():
    changes = goal_changes(sample_goals(NAME), adjusted_goals())
    assert [c["text"] for c in changes] == EXPECTED_CHANGES
    field, changed, added, removed = changes
    assert (field["kind"], field["label"], field["old"], field["new"]) == (
        "field", "Annual goal", sample_goals(NAME)["annual_goal"], adjusted_goals()["annual_goal"])
    assert changed["kind"] == "indicator_changed" and changed["label"] == "Sites completed"
    assert changed["details"] == [{"label": "target", "old": "≥ 12 sites", "new": "≥ 10 sites"},
                                  {"label": "weight", "old": "30", "new": "25"}]
    assert (added["kind"], added["old"], added["new"]) == ("indicator_added", "", "≥ 95 %, weight 15")
    assert (removed["kind"], removed["old"], removed["new"]) == ("indicator_removed", "≤ 95000 yuan, weight 10", "")


def test_indicators_are_matched_by_name_not_by_position():
    old = sample_goals(NAME)
    new = copy.deepcopy(old)
    new["indicators"].reverse()
    new["indicators"][0]["name"] = "  beneficiary   SATISFACTION "     # spacing and case aside
    assert goal_changes(old, new) == []


def test_every_aspect_of_an_indicator_is_compared():
    old = sample_goals(NAME)
    new = copy.deepcopy(old)
    cost = new["indicators"][3]
    cost.update({"unit": "yuan per site", "core": True, "standard": "Audited accounts", "note": "New",
                 "level1": "effect", "level2": "economic"})
    new["indicators"][0]["weight"] = 30.0                               # the same weight, as a float
    (change,) = goal_changes(old, new)
    assert [(d["label"], d["old"], d["new"]) for d in change["details"]] == [
        ("category", "Output / Cost", "Effect / Economic benefit"),
        ("target", "≤ 95000 yuan", "≤ 95000 yuan per site"),
        ("core", "no", "yes"),
        ("evaluation standard", "", "Audited accounts"),
        ("note", "", "New"),
    ]
    assert change["text"].endswith("evaluation standard (none) → Audited accounts; note (none) → New")


def test_fields_added_and_removed_and_a_first_version():
    old = sample_goals(NAME)
    new = copy.deepcopy(old)
    del new["safeguards"]
    new["schedule"] = "  " + old["schedule"] + "\n"                     # whitespace only: unchanged
    old.pop("basis")
    assert [c["text"] for c in goal_changes(old, new)] == ["Basis, necessity and feasibility added",
                                                          "Safeguard measures removed"]
    first = goal_changes(None, sample_goals(NAME))
    assert [c["kind"] for c in first].count("indicator_added") == 6
    assert all(c["kind"] in ("field", "indicator_added") for c in first)


# ---- through the engine --------------------------------------------------------------------------

def test_an_adjustment_starts_from_the_approved_goals_and_needs_a_reason(flow):
    first = approve_initial(flow)
    approved = goals_from_data(flow.project(CODE)["approved_goals"])
    assert approved == sample_goals(NAME)

    second = flow.start(CODE)
    view = flow.case(second)
    assert view["title"] == f"Goal adjustment: {NAME} ({CODE})"
    assert (view["data"]["adjustment"], view["data"]["base_version"]) == (True, 1)
    task = flow.task(second)
    assert task["step"] == "compile_goals"
    assert task["title"] == f"Compile performance goals: Goal adjustment: {NAME} ({CODE})"
    detail = flow.core.reads.task(flow.actor("school_unit"), task["id"])
    assert detail["data"] == {**approved, "base_version": 1}          # the form opens prefilled
    assert "In-year adjustment" in detail["instructions"] and "version 1" in detail["instructions"]
    assert detail["context"]["adjustment"] == {"base_version": 1, "reason": None, "changes": []}
    assert flow.project(CODE)["goals_status"] == "in_review"

    before = flow.snapshot(second)
    for data in (adjusted_goals(), {**adjusted_goals(), "adjustment_reason": ""},
                 # the version is the case's: a unit cannot drop it to skip the reason
                 {**adjusted_goals(), "base_version": None}, {**adjusted_goals(), "base_version": 7}):
        with pytest.raises(InvalidData) as err:
            flow.complete("school_unit", task["id"], data)
        assert err.value.details == {"adjustment_reason": "This field is required."}
    assert flow.snapshot(second) == before

    flow.act(second, CODE, "compile_goals", {**adjusted_goals(), "adjustment_reason": REASON, "base_version": 7})
    data = flow.case(second)["data"]
    assert (data["adjustment"], data["base_version"], data["adjustment_reason"]) == (True, 1, REASON)
    assert [r[:4] for r in goal_rows(flow)] == [(1, "initial", None, first)]


def test_the_adjustment_walks_the_chain_with_a_return_and_is_kept_as_version_2(flow, actor):
    first = approve_initial(flow)
    second = flow.start(CODE)
    flow.act(second, CODE, "compile_goals", {**sample_goals(NAME), "adjustment_reason": "First draft."})
    flow.walk(second, CODE, ["competent_check"])

    # The reviewers see the reason and the changes beside their form.
    task = flow.task(second)
    assert task["step"] == "preliminary_review"
    detail = flow.core.reads.task(flow.actor("review1"), task["id"])
    assert detail["context"]["adjustment"] == {"base_version": 1, "reason": "First draft.", "changes": []}
    assert "Reason given by the unit: <em>First draft.</em>" in detail["instructions"]
    flow.act(second, CODE, "preliminary_review", {"decision": "return", "comment": "Say what changes."})

    # Back at the unit, with its own draft and reason; the resubmission goes straight back.
    task = flow.task(second)
    assert task["step"] == "compile_goals"
    detail = flow.core.reads.task(flow.actor("school_unit"), task["id"])
    assert detail["data"]["adjustment_reason"] == "First draft."
    result = flow.act(second, CODE, "compile_goals", {**adjusted_goals(), "adjustment_reason": REASON})
    assert [t.step for t in result.next_tasks] == ["preliminary_review"]
    for step in ("preliminary_review", "re_examination", "final_review"):
        detail = flow.core.reads.task(flow.actor(flow.user_for(CODE, step)), flow.task(second)["id"])
        adjustment = detail["context"]["adjustment"]
        assert (adjustment["base_version"], adjustment["reason"]) == (1, REASON)
        assert [c["text"] for c in adjustment["changes"]] == EXPECTED_CHANGES
        flow.act(second, CODE, step)
    assert flow.case(second)["status"] == "completed"

    project = flow.project(CODE)
    assert project["goals_status"] == "approved"
    assert project["approved_goals"]["version"] == 2 and project["approved_goals"]["case_id"] == second
    rows = goal_rows(flow)
    assert [r[:4] for r in rows] == [(1, "initial", None, first), (2, "adjustment", REASON, second)]
    assert rows[0][4] == sample_goals(NAME)                       # version 1 as it was approved
    assert rows[1][4] == adjusted_goals()                         # no reason or flag among the goals
    history = project["goal_history"]
    assert [(h["version"], h["kind"], h["reason"], h["case_id"], h["approved_by"], h["approved_by_name"])
            for h in history] == [
        (1, "initial", None, first, "edu_section", "Chen Jing (Education Funding Section)"),
        (2, "adjustment", REASON, second, "edu_section", "Chen Jing (Education Funding Section)")]
    assert history[0]["changes"] is None
    assert [c["text"] for c in history[1]["changes"]] == EXPECTED_CHANGES

    # A third round starts from version 2.
    third = flow.start(CODE)
    assert flow.case(third)["data"]["base_version"] == 2
    assert goals_from_data(flow.case(third)["data"]) == adjusted_goals()


def test_a_rejected_adjustment_leaves_version_1_in_force(flow):
    first = approve_initial(flow, "EDU-2027-002")                 # a key project: third party too
    second = flow.start("EDU-2027-002")
    flow.act(second, "EDU-2027-002", "compile_goals", {**adjusted_goals(), "adjustment_reason": REASON})
    flow.walk(second, "EDU-2027-002", KEY_CHAIN[1:-1])
    detail = flow.core.reads.task(flow.actor("edu_section"), flow.task(second)["id"])
    assert "rejecting the adjustment leaves version 1 in force" in detail["instructions"]
    flow.act(second, "EDU-2027-002", "final_review", {"decision": "reject", "comment": "Not justified."})
    project = flow.project("EDU-2027-002")
    assert project["goals_status"] == "approved"
    assert (project["approved_goals"]["version"], project["approved_goals"]["case_id"]) == (1, first)
    assert [(h["version"], h["kind"]) for h in project["goal_history"]] == [(1, "initial")]
    assert [r[:4] for r in goal_rows(flow, "EDU-2027-002")] == [(1, "initial", None, first)]


def test_a_first_review_is_no_adjustment_whatever_the_start_data_says(flow, demo_core, actor, project_id):
    case = demo_core.cases.start(actor("school_unit"), "goal_review", project_id(CODE),
                                 {"adjustment": True, "base_version": 3})
    view = flow.case(case.id)
    assert "adjustment" not in view["data"] and "base_version" not in view["data"]
    assert view["title"] == f"{NAME} ({CODE})"
    task = flow.task(case.id)
    detail = flow.core.reads.task(flow.actor("school_unit"), task["id"])
    assert detail["data"] == {} and detail["context"]["adjustment"] is None
    assert "In-year adjustment" not in detail["instructions"]
    flow.act(case.id, CODE, "compile_goals")                      # no reason asked for
    flow.walk(case.id, CODE, NON_KEY_CHAIN[1:])
    assert [r[:3] for r in goal_rows(flow)] == [(1, "initial", None)]


# ---- through the JSON API ----------------------------------------------------------------------

DOC = openapi_document()


def _schema(name: str) -> dict:
    """A component of the OpenAPI document with its $refs inlined and no undocumented fields."""
    def resolve(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(DOC["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]])
            out = {k: resolve(v) for k, v in node.items()}
            if "properties" in out:
                out.setdefault("additionalProperties", False)
            return out
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node
    return resolve(DOC["components"]["schemas"][name])


def _documented(instance, name: str) -> None:
    errors = list(Draft202012Validator(_schema(name)).iter_errors(instance))
    assert not errors, [(e.message, list(e.absolute_path)) for e in errors]


def _api_walk(api, case_id: int, code: str, data_for) -> None:
    """Complete the case's tasks as their demo users until it ends."""
    for _ in range(12):
        case = api("supervisor").get(f"{P}/cases/{case_id}").get_json()
        if case["status"] != "running":
            return
        task = case["tasks"][0]
        user = {"compile_goals": "school_unit", "competent_check": "edu_bureau", "preliminary_review": "review1",
                "re_examination": "perf1", "third_party_review": "expert1",
                "final_review": "edu_section"}[task["step"]]
        r = api(user).post(f"{P}/tasks/{task['id']}/complete", {"data": data_for(task["step"])})
        assert r.status_code == 200, r.get_json()
    raise AssertionError("the case did not end")


def _review(step: str) -> dict:
    return {"decision": "approve", **({"grade": "good"} if step == "preliminary_review" else {})}


def test_adjustment_through_the_api(api):
    unit = api("school_unit")
    r = unit.post(f"{P}/cases", {"process": "goal_review", "project": CODE})
    assert r.status_code == 201
    first = r.get_json()["id"]
    _api_walk(api, first, CODE, lambda step: sample_goals(NAME) if step == "compile_goals" else _review(step))

    r = unit.post(f"{P}/cases", {"process": "goal_review", "project": CODE})
    assert r.status_code == 201
    case = r.get_json()
    second = case["id"]
    assert case["title"] == f"Goal adjustment: {NAME} ({CODE})"
    assert (case["data"]["adjustment"], case["data"]["base_version"]) == (True, 1)
    task_id = case["tasks"][0]["id"]
    detail = unit.get(f"{P}/tasks/{task_id}").get_json()
    _documented(detail, "TaskDetail")
    assert detail["data"] == {**sample_goals(NAME), "base_version": 1}
    assert "adjustment_reason" in detail["form"]["schema"]["properties"]

    r = unit.post(f"{P}/tasks/{task_id}/complete", {"data": adjusted_goals()})
    assert r.status_code == 400
    assert r.get_json()["details"] == {"adjustment_reason": "This field is required."}
    r = unit.post(f"{P}/tasks/{task_id}/complete", {"data": {**adjusted_goals(), "adjustment_reason": REASON}})
    assert r.status_code == 200
    review_id = r.get_json()["next_tasks"][0]["id"]
    detail = api("edu_bureau").get(f"{P}/tasks/{review_id}").get_json()
    _documented(detail, "TaskDetail")
    assert detail["context"]["adjustment"]["reason"] == REASON
    assert [c["text"] for c in detail["context"]["adjustment"]["changes"]] == EXPECTED_CHANGES
    _api_walk(api, second, CODE, _review)

    listing = unit.get(f"{P}/projects").get_json()
    _documented(listing, "ProjectList")
    project = next(p for p in listing["items"] if p["code"] == CODE)
    assert project["goals_status"] == "approved"
    history = project["goal_history"]
    assert [(h["version"], h["kind"], h["reason"], h["case_id"], h["approved_by"]) for h in history] == [
        (1, "initial", None, first, "edu_section"), (2, "adjustment", REASON, second, "edu_section")]
    assert all(h["approved_at"] for h in history)
    # Projects without approved goals have an empty history.
    assert next(p for p in listing["items"] if p["code"] == "EDU-2027-002")["goal_history"] == []


# ---- on the pages ------------------------------------------------------------------------------

def _doc(response):
    return lxml_html.fromstring(response.get_data(as_text=True))


def _words(el) -> str:
    return " ".join(el.text_content().split())


def _fields(goals: dict) -> dict:
    """Goals as the browser posts the form: flat field names, text values."""
    out = {k: v for k, v in goals.items() if k != "indicators"}
    for i, row in enumerate(goals["indicators"]):
        for key, value in row.items():
            if value is not False:
                out[f"indicators-{i}-{key}"] = "true" if value is True else str(value)
    return out


# The changes of adjusted_goals() as the pages list them.
LISTED_CHANGES = [
    f"Annual goal changed {sample_goals(NAME)['annual_goal']} {adjusted_goals()['annual_goal']}",
    "Indicator Sites completed: target ≥ 12 sites → ≥ 10 sites; weight 30 → 25",
    "Indicator added: Sites maintained after handover ≥ 95 %, weight 15",
    "Indicator removed: Cost per site ≤ 95000 yuan, weight 10",
]


def test_pages_show_the_reason_field_the_changes_and_the_history(pages, flow):
    first = approve_initial(flow)
    second = flow.start(CODE)
    unit = pages("school_unit")
    task_id = flow.task(second)["id"]

    page = _doc(unit.get(f"/tasks/{task_id}"))
    form = page.xpath("//form[@id='task-form']")[0]
    assert form.xpath(".//input[@name='base_version']/@type") == ["hidden"]
    assert form.xpath(".//input[@name='base_version']/@value") == ["1"]
    assert form.xpath(".//textarea[@name='adjustment_reason']")
    assert form.xpath(".//textarea[@name='annual_goal']")[0].text == sample_goals(NAME)["annual_goal"]
    assert _words(page.xpath("//article[@id='goal-changes']/header")[0]) == \
        "In-year adjustment of approved goals version 1"

    # Submitted without a reason: refused, the field marked, the typed goals kept.
    fields = {**_fields(adjusted_goals()), "base_version": "1"}
    # The hidden version is the case's: posting it blank cannot skip the reason either.
    assert unit.post_form(f"/tasks/{task_id}", {**fields, "base_version": ""}).status_code == 400
    r = unit.post_form(f"/tasks/{task_id}", fields)
    assert r.status_code == 400
    page = _doc(r)
    assert [_words(e) for e in page.xpath("//small[@data-field='adjustment_reason']")] == ["This field is required."]
    assert page.xpath("//textarea[@name='annual_goal']")[0].text == adjusted_goals()["annual_goal"]
    r = unit.post_form(f"/tasks/{task_id}", {**fields, "adjustment_reason": REASON})
    assert r.status_code == 302

    review = _doc(pages("edu_bureau").get(f"/tasks/{flow.task(second)['id']}"))
    article = review.xpath("//article[@id='goal-changes']")[0]
    assert _words(article.xpath(".//p[contains(@class, 'adjustment-reason')]")[0]) == REASON
    assert [_words(li) for li in article.xpath(".//ul[@class='goal-changes']/li")] == LISTED_CHANGES
    flow.walk(second, CODE, NON_KEY_CHAIN[1:])

    page = _doc(unit.get(f"/projects/{flow.project_id(CODE)}"))
    rows = page.xpath("//table[@id='goal-history']/tbody/tr")
    cells = [[_words(td) for td in tr.xpath("./td")] for tr in rows]
    assert [(c[0], c[1], c[3], c[4], c[5]) for c in cells] == [
        ("2 in force", "In-year adjustment", "Chen Jing (Education Funding Section)", REASON, f"#{second}"),
        ("1", "Initial goals", "Chen Jing (Education Funding Section)", "", f"#{first}")]
    assert rows[0].xpath(".//a/@href") == [f"/cases/{second}"]
    section = page.xpath("//section[@id='goal-changes-2']")[0]
    assert _words(section.xpath("./h3")[0]) == "Version 2 against version 1"
    assert [_words(li) for li in section.xpath(".//li")] == LISTED_CHANGES
    assert page.xpath("//section[@id='goal-changes-1']") == []
