"""Link 4, self-assessment and spot-check review, end to end through the JSON API as the demo
users: a campaign opens one case per project with approved goals; the unit scores the year
(the rules of domain.md, computed; a cause and a measure for every shortfall); the competent
department checks and may return it; the performance section draws departments reproducibly;
drawn self-assessments are reviewed on four criteria, gaps flagged, problems rectified."""
from __future__ import annotations

import copy
import re
import threading
from decimal import Decimal

import pytest
from sqlalchemy import select

from engine import spot_check
from engine.demo import sample_goals
from engine.errors import InvalidData
from engine.rules import sampling
from engine.rules.defaults import DEFAULTS
from storage import queries
from storage.models import AuditEvent, Campaign, Problem, SelfAssessment
from task_helpers import wait_until_done_or_blocked

P = "/api/v1"
YEAR = 2027
EDU, AGR = "Education Bureau", "Agriculture Bureau"
# The projects whose goals are approved before the campaign: two departments, three projects.
PROJECTS = {  # code -> unit user, competent user, funding user
    "EDU-2027-001": ("school_unit", "edu_bureau", "edu_section"),
    "EDU-2027-003": ("school_unit", "edu_bureau", "edu_section"),
    "AGR-2027-002": ("farm_unit", "agri_bureau", "agri_section"),
}
GOAL_CHAIN = ("unit", "competent", "review1", "perf1", "funding")
APPROVE = {"decision": "approve", "comment": "Fine."}

# sample_goals' indicators: output 30/20/10/10 of the goals share the output part's 50 points,
# effect 20 gets the effect part's 30, satisfaction 10 keeps 10.
WEIGHTS = [21.43, 14.29, 7.14, 7.14, 30, 10]
CRITERIA = ["completeness", "indicator_rationality", "data_accuracy", "result_objectivity"]


# ---- fixtures and helpers -------------------------------------------------------------------

def approve_goals(core, actor, code: str) -> None:
    """Walk the project's goal review to approval, so that it is in the year's budget."""
    unit, competent, funding = PROJECTS[code]
    users = {"unit": unit, "competent": competent, "funding": funding}
    with core.db.reading() as s:
        project = queries.project_by_code(s, code)
        project_id, name = project.id, project.name
    case = core.cases.start(actor(unit), "goal_review", project_id)
    for step in GOAL_CHAIN:
        with core.db.reading() as s:
            task_id = queries.open_tasks_of_case(s, case.id)[0].id
        data = sample_goals(name) if step == "unit" else (
            {**APPROVE, "grade": "excellent"} if step == "review1" else APPROVE)
        core.cases.complete(actor(users.get(step, step)), task_id, data)


@pytest.fixture
def budget_projects(demo_core, actor):
    actors: dict = {}

    def cached(username: str):
        if username not in actors:
            actors[username] = actor(username)
        return actors[username]
    for code in PROJECTS:
        approve_goals(demo_core, cached, code)
    return PROJECTS


@pytest.fixture
def campaign(demo_core, actor, budget_projects) -> int:
    """A self-assessment campaign for 2027, launched by the performance section."""
    return demo_core.campaigns.launch(actor("perf1"), "self_assessment", YEAR).id


def cases_by_code(core, actor, campaign_id: int) -> dict[str, int]:
    detail = core.campaigns.detail(actor("perf1"), campaign_id)
    return {row["project"]["code"]: row["case_id"] for row in detail["cases"]}


def tasks_of(api, username: str, case_id: int) -> list[dict]:
    return [t for t in api(username).get(f"{P}/tasks?limit=200").get_json()["items"] if t["case_id"] == case_id]


def the_task(api, username: str, case_id: int, step: str) -> dict:
    tasks = tasks_of(api, username, case_id)
    assert [t["step"] for t in tasks] == [step], tasks
    return api(username).get(f"{P}/tasks/{tasks[0]['id']}").get_json()


def complete(api, username: str, task_id: int, data: dict):
    return api(username).post(f"{P}/tasks/{task_id}/complete", json={"data": data})


def case_of(api, case_id: int) -> dict:
    return api("perf1").get(f"{P}/cases/{case_id}").get_json()


def row_of(core, case_id: int) -> SelfAssessment | None:
    with core.db.reading() as s:
        row = s.scalars(select(SelfAssessment).where(SelfAssessment.case_id == case_id)).first()
        if row is not None:
            s.expunge(row)
        return row


