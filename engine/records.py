"""What the links keep about projects, read for people: a project's performance record,
the register of problems and their rectification, and the bureau's yearly figures."""
from __future__ import annotations

from datetime import date

from storage import queries, record_queries
from storage.db import Database

from .access import Actor
from .clock import Clock
from .errors import PermissionDenied
from .rectification import ORIGINS, STATUS_LABELS


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _num(value) -> float | None:
    return float(value) if value is not None else None


def problem_summary(p, today: date) -> dict:
    return {"id": p.id, "case_id": p.case_id, "ref": p.ref, "origin": p.origin,
            "origin_label": ORIGINS.get(p.origin, p.origin), "year": p.year,
            "project": {"id": p.project.id, "code": p.project.code, "name": p.project.name},
            "unit": p.project.unit.name, "description": p.description, "requirement": p.requirement,
            "status": p.status, "status_label": STATUS_LABELS.get(p.status, p.status),
            "deadline": _iso(p.deadline),
            "overdue": bool(p.deadline and p.status != "rectified" and p.deadline < today),
            "rounds": p.rounds, "measures": p.measures, "evidence": p.evidence or [],
            "rectified_at": _iso(p.rectified_at)}


class RecordService:
    def __init__(self, db: Database, clock: Clock):
        self.db = db
        self.clock = clock

    def project_record(self, project_id: int) -> dict:
        """Monitoring, self-assessment, evaluation and problems of one project (the caller has
        checked that the actor may see the project)."""
        today = self.clock.now().date()
        with self.db.reading() as s:
            return {
                "monitoring": [{
                    "case_id": m.case_id, "cutoff_date": _iso(m.cutoff_date), "budget": _num(m.budget),
                    "spent": _num(m.spent), "execution_rate": _num(m.execution_rate),
                    "budget_light": m.budget_light, "light": m.light, "key_monitoring": m.key_monitoring,
                    "explanation": m.explanation, "measures": m.measures, "findings": m.findings,
                    "outcome": m.outcome, "reduced_amount": _num(m.reduced_amount),
                    "indicators": m.indicators or []} for m in record_queries.monitoring_of_project(s, project_id)],
                "self_assessments": [{
                    "case_id": a.case_id, "year": a.year, "score": _num(a.score), "grade": a.grade,
                    "sampled": a.sampled, "review_score": _num(a.review_score), "gap_flag": a.gap_flag,
                    "review": a.review} for a in record_queries.self_assessments_of_project(s, project_id)],
                "key_evaluations": [{
                    "case_id": e.case_id, "year": e.year, "selection_reason": e.selection_reason,
                    "evaluator": e.evaluator, "score": _num(e.score), "grade": e.grade, "result": e.result,
                    "result_note": e.result_note, "scores": e.scores}
                    for e in record_queries.key_evaluations_of_project(s, project_id)],
                "problems": [problem_summary(p, today) for p in record_queries.problems(s, [project_id])],
            }

    def problems(self, actor: Actor, year: int | None = None, status: str | None = None,
                 overdue: bool = False) -> list[dict]:
        """The problem register: every problem the actor may see, with its rectification."""
        today = self.clock.now().date()
        with self.db.reading() as s:
            ids = None
            if not actor.sees_all_cases:
                ids = [p.id for p in queries.visible_projects(s, actor.grants, False, "third_party" in actor.roles)]
            rows = record_queries.problems(s, ids, year, status, today if overdue else None)
            return [problem_summary(p, today) for p in rows]

    def years(self) -> list[int]:
        with self.db.reading() as s:
            return record_queries.years(s)

    def figures(self, actor: Actor, year: int) -> dict:
        """The yearly figures: finance bureau roles only (they span every unit)."""
        if not actor.sees_all_cases:
            raise PermissionDenied("the yearly figures are for the finance bureau")
        with self.db.reading() as s:
            return record_queries.yearly_figures(s, year, self.clock.now().date())
