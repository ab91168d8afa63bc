"""Queries the engine needs. Every list here is shaped to use an index of storage.models."""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import (
    ARRAY, Integer, Select, and_, any_, bindparam, exists, false, func, inspect, literal_column, or_, select, text,
    union_all, update,
)
from sqlalchemy.orm import Session, aliased, joinedload, make_transient_to_detached, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from .models import (
    GROUP_QUEUE, ApiToken, Attachment, AuditEvent, Case, CaseCount, HumanTask, Organisation, ProcessFile,
    ProcessVersion, Project, ProjectGoals, RoleGrant, Setting, TASK_OPEN, User,
)


# ---- processes --------------------------------------------------------------------------

# Statements that every start or completion runs are built once, here, with bound parameters:
# building a select() and its WHERE clause on each call cost more than running it (about
# 0.07-0.1 ms against 0.02-0.06 ms on SQLite).
_LATEST_VERSION = (select(ProcessVersion).where(ProcessVersion.key == bindparam("b_key"))
                   .order_by(ProcessVersion.version.desc()).limit(1))


def latest_version(s: Session, key: str) -> ProcessVersion | None:
    return s.scalars(_LATEST_VERSION, {"b_key": key}).first()


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


# Built once (with bind parameters): constructing the statement cost more CPU than running it.
_ACTOR_BY_TOKEN = (
    select(User.id, User.username, User.display_name, RoleGrant.role, RoleGrant.org_id)
    .select_from(ApiToken).join(User, User.id == ApiToken.user_id)
    .outerjoin(RoleGrant, RoleGrant.user_id == User.id)
    .where(ApiToken.token_hash == bindparam("b_hash"), ApiToken.expires_at > bindparam("b_now"),
           User.active.is_(True)))


def actor_rows_by_token_hash(conn, token_hash: str, now: datetime) -> list:
    """(id, username, display_name, role, org_id) of the active user holding this unexpired
    token, one row per role grant (one row with role NULL if none): the user and its grants in
    one statement, as plain rows (token authentication runs on every API request)."""
    return conn.execute(_ACTOR_BY_TOKEN, {"b_hash": token_hash, "b_now": now}).all()


_USERS_BY_IDS = select(User).where(User.id.in_(bindparam("b_ids", expanding=True)))


def load_users(s: Session, ids) -> list[User]:
    """Bring these users into the session in one SELECT, so that relationships to them
    (assignee, completed_by) are then served from the identity map without a query each.
    The session holds its objects weakly: keep the returned list while they are needed."""
    ids = [i for i in set(ids) if i is not None]
    return list(s.scalars(_USERS_BY_IDS, {"b_ids": ids})) if ids else []


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


def visible_projects(s: Session, grants, sees_all: bool, third_party: bool, year: int | None = None):
    q = select(Project).options(*_PROJECT_ORGS).order_by(Project.year.desc(), Project.code)
    cond = _project_visible(grants, sees_all, third_party)
    if cond is not None:
        q = q.where(cond)
    if year:
        q = q.where(Project.year == year)
    return list(s.scalars(q))


def case_visibility(grants, sees_all: bool, user_id: int, s: Session | None = None):
    """A WHERE clause on Case for what this user may see; None means everything. Given a
    session, the projects of competent and funding roles are looked up first and the clause
    lists their ids: PostgreSQL reads `... OR project_id IN (SELECT ...)` with a sequential
    scan of all cases, but an OR of IN lists with index scans (BitmapOr)."""
    if sees_all:
        return None
    conds = [Case.started_by_id == user_id]
    unit_orgs = [o for r, o in grants if r == "unit"]
    if unit_orgs:
        conds.append(Case.org_id.in_(unit_orgs))
    for role, column in (("competent", Project.competent_id), ("funding", Project.funding_id)):
        orgs = [o for r, o in grants if r == role]
        if orgs:
            projects = select(Project.id).where(column.in_(orgs))
            if s is None:
                conds.append(Case.project_id.in_(projects))
            else:
                ids = list(s.scalars(projects.order_by(Project.id)))
                if ids:
                    conds.append(Case.project_id.in_(ids))
    if any(r == "third_party" for r, _ in grants):
        conds.append(exists().where(HumanTask.case_id == Case.id, HumanTask.role == "third_party"))
    return or_(*conds)


