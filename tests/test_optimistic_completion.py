"""On SQLite a completion runs the engine before its write transaction and saves only if the
case, the task and its files are still as it saw them; otherwise it is prepared again. On
PostgreSQL it locks the case's and the task's rows first and does both in one transaction.

Most tests step in between the two parts: they let the service prepare a completion, change
the case as another user would at that moment, and check what the completion then does.
"""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from engine import attachments, demo
from engine.cases import OPTIMISTIC_TRIES
from engine.errors import Conflict, PermissionDenied
from storage.models import AuditEvent, Case, HumanTask

from task_helpers import open_task, wait_until_done_or_blocked

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture
def parallel(demo_core, deploy_test_model, actor, project_id):
    """start() -> (case id, indicators task id, budget task id) of a parallel_checks case."""
    deploy_test_model("parallel_checks")

    def start():
        case = demo_core.cases.start(actor("perf1"), "parallel_checks", project_id("EDU-2027-001"))
        tasks = {t.step: t.id for t in open_tasks(demo_core, case.id)}
        assert set(tasks) == {"check_indicators", "check_budget"}
        return case.id, tasks["check_indicators"], tasks["check_budget"]
    return start


@pytest.fixture
def sqlite_only(demo_core):
    if not demo_core.db.one_writer_at_a_time:
        pytest.skip("SQLite only: on PostgreSQL nothing can change between the two parts (the rows are locked)")


@pytest.fixture
def postgresql_only(demo_core):
    if demo_core.db.one_writer_at_a_time:
        pytest.skip("PostgreSQL only: the completion locks the task's row")


@pytest.fixture
def colleague(demo_core):
    """A second budget-unit officer of No. 1 Middle School, who may claim and complete its tasks."""
    demo_core.accounts.ensure_user("school_unit2", "Ma Li (No. 1 Middle School)", demo.DEMO_PASSWORD,
                                  enforce_policy=False)
    demo_core.accounts.grant("school_unit2", "unit", "school")
    return "school_unit2"


def row_is_locked(core, model, row_id: int) -> bool:
    """PostgreSQL: whether another transaction holds a lock on the row that FOR NO KEY UPDATE
    would wait for."""
    try:
        with core.db.transaction() as s:
            s.execute(select(model.id).where(model.id == row_id).with_for_update(nowait=True, key_share=True)).all()
    except OperationalError as exc:
        assert getattr(exc.orig, "sqlstate", None) == "55P03", exc     # lock_not_available
        return True
    return False


def open_tasks(core, case_id: int) -> list[HumanTask]:
    with core.db.reading() as s:
        return list(s.scalars(select(HumanTask).where(HumanTask.case_id == case_id, HumanTask.status == "open")
                              .order_by(HumanTask.id)))


def history(core, case_id: int) -> list[tuple[str, str | None]]:
    with core.db.reading() as s:
        return [(e.action, e.step) for e in s.scalars(select(AuditEvent).where(AuditEvent.case_id == case_id)
                                                      .order_by(AuditEvent.id))]


def case_row(core, case_id: int) -> Case:
    with core.db.reading() as s:
        return s.get(Case, case_id)


def goals_task(demo_core, actor, project_id) -> HumanTask:
    case = demo_core.cases.start(actor("school_unit"), "goal_review", project_id("EDU-2027-001"))
    return open_task(demo_core, case.id, required=True)


def test_a_parallel_step_completed_meanwhile_is_kept_and_the_join_is_reached(demo_core, actor, parallel, between,
                                                                             sqlite_only):
    case_id, indicators, budget = parallel()
    calls = between(lambda: demo_core.cases.complete(actor("review1"), budget, {"note": "budget fine"}))

    result = demo_core.cases.complete(actor("perf1"), indicators, {"note": "indicators fine"})

    # prepared for perf1, then review1's own completion, then perf1's again from the new state
    assert calls == [indicators, budget, indicators]
    assert result.case.status == "completed" and result.next_tasks == [] and result.open_tasks == []
    row = case_row(demo_core, case_id)
    assert (row.status, row.lock_version) == ("completed", 3)
    assert history(demo_core, case_id) == [("started", None), ("completed", "check_budget"),
                                           ("completed", "check_indicators"), ("finished", None)]
    assert open_tasks(demo_core, case_id) == []