def full_marks(task: dict) -> dict:
    """The prefilled form with every line at full score."""
    data = copy.deepcopy(task["data"])
    budget = data["budget_execution"][0]
    budget["spent"] = budget["budget"]
    for row in data["indicator_scores"]:
        if row["operator"] == "qualitative":
            row.update(level="achieved", points=row["weight"])
        else:
            row["actual"] = float(row["target"])
    data["achievement_summary"] = "All planned works were completed and accepted."
    return data


def worked_example(task: dict) -> dict:
    """domain.md's rules on the Campus safety upgrade (budget 1,200,000): 90% spent; a '≤'
    indicator between its target and twice the target; a qualitative one partly achieved;
    an effect indicator that does not apply (dropped, the total rescaled to 100)."""
    data = full_marks(task)
    data["budget_execution"][0].update(spent=1_080_000, cause="Two payments fell due in January.",
                                       measure="Schedule payments with the works.")
    rows = data["indicator_scores"]
    rows[2].update(level="partly", points=5, cause="Acceptance of one site slipped to January.",
                   measure="Monthly schedule reviews.")
    rows[3].update(actual=114_000, cause="Steel prices rose 20%.", measure="Framework contract for materials.")
    rows[4].update(not_applicable=True, cause="The survey of people served is only held every two years.")
    rows[5]["actual"] = 95
    return data


def submit_and_approve(api, case_id: int, code: str, data_for=full_marks) -> None:
    unit, competent, _ = PROJECTS[code]
    task = the_task(api, unit, case_id, "self_assess")
    r = complete(api, unit, task["id"], data_for(task))
    assert r.status_code == 200, r.get_json()
    check = the_task(api, competent, case_id, "competent_check")
    r = complete(api, competent, check["id"], {"competent_decision": "approve"})
    assert r.status_code == 200, r.get_json()


def seed_drawing(population: list[str], ratio, wanted: list[str]) -> str:
    """A seed whose draw is `wanted`; the draw is a pure function of seed and population."""
    return next(seed for seed in (f"audit-{i}" for i in range(1000))
                if sampling.draw(population, ratio, seed) == wanted)


def review_sheet(task: dict, ratings: dict | None = None) -> list[dict]:
    rows = copy.deepcopy(task["data"]["criteria"])
    for row in rows:
        row.update(rating=(ratings or {}).get(row["criterion"], "met"), comment=f"Checked {row['criterion']}.")
    return rows


# ---- the campaign opens the cases ----------------------------------------------------------

def test_campaign_opens_a_case_per_budget_project_at_the_units_self_assessment(demo_core, actor, api, campaign):
    cases = cases_by_code(demo_core, actor, campaign)
    assert sorted(cases) == sorted(PROJECTS)
    task = the_task(api, "school_unit", cases["EDU-2027-001"], "self_assess")
    assert task["name"] == "Self-assessment"
    assert task["case"]["title"].startswith("Self-assessment 2027: Campus safety upgrade")
    data = task["data"]
    # The scoring table comes from the approved goals and the budget, weights computed.
    assert data["budget_execution"] == [{"budget": 1200000, "weight": 10, "cause": "", "measure": ""}]
    goals = sample_goals("Campus safety upgrade")["indicators"]
    assert [(r["level1"], r["name"], r["operator"], r["target"], r["unit"]) for r in data["indicator_scores"]] == [
        (g["level1"], g["name"], g["operator"], g["target"], g["unit"]) for g in goals]
    assert [r["weight"] for r in data["indicator_scores"]] == WEIGHTS
    assert sum(Decimal(str(w)) for w in WEIGHTS) + 10 == 100
    assert "budget of 1,200,000.00 yuan" in task["instructions"]
    assert "partly achieved 60–80%" in task["instructions"]
    # Only that project's unit has the task; the other unit sees its own projects only.
    assert tasks_of(api, "farm_unit", cases["EDU-2027-001"]) == []
    assert len(tasks_of(api, "farm_unit", cases["AGR-2027-002"])) == 1
    # These cases are opened only by a campaign.
    r = api("perf1").post(f"{P}/cases", json={"process": "self_assessment_review", "project": "EDU-2027-002"})
    assert r.status_code == 409 and "campaign" in r.get_json()["error"]


def test_weights_follow_the_settings_in_force_when_the_campaign_opens(demo_core, actor, api, budget_projects):
    demo_core.settings.update(actor("admin"), "self_assessment.weights",
                              {"budget": 20, "output": 40, "effect": 30, "satisfaction": 10})
    campaign_id = demo_core.campaigns.launch(actor("perf1"), "self_assessment", YEAR).id
    task = the_task(api, "school_unit", cases_by_code(demo_core, actor, campaign_id)["EDU-2027-001"], "self_assess")
    assert task["data"]["budget_execution"][0]["weight"] == 20
    assert [r["weight"] for r in task["data"]["indicator_scores"]] == [17.15, 11.43, 5.71, 5.71, 30, 10]
    assert sum(Decimal(str(r["weight"])) for r in task["data"]["indicator_scores"]) == 80


