"""Errored cases: an administrator corrects the data of the failed step, or moves the case
to a corrected version of its process, and runs the failed step again.

A case errors when a script or condition of its diagram fails after a user completed a task
(the user's submission is kept; see CaseService.complete). Its failed task is in SpiffWorkflow's
ERROR state inside the saved workflow, so a retry sets it ready again and runs from there.
"""
from __future__ import annotations

import json

from SpiffWorkflow.util.task import TaskState

from storage import queries
from storage.models import Case, ProcessVersion

from .access import Actor
from .cases import CaseService, _check_start_data, _jsonable
from .errors import Conflict, InvalidData, NotFound, PermissionDenied
from .serializer import load_state


def _load_on(cases: CaseService, case: Case, version_id: int | None):
    """The case's workflow, on its own version or on another version of the same process."""
    if version_id is None or version_id == case.process_version_id:
        loaded = cases.specs.get(case.process_version_id)
        return loaded, load_state(case.state, loaded.model.spec, loaded.model.subprocess_specs)
    loaded = cases.specs.get(version_id)
    if loaded.key != case.process_key:
        raise InvalidData(f"version {version_id} belongs to '{loaded.key}', not to '{case.process_key}'",
                          {"version": "A version of the case's own process."})
    try:
        workflow = load_state(case.state, loaded.model.spec, loaded.model.subprocess_specs)
    except Exception as exc:    # a step the case has been through no longer exists, etc.
        raise InvalidData(f"the case cannot move to version {loaded.version}: its state does not fit that "
                          f"diagram ({type(exc).__name__}: {exc})", {"version": "Not compatible."}) from None
    return loaded, workflow


def retry(cases: CaseService, actor: Actor, case_id: int, data: dict | None = None,
          version_id: int | None = None) -> Case:
    """Run the failed step of an errored case again, after merging `data` into that step's data
    and, if given, moving the case to another deployed version of its process. A retry that
    fails again changes nothing."""
    if not actor.is_admin:
        raise PermissionDenied("only an administrator may retry an errored case")
    data = dict(data or {})
    _check_start_data(data)
    now = cases.clock.now()
    with cases.db.transaction() as s:
        case = queries.get_for_update(s, Case, case_id)
        if case is None:
            raise NotFound(f"case {case_id} does not exist")
        if case.status != "error":
            raise Conflict(f"case {case.id} is {case.status}, not errored; there is nothing to retry")
        if version_id is not None and queries.get_by_id(s, ProcessVersion, version_id) is None:
            raise NotFound(f"process version {version_id} does not exist")
        expected_version = case.lock_version
        loaded, workflow = _load_on(cases, case, version_id)
        failed = workflow.get_tasks(state=TaskState.ERROR)
        if not failed:
            raise Conflict(f"case {case.id} has no failed step to run again")
        recorder = cases._attach_engine(workflow)
        for task in failed:
            task.data.update(data)
            task._set_state(TaskState.READY)

        def run_again():
            # A failed user task (its post-script) runs with what its user submitted; engine
            # tasks run when the engine steps.
            for task in failed:
                if task.task_spec.manual:
                    task.run()

        cases._run_engine(workflow, run_again)      # raises: the transaction rolls back
        cases._audit(s, case.id, actor.id, "retried", now,
                     data=_jsonable({"data": data, "version": loaded.version,
                                     "steps": [t.task_spec.bpmn_name or t.task_spec.name for t in failed]}))
        cases._apply_effects(s, case, recorder, actor.id, now)
        cases._deliver_standing_messages(s, case, workflow, recorder, actor.id, now)
        cases._sync(s, case, workflow, loaded, now, actor.id)
        summary = cases._summary(workflow, now)
        summary["process_version_id"] = loaded.id
        if not queries.save_case_state(s, case.id, expected_version, **summary):
            raise Conflict("the case was changed by someone else meanwhile; reload and try again")
        cases._end_event_audit(s, case, workflow, now)
        s.expire(case)
        return case


def parse_patch(text: str | None) -> dict:
    """The data correction an administrator typed on the case page (a JSON object)."""
    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidData(f"the data correction is not valid JSON: {exc}", {"data": "A JSON object."}) from None
    if not isinstance(value, dict):
        raise InvalidData("the data correction must be a JSON object", {"data": "A JSON object."})
    return value

