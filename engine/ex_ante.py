"""Link 1, ex-ante evaluation: the scoring sheet, the conclusion, and what a case records.

Five dimensions of 20 points, each from four sub-items of 5 points rated excellent / good /
fair / poor (points per rating and the cut-offs are settings). A project that is new or
key needs a passed ("support") evaluation before its goals may be reviewed.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import Case, ExAnteEvaluation, Project

from .attachments import submitted_at_step
from .errors import Conflict
from .rules.defaults import EX_ANTE_DIMENSIONS
from .rules.grading import ex_ante_conclusion, ex_ante_dimension_score

SUB_ITEMS = {
    "necessity": ("Policy basis and mandate", "Real and pressing demand", "Within the scope of public finance",
                  "No duplication with other projects"),
    "economy": ("Basis of the cost estimate", "Cost standards respected", "Cost against expected benefit",
                "Funding scale fits the tasks"),
    "goal_rationality": ("Goals are clear and specific", "Indicators are measurable",
                         "Targets are reasonable", "Goals match the budget"),
    "feasibility": ("Implementation plan is complete", "Organisation and management in place",
                    "Schedule is realistic", "Risks identified and controlled"),
    "fund_compliance": ("Funding sources are legal", "Own and matching funds secured",
                        "Complies with fund management rules", "Fund management system in place"),
}
DIMENSION_MAX = Decimal(20)


def scoring_sheet() -> list[dict]:
    """The 20 rows the review center rates."""
    return [{"dimension": d, "item": item, "rating": None} for d in EX_ANTE_DIMENSIONS for item in SUB_ITEMS[d]]


def result(scores: list[dict], settings: dict) -> dict:
    """Dimension scores, total (of 100) and conclusion from a rated scoring sheet."""
    by_dimension: dict[str, list[str]] = {d: [] for d in EX_ANTE_DIMENSIONS}
    for row in scores or []:
        # ValueError, whatever the rows hold: the diagram turns it into "correct your input".
        dimension = row.get("dimension") if isinstance(row, dict) else None
        if not isinstance(dimension, str) or dimension not in by_dimension:
            raise ValueError(f"unknown dimension {dimension!r}")
        if not row.get("rating"):
            raise ValueError(f"sub-item {row.get('item')!r} is not rated")
        if not isinstance(row["rating"], str):
            raise ValueError(f"sub-item {row.get('item')!r} has no valid rating")
        by_dimension[row["dimension"]].append(row["rating"])
    dimensions = {d: min(ex_ante_dimension_score(r, settings["ex_ante.rating_points"]), DIMENSION_MAX)
                  for d, r in by_dimension.items()}
    total = sum(dimensions.values(), Decimal(0))
    return {"dimensions": {d: float(v) for d, v in dimensions.items()}, "total": float(total),
            "conclusion": ex_ante_conclusion(total, settings["ex_ante.support_min"], settings["ex_ante.adjust_min"])}


def needs_evaluation(project: Project, key_amount) -> bool:
    return bool(project.is_new or project.is_key or Decimal(project.amount or 0) >= Decimal(str(key_amount)))


def check_can_start(s: Session, project: Project, settings: dict) -> None:
    running = s.scalars(select(Case.id).where(Case.project_id == project.id,
                                              Case.process_key == "ex_ante_evaluation",
                                              Case.status == "running")).first()
    if running is not None:
        raise Conflict(f"project {project.code} already has an ex-ante evaluation in progress (case {running})",
                       {"case_id": running})


def mark_in_progress(s: Session, case: Case, data: dict, actor_id: int | None, now: datetime) -> None:
    if case.project is not None:
        case.project.ex_ante_status = "in_progress"


def record(s: Session, case: Case, data: dict, actor_id: int | None, now: datetime) -> None:
    """Keep this round's scores and conclusion; the project's status follows the conclusion."""
    project = case.project
    if project is None:
        return
    rounds = s.scalar(select(func.count()).select_from(ExAnteEvaluation)
                      .where(ExAnteEvaluation.case_id == case.id)) or 0
    site = {k: data.get(k) for k in ("examined_on", "participants", "findings", "documents") if k in data}
    if site:
        # The files submitted with the examination (a later step's completion replaces the task
        # data's attached_files with its own, so they are read from the step's task).
        site["attachments"] = submitted_at_step(s, case.id, "site_examination")
    third = {k: data.get(k) for k in ("opinion", "recommendation") if k in data}
    s.add(ExAnteEvaluation(project_id=project.id, case_id=case.id, round=rounds + 1,
                           total=Decimal(str(data["total_score"])), dimensions=data["dimension_scores"],
                           conclusion=data["conclusion"], site_examination=site or None,
                           third_party=third or None, summary=str(data.get("summary") or ""),
                           evaluated_at=now, evaluated_by_id=actor_id))
    project.ex_ante_status = "in_progress" if data["conclusion"] == "adjust" else data["conclusion"]


def calculations(context) -> dict:
    return {"ex_ante_items": scoring_sheet,
            "ex_ante_result": lambda scores: result(scores, context.settings())}


EFFECT_HANDLERS = {"mark_ex_ante_in_progress": mark_in_progress, "record_ex_ante": record}
START_GUARDS = {"ex_ante_evaluation": check_can_start}