# ---- scoring -------------------------------------------------------------------------------

def test_worked_example_is_scored_rescaled_graded_and_recorded(demo_core, actor, api, campaign):
    case_id = cases_by_code(demo_core, actor, campaign)["EDU-2027-001"]
    task = the_task(api, "school_unit", case_id, "self_assess")
    r = complete(api, "school_unit", task["id"], worked_example(task))
    assert r.status_code == 200, r.get_json()
    data = case_of(api, case_id)["data"]
    assert data["budget_execution"][0]["rate"] == 90.0 and data["budget_execution"][0]["score"] == 9.0
    # ≥ reached: full; qualitative 'partly' 5 of 7.14; '≤' 114,000 against 95,000:
    # (1 - 19,000 / 95,000) x 7.14 = 5.712; the dropped indicator has no score.
    assert [r.get("score") for r in data["indicator_scores"]] == [21.43, 14.29, 5.0, 5.71, None, 10.0]
    # (9 + 21.43 + 14.29 + 5 + 5.712 + 10) x 100 / (100 - 30) = 93.47
    assert (data["self_score"], data["self_grade"]) == (93.47, "excellent")
    row = row_of(demo_core, case_id)
    assert (row.score, row.grade, row.campaign_id, row.year, row.sampled) == (
        Decimal("93.47"), "excellent", campaign, YEAR, None)
    lines = row.lines["lines"]
    assert [(line["name"], line["score"], line["applies"]) for line in lines] == [
        ("Budget execution", 9.0, True), ("Sites completed", 21.43, True), ("Acceptance pass rate", 14.29, True),
        ("Completed by year end", 5.0, True), ("Cost per site", 5.71, True), ("People served", None, False),
        ("Beneficiary satisfaction", 10.0, True)]
    # The competent department sees the computed table with causes and measures.
    check = the_task(api, "edu_bureau", case_id, "competent_check")
    assert "93.47 of 100, grade excellent" in check["instructions"]
    assert "<td>Cost per site</td>" in check["instructions"] and "<td>5.71</td>" in check["instructions"]
    assert "<td>dropped</td>" in check["instructions"]
    assert "Steel prices rose 20%." in check["instructions"]
    assert "The survey of people served is only held every two years." in check["instructions"]


def test_every_shortfall_needs_its_cause_and_measure_per_row(demo_core, actor, api, campaign):
    case_id = cases_by_code(demo_core, actor, campaign)["EDU-2027-001"]
    task = the_task(api, "school_unit", case_id, "self_assess")
    data = worked_example(task)
    data["budget_execution"][0].update(cause="", measure="")
    data["indicator_scores"][3].pop("cause")
    data["indicator_scores"][3]["measure"] = "  "
    data["indicator_scores"][4]["cause"] = ""
    r = complete(api, "school_unit", task["id"], data)
    assert r.status_code == 400
    body = r.get_json()
    assert "cause and an improvement measure" in body["error"]
    assert "row 4 (Cost per site)" in body["error"] and "budget execution" in body["error"]
    assert sorted(body["details"]) == ["budget_execution.0.cause", "budget_execution.0.measure",
                                       "indicator_scores.3.cause", "indicator_scores.3.measure",
                                       "indicator_scores.4.cause"]
    assert "'Cost per site' scores 5.71 of 7.14" in body["details"]["indicator_scores.3.cause"]
    assert "does not apply" in body["details"]["indicator_scores.4.cause"]
    # Nothing happened: the task is still open, nothing recorded.
    assert the_task(api, "school_unit", case_id, "self_assess")["id"] == task["id"]
    assert row_of(demo_core, case_id) is None


