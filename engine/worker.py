"""The timer worker: fires the timers of cases that fell due and launches scheduled campaigns.

It finds due cases through the indexed `cases.next_due_at` column, never by loading
workflows, and runs each in its own transaction through CaseService.run_due, which claims the
case (FOR UPDATE SKIP LOCKED on PostgreSQL, the writer lock on SQLite) and saves it with the
optimistic lock. So any number of workers may run at once, and a timer fires exactly once.
Nothing is kept between passes: after downtime the first pass catches up on all that is due.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from storage import deadline_queries, timer_queries

from .errors import Conflict, PerfBudgetError

log = logging.getLogger("perfbudget.worker")

BATCH = 200
MAX_SLEEP_SECONDS = 30.0     # wake at least this often, to see cases started meanwhile
MIN_SLEEP_SECONDS = 1.0      # a case that stays due (a failing timer) cannot make the loop spin


@dataclass
class PassResult:
    fired: dict[int, list] = field(default_factory=dict)     # case id -> timers fired
    skipped: list[int] = field(default_factory=list)        # held or changed by someone else
    failed: dict[int, str] = field(default_factory=dict)
    campaigns: list[int] = field(default_factory=list)      # scheduled campaigns launched
    reminded: list[int] = field(default_factory=list)       # inbox rows reminded of their due date
    escalated: list[int] = field(default_factory=list)      # inbox rows escalated when overdue


class TimerWorker:
    def __init__(self, core, batch: int = BATCH, max_sleep: float = MAX_SLEEP_SECONDS, email=None):
        self.core = core        # engine.app.PerfBudget
        self.batch = batch
        self.max_sleep = max_sleep
        # SMTP settings (engine.notifications.EmailSettings): the reminders, escalations and new
        # tasks of a pass are mailed after it, as a web request's are after its commit.
        self.email = email

    def run_once(self) -> PassResult:
        """Process everything due now, then return."""
        result = PassResult()
        now = self.core.clock.now()
        after = None
        while True:
            # Page on (due, id) so that a case left due (skipped, failed) is not met again
            # in this pass, and many due cases are worked through in bounded reads.
            with self.core.db.reading() as s:
                page = timer_queries.due_case_ids(s, now, self.batch, after)
            for case_id, due in page:
                self._run_case(case_id, result)
            if len(page) < self.batch:
                break
            after = page[-1][1], page[-1][0]
        # Timers first: one that fired may have closed a task whose reminder is due as well.
        alerts = self.core.deadlines.run_due(self.batch)
        result.reminded, result.escalated = alerts.reminded, alerts.escalated
        try:
            campaign = self.core.campaigns.launch_scheduled()
        except PerfBudgetError as exc:
            log.warning("scheduled campaign not launched: %s", exc.message)
        else:
            if campaign is not None:
                result.campaigns.append(campaign.id)
        if self.email is not None and self.email.configured and (
                result.fired or result.reminded or result.escalated or result.campaigns):
            try:
                self.core.email.send_pending(self.email)
            except Exception:       # the mail server's trouble must not stop the timers
                log.exception("sending notification e-mail failed; the next pass retries")
        return result

    def _run_case(self, case_id: int, result: PassResult) -> None:
        try:
            fired = self.core.cases.run_due(case_id)
        except Conflict:
            result.skipped.append(case_id)     # a user changed the case meanwhile: next pass
            return
        except Exception as exc:               # one broken case must not stop the others
            log.exception("timers of case %s failed", case_id)
            result.failed[case_id] = str(exc)
            return
        if fired is None:
            result.skipped.append(case_id)
        else:
            result.fired[case_id] = fired

    def seconds_to_sleep(self) -> float:
        with self.core.db.reading() as s:
            moments = [m for m in (timer_queries.next_due_at(s), deadline_queries.next_alert_at(s)) if m is not None]
        due = min(moments, default=None)
        if due is None:
            return self.max_sleep
        wait = (due - self.core.clock.now()).total_seconds()
        return min(self.max_sleep, max(MIN_SLEEP_SECONDS, wait))

    def run_forever(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                result = self.run_once()
                if result.fired or result.campaigns or result.failed or result.reminded or result.escalated:
                    log.info("timers fired in %d case(s), %d failed, %d reminder(s), %d escalation(s), "
                             "campaigns launched: %s", len(result.fired), len(result.failed),
                             len(result.reminded), len(result.escalated), result.campaigns or "none")
                wait = self.seconds_to_sleep()
            except Exception:   # the database is away for a moment: try again later
                log.exception("timer worker pass failed")
                wait = self.max_sleep
            stop.wait(wait)

    def start_thread(self) -> tuple[threading.Thread, threading.Event]:
        """Run in a daemon thread (the serving process's own timers)."""
        stop = threading.Event()
        thread = threading.Thread(target=self.run_forever, args=(stop,), name="perfbudget-timers", daemon=True)
        thread.start()
        return thread, stop