def case_visibility_branches(grants, sees_all: bool, user_id: int, s: Session) -> list | None:
    """What this user may see as disjoint WHERE clauses on Case (None: everything), for lists:
    the cases they started; their units' other cases; the other cases of the projects their
    department or section oversees. Each is one range of a covering index (migration 0012), so a
    total is a sum of index-only counts and a page a merge of short ranges; an OR of the three
    made PostgreSQL read every visible row from the table (18,000 for a funding section)."""
    if sees_all:
        return None
    if any(r == "third_party" for r, _ in grants):     # a few cases: the plain OR is cheap
        return [case_visibility(grants, sees_all, user_id, s)]
    branches = [Case.started_by_id == user_id]
    others = [or_(Case.started_by_id.is_(None), Case.started_by_id != user_id)]
    unit_orgs = sorted({o for r, o in grants if r == "unit"})
    if unit_orgs:
        branches.append(and_(Case.org_id.in_(unit_orgs), *others))
        others.append(Case.org_id.not_in(unit_orgs))
    overseen = [column.in_(sorted({o for r, o in grants if r == role}))
                for role, column in (("competent", Project.competent_id), ("funding", Project.funding_id))
                if any(r == role for r, _ in grants)]
    if overseen:
        # The projects' ids, not a subquery: with `IN (SELECT ...)` PostgreSQL estimated a
        # hash join and scanned all cases (100 ms); with the ids it reads the index ranges.
        ids = list(s.scalars(select(Project.id).where(or_(*overseen)).order_by(Project.id)))
        if ids:
            branches.append(and_(_among(s, Case.project_id, ids), *others))
    return branches


def _among(s: Session, column, ids: list[int]):
    """`column IN (ids)`; on PostgreSQL `= ANY(array)`, one parameter instead of hundreds (a
    funding section's 540 project ids cost the client about 10 ms per statement to render,
    cast and send as separate parameters)."""
    if s.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, ids, type_=ARRAY(Integer)))
    return column.in_(ids)


def _counted_cases(s: Session, *, process, status, org, year) -> int:
    """The number of all cases matching the filters, from the trigger-kept case_counts."""
    conds = []
    if process:
        conds.append(CaseCount.process_key == process)
    if status:
        conds.append(CaseCount.status == status)
    if org:
        conds.append(CaseCount.org_id == select(Organisation.id).where(Organisation.code == org).scalar_subquery())
    if year:
        conds.append(CaseCount.year == year)
    return s.scalar(select(func.coalesce(func.sum(CaseCount.n), 0)).where(*conds)) or 0


_CUSTOM_PLANS = text("SET LOCAL plan_cache_mode = force_custom_plan")


def list_cases(s: Session, branches: list | None, *, process: str | None = None, status: str | None = None,
               org: str | None = None, year: int | None = None, project_id: int | None = None,
               limit: int = 50, offset: int = 0) -> tuple[list, int]:
    """One page of cases, newest first, as rows of the columns the list shows (no ORM objects,
    so nothing is loaded per row), and the number of all matching cases. `branches` are the
    disjoint visibility clauses of case_visibility_branches (None: every case)."""
    if s.get_bind().dialect.name == "postgresql":
        # Plan these statements for their values every time, even once psycopg has prepared
        # them (storage.db, _end_read): a generic plan cannot see how many projects a user
        # oversees or how selective a filter is, and PostgreSQL's generic plans made scoped
        # lists 10-20 ms slower. Only to the end of this read's transaction.
        s.execute(_CUSTOM_PLANS)
    conds = []
    if process:
        conds.append(Case.process_key == process)
    if status:
        conds.append(Case.status == status)
    if org:
        # One value, not IN (subquery): PostgreSQL then reads ix_cases_org_status instead of
        # walking all cases in started_at order to find the organisation's.
        conds.append(Case.org_id == select(Organisation.id).where(Organisation.code == org).scalar_subquery())
    if year:
        conds.append(Case.year == year)
    if project_id:
        conds.append(Case.project_id == project_id)
    if branches is None and not project_id:
        total = _counted_cases(s, process=process, status=status, org=org, year=year)
    else:
        counts = [select(func.count()).select_from(Case).where(*conds, *branch).scalar_subquery()
                  for branch in ([()] if branches is None else [[b] for b in branches])]
        total = s.scalar(select(sum(counts[1:], counts[0]))) or 0
    if not limit or offset >= total:
        return [], total
    # The page's ids first (each branch's first offset+limit in started_at order, merged), then
    # the shown columns of those 50 rows.
    order = (Case.started_at.desc(), Case.id.desc())
    if branches is None or len(branches) == 1:
        page = (select(Case.id).where(*conds, *(branches or ())).order_by(*order)
                .limit(limit).offset(offset)).subquery()
    else:
        parts = [select(Case.id, Case.started_at).where(*conds, branch).order_by(*order).limit(offset + limit)
                 .subquery() for branch in branches]
        merged = union_all(*(select(p.c.id, p.c.started_at) for p in parts)).subquery()
        page = (select(merged.c.id).order_by(merged.c.started_at.desc(), merged.c.id.desc())
                .limit(limit).offset(offset)).subquery()
    rows = s.execute(
        select(Case.id, Case.process_key, Case.title, Case.year, Case.status, Case.current_steps,
               Case.started_at, Case.updated_at, Case.completed_at, Case.error_message,
               ProcessVersion.version.label("version"), ProcessVersion.name.label("process_name"),
               Project.id.label("project_id"), Project.code.label("project_code"),
               Project.name.label("project_name"),
               Organisation.code.label("org_code"), Organisation.name.label("org_name"))
        .join(page, page.c.id == Case.id)
        .join(ProcessVersion, ProcessVersion.id == Case.process_version_id)
        .join(Organisation, Organisation.id == Case.org_id)
        .outerjoin(Project, Project.id == Case.project_id)
        .order_by(*order)).all()
    return rows, total


