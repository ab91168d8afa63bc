"""Problems and their rectification, shared by monitoring, spot-check review and evaluation.

A diagram that finds problems turns its list into numbered problems (`prepare_problems`),
records them (`record_problems()`), and calls the `rectification` process once per problem
(a multi-instance call activity over `problems`). Each problem row keeps its origin and the
case that found it; the rectification steps move it from notified to rectified.
"""
from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Case, Problem

ORIGINS = {"monitoring": "operation monitoring", "self_assessment": "self-assessment spot-check review",
           "evaluation": "key performance evaluation"}
STATUS_LABELS = {"recorded": "Recorded", "notified": "Notified", "submitted": "Rectification submitted",
                 "returned": "Returned to the unit", "rectified": "Rectified"}


def deadline_from(now: datetime, days) -> str:
    return (now.date() + timedelta(days=int(days))).isoformat()


def prepare_problems(problems, origin: str, now: datetime, days) -> list[dict]:
    """Give each problem found a key unique within its case, its origin and a deadline."""
    if origin not in ORIGINS:
        raise ValueError(f"unknown problem origin {origin!r}")
    prepared = []
    for item in problems or []:
        if not isinstance(item, dict) or not str(item.get("description") or "").strip():
            raise ValueError("every problem needs a description")
        prepared.append({
            "ref": item.get("ref") or f"{origin[:4]}-{secrets.token_hex(4)}",
            "origin": origin, "origin_label": ORIGINS[origin],
            "description": str(item["description"]).strip(),
            "requirement": str(item.get("requirement") or "").strip(),
            "deadline": item.get("deadline") or deadline_from(now, days),
        })
    return prepared


def calculations(context) -> dict:
    def days():
        return context.settings()["rectification.days"]

    def with_deadline(problem: dict) -> dict:
        problem = dict(problem)
        problem.setdefault("origin_label", ORIGINS.get(problem.get("origin"), problem.get("origin")))
        if not problem.get("deadline"):
            problem["deadline"] = deadline_from(context.now, days())
        return problem

    return {
        "prepare_problems": lambda problems, origin: prepare_problems(problems, origin, context.now, days()),
        "with_deadline": with_deadline,
        "rectification_deadline": lambda: deadline_from(context.now, days()),
    }


def _problem(s: Session, case: Case, problem: dict, now: datetime) -> Problem:
    """The row of a problem of this case; created if the finding diagram did not record it."""
    ref = str(problem.get("ref") or "")
    if not ref:
        raise ValueError("a problem to rectify needs its 'ref'")
    row = s.scalars(select(Problem).where(Problem.case_id == case.id, Problem.ref == ref)).first()
    if row is None:
        row = Problem(project_id=case.project_id, case_id=case.id, ref=ref,
                      origin=str(problem.get("origin") or "monitoring"), year=case.year or now.year,
                      description=str(problem.get("description") or ""),
                      requirement=str(problem.get("requirement") or ""), status="recorded",
                      measures="", check_comment="", rounds=0, created_at=now)
        s.add(row)
    return row


def _date(value) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def record_problems(s: Session, case: Case, data: dict, actor_id, now: datetime) -> None:
    for problem in data.get("problems") or []:
        row = _problem(s, case, problem, now)
        row.deadline = row.deadline or _date(problem.get("deadline"))
    s.flush()


def notify(s: Session, case: Case, data: dict, actor_id, now: datetime) -> None:
    problem = data["problem"]
    row = _problem(s, case, problem, now)
    row.status, row.notified_at, row.deadline = "notified", now, _date(problem.get("deadline"))
    s.flush()


def submitted(s: Session, case: Case, data: dict, actor_id, now: datetime) -> None:
    row = _problem(s, case, data["problem"], now)
    row.status, row.submitted_at = "submitted", now
    row.measures = str(data.get("rectification_measures") or "")
    row.evidence = data.get("rectification_evidence") or []
    row.rounds = (row.rounds or 0) + 1
    s.flush()


def returned(s: Session, case: Case, data: dict, actor_id, now: datetime) -> None:
    row = _problem(s, case, data["problem"], now)
    row.status, row.check_comment, row.checked_by_id = "returned", str(data.get("check_comment") or ""), actor_id
    s.flush()


def approved(s: Session, case: Case, data: dict, actor_id, now: datetime) -> None:
    row = _problem(s, case, data["problem"], now)
    row.status, row.rectified_at, row.checked_by_id = "rectified", now, actor_id
    row.check_comment = str(data.get("check_comment") or "")
    s.flush()


EFFECT_HANDLERS = {
    "record_problems": record_problems,
    "notify_problem": notify,
    "rectification_submitted": submitted,
    "rectification_returned": returned,
    "rectification_approved": approved,
}
