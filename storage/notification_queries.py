"""Queries for in-app notifications and their e-mail outbox."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session, joinedload

from .models import HumanTask, Notification, RoleGrant, User


_INSERT = insert(Notification)


def insert_all(s: Session, rows: list[dict]) -> None:
    """Write notification rows (dicts of Notification's columns, all with the same keys) in one
    statement on the session's connection. A Core INSERT, not s.add_all(): nothing reads them
    back in the transaction, and the unit of work's bookkeeping cost more than the INSERT. The
    flush first puts any rows still pending in the session (the task or case they point to)
    in the database before them."""
    if rows:
        s.flush()
        s.connection().execute(_INSERT, rows)


def task_actor_ids(s: Session, task: HumanTask, bureau_roles) -> list[int]:
    """The active users who may act on an open inbox row: its assignee if it has one; else the
    holders of its role in its organisation (case-scoped roles) or anywhere (bureau-wide roles,
    whose rows carry no organisation). The same rule as Actor.may_work_on and queries.inbox."""
    return _selected_ids(s, _actors_of(task, bureau_roles))


def role_holder_ids(s: Session, role: str, org_id: int | None, bureau_roles) -> list[int]:
    """Active users holding a role: in that organisation for a case-scoped role, anywhere for a
    bureau-wide one (whose rows carry no organisation)."""
    return _selected_ids(s, _role_holders(role, org_id, bureau_roles))


def _actors_of(task: HumanTask, bureau_roles) -> tuple[str, dict] | None:
    """Which selection of _ACTOR_SELECTS names the users who may act on an open inbox row, with
    its parameters; None if nobody may."""
    if task.assignee_id is not None:
        return "assignee", {"b_user": task.assignee_id}
    return _role_holders(task.role, task.org_id, bureau_roles) if task.role else None


def _role_holders(role: str, org_id: int | None, bureau_roles) -> tuple[str, dict] | None:
    if org_id is not None:
        return "in_org", {"b_role": role, "b_org": org_id}
    if role in bureau_roles:
        return "anywhere", {"b_role": role}
    return None     # a case-scoped role without its organisation reaches nobody


def _selected_ids(s: Session, chosen: tuple[str, dict] | None) -> list[int]:
    return _ids(s, _ACTOR_SELECTS[chosen[0]], chosen[1]) if chosen is not None else []


def _ids(s: Session, statement, params: dict) -> list[int]:
    # On the session's connection, not through Session.scalars: plain ids need none of the
    # ORM's result machinery, which cost more than the SELECT for every new task. The flush
    # keeps what Session.scalars' autoflush gave: users and grants pending in the session count.
    s.flush()
    return list(s.connection().execute(statement, params).scalars())


# Built once: every new task runs one of these, and building a statement cost more CPU than
# running it.
_ACTIVE_USER = select(User.id).where(User.id == bindparam("b_user"), User.active.is_(True))
_ROLE_HOLDERS = (select(User.id).join(RoleGrant, RoleGrant.user_id == User.id)
                 .where(RoleGrant.role == bindparam("b_role"), User.active.is_(True)).distinct().order_by(User.id))
_ROLE_HOLDERS_IN_ORG = (select(User.id).join(RoleGrant, RoleGrant.user_id == User.id)
                        .where(RoleGrant.role == bindparam("b_role"), RoleGrant.org_id == bindparam("b_org"),
                               User.active.is_(True)).distinct().order_by(User.id))


_ACTOR_SELECTS = {"assignee": _ACTIVE_USER, "in_org": _ROLE_HOLDERS_IN_ORG, "anywhere": _ROLE_HOLDERS}


def _insert_for(users) -> object:
    """INSERT ... SELECT: one notification for each user `users` selects, other than the actor."""
    chosen = (users.add_columns(bindparam("b_kind"), bindparam("b_case"), bindparam("b_task"), bindparam("b_title"),
                                bindparam("b_body"), bindparam("b_at"))
              .where(User.id.is_distinct_from(bindparam("b_actor"))))
    return insert(Notification).from_select(
        ["user_id", "kind", "case_id", "human_task_id", "title", "body", "created_at"], chosen)


_NOTIFY_ACTORS = {key: _insert_for(users) for key, users in _ACTOR_SELECTS.items()}


def notify_task_actors(s: Session, task: HumanTask, bureau_roles, except_user: int | None, kind: str,
                       title: str, body: str, at: datetime) -> int:
    """Notify the users task_actor_ids names, except `except_user`, in one statement that
    selects and writes them (this runs for every new task); return how many were written."""
    chosen = _actors_of(task, bureau_roles)
    if chosen is None:
        return 0
    key, params = chosen
    s.flush()       # the task the rows point to, if still pending, and users or grants pending
    return s.connection().execute(_NOTIFY_ACTORS[key], {
        **params, "b_kind": kind, "b_case": task.case_id, "b_task": task.id, "b_title": title[:400],
        "b_body": body or "", "b_at": at, "b_actor": except_user}).rowcount


def list_for(s: Session, user_id: int, limit: int, offset: int = 0,
             unread_only: bool = False) -> tuple[list[Notification], int, int]:
    """A page of a user's notifications, newest first, with the total and the unread count."""
    q = select(Notification).where(Notification.user_id == user_id)
    if unread_only:
        q = q.where(Notification.read_at.is_(None))
    total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = list(s.scalars(q.order_by(Notification.id.desc()).limit(limit).offset(offset))) if limit else []
    return rows, total, unread_count(s, user_id)


def unread_count(s: Session, user_id: int) -> int:
    # Served by ix_notifications_user_read (user_id, read_at, id).
    return s.scalar(select(func.count(Notification.id)).where(
        Notification.user_id == user_id, Notification.read_at.is_(None))) or 0


def get_for_user(s: Session, notification_id: int, user_id: int) -> Notification | None:
    return s.scalars(select(Notification).where(Notification.id == notification_id,
                                                Notification.user_id == user_id)).first()


def mark_read(s: Session, user_id: int, ids: list[int] | None, at: datetime) -> int:
    """Mark the user's unread notifications read (all of them when ids is None); how many changed.
    Another user's ids are simply not matched."""
    q = update(Notification).where(Notification.user_id == user_id, Notification.read_at.is_(None))
    if ids is not None:
        if not ids:
            return 0
        q = q.where(Notification.id.in_(ids))
    return s.execute(q.values(read_at=at)).rowcount or 0


def pending_email(s: Session, since: datetime, limit: int) -> list[Notification]:
    """Notifications not yet e-mailed, created since `since`, of users with an address."""
    return list(s.scalars(
        select(Notification).options(joinedload(Notification.user))
        .join(User, User.id == Notification.user_id)
        .where(Notification.emailed_at.is_(None), Notification.created_at >= since,
               User.email.is_not(None), User.email != "", User.active.is_(True))
        .order_by(Notification.id).limit(limit)))


def claim_for_email(s: Session, notification_id: int, at: datetime) -> bool:
    """Take one notification for sending; False if another sender took it first."""
    result = s.execute(update(Notification).where(Notification.id == notification_id,
                                                  Notification.emailed_at.is_(None)).values(emailed_at=at))
    return result.rowcount == 1


def release_email(s: Session, notification_id: int, claimed_at: datetime) -> None:
    """Give a claimed notification back after a failed send, so that a later run retries it."""
    s.execute(update(Notification).where(Notification.id == notification_id,
                                         Notification.emailed_at == claimed_at).values(emailed_at=None))