# ---- tasks ------------------------------------------------------------------------------

def _inbox_shape(user_id: int, grants, bureau_roles, scope: str) -> tuple[tuple[str, ...], dict]:
    """The inbox as disjoint ranges of open human_tasks, each one index range: 'mine' is
    (assignee_id = me) on ix_human_tasks_assignee_status, 'group' one range of the partial
    queue indexes per role and organisation held (unclaimed rows; bureau-wide roles with
    org_id NULL). A row-value IN or an OR of the two scopes would make the planners read all
    open rows instead. Returns the kind of each range ('mine', 'org', 'bureau') and the values
    of their parameters, named after the scope: the statements are built once per shape."""
    kinds, params = [], {}
    if scope in ("mine", "all"):
        kinds.append("mine")
        params[f"{scope}_u"] = user_id
    if scope in ("group", "all"):
        pairs = sorted({(r, o) for r, o in grants if r not in bureau_roles})
        pairs += [(r, None) for r in sorted(set(bureau_roles))]
        for role, org_id in pairs:
            params[f"{scope}_r{len(kinds)}"] = role
            if org_id is not None:
                params[f"{scope}_o{len(kinds)}"] = org_id
            kinds.append("bureau" if org_id is None else "org")
    return tuple(kinds), params


# The terms of the partial indexes ix_human_tasks_queue_* as literal SQL: a bound parameter
# in their place would not prove a row is in the index.
_QUEUE = text(GROUP_QUEUE)
_Assignee = aliased(User)
_CompletedBy = aliased(User)


def _ranges(scope: str, kinds: tuple[str, ...]) -> list:
    out = []
    for i, kind in enumerate(kinds):
        if kind == "mine":
            out.append(and_(HumanTask.status == TASK_OPEN, HumanTask.assignee_id == bindparam(f"{scope}_u")))
        else:
            out.append(and_(_QUEUE, HumanTask.role == bindparam(f"{scope}_r{i}"),
                            HumanTask.org_id.is_(None) if kind == "bureau"
                            else HumanTask.org_id == bindparam(f"{scope}_o{i}")))
    return out


def _count_of(ranges):
    """The number of rows in disjoint ranges: one index-only count per range, summed."""
    counts = [select(func.count()).select_from(HumanTask).where(r).scalar_subquery() for r in ranges]
    return sum(counts[1:], counts[0])


def _first_ids(scope: str, ranges):
    """The ids of the first `{scope}_n` rows after `{scope}_off` of disjoint ranges, oldest
    first: each range's first `{scope}_upto` (offset + n) rows in index order, merged (at most a
    few hundred ids)."""
    upto, n, off = (bindparam(f"{scope}_{name}", type_=Integer) for name in ("upto", "n", "off"))
    parts = [select(HumanTask.id, HumanTask.created_at).where(r)
             .order_by(HumanTask.created_at, HumanTask.id).limit(upto).subquery() for r in ranges]
    merged = union_all(*(select(p.c.id, p.c.created_at) for p in parts)).subquery() if len(parts) > 1 else parts[0]
    return select(merged.c.id).order_by(merged.c.created_at, merged.c.id).limit(n).offset(off)


# Built once per shape of a user's roles (a few dozen in a bureau): building a statement of
# eight subqueries and its cache key cost more than running it.
@lru_cache(maxsize=256)
def _inbox_count_statement(shapes: tuple) -> Select:
    """One row with a total per (scope, kinds) of `shapes`, labelled by scope."""
    return select(*(_count_of(_ranges(scope, kinds)).label(scope) for scope, kinds in shapes))