@pytest.mark.parametrize("change, field, message", [
    (lambda rows: rows[2].update(level="partly", points=6, cause="c", measure="m"),
     "indicator_scores.2.points", "A 'partly' score must lie between 4.284 and 5.712"),
    (lambda rows: rows[2].update(level="achieved", points=5, cause="c", measure="m"),
     "indicator_scores.2.points", "'achieved' score must lie between 5.712 and 7.14"),
    (lambda rows: rows[2].pop("level"), "indicator_scores.2.level", "Choose the level reached."),
    (lambda rows: rows[0].pop("actual"), "indicator_scores.0.actual", "Enter the actual value."),
])
def test_missing_values_and_qualitative_scores_outside_their_band_are_refused(
        demo_core, actor, api, campaign, change, field, message):
    case_id = cases_by_code(demo_core, actor, campaign)["EDU-2027-001"]
    task = the_task(api, "school_unit", case_id, "self_assess")
    data = full_marks(task)
    change(data["indicator_scores"])
    r = complete(api, "school_unit", task["id"], data)
    assert r.status_code == 400, r.get_json()
    assert list(r.get_json()["details"]) == [field]
    assert message in r.get_json()["details"][field]


def test_the_unit_cannot_change_the_goals_it_is_measured_against(demo_core, actor, api, campaign):
    case_id = cases_by_code(demo_core, actor, campaign)["EDU-2027-001"]
    task = the_task(api, "school_unit", case_id, "self_assess")
    data = full_marks(task)
    # A lower target and a heavier weight sent back with the rows change nothing.
    data["indicator_scores"][0].update(target="1", weight=100, actual=6)
    data["budget_execution"][0]["budget"] = 1
    r = complete(api, "school_unit", task["id"], {**data, "indicator_scores": data["indicator_scores"]})
    assert r.status_code == 400
    # Scored against the approved target 12 and weight 21.43: 6 / 12 x 21.43 = 10.72, a
    # shortfall; the budget line scores spent 1,200,000 of the real budget: full.
    details = r.get_json()["details"]
    assert sorted(details) == ["indicator_scores.0.cause", "indicator_scores.0.measure"]
    assert "'Sites completed' scores 10.72 of 21.43" in details["indicator_scores.0.cause"]
    # Rows cannot be added or removed, nor the computed fields set.
    r = complete(api, "school_unit", task["id"], {**data, "indicator_scores": data["indicator_scores"][:-1]})
    assert r.status_code == 400 and "indicator_scores" in r.get_json()["details"]
    r = complete(api, "school_unit", task["id"], {**full_marks(task), "self_score": 100})
    assert r.status_code == 400 and r.get_json()["details"] == {"self_score": "Unknown field."}


def test_scoring_rules_at_their_edges():
    settings = {"self_assessment.weights": DEFAULTS["self_assessment.weights"],
                "self_assessment.qualitative_bands": DEFAULTS["self_assessment.qualitative_bands"],
                "grades.min": DEFAULTS["grades.min"]}
    basis = {"budget": 100, "budget_weight": 10, "indicators": [
        {"level1": "output", "name": "Cost", "operator": "<=", "target": "50", "unit": "yuan", "weight": 50},
        {"level1": "effect", "name": "Reach", "operator": ">=", "target": "10", "unit": "", "weight": 30},
        {"level1": "satisfaction", "name": "Liked", "operator": "qualitative", "target": "Good", "weight": 10}]}
    why = {"cause": "c", "measure": "m"}

    def score(cost, reach=10, liked=("achieved", 10), spent=100):
        rows = [{"actual": cost, **why}, {"actual": reach, **why},
                {"level": liked[0], "points": liked[1], **why} if liked else {"not_applicable": True, **why}]
        return spot_check.result([{"spent": spent, **why}], rows, basis, settings)

    assert score(50)["total"] == 100.0                        # '≤' at the target: full
    assert score(75)["indicator_scores"][0]["score"] == 25.0  # halfway to twice the target: half
    assert score(100)["indicator_scores"][0]["score"] == 0.0  # twice the target: nothing
    assert score(140)["indicator_scores"][0]["score"] == 0.0
    assert score(50, reach=5)["indicator_scores"][1]["score"] == 15.0
    assert score(50, spent=150)["budget_execution"][0]["score"] == 10.0   # over-spending scores no more
    # Satisfaction dropped: 90 points rescaled to 100; 45 + 30 + 10 = 85 of 90 -> 94.44.
    assert score(55, liked=None)["total"] == 94.44
    assert score(55, liked=None)["grade"] == "excellent"
    assert score(100, reach=0, liked=("not", 0), spent=0)["grade"] == "poor"
    with pytest.raises(InvalidData) as refused:
        score(50, liked=("not", 7))
    assert "between 0 and 6" in refused.value.details["indicator_scores.2.points"]
    # A target that is no number cannot be scored: the unit is told to drop it, with the reason.
    odd = copy.deepcopy(basis)
    odd["indicators"][1]["target"] = "about ten"
    with pytest.raises(InvalidData) as refused:
        spot_check.result([{"spent": 100}], [{"actual": 10}, {"actual": 10}, {"level": "achieved", "points": 10}],
                          odd, settings)
    assert "not a number" in refused.value.details["indicator_scores.1.actual"]


