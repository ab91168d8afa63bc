"""Queries of campaigns and the records their cases keep."""
from __future__ import annotations

from datetime import date

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from .models import Campaign, Case, MonitoringRecord, Organisation, Project, SelfAssessment
from .queries import get_for_update


def open_campaign(s: Session, kind: str, year: int, cutoff_date: date | None) -> Campaign | None:
    query = select(Campaign).where(Campaign.kind == kind, Campaign.year == year, Campaign.status == "open")
    if cutoff_date is not None:
        query = query.where(Campaign.cutoff_date == cutoff_date)
    return s.scalars(query.limit(1)).first()


def campaign_at(s: Session, kind: str, year: int, cutoff_date: date | None) -> Campaign | None:
    """A campaign of this kind, year and cut-off date, open or closed."""
    return s.scalars(select(Campaign).where(Campaign.kind == kind, Campaign.year == year,
                                            Campaign.cutoff_date == cutoff_date).limit(1)).first()


def campaign_for_update(s: Session, campaign_id: int) -> Campaign | None:
    return get_for_update(s, Campaign, campaign_id)


def budget_projects(s: Session, year: int) -> list[Project]:
    """The year's projects with approved goals, in code order."""
    return list(s.scalars(select(Project).where(Project.year == year, Project.goals_status == "approved")
                          .order_by(Project.code)
                          .options(selectinload(Project.unit), selectinload(Project.competent))))


def campaigns(s: Session, year: int | None = None) -> list[Campaign]:
    query = select(Campaign).options(selectinload(Campaign.started_by))
    if year is not None:
        query = query.where(Campaign.year == year)
    return list(s.scalars(query.order_by(Campaign.year.desc(), Campaign.id.desc())))


def campaign_cases(s: Session, campaign_id: int) -> list[Case]:
    return list(s.scalars(select(Case).where(Case.campaign_id == campaign_id).order_by(Case.id)
                          .options(selectinload(Case.project).selectinload(Project.competent),
                                   selectinload(Case.project).selectinload(Project.unit))))


def mark_sampled(s: Session, campaign_id: int, departments: list[str]) -> None:
    """Record on each self-assessment of the campaign whether its department was drawn."""
    drawn_projects = (select(Project.id).join(Organisation, Project.competent_id == Organisation.id)
                      .where(Organisation.name.in_(departments)))
    s.execute(update(SelfAssessment).where(SelfAssessment.campaign_id == campaign_id)
              .values(sampled=SelfAssessment.project_id.in_(drawn_projects)))


def case_facts(s: Session, kind: str, case_id: int) -> dict:
    """What a campaign's overview shows of one case, from the link's own table."""
    if kind == "monitoring":
        row = s.scalars(select(MonitoringRecord).where(MonitoringRecord.case_id == case_id)).first()
        return {"light": row.light if row else None, "key_monitoring": bool(row.key_monitoring) if row else None,
                "outcome": row.outcome if row else None,
                "execution_rate": float(row.execution_rate) if row and row.execution_rate is not None else None,
                "reduced_amount": str(row.reduced_amount) if row and row.reduced_amount is not None else None}
    row = s.scalars(select(SelfAssessment).where(SelfAssessment.case_id == case_id)).first()
    return {"score": float(row.score) if row and row.score is not None else None,
            "grade": row.grade if row else None, "sampled": row.sampled if row else None,
            "review_score": float(row.review_score) if row and row.review_score is not None else None,
            "gap_flag": bool(row.gap_flag) if row else None}
