"""Demo cases of links 3, 4 and 5: earlier years' projects whose goals were approved, a
monitoring campaign at the end of September, a self-assessment campaign with its spot-check
draw, and key evaluations, each left at a different stage. Called by demo.load."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select

from storage import queries
from storage.models import Campaign, Case, ExAnteEvaluation, Project

# code, name, unit, funding, amount, key, category, year
EARLIER_PROJECTS = [
    ("EDU-2026-001", "After-school tutoring programme", "school", "edu_funding", "1500000", False, "Education", 2026),
    ("EDU-2026-002", "Teacher training centre", "school", "edu_funding", "5200000", True, "Education", 2026),
    ("AGR-2026-001", "Seed variety trial fields", "farm_station", "agri_funding", "900000", False, "Agriculture", 2026),
    ("AGR-2026-002", "Rural cold-chain storage", "farm_station", "agri_funding", "6000000", True, "Agriculture", 2026),
    ("EDU-2025-001", "Campus heating renovation", "school", "edu_funding", "2400000", False, "Education", 2025),
    ("AGR-2025-001", "Water-saving irrigation demonstration", "farm_station", "agri_funding", "7200000", True,
     "Agriculture", 2025),
    ("AGR-2025-002", "Farmer cooperative training", "farm_station", "agri_funding", "600000", False,
     "Agriculture", 2025),
]
UNIT_USER = {"school": "school_unit", "farm_station": "farm_unit"}
COMPETENT_USER = {"school": "edu_bureau", "farm_station": "agri_bureau"}
FUNDING_USER = {"school": "edu_section", "farm_station": "agri_section"}


def _earlier_projects(app) -> list[str]:
    """Create the earlier years' projects that are missing; return their codes."""
    from .demo import EARLIER_EVALUATION
    created = []
    with app.db.transaction() as s:
        for code, name, unit, funding, amount, key, category, year in EARLIER_PROJECTS:
            if queries.project_by_code(s, code) is not None:
                continue
            unit_org = queries.org_by_code(s, unit)
            project = Project(code=code, name=name, year=year, unit_id=unit_org.id, competent_id=unit_org.parent_id,
                              funding_id=queries.org_by_code(s, funding).id, category=category, is_new=False,
                              is_key=key, amount=Decimal(amount), funding_sources={"general_budget": amount},
                              start_date=date(year, 1, 1), end_date=date(year, 12, 31), goals_status="none",
                              ex_ante_status="support")
            s.add(project)
            s.flush()
            s.add(ExAnteEvaluation(project_id=project.id, case_id=None, round=1, total=EARLIER_EVALUATION["total"],
                                   dimensions=EARLIER_EVALUATION["dimensions"], conclusion="support",
                                   summary=EARLIER_EVALUATION["summary"],
                                   evaluated_at=datetime(year - 1, 9, 15, 2, 0)))
            created.append(code)
    return created


class Walker:
    """Moves demo cases along as the demo users would."""

    def __init__(self, app):
        from .demo import _actor
        self.app = app
        self._actor = _actor

    def actor(self, username: str):
        return self._actor(self.app, username)

    def project(self, code: str) -> Project:
        with self.app.db.reading() as s:
            project = queries.project_by_code(s, code)
            _ = (project.unit, project.competent, project.funding)
            return project

    def open_tasks(self, case_id: int) -> list:
        with self.app.db.reading() as s:
            return queries.open_tasks_of_case(s, case_id)

    def task(self, case_id: int, step: str | None = None):
        tasks = [t for t in self.open_tasks(case_id) if step is None or t.step == step]
        if not tasks:
            raise RuntimeError(f"demo: case {case_id} has no open task {step or ''}")
        return tasks[0]

    def do(self, username: str, case_id: int, data: dict, step: str | None = None):
        return self.app.cases.complete(self.actor(username), self.task(case_id, step).id, data)

    def approve_goals(self, code: str) -> None:
        from .demo import APPROVE, sample_goals
        project = self.project(code)
        unit = project.unit.code
        case = self.app.cases.start(self.actor(UNIT_USER[unit]), "goal_review", project.id)
        steps = [(UNIT_USER[unit], sample_goals(project.name)), (COMPETENT_USER[unit], APPROVE),
                 ("review1", {**APPROVE, "grade": "excellent"}), ("perf1", APPROVE)]
        if project.is_key:
            steps.append(("expert1", {**APPROVE}))
        steps.append((FUNDING_USER[unit], APPROVE))
        for username, data in steps:
            self.do(username, case.id, data)


def load(app) -> None:
    """Create what is missing; each part checks whether it ran before, so loading again is safe."""
    _earlier_projects(app)
    walker = Walker(app)
    for code, *_ in EARLIER_PROJECTS:
        if walker.project(code).goals_status == "none":
            walker.approve_goals(code)
    if not _has_campaign(app, "monitoring", 2026):
        _monitoring(walker)
    if not _has_cases(app, "key_evaluation"):
        _key_evaluations(walker)
    if not _has_campaign(app, "self_assessment", 2025):
        _self_assessment(walker)