def test_gap_flag_is_at_the_configured_distance_or_more():
    sheet = [{**row, "rating": "met", "comment": "ok"} for row in spot_check.review_sheet()]
    assert spot_check.review_result(sheet, 90, 100, 10)["flagged"] is True
    assert spot_check.review_result(sheet, 90.01, 100, 10)["flagged"] is False
    assert spot_check.review_result(sheet, 100, 88.5, 10) == {
        "criteria": [{"criterion": c, "label": spot_check.CRITERIA[c], "rating": "met", "comment": "ok"}
                     for c in CRITERIA], "gap": 11.5, "flagged": True}
    with pytest.raises(InvalidData):
        spot_check.review_result(sheet[:3] + sheet[:1], 90, 100, 10)


def form_fields(data: dict) -> dict[str, str]:
    """What the browser posts for the self-assessment form: table cells as 'table-row-column'."""
    fields = {"achievement_summary": data.get("achievement_summary", "")}
    for table in ("budget_execution", "indicator_scores"):
        for i, row in enumerate(data[table]):
            for column, value in row.items():
                if value is True:
                    fields[f"{table}-{i}-{column}"] = "true"
                elif value not in (None, False):
                    fields[f"{table}-{i}-{column}"] = str(value)
    return fields


def test_the_task_page_marks_the_row_at_fault_and_keeps_what_was_typed(demo_core, actor, api, pages, campaign):
    case_id = cases_by_code(demo_core, actor, campaign)["EDU-2027-001"]
    task = the_task(api, "school_unit", case_id, "self_assess")
    session = pages("school_unit")
    page = session.get(f"/tasks/{task['id']}").get_data(as_text=True)
    assert 'name="indicator_scores-3-actual"' in page and 'name="indicator_scores-4-not_applicable"' in page
    assert 'name="budget_execution-0-spent"' in page
    sent = form_fields(worked_example(task))
    del sent["indicator_scores-3-measure"]
    response = session.post_form(f"/tasks/{task['id']}", sent)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'data-field="indicator_scores-3-measure"' in html
    assert "Give the improvement measure: &#39;Cost per site&#39; scores 5.71 of 7.14." in html
    assert re.search(r'name="indicator_scores-3-actual"\s+value="114000"', html)
    response = session.post_form(f"/tasks/{task['id']}", form_fields(worked_example(task)))
    assert response.status_code == 302
    assert case_of(api, case_id)["data"]["self_score"] == 93.47


# ---- the competent department's check --------------------------------------------------------

def test_competent_department_returns_and_the_unit_resubmits(demo_core, actor, api, campaign):
    case_id = cases_by_code(demo_core, actor, campaign)["EDU-2027-001"]
    task = the_task(api, "school_unit", case_id, "self_assess")
    assert complete(api, "school_unit", task["id"], worked_example(task)).status_code == 200
    check = the_task(api, "edu_bureau", case_id, "competent_check")
    assert check["data"] == {}
    # A return needs the opinion.
    r = complete(api, "edu_bureau", check["id"], {"competent_decision": "return"})
    assert r.status_code == 400 and "competent_comment" in r.get_json()["details"]
    r = complete(api, "edu_bureau", check["id"], {"competent_decision": "return",
                                                  "competent_comment": "The survey was held: score it."})
    assert r.status_code == 200, r.get_json()
    again = the_task(api, "school_unit", case_id, "self_assess")
    assert "The survey was held: score it." in again["instructions"]
    assert "total last submitted: 93.47" in again["instructions"]
    # The earlier entries come back prefilled, with their scores.
    assert again["data"]["indicator_scores"][4]["not_applicable"] is True
    assert again["data"]["indicator_scores"][3]["score"] == 5.71
    data = copy.deepcopy(again["data"])
    data["indicator_scores"][4].update(not_applicable=False, actual=3300, cause="", measure="")
    assert complete(api, "school_unit", again["id"], data).status_code == 200
    # 9 + 21.43 + 14.29 + 5 + 5.712 + 30 + 10 = 95.43: no rescaling now.
    assert case_of(api, case_id)["data"]["self_score"] == 95.43
    assert row_of(demo_core, case_id).score == Decimal("95.43")
    check = the_task(api, "edu_bureau", case_id, "competent_check")
    assert complete(api, "edu_bureau", check["id"], {"competent_decision": "approve"}).status_code == 200
    # Approved: the case now waits for the spot-check draw, with no task open.
    case = case_of(api, case_id)
    assert case["status"] == "running" and case["tasks"] == []
    opinions = [e for e in case["history"] if e["action"] == "completed" and e["task"] == "Competent department check"]
    assert len(opinions) == 2


