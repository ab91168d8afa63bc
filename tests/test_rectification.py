"""The shared rectification model, called by call activity: deployment binds the called
version, each problem gets its own tasks with a subject and a deadline, the funding section
approves or returns, and the problem rows keep origin, measures, evidence and rounds."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.clock import FixedClock
from engine.deployment import ModelFiles
from engine.errors import DeploymentError
from storage.models import AuditEvent, Problem, ProcessVersion

FINDER_DIR = Path(__file__).parent / "models" / "problem_finder"
PROCESSES = Path(__file__).resolve().parent.parent / "processes"
EVIDENCE = [{"title": "Revised payment rules", "reference": "EDU-2027-17"}]


@pytest.fixture
def clock():
    """Time stands still until a test moves it (deadlines, reminders and escalation)."""
    return FixedClock(datetime(2027, 3, 1, 8, 0))


@pytest.fixture
def finder(deploy_test_model):
    return deploy_test_model("problem_finder")


def start_finder(api, problems: list[dict]) -> int:
    case = api("perf1").post("/api/v1/cases", json={"process": "problem_finder", "project": "EDU-2027-001"})
    assert case.status_code == 201, case.get_json()
    case_id = case.get_json()["id"]
    task = next(t for t in api("perf1").get("/api/v1/tasks").get_json()["items"] if t["case_id"] == case_id)
    done = api("perf1").post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {"problems": problems}})
    assert done.status_code == 200, done.get_json()
    return case_id


def open_tasks(api, username: str, case_id: int) -> list[dict]:
    return [t for t in api(username).get("/api/v1/tasks").get_json()["items"] if t["case_id"] == case_id]


def problems_of(core, case_id: int) -> list[Problem]:
    with core.db.reading() as s:
        rows = list(s.scalars(select(Problem).where(Problem.case_id == case_id).order_by(Problem.id)))
        s.expunge_all()
        return rows


def test_a_caller_is_bound_to_the_deployed_rectification_version(demo_core, finder):
    with demo_core.db.reading() as s:
        rectification = s.scalars(select(ProcessVersion).where(ProcessVersion.key == "rectification")).one()
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "deployed")
                          .order_by(AuditEvent.id.desc())).first()
    assert finder.calls == {"rectification": rectification.id}
    assert event.data["calls"] == {"rectification": rectification.id}


def test_a_call_to_a_process_nobody_deployed_is_refused_by_name(demo_core):
    files = ModelFiles.from_folder(FINDER_DIR)
    files.files["problem_finder.bpmn"] = files.files["problem_finder.bpmn"].replace(
        b'calledElement="rectification"', b'calledElement="no_such_process"')
    with pytest.raises(DeploymentError) as error:
        demo_core.processes.deploy(files)
    assert "no_such_process" in str(error.value) and "deploy that model first" in str(error.value)
    with demo_core.db.reading() as s:
        assert s.scalars(select(ProcessVersion).where(ProcessVersion.key == "problem_finder")).first() is None


def test_each_problem_is_rectified_in_its_own_tasks_with_return_and_approval(demo_core, finder, api, clock):
    case_id = start_finder(api, [{"description": "Payments made without contracts",
                                  "requirement": "Sign contracts for all payments"},
                                 {"description": "Indicator data not kept"}])
    rows = problems_of(demo_core, case_id)
    assert [(r.origin, r.status, r.project_id is not None) for r in rows] == [("monitoring", "notified", True)] * 2
    deadline = (clock.now() + timedelta(days=30)).date()
    assert all(r.deadline == deadline for r in rows)

    tasks = open_tasks(api, "school_unit", case_id)
    assert sorted(t["title"].split(":")[0] for t in tasks) == [
        "Rectify the problem (Indicator data not kept)", "Rectify the problem (Payments made without contracts)"]
    assert {t["due_at"][:10] for t in tasks} == {deadline.isoformat()}
    assert open_tasks(api, "farm_unit", case_id) == []        # another unit sees nothing

    # The task page has the called model's form and the problem in its instructions.
    first = next(t for t in tasks if "contracts" in t["title"])
    detail = api("school_unit").get(f"/api/v1/tasks/{first['id']}").get_json()
    assert "rectification_measures" in detail["form"]["schema"]["properties"]
    assert "Sign contracts for all payments" in detail["instructions"]

    bad = api("school_unit").post(f"/api/v1/tasks/{first['id']}/complete",
                                  json={"data": {"rectification_measures": "Contracts signed"}})
    assert bad.status_code == 400 and "rectification_evidence" in bad.get_json()["details"]
    for task in tasks:
        ok = api("school_unit").post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {
            "rectification_measures": f"Done: {task['title'][:20]}", "rectification_evidence": EVIDENCE}})
        assert ok.status_code == 200, ok.get_json()
    assert {r.status for r in problems_of(demo_core, case_id)} == {"submitted"}

    checks = open_tasks(api, "edu_section", case_id)
    assert len(checks) == 2 and open_tasks(api, "agri_section", case_id) == []
    returned = next(t for t in checks if "contracts" in t["title"])
    no_reason = api("edu_section").post(f"/api/v1/tasks/{returned['id']}/complete",
                                        json={"data": {"check_decision": "return"}})
    assert no_reason.status_code == 400 and "check_comment" in no_reason.get_json()["details"]
    assert api("edu_section").post(f"/api/v1/tasks/{returned['id']}/complete", json={"data": {
        "check_decision": "return", "check_comment": "Two payments still lack contracts"}}).status_code == 200
    other = next(t for t in checks if t["id"] != returned["id"])
    assert api("edu_section").post(f"/api/v1/tasks/{other['id']}/complete",
                                   json={"data": {"check_decision": "approve"}}).status_code == 200

    redo = open_tasks(api, "school_unit", case_id)
    assert len(redo) == 1 and "contracts" in redo[0]["title"]
    redo_detail = api("school_unit").get(f"/api/v1/tasks/{redo[0]['id']}").get_json()
    assert "Two payments still lack contracts" in redo_detail["instructions"]
    # The unit's own earlier submission is prefilled for the resubmission.
    assert redo_detail["data"]["rectification_evidence"] == EVIDENCE
    assert api("school_unit").post(f"/api/v1/tasks/{redo[0]['id']}/complete", json={"data": {
        "rectification_measures": "All contracts signed", "rectification_evidence": EVIDENCE * 2}}).status_code == 200
    final_check = open_tasks(api, "edu_section", case_id)
    assert len(final_check) == 1
    # A new round of the check starts empty, not with the earlier 'return'.
    assert api("edu_section").get(f"/api/v1/tasks/{final_check[0]['id']}").get_json()["data"] == {}
    assert api("edu_section").post(f"/api/v1/tasks/{final_check[0]['id']}/complete",
                                   json={"data": {"check_decision": "approve"}}).status_code == 200

    case = api("perf1").get(f"/api/v1/cases/{case_id}").get_json()
    assert case["status"] == "completed"
    rows = {r.description: r for r in problems_of(demo_core, case_id)}
    contracts = rows["Payments made without contracts"]
    assert (contracts.status, contracts.rounds, contracts.measures, len(contracts.evidence)) == (
        "rectified", 2, "All contracts signed", 2)
    assert contracts.check_comment == "" and contracts.rectified_at is not None
    assert (rows["Indicator data not kept"].status, rows["Indicator data not kept"].rounds) == ("rectified", 1)
    # The case's timeline names every step of every rectification.
    steps = [e["task"] for e in case["history"] if e["action"] == "completed"]
    assert (steps.count("Rectify the problem"), steps.count("Check the rectification")) == (3, 3)
    # Once the case has finished, a rectification task's page still shows what its round submitted.
    page = api("school_unit").get(f"/api/v1/tasks/{first['id']}")
    assert page.status_code == 200, page.get_json()
    assert page.get_json()["data"] == {"rectification_measures": f"Done: {first['title'][:20]}",
                                       "rectification_evidence": EVIDENCE}


def test_running_cases_keep_the_rectification_version_they_started_with(demo_core, finder, api):
    case_id = start_finder(api, [{"description": "Late reporting"}])
    changed = ModelFiles.from_folder(PROCESSES / "rectification")
    changed.files["rectification.bpmn"] = changed.files["rectification.bpmn"].replace(
        b'name="Rectify the problem"', b'name="Rectify the problem (v2)"')
    row, created = demo_core.processes.deploy(changed)
    assert created and row.version == 2
    # The running case goes on with version 1's steps.
    assert [t["name"] for t in open_tasks(api, "school_unit", case_id)] == ["Rectify the problem"]
    # The caller is bound to the new version only when deployed again; same files, new binding.
    again, created = demo_core.processes.deploy_folder(FINDER_DIR)
    assert created and again.version == 2 and again.calls == {"rectification": row.id}
    new_case = start_finder(api, [{"description": "Missing minutes"}])
    assert [t["name"] for t in open_tasks(api, "school_unit", new_case)] == ["Rectify the problem (v2)"]
    # A version loaded fresh (another process, after a restart) binds the same called version.
    demo_core.specs._versions.clear()
    assert [t["name"] for t in open_tasks(api, "school_unit", case_id)] == ["Rectify the problem"]
    task = open_tasks(api, "school_unit", case_id)[0]
    assert api("school_unit").post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {
        "rectification_measures": "Reported", "rectification_evidence": EVIDENCE}}).status_code == 200
    assert [t["name"] for t in open_tasks(api, "edu_section", case_id)] == ["Check the rectification"]


def test_rectification_is_reminded_before_its_deadline_and_escalated_after_it(demo_core, finder, api, clock):
    """The diagram declares reminders 7 days and 1 day before the deadline and, once it has
    passed, escalation to the funding business section that checks the rectification."""
    from engine.worker import TimerWorker
    from storage.models import Notification, User

    case_id = start_finder(api, [{"description": "Payments made without contracts"}])
    [task] = open_tasks(api, "school_unit", case_id)
    deadline = datetime.fromisoformat(task["due_at"])
    assert deadline == datetime.combine((clock.now() + timedelta(days=30)).date(), datetime.max.time()).replace(
        microsecond=0)

    def alerts():
        with demo_core.db.reading() as s:
            return [(u, n.kind) for n, u in s.execute(
                select(Notification, User.username).join(User, User.id == Notification.user_id)
                .where(Notification.kind.in_(["reminder", "escalation"])).order_by(Notification.id))]

    clock.advance(days=23)     # the 24th, 08:00: the first reminder is due at the end of that day
    assert TimerWorker(demo_core).run_once().reminded == []
    clock.current = deadline - timedelta(days=7)
    assert TimerWorker(demo_core).run_once().reminded == [task["id"]]
    clock.current = deadline - timedelta(days=1)
    assert TimerWorker(demo_core).run_once().reminded == [task["id"]]
    assert alerts() == [("school_unit", "reminder")] * 2
    clock.current = deadline + timedelta(seconds=1)
    assert TimerWorker(demo_core).run_once().escalated == [task["id"]]
    assert alerts()[2:] == [("edu_section", "escalation"), ("school_unit", "escalation")]
    detail = api("edu_section").get(f"/api/v1/tasks/{task['id']}").get_json()
    assert detail["overdue"] is True and detail["escalated_to"] == "funding"
    assert detail["escalated_to_name"] == "Funding business section"
