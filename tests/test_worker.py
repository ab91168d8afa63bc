"""The timer worker (`perfbudget worker`): timers fire on the app's clock, exactly once, not
before they are due, after downtime, and with several workers at once; due dates of tasks
from a timer boundary event and from `dueIn`; the scheduled monitoring campaign."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.app import PerfBudget
from engine.clock import FixedClock
from engine.worker import TimerWorker
from storage.models import AuditEvent, Campaign, Case, HumanTask
from task_helpers import open_task, run_at_once

MODEL_DIR = Path(__file__).parent / "models" / "timer_demo"
ROOT = Path(__file__).resolve().parent.parent
START = datetime(2027, 3, 1, 8, 0)


@pytest.fixture
def clock():
    """Time stands still until a test moves it: no sleeps."""
    return FixedClock(START)


@pytest.fixture
def timer_demo(deploy_test_model):
    return deploy_test_model("timer_demo")


def start_case(core, actor, project_id) -> int:
    return core.cases.start(actor("perf1"), "timer_demo", project_id("EDU-2027-001")).id


def prepare_done(core, actor, case_id: int) -> None:
    """Complete 'Prepare the material': the case then waits two days on its timer."""
    task = open_task(core, case_id)
    assert task.step == "prepare"
    core.cases.complete(actor("perf1"), task.id, {})


def case_row(core, case_id: int) -> Case:
    with core.db.reading() as s:
        return s.get(Case, case_id)


def timer_events(core, case_id: int | None = None) -> list[AuditEvent]:
    with core.db.reading() as s:
        query = select(AuditEvent).where(AuditEvent.action == "timer").order_by(AuditEvent.id)
        if case_id is not None:
            query = query.where(AuditEvent.case_id == case_id)
        return list(s.scalars(query))


def test_the_intermediate_timer_waits_on_the_app_clock_and_fires_once(demo_core, timer_demo, actor,
                                                                      project_id, clock, app):
    case_id = start_case(demo_core, actor, project_id)
    prepare_done(demo_core, actor, case_id)
    case = case_row(demo_core, case_id)
    # Entered on the FixedClock, not the wall clock: due exactly two days after it.
    assert case.next_due_at == START + timedelta(days=2)
    assert case.current_steps == "Two days' notice"

    runner = app.test_cli_runner()
    clock.advance(days=2)             # due, but not past: SpiffWorkflow fires once the moment has passed
    assert runner.invoke(args=["worker", "--once"]).output.startswith("Timers fired in 0 case(s)")
    assert timer_events(demo_core, case_id) == [] and open_task(demo_core, case_id) is None

    clock.advance(seconds=1)
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Timers fired in 1 case(s)")
    [event] = timer_events(demo_core, case_id)
    assert event.actor_id is None and event.data["timers"][0]["name"] == "Two days' notice"
    assert event.at == START + timedelta(days=2, seconds=1)
    review = open_task(demo_core, case_id)
    assert review.step == "review" and review.created_at == START + timedelta(days=2, seconds=1)

    # Another pass, through the engine this time, finds nothing more to do.
    assert TimerWorker(demo_core).run_once().fired == {}
    assert len(timer_events(demo_core, case_id)) == 1


def test_the_boundary_timer_sets_the_due_date_and_cancels_the_task_when_it_fires(demo_core, timer_demo, actor,
                                                                                 project_id, clock, pages):
    case_id = start_case(demo_core, actor, project_id)
    prepare = open_task(demo_core, case_id)
    assert prepare.due_at == START + timedelta(days=10)            # dueIn P10D from its creation
    prepare_done(demo_core, actor, case_id)
    clock.advance(days=3)
    assert TimerWorker(demo_core).run_once().fired.keys() == {case_id}
    review = open_task(demo_core, case_id)
    fired_at = START + timedelta(days=3)
    assert review.due_at == fired_at + timedelta(days=5)            # the boundary timer's moment
    assert case_row(demo_core, case_id).next_due_at == review.due_at

    inbox = pages("perf1").get("/inbox").get_data(as_text=True)
    row = inbox.split(f'data-task-id="{review.id}"')[1].split("</tr>")[0]
    assert (review.due_at.strftime("%Y-%m-%d %H:%M") in row) and "overdue" not in row
    clock.advance(days=5, seconds=30)   # past due; the worker has not run yet: the task shows overdue
    inbox = pages("perf1").get("/inbox").get_data(as_text=True)
    assert 'class="overdue"' in inbox.split(f'data-task-id="{review.id}"')[1].split("</tr>")[0]
    case_page = pages("perf1").get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Review the material</a>" in case_page and "overdue" in case_page
    assert "a timer fired: <em>Two days&#39; notice</em>" in case_page
    [answered] = demo_core.reads.case(actor("perf1"), case_id)["tasks"]     # what the JSON API shows
    assert answered["due_at"] == review.due_at.isoformat()

    assert TimerWorker(demo_core).run_once().fired.keys() == {case_id}
    with demo_core.db.reading() as s:
        assert s.get(HumanTask, review.id).status == "cancelled"
        finished = s.scalars(select(AuditEvent).where(AuditEvent.case_id == case_id,
                                                      AuditEvent.action == "finished")).one()
    case = case_row(demo_core, case_id)
    assert case.status == "completed" and case.next_due_at is None
    assert finished.data == {"end": "Expired"}
    assert len(timer_events(demo_core, case_id)) == 2


def test_after_downtime_the_worker_catches_up_on_everything_due(demo_core, timer_demo, actor, project_id, clock):
    cases = [start_case(demo_core, actor, project_id) for _ in range(23)]
    for case_id in cases:
        prepare_done(demo_core, actor, case_id)
    late = start_case(demo_core, actor, project_id)
    clock.advance(days=1)
    prepare_done(demo_core, actor, late)          # due a day after the others
    clock.advance(days=1, hours=12)               # the others are due, `late` not yet
    result = TimerWorker(demo_core, batch=5).run_once()     # pages through in small reads
    assert sorted(result.fired) == sorted(cases) and not result.failed
    assert sorted(e.case_id for e in timer_events(demo_core)) == sorted(cases)
    clock.advance(days=1)
    assert list(TimerWorker(demo_core).run_once().fired) == [late]


def _due_cases(core, actor, project_id, clock, n: int) -> list[int]:
    cases = [start_case(core, actor, project_id) for _ in range(n)]
    for case_id in cases:
        prepare_done(core, actor, case_id)
    clock.advance(days=2, minutes=1)
    return cases


def _assert_each_fired_once(core, cases: list[int]) -> None:
    with core.db.reading() as s:
        counts = dict(s.execute(select(AuditEvent.case_id, func.count()).where(AuditEvent.action == "timer")
                                .group_by(AuditEvent.case_id)).all())
        steps = dict(s.execute(select(HumanTask.case_id, func.count()).where(HumanTask.step == "review")
                               .group_by(HumanTask.case_id)).all())
    assert counts == {case_id: 1 for case_id in cases}
    assert steps == {case_id: 1 for case_id in cases}     # one review task each, no duplicate


def test_several_worker_threads_fire_each_timer_exactly_once(demo_core, timer_demo, actor, project_id, clock):
    cases = _due_cases(demo_core, actor, project_id, clock, 12)
    results = run_at_once([PerfBudget(demo_core.db.url, clock=clock) for _ in range(3)],
                          lambda core: TimerWorker(core, batch=4).run_once())
    assert not any(r.failed for r in results)
    fired = [case_id for r in results for case_id in r.fired]
    assert sorted(fired) == sorted(cases)          # between them, each case once
    _assert_each_fired_once(demo_core, cases)


WORKER_SCRIPT = """
import sys
from datetime import datetime
from engine.app import PerfBudget
from engine.clock import FixedClock
from engine.worker import TimerWorker
core = PerfBudget(sys.argv[1], clock=FixedClock(datetime.fromisoformat(sys.argv[2])))
result = TimerWorker(core, batch=3).run_once()
print(len(result.fired), len(result.failed))
"""


def test_several_worker_processes_fire_each_timer_exactly_once(demo_core, timer_demo, actor, project_id, clock):
    cases = _due_cases(demo_core, actor, project_id, clock, 15)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, demo_core.db.url, clock.now().isoformat()],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = [proc.communicate(timeout=180) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    fired = [int(out.split()[0]) for out, _ in outputs]
    assert sum(fired) == len(cases) and all(out.split()[1] == "0" for out, _ in outputs)
    _assert_each_fired_once(demo_core, cases)


def test_a_user_completing_the_task_and_the_worker_do_not_both_win(demo_core, timer_demo, actor,
                                                                    project_id, clock):
    """The boundary timer falls due while the review is open: whichever commits first wins,
    and the other changes nothing (the case's optimistic lock)."""
    case_id = start_case(demo_core, actor, project_id)
    prepare_done(demo_core, actor, case_id)
    clock.advance(days=2, minutes=1)
    TimerWorker(demo_core).run_once()
    review = open_task(demo_core, case_id)
    clock.advance(days=6)
    demo_core.cases.complete(actor("perf1"), review.id, {})    # the user was first
    assert TimerWorker(demo_core).run_once().fired == {}
    with demo_core.db.reading() as s:
        finished = s.scalars(select(AuditEvent).where(AuditEvent.case_id == case_id,
                                                      AuditEvent.action == "finished")).one()
    assert finished.data == {"end": "Reviewed"} and len(timer_events(demo_core, case_id)) == 1


# ---- the scheduled monitoring campaign ----------------------------------------------------

@pytest.fixture
def budget_project(demo_core, actor, project_id):
    """EDU-2027-001 with approved goals: a budget project a 2027 monitoring campaign covers."""
    from test_engine_goal_review import NON_KEY_CHAIN, Flow
    flow = Flow(demo_core, actor, project_id)
    flow.walk(flow.start("EDU-2027-001"), "EDU-2027-001", NON_KEY_CHAIN)


def monitoring_campaigns(core) -> list[Campaign]:
    with core.db.reading() as s:
        return list(s.scalars(select(Campaign).where(Campaign.kind == "monitoring")))


def test_the_monitoring_campaign_starts_by_itself_once_on_its_date(demo_core, budget_project, clock, app):
    clock.current = datetime(2027, 9, 29, 23, 0)
    assert TimerWorker(demo_core).run_once().campaigns == []
    clock.current = datetime(2027, 9, 30, 0, 5)

    results = run_at_once([PerfBudget(demo_core.db.url, clock=clock) for _ in range(3)],
                          lambda core: TimerWorker(core).run_once())
    assert sum(len(r.campaigns) for r in results) == 1
    [campaign] = monitoring_campaigns(demo_core)
    assert (campaign.year, campaign.cutoff_date.isoformat(), campaign.started_by_id) == (2027, "2027-09-30", None)
    with demo_core.db.reading() as s:
        audit = s.scalars(select(AuditEvent).where(AuditEvent.action == "campaign_launched")).one()
        cases = s.scalar(select(func.count()).select_from(Case).where(Case.campaign_id == campaign.id))
    assert audit.actor_id is None and audit.data["scheduled"] is True and cases == 1

    # Later passes, and after the campaign is closed, never launch it again.
    clock.advance(days=40)
    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0 and "launched" not in result.output
    assert len(monitoring_campaigns(demo_core)) == 1


def test_the_automatic_start_can_be_switched_off(demo_core, budget_project, clock, actor):
    demo_core.settings.update(actor("admin"), "monitoring.campaign_auto_start", {"value": False})
    clock.current = datetime(2027, 10, 1, 9, 0)
    assert TimerWorker(demo_core).run_once().campaigns == []
    assert monitoring_campaigns(demo_core) == []
    demo_core.settings.update(actor("admin"), "monitoring.campaign_auto_start", {"value": True})
    assert len(TimerWorker(demo_core).run_once().campaigns) == 1


def test_a_due_in_that_is_no_duration_is_refused_at_deployment(demo_core):
    from engine.deployment import ModelFiles
    from engine.errors import DeploymentError
    files = ModelFiles.from_folder(MODEL_DIR)
    files.files["timer_demo.bpmn"] = files.files["timer_demo.bpmn"].replace(b'value="P10D"', b'value="10 days"')
    with pytest.raises(DeploymentError) as error:
        demo_core.processes.deploy(files)
    assert "dueIn '10 days'" in str(error.value)


def test_a_timer_start_event_holds_the_case_until_it_fires(demo_core, actor, project_id, clock, pages):
    """A process whose start event is a timer: the case is opened now and its work begins when
    the timer fires, through the worker like any other timer."""
    demo_core.processes.deploy_folder(Path(__file__).parent / "models" / "timer_start_demo")
    case_id = demo_core.cases.start(actor("perf1"), "timer_start_demo", project_id("EDU-2027-001")).id
    case = case_row(demo_core, case_id)
    assert case.status == "running" and case.current_steps == "Three days' notice"
    assert case.next_due_at == START + timedelta(days=3)
    assert open_task(demo_core, case_id) is None
    assert "Three days&#39; notice" in pages("perf1").get(f"/cases/{case_id}").get_data(as_text=True)

    clock.advance(days=3, seconds=1)
    result = TimerWorker(demo_core).run_once()
    assert list(result.fired) == [case_id]
    [event] = timer_events(demo_core, case_id)
    assert event.data["timers"][0]["name"] == "Three days' notice"
    task = open_task(demo_core, case_id)
    assert task.step == "report" and task.created_at == clock.now()
    assert case_row(demo_core, case_id).next_due_at is None
    assert TimerWorker(demo_core).run_once().fired == {}
