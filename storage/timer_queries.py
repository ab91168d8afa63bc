"""Queries of the timer worker: due cases by the indexed `cases.next_due_at` column."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import Case
from .queries import MAX_ID


def due_case_ids(s: Session, now: datetime, limit: int,
                 after: tuple[datetime, int] | None = None) -> list[tuple[int, datetime]]:
    """Running cases whose next timer is due, earliest first; `after` pages on (due, id).
    Strictly before now, as SpiffWorkflow fires a timer only once its moment has passed."""
    query = select(Case.id, Case.next_due_at).where(Case.status == "running", Case.next_due_at < now)
    if after is not None:
        due, case_id = after
        query = query.where((Case.next_due_at > due) | ((Case.next_due_at == due) & (Case.id > case_id)))
    return [(case_id, due) for case_id, due in
            s.execute(query.order_by(Case.next_due_at, Case.id).limit(limit))]


def claim_due_case(s: Session, case_id: int, now: datetime) -> Case | None:
    """The case, locked to the end of the transaction, if it is still running and due; None if
    another worker holds it (PostgreSQL skips locked rows instead of waiting) or fired it
    already. SQLite needs no row lock: the writer's BEGIN IMMEDIATE serialises whole
    transactions, so this read already sees any other worker's committed run."""
    if not 0 < case_id <= MAX_ID:
        return None
    query = (select(Case).where(Case.id == case_id, Case.status == "running", Case.next_due_at < now)
             .with_for_update(skip_locked=True, key_share=True))     # see queries.get_for_update
    return s.scalars(query).first()


def next_due_at(s: Session) -> datetime | None:
    """When the next timer of any running case falls due."""
    return s.scalar(select(func.min(Case.next_due_at)).where(Case.status == "running"))