@lru_cache(maxsize=256)
def _inbox_rows_statement(shapes: tuple) -> Select:
    """The shown columns of the tasks of each scope's page, oldest first, each row tagged with
    its scope (`page`): one joined SELECT for all pages."""
    tagged = [select(_first_ids(scope, _ranges(scope, kinds)).subquery().c.id,
                     literal_column(f"'{scope}'").label("page")) for scope, kinds in shapes]
    page = (union_all(*tagged) if len(tagged) > 1 else tagged[0]).subquery()
    return (
        select(HumanTask.id, HumanTask.case_id, HumanTask.name, HumanTask.step, HumanTask.title, HumanTask.role,
               HumanTask.status, HumanTask.created_at, HumanTask.due_at, HumanTask.completed_at,
               HumanTask.escalated_at, HumanTask.escalated_to,
               Organisation.code.label("org_code"), Organisation.name.label("org_name"),
               _Assignee.username.label("assignee"), _Assignee.display_name.label("assignee_name"),
               _CompletedBy.username.label("completed_by"),
               Case.process_key, Case.title.label("case_title"),
               Project.id.label("project_id"), Project.code.label("project_code"),
               Project.name.label("project_name"), page.c.page)
        .join(page, page.c.id == HumanTask.id)
        .join(Case, Case.id == HumanTask.case_id)
        .outerjoin(Project, Project.id == Case.project_id)
        .outerjoin(Organisation, Organisation.id == HumanTask.org_id)
        .outerjoin(_Assignee, _Assignee.id == HumanTask.assignee_id)
        .outerjoin(_CompletedBy, _CompletedBy.id == HumanTask.completed_by_id)
        .order_by(HumanTask.created_at, HumanTask.id))


def inbox(s: Session, user_id: int, grants, bureau_roles: list[str], scope: str = "all",
          limit: int = 50, offset: int = 0) -> tuple[list, int]:
    """Open tasks: scope 'mine' (assigned to me), 'group' (unassigned, my roles), or 'all'.
    Rows of the columns an inbox shows, oldest first, and the exact number of such tasks."""
    kinds, params = _inbox_shape(user_id, grants, bureau_roles, scope)
    if not kinds:
        return [], 0
    shapes = ((scope, kinds),)
    total = s.execute(_inbox_count_statement(shapes), params).scalar() or 0
    if not limit or offset >= total:
        return [], total
    params.update({f"{scope}_upto": offset + limit, f"{scope}_n": limit, f"{scope}_off": offset})
    return s.execute(_inbox_rows_statement(shapes), params).all(), total


def inbox_mine_and_group(s: Session, user_id: int, grants, bureau_roles: list[str],
                         limit: int = 50) -> tuple[list, int, list, int]:
    """The inbox page: the first tasks assigned to me and those waiting for my roles, with both
    totals, in two statements (the counts together, then the rows of both pages)."""
    shapes, params = [], {}
    for scope in ("mine", "group"):
        kinds, values = _inbox_shape(user_id, grants, bureau_roles, scope)
        if kinds:
            shapes.append((scope, kinds))
            params.update(values)
    totals = dict.fromkeys(("mine", "group"), 0)
    if shapes:
        totals.update(s.execute(_inbox_count_statement(tuple(shapes)), params).one()._mapping)
    rows: dict[str, list] = {"mine": [], "group": []}
    paged = tuple((scope, kinds) for scope, kinds in shapes if totals[scope] and limit)
    if paged:
        for scope, _ in paged:
            params.update({f"{scope}_upto": limit, f"{scope}_n": limit, f"{scope}_off": 0})
        for row in s.execute(_inbox_rows_statement(paged), params):
            rows[row.page].append(row)
    return rows["mine"], totals["mine"], rows["group"], totals["group"]


_OPEN_TASKS_OF_CASE = (select(HumanTask).where(HumanTask.case_id == bindparam("b_case"), HumanTask.status == TASK_OPEN)
                       .order_by(HumanTask.id))


# The same with what a case page shows of each task (its organisation and assignee), for a
# session that does not hold them yet: one SELECT instead of a lazy load per organisation and
# person. Built once: a statement's loader options cost more to key than to run.
_OPEN_TASKS_OF_CASE_SHOWN = _OPEN_TASKS_OF_CASE.options(joinedload(HumanTask.org), joinedload(HumanTask.assignee))


_ANY_OPEN_TASK_OF_CASE = (select(HumanTask.id).where(HumanTask.case_id == bindparam("b_case"),
                                                    HumanTask.status == TASK_OPEN).limit(1))


def has_open_tasks(s: Session, case_id: int) -> bool:
    """Whether the case has an open inbox row: a plain-row probe, several times cheaper than the
    ORM query below returning nothing (what a completion of a step with nothing beside it finds)."""
    s.flush()       # as the ORM query would: rows still pending in the session are counted
    return s.connection().execute(_ANY_OPEN_TASK_OF_CASE, {"b_case": case_id}).first() is not None