def _has_campaign(app, kind: str, year: int) -> bool:
    with app.db.reading() as s:
        return s.scalars(select(Campaign.id).where(Campaign.kind == kind, Campaign.year == year)).first() is not None


def _has_cases(app, process_key: str) -> bool:
    with app.db.reading() as s:
        return s.scalars(select(Case.id).where(Case.process_key == process_key)).first() is not None


# ---- link 3: the September monitoring campaign of 2026 ------------------------------------------

YEAR_END = {"Sites completed": 12, "Acceptance pass rate": 100, "Completed by year end": "On schedule",
            "Cost per site": 93000, "People served": 3000, "Beneficiary satisfaction": 92}


def _report(project: Project, spent_share: float, cost: int = 90000) -> dict:
    """A self-monitoring report on the demo goals: on track unless the figures say otherwise."""
    from .demo import sample_goals
    now = {"Sites completed": 9, "Acceptance pass rate": 80, "Completed by year end": "On schedule",
           "Cost per site": cost, "People served": 2500, "Beneficiary satisfaction": 70}
    return {"spent": round(float(project.amount) * spent_share, 2),
            "progress": [{"current": now[i["name"]], "expected": YEAR_END[i["name"]], "likelihood": "likely",
                          "note": "Site records"} for i in sample_goals(project.name)["indicators"]],
            "attachments": [{"title": "Payment ledger to 30 September", "reference": "KJ-2026-09"}]}


EXPLANATION = {"causes": [{"cause": "rules", "detail": "Tender repeated after a complaint"}],
               "explanation": "Works started two months late; payments follow the works.",
               "measures": "Second contractor from October; weekly site meetings; payment by milestones."}


def _monitoring(walker: Walker) -> None:
    campaign = walker.app.campaigns.launch(walker.actor("perf1"), "monitoring", 2026, date(2026, 9, 30))
    with walker.app.db.reading() as s:
        cases = {c.project.code: c.id for c in s.scalars(select(Case).where(Case.campaign_id == campaign.id))}
    # On track: the case records "continue" by itself.
    walker.do("school_unit", cases["EDU-2026-001"], _report(walker.project("EDU-2026-001"), 0.75))
    # Slow spending on a key project: explained, then finance reduces the funds.
    walker.do("school_unit", cases["EDU-2026-002"], _report(walker.project("EDU-2026-002"), 0.5))
    walker.do("school_unit", cases["EDU-2026-002"], EXPLANATION)
    walker.do("edu_section", cases["EDU-2026-002"], {
        "monitoring_decision": "approve", "outcome": "reduce_funds", "reduced_amount": 800000,
        "monitoring_comment": "Half the year's works cannot be done by December; 800,000 yuan return to the pool."})
    # Over the cost ceiling: explained, waiting for the funding section's key monitoring.
    walker.do("farm_unit", cases["AGR-2026-001"], _report(walker.project("AGR-2026-001"), 0.72, cost=99000))
    walker.do("farm_unit", cases["AGR-2026-001"], EXPLANATION)
    # AGR-2026-002: the unit has not reported yet.


# ---- link 5: key evaluations -------------------------------------------------------------------

FRAMEWORK = [{"dimension": "decision", "weight": 15, "content": "Establishment, goals and fund allocation"},
             {"dimension": "process", "weight": 20, "content": "Fund management and implementation"},
             {"dimension": "output", "weight": 35, "content": "Quantity, quality, timeliness and cost of outputs"},
             {"dimension": "effect", "weight": 30, "content": "Economic, social, ecological effects; satisfaction"}]


def _evaluation_plan(evaluator: str, reason: str, explanation: str) -> dict:
    plan = {"selection_reason": reason, "selection_explanation": explanation, "evaluator": evaluator,
            "scope": "All funds of the project in its budget year, and its sites.",
            "methods": "Document review, on-site examination, survey of beneficiaries.",
            "schedule": "Fieldwork in the first month, draft report in the second.", "report_due": "2026-12-31",
            "framework": FRAMEWORK}
    if evaluator != "finance":
        plan["third_party_agency"] = "Mingjian Evaluation Consulting Co."
    return plan


def _evaluation(points, problems=()) -> dict:
    return {"evaluation_evidence": [{"kind": "document", "title": "Acceptance certificates and payment vouchers",
                                     "reference": "PJ-2025-118"},
                                    {"kind": "survey", "title": "Survey of 210 beneficiaries"}],
            "site_examined_on": "2026-10-20", "site_findings": "Works in use; records kept on site.",
            "scores": [{"dimension": row["dimension"], "weight": row["weight"], "score": score,
                        "basis": "See the report."} for row, score in zip(FRAMEWORK, points)],
            "evaluation_report": "Outputs delivered; effects largely as planned.",
            "problems": [{"description": d, "requirement": r} for d, r in problems]}


