"""In-app notifications and their optional e-mail.

A notification is written in the transaction of the change it reports (a new task, a return,
a reminder, an escalation), so a change that fails leaves no notification behind. E-mail is
never sent inside that transaction: a slow or broken mail server must not hold the database's
write lock or undo a completed task. Rows start with `emailed_at` NULL and an outbox
(`EmailOutbox.send_pending`) sends them after commit, claiming each row first so that two
outboxes running at once never send one twice.
"""
from __future__ import annotations

import os
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Iterable, Mapping

from sqlalchemy.orm import Session

from storage import notification_queries as nq
from storage.db import Database
from storage.models import Case, HumanTask, Notification

from .clock import Clock
from .errors import InvalidData, NotFound
from .roles import BUREAU_WIDE, ROLES

KINDS = ("new_task", "returned", "reminder", "escalation", "rectification_due")
KIND_NAMES = {"new_task": "New task", "returned": "Returned", "reminder": "Reminder",
              "escalation": "Escalation", "rectification_due": "Rectification due"}
MAX_IDS = 500


def notify(s: Session, user_ids: Iterable[int], kind: str, case: Case | None, task: HumanTask | None,
           title: str, body: str, now: datetime) -> int:
    """Write one notification per user in the caller's transaction (for reminders and
    escalations from the timer worker as much as for new tasks); return how many."""
    case_id = case.id if case is not None else (task.case_id if task is not None else None)
    rows = [{"user_id": uid, "kind": kind, "case_id": case_id, "human_task_id": task.id if task is not None else None,
             "title": title[:400], "body": body or "", "created_at": now}
            for uid in dict.fromkeys(user_ids)]
    nq.insert_all(s, rows)
    return len(rows)


def task_actors(s: Session, task: HumanTask) -> list[int]:
    """The users who may act on an open task (see storage.notification_queries.task_actor_ids)."""
    return nq.task_actor_ids(s, task, BUREAU_WIDE)


def return_comment(data: Mapping | None) -> str | None:
    """The reviewer's comment if the completed task's data sent the case back (a field
    `decision` or `*_decision` equal to 'return'), else None. Generic on purpose: every review
    diagram names its decision field its own way."""
    if not isinstance(data, Mapping):
        return None
    returned = any(v == "return" for k, v in data.items()
                   if isinstance(k, str) and (k == "decision" or k.endswith("_decision")))
    if not returned:
        return None
    comments = [str(v).strip() for k, v in data.items()
                if isinstance(k, str) and (k == "comment" or k.endswith("_comment")) and v not in (None, "")]
    return "\n".join(comments)


def for_new_tasks(s: Session, case: Case, created: list[HumanTask], now: datetime,
                  actor_id: int | None = None, completed_data: Mapping | None = None) -> int:
    """Tell the users who may act on each new task about it; a task that follows a return is
    a 'returned' notification carrying the reviewer's comment. Whoever caused the change is not
    told about tasks of their own: they are looking at the result already. Returns how many
    were written."""
    comment = return_comment(completed_data)
    written = 0
    for task in created:
        if comment is not None:
            title = f"Returned: {task.title}"
            body = f"The case was returned to you for “{task.name}”." + \
                (f"\nComment: {comment}" if comment else "")
            kind = "returned"
        else:
            title = f"New task: {task.title}"
            who = ROLES.get(task.role, "Case starter")
            body = f"“{task.name}” is waiting for {who.lower()}" + (f" of {task.org.name}" if task.org else "") + "."
            if task.due_at:
                body += f" Due {task.due_at:%Y-%m-%d}."
            kind = "new_task"
        written += nq.notify_task_actors(s, task, BUREAU_WIDE, actor_id, kind, title, body, now)
    return written


def summary(n: Notification) -> dict:
    return {"id": n.id, "kind": n.kind, "kind_name": KIND_NAMES.get(n.kind, n.kind.replace("_", " ").capitalize()),
            "title": n.title, "body": n.body, "case_id": n.case_id, "task_id": n.human_task_id,
            "created_at": n.created_at, "read_at": n.read_at}


