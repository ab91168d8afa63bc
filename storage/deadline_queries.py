"""Queries for reminders and escalations: inbox rows whose next alert is due, by the indexed
`human_tasks.alert_at` column."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, joinedload

from .models import TASK_OPEN, Case, HumanTask


def due_alerts(s: Session, now: datetime, limit: int,
               after: tuple[datetime, int] | None = None) -> list[tuple[int, datetime]]:
    """Open inbox rows with an alert due by now, earliest first; `after` pages on (alert_at, id)."""
    query = select(HumanTask.id, HumanTask.alert_at).where(HumanTask.alert_at <= now,
                                                            HumanTask.status == TASK_OPEN)
    if after is not None:
        at, task_id = after
        query = query.where((HumanTask.alert_at > at) | ((HumanTask.alert_at == at) & (HumanTask.id > task_id)))
    return [(task_id, at) for task_id, at in
            s.execute(query.order_by(HumanTask.alert_at, HumanTask.id).limit(limit))]


def open_task(s: Session, task_id: int) -> HumanTask | None:
    """The open inbox row with what an alert tells about it (its case, project, organisation)."""
    return s.scalars(select(HumanTask).where(HumanTask.id == task_id, HumanTask.status == TASK_OPEN)
                     .options(joinedload(HumanTask.case).joinedload(Case.project),
                              joinedload(HumanTask.org))).first()


def take_alerts(s: Session, task_id: int, expected_at: datetime, values: dict) -> bool:
    """Move the row's alerts on, if nobody did since `expected_at` was read and it is still open."""
    result = s.execute(update(HumanTask).where(HumanTask.id == task_id, HumanTask.status == TASK_OPEN,
                                               HumanTask.alert_at == expected_at).values(**values))
    return result.rowcount == 1


def next_alert_at(s: Session) -> datetime | None:
    """When the next reminder or escalation falls due (closed rows have no alert_at)."""
    return s.scalar(select(func.min(HumanTask.alert_at)))


def open_task_deadlines(s: Session, case_ids: list[int]) -> dict[int, tuple[datetime | None, bool]]:
    """For a page of cases: the earliest due date of each one's open tasks, and whether any of
    them was escalated. One grouped query on ix_human_tasks_case_status."""
    if not case_ids:
        return {}
    rows = s.execute(select(HumanTask.case_id, func.min(HumanTask.due_at), func.max(HumanTask.escalated_at))
                     .where(HumanTask.case_id.in_(case_ids), HumanTask.status == TASK_OPEN)
                     .group_by(HumanTask.case_id))
    return {case_id: (due, escalated is not None) for case_id, due, escalated in rows}