def test_tasks_belong_to_that_projects_unit_and_department(demo_core, actor, api, campaign):
    case_id = cases_by_code(demo_core, actor, campaign)["EDU-2027-001"]
    task = the_task(api, "school_unit", case_id, "self_assess")
    for username in ("farm_unit", "edu_bureau", "perf1", "edu_section"):
        assert complete(api, username, task["id"], full_marks(task)).status_code == 403, username
    assert complete(api, "school_unit", task["id"], full_marks(task)).status_code == 200
    check = tasks_of(api, "edu_bureau", case_id)[0]
    for username in ("agri_bureau", "school_unit", "perf1", "edu_section"):
        assert complete(api, username, check["id"], {"competent_decision": "approve"}).status_code == 403, username


# ---- the draw, the review, the rectification -------------------------------------------------

def test_spot_check_end_to_end_through_the_api(demo_core, actor, api, campaign):
    cases = cases_by_code(demo_core, actor, campaign)
    # Both education projects are self-assessed and approved before the draw; agriculture not yet.
    submit_and_approve(api, cases["EDU-2027-001"], "EDU-2027-001", worked_example)
    submit_and_approve(api, cases["EDU-2027-003"], "EDU-2027-003")

    # Only the performance section draws.
    population = [AGR, EDU]
    seed = seed_drawing(population, 0.5, [EDU])
    assert api("school_unit").post(f"{P}/campaigns/{campaign}/draw",
                                   json={"ratio": 0.5, "seed": seed}).status_code == 403
    r = api("perf1").post(f"{P}/campaigns/{campaign}/draw", json={"ratio": 0.5, "seed": seed})
    assert r.status_code == 200, r.get_json()
    draw = r.get_json()["draw"]
    assert (draw["ratio"], draw["seed"], draw["population"], draw["sampled"]) == (0.5, seed, population, [EDU])
    # Anyone holding the seed and the population repeats the draw.
    assert sampling.draw(draw["population"], draw["ratio"], draw["seed"]) == draw["sampled"]
    with demo_core.db.reading() as s:
        stored = s.get(Campaign, campaign)
        assert (stored.seed, stored.population, stored.sampled, float(stored.sample_ratio)) == (
            seed, population, [EDU], 0.5)
        audit = s.scalars(select(AuditEvent).where(AuditEvent.action == "spot_check_drawn")).one()
        assert audit.data["seed"] == seed and audit.data["sampled"] == [EDU]
    # A draw is never repeated.
    again = api("perf1").post(f"{P}/campaigns/{campaign}/draw", json={"ratio": 0.5, "seed": "other"})
    assert again.status_code == 409

    # The drawn department's cases wait for the performance section's review.
    assert row_of(demo_core, cases["EDU-2027-001"]).sampled is True
    review = the_task(api, "perf1", cases["EDU-2027-001"], "spot_check_review")
    assert [row["criterion"] for row in review["data"]["criteria"]] == CRITERIA
    assert f"seed {seed}" in review["instructions"] and "93.47 of 100" in review["instructions"]
    assert "10 points or more from the self score is flagged" in review["instructions"]
    for username in ("school_unit", "edu_bureau", "edu_section", "review1"):
        assert complete(api, username, review["id"], {}).status_code == 403, username

    # A criterion not fully met needs the problems found.
    sheet = review_sheet(review, {"data_accuracy": "partly", "result_objectivity": "not_met"})
    r = complete(api, "perf1", review["id"], {"criteria": sheet, "review_score": 80,
                                              "review_summary": "Data partly unsupported.", "review_problems": []})
    assert r.status_code == 400 and "review_problems" in r.get_json()["details"]
    problems = [{"description": "Cost per site not supported by invoices", "requirement": "File the invoices"},
                {"description": "Satisfaction survey sample too small"}]
    r = complete(api, "perf1", review["id"], {"criteria": sheet, "review_score": 80,
                                              "review_summary": "Data partly unsupported.",
                                              "review_problems": problems})
    assert r.status_code == 200, r.get_json()
    row = row_of(demo_core, cases["EDU-2027-001"])
    # |93.47 - 80| = 13.47 >= 10: flagged.
    assert (row.review_score, row.gap_flag, row.review["gap"]) == (Decimal("80.00"), True, 13.47)
    assert [c["rating"] for c in row.review["criteria"]] == ["met", "met", "partly", "not_met"]
    assert row.reviewed_at is not None and row.review["summary"] == "Data partly unsupported."

    # Each problem is notified to the unit and rectified; the funding section checks.
    rectify = tasks_of(api, "school_unit", cases["EDU-2027-001"])
    assert sorted(t["name"] for t in rectify) == ["Rectify the problem"] * 2
    with demo_core.db.reading() as s:
        rows = list(s.scalars(select(Problem).where(Problem.case_id == cases["EDU-2027-001"])))
        assert sorted((p.origin, p.status, p.description) for p in rows) == [
            ("self_assessment", "notified", "Cost per site not supported by invoices"),
            ("self_assessment", "notified", "Satisfaction survey sample too small")]
    evidence = [{"title": "Invoices filed", "reference": "EDU-2028-3"}]
    for task in rectify:
        r = complete(api, "school_unit", task["id"], {"rectification_measures": "Done.",
                                                      "rectification_evidence": evidence})
        assert r.status_code == 200, r.get_json()
    checks = tasks_of(api, "edu_section", cases["EDU-2027-001"])
    assert len(checks) == 2
    first, second = checks
    assert complete(api, "edu_section", first["id"], {"check_decision": "return",
                                                      "check_comment": "Two invoices missing."}).status_code == 200
    assert complete(api, "edu_section", second["id"], {"check_decision": "approve"}).status_code == 200
    redo = tasks_of(api, "school_unit", cases["EDU-2027-001"])
    assert len(redo) == 1
    assert complete(api, "school_unit", redo[0]["id"], {"rectification_measures": "All filed.",
                                                        "rectification_evidence": evidence}).status_code == 200
    last = tasks_of(api, "edu_section", cases["EDU-2027-001"])
    assert complete(api, "edu_section", last[0]["id"], {"check_decision": "approve"}).status_code == 200
    case = case_of(api, cases["EDU-2027-001"])
    assert case["status"] == "completed"
    assert "problems_rectified" in case["completed_steps"] and "reviewed_no_problems" not in case["completed_steps"]
    with demo_core.db.reading() as s:
        assert {p.status for p in s.scalars(select(Problem).where(Problem.case_id == cases["EDU-2027-001"]))} == \
            {"rectified"}

    # The other drawn case: reviewed without problems, a gap under the flag.
    review = the_task(api, "perf1", cases["EDU-2027-003"], "spot_check_review")
    r = complete(api, "perf1", review["id"], {"criteria": review_sheet(review), "review_score": 91,
                                              "review_summary": "Sound.", "review_problems": []})
    assert r.status_code == 200, r.get_json()
    assert case_of(api, cases["EDU-2027-003"])["status"] == "completed"
    row = row_of(demo_core, cases["EDU-2027-003"])
    assert (row.score, row.review_score, row.gap_flag) == (Decimal("100.00"), Decimal("91.00"), False)

    # Agriculture was not drawn; its case, approved after the draw, gets the result at once.
    agr = cases["AGR-2027-002"]
    assert case_of(api, agr)["status"] == "running"
    submit_and_approve(api, agr, "AGR-2027-002")
    case = case_of(api, agr)
    assert case["status"] == "completed"
    assert [e for e in case["history"] if e["action"] == "finished"][0]["data"]["end"] == "Self-assessment accepted"
    assert "spot_check_review" not in case["completed_steps"]
    assert row_of(demo_core, agr).sampled is False
    assert case["data"]["draw"]["sampled"] is False and case["data"]["draw"]["seed"] == seed

    # The campaign's overview shows each case's facts, and it can now close.
    detail = api("perf1").get(f"{P}/campaigns/{campaign}").get_json()
    facts = {row["project"]["code"]: (row["score"], row["sampled"], row["review_score"], row["gap_flag"])
             for row in detail["cases"]}
    assert facts == {"EDU-2027-001": (93.47, True, 80.0, True), "EDU-2027-003": (100.0, True, 91.0, False),
                     "AGR-2027-002": (100.0, False, None, False)}
    assert api("perf1").post(f"{P}/campaigns/{campaign}/close").status_code == 200


