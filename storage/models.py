"""Tables of PerfBudget.

Case state is SpiffWorkflow's serialized workflow without its spec; everything a list or an
inbox needs is denormalised into columns here so that no page has to deserialize a workflow.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON, Boolean, Date, DateTime, ForeignKey, Index, Integer, LargeBinary, MetaData,
    Numeric, String, Text, UniqueConstraint, literal_column, text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Organisation(Base):
    __tablename__ = "organisations"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # bureau | section | center | department | unit | agency
    kind: Mapped[str] = mapped_column(String(32))
    # A budget unit's parent is its competent department.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    parent: Mapped[Organisation | None] = relationship(remote_side=[id])


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    # Where notifications are e-mailed when an SMTP server is configured; NULL: in the app only.
    email: Mapped[str | None] = mapped_column(String(254))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # Loaded only when asked for: every User loaded (a task's assignee, an audit row's actor)
    # would otherwise cost a second SELECT; the app checks Actor.grants, never this.
    grants: Mapped[list[RoleGrant]] = relationship(back_populates="user", cascade="all, delete-orphan")


class RoleGrant(Base):
    """A role held by a user in one organisation."""
    __tablename__ = "role_grants"
    __table_args__ = (UniqueConstraint("user_id", "role", "org_id", name="uq_role_grants_user_role_org"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(32))
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    user: Mapped[User] = relationship(back_populates="grants")
    org: Mapped[Organisation] = relationship()


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Only a hash is kept: a leaked database does not leak usable tokens.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    year: Mapped[int] = mapped_column(Integer, index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    # Indexed for case visibility (cases of projects a competent department or section holds).
    competent_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    funding_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    category: Mapped[str] = mapped_column(String(100), default="")
    is_new: Mapped[bool] = mapped_column(Boolean, default=True)
    is_key: Mapped[bool] = mapped_column(Boolean, default=False)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2), default=0)
    # Amount by funding source (general budget, government fund, ...), in yuan.
    funding_sources: Mapped[dict] = mapped_column(JSON, default=dict)
    start_date: Mapped[date | None] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    # none | in_review | approved | rejected
    goals_status: Mapped[str] = mapped_column(String(20), default="none")
    # Ex-ante evaluation: none | in_progress | support | adjust | reject
    ex_ante_status: Mapped[str] = mapped_column(String(20), default="none", server_default="none")
    unit: Mapped[Organisation] = relationship(foreign_keys=[unit_id])
    competent: Mapped[Organisation] = relationship(foreign_keys=[competent_id])
    funding: Mapped[Organisation] = relationship(foreign_keys=[funding_id])


class ProjectGoals(Base):
    """One approved version of a project's performance goals; never updated."""
    __tablename__ = "project_goals"
    __table_args__ = (UniqueConstraint("project_id", "version", name="uq_project_goals_project_version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    goals: Mapped[dict] = mapped_column(JSON)
    approved_at: Mapped[datetime] = mapped_column(DateTime)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # initial | adjustment (an in-year change of the goals in force, with its reason)
    kind: Mapped[str] = mapped_column(String(20), default="initial", server_default="initial")
    reason: Mapped[str | None] = mapped_column(Text)
    approved_by: Mapped[User | None] = relationship(foreign_keys=[approved_by_id])


class ProcessVersion(Base):
    """A deployed, immutable version of a process model."""
    __tablename__ = "process_versions"
    __table_args__ = (UniqueConstraint("key", "version", name="uq_process_versions_key_version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    primary_file: Mapped[str] = mapped_column(String(200))
    primary_process_id: Mapped[str] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(64))
    deployed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    deployed_at: Mapped[datetime] = mapped_column(DateTime)
    # Processes its call activities run, bound at deployment: {process id: version id}.
    calls: Mapped[dict | None] = mapped_column(JSON)
    # Loaded only when asked for (queries.version_files reads them by version id).
    files: Mapped[list[ProcessFile]] = relationship(lazy="select", order_by="ProcessFile.name")


class ProcessFile(Base):
    __tablename__ = "process_files"
    __table_args__ = (UniqueConstraint("version_id", "name", name="uq_process_files_version_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("process_versions.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    content: Mapped[bytes] = mapped_column(LargeBinary)


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_status_started", "status", "started_at"),
        Index("ix_cases_org_status", "org_id", "status"),
        # The case list's order (newest first) with and without its process and year filters.
        Index("ix_cases_started", "started_at"),
        Index("ix_cases_process_started", "process_key", "started_at"),
        Index("ix_cases_year_started", "year", "started_at"),
        # Status and year together (e.g. "completed in 2025"): counted from the index alone.
        Index("ix_cases_status_year_started", "status", "year", "started_at"),
        # Visibility (the cases I started, my unit's, my department's or section's projects'),
        # and the organisation filter, in the list's order. The filters and the columns that
        # make the branches disjoint (storage.queries.case_visibility_branches) ride along, so a
        # scoped user's list and count never read the table: without them every visible row
        # (18,000 for a funding section) was fetched to sort, filter and count it (issue 6, part 3).
        Index("ix_cases_org_started", "org_id", "started_at", "status", "process_key", "year", "started_by_id"),
        Index("ix_cases_started_by_started", "started_by_id", "started_at", "status", "process_key", "year"),
        Index("ix_cases_project_started", "project_id", "started_at", "status", "process_key", "year",
              "started_by_id", "org_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    process_version_id: Mapped[int] = mapped_column(ForeignKey("process_versions.id"))
    process_key: Mapped[str] = mapped_column(String(100))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    year: Mapped[int | None] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    # running | completed | cancelled | error
    status: Mapped[str] = mapped_column(String(20))
    # Optimistic lock: every save is UPDATE ... WHERE lock_version = <read value>.
    lock_version: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(Text)
    current_steps: Mapped[str] = mapped_column(String(500), default="")
    next_due_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    # The campaign that opened this case (monitoring, self-assessment), if any. No foreign key:
    # SQLite cannot drop a referencing column, and the migration must be reversible.
    campaign_id: Mapped[int | None] = mapped_column(Integer, index=True)
    error_message: Mapped[str | None] = mapped_column(Text)
    # Everyone sees the cases they started (ix_cases_started_by_started).
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)
    process_version: Mapped[ProcessVersion] = relationship()
    project: Mapped[Project | None] = relationship()
    org: Mapped[Organisation] = relationship()


class CaseCount(Base):
    """How many cases there are of each process, status, year and organisation, kept by
    database triggers on `cases` (migration 0012) in the same transaction as the change, so it
    is always exact. The case list of a user who sees every case takes its total from here: a
    count of the 200,000 running cases cost PostgreSQL 40-80 ms, the sum of these rows about
    one. `year` 0 stands for a case without a year (a key column cannot be NULL)."""
    __tablename__ = "case_counts"
    process_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


# The rows of the group inbox's partial indexes; queries must repeat these terms literally
# (storage.queries.inbox) for the planners to use them.
GROUP_QUEUE = "status = 'open' AND assignee_id IS NULL"

# A task status compared in SQL as a literal, never as a bound value: `human_tasks.status = ?`
# made SQLite prepare the whole statement again at every execution (at each binding it checks
# whether the value lets it use the partial indexes below, whose WHERE tests the status). The
# whole statement each time, so the larger it is the more that costs: measured in SQLite alone,
# an open-task probe took 7.3 instead of 2.0 us, a completion's task read 130 instead of 20.
TASK_OPEN = literal_column("'open'")
TASK_COMPLETED = literal_column("'completed'")


class HumanTask(Base):
    """An inbox row: one user task of a case, kept in step with the workflow state."""
    __tablename__ = "human_tasks"
    __table_args__ = (
        # The group inbox: open, unclaimed tasks of a role (in an organisation), oldest first;
        # with assignee_id in it the inbox counts are read from the index alone.
        Index("ix_human_tasks_open_role_org", "status", "role", "org_id", "assignee_id", "created_at"),
        Index("ix_human_tasks_assignee_status", "assignee_id", "status", "created_at"),
        Index("ix_human_tasks_case_status", "case_id", "status"),
        # The group inbox's page in created_at order on PostgreSQL too, whose planner does not
        # take `assignee_id IS NULL` / `org_id IS NULL` as fixing a column, so it sorted every
        # row of the range above: partial indexes of the unclaimed open rows, one for roles
        # held in an organisation and one for bureau-wide roles (org_id NULL).
        Index("ix_human_tasks_queue_org", "role", "org_id", "created_at", "id",
              sqlite_where=text(GROUP_QUEUE + " AND org_id IS NOT NULL"),
              postgresql_where=text(GROUP_QUEUE + " AND org_id IS NOT NULL")),
        Index("ix_human_tasks_queue_bureau", "role", "created_at", "id",
              sqlite_where=text(GROUP_QUEUE + " AND org_id IS NULL"),
              postgresql_where=text(GROUP_QUEUE + " AND org_id IS NULL")),
        # The timer worker's search for due reminders and escalations (engine/deadlines.py).
        Index("ix_human_tasks_alert_at", "alert_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    spiff_task_id: Mapped[str] = mapped_column(String(36), index=True)
    # BPMN element id (spec name) and BPMN name (label).
    step: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(400))
    role: Mapped[str] = mapped_column(String(32))
    # Set for roles scoped to the case (unit, competent, funding); NULL for bureau-wide roles.
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # open | completed | cancelled
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    due_at: Mapped[datetime | None] = mapped_column(DateTime)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Reminders and escalation still to come ([{"at", "kind", ...}], earliest first) and the
    # earliest moment; NULL when none is pending or the row is closed.
    alerts: Mapped[list | None] = mapped_column(JSON)
    alert_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Set when the task went overdue and was escalated, and to which role.
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime)
    escalated_to: Mapped[str | None] = mapped_column(String(32))
    case: Mapped[Case] = relationship()
    org: Mapped[Organisation | None] = relationship()
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    completed_by: Mapped[User | None] = relationship(foreign_keys=[completed_by_id])


class AuditEvent(Base):
    """Append-only: written in the transaction of the change it records, never updated."""
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_case_at", "case_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    at: Mapped[datetime] = mapped_column(DateTime)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # started | completed | claimed | unclaimed | cancelled | error | deployed
    action: Mapped[str] = mapped_column(String(40))
    human_task_id: Mapped[int | None] = mapped_column(ForeignKey("human_tasks.id"))
    task_name: Mapped[str | None] = mapped_column(String(200))
    step: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict | None] = mapped_column(JSON)
    actor: Mapped[User | None] = relationship()


class LoginAttempt(Base):
    """A password check that failed, or is under way (it is deleted if it succeeds). Kept in the
    database so that every web worker counts the same failures; rows older than the counting
    window are pruned."""
    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_username_at", "username", "at"),
                      Index("ix_login_attempts_address_at", "address", "at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    # As typed (cut to the column), whether or not such a user exists.
    username: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    # A later successful login of this username: the failure no longer counts against the
    # username, still against the address.
    cleared: Mapped[bool] = mapped_column(Boolean, default=False)


class Setting(Base):
    """A rule parameter an administrator changed from its default (rules read defaults otherwise)."""
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[object] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class SettingChange(Base):
    """Append-only history of setting changes: who changed what, from what, to what, and why."""
    __tablename__ = "setting_changes"
    __table_args__ = (Index("ix_setting_changes_key_id", "key", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100))
    old_value: Mapped[object | None] = mapped_column(JSON)
    new_value: Mapped[object] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime)
    by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    by: Mapped[User | None] = relationship()


class ExAnteEvaluation(Base):
    """One round of an ex-ante evaluation of a project: scores, conclusion and evidence."""
    __tablename__ = "ex_ante_evaluations"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    # NULL for evaluations made before the project came into PerfBudget.
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    round: Mapped[int] = mapped_column(Integer)
    total: Mapped[Decimal] = mapped_column(Numeric(6, 2))
    dimensions: Mapped[dict] = mapped_column(JSON)
    conclusion: Mapped[str] = mapped_column(String(20))
    site_examination: Mapped[dict | None] = mapped_column(JSON)
    third_party: Mapped[dict | None] = mapped_column(JSON)
    summary: Mapped[str] = mapped_column(Text, default="")
    evaluated_at: Mapped[datetime] = mapped_column(DateTime)
    evaluated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Campaign(Base):
    """A bureau-wide round of one link for a year: a monitoring campaign at a cut-off date, or
    the self-assessment of the year's projects with its spot-check draw. Each project of the
    round runs as its own case pointing here."""
    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_kind_year", "kind", "year"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    # monitoring | self_assessment
    kind: Mapped[str] = mapped_column(String(32))
    year: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    cutoff_date: Mapped[date | None] = mapped_column(Date)
    # open | closed
    status: Mapped[str] = mapped_column(String(20), default="open")
    started_at: Mapped[datetime] = mapped_column(DateTime)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The spot-check draw, kept so that anyone can repeat it: ratio, seed, the population of
    # departments in the order drawn from, and the departments drawn.
    sample_ratio: Mapped[Decimal | None] = mapped_column(Numeric(5, 4))
    seed: Mapped[str | None] = mapped_column(String(64))
    population: Mapped[list | None] = mapped_column(JSON)
    sampled: Mapped[list | None] = mapped_column(JSON)
    drawn_at: Mapped[datetime | None] = mapped_column(DateTime)
    drawn_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    started_by: Mapped[User | None] = relationship(foreign_keys=[started_by_id])


class MonitoringRecord(Base):
    """A project's monitoring report at a campaign's cut-off date and what finance decided."""
    __tablename__ = "monitoring_records"
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    cutoff_date: Mapped[date | None] = mapped_column(Date)
    budget: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    spent: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    execution_rate: Mapped[Decimal | None] = mapped_column(Numeric(8, 4))
    budget_light: Mapped[str | None] = mapped_column(String(10))
    # Per indicator: name, operator, target, current, expected year-end value, light.
    indicators: Mapped[list | None] = mapped_column(JSON)
    # red | yellow | green | blue: the worst of the budget and indicator lights.
    light: Mapped[str | None] = mapped_column(String(10))
    causes: Mapped[list | None] = mapped_column(JSON)
    measures: Mapped[str] = mapped_column(Text, default="")
    explanation: Mapped[str] = mapped_column(Text, default="")
    key_monitoring: Mapped[bool] = mapped_column(Boolean, default=False)
    findings: Mapped[str] = mapped_column(Text, default="")
    # continue | correct | adjust_budget | reduce_funds | suspend
    outcome: Mapped[str | None] = mapped_column(String(20))
    reduced_amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    reported_at: Mapped[datetime | None] = mapped_column(DateTime)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class SelfAssessment(Base):
    """A unit's self-assessment of a project's year, and finance's review if it was drawn."""
    __tablename__ = "self_assessments"
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    year: Mapped[int] = mapped_column(Integer, index=True)
    # Scored lines (budget execution and each indicator) as computed by the rules.
    lines: Mapped[list | None] = mapped_column(JSON)
    score: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    grade: Mapped[str | None] = mapped_column(String(20))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime)
    # None until the draw; then whether the project's department was drawn.
    sampled: Mapped[bool | None] = mapped_column(Boolean)
    # The four criteria: completeness, indicator rationality, data accuracy, objectivity.
    review: Mapped[dict | None] = mapped_column(JSON)
    review_score: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    gap_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime)
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Problem(Base):
    """A problem found by monitoring, a spot-check review or an evaluation, and its
    rectification: notice, deadline, the unit's measures and evidence, the check."""
    __tablename__ = "problems"
    __table_args__ = (UniqueConstraint("case_id", "ref", name="uq_problems_case_ref"),
                      Index("ix_problems_status_deadline", "status", "deadline"))
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    # The case that found it (its rectification runs inside that case, by call activity).
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    # Its key within the case, set by the diagram that records it.
    ref: Mapped[str] = mapped_column(String(40))
    # monitoring | self_assessment | evaluation
    origin: Mapped[str] = mapped_column(String(20))
    year: Mapped[int] = mapped_column(Integer, index=True)
    description: Mapped[str] = mapped_column(Text)
    requirement: Mapped[str] = mapped_column(Text, default="")
    # recorded | notified | submitted | returned | rectified
    status: Mapped[str] = mapped_column(String(20), default="recorded")
    deadline: Mapped[date | None] = mapped_column(Date)
    measures: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[list | None] = mapped_column(JSON)
    rounds: Mapped[int] = mapped_column(Integer, default=0)
    check_comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    notified_at: Mapped[datetime | None] = mapped_column(DateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime)
    rectified_at: Mapped[datetime | None] = mapped_column(DateTime)
    checked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    project: Mapped[Project] = relationship()


class KeyEvaluation(Base):
    """A key performance evaluation of a project: plan, score and grade, and the result applied."""
    __tablename__ = "key_evaluations"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    year: Mapped[int] = mapped_column(Integer, index=True)
    # amount | policy | monitoring | other
    selection_reason: Mapped[str] = mapped_column(String(20))
    # finance | third_party | joint
    evaluator: Mapped[str | None] = mapped_column(String(20))
    plan: Mapped[dict | None] = mapped_column(JSON)
    # Framework scores: decision, process, output, effect (and their weights).
    scores: Mapped[dict | None] = mapped_column(JSON)
    score: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    grade: Mapped[str | None] = mapped_column(String(20))
    report: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[list | None] = mapped_column(JSON)
    feedback: Mapped[str] = mapped_column(Text, default="")
    # priority | keep | reduce | cancel: what the grade proposed (by the setting in force then),
    # and what was applied; result_note gives the reason when they differ.
    proposed_result: Mapped[str | None] = mapped_column(String(20))
    result: Mapped[str | None] = mapped_column(String(20))
    result_note: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(DateTime)
    reported_at: Mapped[datetime | None] = mapped_column(DateTime)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime)
    applied_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Attachment(Base):
    """A file uploaded for a task of a case: an examination record, a monitoring report's ledger,
    rectification or evaluation evidence. The content is kept in the database, not on disk, so
    that a backup carries it and SQLite and PostgreSQL hold it alike."""
    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    # The task it was uploaded for; its completion records the files as part of what was submitted.
    human_task_id: Mapped[int | None] = mapped_column(ForeignKey("human_tasks.id"), index=True)
    step: Mapped[str | None] = mapped_column(String(200))
    # As the user named it (cleaned of path parts and control characters), for display only.
    file_name: Mapped[str] = mapped_column(String(255))
    # Set from what the content was checked to be, never from what the browser claimed.
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    # Deferred: lists and task pages never load the files themselves.
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime)
    task: Mapped[HumanTask | None] = relationship()
    uploaded_by: Mapped[User] = relationship()


class Notification(Base):
    """A message to one user: a new task, a return, a reminder, an escalation. Written in the
    transaction of the change it reports; e-mailed afterwards by an outbox (emailed_at NULL = not
    sent yet), never inside that transaction."""
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_read", "user_id", "read_at", "id"),
                      Index("ix_notifications_emailed_created", "emailed_at", "created_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # new_task | returned | reminder | escalation | rectification_due | ...
    kind: Mapped[str] = mapped_column(String(32))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    human_task_id: Mapped[int | None] = mapped_column(ForeignKey("human_tasks.id"))
    title: Mapped[str] = mapped_column(String(400))
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    read_at: Mapped[datetime | None] = mapped_column(DateTime)
    emailed_at: Mapped[datetime | None] = mapped_column(DateTime)
    user: Mapped[User] = relationship()
