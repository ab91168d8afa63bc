"""Queries over what the links keep about projects: monitoring records, self-assessments,
problems and key evaluations, per project and per year."""
from __future__ import annotations

from datetime import date

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, selectinload

from .models import (
    Campaign, ExAnteEvaluation, KeyEvaluation, MonitoringRecord, Problem, Project,
    ProjectGoals, SelfAssessment,
)


def monitoring_of_project(s: Session, project_id: int) -> list[MonitoringRecord]:
    return list(s.scalars(select(MonitoringRecord).where(MonitoringRecord.project_id == project_id)
                          .order_by(MonitoringRecord.cutoff_date, MonitoringRecord.id)))


def self_assessments_of_project(s: Session, project_id: int) -> list[SelfAssessment]:
    return list(s.scalars(select(SelfAssessment).where(SelfAssessment.project_id == project_id)
                          .order_by(SelfAssessment.year, SelfAssessment.id)))


def key_evaluations_of_project(s: Session, project_id: int) -> list[KeyEvaluation]:
    return list(s.scalars(select(KeyEvaluation).where(KeyEvaluation.project_id == project_id)
                          .order_by(KeyEvaluation.id)))


def problems(s: Session, project_ids: list[int] | None = None, year: int | None = None,
             status: str | None = None, overdue_on: date | None = None) -> list[Problem]:
    """Problems, oldest first; `overdue_on` keeps the open ones past their deadline on that day."""
    query = select(Problem).options(selectinload(Problem.project).selectinload(Project.unit))
    if project_ids is not None:
        query = query.where(Problem.project_id.in_(project_ids))
    if year is not None:
        query = query.where(Problem.year == year)
    if status == "open":
        query = query.where(Problem.status != "rectified")
    elif status:
        query = query.where(Problem.status == status)
    if overdue_on is not None:
        query = query.where(Problem.status != "rectified", Problem.deadline < overdue_on)
    return list(s.scalars(query.order_by(Problem.created_at, Problem.id)))


def years(s: Session) -> list[int]:
    return sorted(set(s.scalars(select(Project.year).distinct())), reverse=True)


def yearly_figures(s: Session, year: int, today: date) -> dict:
    """The figures the bureau reports for a budget year (domain.md, 'The yearly figures')."""
    projects = select(Project.id).where(Project.year == year).scalar_subquery()
    total_projects = s.scalar(select(func.count()).select_from(Project).where(Project.year == year)) or 0
    under_goals = s.scalar(select(func.count(func.distinct(ProjectGoals.project_id)))
                           .where(ProjectGoals.project_id.in_(projects))) or 0
    ex_ante = s.execute(
        select(func.count(func.distinct(ExAnteEvaluation.project_id)),
               func.count(func.distinct(case((Project.is_new.is_(True), ExAnteEvaluation.project_id)))),
               func.count(func.distinct(case((Project.is_key.is_(True), ExAnteEvaluation.project_id)))),
               func.count(func.distinct(case((ExAnteEvaluation.site_examination.isnot(None),
                                              ExAnteEvaluation.project_id)))))
        .join(Project, Project.id == ExAnteEvaluation.project_id).where(Project.year == year)).one()
    monitoring = s.execute(
        select(func.count(func.distinct(MonitoringRecord.project_id)),
               func.count(func.distinct(case((MonitoringRecord.key_monitoring.is_(True),
                                              MonitoringRecord.project_id)))),
               func.coalesce(func.sum(MonitoringRecord.reduced_amount), 0))
        .where(MonitoringRecord.project_id.in_(projects))).one()
    lights = dict(s.execute(select(MonitoringRecord.light, func.count())
                            .where(MonitoringRecord.project_id.in_(projects), MonitoringRecord.light.isnot(None))
                            .group_by(MonitoringRecord.light)).all())
    spot = s.scalars(select(Campaign).where(Campaign.kind == "self_assessment", Campaign.year == year,
                                            Campaign.drawn_at.isnot(None))).all()
    departments_checked = sorted({d for c in spot for d in (c.sampled or [])})
    assessed = s.scalar(select(func.count()).select_from(SelfAssessment)
                        .where(SelfAssessment.year == year, SelfAssessment.score.isnot(None))) or 0
    problem_rows = s.execute(
        select(Problem.origin, func.count(),
               func.sum(case((Problem.status == "rectified", 1), else_=0)),
               func.sum(case(((Problem.status != "rectified") & (Problem.deadline < today), 1), else_=0)))
        .where(Problem.year == year).group_by(Problem.origin)).all()
    by_origin = {origin: {"found": found, "rectified": int(done or 0), "overdue": int(late or 0)}
                 for origin, found, done, late in problem_rows}
    grades = dict(s.execute(select(KeyEvaluation.grade, func.count())
                            .where(KeyEvaluation.year == year, KeyEvaluation.grade.isnot(None))
                            .group_by(KeyEvaluation.grade)).all())
    evaluations = s.scalar(select(func.count()).select_from(KeyEvaluation).where(KeyEvaluation.year == year)) or 0
    return {
        "year": year,
        "projects": total_projects,
        "goal_management": {"projects": under_goals,
                            "coverage": (under_goals / total_projects) if total_projects else None},
        "ex_ante": {"evaluated": ex_ante[0], "new_projects": ex_ante[1], "key_projects": ex_ante[2],
                    "on_site": ex_ante[3], "on_site_share": (ex_ante[3] / ex_ante[0]) if ex_ante[0] else None},
        "monitoring": {"projects": monitoring[0], "key_monitoring": monitoring[1],
                       "funds_reduced": str(monitoring[2]), "lights": lights},
        "spot_check": {"self_assessed": assessed, "departments_checked": departments_checked,
                       "problems": by_origin.get("self_assessment", {"found": 0, "rectified": 0, "overdue": 0})},
        "problems": {
            "found": sum(v["found"] for v in by_origin.values()),
            "rectified": sum(v["rectified"] for v in by_origin.values()),
            "overdue": sum(v["overdue"] for v in by_origin.values()),
            "by_origin": by_origin,
        },
        "key_evaluations": {"done": evaluations, "grades": grades},
    }