def test_a_task_claimed_by_a_colleague_meanwhile_is_refused_and_nothing_is_written(demo_core, actor, project_id,
                                                                                   between, colleague, sqlite_only):
    task = goals_task(demo_core, actor, project_id)
    version = case_row(demo_core, task.case_id).lock_version
    between(lambda: demo_core.cases.claim(actor(colleague), task.id))

    with pytest.raises(PermissionDenied, match=r"^this task is assigned to Ma Li \(No. 1 Middle School\)$"):
        demo_core.cases.complete(actor("school_unit"), task.id, demo.sample_goals("Campus safety upgrade"))

    after = open_task(demo_core, task.case_id, required=True)
    assert (after.id, after.status, after.completed_by_id) == (task.id, "open", None)
    assert case_row(demo_core, task.case_id).lock_version == version
    assert history(demo_core, task.case_id) == [("started", None), ("claimed", "compile_goals")]


def test_a_file_uploaded_meanwhile_is_part_of_what_the_task_submits(demo_core, actor, project_id, between, sqlite_only):
    task = goals_task(demo_core, actor, project_id)
    unit = actor("school_unit")
    calls = between(lambda: demo_core.attachments.upload(unit, task.id, "late.pdf", PDF))

    demo_core.cases.complete(unit, task.id, demo.sample_goals("Campus safety upgrade"))

    assert len(calls) == 2      # prepared again: the first preparation had no file
    with demo_core.db.reading() as s:
        done = s.get(HumanTask, task.id)
        submitted = attachments.submitted_files(s, task.id)
        event = s.scalars(select(AuditEvent).where(AuditEvent.case_id == task.case_id,
                                                   AuditEvent.action == "completed")).one()
    assert done.status == "completed"
    assert [f["name"] for f in submitted] == ["late.pdf"]
    assert event.data[attachments.FILES_KEY] == submitted


def test_a_file_removed_meanwhile_is_not_part_of_what_the_task_submits(demo_core, actor, project_id, between,
                                                                      sqlite_only):
    task = goals_task(demo_core, actor, project_id)
    unit = actor("school_unit")
    kept = demo_core.attachments.upload(unit, task.id, "kept.pdf", PDF)
    dropped = demo_core.attachments.upload(unit, task.id, "dropped.pdf", PDF + b"\n% another file\n")
    calls = between(lambda: demo_core.attachments.remove(unit, dropped["id"], task.id))

    demo_core.cases.complete(unit, task.id, demo.sample_goals("Campus safety upgrade"))

    assert len(calls) == 2      # prepared again: the first preparation had both files
    with demo_core.db.reading() as s:
        submitted = attachments.submitted_files(s, task.id)
        event = s.scalars(select(AuditEvent).where(AuditEvent.case_id == task.case_id,
                                                   AuditEvent.action == "completed")).one()
    assert [f["id"] for f in submitted] == [kept["id"]]
    assert event.data[attachments.FILES_KEY] == submitted


def test_a_task_completed_by_someone_else_meanwhile_names_who(demo_core, actor, project_id, between, colleague,
                                                              sqlite_only):
    task = goals_task(demo_core, actor, project_id)
    goals = demo.sample_goals("Campus safety upgrade")
    between(lambda: demo_core.cases.complete(actor(colleague), task.id, goals))

    with pytest.raises(Conflict, match=r"^This task was already completed by Ma Li \(No. 1 Middle School\) at "):
        demo_core.cases.complete(actor("school_unit"), task.id, goals)

    assert [a for a, _ in history(demo_core, task.case_id)] == ["started", "completed"]
    assert [t.step for t in open_tasks(demo_core, task.case_id)] == ["competent_check"]


def test_a_case_that_keeps_changing_is_completed_in_one_turn(demo_core, actor, project_id, between, sqlite_only):
    """Every optimistic try finds the case changed (here: a message-free no-op save that bumps
    its version, as a busy case's other steps would); the last try prepares and saves in one
    write transaction."""
    from storage import queries
    task = goals_task(demo_core, actor, project_id)

    def bump():
        with demo_core.db.transaction() as s:
            version = s.get(Case, task.case_id).lock_version
            assert queries.save_case_state(s, task.case_id, version, updated_at=demo_core.clock.now())

    version = case_row(demo_core, task.case_id).lock_version
    calls = between(bump, times=OPTIMISTIC_TRIES)

    result = demo_core.cases.complete(actor("school_unit"), task.id, demo.sample_goals("Campus safety upgrade"))

    assert len(calls) == OPTIMISTIC_TRIES + 1
    assert [t.step for t in result.next_tasks] == ["competent_check"]
    assert case_row(demo_core, task.case_id).lock_version == version + OPTIMISTIC_TRIES + 1
    assert [a for a, _ in history(demo_core, task.case_id)] == ["started", "completed"]