def test_a_case_still_at_the_unit_when_drawn_is_reviewed_after_its_approval(demo_core, actor, api, campaign):
    cases = cases_by_code(demo_core, actor, campaign)
    seed = seed_drawing([AGR, EDU], 0.5, [AGR])
    drawn = demo_core.campaigns.draw(actor("perf1"), campaign, 0.5, seed)
    assert drawn.sampled == [AGR]
    submit_and_approve(api, cases["AGR-2027-002"], "AGR-2027-002")
    review = the_task(api, "perf1", cases["AGR-2027-002"], "spot_check_review")
    assert review["name"] == "Spot-check review"
    assert row_of(demo_core, cases["AGR-2027-002"]).sampled is True
    # The education cases, not drawn, end as soon as they are approved.
    submit_and_approve(api, cases["EDU-2027-003"], "EDU-2027-003")
    assert case_of(api, cases["EDU-2027-003"])["status"] == "completed"
    assert tasks_of(api, "perf1", cases["EDU-2027-003"]) == []


def test_a_draw_made_while_the_approval_is_being_saved_still_reaches_the_case(demo_core, actor, api, campaign,
                                                                              between):
    """The draw tells every case of the campaign whether it was drawn; a case that is not yet
    waiting for that message gets it when it arrives there. The draw is made while the
    competent department's approval, which brings the case there, is being prepared: the case
    is reviewed all the same (PostgreSQL: the draw waits for the case's row; SQLite: the
    approval's save reads the draw)."""
    cases = cases_by_code(demo_core, actor, campaign)
    case_id = cases["AGR-2027-002"]
    unit, competent, _ = PROJECTS["AGR-2027-002"]
    task = the_task(api, unit, case_id, "self_assess")
    assert complete(api, unit, task["id"], full_marks(task)).status_code == 200
    check = the_task(api, competent, case_id, "competent_check")
    seed = seed_drawing([AGR, EDU], 0.5, [AGR])
    outcome: list = []

    def draw():
        try:
            outcome.append(demo_core.campaigns.draw(actor("perf1"), campaign, 0.5, seed).sampled)
        except Exception as exc:    # checked below, in the test's thread
            outcome.append(exc)
    drawing = threading.Thread(target=draw)

    def draw_meanwhile():
        drawing.start()
        wait_until_done_or_blocked(demo_core, drawing)
    between(draw_meanwhile)

    assert complete(api, competent, check["id"], {"competent_decision": "approve"}).status_code == 200
    drawing.join(60)

    assert not drawing.is_alive() and outcome == [[AGR]], outcome
    review = the_task(api, "perf1", case_id, "spot_check_review")
    assert review["name"] == "Spot-check review"
    assert row_of(demo_core, case_id).sampled is True


