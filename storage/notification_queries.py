"""Queries for in-app notifications and their e-mail outbox."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session, joinedload

from .models import HumanTask, Notification, RoleGrant, User


def task_actor_ids(s: Session, task: HumanTask, bureau_roles) -> list[int]:
    """The active users who may act on an open inbox row: its assignee if it has one; else the
    holders of its role in its organisation (case-scoped roles) or anywhere (bureau-wide roles,
    whose rows carry no organisation). The same rule as Actor.may_work_on and queries.inbox."""
    if task.assignee_id is not None:
        return list(s.scalars(select(User.id).where(User.id == task.assignee_id, User.active.is_(True))))
    if not task.role:
        return []
    if task.org_id is not None:
        where = and_(RoleGrant.role == task.role, RoleGrant.org_id == task.org_id)
    elif task.role in bureau_roles:
        where = RoleGrant.role == task.role
    else:
        return []       # a case-scoped role without its organisation reaches nobody's inbox
    return list(s.scalars(select(User.id).join(RoleGrant, RoleGrant.user_id == User.id)
                          .where(where, User.active.is_(True)).distinct().order_by(User.id)))


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