def open_tasks_of_case(s: Session, case_id: int, with_relations: bool = False) -> list[HumanTask]:
    """The case's open inbox rows, oldest first; `with_relations`: with their organisations and
    assignees loaded in the same SELECT (the case itself is expected in the session)."""
    statement = _OPEN_TASKS_OF_CASE_SHOWN if with_relations else _OPEN_TASKS_OF_CASE
    return list(s.scalars(statement, {"b_case": case_id}))


def tasks_of_case(s: Session, case_id: int) -> list[HumanTask]:
    return list(s.scalars(select(HumanTask).where(HumanTask.case_id == case_id).order_by(HumanTask.id)))


# The hot path's writes as Core statements built once: building a statement costs more than
# running it on this stack (0.1-0.3 ms of expression construction per call), and an ORM-enabled
# UPDATE adds the ORM's bulk-update machinery on top. Each is run after s.flush(), as the ORM
# statement's autoflush did, so pending ORM writes still reach the database first.
_TASKS, _CASES = HumanTask.__table__, Case.__table__
_MARK_TASK_DONE = (_TASKS.update()
                   .where(_TASKS.c.id == bindparam("b_id"), _TASKS.c.status == TASK_OPEN)
                   .values(status=bindparam("b_status"), completed_at=bindparam("b_at"),
                           completed_by_id=bindparam("b_by"),
                           alerts=None, alert_at=None))   # a closed task is chased no more


def _set_loaded(s: Session, model, ident, values: dict) -> None:
    """Give a row already in the session the values a Core UPDATE just wrote (what the ORM
    statement's synchronize_session did), without loading it if it is not there."""
    obj = s.identity_map.get(s.identity_key(model, ident))
    if obj is not None:
        for key, value in values.items():
            set_committed_value(obj, key, value)


# The same, only if the task is still with whom it was with when the completion was prepared
# (nobody claimed or released it meanwhile).
_MARK_TASK_DONE_AS_SEEN = _MARK_TASK_DONE.where(_TASKS.c.assignee_id.is_not_distinct_from(bindparam("b_assignee")))
# ...and still without files, for a completion prepared from a task that had none: the check
# in the same statement instead of a SELECT of the task's files after it.
_ATTACHMENTS = Attachment.__table__
_MARK_TASK_DONE_AS_SEEN_WITHOUT_FILES = _MARK_TASK_DONE_AS_SEEN.where(
    ~exists().where(_ATTACHMENTS.c.human_task_id == bindparam("b_id")))
_ANYONE = object()


def mark_task_done(s: Session, task_id: int, status: str, at: datetime, by: int | None,
                   assignee_id: int | None | object = _ANYONE, without_files: bool = False) -> bool:
    """Close an open inbox row; False if someone else closed it first (or, given `assignee_id`,
    if it is no longer with that assignee, None meaning nobody; or, with `without_files`, if a
    file has been uploaded for it)."""
    s.flush()
    params = {"b_id": task_id, "b_status": status, "b_at": at, "b_by": by}
    if assignee_id is _ANYONE:
        result = s.connection().execute(_MARK_TASK_DONE, params)
    else:
        statement = _MARK_TASK_DONE_AS_SEEN_WITHOUT_FILES if without_files else _MARK_TASK_DONE_AS_SEEN
        result = s.connection().execute(statement, {**params, "b_assignee": assignee_id})
    if result.rowcount != 1:
        return False
    _set_loaded(s, HumanTask, task_id, {"status": status, "completed_at": at, "completed_by_id": by,
                                        "alerts": None, "alert_at": None})
    return True


@lru_cache(maxsize=None)
def _insert_plan(model) -> tuple:
    """(INSERT ... RETURNING id, [(attribute, its Python-side default or None)]) of a model
    whose primary key is `id`. A database-side default is never used: every column is given."""
    table = model.__table__
    columns = []
    for prop in inspect(model).column_attrs:
        column = prop.columns[0]
        if column.primary_key:
            continue
        default = column.default.arg if column.default is not None and column.default.is_scalar else None
        columns.append((prop.key, default))
    return table.insert().returning(table.c.id), tuple(columns)


def add_loaded(s: Session, obj):
    """Write a new row (a transient object, relationships left unset) with a Core INSERT and
    put it in the session as if it had been read from it, every column loaded: unset ones hold
    their default or None, so reading them later costs no SELECT. For the rows every request
    makes (a new case, its tasks), where the unit of work's flush cost more than the INSERT.
    The flush first writes rows still pending in the session before it."""
    statement, columns = _insert_plan(type(obj))
    s.flush()
    loaded = inspect(obj).dict
    values = {key: loaded[key] if key in loaded else default for key, default in columns}
    for key, value in values.items():
        if key not in loaded:
            setattr(obj, key, value)
    obj.id = s.connection().execute(statement, values).scalar_one()
    make_transient_to_detached(obj)
    s.add(obj)
    return obj


