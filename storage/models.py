"""Tables of PerfBudget.

Case state is SpiffWorkflow's serialized workflow without its spec; everything a list or an
inbox needs is denormalised into columns here so that no page has to deserialize a workflow.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON, Boolean, Date, DateTime, ForeignKey, Index, Integer, LargeBinary, MetaData,
    Numeric, String, Text, UniqueConstraint,
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
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    grants: Mapped[list[RoleGrant]] = relationship(back_populates="user", lazy="selectin",
                                                   cascade="all, delete-orphan")


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
    competent_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    funding_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
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
    files: Mapped[list[ProcessFile]] = relationship(lazy="selectin", order_by="ProcessFile.name")


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
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    process_version_id: Mapped[int] = mapped_column(ForeignKey("process_versions.id"))
    process_key: Mapped[str] = mapped_column(String(100), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    year: Mapped[int | None] = mapped_column(Integer, index=True)
    title: Mapped[str] = mapped_column(String(300))
    # running | completed | cancelled | error
    status: Mapped[str] = mapped_column(String(20))
    # Optimistic lock: every save is UPDATE ... WHERE lock_version = <read value>.
    lock_version: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(Text)
    current_steps: Mapped[str] = mapped_column(String(500), default="")
    next_due_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    error_message: Mapped[str | None] = mapped_column(Text)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)
    process_version: Mapped[ProcessVersion] = relationship()
    project: Mapped[Project | None] = relationship()
    org: Mapped[Organisation] = relationship()


class HumanTask(Base):
    """An inbox row: one user task of a case, kept in step with the workflow state."""
    __tablename__ = "human_tasks"
    __table_args__ = (
        Index("ix_human_tasks_open_role_org", "status", "role", "org_id", "created_at"),
        Index("ix_human_tasks_assignee_status", "assignee_id", "status", "created_at"),
        Index("ix_human_tasks_case_status", "case_id", "status"),
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
