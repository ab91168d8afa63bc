"""Link 5, key performance evaluation: the framework, the report's score and grade, the
result it proposes, and what a case records in `key_evaluations`.

Finance selects a key project and plans the evaluation: the framework weighs decision,
process, output and effect (100 in all, output and effect together at least 60: the
framework's rule, so results weigh more than procedure). The evaluator (finance, a third
party, or both) scores each dimension up to its weight; the total gives the grade by the
`grades.min` cut-offs, and the grade proposes a result by `results.by_grade`.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Case, KeyEvaluation, Project

from .errors import Conflict, InvalidData
from .rules.grading import GRADES, grade

DIMENSIONS = ("decision", "process", "output", "effect")
DIMENSION_TITLES = {"decision": "Decision", "process": "Process", "output": "Output", "effect": "Effect"}
# What each dimension covers, shown in the plan's framework table.
DIMENSION_CONTENT = {
    "decision": "Project establishment, performance goals, fund allocation",
    "process": "Fund management, organisation and implementation",
    "output": "Quantity, quality, timeliness and cost of the outputs",
    "effect": "Economic, social, ecological and sustainable effects; satisfaction of those served",
}
# The weights a new plan starts from; the performance section adjusts them per project.
DEFAULT_WEIGHTS = {"decision": 15, "process": 20, "output": 35, "effect": 30}
TOTAL_WEIGHT = 100
RESULTS_MIN_WEIGHT = 60     # output + effect: at least 60% of the weight (domain guide, link 5)
RESULTS = ("priority", "keep", "reduce", "cancel")


def _number(value):
    """A weight or score as the JSON number the forms use (an int when whole)."""
    value = float(value)
    return int(value) if value.is_integer() else round(value, 2)


def framework() -> list[dict]:
    """The framework table a new plan starts from."""
    return [{"dimension": d, "weight": DEFAULT_WEIGHTS[d], "content": DIMENSION_CONTENT[d]} for d in DIMENSIONS]


def _by_dimension(rows, what: str) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for row in rows or []:
        dimension = row.get("dimension") if isinstance(row, dict) else None
        if dimension not in DIMENSIONS:
            raise ValueError(f"The {what} has an unknown dimension {dimension!r}")
        if dimension in found:
            raise ValueError(f"The {what} lists the {DIMENSION_TITLES[dimension].lower()} dimension twice")
        found[dimension] = row
    missing = [DIMENSION_TITLES[d].lower() for d in DIMENSIONS if d not in found]
    if missing:
        raise ValueError(f"The {what} lacks the {', '.join(missing)} dimension(s)")
    return found


def check_plan(rows) -> list[dict]:
    """The framework in dimension order, or ValueError saying which rule its weights break."""
    found = _by_dimension(rows, "framework")
    weights = {}
    for d in DIMENSIONS:
        weight = found[d].get("weight")
        if isinstance(weight, bool) or not isinstance(weight, (int, float, Decimal)) or weight < 0:
            raise ValueError(f"The weight of {DIMENSION_TITLES[d].lower()} must be a number of 0 or more")
        weights[d] = Decimal(str(weight))
    total = sum(weights.values())
    if total != TOTAL_WEIGHT:
        raise ValueError(f"The framework weights add up to {_number(total)}, not {TOTAL_WEIGHT}")
    results = weights["output"] + weights["effect"]
    if results < RESULTS_MIN_WEIGHT:
        raise ValueError(f"Output and effect weigh {_number(results)} together; the framework needs at least "
                         f"{RESULTS_MIN_WEIGHT} for them")
    return [{"dimension": d, "weight": _number(weights[d]),
             "content": str(found[d].get("content") or DIMENSION_CONTENT[d])} for d in DIMENSIONS]


def scoring_sheet(plan_rows) -> list[dict]:
    """The rows the evaluator scores: one per dimension, with the planned weight as its maximum."""
    return [{"dimension": row["dimension"], "weight": row["weight"], "score": None, "basis": ""}
            for row in check_plan(plan_rows)]


def report(scores, plan_rows, minimums: dict) -> dict:
    """Score rows (with the planned weights, whatever was sent), total and grade."""
    weights = {row["dimension"]: Decimal(str(row["weight"])) for row in check_plan(plan_rows)}
    found = _by_dimension(scores, "score sheet")
    rows, total = [], Decimal(0)
    for d in DIMENSIONS:
        score = found[d].get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float, Decimal)):
            raise ValueError(f"The {DIMENSION_TITLES[d].lower()} dimension is not scored")
        score = Decimal(str(score))
        if not 0 <= score <= weights[d]:
            raise ValueError(f"The {DIMENSION_TITLES[d].lower()} score {_number(score)} is outside 0 to its "
                             f"weight {_number(weights[d])}")
        total += score
        rows.append({"dimension": d, "weight": _number(weights[d]), "score": _number(score),
                     "basis": str(found[d].get("basis") or "")})
    return {"scores": rows, "total": _number(total), "grade": grade(total, minimums)}


def proposal(grade_name: str, by_grade: dict) -> str:
    """The result the grade proposes under the `results.by_grade` setting."""
    if grade_name not in GRADES:
        raise ValueError(f"Unknown grade {grade_name!r}")
    result = by_grade.get(grade_name)
    if result not in RESULTS:
        raise ValueError(f"The setting 'results.by_grade' gives no valid result for {grade_name!r}")
    return result


def calculations(context) -> dict:
    return {
        "key_evaluation_framework": framework,
        "key_evaluation_plan": check_plan,
        "key_evaluation_sheet": scoring_sheet,
        "key_evaluation_report": lambda scores, plan_rows: report(scores, plan_rows,
                                                                  context.settings()["grades.min"]),
        "key_evaluation_proposal": lambda grade_name: proposal(grade_name, context.settings()["results.by_grade"]),
    }


# ---- starting -------------------------------------------------------------------------------

def check_can_start(s: Session, project: Project, settings: dict) -> None:
    running = s.scalars(select(Case.id).where(Case.project_id == project.id,
                                              Case.process_key == "key_evaluation",
                                              Case.status == "running")).first()
    if running is not None:
        raise Conflict(f"project {project.code} already has a key performance evaluation in progress "
                       f"(case {running})", {"case_id": running})


def prepare_start(s: Session, project: Project, data: dict, title: str) -> tuple[dict, str]:
    # Everything the case works with comes from its plan; start data could only pre-empt it.
    if data:
        raise InvalidData("a key performance evaluation starts without data; plan it in its first step",
                          {name: "Not accepted at the start." for name in data})
    return data, title


# ---- what a case records --------------------------------------------------------------------

PLAN_FIELDS = ("selection_explanation", "third_party_agency", "scope", "methods", "schedule", "report_due")


def _row(s: Session, case: Case) -> KeyEvaluation:
    row = s.scalars(select(KeyEvaluation).where(KeyEvaluation.case_id == case.id)).first()
    if row is None:
        raise ValueError(f"case {case.id} has no key evaluation record; its plan was not recorded")
    return row


def record_plan(s: Session, case: Case, data: dict, actor_id, now: datetime) -> None:
    plan = {k: data.get(k) for k in PLAN_FIELDS if data.get(k) not in (None, "")}
    plan["framework"] = data["framework"]
    s.add(KeyEvaluation(project_id=case.project_id, case_id=case.id, year=case.year or now.year,
                        selection_reason=data["selection_reason"], evaluator=data["evaluator"], plan=plan,
                        report="", feedback="", result_note="", started_at=case.started_at or now))
    s.flush()


def _evidence(data: dict) -> list[dict]:
    """The evidence list, with the on-site examination as one more item when there was one."""
    items = [dict(item) for item in data.get("evaluation_evidence") or []]
    if data.get("site_examined_on"):
        items.append({"kind": "site", "title": "On-site examination", "date": str(data["site_examined_on"]),
                      "note": str(data.get("site_findings") or "")})
    return items


def record_report(s: Session, case: Case, data: dict, actor_id, now: datetime) -> None:
    """The approved report; a report revised after an objection replaces the earlier one."""
    row = _row(s, case)
    row.scores = {r["dimension"]: {"weight": r["weight"], "score": r["score"], "basis": r["basis"]}
                  for r in data["scores"]}
    row.score = Decimal(str(data["evaluation_score"]))
    row.grade = data["evaluation_grade"]
    row.report = str(data.get("evaluation_report") or "")
    row.evidence = _evidence(data)
    row.reported_at = now
    s.flush()


def record_feedback(s: Session, case: Case, data: dict, actor_id, now: datetime) -> None:
    """The unit's last word on the report, and the section's answer when it objected."""
    row = _row(s, case)
    comment = str(data.get("feedback_comment") or "").strip()
    if data.get("feedback_decision") == "object":
        answer = str(data.get("objection_comment") or "").strip()
        row.feedback = f"Objection: {comment}\nMaintained by the performance management section: {answer}"
    else:
        row.feedback = f"Acknowledged{': ' + comment if comment else '.'}"
    s.flush()


def record_result(s: Session, case: Case, data: dict, actor_id, now: datetime) -> None:
    row = _row(s, case)
    row.proposed_result = data["proposed_result"]
    row.result = data["applied_result"]
    row.result_note = str(data.get("result_note") or "")
    row.applied_at, row.applied_by_id = now, actor_id
    s.flush()


EFFECT_HANDLERS = {
    "record_key_evaluation_plan": record_plan,
    "record_key_evaluation_report": record_report,
    "record_key_evaluation_feedback": record_feedback,
    "record_key_evaluation_result": record_result,
}
START_GUARDS = {"key_evaluation": check_can_start}
START_DATA = {"key_evaluation": prepare_start}
