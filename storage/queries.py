"""Queries the engine needs. Every list here is shaped to use an index of storage.models."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, exists, false, func, or_, select, tuple_, update
from sqlalchemy.orm import Session, joinedload, selectinload

from .models import (
    ApiToken, AuditEvent, Case, HumanTask, Organisation, ProcessFile, ProcessVersion, Project,
    ProjectGoals, RoleGrant, User,
)


# ---- processes --------------------------------------------------------------------------

def latest_version(s: Session, key: str) -> ProcessVersion | None:
    return s.scalars(select(ProcessVersion).where(ProcessVersion.key == key)
                     .order_by(ProcessVersion.version.desc()).limit(1)).first()


def cases_of_project(s: Session, project_id: int) -> list[int]:
    return list(s.scalars(select(Case.id).where(Case.project_id == project_id).order_by(Case.id)))


def versions_of(s: Session, key: str) -> list[ProcessVersion]:
    return list(s.scalars(select(ProcessVersion).where(ProcessVersion.key == key)
                          .order_by(ProcessVersion.version.desc())))


def latest_version_providing(s: Session, process_id: str) -> ProcessVersion | None:
    """The newest version of the model whose primary process is `process_id`."""
    return s.scalars(select(ProcessVersion).where(ProcessVersion.primary_process_id == process_id)
                     .order_by(ProcessVersion.deployed_at.desc(), ProcessVersion.id.desc()).limit(1)).first()


def latest_versions(s: Session) -> list[ProcessVersion]:
    newest = (select(ProcessVersion.key, func.max(ProcessVersion.version).label("v"))
              .group_by(ProcessVersion.key).subquery())
    return list(s.scalars(select(ProcessVersion).join(
        newest, and_(ProcessVersion.key == newest.c.key, ProcessVersion.version == newest.c.v))
        .order_by(ProcessVersion.key)))


def all_version_ids(s: Session) -> list[int]:
    return list(s.scalars(select(ProcessVersion.id)))


def version_files(s: Session, version_id: int) -> dict[str, bytes]:
    return {f.name: f.content for f in s.scalars(
        select(ProcessFile).where(ProcessFile.version_id == version_id))}


# ---- users ------------------------------------------------------------------------------

def user_by_username(s: Session, username: str) -> User | None:
    return s.scalars(select(User).where(User.username == username)).first()


def user_by_token_hash(s: Session, token_hash: str, now: datetime) -> User | None:
    return s.scalars(select(User).join(ApiToken, ApiToken.user_id == User.id).where(
        ApiToken.token_hash == token_hash, ApiToken.expires_at > now, User.active.is_(True))).first()


def grants_of(s: Session, user_id: int) -> list[tuple[str, int]]:
    return [(r, o) for r, o in s.execute(
        select(RoleGrant.role, RoleGrant.org_id).where(RoleGrant.user_id == user_id))]


def org_by_code(s: Session, code: str) -> Organisation | None:
    return s.scalars(select(Organisation).where(Organisation.code == code)).first()


def project_by_code(s: Session, code: str) -> Project | None:
    return s.scalars(select(Project).where(Project.code == code)).first()


# ---- visibility -------------------------------------------------------------------------

def _project_visible(grants, sees_all: bool, third_party: bool):
    if sees_all or third_party:
        return None
    conds = []
    for role, column in (("unit", Project.unit_id), ("competent", Project.competent_id),
                         ("funding", Project.funding_id)):
        orgs = [o for r, o in grants if r == role]
        if orgs:
            conds.append(column.in_(orgs))
    return or_(*conds) if conds else false()


_PROJECT_ORGS = (joinedload(Project.unit), joinedload(Project.competent), joinedload(Project.funding))
_TASK_LIST = (joinedload(HumanTask.case).joinedload(Case.project), joinedload(HumanTask.org),
              joinedload(HumanTask.assignee), joinedload(HumanTask.completed_by))
_CASE_LIST = (joinedload(Case.process_version), joinedload(Case.project), joinedload(Case.org))


def visible_projects(s: Session, grants, sees_all: bool, third_party: bool, year: int | None = None):
    q = select(Project).options(*_PROJECT_ORGS).order_by(Project.year.desc(), Project.code)
    cond = _project_visible(grants, sees_all, third_party)
    if cond is not None:
        q = q.where(cond)
    if year:
        q = q.where(Project.year == year)
    return list(s.scalars(q))


def case_visibility(grants, sees_all: bool, user_id: int):
    """A WHERE clause on Case for what this user may see; None means everything."""
    if sees_all:
        return None
    conds = [Case.started_by_id == user_id]
    unit_orgs = [o for r, o in grants if r == "unit"]
    if unit_orgs:
        conds.append(Case.org_id.in_(unit_orgs))
    for role, column in (("competent", Project.competent_id), ("funding", Project.funding_id)):
        orgs = [o for r, o in grants if r == role]
        if orgs:
            conds.append(Case.project_id.in_(select(Project.id).where(column.in_(orgs))))
    if any(r == "third_party" for r, _ in grants):
        conds.append(exists().where(HumanTask.case_id == Case.id, HumanTask.role == "third_party"))
    return or_(*conds)


def list_cases(s: Session, visibility, *, process: str | None = None, status: str | None = None,
               org: str | None = None, year: int | None = None, project_id: int | None = None,
               limit: int = 50, offset: int = 0) -> tuple[list[Case], int]:
    q = select(Case)
    if visibility is not None:
        q = q.where(visibility)
    if process:
        q = q.where(Case.process_key == process)
    if status:
        q = q.where(Case.status == status)
    if org:
        q = q.where(Case.org_id.in_(select(Organisation.id).where(Organisation.code == org)))
    if year:
        q = q.where(Case.year == year)
    if project_id:
        q = q.where(Case.project_id == project_id)
    total = s.scalar(select(func.count()).select_from(q.subquery()))
    rows = list(s.scalars(q.options(*_CASE_LIST).order_by(Case.started_at.desc(), Case.id.desc())
                          .limit(limit).offset(offset)))
    return rows, total or 0


# ---- tasks ------------------------------------------------------------------------------

def inbox(s: Session, user_id: int, grants, bureau_roles: list[str], scope: str = "all",
          limit: int = 50, offset: int = 0) -> tuple[list[HumanTask], int]:
    """Open tasks: scope 'mine' (assigned to me), 'group' (unassigned, my roles), or 'all'."""
    scoped = [(r, o) for r, o in grants if r not in bureau_roles]
    group_conds = []
    if scoped:
        group_conds.append(tuple_(HumanTask.role, HumanTask.org_id).in_(scoped))
    if bureau_roles:
        group_conds.append(and_(HumanTask.role.in_(bureau_roles), HumanTask.org_id.is_(None)))
    group = and_(HumanTask.assignee_id.is_(None), or_(*group_conds)) if group_conds else false()
    mine = HumanTask.assignee_id == user_id
    who = {"mine": mine, "group": group}.get(scope, or_(mine, group))
    q = select(HumanTask).where(HumanTask.status == "open", who)
    total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = list(s.scalars(q.options(*_TASK_LIST).order_by(HumanTask.created_at, HumanTask.id)
                          .limit(limit).offset(offset))) if limit else []
    return rows, total


def open_tasks_of_case(s: Session, case_id: int, with_relations: bool = False) -> list[HumanTask]:
    q = select(HumanTask).where(HumanTask.case_id == case_id, HumanTask.status == "open").order_by(HumanTask.id)
    if with_relations:
        q = q.options(*_TASK_LIST)
    return list(s.scalars(q))


def tasks_of_case(s: Session, case_id: int) -> list[HumanTask]:
    return list(s.scalars(select(HumanTask).where(HumanTask.case_id == case_id).order_by(HumanTask.id)))


def mark_task_done(s: Session, task_id: int, status: str, at: datetime, by: int | None) -> bool:
    """Close an open inbox row; False if someone else closed it first."""
    result = s.execute(update(HumanTask).where(HumanTask.id == task_id, HumanTask.status == "open")
                       .values(status=status, completed_at=at, completed_by_id=by))
    return result.rowcount == 1


def set_assignee(s: Session, task_id: int, expected: int | None, assignee: int | None) -> bool:
    cond = HumanTask.assignee_id.is_(None) if expected is None else HumanTask.assignee_id == expected
    result = s.execute(update(HumanTask).where(HumanTask.id == task_id, HumanTask.status == "open", cond)
                       .values(assignee_id=assignee))
    return result.rowcount == 1


# ---- cases ------------------------------------------------------------------------------

def save_case_state(s: Session, case_id: int, expected_version: int, **values) -> bool:
    """Optimistic save: applies only if nobody saved the case since it was read."""
    result = s.execute(update(Case).where(Case.id == case_id, Case.lock_version == expected_version)
                       .values(lock_version=expected_version + 1, **values))
    return result.rowcount == 1


def history(s: Session, case_id: int) -> list[AuditEvent]:
    return list(s.scalars(select(AuditEvent).options(selectinload(AuditEvent.actor))
                          .where(AuditEvent.case_id == case_id).order_by(AuditEvent.id)))


def latest_goals(s: Session, project_id: int) -> ProjectGoals | None:
    return s.scalars(select(ProjectGoals).where(ProjectGoals.project_id == project_id)
                     .order_by(ProjectGoals.version.desc()).limit(1)).first()


def next_goals_version(s: Session, project_id: int) -> int:
    return (s.scalar(select(func.max(ProjectGoals.version)).where(ProjectGoals.project_id == project_id)) or 0) + 1


def case_visible(s: Session, case_id: int, visibility) -> bool:
    q = select(Case.id).where(Case.id == case_id)
    if visibility is not None:
        q = q.where(visibility)
    return s.scalar(q) is not None


def orgs_by_ids(s: Session, ids) -> dict[int, Organisation]:
    ids = list(ids)
    if not ids:
        return {}
    return {o.id: o for o in s.scalars(select(Organisation).where(Organisation.id.in_(ids)))}


def all_orgs(s: Session) -> list[Organisation]:
    return list(s.scalars(select(Organisation).order_by(Organisation.kind, Organisation.name)))


def running_cases_by_project(s: Session) -> dict[tuple[int, str], int]:
    """(project id, process key) -> id of a running case, for start pages."""
    rows = s.execute(select(Case.project_id, Case.process_key, func.max(Case.id))
                     .where(Case.status == "running", Case.project_id.is_not(None))
                     .group_by(Case.project_id, Case.process_key))
    return {(p, k): c for p, k, c in rows}


MAX_ID = 2**31 - 1   # ids are INTEGER columns: PostgreSQL's int4 is the narrowest range


def get_by_id(s: Session, model, ident):
    """The row with this id, or None (also for ids no row can have, instead of a driver error)."""
    if isinstance(ident, bool) or not isinstance(ident, int) or not 0 < ident <= MAX_ID:
        return None
    return s.get(model, ident)


def get_for_update(s: Session, model, ident):
    """get_by_id, locking the row until the transaction ends (SQLite's write lock already does)."""
    if isinstance(ident, bool) or not isinstance(ident, int) or not 0 < ident <= MAX_ID:
        return None
    return s.get(model, ident, with_for_update=True)


# ---- login attempts ----------------------------------------------------------------------

from sqlalchemy import delete, text  # noqa: E402  (kept with the functions that use them)

from .models import LoginAttempt  # noqa: E402


def lock_keys(s: Session, keys) -> None:
    """Serialise transactions that work on the same keys until they end. PostgreSQL takes
    transaction-scoped advisory locks, in sorted order so that two never deadlock; SQLite needs
    nothing, as its writers already hold the database's write lock from BEGIN IMMEDIATE."""
    if s.get_bind().dialect.name != "postgresql":
        return
    import hashlib
    for key in sorted(set(keys)):
        number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": number})


def prune_login_attempts(s: Session, before: datetime) -> None:
    s.execute(delete(LoginAttempt).where(LoginAttempt.at <= before))


def login_failure_times(s: Session, since: datetime, username: str | None = None,
                        address: str | None = None) -> list[datetime]:
    """When the failures after `since` happened, oldest first: those of one username that no
    later login cleared, or all of one address."""
    query = select(LoginAttempt.at).where(LoginAttempt.at > since)
    if username is not None:
        query = query.where(LoginAttempt.username == username, LoginAttempt.cleared.is_(False))
    if address is not None:
        query = query.where(LoginAttempt.address == address)
    return list(s.scalars(query.order_by(LoginAttempt.at, LoginAttempt.id)))


def delete_login_attempt(s: Session, attempt_id: int) -> None:
    s.execute(delete(LoginAttempt).where(LoginAttempt.id == attempt_id))


def clear_login_failures(s: Session, username: str) -> None:
    s.execute(update(LoginAttempt).where(LoginAttempt.username == username, LoginAttempt.cleared.is_(False))
              .values(cleared=True))


# ---- settings ---------------------------------------------------------------------------

def stored_settings(s: Session) -> dict:
    from .models import Setting
    return {row.key: row.value for row in s.scalars(select(Setting))}


def setting_history(s: Session, key: str | None = None, limit: int = 100) -> list:
    from .models import SettingChange
    q = select(SettingChange).options(selectinload(SettingChange.by)).order_by(SettingChange.id.desc()).limit(limit)
    if key:
        q = q.where(SettingChange.key == key)
    return list(s.scalars(q))


def ex_ante_evaluations(s: Session, project_id: int) -> list:
    from .models import ExAnteEvaluation
    return list(s.scalars(select(ExAnteEvaluation).where(ExAnteEvaluation.project_id == project_id)
                          .order_by(ExAnteEvaluation.evaluated_at, ExAnteEvaluation.id)))