_PROJECTS = Project.__table__
_SET_GOALS_STATUS = _PROJECTS.update().where(_PROJECTS.c.id == bindparam("b_id")).values(
    goals_status=bindparam("b_status"))


def set_goals_status(s: Session, project_id: int, status: str) -> None:
    """Set a project's goals status (a goal review's effects), and the loaded object's with it:
    a plain UPDATE, where a change to the loaded object cost a flush of the unit of work."""
    s.flush()
    s.connection().execute(_SET_GOALS_STATUS, {"b_id": project_id, "b_status": status})
    _set_loaded(s, Project, project_id, {"goals_status": status})


def set_assignee(s: Session, task_id: int, expected: int | None, assignee: int | None) -> bool:
    cond = HumanTask.assignee_id.is_(None) if expected is None else HumanTask.assignee_id == expected
    result = s.execute(update(HumanTask).where(HumanTask.id == task_id, HumanTask.status == TASK_OPEN, cond)
                       .values(assignee_id=assignee))
    return result.rowcount == 1


# ---- cases ------------------------------------------------------------------------------

_CASE_UPDATES: dict = {}    # (the columns set, version-guarded) -> the UPDATE statement


def _case_update(columns: frozenset, guarded: bool):
    """The UPDATE of these columns of a case, built once per set of columns; `guarded`: only at
    the version read (WHERE lock_version = :b_version), which it moves on by one."""
    stmt = _CASE_UPDATES.get((columns, guarded))
    if stmt is None:
        stmt = _CASES.update().where(_CASES.c.id == bindparam("b_id")).values(**{k: bindparam(k) for k in columns})
        if guarded:
            stmt = stmt.where(_CASES.c.lock_version == bindparam("b_version")).values(lock_version=bindparam("b_next"))
        _CASE_UPDATES[(columns, guarded)] = stmt
    return stmt


# The case's row, then the task's: the case in a sub-select, which runs before the task's row
# is read and locked (a scalar sub-select is a parameter of the outer WHERE), so this statement
# takes them in the order deliver() and the timers use, and waits for whoever holds either.
_CASE_OF_TASK_LOCKED = (select(_CASES.c.id).where(_CASES.c.id == select(_TASKS.c.case_id)
                                                  .where(_TASKS.c.id == bindparam("b_id")).scalar_subquery())
                        .with_for_update(key_share=True).scalar_subquery())
_TASK_AND_CASE_FOR_UPDATE = (select(_TASKS.c.id).where(_TASKS.c.id == bindparam("b_id"),
                                                       _TASKS.c.case_id == _CASE_OF_TASK_LOCKED)
                             .with_for_update(key_share=True))


def lock_task_and_case(s: Session, task_id: int) -> None:
    """Lock the rows of a task's case and of the task (if both exist), in that order, to the end
    of the transaction (no statement on SQLite, whose writer holds the whole database already).
    Uploads lock the task (attachment_queries.lock_task): once this returns, none is under way,
    and the next statement, with a snapshot taken after the wait, sees every file committed."""
    if not is_row_id(task_id) or s.get_bind().dialect.name == "sqlite":
        return
    s.connection().execute(_TASK_AND_CASE_FOR_UPDATE, {"b_id": task_id})


def save_case_state(s: Session, case_id: int, expected_version: int, **values) -> bool:
    """Optimistic save: applies only if nobody saved the case since it was read."""
    s.flush()
    result = s.connection().execute(_case_update(frozenset(values), guarded=True),
                                    {"b_id": case_id, "b_version": expected_version,
                                     "b_next": expected_version + 1, **values})
    if result.rowcount != 1:
        return False
    _set_loaded(s, Case, case_id, {**values, "lock_version": expected_version + 1})
    return True


def set_case_columns(s: Session, case_id: int, **values) -> None:
    """Set columns of a case written in this transaction (no version check: nobody else can
    see it yet), and give the loaded object the same values."""
    s.flush()
    s.connection().execute(_case_update(frozenset(values), guarded=False), {"b_id": case_id, **values})
    _set_loaded(s, Case, case_id, values)