class NotificationService:
    def __init__(self, db: Database, clock: Clock):
        self.db = db
        self.clock = clock

    def page(self, user_id: int, limit: int = 50, offset: int = 0, unread_only: bool = False) -> dict:
        with self.db.reading() as s:
            rows, total, unread = nq.list_for(s, user_id, limit, offset, unread_only)
            return {"items": [summary(n) for n in rows], "total": total, "unread": unread}

    def unread(self, user_id: int) -> int:
        with self.db.reading() as s:
            return nq.unread_count(s, user_id)

    def mark_read(self, user_id: int, ids: list[int] | None = None) -> int:
        """Mark the user's notifications read: these ids, or all when ids is None."""
        if ids is not None:
            if len(ids) > MAX_IDS or not all(isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**31
                                             for i in ids):
                raise InvalidData("ids must be a list of notification ids",
                                  {"ids": f"At most {MAX_IDS} whole numbers."})
        with self.db.transaction() as s:
            return nq.mark_read(s, user_id, ids, self.clock.now())

    def open(self, user_id: int, notification_id: int) -> tuple[int | None, int | None]:
        """Mark one of the user's notifications read; what it points to: (task id, case id).
        Another user's notification is 'not found', not 'forbidden': its id tells nothing."""
        with self.db.transaction() as s:
            n = nq.get_for_user(s, notification_id, user_id) if 0 < notification_id < 2**31 else None
            if n is None:
                raise NotFound(f"notification {notification_id} does not exist")
            nq.mark_read(s, user_id, [n.id], self.clock.now())
            return n.human_task_id, n.case_id


# ---- e-mail ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class EmailSettings:
    host: str | None = None
    port: int = 25
    user: str | None = None
    password: str | None = None
    sender: str = "perfbudget@localhost"
    starttls: bool = False
    base_url: str | None = None     # for links in the mails, e.g. https://perf.example.gov.cn
    timeout: float = 10.0

    @property
    def configured(self) -> bool:
        return bool(self.host)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EmailSettings:
        """PERFBUDGET_SMTP_HOST, _PORT, _USER, _PASSWORD, _FROM, _STARTTLS and PERFBUDGET_BASE_URL.
        No host: no e-mail at all, notifications stay in the app."""
        env = os.environ if env is None else env
        get = lambda name: (env.get(f"PERFBUDGET_{name}") or "").strip() or None  # noqa: E731
        port = get("SMTP_PORT")
        try:
            port_number = int(port) if port else 25
        except ValueError:
            raise ValueError(f"PERFBUDGET_SMTP_PORT: not a port number: {port!r}") from None
        return cls(host=get("SMTP_HOST"), port=port_number, user=get("SMTP_USER"), password=get("SMTP_PASSWORD"),
                   sender=get("SMTP_FROM") or "perfbudget@localhost",
                   starttls=(get("SMTP_STARTTLS") or "").lower() in ("1", "true", "yes", "on"),
                   base_url=(get("BASE_URL") or "").rstrip("/") or None)


class EmailOutbox:
    """Sends the notifications not yet e-mailed. Only recent ones: a server configured today
    does not mail out months of notifications that were meant to be read in the app."""
    MAX_AGE = timedelta(days=2)

    def __init__(self, db: Database, clock: Clock):
        self.db = db
        self.clock = clock

    def message(self, settings: EmailSettings, n: Notification, to: str) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = f"[PerfBudget] {n.title}"
        msg["From"] = settings.sender
        msg["To"] = to
        text = n.body
        if settings.base_url:
            text += f"\n\nOpen it in PerfBudget: {settings.base_url}/notifications/{n.id}"
        msg.set_content(text + "\n")
        return msg

    def send_pending(self, settings: EmailSettings, limit: int = 100) -> int:
        """Send up to `limit` pending notifications; how many were sent. A failed send gives its
        row back for the next run; the rest of the batch is left for it too."""
        if not settings.configured:
            return 0
        now = self.clock.now()
        with self.db.reading() as s:
            pending = [(n.id, n.user.email, self.message(settings, n, n.user.email))
                       for n in nq.pending_email(s, now - self.MAX_AGE, limit)]
        if not pending:
            return 0
        sent = 0
        smtp = self._connect(settings)
        try:
            for nid, to, msg in pending:
                with self.db.transaction() as s:      # claimed and committed before sending
                    if not nq.claim_for_email(s, nid, now):
                        continue
                try:
                    smtp.send_message(msg, to_addrs=[to])
                except (smtplib.SMTPException, OSError):
                    with self.db.transaction() as s:
                        nq.release_email(s, nid, now)
                    raise
                sent += 1
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
        return sent

    @staticmethod
    def _connect(settings: EmailSettings) -> smtplib.SMTP:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.user:
            smtp.login(settings.user, settings.password or "")
        return smtp