def test_parallel_steps_completed_at_the_same_moment_over_http_both_count(app, demo_core, parallel):
    """Two reviewers submit the two parallel checks of a case at once, ten times over: both
    completions succeed every time and the case ends once, with both submissions in its data."""
    clients = {user: app.test_client() for user in ("perf1", "review1")}
    tokens = {}
    for user, client in clients.items():
        r = client.post("/api/v1/tokens", json={"username": user, "password": demo.DEMO_PASSWORD})
        tokens[user] = r.get_json()["token"]
    for _ in range(10):
        case_id, indicators, budget = parallel()
        work = {"perf1": (indicators, {"indicator_note": "on track"}), "review1": (budget, {"budget_note": "fine"})}
        barrier = threading.Barrier(2, timeout=60)
        results: dict = {}

        def submit(user):
            task_id, data = work[user]
            barrier.wait()
            r = clients[user].post(f"/api/v1/tasks/{task_id}/complete", json={"data": data},
                                   headers={"Authorization": f"Bearer {tokens[user]}"})
            results[user] = (r.status_code, r.get_json())

        threads = [threading.Thread(target=submit, args=(user,)) for user in work]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert {user: status for user, (status, _) in results.items()} == {"perf1": 200, "review1": 200}, results
        case = clients["perf1"].get(f"/api/v1/cases/{case_id}",
                                    headers={"Authorization": f"Bearer {tokens['perf1']}"}).get_json()
        assert case["status"] == "completed"
        assert (case["data"]["indicator_note"], case["data"]["budget_note"]) == ("on track", "fine")
        assert sorted(e["action"] for e in case["history"]) == ["completed", "completed", "finished", "started"]


def test_an_upload_during_a_completion_waits_and_is_refused(demo_core, actor, project_id, between, postgresql_only):
    """PostgreSQL: an upload to the task while its completion is prepared waits for the task's
    row, then finds the task completed; the completion recorded no file and none is attached."""
    task = goals_task(demo_core, actor, project_id)
    unit = actor("school_unit")
    outcome: list = []
    started = threading.Event()

    def upload():
        started.set()
        try:
            outcome.append(demo_core.attachments.upload(unit, task.id, "late.pdf", PDF))
        except Exception as exc:    # checked below, in the test's thread
            outcome.append(exc)

    uploader = threading.Thread(target=upload)

    def start_uploader():
        uploader.start()
        started.wait(10)
        wait_until_done_or_blocked(demo_core, uploader)
    between(start_uploader)

    demo_core.cases.complete(unit, task.id, demo.sample_goals("Campus safety upgrade"))
    uploader.join(60)

    assert not uploader.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], Conflict), outcome
    with demo_core.db.reading() as s:
        assert attachments.submitted_files(s, task.id) == []
        event = s.scalars(select(AuditEvent).where(AuditEvent.case_id == task.case_id,
                                                   AuditEvent.action == "completed")).one()
    assert attachments.FILES_KEY not in event.data


def test_a_file_uploaded_while_the_completion_waits_for_the_task_is_part_of_what_it_submits(
        demo_core, actor, project_id, monkeypatch, postgresql_only):
    """PostgreSQL: an upload holds the task's row when its completion comes; the completion
    locks the case's row, waits for the task's and then records the file that upload committed.
    (Whether the task has files must be read after the lock is granted: a statement that waited
    for a row still sees other tables as they were when it began. And the case is locked before
    the task, as deliver() and the timers lock them, or two of them could deadlock.)"""
    task = goals_task(demo_core, actor, project_id)
    unit = actor("school_unit")
    locked, go = threading.Event(), threading.Event()
    lock_task = attachments.attachment_queries.lock_task

    def lock_then_pause(s, task_id):
        lock_task(s, task_id)
        if threading.current_thread().name == "uploader":
            locked.set()
            assert go.wait(30)
    monkeypatch.setattr(attachments.attachment_queries, "lock_task", lock_then_pause)

    uploaded: list = []
    uploader = threading.Thread(name="uploader", target=lambda: uploaded.append(
        demo_core.attachments.upload(unit, task.id, "evidence.pdf", PDF)))
    uploader.start()
    assert locked.wait(30)
    results: list = []
    completer = threading.Thread(target=lambda: results.append(
        demo_core.cases.complete(unit, task.id, demo.sample_goals("Campus safety upgrade"))))
    completer.start()
    wait_until_done_or_blocked(demo_core, completer)
    assert completer.is_alive()     # waiting for the task's row...
    assert row_is_locked(demo_core, Case, task.case_id)     # ...with its case's locked first
    go.set()
    uploader.join(60)
    completer.join(60)

    assert len(uploaded) == 1 and len(results) == 1
    with demo_core.db.reading() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.case_id == task.case_id,
                                                   AuditEvent.action == "completed")).one()
    assert [f["name"] for f in event.data[attachments.FILES_KEY]] == ["evidence.pdf"]