_AUDIT, _USERS = AuditEvent.__table__, User.__table__
_HISTORY = (select(_AUDIT.c.id, _AUDIT.c.at, _AUDIT.c.action, _AUDIT.c.human_task_id, _AUDIT.c.task_name,
                   _AUDIT.c.step, _AUDIT.c.data, _USERS.c.username.label("actor_username"),
                   _USERS.c.display_name.label("actor_name"))
            .select_from(_AUDIT.outerjoin(_USERS, _USERS.c.id == _AUDIT.c.actor_id))
            .where(_AUDIT.c.case_id == bindparam("b_case")).order_by(_AUDIT.c.id))


def history(s: Session, case_id: int) -> list:
    """A case's audit events, oldest first, as rows with their actor's `actor_username` and
    `actor_name` (None for the system). Plain rows in one SELECT: the case page, each task page
    (the earlier opinions) and each start's answer read them, and loading them as ORM objects
    with their users cost 4–5 times as much."""
    s.flush()       # as an ORM query would: an event still pending in the session is included
    return list(s.connection().execute(_HISTORY, {"b_case": case_id}))


_LATEST_GOALS = (select(ProjectGoals).where(ProjectGoals.project_id == bindparam("b_project"))
                 .order_by(ProjectGoals.version.desc()).limit(1))
_MAX_GOALS_VERSION = select(func.max(ProjectGoals.version)).where(ProjectGoals.project_id == bindparam("b_project"))


def latest_goals(s: Session, project_id: int) -> ProjectGoals | None:
    return s.scalars(_LATEST_GOALS, {"b_project": project_id}).first()


def next_goals_version(s: Session, project_id: int) -> int:
    # Core on the session's connection: nothing of this session can be pending for this table
    # (approved goals are written with add_loaded, an INSERT at once).
    return (s.connection().execute(_MAX_GOALS_VERSION, {"b_project": project_id}).scalar() or 0) + 1


_RUNNING_CASE_OF_PROJECT = (select(Case.id).where(Case.project_id == bindparam("b_project"),
                                                  Case.process_key == bindparam("b_key"),
                                                  Case.status == "running").limit(1))


def running_case_of_project(s: Session, project_id: int, process_key: str) -> int | None:
    """The id of a running case of this process for this project, if there is one."""
    s.flush()       # as an ORM query would: a case still pending in the session counts
    return s.connection().execute(_RUNNING_CASE_OF_PROJECT, {"b_project": project_id, "b_key": process_key}).scalar()


def case_visible(s: Session, case_id: int, visibility) -> bool:
    q = select(Case.id).where(Case.id == case_id)
    if visibility is not None:
        q = q.where(visibility)
    return s.scalar(q) is not None


_ORGS_BY_IDS = select(Organisation).where(Organisation.id.in_(bindparam("b_ids", expanding=True)))


def orgs_by_ids(s: Session, ids) -> dict[int, Organisation]:
    ids = list(ids)
    if not ids:
        return {}
    return {o.id: o for o in s.scalars(_ORGS_BY_IDS, {"b_ids": ids})}


def all_orgs(s: Session) -> list[Organisation]:
    return list(s.scalars(select(Organisation).order_by(Organisation.kind, Organisation.name)))


def running_cases_by_project(s: Session) -> dict[tuple[int, str], int]:
    """(project id, process key) -> id of a running case, for start pages."""
    rows = s.execute(select(Case.project_id, Case.process_key, func.max(Case.id))
                     .where(Case.status == "running", Case.project_id.is_not(None))
                     .group_by(Case.project_id, Case.process_key))
    return {(p, k): c for p, k, c in rows}


MAX_ID = 2**31 - 1   # ids are INTEGER columns: PostgreSQL's int4 is the narrowest range


def is_row_id(value) -> bool:
    """Whether a value from a request can be a row's id (an int in the columns' range, not a
    bool): anything else matches no row, and must not reach the database as a parameter."""
    return not isinstance(value, bool) and isinstance(value, int) and 0 < value <= MAX_ID


def get_by_id(s: Session, model, ident, options=()):
    """The row with this id, or None (also for ids no row can have, instead of a driver error).
    `options`: loader options (joinedload...) to read related rows in the same SELECT."""
    if not is_row_id(ident):
        return None
    return s.get(model, ident, options=options)


def get_by_statement(s: Session, statement, ident):
    """get_by_id with a prebuilt `select(Model).options(...).where(Model.id == bindparam("b_id"))`:
    a statement object built once keeps its cache key, where s.get(..., options=...) computes
    the key of its loader options on every call (several milliseconds for a few joinedloads)."""
    if not is_row_id(ident):
        return None
    return s.scalars(statement, {"b_id": ident}).first()