def test_the_same_seed_and_population_give_the_same_sample_whatever_the_order():
    departments = [f"Department {i}" for i in range(12)]
    first = sampling.draw(departments, 0.25, "audit-2027")
    assert first == sampling.draw(list(reversed(departments)), 0.25, "audit-2027")
    assert len(first) == 3 and first == sorted(first)
    assert any(sampling.draw(departments, 0.25, f"audit-{i}") != first for i in range(5))


def test_a_case_that_meets_a_sent_message_as_it_starts_is_saved_past_it(demo_core, actor, project_id,
                                                                         deploy_test_model, monkeypatch):
    """A case whose start runs into a message event whose message was already sent (a standing
    message, as the spot-check draw is) receives it in the start's transaction: what is saved (its
    state, its current step, its inbox and history) is the case past the event, not waiting at it."""
    from engine import links
    from engine.campaigns import DRAW_MESSAGE
    from SpiffWorkflow.util.task import TaskState
    from engine.serializer import load_state
    from storage.models import Case
    deploy_test_model("message_start_demo")
    draw = {"sampled": ["Education Bureau"], "seed": "audit-2027"}
    monkeypatch.setattr(links, "standing_messages", lambda s, case: [(DRAW_MESSAGE, draw)])

    started = demo_core.cases.start(actor("perf1"), "message_start_demo", project_id("EDU-2027-001"))

    with demo_core.db.reading() as s:
        case = s.get(Case, started.id)
        tasks = queries.open_tasks_of_case(s, case.id)
        actions = [e.action for e in s.scalars(select(AuditEvent).where(AuditEvent.case_id == case.id)
                                                .order_by(AuditEvent.id))]
    assert (case.status, case.current_steps) == ("running", "Review the drawn project")
    assert [t.step for t in tasks] == ["review"]
    assert actions == ["started", "message"]
    loaded = demo_core.specs.get(case.process_version_id)
    workflow = load_state(case.state, loaded.model.spec, loaded.model.subprocess_specs)
    [ready] = workflow.get_tasks(state=TaskState.READY)
    assert ready.task_spec.name == "review"
    assert ready.data["draw"] == draw