def _key_evaluations(walker: Walker) -> None:
    perf = walker.actor("perf1")
    # AGR-2025-001: third-party evaluation done, two problems, the unit rectifying them.
    case = walker.app.cases.start(perf, "key_evaluation", walker.project("AGR-2025-001").id)
    walker.do("perf1", case.id, _evaluation_plan("third_party", "amount",
                                                 "7.2 million yuan, the largest agriculture project of 2025."))
    walker.do("expert1", case.id, _evaluation((12, 15, 28, 22), problems=(
        ("Acceptance of two pump stations not documented", "File the acceptance records of both stations"),
        ("Subsidies paid before the on-site inspection", "Pay only after inspection; recover any overpayment"))))
    walker.do("perf1", case.id, {"report_decision": "approve"})
    walker.do("farm_unit", case.id, {"feedback_decision": "acknowledge"})
    # EDU-2025-001: finance evaluation, no problems, result applied.
    case = walker.app.cases.start(perf, "key_evaluation", walker.project("EDU-2025-001").id)
    walker.do("perf1", case.id, _evaluation_plan("finance", "policy", "Heating is a county priority for 2025."))
    walker.do("perf1", case.id, _evaluation((14, 18, 32, 27)))
    walker.do("perf1", case.id, {"report_decision": "approve"})
    walker.do("school_unit", case.id, {"feedback_decision": "acknowledge"})
    walker.do("edu_section", case.id, {"applied_result": _proposal(walker, case.id)})
    # EDU-2026-002: selected, the plan being written.
    walker.app.cases.start(perf, "key_evaluation", walker.project("EDU-2026-002").id)


def _proposal(walker: Walker, case_id: int) -> str:
    detail = walker.app.reads.task(walker.actor("edu_section"), walker.task(case_id).id)
    return detail["data"].get("proposed_result") or "keep"


# ---- link 4: the self-assessment of 2025 and its spot check -----------------------------------

def _self_assessed(walker: Walker, username: str, case_id: int, spent_share: float = 1.0) -> dict:
    """The unit's self-assessment form filled in: every target met unless said otherwise."""
    import copy
    task = walker.task(case_id, "self_assess")
    data = copy.deepcopy(walker.app.reads.task(walker.actor(username), task.id)["data"])
    budget = data["budget_execution"][0]
    budget["spent"] = round(float(budget["budget"]) * spent_share, 2)
    if spent_share < 1:
        budget.update(cause="Two payments fell due in January.", measure="Schedule payments with the works.")
    for row in data["indicator_scores"]:
        if row["operator"] == "qualitative":
            row.update(level="achieved", points=row["weight"])
        else:
            row["actual"] = float(row["target"])
    data["achievement_summary"] = "The planned works were completed and accepted."
    return data


def _self_assessment(walker: Walker) -> None:
    from .rules import sampling
    perf = walker.actor("perf1")
    campaign = walker.app.campaigns.launch(perf, "self_assessment", 2025)
    with walker.app.db.reading() as s:
        cases = {c.project.code: c.id for c in s.scalars(select(Case).where(Case.campaign_id == campaign.id))}
    for code, unit, competent, share in (("EDU-2025-001", "school_unit", "edu_bureau", 1.0),
                                         ("AGR-2025-001", "farm_unit", "agri_bureau", 0.92)):
        walker.do(unit, cases[code], _self_assessed(walker, unit, cases[code], share), "self_assess")
        walker.do(competent, cases[code], {"competent_decision": "approve"}, "competent_check")
    # AGR-2025-002's unit has not self-assessed yet; it learns the draw when it does.
    population = ["Agriculture Bureau", "Education Bureau"]
    seed = next(seed for seed in (f"demo-2025-{i}" for i in range(1000))
                if sampling.draw(population, 0.5, seed) == ["Agriculture Bureau"])
    walker.app.campaigns.draw(perf, campaign.id, 0.5, seed)
    review = walker.app.reads.task(perf, walker.task(cases["AGR-2025-001"], "spot_check_review").id)
    criteria = [{**row, "rating": "partly" if row["criterion"] == "data_accuracy" else "met",
                 "comment": "Checked against the ledgers and site records."} for row in review["data"]["criteria"]]
    walker.do("perf1", cases["AGR-2025-001"], {
        "criteria": criteria, "review_score": 84, "review_summary": "Mostly sound; some figures lack support.",
        "review_problems": [{"description": "Area irrigated not supported by field records",
                             "requirement": "File the measured areas of every plot"}]}, "spot_check_review")
