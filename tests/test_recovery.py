"""A case whose diagram fails after a user's submission: the submission is kept, the case is
errored with the message, and an administrator corrects the data or the version and retries."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import recovery
from engine.demo import sample_goals
from engine.deployment import ModelFiles
from engine.errors import Conflict, InvalidData, PermissionDenied, WorkflowError
from engine.processes import PROCESSES_DIR
from storage.models import AuditEvent, HumanTask

GOOD_POST = b"returned_from = 'competent_check' if decision == 'return' else None"
# Fails unless the step's data has a number `factor` (the 'data fix' an administrator can make).
BAD_POST = b"returned_from = None\nratio = 10 / factor"


def variant(old: bytes, new: bytes) -> ModelFiles:
    model = ModelFiles.from_folder(PROCESSES_DIR / "goal_review")
    assert old in model.files["goal_review.bpmn"]
    model.files["goal_review.bpmn"] = model.files["goal_review.bpmn"].replace(old, new)
    return model


@pytest.fixture
def errored(demo_core, actor, project_id, api):
    """A goal review on a version whose competent-check post-script fails, submitted by the bureau."""
    row, _ = demo_core.processes.deploy(variant(GOOD_POST, BAD_POST))
    case = demo_core.cases.start(actor("school_unit"), "goal_review", project_id("EDU-2027-001"))
    task = demo_core.reads.case(actor("supervisor"), case.id)["tasks"][0]
    demo_core.cases.complete(actor("school_unit"), task["id"], sample_goals("Campus safety upgrade"))
    check = demo_core.reads.case(actor("supervisor"), case.id)["tasks"][0]
    answer = api("edu_bureau").post(f"/api/v1/tasks/{check['id']}/complete",
                                    json={"data": {"decision": "approve", "comment": "Complete."}})
    assert answer.status_code == 200, answer.get_json()
    return {"case": case.id, "task": check["id"], "version": row, "answer": answer.get_json()}


def test_the_submission_is_kept_and_the_case_shows_as_errored(demo_core, actor, errored, api, pages):
    answer = errored["answer"]
    assert answer["case"]["status"] == "error" and "factor" in answer["case"]["error"]
    assert answer["next_tasks"] == []
    case = api("supervisor").get(f"/api/v1/cases/{errored['case']}").get_json()
    assert (case["status"], case["current_steps"]) == ("error", "Stopped at: Competent department check")
    # The bureau's opinion is in the timeline, with the error after it.
    actions = [(e["action"], e["task"]) for e in case["history"]][-2:]
    assert actions == [("completed", "Competent department check"), ("error", None)]
    assert case["history"][-2]["data"] == {"decision": "approve", "comment": "Complete."}
    with demo_core.db.reading() as s:
        assert s.get(HumanTask, errored["task"]).status == "completed"
    # Errored cases are found by their status.
    listed = api("supervisor").get("/api/v1/cases?status=error").get_json()
    assert [c["id"] for c in listed["items"]] == [errored["case"]]
    # The case page says so; only an administrator gets the retry form.
    html = pages("admin").get(f"/cases/{errored['case']}").get_data(as_text=True)
    assert "The process stopped with an error" in html and "Retry the failed step" in html
    html = pages("supervisor").get(f"/cases/{errored['case']}").get_data(as_text=True)
    assert "The process stopped with an error" in html and "Retry the failed step" not in html


def test_a_retry_with_corrected_data_runs_the_step_and_the_case_goes_on(demo_core, errored, api):
    refused = api("perf1").post(f"/api/v1/cases/{errored['case']}/retry", json={"data": {"factor": 2}})
    assert refused.status_code == 403
    again = api("admin").post(f"/api/v1/cases/{errored['case']}/retry", json={"data": {"factor": 0}})
    assert again.status_code == 422 and "division by zero" in again.get_json()["error"]
    assert api("admin").get(f"/api/v1/cases/{errored['case']}").get_json()["status"] == "error"
    fixed = api("admin").post(f"/api/v1/cases/{errored['case']}/retry", json={"data": {"factor": 2}})
    assert fixed.status_code == 200, fixed.get_json()
    case = fixed.get_json()
    assert (case["status"], case["error"]) == ("running", None)
    assert [t["step"] for t in case["tasks"]] == ["preliminary_review"]
    assert case["history"][-1]["action"] == "retried" and case["history"][-1]["data"]["data"] == {"factor": 2}
    # Nothing left to retry now.
    assert api("admin").post(f"/api/v1/cases/{errored['case']}/retry", json={}).status_code == 409


@pytest.mark.parametrize("version", ["latest", "²", "12345678901"])
def test_a_retry_with_a_version_that_is_no_version_id_is_refused(demo_core, errored, api, version):
    refused = api("admin").post(f"/api/v1/cases/{errored['case']}/retry", json={"version": version})
    assert refused.status_code == 400, refused.get_json()
    assert refused.get_json()["details"] == {"version": "A version id."}
    assert api("admin").get(f"/api/v1/cases/{errored['case']}").get_json()["status"] == "error"


def test_a_retry_on_a_corrected_version_moves_the_case(demo_core, errored, api, pages):
    fixed_version, created = demo_core.processes.deploy(variant(GOOD_POST, GOOD_POST + b"\nfixed = True"))
    assert created
    page = pages("admin")
    answer = page.post_form(f"/cases/{errored['case']}/retry", {"data": "", "version": str(fixed_version.id)},
                            page_path=f"/cases/{errored['case']}")
    assert answer.status_code == 302
    case = api("admin").get(f"/api/v1/cases/{errored['case']}").get_json()
    assert (case["status"], case["version"]) == ("running", fixed_version.version)
    assert case["data"]["fixed"] is True
    assert [t["step"] for t in case["tasks"]] == ["preliminary_review"]


def test_bad_retries_are_refused_clearly(demo_core, errored, actor, api):
    admin = actor("admin")
    with pytest.raises(InvalidData):
        recovery.retry(demo_core.cases, admin, errored["case"], {"_hidden": 1})
    ex_ante = next(v for v in demo_core.processes.latest() if v.key == "ex_ante_evaluation")
    with pytest.raises(InvalidData) as err:
        recovery.retry(demo_core.cases, admin, errored["case"], {}, ex_ante.id)
    assert "belongs to 'ex_ante_evaluation'" in err.value.message
    with pytest.raises(PermissionDenied):
        recovery.retry(demo_core.cases, actor("edu_bureau"), errored["case"], {"factor": 1})
    assert api("admin").post("/api/v1/cases/999999/retry", json={}).status_code == 404
    with pytest.raises(InvalidData):
        recovery.parse_patch("[1, 2]")
    with pytest.raises(InvalidData):
        recovery.parse_patch("{not json")


def test_a_running_case_has_nothing_to_retry(demo_core, actor, project_id):
    case = demo_core.cases.start(actor("school_unit"), "goal_review", project_id("EDU-2027-002"))
    with pytest.raises(Conflict):
        recovery.retry(demo_core.cases, actor("admin"), case.id, {})


def test_a_value_the_diagram_refuses_is_a_422_and_saves_nothing(demo_core, actor, project_id):
    """A domain calculation that rejects the submitted values (ValueError) refuses the submission
    instead: the user can correct it (here the key evaluation's framework weights)."""
    case = demo_core.cases.start(actor("perf1"), "key_evaluation", project_id("EDU-2027-002"))
    task = demo_core.reads.case(actor("supervisor"), case.id)["tasks"][0]
    from test_key_evaluation import FRAMEWORK, plan
    bad = plan(framework=[{**row, "weight": 10} for row in FRAMEWORK])
    with pytest.raises(WorkflowError) as err:
        demo_core.cases.complete(actor("perf1"), task["id"], bad)
    assert err.value.status == 422 and "add up to 40" in err.value.message
    assert demo_core.reads.case(actor("supervisor"), case.id)["status"] == "running"
    with demo_core.db.reading() as s:
        assert s.get(HumanTask, task["id"]).status == "open"
        assert not s.scalars(select(AuditEvent).where(AuditEvent.action == "error")).first()
