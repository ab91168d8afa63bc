"""Reminders before a user task's due date and escalation after it, declared in the diagram.

A user task declares them with `spiffworkflow:properties`, next to what gives it a due date
(`dueIn`, `dueDateField` or a timer boundary event):

    remindBefore   "P3D", or several: "P7D, P1D" — remind whoever may act on the task that long
                   before it is due
    escalateAfter  "P0D" (as soon as it is overdue), "P2D" — once the task is overdue by that
                   long, escalate it
    escalateTo     a role (code or display name), or "next level" (the default): who is told

When an inbox row is created its alerts are planned from its due date. The pending ones are
kept on the row (`alerts`, JSON) and the earliest in the indexed `alert_at` column, so the timer
worker finds due alerts with one indexed query, as it finds due timers, without loading any
workflow. A worker takes an alert with an UPDATE conditional on the `alert_at` it read, so among
several workers exactly one sends it; the notifications and the audit event are written in
that same transaction. Closing the row clears `alert_at`, so a task done in time is never chased.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from storage import deadline_queries, notification_queries
from storage.db import Database
from storage.models import AuditEvent, HumanTask

from .clock import Clock
from .errors import InvalidData
from .notifications import notify, task_actors
from .roles import BUREAU_WIDE, ROLES, role_for_lane, scoped_org_id
from .timers import due_in

log = logging.getLogger("perfbudget.deadlines")

NEXT_LEVEL = "next level"
# Who is above whom when a task is escalated to "the next level": a unit's overdue work goes to
# its competent department, the department's to the funding section that funds the project,
# the finance sections' to the performance management section, which answers to the supervisor.
LADDER = {
    "": "competent",                 # a task of the case's starter: a unit's officer
    "unit": "competent",
    "competent": "funding",
    "funding": "performance",
    "review_center": "performance",
    "third_party": "performance",
    "budget": "performance",
    "performance": "supervisor",
    "supervisor": "admin",
    "admin": "admin",
}
BATCH = 200


def _props(task_spec) -> dict:
    return (getattr(task_spec, "extensions", None) or {}).get("properties", {})


def _durations(text) -> list[str]:
    return [part.strip() for part in str(text or "").split(",") if part.strip()]


def _offset(duration: str, due: datetime) -> timedelta:
    """The length of an ISO duration counted from the due date (months count as calendar months)."""
    end = due_in(duration, due)
    if end is None:
        raise ValueError(duration)
    return end - due


def check_properties(props: dict) -> None:
    """Refuse, at deployment, deadline properties that would silently never fire."""
    for duration in _durations(props.get("remindBefore")):
        if due_in(duration, datetime(2000, 1, 1)) is None:
            raise InvalidData(f"remindBefore '{duration}' is not an ISO 8601 duration such as P3D")
    if "remindBefore" in props and not _durations(props.get("remindBefore")):
        raise InvalidData("remindBefore is empty; give durations such as 'P7D, P1D'")
    after = props.get("escalateAfter")
    if after is not None and due_in(str(after).strip(), datetime(2000, 1, 1)) is None:
        raise InvalidData(f"escalateAfter '{after}' is not an ISO 8601 duration such as P0D or P2D")
    target = props.get("escalateTo")
    if target is not None:
        if after is None:
            raise InvalidData("escalateTo needs escalateAfter: say when the task is escalated")
        if str(target).strip().lower() != NEXT_LEVEL and role_for_lane(str(target)) is None:
            raise InvalidData(f"escalateTo '{target}' names no role (use a role code, its display name "
                              f"or '{NEXT_LEVEL}')")


def plan(task_spec, role: str, due_at: datetime | None, created: datetime) -> list[dict]:
    """The alerts of a new inbox row, earliest first: reminders still ahead at its creation, and
    its escalation. A reminder whose moment has passed already is dropped: the new-task
    notification tells the due date anyway."""
    props = _props(task_spec)
    if due_at is None or not props:
        return []
    alerts = []
    for duration in _durations(props.get("remindBefore")):
        try:
            at = due_at - _offset(duration, due_at)
        except ValueError:
            continue        # refused at deployment; a version deployed before that check keeps working
        if at > created:
            alerts.append({"at": at.isoformat(), "kind": "reminder", "before": duration})
    after = props.get("escalateAfter")
    if after is not None:
        try:
            at = due_at + _offset(str(after).strip(), due_at)
        except ValueError:
            at = None
        if at is not None:
            target = str(props.get("escalateTo") or NEXT_LEVEL).strip()
            to = LADDER.get(role, "performance") if target.lower() == NEXT_LEVEL else role_for_lane(target)
            alerts.append({"at": at.isoformat(), "kind": "escalation", "to": to or "performance"})
    alerts.sort(key=lambda a: a["at"])
    return alerts


def first_at(alerts: list[dict]) -> datetime | None:
    return datetime.fromisoformat(alerts[0]["at"]) if alerts else None


def is_overdue(due_at: datetime | None, now: datetime | None) -> bool:
    """Past its due date by the app's clock (naive UTC, like every stored time)."""
    return bool(now is not None and due_at is not None and due_at < now)


