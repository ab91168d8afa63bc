"""Link 5, key performance evaluation, end to end through the JSON API as the demo users:
plan → evaluation (finance, third party or joint) → report review → the unit's feedback and
any objection → rectification of the problems found → the result the grade proposes."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine import key_evaluation
from storage.models import AuditEvent, Case, KeyEvaluation, Problem

FRAMEWORK = [{"dimension": "decision", "weight": 15, "content": "Establishment, goals, allocation"},
             {"dimension": "process", "weight": 20, "content": "Fund management, implementation"},
             {"dimension": "output", "weight": 35, "content": "Quantity, quality, timeliness, cost"},
             {"dimension": "effect", "weight": 30, "content": "Effects and satisfaction"}]
EVIDENCE = [{"kind": "document", "title": "Acceptance certificates", "reference": "JS-2027-044"},
            {"kind": "survey", "title": "Survey of 320 pupils and parents"}]


def plan(evaluator: str = "finance", **changes) -> dict:
    data = {"selection_reason": "amount", "selection_explanation": "6.5 million yuan, the largest in education.",
            "evaluator": evaluator, "scope": "All 2027 funds of the project and its 24 classrooms.",
            "methods": "Document review, on-site examination, satisfaction survey.",
            "schedule": "Fieldwork in March, draft report in April.", "report_due": "2028-04-30",
            "framework": FRAMEWORK}
    if evaluator != "finance":
        data["third_party_agency"] = "Mingjian Evaluation Consulting Co."
    return {**data, **changes}


def scores(decision, process, output, effect) -> list[dict]:
    return [{"dimension": d, "weight": row["weight"], "score": s, "basis": f"{d} basis"}
            for d, s, row in zip(("decision", "process", "output", "effect"),
                                 (decision, process, output, effect), FRAMEWORK)]


def evaluation(points=(14, 18, 30, 24), problems=(), **changes) -> dict:
    """An evaluation; the default scores total 86 (grade good)."""
    return {"evaluation_evidence": EVIDENCE, "site_examined_on": "2028-03-12",
            "site_findings": "All 24 classrooms in use; two projectors out of order.",
            "scores": scores(*points), "evaluation_report": "Outputs delivered on time; effects as planned.",
            "problems": [{"description": d, "requirement": f"Fix: {d}"} for d in problems], **changes}


class Flow:
    """Moves key evaluations along through the JSON API, checking who holds each step."""

    def __init__(self, api, core):
        self.api, self.core = api, core

    def start(self, code: str = "EDU-2027-002", who: str = "perf1") -> int:
        response = self.api(who).post("/api/v1/cases", json={"process": "key_evaluation", "project": code})
        assert response.status_code == 201, response.get_json()
        return response.get_json()["id"]

    def tasks(self, case_id: int) -> list[dict]:
        return self.api("supervisor").get(f"/api/v1/cases/{case_id}").get_json()["tasks"]

    def task(self, case_id: int, step: str | None = None) -> dict:
        tasks = self.tasks(case_id)
        assert len(tasks) == 1, tasks
        if step:
            assert tasks[0]["step"] == step, tasks[0]
        return tasks[0]

    def detail(self, who: str, task_id: int) -> dict:
        response = self.api(who).get(f"/api/v1/tasks/{task_id}")
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def post(self, who: str, case_id: int, data: dict, step: str | None = None):
        task = self.task(case_id, step)
        return self.api(who).post(f"/api/v1/tasks/{task['id']}/complete", json={"data": data})

    def do(self, who: str, case_id: int, data: dict, step: str | None = None) -> dict:
        response = self.post(who, case_id, data, step)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def case(self, case_id: int) -> dict:
        return self.api("supervisor").get(f"/api/v1/cases/{case_id}").get_json()

    def record(self, case_id: int) -> KeyEvaluation | None:
        with self.core.db.reading() as s:
            row = s.scalars(select(KeyEvaluation).where(KeyEvaluation.case_id == case_id)).first()
            s.expunge_all()
            return row

    def problems(self, case_id: int) -> list[Problem]:
        with self.core.db.reading() as s:
            rows = list(s.scalars(select(Problem).where(Problem.case_id == case_id).order_by(Problem.id)))
            s.expunge_all()
            return rows

    def through_review(self, case_id: int, data: dict | None = None) -> None:
        """Plan a finance evaluation, evaluate, and approve the report."""
        self.do("perf1", case_id, plan("finance"), "plan_evaluation")
        self.do("perf1", case_id, data or evaluation(), "finance_evaluation")
        self.do("perf1", case_id, {"report_decision": "approve"}, "review_report")


@pytest.fixture
def flow(api, demo_core):
    return Flow(api, demo_core)


def user_id(core, username: str) -> int:
    from storage import queries
    with core.db.reading() as s:
        return queries.user_by_username(s, username).id


# ---- deployment -----------------------------------------------------------------------------

def test_the_model_is_deployed_started_by_the_performance_section_and_bound_to_rectification(demo_core):
    versions = {v.key: v for v in demo_core.processes.latest()}
    assert versions["key_evaluation"].name == "Key performance evaluation"
    loaded = demo_core.specs.get(versions["key_evaluation"].id)
    assert loaded.model.start_role == "performance"
    assert loaded.model.calls == {"rectification": versions["rectification"].id}
    user_tasks = sorted(name for name, spec in loaded.model.spec.task_specs.items()
                        if type(spec).__name__ == "UserTask")
    assert user_tasks == sorted(["plan_evaluation", "finance_evaluation", "third_party_evaluation",
                                 "review_report", "unit_feedback", "consider_objection", "apply_result"])


def test_the_diagram_has_a_shape_for_every_element_and_every_user_task_a_lane_with_a_role():
    from lxml import etree
    from engine.processes import PROCESSES_DIR
    from engine.roles import role_for_lane
    ns = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
          "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI"}
    tree = etree.parse(str(PROCESSES_DIR / "key_evaluation" / "key_evaluation.bpmn"))
    process = tree.find("bpmn:process", ns)
    elements = {el.get("id") for el in process if el.get("id") and etree.QName(el).localname not in (
        "laneSet", "documentation")}
    elements |= {lane.get("id") for lane in process.iterfind(".//bpmn:lane", ns)}
    drawn = {el.get("bpmnElement") for el in tree.iterfind(".//bpmndi:BPMNShape", ns)} | {
        el.get("bpmnElement") for el in tree.iterfind(".//bpmndi:BPMNEdge", ns)}
    assert elements - drawn == set()
    in_lanes = {ref.text for ref in process.iterfind(".//bpmn:flowNodeRef", ns)}
    nodes = {el.get("id") for el in process if etree.QName(el).localname not in (
        "laneSet", "documentation", "sequenceFlow")}
    assert nodes == in_lanes
    assert {role_for_lane(lane.get("name")) for lane in process.iterfind(".//bpmn:lane", ns)} == {
        "performance", "third_party", "unit", "funding"}


# ---- the rules ------------------------------------------------------------------------------

@pytest.mark.parametrize("weights, message", [
    ((15, 20, 35, 20), "The framework weights add up to 90, not 100"),
    ((25, 25, 30, 20), "Output and effect weigh 50 together; the framework needs at least 60"),
])
def test_the_framework_rules(weights, message):
    rows = [{"dimension": d, "weight": w} for d, w in zip(key_evaluation.DIMENSIONS, weights)]
    with pytest.raises(ValueError, match=message):
        key_evaluation.check_plan(rows)


def test_a_framework_needs_each_dimension_once():
    with pytest.raises(ValueError, match="The framework lists the output dimension twice"):
        key_evaluation.check_plan(FRAMEWORK[:3] + [{**FRAMEWORK[2]}])
    with pytest.raises(ValueError, match="The framework lacks the effect dimension"):
        key_evaluation.check_plan(FRAMEWORK[:3])


@pytest.mark.parametrize("points, total, grade", [
    ((15, 20, 35, 30), 100, "excellent"), ((14, 18, 31, 27), 90, "excellent"), ((14, 18, 30, 24), 86, "good"),
    ((10, 15, 25, 20), 70, "fair"), ((9.5, 10, 20, 20), 59.5, "poor"),
])
def test_the_report_totals_the_scores_and_grades_them(core, points, total, grade):
    result = key_evaluation.report(scores(*points), FRAMEWORK, core.settings.values()["grades.min"])
    assert (result["total"], result["grade"]) == (total, grade)


def test_the_report_takes_the_weights_from_the_plan_and_refuses_a_score_above_one():
    sent = scores(14, 18, 30, 24)
    sent[0]["weight"] = 50          # a weight sent with the scores does not change the plan's
    result = key_evaluation.report(sent, FRAMEWORK, None)
    assert result["scores"][0] == {"dimension": "decision", "weight": 15, "score": 14, "basis": "decision basis"}
    with pytest.raises(ValueError, match="The decision score 16 is outside 0 to its weight 15"):
        key_evaluation.report(scores(16, 18, 30, 24), FRAMEWORK, None)


# ---- end to end -----------------------------------------------------------------------------

def test_finance_evaluation_without_problems_skips_rectification(flow, demo_core):
    case_id = flow.start("EDU-2027-002")
    task = flow.task(case_id, "plan_evaluation")
    assert task["role"] == "performance"
    # The plan starts from the default framework.
    assert flow.detail("perf1", task["id"])["data"]["framework"] == key_evaluation.framework()
    flow.do("perf1", case_id, plan("finance"))
    assert flow.record(case_id).selection_reason == "amount"

    task = flow.task(case_id, "finance_evaluation")
    assert (task["role"], task["due_at"][:10]) == ("performance", "2028-04-30")
    detail = flow.detail("perf1", task["id"])
    # The score sheet carries the planned weights; the plan is in the instructions.
    assert [(r["dimension"], r["weight"], r["score"]) for r in detail["data"]["scores"]] == [
        ("decision", 15, None), ("process", 20, None), ("output", 35, None), ("effect", 30, None)]
    assert "6.5 million yuan" in detail["instructions"] and "Document review" in detail["instructions"]
    flow.do("perf1", case_id, evaluation())

    review = flow.task(case_id, "review_report")
    instructions = flow.detail("perf1", review["id"])["instructions"]
    assert "Total score: 86 of 100" in instructions and "Grade: Good" in instructions
    assert "Acceptance certificates" in instructions and "none." in instructions
    flow.do("perf1", case_id, {"report_decision": "approve"})

    feedback = flow.task(case_id, "unit_feedback")
    assert (feedback["role"], feedback["org"]) == ("unit", "school")
    flow.do("school_unit", case_id, {"feedback_decision": "acknowledge", "feedback_comment": "Agreed."})

    # No problems: straight to the result, which the grade proposes.
    apply = flow.task(case_id, "apply_result")
    assert (apply["role"], apply["org"]) == ("funding", "edu_funding")
    detail = flow.detail("edu_section", apply["id"])
    assert detail["data"] == {"proposed_result": "keep", "applied_result": "keep"}
    assert "funding kept" in detail["instructions"] and "no problems to rectify" in detail["instructions"]
    flow.do("edu_section", case_id, {"applied_result": "keep"})

    case = flow.case(case_id)
    assert case["status"] == "completed"
    assert case["history"][-1]["data"] == {"end": "Result applied"}
    steps = [e["task"] for e in case["history"] if e["action"] == "completed"]
    assert steps == ["Evaluation plan", "Evaluate the project", "Review the report", "Feedback on the report",
                     "Apply the result"]
    assert flow.problems(case_id) == []

    row = flow.record(case_id)
    assert (row.year, row.selection_reason, row.evaluator) == (2027, "amount", "finance")
    assert row.plan["scope"].startswith("All 2027 funds") and row.plan["report_due"] == "2028-04-30"
    assert row.plan["methods"] and row.plan["schedule"] and row.plan["selection_explanation"]
    assert [(r["dimension"], r["weight"]) for r in row.plan["framework"]] == [
        (r["dimension"], r["weight"]) for r in FRAMEWORK]
    assert row.scores == {"decision": {"weight": 15, "score": 14, "basis": "decision basis"},
                          "process": {"weight": 20, "score": 18, "basis": "process basis"},
                          "output": {"weight": 35, "score": 30, "basis": "output basis"},
                          "effect": {"weight": 30, "score": 24, "basis": "effect basis"}}
    assert (float(row.score), row.grade) == (86.0, "good")
    assert row.report == "Outputs delivered on time; effects as planned."
    assert row.evidence == [*EVIDENCE, {"kind": "site", "title": "On-site examination", "date": "2028-03-12",
                                        "note": "All 24 classrooms in use; two projectors out of order."}]
    assert row.feedback == "Acknowledged: Agreed."
    assert (row.proposed_result, row.result, row.result_note) == ("keep", "keep", "")
    assert row.applied_by_id == user_id(demo_core, "edu_section")
    assert row.reported_at is not None and row.applied_at >= row.reported_at


def test_third_party_evaluation_with_problems_rectified_then_another_result(flow):
    case_id = flow.start("AGR-2027-001")
    flow.do("perf1", case_id, plan("third_party", selection_reason="monitoring",
                                   selection_explanation="Red light in the September monitoring."))
    task = flow.task(case_id, "third_party_evaluation")
    assert (task["role"], task["org"]) == ("third_party", None)
    assert any(t["id"] == task["id"] for t in flow.api("expert1").get("/api/v1/tasks").get_json()["items"])
    assert not any(t["case_id"] == case_id for t in flow.api("perf1").get("/api/v1/tasks").get_json()["items"])
    flow.do("expert1", case_id, evaluation((10, 14, 25, 21), problems=("Acceptance records incomplete",
                                                                        "Subsidy paid before inspection")))
    flow.do("perf1", case_id, {"report_decision": "approve"}, "review_report")
    flow.do("farm_unit", case_id, {"feedback_decision": "acknowledge"}, "unit_feedback")
    assert flow.record(case_id).feedback == "Acknowledged."

    # One rectification per problem, for this project's unit, checked by its funding section.
    rows = flow.problems(case_id)
    assert [(r.origin, r.status) for r in rows] == [("evaluation", "notified")] * 2
    rectify = flow.tasks(case_id)
    assert sorted(t["title"].split(":")[0] for t in rectify) == [
        "Rectify the problem (Acceptance records incomplete)", "Rectify the problem (Subsidy paid before inspection)"]
    assert {(t["role"], t["org"]) for t in rectify} == {("unit", "farm_station")}
    detail = flow.detail("farm_unit", rectify[0]["id"])
    assert "key performance evaluation" in detail["instructions"]
    for task in rectify:
        response = flow.api("farm_unit").post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {
            "rectification_measures": "Done", "rectification_evidence": [{"title": "Records"}]}})
        assert response.status_code == 200, response.get_json()
    checks = flow.tasks(case_id)
    assert {(t["step"], t["org"]) for t in checks} == {("check_rectification", "agri_funding")}
    for task in checks:
        assert flow.api("agri_section").post(f"/api/v1/tasks/{task['id']}/complete", json={
            "data": {"check_decision": "approve"}}).status_code == 200
    assert {r.status for r in flow.problems(case_id)} == {"rectified"}

    # Grade fair (70) proposes a reduction; the funding section keeps the funding, with its reason.
    apply = flow.task(case_id, "apply_result")
    detail = flow.detail("agri_section", apply["id"])
    assert detail["data"]["proposed_result"] == "reduce"
    assert "All 2 problem(s) found were rectified" in detail["instructions"]
    refused = flow.post("agri_section", case_id, {"applied_result": "keep"})
    assert refused.status_code == 400 and "result_note" in refused.get_json()["details"]
    # The proposal is the case's, not the form's: sending another one changes nothing.
    refused = flow.post("agri_section", case_id, {"proposed_result": "keep", "applied_result": "keep"})
    assert refused.status_code == 400 and "result_note" in refused.get_json()["details"]
    flow.do("agri_section", case_id, {
        "applied_result": "keep", "result_note": "Both problems rectified; the county's grain target relies on it."})
    assert flow.case(case_id)["status"] == "completed"
    row = flow.record(case_id)
    assert (row.evaluator, row.plan["third_party_agency"]) == ("third_party", "Mingjian Evaluation Consulting Co.")
    assert (float(row.score), row.grade, row.proposed_result, row.result) == (70.0, "fair", "reduce", "keep")
    assert row.result_note.startswith("Both problems rectified")


def test_the_report_returned_to_the_evaluator_comes_back_prefilled_with_the_opinion(flow):
    case_id = flow.start("EDU-2027-002")
    flow.do("perf1", case_id, plan("joint"))
    flow.do("expert1", case_id, evaluation((14, 18, 31, 27)), "third_party_evaluation")
    no_reason = flow.post("perf1", case_id, {"report_decision": "return"}, "review_report")
    assert no_reason.status_code == 400 and "report_comment" in no_reason.get_json()["details"]
    flow.do("perf1", case_id, {"report_decision": "return",
                               "report_comment": "The effect score ignores the survey's 61% satisfaction."})
    task = flow.task(case_id, "third_party_evaluation")
    detail = flow.detail("expert1", task["id"])
    assert "ignores the survey" in detail["instructions"] and "jointly" in detail["instructions"]
    assert detail["data"]["scores"][3]["score"] == 27 and detail["data"]["evaluation_evidence"] == EVIDENCE
    # Nothing is recorded before the report is approved.
    assert flow.record(case_id).score is None
    flow.do("expert1", case_id, evaluation((14, 18, 31, 21)))
    review = flow.task(case_id, "review_report")
    detail = flow.detail("perf1", review["id"])
    assert detail["data"] == {}         # a new review round starts empty
    assert "round 2" in detail["instructions"] and "84 of 100" in detail["instructions"]
    flow.do("perf1", case_id, {"report_decision": "approve"})
    row = flow.record(case_id)
    assert (row.evaluator, float(row.score), row.grade) == ("joint", 84.0, "good")
    # The unit sees the approved report; a return within finance is not news to it.
    feedback = flow.task(case_id, "unit_feedback")
    assert "objection" not in flow.detail("school_unit", feedback["id"])["instructions"].split("Acknowledge")[0]


def test_an_objection_the_section_does_not_accept(flow):
    case_id = flow.start("EDU-2027-002")
    flow.through_review(case_id, data=evaluation(problems=("Projectors out of order",)))
    no_reason = flow.post("school_unit", case_id, {"feedback_decision": "object"}, "unit_feedback")
    assert no_reason.status_code == 400 and "feedback_comment" in no_reason.get_json()["details"]
    flow.do("school_unit", case_id, {"feedback_decision": "object",
                                     "feedback_comment": "The projectors are under warranty repair."})
    task = flow.task(case_id, "consider_objection")
    assert task["role"] == "performance"
    assert "under warranty repair" in flow.detail("perf1", task["id"])["instructions"]
    no_answer = flow.post("perf1", case_id, {"objection_decision": "maintain"})
    assert no_answer.status_code == 400 and "objection_comment" in no_answer.get_json()["details"]
    flow.do("perf1", case_id, {"objection_decision": "maintain",
                               "objection_comment": "Repairs were due in March; they are still pending."})
    # The report stands: on to the rectification of its problem.
    assert [t["step"] for t in flow.tasks(case_id)] == ["rectify"]
    row = flow.record(case_id)
    assert row.feedback == ("Objection: The projectors are under warranty repair.\n"
                            "Maintained by the performance management section: "
                            "Repairs were due in March; they are still pending.")
    assert (float(row.score), row.grade) == (86.0, "good")


def test_an_accepted_objection_sends_the_report_back_for_revision(flow):
    case_id = flow.start("EDU-2027-002")
    flow.through_review(case_id, data=evaluation(problems=("Projectors out of order",)))
    flow.do("school_unit", case_id, {"feedback_decision": "object",
                                     "feedback_comment": "The projectors were repaired in February."}, "unit_feedback")
    flow.do("perf1", case_id, {"objection_decision": "revise",
                               "objection_comment": "Check the repair invoices and drop the problem if repaired."})
    task = flow.task(case_id, "finance_evaluation")
    instructions = flow.detail("perf1", task["id"])["instructions"]
    assert "repaired in February" in instructions and "Check the repair invoices" in instructions
    flow.do("perf1", case_id, evaluation((15, 19, 32, 25), problems=()))
    flow.do("perf1", case_id, {"report_decision": "approve"}, "review_report")
    # The revised report goes to the unit again, which now acknowledges it.
    feedback = flow.task(case_id, "unit_feedback")
    assert "revised after your objection" in flow.detail("school_unit", feedback["id"])["instructions"]
    flow.do("school_unit", case_id, {"feedback_decision": "acknowledge"})
    assert flow.task(case_id)["step"] == "apply_result"      # no problems left to rectify
    row = flow.record(case_id)
    assert (float(row.score), row.grade, row.feedback) == (91.0, "excellent", "Acknowledged.")
    assert flow.problems(case_id) == []
    flow.do("edu_section", case_id, {"applied_result": "priority"})
    assert flow.record(case_id).result == "priority"


def test_the_proposal_follows_the_grade_and_the_setting(flow, demo_core, actor):
    def proposal(code, points, unit, section):
        case_id = flow.start(code)
        flow.through_review(case_id, data=evaluation(points))
        flow.do(unit, case_id, {"feedback_decision": "acknowledge"})
        task = flow.task(case_id, "apply_result")
        return case_id, flow.detail(section, task["id"])["data"]["proposed_result"]

    poor_case, proposed = proposal("EDU-2027-002", (8, 10, 20, 15), "school_unit", "edu_section")
    assert proposed == "cancel"
    demo_core.settings.update(actor("admin"), "results.by_grade",
                              {"excellent": "priority", "good": "keep", "fair": "reduce", "poor": "reduce"},
                              "Provincial notice: poor projects are reduced, not cancelled, in the first year")
    # A new case proposes by the rule now in force.
    _, proposed = proposal("AGR-2027-001", (8, 10, 20, 15), "farm_unit", "agri_section")
    assert proposed == "reduce"
    # A case already at the step keeps the proposal it was given.
    task = flow.task(poor_case, "apply_result")
    assert flow.detail("edu_section", task["id"])["data"]["proposed_result"] == "cancel"
    flow.do("edu_section", poor_case, {"applied_result": "cancel"})
    assert (flow.record(poor_case).grade, flow.record(poor_case).result) == ("poor", "cancel")


def test_the_grade_cut_offs_are_settings_too(flow, demo_core, actor):
    demo_core.settings.update(actor("admin"), "grades.min", {"excellent": 85, "good": 75, "fair": 60})
    case_id = flow.start("EDU-2027-002")
    flow.through_review(case_id)                                  # 86
    assert flow.record(case_id).grade == "excellent"


# ---- refusals -------------------------------------------------------------------------------

def test_wrong_users_get_403_and_nothing_changes(flow, demo_core):
    refused = flow.api("school_unit").post("/api/v1/cases", json={"process": "key_evaluation",
                                                                  "project": "EDU-2027-002"})
    assert refused.status_code == 403
    case_id = flow.start("EDU-2027-002")

    def unchanged(step, wrong_users, data):
        before = flow.case(case_id)
        for who in wrong_users:
            response = flow.post(who, case_id, data, step)
            assert response.status_code == 403, (who, response.get_json())
        after = flow.case(case_id)
        assert (after["data"], after["tasks"], after["history"]) == (before["data"], before["tasks"],
                                                                    before["history"])

    unchanged("plan_evaluation", ["school_unit", "expert1", "edu_section", "review1"], plan("third_party"))
    flow.do("perf1", case_id, plan("third_party"))
    unchanged("third_party_evaluation", ["perf1", "school_unit"], evaluation())
    flow.do("expert1", case_id, evaluation())
    unchanged("review_report", ["expert1", "school_unit"], {"report_decision": "approve"})
    flow.do("perf1", case_id, {"report_decision": "approve"})
    unchanged("unit_feedback", ["farm_unit", "perf1", "edu_bureau"], {"feedback_decision": "acknowledge"})
    flow.do("school_unit", case_id, {"feedback_decision": "object", "feedback_comment": "Too low."})
    unchanged("consider_objection", ["school_unit", "expert1"], {"objection_decision": "revise",
                                                                 "objection_comment": "x"})
    flow.do("perf1", case_id, {"objection_decision": "maintain", "objection_comment": "It stands."})
    unchanged("apply_result", ["agri_section", "perf1", "school_unit"], {"applied_result": "priority",
                                                                        "result_note": "x"})
    flow.do("edu_section", case_id, {"applied_result": "keep"})
    assert flow.record(case_id).result == "keep"


@pytest.mark.parametrize("framework, message", [
    ([{**r, "weight": w} for r, w in zip(FRAMEWORK, (15, 20, 35, 20))], "The framework weights add up to 90, not 100"),
    ([{**r, "weight": w} for r, w in zip(FRAMEWORK, (25, 25, 30, 20))],
     "Output and effect weigh 50 together; the framework needs at least 60"),
    (FRAMEWORK[:3] + [{**FRAMEWORK[2]}], "The framework lists the output dimension twice"),
])
def test_invalid_weights_are_refused_with_a_clear_message_and_nothing_saved(flow, demo_core, framework, message):
    case_id = flow.start("EDU-2027-002")
    before = flow.case(case_id)
    response = flow.post("perf1", case_id, plan(framework=framework), "plan_evaluation")
    assert response.status_code == 422
    assert message in response.get_json()["error"]
    after = flow.case(case_id)
    assert (after["data"], after["tasks"], after["history"]) == (before["data"], before["tasks"], before["history"])
    assert flow.record(case_id) is None


@pytest.mark.parametrize("data, field", [
    ({**plan("third_party"), "third_party_agency": ""}, "third_party_agency"),
    ({k: v for k, v in plan().items() if k != "report_due"}, "report_due"),
    (plan(framework=FRAMEWORK[:3]), "framework"),
    (plan(framework=[{**FRAMEWORK[0], "weight": 120}, *FRAMEWORK[1:]]), "framework.0.weight"),
])
def test_the_plan_form_refuses_missing_and_out_of_range_fields(flow, data, field):
    case_id = flow.start("EDU-2027-002")
    response = flow.post("perf1", case_id, data, "plan_evaluation")
    assert response.status_code == 400 and field in response.get_json()["details"], response.get_json()


def test_scores_above_their_weight_and_incomplete_evaluations_are_refused(flow):
    case_id = flow.start("EDU-2027-002")
    flow.do("perf1", case_id, plan())
    too_high = flow.post("perf1", case_id, evaluation((14, 18, 36, 24)), "finance_evaluation")
    assert too_high.status_code == 422
    assert "The output score 36 is outside 0 to its weight 35" in too_high.get_json()["error"]
    no_site_findings = flow.post("perf1", case_id, evaluation(site_findings=""))
    assert no_site_findings.status_code == 400 and "site_findings" in no_site_findings.get_json()["details"]
    no_evidence = flow.post("perf1", case_id, evaluation(evaluation_evidence=[]))
    assert no_evidence.status_code == 400 and "evaluation_evidence" in no_evidence.get_json()["details"]
    # "No problems" is said with an empty list, not by leaving the list out.
    silent = evaluation()
    del silent["problems"]
    no_list = flow.post("perf1", case_id, silent)
    assert no_list.status_code == 400 and "problems" in no_list.get_json()["details"]
    # Without an on-site examination, no findings are needed.
    data = evaluation()
    del data["site_examined_on"], data["site_findings"]
    flow.do("perf1", case_id, data)
    flow.do("perf1", case_id, {"report_decision": "approve"}, "review_report")
    assert flow.record(case_id).evidence == EVIDENCE


def test_one_key_evaluation_per_project_at_a_time(flow):
    case_id = flow.start("EDU-2027-002")
    again = flow.api("perf1").post("/api/v1/cases", json={"process": "key_evaluation", "project": "EDU-2027-002"})
    assert again.status_code == 409 and f"(case {case_id})" in again.get_json()["error"]
    flow.start("EDU-2027-001")          # another project may be evaluated meanwhile


def test_start_data_is_refused(flow, demo_core):
    response = flow.api("perf1").post("/api/v1/cases", json={"process": "key_evaluation", "project": "EDU-2027-002",
                                                             "data": {"evaluation_grade": "excellent"}})
    assert response.status_code == 400 and "evaluation_grade" in response.get_json()["details"]
    with demo_core.db.reading() as s:
        assert s.scalar(select(func.count()).select_from(Case).where(Case.process_key == "key_evaluation")) == 0


# ---- pages ----------------------------------------------------------------------------------

def test_every_step_renders_as_a_page_with_its_form_and_instructions(flow, pages):
    """Walk a case through every step of the model and render each task page on the way."""
    seen = {}

    def page(who, case_id):
        for task in flow.tasks(case_id):
            html = pages(who).get(f"/tasks/{task['id']}").get_data(as_text=True)
            assert "Instructions could not be shown" not in html, task["step"]
            seen[task["step"]] = html

    case_id = flow.start("EDU-2027-002")
    page("perf1", case_id)
    flow.do("perf1", case_id, plan("joint"))
    page("expert1", case_id)
    flow.do("expert1", case_id, evaluation(problems=("Projectors out of order",)))
    page("perf1", case_id)
    flow.do("perf1", case_id, {"report_decision": "approve"})
    page("school_unit", case_id)
    flow.do("school_unit", case_id, {"feedback_decision": "object", "feedback_comment": "Repaired."})
    page("perf1", case_id)
    flow.do("perf1", case_id, {"objection_decision": "revise", "objection_comment": "Check it."})
    page("expert1", case_id)
    flow.do("expert1", case_id, evaluation())
    flow.do("perf1", case_id, {"report_decision": "approve"})
    flow.do("school_unit", case_id, {"feedback_decision": "acknowledge"})
    page("edu_section", case_id)
    assert set(seen) == {"plan_evaluation", "third_party_evaluation", "review_report", "unit_feedback",
                         "consider_objection", "apply_result"}
    assert 'name="framework-3-weight"' in seen["plan_evaluation"] and "Add row" not in seen["plan_evaluation"]
    assert 'name="scores-0-score"' in seen["third_party_evaluation"]
    assert 'name="problems-0-description"' in seen["third_party_evaluation"]
    assert 'value="revise"' in seen["consider_objection"]
    assert "Funding kept" in seen["apply_result"] and 'name="applied_result"' in seen["apply_result"]
    # The proposal is shown, not editable: its hidden copy is ignored by the server anyway.
    assert 'name="proposed_result" value="keep"' in seen["apply_result"]

    # The page form posts the result like a browser.
    task = flow.task(case_id, "apply_result")
    response = pages("edu_section").post_form(f"/tasks/{task['id']}", {"proposed_result": "keep",
                                                                        "applied_result": "keep"})
    assert response.status_code == 302
    assert flow.case(case_id)["status"] == "completed"
    with flow.core.db.reading() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.case_id == case_id, AuditEvent.action == "finished")) == 1
