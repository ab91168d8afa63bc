"""Queries over attachments. Lists never load the content column (it is deferred); only
`with_content` does, for a download."""
from __future__ import annotations

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session, selectinload, undefer

from .models import Attachment, HumanTask
from .queries import MAX_ID

_LIST = (selectinload(Attachment.task), selectinload(Attachment.uploaded_by))


def of_case(s: Session, case_id: int) -> list[Attachment]:
    return list(s.scalars(select(Attachment).options(*_LIST).where(Attachment.case_id == case_id)
                          .order_by(Attachment.id)))


# Built once: every completion runs it (usually to find no file).
_OF_TASK = (select(Attachment).options(*_LIST).where(Attachment.human_task_id == bindparam("b_task"))
            .order_by(Attachment.id))


def of_task(s: Session, task_id: int) -> list[Attachment]:
    return list(s.scalars(_OF_TASK, {"b_task": task_id}))


_IDS_OF_TASK = (select(Attachment.__table__.c.id).where(Attachment.__table__.c.human_task_id == bindparam("b_task"))
                .order_by(Attachment.__table__.c.id))


def ids_of_task(s: Session, task_id: int) -> list[int]:
    """The ids of a task's files, oldest first (a Core SELECT: no rows loaded)."""
    return list(s.connection().execute(_IDS_OF_TASK, {"b_task": task_id}).scalars())


def count_of_task(s: Session, task_id: int) -> int:
    return s.scalar(select(func.count()).select_from(Attachment).where(Attachment.human_task_id == task_id)) or 0


def get(s: Session, attachment_id, with_content: bool = False) -> Attachment | None:
    if isinstance(attachment_id, bool) or not isinstance(attachment_id, int) or not 0 < attachment_id <= MAX_ID:
        return None
    query = select(Attachment).options(*_LIST).where(Attachment.id == attachment_id)
    if with_content:
        query = query.options(undefer(Attachment.content))
    return s.scalars(query).first()


def lock_task(s: Session, task_id: int) -> None:
    """Lock a task's inbox row to the end of the transaction (PostgreSQL; SQLite's writers hold
    the database's write lock already). Uploads and removals take it and then check that the
    task is still open; a completion closes the task (its UPDATE takes the same lock) before it
    reads the files once more, so it records exactly the files that were there when it committed."""
    if s.get_bind().dialect.name == "sqlite":
        return      # FOR UPDATE means nothing there: the statement would be a wasted SELECT
    s.execute(select(HumanTask.id).where(HumanTask.id == task_id).with_for_update())


def latest_completed_task_of_step(s: Session, case_id: int, step: str) -> int | None:
    return s.scalar(select(HumanTask.id).where(HumanTask.case_id == case_id, HumanTask.step == step,
                                               HumanTask.status == "completed")
                    .order_by(HumanTask.completed_at.desc(), HumanTask.id.desc()).limit(1))


def remove(s: Session, attachment_id: int) -> bool:
    return s.execute(delete(Attachment).where(Attachment.id == attachment_id)).rowcount == 1
