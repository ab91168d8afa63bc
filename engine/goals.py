"""Performance goals as a contract: what goal-review cases do to the project's records."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import queries
from storage.models import Case, Project, ProjectGoals

from .errors import Conflict

# Display names of the fixed indicator levels and the operators (domain.md, link 2).
INDICATOR_LABELS = {
    "output": "Output", "effect": "Effect", "satisfaction": "Satisfaction",
    "quantity": "Quantity", "quality": "Quality", "timeliness": "Timeliness", "cost": "Cost",
    "economic": "Economic benefit", "social": "Social benefit", "ecological": "Ecological benefit",
    "sustainable": "Sustainable impact", "satisfaction_level2": "Service recipient satisfaction",
    ">=": "≥", ">": ">", "=": "=", "<": "<", "<=": "≤", "qualitative": "",
}



def indicator_label(code: str | None, level: int = 1) -> str:
    """The display name of an indicator level (level 2 'satisfaction' reads differently)."""
    if level == 2 and code == "satisfaction":
        return INDICATOR_LABELS["satisfaction_level2"]
    return INDICATOR_LABELS.get(code or "", code or "")


GOAL_FIELDS = ("project_overview", "basis", "schedule", "safeguards",
               "long_term_goal", "annual_goal", "indicators")


def goals_from_data(data: dict) -> dict:
    return {k: data[k] for k in GOAL_FIELDS if k in data}


def check_can_start(s: Session, project: Project, settings: dict) -> None:
    """A new or key project needs a passed ex-ante evaluation; and one goal review at a time
    per project: two would race to set the approved goals."""
    from .ex_ante import needs_evaluation
    if needs_evaluation(project, settings["project.key_amount"]) and project.ex_ante_status != "support":
        raise Conflict(f"project {project.code} needs a passed ex-ante evaluation before its goals are reviewed "
                       f"(evaluation: {project.ex_ante_status.replace('_', ' ')})",
                       {"ex_ante_status": project.ex_ante_status})
    running = s.scalars(select(Case.id).where(Case.project_id == project.id, Case.process_key == "goal_review",
                                              Case.status == "running")).first()
    if running is not None:
        raise Conflict(f"project {project.code} already has a goal review in progress (case {running})",
                       {"case_id": running})


def mark_in_review(s: Session, case: Case, data: dict, actor_id: int | None, now: datetime) -> None:
    if case.project is not None:
        case.project.goals_status = "in_review"


def approve(s: Session, case: Case, data: dict, actor_id: int | None, now: datetime) -> None:
    """Keep the approved goals as a new version and mark the project's goals approved."""
    project = case.project
    if project is None:
        return
    s.add(ProjectGoals(project_id=project.id, version=queries.next_goals_version(s, project.id),
                       case_id=case.id, goals=goals_from_data(data), approved_at=now,
                       approved_by_id=actor_id))
    project.goals_status = "approved"


def reject(s: Session, case: Case, data: dict, actor_id: int | None, now: datetime) -> None:
    if case.project is not None:
        # A rejection of an in-year change leaves the goals approved earlier in force.
        had_goals = queries.latest_goals(s, case.project.id) is not None
        case.project.goals_status = "approved" if had_goals else "rejected"


EFFECT_HANDLERS = {
    "approve_goals": approve,
    "reject_goals": reject,
    "mark_goals_in_review": mark_in_review,
}

START_GUARDS = {"goal_review": check_can_start}