# What a completion reads of its task, in one SELECT: the case (and its state), the case's
# version, project and the project's organisations. Those are the organisations a task can
# belong to (its unit, competent department and funding section) and the case's own (its
# unit): once they are in the session, `org` of the task, of its case and of the new rows is
# served from it by the lazy loader without a SELECT, and the notifications and the answer
# need none either. The seven rows are selected side by side and linked by hand instead of
# through joinedload: the ORM sets up each eager loader again on every execution, which cost
# more than loading the rows.
_UNIT, _COMPETENT, _FUNDING = aliased(Organisation), aliased(Organisation), aliased(Organisation)
_OTHER_TASKS = _TASKS.alias("other_tasks")
_TASK_FOR_COMPLETION = (
    select(HumanTask, Case, ProcessVersion, Project, _UNIT, _COMPETENT, _FUNDING,
           exists().where(_ATTACHMENTS.c.human_task_id == HumanTask.id).label("has_files"),
           exists().where(_OTHER_TASKS.c.case_id == HumanTask.case_id, _OTHER_TASKS.c.status == TASK_OPEN,
                          _OTHER_TASKS.c.id != HumanTask.id).label("others_open"))
    .join(Case, Case.id == HumanTask.case_id)
    .join(ProcessVersion, ProcessVersion.id == Case.process_version_id)
    .outerjoin(Project, Project.id == Case.project_id)      # a case may have no project
    .outerjoin(_UNIT, _UNIT.id == Project.unit_id)
    .outerjoin(_COMPETENT, _COMPETENT.id == Project.competent_id)
    .outerjoin(_FUNDING, _FUNDING.id == Project.funding_id)
    .where(HumanTask.id == bindparam("b_id")))


class TaskForCompletion(NamedTuple):
    task: HumanTask
    has_files: bool     # whether files were uploaded for it
    others_open: bool   # whether the case has other open inbox rows


def task_for_completion(s: Session, task_id) -> TaskForCompletion | None:
    """The task with its case, the case's version and project and the project's three
    organisations loaded (see above); whether it has files, and whether its case has other open
    tasks. The two flags are as of this statement: read before the write transaction (SQLite),
    the save checks that the case, the task and its files are unchanged (a task opens or closes
    only with a save of its case, which moves the case's version on); read after
    lock_task_and_case (PostgreSQL), nothing can change them until the commit."""
    if not is_row_id(task_id):
        return None
    row = s.execute(_TASK_FOR_COMPLETION, {"b_id": task_id}).first()
    if row is None:
        return None
    task, case, version, project, unit, competent, funding, has_files, others_open = row
    set_committed_value(task, "case", case)
    set_committed_value(case, "process_version", version)
    set_committed_value(case, "project", project)
    if project is not None:
        set_committed_value(project, "unit", unit)
        set_committed_value(project, "competent", competent)
        set_committed_value(project, "funding", funding)
    return TaskForCompletion(task, bool(has_files), bool(others_open))


# Locked and read afresh, as get_for_update reads a row.
_PROJECT_BY_CODE_FOR_UPDATE = (select(Project).where(Project.code == bindparam("b_code")).with_for_update(key_share=True)
                               .execution_options(populate_existing=True))


def project_for_update_by_ref(s: Session, ref: int | str) -> Project | None:
    """A project given by id or by code (a string of ASCII digits is tried as an id first),
    locked as get_for_update locks it; None if there is no such project."""
    digits = str(ref).isascii() and str(ref).isdigit()     # "²".isdigit(), yet int("²") fails
    project = get_for_update(s, Project, int(ref)) if digits else None
    if project is None and isinstance(ref, str):
        project = s.scalars(_PROJECT_BY_CODE_FOR_UPDATE, {"b_code": ref}).first()
    return project


# Every row lock here is FOR NO KEY UPDATE (key_share=True): the lockers never change a key, and
# it still excludes every other locker and writer of the row, but not a transaction that only
# inserts a row pointing at it. FOR UPDATE would also block the foreign-key check of such an
# insert (FOR KEY SHARE): an upload holding a task's row and writing its attachment and audit rows
# (which point at the case) deadlocked with a completion holding the case and waiting for the task.
def get_for_update(s: Session, model, ident):
    """get_by_id, locking the row until the transaction ends (SQLite's write lock already does).
    The row is read again even if the session holds it already: on PostgreSQL the lock may have
    waited for another transaction to commit a change to it (a completion moving a case on while
    a draw, which loaded every case of its campaign first, tells each case its result)."""
    if not is_row_id(ident):
        return None
    return s.get(model, ident, with_for_update={"key_share": True}, populate_existing=True)


# ---- login attempts ----------------------------------------------------------------------

from sqlalchemy import delete  # noqa: E402  (kept with the functions that use them)

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

_STORED_SETTINGS = select(Setting.key, Setting.value)


def stored_settings(s: Session) -> dict:
    return {key: value for key, value in s.execute(_STORED_SETTINGS)}


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
