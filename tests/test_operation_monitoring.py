"""Link 3, operation monitoring, end to end through the JSON API as the demo users.

A campaign opens one case per budget project at a cut-off date (30 September 2027 here:
day 273 of 365, so 74.79% of the year has elapsed). The unit reports spent and indicator
progress; the lights follow the rules of rules/warnings.py with the bands in the settings;
yellow and red projects need the unit's explanation; the funding section monitors the
projects finance selected and every warned one, may return the report, and decides the
outcome; "correct" sends each problem through the shared rectification model.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from engine import monitoring
from engine.demo import sample_goals
from storage import queries
from storage.models import Case, MonitoringRecord, Problem

CUTOFF = date(2027, 9, 30)
SHARE = Decimal(273) / Decimal(365)
APPROVED = ("EDU-2027-001", "EDU-2027-003", "AGR-2027-001")     # AGR-2027-001 is a key project
BUDGET = {"EDU-2027-001": 1_200_000, "EDU-2027-003": 2_000_000, "AGR-2027-001": 8_000_000}
UNIT = {"EDU-2027-001": "school_unit", "EDU-2027-003": "school_unit", "AGR-2027-001": "farm_unit"}
FUNDING = {"EDU-2027-001": "edu_section", "EDU-2027-003": "edu_section", "AGR-2027-001": "agri_section"}
INDICATORS = [i["name"] for i in sample_goals("x")["indicators"]]
EXPLANATION = {"causes": [{"cause": "rules", "detail": "Tender repeated after a complaint"},
                          {"cause": "equipment", "detail": "Cameras delivered late"}],
               "explanation": "Works started two months late; payments follow the works.",
               "measures": "Second contractor from October; weekly site meetings; payment by milestones."}
DOCS = [{"title": "Payment ledger to 30 September", "reference": "KJ-2027-09"}]


# ---- setting the scene ------------------------------------------------------------------------

@pytest.fixture
def approved(demo_core, actor, project_id):
    """Three 2027 projects whose goals (the demo sample goals) went through the goal review."""
    by_role = {"review_center": "review1", "performance": "perf1", "third_party": "expert1"}
    for code in APPROVED:
        edu = code.startswith("EDU")
        users = {**by_role, "unit": UNIT[code], "competent": "edu_bureau" if edu else "agri_bureau",
                 "funding": FUNDING[code]}
        case = demo_core.cases.start(actor(UNIT[code]), "goal_review", project_id(code))
        while True:
            view = demo_core.reads.case(actor("supervisor"), case.id, with_data=False)
            if view["status"] != "running":
                break
            task = view["tasks"][0]
            data = (sample_goals(code) if task["role"] == "unit" else
                    {"decision": "approve", "comment": "Fine.",
                     **({"grade": "good"} if task["step"] == "preliminary_review" else {})})
            demo_core.cases.complete(actor(users[task["role"]]), task["id"], data)
        assert view["status"] == "completed"


@pytest.fixture
def launch(demo_core, actor, approved):
    """launch(key=[codes]) -> {project code: case id} of a new monitoring campaign at CUTOFF."""
    def run(key=(), cutoff=CUTOFF) -> dict[str, int]:
        campaign = demo_core.campaigns.launch(actor("perf1"), "monitoring", 2027, cutoff, list(key))
        with demo_core.db.reading() as s:
            cases = s.scalars(select(Case).where(Case.campaign_id == campaign.id)).all()
            return {c.project.code: c.id for c in cases}
    return run


def figures(code: str, spent_share=0.75, sites=9, pass_rate=80, cost=90000, people=2500, satisfaction=70) -> dict:
    """The unit's report: by default all green (75% spent, every indicator near its pro-rata target).
    Pro-rata targets at the cut-off: sites 8.98, pass rate 74.79, people 2,243.8, satisfaction 67.31."""
    values = {"Sites completed": sites, "Acceptance pass rate": pass_rate, "Completed by year end": "On schedule",
              "Cost per site": cost, "People served": people, "Beneficiary satisfaction": satisfaction}
    year_end = {"Sites completed": 12, "Acceptance pass rate": 100, "Completed by year end": "On schedule",
                "Cost per site": 93000, "People served": 3000, "Beneficiary satisfaction": 92}
    return {"spent": round(BUDGET[code] * spent_share, 2),
            "progress": [{"current": values[name], "expected": year_end[name], "likelihood": "likely",
                          "note": "Site records"} for name in INDICATORS],
            "attachments": DOCS}


def open_tasks(api, username: str, case_id: int) -> list[dict]:
    return [t for t in api(username).get("/api/v1/tasks").get_json()["items"] if t["case_id"] == case_id]


def the_task(api, username: str, case_id: int, step: str | None = None) -> dict:
    tasks = open_tasks(api, username, case_id)
    assert len(tasks) == 1, tasks
    if step:
        assert tasks[0]["step"] == step, tasks[0]
    return tasks[0]


def complete(api, username: str, task: dict, data: dict, status: int = 200):
    answer = api(username).post(f"/api/v1/tasks/{task['id']}/complete", json={"data": data})
    assert answer.status_code == status, answer.get_json()
    return answer.get_json()


def report(api, code: str, case_id: int, data: dict | None = None, status: int = 200):
    task = the_task(api, UNIT[code], case_id, "self_monitoring")
    return complete(api, UNIT[code], task, data if data is not None else figures(code), status)


def case(api, case_id: int) -> dict:
    return api("perf1").get(f"/api/v1/cases/{case_id}").get_json()


def record(core, case_id: int) -> MonitoringRecord | None:
    with core.db.reading() as s:
        row = s.scalars(select(MonitoringRecord).where(MonitoringRecord.case_id == case_id)).first()
        if row is not None:
            s.expunge(row)
        return row


def user_id(core, username: str) -> int:
    with core.db.reading() as s:
        return queries.user_by_username(s, username).id


# ---- the rules, worked by hand -------------------------------------------------------------

SITES = {"level1": "output", "name": "Sites completed", "operator": ">=", "target": "12", "unit": "sites"}
COST = {"level1": "output", "name": "Cost per site", "operator": "<=", "target": "95000", "unit": "yuan"}
ON_TIME = {"level1": "output", "name": "Completed by year end", "operator": "qualitative", "target": "On schedule"}


def entry(current, expected=12):
    return {"current": current, "expected": expected, "likelihood": "likely"}


@pytest.mark.parametrize("cutoff, share", [
    (date(2027, 9, 30), "0.7479"),      # 273 / 365
    (date(2027, 7, 31), "0.5808"),      # 212 / 365
    (date(2028, 6, 30), "0.4973"),      # 182 / 366, a leap year
    (date(2027, 12, 31), "1.0000"),
])
def test_share_of_the_year_elapsed_counts_days(cutoff, share):
    assert round(monitoring.year_share(cutoff), 4) == Decimal(share)


@pytest.mark.parametrize("spent, rate, ratio, light", [
    # execution rate / 0.747945: 0.75 / 0.747945 = 1.0027; 0.5 / 0.747945 = 0.6685; 0.41667 / 0.747945 = 0.5571
    (900_000, 0.75, 1.0027, "green"),
    (600_000, 0.5, 0.6685, "yellow"),
    (500_000, 0.4167, 0.5571, "red"),
    (0, 0.0, 0.0, "red"),
])
def test_budget_light_is_the_execution_rate_against_the_share_of_the_year(spent, rate, ratio, light):
    result = monitoring.report(1_200_000, spent, CUTOFF, [], [], {})
    assert (result["execution_rate"], result["budget_ratio"], result["budget_light"]) == (rate, ratio, light)
    assert result["light"] == light and result["errors"] == {}


@pytest.mark.parametrize("indicator, current, ratio, light", [
    # pro-rata target 12 x 0.747945 = 8.975
    (SITES, 9, 1.0027, "green"),
    (SITES, 6, 0.6685, "yellow"),       # 6 / 8.975
    (SITES, 5, 0.5571, "red"),          # 5 / 8.975
    (SITES, 11, 1.2256, "blue"),        # 11 / 8.975: ahead of schedule
    (COST, 96000, None, "red"),         # "≤": red once over the target
    (COST, 95000, None, "green"),
    (ON_TIME, "Works under way", None, None),    # qualitative indicators are not lit
])
def test_indicator_lights_against_the_pro_rata_target(indicator, current, ratio, light):
    result = monitoring.report(1_200_000, 900_000, CUTOFF, [indicator], [entry(current)], {})
    row = result["indicators"][0]
    assert (row["ratio"], row["light"]) == (ratio, light)
    assert result["errors"] == {}
    if indicator is SITES:
        assert row["pro_rata_target"] == 8.98 and row["deviation"] == 0


def test_the_project_light_is_the_worst_light():
    progress = [entry(11), entry(90000, 93000), entry("On schedule", "On schedule")]
    result = monitoring.report(1_200_000, 900_000, CUTOFF, [SITES, COST, ON_TIME], progress, {})
    assert [r["light"] for r in result["indicators"]] == ["blue", "green", None]
    assert result["light"] == "green"       # blue (ahead) is no warning, green budget
    progress[1] = entry(96000, 93000)
    result = monitoring.report(1_200_000, 600_000, CUTOFF, [SITES, COST, ON_TIME], progress, {})
    assert (result["budget_light"], result["light"]) == ("yellow", "red")


def test_the_bands_come_from_the_settings():
    tighter = monitoring.bands_from({"monitoring.bands": {"budget_red_below": 0.7, "budget_yellow_below": 0.9,
                                                          "indicator_red_below": 0.5, "indicator_yellow_below": 0.6,
                                                          "indicator_blue_from": 1.5}})
    result = monitoring.report(1_200_000, 600_000, CUTOFF, [SITES], [entry(5)], tighter)
    # 0.6685 is red under a 0.7 red band; 5 / 8.975 = 0.557 is yellow above a 0.5 red band.
    assert (result["budget_light"], result["indicators"][0]["light"]) == ("red", "yellow")
    assert result["bands_text"] == ("budget red below 70%, yellow below 90%; ≥ indicators red below 50%, "
                                    "yellow below 60%, blue from 150%")


def test_the_report_names_the_fields_at_fault():
    result = monitoring.report(1_200_000, 1_300_000, CUTOFF, [SITES, COST], [entry("about nine")], {})
    assert result["errors"] == {
        "spent": "More than the project's budget of 1,200,000.00 yuan.",
        "progress": "Keep one row per approved indicator (2), in the order given; 1 were sent.",
        "progress.0.current": "Enter a number: this indicator is quantitative.",
        "progress.1.current": "Enter a number: this indicator is quantitative.",
        "progress.1.expected": "Enter a number: this indicator is quantitative."}


# ---- starting ------------------------------------------------------------------------------

def test_monitoring_cases_are_only_opened_by_a_campaign(approved, api):
    answer = api("perf1").post("/api/v1/cases", json={"process": "operation_monitoring", "project": "EDU-2027-001"})
    assert answer.status_code == 409
    assert answer.get_json()["error"].startswith("these cases are opened for every project at once by a campaign")
    # The unit cannot start one either: the campaign is the performance section's.
    answer = api("school_unit").post("/api/v1/cases", json={"process": "operation_monitoring",
                                                            "project": "EDU-2027-001"})
    assert answer.status_code == 403


def test_the_unit_starts_from_its_approved_indicators(launch, api):
    cases = launch()
    task = the_task(api, "school_unit", cases["EDU-2027-001"], "self_monitoring")
    assert task["title"] == ("Self-monitoring report: Campus safety upgrade (EDU-2027-001), "
                             "monitoring at 2027-09-30")
    assert open_tasks(api, "farm_unit", cases["EDU-2027-001"]) == []
    detail = api("school_unit").get(f"/api/v1/tasks/{task['id']}").get_json()
    rows = detail["data"]["progress"]
    assert [(r["name"], r["operator"], r["target"]) for r in rows] == [
        (i["name"], i["operator"], i["target"]) for i in sample_goals("x")["indicators"]]
    assert "current" not in rows[0] and "unit" not in rows[2]      # qualitative: no unit
    assert "cut-off date **2027-09-30**" not in detail["instructions"]      # rendered, not raw Markdown
    assert "2027-09-30" in detail["instructions"] and "1,200,000.00" in detail["instructions"]
    assert set(detail["form"]["schema"]["properties"]) == {"spent", "progress", "attachments"}


# ---- the paths -----------------------------------------------------------------------------

def test_a_green_project_outside_key_monitoring_continues_by_itself(demo_core, launch, api, actor):
    cases = launch()
    case_id = cases["EDU-2027-001"]
    report(api, "EDU-2027-001", case_id)
    view = case(api, case_id)
    assert view["status"] == "completed"
    assert view["data"]["report"]["light"] == "green" and view["data"]["outcome"] == "continue"
    row = record(demo_core, case_id)
    assert (row.light, row.budget_light, row.outcome, row.key_monitoring) == ("green", "green", "continue", False)
    assert (row.budget, row.spent, row.execution_rate) == (Decimal("1200000.00"), Decimal("900000.00"),
                                                            Decimal("0.7500"))
    assert row.decided_by_id is None and row.decided_at is not None and row.cutoff_date == CUTOFF
    assert [(i["name"], i["light"]) for i in row.indicators] == [
        ("Sites completed", "green"), ("Acceptance pass rate", "green"), ("Completed by year end", None),
        ("Cost per site", "green"), ("People served", "green"), ("Beneficiary satisfaction", "green")]
    # The campaign overview reads the record.
    campaign = demo_core.campaigns.detail(actor("perf1"), _campaign_of(demo_core, case_id))
    facts = next(r for r in campaign["cases"] if r["case_id"] == case_id)
    assert (facts["light"], facts["outcome"], facts["execution_rate"]) == ("green", "continue", 0.75)


def _campaign_of(core, case_id: int) -> int:
    with core.db.reading() as s:
        return s.get(Case, case_id).campaign_id


def test_a_yellow_project_needs_the_units_explanation_then_finance_decides(demo_core, launch, api):
    cases = launch()
    case_id = cases["EDU-2027-001"]
    report(api, "EDU-2027-001", case_id, figures("EDU-2027-001", spent_share=0.5))   # 600,000 of 1,200,000
    assert record(demo_core, case_id).light == "yellow"

    task = the_task(api, "school_unit", case_id, "explain_warning")
    detail = api("school_unit").get(f"/api/v1/tasks/{task['id']}").get_json()
    # The lights with the numbers that made them.
    for shown in ("Yellow", "600,000.00 of 1,200,000.00 yuan spent (50.0%)", "74.8% of the year elapsed",
                  "66.8%", "pro-rata target 8.98", "budget red below 60%, yellow below 80%"):
        assert shown in detail["instructions"], shown
    missing = complete(api, "school_unit", task, {k: v for k, v in EXPLANATION.items() if k != "measures"}, 400)
    assert missing["details"] == {"measures": "This field is required."}
    no_cause = complete(api, "school_unit", task, {**EXPLANATION, "causes": []}, 400)
    assert "causes" in no_cause["details"]
    complete(api, "school_unit", task, EXPLANATION)
    row = record(demo_core, case_id)
    assert (row.causes, row.measures) == (EXPLANATION["causes"], EXPLANATION["measures"])

    # A warned project goes to its own funding section, whether finance selected it or not.
    assert open_tasks(api, "agri_section", case_id) == []
    review = the_task(api, "edu_section", case_id, "key_monitoring")
    detail = api("edu_section").get(f"/api/v1/tasks/{review['id']}").get_json()
    assert detail["data"] == {}
    for shown in ("Reviewed because of its warning light", "Tender repeated after a complaint",
                  "Second contractor from October", "Payment ledger to 30 September"):
        assert shown in detail["instructions"], shown
    complete(api, "edu_section", review, {"monitoring_decision": "approve", "outcome": "continue",
                                          "monitoring_comment": "Delay explained; measures credible."})
    assert case(api, case_id)["status"] == "completed"
    row = record(demo_core, case_id)
    assert (row.outcome, row.findings, row.decided_by_id) == (
        "continue", "Delay explained; measures credible.", user_id(demo_core, "edu_section"))


@pytest.mark.parametrize("outcome", ["continue", "adjust_budget", "suspend"])
def test_key_monitoring_of_a_selected_green_project_records_the_outcome(demo_core, launch, api, outcome):
    cases = launch()                                    # no selection: the key projects
    case_id = cases["AGR-2027-001"]
    report(api, "AGR-2027-001", case_id)
    review = the_task(api, "agri_section", case_id, "key_monitoring")    # green, but selected
    assert "Selected for key monitoring" in api("agri_section").get(
        f"/api/v1/tasks/{review['id']}").get_json()["instructions"]
    complete(api, "agri_section", review, {"monitoring_decision": "approve", "outcome": outcome,
                                           "monitoring_comment": "Checked on site."})
    view = case(api, case_id)
    assert view["status"] == "completed"
    assert [e["data"]["end"] for e in view["history"] if e["action"] == "finished"] == ["Outcome decided"]
    row = record(demo_core, case_id)
    assert (row.light, row.key_monitoring, row.outcome, row.reduced_amount) == ("green", True, outcome, None)


def test_finance_selection_replaces_the_key_projects(launch, api):
    cases = launch(key=["EDU-2027-003"])
    report(api, "AGR-2027-001", cases["AGR-2027-001"])
    assert case(api, cases["AGR-2027-001"])["status"] == "completed"        # key, but not selected
    report(api, "EDU-2027-003", cases["EDU-2027-003"])
    the_task(api, "edu_section", cases["EDU-2027-003"], "key_monitoring")


def test_reducing_funds_needs_an_amount_within_the_budget(demo_core, launch, api):
    cases = launch()
    case_id = cases["AGR-2027-001"]
    report(api, "AGR-2027-001", case_id)
    review = the_task(api, "agri_section", case_id, "key_monitoring")
    decision = {"monitoring_decision": "approve", "outcome": "reduce_funds",
                "monitoring_comment": "Training demand lower than planned."}
    assert complete(api, "agri_section", review, decision, 400)["details"] == {
        "reduced_amount": "This field is required."}
    assert "reduced_amount" in complete(api, "agri_section", review, {**decision, "reduced_amount": 0}, 400)["details"]
    too_much = complete(api, "agri_section", review, {**decision, "reduced_amount": 8_000_001}, 400)
    assert too_much["details"] == {"reduced_amount": "At most the budget of 8,000,000.00 yuan."}
    # Nothing of the refused attempts was kept.
    assert record(demo_core, case_id).outcome is None
    assert the_task(api, "agri_section", case_id)["id"] == review["id"]
    complete(api, "agri_section", review, {**decision, "reduced_amount": 1_250_000.5})
    row = record(demo_core, case_id)
    assert (row.outcome, row.reduced_amount) == ("reduce_funds", Decimal("1250000.50"))
    assert case(api, case_id)["status"] == "completed"


def test_correct_sends_each_problem_through_rectification(demo_core, launch, api):
    cases = launch()
    case_id = cases["EDU-2027-001"]
    report(api, "EDU-2027-001", case_id, figures("EDU-2027-001", cost=96000))     # over the cost ceiling
    assert record(demo_core, case_id).light == "red"
    complete(api, "school_unit", the_task(api, "school_unit", case_id, "explain_warning"), EXPLANATION)
    review = the_task(api, "edu_section", case_id, "key_monitoring")
    decision = {"monitoring_decision": "approve", "outcome": "correct",
                "monitoring_comment": "Unit costs above the approved ceiling."}
    assert "problems" in complete(api, "edu_section", review, decision, 400)["details"]
    assert "problems" in complete(api, "edu_section", review, {**decision, "problems": []}, 400)["details"]
    complete(api, "edu_section", review, {**decision, "problems": [
        {"description": "Cost per site above the approved 95,000 yuan", "requirement": "Renegotiate the contract"},
        {"description": "No cost records per site", "deadline": "2027-11-15"}]})
    assert record(demo_core, case_id).outcome == "correct"
    with demo_core.db.reading() as s:
        problems = {p.description: (p.origin, p.status, p.deadline)
                    for p in s.scalars(select(Problem).where(Problem.case_id == case_id))}
    assert problems["No cost records per site"] == ("monitoring", "notified", date(2027, 11, 15))
    assert problems["Cost per site above the approved 95,000 yuan"][:2] == ("monitoring", "notified")

    rectify = open_tasks(api, "school_unit", case_id)
    assert sorted(t["step"] for t in rectify) == ["rectify", "rectify"]
    for task in rectify:
        complete(api, "school_unit", task, {"rectification_measures": "Done",
                                            "rectification_evidence": [{"title": "Revised contract"}]})
    checks = open_tasks(api, "edu_section", case_id)
    assert len(checks) == 2 and open_tasks(api, "agri_section", case_id) == []
    for task in checks:
        complete(api, "edu_section", task, {"check_decision": "approve"})
    view = case(api, case_id)
    assert view["status"] == "completed"
    assert "rectified" in view["completed_steps"] and "decided" not in view["completed_steps"]
    with demo_core.db.reading() as s:
        assert {p.status for p in s.scalars(select(Problem).where(Problem.case_id == case_id))} == {"rectified"}
    # The monitoring fields survived the called model's data.
    assert view["data"]["outcome"] == "correct" and view["data"]["report"]["light"] == "red"


def test_finance_returns_the_report_and_the_unit_corrects_it(demo_core, launch, api):
    cases = launch()
    case_id = cases["EDU-2027-001"]
    first = figures("EDU-2027-001", spent_share=0.5)
    report(api, "EDU-2027-001", case_id, first)
    complete(api, "school_unit", the_task(api, "school_unit", case_id, "explain_warning"), EXPLANATION)
    review = the_task(api, "edu_section", case_id, "key_monitoring")
    no_reason = complete(api, "edu_section", review, {"monitoring_decision": "return"}, 400)
    assert no_reason["details"] == {"monitoring_comment": "This field is required."}
    complete(api, "edu_section", review, {"monitoring_decision": "return",
                                          "monitoring_comment": "The ledger shows 900,000 paid, not 600,000."})

    again = the_task(api, "school_unit", case_id, "self_monitoring")
    detail = api("school_unit").get(f"/api/v1/tasks/{again['id']}").get_json()
    assert "The ledger shows 900,000 paid, not 600,000" in detail["instructions"]
    assert "Yellow" in detail["instructions"]                   # the lights as last submitted
    # Prefilled with what the unit sent, under the approved indicators.
    assert detail["data"]["spent"] == 600_000
    assert [r["current"] for r in detail["data"]["progress"]] == [r["current"] for r in first["progress"]]
    assert detail["data"]["attachments"] == DOCS
    report(api, "EDU-2027-001", case_id, figures("EDU-2027-001"))
    row = record(demo_core, case_id)
    assert (row.light, row.spent) == ("green", Decimal("900000.00"))
    assert (row.causes, row.measures) == (None, "")       # the explanation was of the earlier warning

    # Green now, and not selected; but finance has the case in hand and decides it.
    second = the_task(api, "edu_section", case_id, "key_monitoring")
    detail = api("edu_section").get(f"/api/v1/tasks/{second['id']}").get_json()
    assert detail["data"] == {} and "returned for correction 1 time(s)" in detail["instructions"]
    complete(api, "edu_section", second, {"monitoring_decision": "approve", "outcome": "continue",
                                          "monitoring_comment": "Corrected figures match the ledger."})
    assert case(api, case_id)["status"] == "completed"
    with demo_core.db.reading() as s:
        assert len(s.scalars(select(MonitoringRecord).where(MonitoringRecord.case_id == case_id)).all()) == 1
    opinions = [o["decision"] for o in api("perf1").get(f"/api/v1/tasks/{second['id']}").get_json()
                ["context"]["opinions"]]
    assert opinions == ["return", "approve"]


def test_lights_follow_the_bands_an_administrator_sets(demo_core, launch, api, actor):
    cases = launch()
    # Both projects spend half their budget: 0.5 / 0.748 = 0.6685 of the pro-rata rate.
    report(api, "EDU-2027-001", cases["EDU-2027-001"], figures("EDU-2027-001", spent_share=0.5))
    demo_core.settings.update(actor("admin"), "monitoring.bands", {
        "budget_red_below": 0.7, "budget_yellow_below": 0.9, "indicator_red_below": 0.6,
        "indicator_yellow_below": 0.8, "indicator_blue_from": 1.2}, "provincial notice")
    report(api, "EDU-2027-003", cases["EDU-2027-003"], figures("EDU-2027-003", spent_share=0.5))
    assert record(demo_core, cases["EDU-2027-001"]).light == "yellow"
    assert record(demo_core, cases["EDU-2027-003"]).light == "red"
    task = the_task(api, "school_unit", cases["EDU-2027-003"], "explain_warning")
    assert "budget red below 70%, yellow below 90%" in api("school_unit").get(
        f"/api/v1/tasks/{task['id']}").get_json()["instructions"]


# ---- what the unit may not do with its report -------------------------------------------------

def test_the_report_is_checked_against_the_budget_and_the_approved_indicators(demo_core, launch, api):
    cases = launch()
    case_id = cases["EDU-2027-001"]
    data = figures("EDU-2027-001")
    over = report(api, "EDU-2027-001", case_id, {**data, "spent": 1_200_000.01}, 400)
    assert over["details"] == {"spent": "More than the project's budget of 1,200,000.00 yuan."}
    short = report(api, "EDU-2027-001", case_id, {**data, "progress": data["progress"][:5]}, 400)
    assert "progress" in short["details"]
    words = report(api, "EDU-2027-001", case_id, {**data, "progress": [
        {**data["progress"][0], "operator": ">=", "current": "nine"}, *data["progress"][1:]]}, 400)
    assert words["details"] == {"progress.0.current": "Enter a number."}
    missing = report(api, "EDU-2027-001", case_id, {"progress": data["progress"]}, 400)
    assert missing["details"] == {"spent": "This field is required."}
    # Nothing of the refused reports was kept: the record still has only what the launch set.
    row = record(demo_core, case_id)
    assert (row.spent, row.reported_at, row.light, row.key_monitoring) == (None, None, None, False)

    # The targets are the approved ones, whatever the unit sends in their columns.
    tampered = [{**row, "name": "Sites", "target": "1"} for row in data["progress"]]
    tampered[0]["current"] = 5                                     # 5 of a pro-rata 8.98: red
    report(api, "EDU-2027-001", case_id, {**data, "progress": tampered})
    row = record(demo_core, case_id)
    assert (row.indicators[0]["name"], row.indicators[0]["target"], row.indicators[0]["light"]) == (
        "Sites completed", "12", "red")
    assert [r["name"] for r in case(api, case_id)["data"]["progress"]] == INDICATORS


def test_only_the_projects_own_unit_and_funding_section_act(launch, api):
    cases = launch()
    case_id = cases["EDU-2027-001"]
    task = the_task(api, "school_unit", case_id, "self_monitoring")
    for user in ("farm_unit", "edu_section", "perf1", "edu_bureau"):
        complete(api, user, task, figures("EDU-2027-001"), 403)
    report(api, "EDU-2027-001", case_id, figures("EDU-2027-001", spent_share=0.5))
    explain = the_task(api, "school_unit", case_id, "explain_warning")
    complete(api, "farm_unit", explain, EXPLANATION, 403)
    complete(api, "school_unit", explain, EXPLANATION)
    review = the_task(api, "edu_section", case_id, "key_monitoring")
    decision = {"monitoring_decision": "approve", "outcome": "continue", "monitoring_comment": "Fine."}
    for user in ("agri_section", "school_unit", "perf1"):
        complete(api, user, review, decision, 403)
    complete(api, "edu_section", review, decision)
    # A finished task cannot be completed twice.
    assert complete(api, "edu_section", review, decision, 409)["error"].startswith("This task was already completed")


# ---- through the web --------------------------------------------------------------------------

def test_a_campaign_launched_through_the_api_opens_the_self_monitoring_tasks(approved, api):
    answer = api("perf1").post("/api/v1/campaigns", json={"kind": "monitoring", "year": 2027,
                                                          "cutoff_date": "2027-09-30",
                                                          "key_projects": ["EDU-2027-003"]})
    assert answer.status_code == 201, answer.get_json()
    rows = {r["project"]["code"]: r for r in answer.get_json()["cases"]}
    assert sorted(rows) == sorted(APPROVED)
    assert {r["light"] for r in rows.values()} == {None}          # nothing reported yet
    case_id = rows["EDU-2027-003"]["case_id"]
    report(api, "EDU-2027-003", case_id)
    the_task(api, "edu_section", case_id, "key_monitoring")
    overview = api("perf1").get(f"/api/v1/campaigns/{answer.get_json()['id']}").get_json()
    facts = next(r for r in overview["cases"] if r["case_id"] == case_id)
    assert (facts["light"], facts["key_monitoring"], facts["outcome"]) == ("green", True, None)


def test_the_report_through_the_task_page(demo_core, launch, pages):
    cases = launch()
    case_id = cases["EDU-2027-001"]
    with demo_core.db.reading() as s:
        task_id = queries.open_tasks_of_case(s, case_id)[0].id
    unit = pages("school_unit")
    page = unit.get(f"/tasks/{task_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Indicator progress" in html and "Sites completed" in html
    fields = {"spent": "600000", "attachments-0-title": "Payment ledger", "attachments-0-reference": "KJ-9"}
    for i, row in enumerate(figures("EDU-2027-001")["progress"]):
        sent = {**row, "current": str(row["current"]), "expected": str(row["expected"])}
        fields.update({f"progress-{i}-{k}": v for k, v in sent.items()})
    answer = unit.post_form(f"/tasks/{task_id}", fields)
    assert answer.status_code == 302, answer.get_data(as_text=True)[:2000]
    assert record(demo_core, case_id).light == "yellow"
    with demo_core.db.reading() as s:
        explain_id = queries.open_tasks_of_case(s, case_id)[0].id
    html = unit.get(f"/tasks/{explain_id}").get_data(as_text=True)
    assert "Explain the warning" in html and "<table>" in html and "66.8%" in html
