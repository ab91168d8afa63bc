"""Queries over attachments. Lists never load the content column (it is deferred); only
`with_content` does, for a download."""
from __future__ import annotations

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session, selectinload, undefer

from .models import TASK_COMPLETED, Attachment, HumanTask, User
from .queries import is_row_id

_A, _TASKS, _USERS = Attachment.__table__, HumanTask.__table__, User.__table__
# What lists show of a file, as plain rows (never the content): its task's name and its
# uploader's names joined in, in one SELECT. Every case page, task page and start answer lists
# files, usually none; ORM objects with their task and user loaded cost several times as much.
_LISTED = (select(_A.c.id, _A.c.case_id, _A.c.human_task_id, _A.c.step, _TASKS.c.name.label("task_name"),
                  _A.c.file_name, _A.c.size, _A.c.content_type, _A.c.sha256,
                  _USERS.c.username.label("uploaded_by"), _USERS.c.display_name.label("uploaded_by_name"),
                  _A.c.uploaded_at)
           .select_from(_A.outerjoin(_TASKS, _TASKS.c.id == _A.c.human_task_id)
                        .join(_USERS, _USERS.c.id == _A.c.uploaded_by_id)))
_OF_CASE = _LISTED.where(_A.c.case_id == bindparam("b_case")).order_by(_A.c.id)
_OF_TASK = _LISTED.where(_A.c.human_task_id == bindparam("b_task")).order_by(_A.c.id)
_BY_IDS = _LISTED.where(_A.c.id.in_(bindparam("b_ids", expanding=True))).order_by(_A.c.id)


def _listed(s: Session, statement, params: dict) -> list:
    s.flush()       # as an ORM query would: a file added in this session is listed
    return list(s.connection().execute(statement, params))


def of_case(s: Session, case_id: int) -> list:
    """A case's files, oldest first, as rows of _LISTED's columns."""
    return _listed(s, _OF_CASE, {"b_case": case_id})


def of_task(s: Session, task_id: int) -> list:
    """A task's files, oldest first, as rows of _LISTED's columns."""
    return _listed(s, _OF_TASK, {"b_task": task_id})


def listed(s: Session, ids: list[int]) -> list:
    """The files with these ids, oldest first, as rows of _LISTED's columns."""
    return _listed(s, _BY_IDS, {"b_ids": list(ids)}) if ids else []


_IDS_OF_TASK = select(_A.c.id).where(_A.c.human_task_id == bindparam("b_task")).order_by(_A.c.id)


def ids_of_task(s: Session, task_id: int) -> list[int]:
    """The ids of a task's files, oldest first (a Core SELECT: no rows loaded)."""
    return list(s.connection().execute(_IDS_OF_TASK, {"b_task": task_id}).scalars())


def count_of_task(s: Session, task_id: int) -> int:
    return s.scalar(select(func.count()).select_from(Attachment).where(Attachment.human_task_id == task_id)) or 0


def get(s: Session, attachment_id, with_content: bool = False) -> Attachment | None:
    if not is_row_id(attachment_id):
        return None
    query = (select(Attachment).options(selectinload(Attachment.task), selectinload(Attachment.uploaded_by))
             .where(Attachment.id == attachment_id))
    if with_content:
        query = query.options(undefer(Attachment.content))
    return s.scalars(query).first()


def lock_task(s: Session, task_id: int) -> None:
    """Lock a task's inbox row to the end of the transaction (PostgreSQL; SQLite's writers hold
    the database's write lock already). Uploads and removals take it and then check that the
    task is still open; a completion takes it while it reads the files and holds it to its
    commit (PostgreSQL), or closes the task before it reads them once more (SQLite), so it
    records exactly the files that were there when it committed."""
    if s.get_bind().dialect.name == "sqlite":
        return      # FOR UPDATE means nothing there: the statement would be a wasted SELECT
    s.execute(select(HumanTask.id).where(HumanTask.id == task_id).with_for_update(key_share=True))  # see queries


def latest_completed_task_of_step(s: Session, case_id: int, step: str) -> int | None:
    return s.scalar(select(HumanTask.id).where(HumanTask.case_id == case_id, HumanTask.step == step,
                                               HumanTask.status == TASK_COMPLETED)
                    .order_by(HumanTask.completed_at.desc(), HumanTask.id.desc()).limit(1))


def remove(s: Session, attachment_id: int) -> bool:
    return s.execute(delete(Attachment).where(Attachment.id == attachment_id)).rowcount == 1