def case_deadline(due_at: datetime | None, escalated: bool, now: datetime) -> dict:
    """What a case list shows about deadlines: the earliest due date of the case's open tasks
    (storage.deadline_queries.open_task_deadlines), whether it has passed, and any escalation."""
    return {"due_at": due_at.isoformat() if due_at is not None else None,
            "overdue": is_overdue(due_at, now), "escalated": escalated}


@dataclass
class AlertPass:
    reminded: list[int] = field(default_factory=list)      # inbox row ids
    escalated: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)       # taken by another worker or closed meanwhile


class DeadlineService:
    def __init__(self, db: Database, clock: Clock):
        self.db = db
        self.clock = clock

    def run_due(self, batch: int = BATCH) -> AlertPass:
        """Send every reminder and escalation that has fallen due, each in its own transaction."""
        result = AlertPass()
        now = self.clock.now()
        after = None
        while True:
            with self.db.reading() as s:
                page = deadline_queries.due_alerts(s, now, batch, after)
            for task_id, at in page:
                self._run_task(task_id, at, now, result)
            if len(page) < batch:
                return result
            after = page[-1][1], page[-1][0]

    def _run_task(self, task_id: int, expected_at: datetime, now: datetime, result: AlertPass) -> None:
        with self.db.transaction() as s:
            task = deadline_queries.open_task(s, task_id)
            if task is None or task.alert_at != expected_at:
                result.skipped.append(task_id)
                return
            alerts = list(task.alerts or [])
            due = [a for a in alerts if datetime.fromisoformat(a["at"]) <= now]
            rest = [a for a in alerts if datetime.fromisoformat(a["at"]) > now]
            # The conditional update is the claim: a second worker that read the same alert_at
            # matches no row and sends nothing.
            escalations = [a for a in due if a["kind"] == "escalation"]
            values = {"alerts": rest or None, "alert_at": first_at(rest)}
            if escalations:
                values.update(escalated_at=now, escalated_to=escalations[-1]["to"])
            if not deadline_queries.take_alerts(s, task_id, expected_at, values):
                result.skipped.append(task_id)
                return
            # After downtime several may be due at once: one reminder (the latest) is enough,
            # and it is pointless once the task is being escalated.
            reminders = [a for a in due if a["kind"] == "reminder"]
            if reminders and not escalations:
                self._remind(s, task, reminders[-1], now)
                result.reminded.append(task_id)
            for alert in escalations:
                self._escalate(s, task, alert, now)
            if escalations:
                result.escalated.append(task_id)

    def _remind(self, s, task: HumanTask, alert: dict, now: datetime) -> None:
        users = task_actors(s, task)
        # Rounded: a reminder a worker sends a few seconds late still says "in 3 days".
        days = round((task.due_at - now).total_seconds() / 86400)
        when = f"in {days} day{'s' if days != 1 else ''}" if days >= 1 else "within a day"
        notify(s, users, "reminder", task.case, task, f"Due {when}: {task.title}",
               f"“{task.name}” is due {task.due_at:%Y-%m-%d %H:%M}. Please complete it in time.", now)
        s.add(AuditEvent(case_id=task.case_id, at=now, actor_id=None, action="reminded",
                         human_task_id=task.id, task_name=task.name, step=task.step,
                         data={"due": task.due_at.isoformat(), "before": alert.get("before"), "users": len(users)}))

    def _escalate(self, s, task: HumanTask, alert: dict, now: datetime) -> None:
        role = alert["to"]
        case = task.case
        org_id = scoped_org_id(role, case.project) if case.project is not None else None
        supervisors = notification_queries.role_holder_ids(s, role, org_id, BUREAU_WIDE)
        holders = task_actors(s, task)
        late = now - task.due_at
        overdue = f"{late.days} day{'s' if late.days != 1 else ''} overdue" if late.days >= 1 else "overdue"
        where = f" of {task.org.name}" if task.org else ""
        who = ROLES.get(task.role, "the case's starter").lower() + where
        notify(s, supervisors, "escalation", case, task, f"Escalated, {overdue}: {task.title}",
               f"“{task.name}”, due {task.due_at:%Y-%m-%d}, is {overdue} with {who}. "
               f"It was escalated to you as {ROLES.get(role, role).lower()}: follow it up.", now)
        notify(s, [u for u in holders if u not in supervisors], "escalation", case, task,
               f"Overdue and escalated: {task.title}",
               f"“{task.name}” was due {task.due_at:%Y-%m-%d} and has been escalated to "
               f"{ROLES.get(role, role).lower()}. Please complete it now.", now)
        s.add(AuditEvent(case_id=task.case_id, at=now, actor_id=None, action="escalated",
                         human_task_id=task.id, task_name=task.name, step=task.step,
                         data={"due": task.due_at.isoformat(), "to": role, "to_name": ROLES.get(role, role),
                               "users": len(supervisors)}))
        if not supervisors:
            log.warning("task %s escalated to %s, but nobody holds that role", task.id, role)
