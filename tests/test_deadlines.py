"""Reminders before a task's due date and escalation after it, declared on the user task in
the diagram (`remindBefore`, `escalateAfter`, `escalateTo`) and sent by the timer worker:
on the app's clock, once each whatever the number of workers, never for a task done in time,
to the next level or a named role; the rectification diagram uses both."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.app import PerfBudget
from engine.clock import FixedClock
from engine.errors import DeploymentError
from engine.worker import TimerWorker
from storage.models import AuditEvent, HumanTask, Notification, User
from task_helpers import open_task, run_at_once

MODEL_DIR = Path(__file__).parent / "models" / "deadline_demo"
START = datetime(2027, 3, 1, 8, 0)


@pytest.fixture
def clock():
    return FixedClock(START)


@pytest.fixture
def deadline_demo(deploy_test_model):
    return deploy_test_model("deadline_demo")


def start_case(core, actor, project_id, code="EDU-2027-001") -> int:
    return core.cases.start(actor("school_unit"), "deadline_demo", project_id(code)).id


def notified(core, kind: str) -> list[tuple[str, str, str]]:
    """(username, title, body) of every notification of that kind, in order."""
    with core.db.reading() as s:
        rows = s.execute(select(User.username, Notification.title, Notification.body)
                         .join(User, User.id == Notification.user_id)
                         .where(Notification.kind == kind).order_by(Notification.id, User.username))
        return [tuple(r) for r in rows]


def audit(core, case_id: int, action: str) -> list[AuditEvent]:
    with core.db.reading() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.case_id == case_id, AuditEvent.action == action)
                              .order_by(AuditEvent.id)))


def run(core) -> tuple[list[int], list[int]]:
    result = TimerWorker(core).run_once()
    return result.reminded, result.escalated


def test_a_task_is_reminded_before_it_is_due_and_escalated_to_the_next_level_after(
        demo_core, deadline_demo, actor, project_id, clock, app, pages):
    case_id = start_case(demo_core, actor, project_id)
    task = open_task(demo_core, case_id, required=True)
    assert task.due_at == START + timedelta(days=10)
    assert task.alert_at == START + timedelta(days=7)
    assert [a["kind"] for a in task.alerts] == ["reminder", "reminder", "escalation"]

    clock.advance(days=6, hours=23)
    assert run(demo_core) == ([], [])                       # not yet
    clock.advance(hours=1)
    assert run(demo_core) == ([task.id], [])
    assert notified(demo_core, "reminder") == [
        ("school_unit", "Due in 3 days: Submit the report: Campus safety upgrade (EDU-2027-001)",
         "“Submit the report” is due 2027-03-11 08:00. Please complete it in time.")]
    assert run(demo_core) == ([], [])                       # once
    [event] = audit(demo_core, case_id, "reminded")
    assert event.human_task_id == task.id and event.data["before"] == "P3D" and event.actor_id is None

    clock.advance(days=2)                                   # one day before
    runner = app.test_cli_runner()
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0 and "1 reminder(s)" in result.output, result.output
    assert [t for _, t, _ in notified(demo_core, "reminder")][-1].startswith("Due in 1 day: ")

    clock.advance(days=1)                                   # due now: nothing until a day overdue
    assert run(demo_core) == ([], [])
    clock.advance(days=1)
    assert run(demo_core) == ([], [task.id])
    escalations = notified(demo_core, "escalation")
    # The next level of a unit is its competent department; the unit is told too.
    assert [(u, t.split(":")[0]) for u, t, _ in escalations] == [
        ("edu_bureau", "Escalated, 1 day overdue"), ("school_unit", "Overdue and escalated")]
    assert "with budget unit of No. 1 Middle School" in escalations[0][2]
    assert "escalated to competent department" in escalations[1][2]
    [event] = audit(demo_core, case_id, "escalated")
    assert event.data["to"] == "competent"
    row = open_task(demo_core, case_id, required=True)
    assert row.escalated_to == "competent" and row.escalated_at == clock.now()
    assert row.alert_at is None and not row.alerts
    # The competent department follows the escalation's link to the task, which it may read.
    with demo_core.db.reading() as s:
        link = s.scalars(select(Notification.id).join(User, User.id == Notification.user_id)
                         .where(User.username == "edu_bureau", Notification.kind == "escalation")).one()
    page = pages("edu_bureau").get(f"/notifications/{link}")
    assert page.status_code == 302 and page.headers["Location"].endswith(f"/tasks/{task.id}")
    html = pages("edu_bureau").get(f"/tasks/{task.id}").get_data(as_text=True)
    assert "Submit the report" in html and "escalated to competent department" in html
    clock.advance(days=30)
    assert run(demo_core) == ([], [])                       # nothing more to send


def test_the_inbox_case_page_and_api_show_an_escalated_overdue_task(
        demo_core, deadline_demo, actor, project_id, clock, pages, api):
    case_id = start_case(demo_core, actor, project_id)
    task = open_task(demo_core, case_id, required=True)
    clock.advance(days=11, seconds=1)
    assert run(demo_core) == ([], [task.id])       # the reminders' moments passed: only the escalation
    assert notified(demo_core, "reminder") == []
    inbox = pages("school_unit").get("/inbox").get_data(as_text=True)
    assert "overdue</span>" in inbox and "escalated to competent department" in inbox
    case_page = pages("edu_bureau").get(f"/cases/{case_id}").get_data(as_text=True)
    assert "escalated to competent department" in case_page
    body = api("school_unit").get(f"/api/v1/tasks/{task.id}").get_json()
    assert body["escalated_to"] == "competent" and body["overdue"] is True
    assert body["escalated_at"] == clock.now().isoformat()


def test_a_task_done_in_time_is_not_chased_and_the_next_task_escalates_to_a_named_role(
        demo_core, deadline_demo, actor, project_id, clock):
    case_id = start_case(demo_core, actor, project_id)
    report = open_task(demo_core, case_id, required=True)
    clock.advance(days=2)
    demo_core.cases.complete(actor("school_unit"), report.id, {})
    with demo_core.db.reading() as s:
        assert s.get(HumanTask, report.id).alert_at is None
    check = open_task(demo_core, case_id, required=True)
    assert check.role == "performance" and check.due_at == clock.now() + timedelta(days=5)
    clock.advance(days=4, seconds=1)
    assert run(demo_core) == ([check.id], [])
    assert {u for u, _, _ in notified(demo_core, "reminder")} == {"perf1"}
    clock.advance(days=1)                                   # escalated as soon as it is overdue
    assert run(demo_core) == ([], [check.id])
    assert [u for u, _, _ in notified(demo_core, "escalation")] == ["supervisor", "perf1"]
    assert audit(demo_core, case_id, "reminded")[0].human_task_id == check.id   # none for the report


def test_several_workers_send_each_alert_exactly_once(demo_core, deadline_demo, actor, project_id, clock):
    codes = ["EDU-2027-001", "EDU-2027-002", "EDU-2027-003", "EDU-2027-004"]
    tasks = []
    for code in codes:
        tasks.append(open_task(demo_core, start_case(demo_core, actor, project_id, code), required=True).id)
    clock.advance(days=7, seconds=1)
    results = run_at_once([PerfBudget(demo_core.db.url, clock=clock) for _ in range(3)],
                          lambda core: core.deadlines.run_due(batch=2))
    assert sorted(t for r in results for t in r.reminded) == sorted(tasks)
    assert len(notified(demo_core, "reminder")) == len(tasks)
    with demo_core.db.reading() as s:
        events = list(s.scalars(select(AuditEvent.human_task_id).where(AuditEvent.action == "reminded")))
    assert sorted(events) == sorted(tasks)


@pytest.mark.parametrize("prop, value, message", [
    ("remindBefore", "3 days", "remindBefore '3 days' is not an ISO 8601 duration"),
    ("remindBefore", " , ", "remindBefore is empty"),
    ("escalateAfter", "tomorrow", "escalateAfter 'tomorrow' is not an ISO 8601 duration"),
    ("escalateTo", "the boss", "escalateTo 'the boss' names no role"),
])
def test_deadline_properties_that_would_never_fire_are_refused_at_deployment(demo_core, tmp_path, prop, value,
                                                                            message):
    folder = tmp_path / "deadline_demo"
    folder.mkdir()
    for source in MODEL_DIR.iterdir():
        text = source.read_text()
        if source.suffix == ".bpmn":
            text = re.sub(f'name="{prop}" value="[^"]*"', f'name="{prop}" value="{value}"', text)
        (folder / source.name).write_text(text)
    with pytest.raises(DeploymentError) as info:
        demo_core.processes.deploy_folder(folder)
    assert message in str(info.value)


def test_case_lists_show_each_cases_nearest_deadline_overdue_and_escalated(
        demo_core, deadline_demo, actor, project_id, clock, pages, api):
    case_id = start_case(demo_core, actor, project_id)
    listed = {c["id"]: c for c in api("perf1").get("/api/v1/cases?process=deadline_demo").get_json()["items"]}
    assert listed[case_id]["due_at"] == (START + timedelta(days=10)).isoformat()
    assert listed[case_id]["overdue"] is False and listed[case_id]["escalated"] is False

    clock.advance(days=11, seconds=1)
    run(demo_core)
    [item] = [c for c in api("perf1").get("/api/v1/cases?process=deadline_demo").get_json()["items"]
              if c["id"] == case_id]
    assert item["overdue"] is True and item["escalated"] is True
    page = pages("perf1").get("/cases?process=deadline_demo").get_data(as_text=True)
    row = page[page.index(f"#{case_id}</a>"):].split("</tr>")[0]
    assert "2027-03-11" in row and "overdue</span>" in row and "escalated</span>" in row
    project = pages("school_unit").get(f"/projects/{project_id('EDU-2027-001')}").get_data(as_text=True)
    assert "overdue</span>" in project


def test_a_campaign_lists_its_cases_with_their_deadlines(demo_core, actor, clock, api, pages):
    """Monitoring cases opened by a campaign: each row shows its nearest due date."""
    from engine import demo
    demo.load(demo_core)          # the demo's 2026 monitoring campaign, with cases waiting on units
    campaigns = api("perf1").get("/api/v1/campaigns").get_json()["items"]
    campaign = next(c for c in campaigns if c["kind"] == "monitoring")
    detail = api("perf1").get(f"/api/v1/campaigns/{campaign['id']}").get_json()
    # The self-monitoring report is due 15 days after the campaign opened the case (the diagram's dueIn).
    waiting = [row for row in detail["cases"] if row["current_steps"] == "Self-monitoring report"]
    assert waiting
    for row in waiting:
        opened = api("perf1").get(f"/api/v1/cases/{row['case_id']}").get_json()["started_at"]
        assert row["due_at"] == (datetime.fromisoformat(opened) + timedelta(days=15)).isoformat()
        assert row["overdue"] is False and row["escalated"] is False
    html = pages("perf1").get(f"/campaigns/{campaign['id']}").get_data(as_text=True)
    assert "<th>Due</th>" in html


def test_the_worker_mails_the_reminders_and_escalations_of_its_pass(
        demo_core, deadline_demo, actor, project_id, clock, smtp_server):
    from engine.notifications import EmailSettings
    handler, port = smtp_server
    start_case(demo_core, actor, project_id)
    settings = EmailSettings(host="127.0.0.1", port=port, sender="perf@example.org")
    handler.messages.clear()          # the new-task mail is a web request's to send, not the worker's
    demo_core.email.send_pending(settings)
    handler.messages.clear()
    clock.advance(days=7, seconds=1)
    TimerWorker(demo_core, email=settings).run_once()
    [(recipients, message)] = handler.messages
    assert recipients == ["school_unit@example.org"]
    assert message["Subject"] == "[PerfBudget] Due in 3 days: Submit the report: Campus safety upgrade (EDU-2027-001)"
    clock.advance(days=4)
    TimerWorker(demo_core, email=settings).run_once()
    assert sorted(r[0] for r, _ in handler.messages[1:]) == ["edu_bureau@example.org", "school_unit@example.org"]
    assert all(m["Subject"].startswith("[PerfBudget] ") and "scalated" in m["Subject"] for _, m in handler.messages[1:])
