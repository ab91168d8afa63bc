"""Cases: starting them, and completing, claiming and releasing their human tasks.

The hot path of one completion, in two parts. Prepare: check the user may act on the open task,
load the case row, rebuild the workflow from the cached spec of its version plus the saved
state, validate and set the form data, run the task and the engine steps, dump the state
without the spec. Save: close the task, bring the inbox rows, the case's summary columns and
the audit log up to date, save the case with an optimistic lock, and commit. On SQLite the
preparation runs in a read session, before the writer's turn, and the save checks nothing
changed in between (see CaseService.complete); on PostgreSQL both run in one transaction with
the case's and the task's rows locked.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from storage import attachment_queries, queries
from storage.db import Database
from storage.models import AuditEvent, Case, HumanTask, Project

from . import attachments, deadlines, links, notifications
from .access import Actor
from .clock import Clock
from .effects import EffectRecorder
from .errors import Conflict, InvalidData, NotFound, PerfBudgetError, PermissionDenied, WorkflowError
from .forms import MAX_STRING, validate
from .roles import ROLES, role_for_lane, scoped_org_id
from .scripting import RestrictedEnvironment
from .serializer import dump_state, load_state, task_in_workflow
from .settings import SettingsService
from .specs import LoadedVersion, SpecCache
from .timers import boundary_timer_due, due_in, engine_clock, next_due, waiting_timers

EFFECT_HANDLERS = links.EFFECT_HANDLERS
START_GUARDS = links.START_GUARDS
# process key -> prepare(session, project, data, title) -> (data, title): what a case starts from.
START_DATA = {key: prepare for module in links.MODULES
              for key, prepare in getattr(module, "START_DATA", {}).items()}
MAX_START_DATA_BYTES = 1_000_000


@dataclass
class CompletionResult:
    case: Case
    completed: HumanTask
    next_tasks: list[HumanTask] = field(default_factory=list)
    # The case's open inbox rows after the completion (next_tasks among them), oldest first.
    open_tasks: list[HumanTask] = field(default_factory=list)
    # What complete(answer=...) built inside the completion's transaction.
    answer: dict | None = None
    # Who completed the task (the answer names them without reading their user row).
    actor: Actor | None = None


_AUDIT_INSERT = AuditEvent.__table__.insert()

# On SQLite: how often a completion is prepared again when its case changed before it could be
# saved, before it is prepared and saved in one write transaction.
OPTIMISTIC_TRIES = 3


class _Stale(Exception):
    """What a completion was prepared from changed before it was saved."""


@dataclass
class _CompletionPlan:
    """A completion checked and run through the engine, not yet written."""
    task: HumanTask
    case: Case
    loaded: LoadedVersion
    workflow: BpmnWorkflow
    recorder: EffectRecorder
    data: dict              # what the task submits, its files included
    files: list[dict]       # the task's files as they were read
    version: int            # the case's lock version the state was loaded at
    assignee_id: int | None
    others_open: bool       # whether the case had open tasks besides this one, as read
    failure: WorkflowError | None
    summary: dict           # the case's columns to save (state included)

def project_facts(project: Project) -> dict:
    """What a diagram may read about the case's project (as `project[...]`)."""
    return {
        "id": project.id, "code": project.code, "name": project.name, "year": project.year,
        "is_key": bool(project.is_key), "is_new": bool(project.is_new),
        "amount": Decimal(project.amount or 0), "category": project.category,
        "unit": project.unit.name, "competent": project.competent.name, "funding": project.funding.name,
    }


def user_task_form_files(task_spec) -> tuple[str | None, str | None]:
    props = (getattr(task_spec, "extensions", None) or {}).get("properties", {})
    return props.get("formJsonSchemaFilename"), props.get("formUiSchemaFilename")


def _field(data: dict, path: str | None):
    """A value of the task data by dotted path ('problem.deadline'), or None."""
    value = data
    for part in (path or "").split("."):
        if not part or not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def task_subject(task) -> str | None:
    """What one instance of a repeated task is about (the `subjectField` property names it):
    several 'Rectify the problem' tasks of one case differ by their problem."""
    props = (getattr(task.task_spec, "extensions", None) or {}).get("properties", {})
    value = _field(task.data, props.get("subjectField"))
    return " ".join(str(value).split())[:120] if value not in (None, "") else None


def task_due_at(task, created: datetime | None = None) -> datetime | None:
    """When the task is due, the earliest of: the end of the day the data field its
    `dueDateField` property names (a rectification deadline is a date); its `dueIn` property,
    an ISO duration ("P10D") from its creation; the fire time of a timer boundary event on it."""
    props = (getattr(task.task_spec, "extensions", None) or {}).get("properties", {})
    value = _field(task.data, props.get("dueDateField"))
    try:
        day = date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        day = None
    moments = [datetime.combine(day, time(23, 59, 59)) if day else None,
               due_in(props.get("dueIn"), created) if created and props.get("dueIn") else None,
               boundary_timer_due(task)]
    return min((m for m in moments if m is not None), default=None)


def _closed_message(task: HumanTask) -> str:
    who = task.completed_by.display_name if task.completed_by else "the system"
    when = task.completed_at.strftime("%Y-%m-%d %H:%M:%S") if task.completed_at else "earlier"
    verb = "completed" if task.status == "completed" else "closed"
    return f"This task was already {verb} by {who} at {when}. Reload to see the case as it is now."


class CaseService:
    def __init__(self, db: Database, specs: SpecCache, clock: Clock, settings: SettingsService):
        self.db = db
        self.specs = specs
        self.clock = clock
        self.settings = settings

    # ---- workflow plumbing ---------------------------------------------------------------

    def _calculations(self) -> dict:
        """Pure functions diagrams call for a value; settings are read only if one is called."""
        cache: dict = {}

        def settings() -> dict:
            if "values" not in cache:
                cache["values"] = self.settings.values()
            return cache["values"]

        return links.calculations(links.CalculationContext(settings=settings, now=self.clock.now()))

    def _attach_engine(self, workflow: BpmnWorkflow) -> EffectRecorder:
        recorder = EffectRecorder(tuple(EFFECT_HANDLERS))
        environment = RestrictedEnvironment({**recorder.functions(), **self._calculations()})
        recorder.environment = environment
        from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
        workflow.script_engine = PythonScriptEngine(environment=environment)
        return recorder

    def _run_engine(self, workflow: BpmnWorkflow, action) -> None:
        try:
            with engine_clock(self.clock):      # timers are entered and checked on the app's clock
                action()
                workflow.do_engine_steps()
        except SpiffWorkflowException as exc:
            # A domain calculation that refuses the submitted data (a shortfall without its
            # cause) raises InvalidData with per-field messages: report it as the form error it is.
            if isinstance(exc.__context__, InvalidData):
                raise exc.__context__ from None
            raise WorkflowError(f"The process could not continue: {exc}",
                                {"step": getattr(getattr(exc, "task_spec", None), "bpmn_name", None)},
                                refuses_input=isinstance(exc.__context__, ValueError)) from None
        except Exception as exc:  # a diagram's expression can fail in any way; never a 500
            raise WorkflowError(f"The process could not continue: {type(exc).__name__}: {exc}") from None

    def _apply_effects(self, s: Session, case: Case, recorder: EffectRecorder, actor_id, now) -> None:
        for effect in recorder.pending:
            EFFECT_HANDLERS[effect.name](s, case, effect.data, actor_id, now)
        recorder.pending.clear()

    def _sync(self, s: Session, case: Case, workflow: BpmnWorkflow, loaded: LoadedVersion,
              now: datetime, actor_id: int | None, completed_data: dict | None = None,
              still_open: list[HumanTask] | None = None, new_case: bool = False,
              others_open: bool | None = None) -> list[HumanTask]:
        """Bring inbox rows and summary columns in line with the workflow; return new tasks.
        `still_open` (if given) receives the rows that were open and stay open. A case created
        in this transaction (`new_case`) has no inbox rows yet: none are looked for; nor are
        they when the caller knows there are none besides a task it has just closed
        (`others_open` False)."""
        ready = workflow.get_tasks(state=TaskState.READY, manual=True)
        if others_open is None:
            others_open = not new_case and queries.has_open_tasks(s, case.id)
        open_rows = ({} if not others_open else
                     {row.spiff_task_id: row for row in queries.open_tasks_of_case(s, case.id)})
        ready_ids = {str(t.id) for t in ready}
        for spiff_id, row in open_rows.items():
            if spiff_id not in ready_ids:   # e.g. cancelled by a boundary event
                queries.mark_task_done(s, row.id, "cancelled", now, None)
            elif still_open is not None:
                still_open.append(row)
        created = []
        for task in ready:
            if str(task.id) in open_rows:
                continue
            spec = task.task_spec
            role = role_for_lane(getattr(spec, "lane", None))
            name = spec.bpmn_name or spec.name
            subject = task_subject(task)
            due_at = task_due_at(task, now)
            alerts = deadlines.plan(spec, role or "", due_at, now)
            row = HumanTask(
                case_id=case.id, spiff_task_id=str(task.id), step=spec.name, name=name,
                title=(f"{name} ({subject}): {case.title}" if subject else f"{name}: {case.title}")[:400],
                role=role or "", due_at=due_at, alerts=alerts or None, alert_at=deadlines.first_at(alerts),
                org_id=scoped_org_id(role, case.project) if role and case.project else None,
                # A task in no lane stays with whoever started the case.
                assignee_id=None if role else case.started_by_id,
                status="open", created_at=now)
            created.append(queries.add_loaded(s, row))
        # In this transaction: a change that fails or conflicts leaves no notification behind.
        notifications.for_new_tasks(s, case, created, now, actor_id, completed_data)
        return created

    def _summary(self, workflow: BpmnWorkflow, now: datetime) -> dict:
        ready = workflow.get_tasks(state=TaskState.READY, manual=True)
        if not ready:
            # Nobody's turn: the case waits for an event (the spot-check draw, a timer, a timer start
            # event holding the whole case until its date); say which.
            ready = [t for t in workflow.get_tasks(state=TaskState.WAITING)
                     if type(t.task_spec).__name__ in ("IntermediateCatchEvent", "ReceiveTask", "StartEvent")
                     and t.task_spec.bpmn_name]
        steps = ", ".join(dict.fromkeys(t.task_spec.bpmn_name or t.task_spec.name for t in ready))
        done = workflow.is_completed()
        return {"status": "completed" if done else "running", "current_steps": steps[:500],
                "completed_at": now if done else None, "updated_at": now, "error_message": None,
                "next_due_at": None if done else next_due(workflow),
                "state": dump_state(workflow)}

    def _audit(self, s: Session, case_id: int | None, actor_id: int | None, action: str, now: datetime,
               task: HumanTask | None = None, data: dict | None = None) -> None:
        # A Core INSERT instead of s.add(): the row is never read back in this transaction, and
        # the unit of work's bookkeeping for it cost more than the INSERT. The flush first keeps
        # rows still pending in the session (an AuditEvent added elsewhere) in their order.
        s.flush()
        s.connection().execute(_AUDIT_INSERT, {
            "case_id": case_id, "at": now, "actor_id": actor_id, "action": action,
            "human_task_id": task.id if task else None, "task_name": task.name if task else None,
            "step": task.step if task else None, "data": data})

    def _end_event_audit(self, s, case, workflow, now) -> None:
        if workflow.is_completed():
            end = workflow.last_task
            name = None
            # The case's own end event, not one of a called process (a rectification's "Rectified").
            for task in workflow.get_tasks(state=TaskState.COMPLETED, skip_subprocesses=True):
                if type(task.task_spec).__name__ == "EndEvent" and task.task_spec.bpmn_name:
                    name = task.task_spec.bpmn_name
            self._audit(s, case.id, None, "finished", now, data={"end": name or (end.task_spec.bpmn_name if end else None)})

    # ---- starting ------------------------------------------------------------------------

    def start(self, actor: Actor, process_key: str, project_id: int | None, data: dict | None = None,
              answer=None, *, project_ref: int | str | None = None):
        """Start a case of the latest version of a process for a project; return the new case.
        With `answer(session, case, workflow, tasks) -> dict` (tasks: the case's open inbox
        rows, all new), return what it builds instead, inside the start's transaction from the
        rows and the workflow in hand (what the starter is shown is then exactly what was
        committed, without a second session reading it all again and loading the saved state
        back). `project_ref` (instead of project_id): the project by id or code as a client
        gave it, refused first if there is no such project or the actor may not see it."""
        data = dict(data or {})
        now = self.clock.now()
        with self.db.transaction() as s:
            project = self._project_to_start(s, actor, project_id, project_ref)
            _check_start_data(data)
            version = queries.latest_version(s, process_key)
            if version is None:
                raise NotFound(f"no process '{process_key}' is deployed")
            if not actor.may_see_project(project):
                raise PermissionDenied("you may not start cases for this project")
            # The project's three organisations in one SELECT instead of a lazy load each
            # (project_facts and the first task's organisation read them); held while used.
            orgs = queries.orgs_by_ids(s, {project.unit_id, project.competent_id, project.funding_id})
            loaded = self.specs.get(version.id)
            start_role = loaded.model.start_role
            if start_role and not actor.may_act_for_project(start_role, project) and not actor.is_admin:
                raise PermissionDenied(f"only the project's {ROLES[start_role].lower()} may start "
                                       f"'{loaded.model.name}'")
            guard = START_GUARDS.get(process_key)
            if guard:
                guard(s, project, self.settings.values(s))
            case, workflow, tasks = self._open_case(s, actor, version, loaded, project, data, now)
            result = answer(s, case, workflow, tasks) if answer is not None else case
            del orgs
            return result

    @staticmethod
    def _project_to_start(s: Session, actor: Actor, project_id: int | None, project_ref: int | str | None) -> Project:
        """The project a start is for, by id or (project_ref, from a client) by id or code. Its
        row stays locked to the end of the transaction, so two starts for one project run one
        after the other and the start guard sees the first case."""
        if project_ref is not None:
            project = queries.project_for_update_by_ref(s, project_ref)
            if project is None:
                raise NotFound(f"project {project_ref} does not exist")
            if not actor.may_see_project(project):
                raise PermissionDenied("you may not see this project")
            return project
        project = queries.get_for_update(s, Project, project_id) if project_id is not None else None
        if project_id is not None and project is None:
            raise NotFound(f"project {project_id} does not exist")
        if project is None:
            raise InvalidData("a case needs a project", {"project": "This field is required."})
        return project

    def _open_case(self, s: Session, actor: Actor, version, loaded: LoadedVersion, project: Project,
                   data: dict, now: datetime, campaign_id: int | None = None
                   ) -> tuple[Case, BpmnWorkflow, list[HumanTask]]:
        """Create the case row and run the new workflow to its first waiting steps; return the
        case, its workflow and its inbox rows (all of them new)."""
        process_key = version.key
        title = f"{project.name} ({project.code})"
        prepare = START_DATA.get(process_key)
        if prepare:
            data, title = prepare(s, project, data, title)
        data["project"] = project_facts(project)
        # The engine runs first, so the case row is written once, with its state: it needs no
        # row to run (what its scripts ask of the domain is recorded, and applied below).
        workflow = BpmnWorkflow(loaded.model.spec, loaded.model.subprocess_specs)
        recorder = self._attach_engine(workflow)
        workflow.task_tree.data.update(data)
        self._run_engine(workflow, lambda: None)
        case = Case(process_version_id=version.id, process_key=version.key, project_id=project.id,
                    org_id=project.unit_id, year=project.year, campaign_id=campaign_id,
                    title=title[:300], lock_version=1, started_by_id=actor.id, started_at=now,
                    **self._summary(workflow, now))
        queries.add_loaded(s, case)
        self._audit(s, case.id, actor.id, "started", now, data=_jsonable(data))
        self._apply_effects(s, case, recorder, actor.id, now)
        if self._deliver_standing_messages(s, case, workflow, recorder, actor.id, now):
            queries.set_case_columns(s, case.id, **self._summary(workflow, now))
        tasks = self._sync(s, case, workflow, loaded, now, actor.id, new_case=True)
        self._end_event_audit(s, case, workflow, now)
        s.flush()
        return case, workflow, tasks

    def open_campaign_cases(self, s: Session, actor: Actor, process_key: str, campaign_id: int,
                            projects: list[Project], data_for) -> list[Case]:
        """Open one case per project for a campaign, in the caller's transaction: a campaign
        starts whole or not at all. The per-process start guard is the campaign's own check."""
        version = queries.latest_version(s, process_key)
        if version is None:
            raise NotFound(f"no process '{process_key}' is deployed")
        loaded = self.specs.get(version.id)
        now = self.clock.now()
        return [self._open_case(s, actor, version, loaded, project, dict(data_for(project)), now, campaign_id)[0]
                for project in projects]

    # ---- messages ------------------------------------------------------------------------

    def _catch(self, workflow: BpmnWorkflow, name: str, payload: dict) -> bool:
        """Hand a message to a workflow that waits for it; False if it does not wait for it."""
        from SpiffWorkflow.bpmn.util.event import BpmnEvent
        from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition
        waiting = [e for e in workflow.waiting_events()
                   if e.name == name and "Message" in (e.event_type or "")]
        if not waiting:
            return False
        self._run_engine(workflow, lambda: workflow.catch(BpmnEvent(MessageEventDefinition(name), payload)))
        return True

    def _deliver_standing_messages(self, s: Session, case: Case, workflow: BpmnWorkflow,
                                   recorder: EffectRecorder, actor_id, now: datetime) -> bool:
        """A case that reaches a message event after the message was sent (a unit submitting its
        self-assessment after the spot-check draw) receives it at once. True if it received one."""
        delivered = False
        for name, payload in links.standing_messages(s, case):
            if self._catch(workflow, name, payload):
                self._audit(s, case.id, None, "message", now, data={"message": name, **_jsonable(payload)})
                self._apply_effects(s, case, recorder, actor_id, now)
                delivered = True
        return delivered

    def deliver(self, s: Session, case_id: int, name: str, payload: dict, actor_id: int | None) -> bool:
        """Send a message to one case in the caller's transaction; False if it does not wait for
        it now (it gets it on arrival through the standing messages)."""
        now = self.clock.now()
        case = queries.get_for_update(s, Case, case_id)
        if case is None or case.status != "running":
            return False
        expected_version = case.lock_version
        loaded = self.specs.get(case.process_version_id)
        workflow = load_state(case.state, loaded.model.spec, loaded.model.subprocess_specs)
        recorder = self._attach_engine(workflow)
        if not self._catch(workflow, name, payload):
            return False
        self._audit(s, case.id, actor_id, "message", now, data={"message": name, **_jsonable(payload)})
        self._apply_effects(s, case, recorder, actor_id, now)
        self._sync(s, case, workflow, loaded, now, actor_id)
        summary = self._summary(workflow, now)
        if not queries.save_case_state(s, case.id, expected_version, **summary):
            raise Conflict(f"case {case.id} was changed by someone else meanwhile; try again")
        self._end_event_audit(s, case, workflow, now)
        s.expire(case)
        return True

    # ---- timers --------------------------------------------------------------------------

    def run_due(self, case_id: int) -> list[tuple[str, str]] | None:
        """Fire the due timers of one case, as the timer worker does: the timers that fired, or
        None if the case is not due any more or another worker has it. The claim and the
        optimistic save make a timer fire once, whatever the number of workers."""
        from storage import timer_queries
        now = self.clock.now()
        with self.db.transaction() as s:
            case = timer_queries.claim_due_case(s, case_id, now)
            if case is None:
                return None
            expected_version = case.lock_version
            loaded = self.specs.get(case.process_version_id)
            workflow = load_state(case.state, loaded.model.spec, loaded.model.subprocess_specs)
            recorder = self._attach_engine(workflow)
            before = waiting_timers(workflow)
            failure = None
            try:
                self._run_engine(workflow, workflow.refresh_timers)
            except WorkflowError as exc:    # a script after the timer failed: stop the case, as complete() does
                failure = exc
            after = waiting_timers(workflow)
            fired = [t for t in before if t not in after]
            if fired:
                self._audit(s, case.id, None, "timer", now,
                            data={"timers": [{"name": name, "due": due} for name, due in fired]})
            self._apply_effects(s, case, recorder, None, now)
            if failure is None:
                self._deliver_standing_messages(s, case, workflow, recorder, None, now)
            self._sync(s, case, workflow, loaded, now, None)
            summary = self._summary(workflow, now)
            if failure is not None:
                summary.update(errored(failure))
                self._audit(s, case.id, None, "error", now, data={"message": failure.message, **failure.details})
            if not queries.save_case_state(s, case.id, expected_version, **summary):
                raise Conflict(f"case {case.id} was changed by someone else meanwhile; its timers run on the next pass")
            self._end_event_audit(s, case, workflow, now)
            return fired

    # ---- tasks ---------------------------------------------------------------------------

    def _may_see_case(self, s: Session, actor: Actor, case_id: int) -> bool:
        return actor.sees_all_cases or queries.case_visible(
            s, case_id, queries.case_visibility(actor.grants, actor.sees_all_cases, actor.id))

    def _closed(self, s: Session, actor: Actor, task: HumanTask) -> PerfBudgetError:
        # Who closed a task is only told to those who may see its case.
        if not self._may_see_case(s, actor, task.case_id):
            return PermissionDenied("this task is not yours")
        return Conflict(_closed_message(task), {"task": task.id, "status": task.status})

    def _open_task_for(self, s: Session, actor: Actor, task_id: int) -> HumanTask:
        """The open task `task_id` if `actor` may work on it; NotFound, Conflict or
        PermissionDenied otherwise."""
        return self._checked_open_task(s, actor, task_id, queries.get_by_id(s, HumanTask, task_id))

    def _checked_open_task(self, s: Session, actor: Actor, task_id: int, task: HumanTask | None) -> HumanTask:
        """`task` (task_id as read, None if there is none) if it is open and `actor` may work
        on it; NotFound, Conflict or PermissionDenied otherwise."""
        if task is None:
            raise NotFound(f"task {task_id} does not exist")
        if task.status != "open":
            raise self._closed(s, actor, task)
        if not actor.may_work_on(task):
            if task.assignee_id is not None and task.assignee_id != actor.id:
                raise PermissionDenied(f"this task is assigned to {task.assignee.display_name}")
            raise PermissionDenied("this task is not yours: it belongs to "
                                   f"{ROLES.get(task.role, 'another role').lower()}"
                                   f"{' of ' + task.org.name if task.org else ''}")
        return task

    def complete(self, actor: Actor, task_id: int, data: dict | None, answer=None) -> CompletionResult:
        """Complete an open task with its form data. `answer(session, result) -> dict`, if
        given, runs at the end of the transaction, so what the caller shows is built from the
        rows in hand (and is exactly what was committed) instead of being read again.

        On SQLite, whose writers take turns for the whole database, the engine runs before the
        write transaction, from what a read session saw; the write transaction then checks that
        the case, the task and its files are still as seen, and the completion is prepared again
        if they are not. The turn is then held for the writes alone, so two server processes
        complete tasks of different cases side by side instead of one after the other. On
        PostgreSQL the case's and the task's rows are locked first and the whole completion
        runs in one transaction: nothing can change in between, and other cases are not held up."""
        if self.db.one_writer_at_a_time:
            for _ in range(OPTIMISTIC_TRIES):
                now = self.clock.now()
                with self.db.reading() as rs:
                    plan = self._prepare_completion(rs, actor, task_id, data, now)
                try:
                    with self.db.transaction() as s:
                        return self._save_completion(s, actor, plan, now, answer)
                except _Stale:
                    continue    # prepare it again from what is there now
            # The case kept changing between reading and saving (its parallel steps being
            # completed at the same moment): prepare and save in one turn.
        now = self.clock.now()
        with self.db.transaction() as s:
            # The case first, then the task: the order deliver() and the timers lock them in.
            queries.lock_task_and_case(s, task_id)
            plan = self._prepare_completion(s, actor, task_id, data, now)
            try:
                return self._save_completion(s, actor, plan, now, answer, locked=True)
            except _Stale:      # not expected with the rows locked; never a 500 if it happens
                raise Conflict("the case was changed by someone else while you worked; reload and try again") from None

    def _prepare_completion(self, s: Session, actor: Actor, task_id: int, data: dict | None,
                            now: datetime) -> _CompletionPlan:
        """Check the task may be completed with this data and run the engine on it, writing
        nothing: what the write transaction then saves. Either in a read session before that
        transaction (SQLite), or in it once the case's and the task's rows are locked
        (PostgreSQL: uploads and claims wait for the task's)."""
        read = queries.task_for_completion(s, task_id)
        task = self._checked_open_task(s, actor, task_id, read.task if read is not None else None)
        case = task.case
        if case.status != "running":
            raise Conflict(f"case {case.id} is {case.status}; its tasks cannot be completed")
        loaded = self.specs.get(case.process_version_id)
        workflow = load_state(case.state, loaded.model.spec, loaded.model.subprocess_specs)
        recorder = self._attach_engine(workflow)
        spiff_task = task_in_workflow(workflow, task.spiff_task_id)
        if spiff_task is None or spiff_task.state != TaskState.READY:
            raise Conflict("this task is no longer waiting for input; reload the case")
        schema_file, _ = user_task_form_files(spiff_task.task_spec)
        schema = loaded.form(schema_file, spiff_task.workflow.spec.name)
        data = data if data is not None else {}
        if schema is not None:
            data, case_owned = _split_read_only(schema, data, spiff_task.data)
            validate(schema, {**data, **case_owned})
        else:
            _check_start_data(data)
        # Review steps reuse field names; a field left out must not keep the last reviewer's value.
        if schema is not None:
            for name in (schema.get("properties") or {}):
                if name not in data and name not in case_owned:
                    spiff_task.data.pop(name, None)
        # The files uploaded for this task are part of what it submits (set by the system).
        # "No files", read with the task, spares listing them. On PostgreSQL that read comes after
        # the rows were locked, in a statement of its own: one that had waited for the task's lock
        # would see the other tables as they were when it began, before the upload that held the
        # row committed its file.
        files = attachments.submitted_files(s, task.id) if read.has_files else []
        data = attachments.with_submitted_files(data, spiff_task.data, files)
        spiff_task.data.update(data)
        failure = None
        try:
            self._run_engine(workflow, spiff_task.run)
        except WorkflowError as exc:
            if exc.refuses_input:
                raise
            # The diagram failed after the user did their part: keep what they submitted
            # and stop the case as errored, for an administrator to fix and retry.
            failure = exc
        return _CompletionPlan(task=task, case=case, loaded=loaded, workflow=workflow, recorder=recorder,
                               data=data, files=files, version=case.lock_version, assignee_id=task.assignee_id,
                               others_open=read.others_open, failure=failure, summary=self._summary(workflow, now))

    def _save_completion(self, s: Session, actor: Actor, plan: _CompletionPlan, now: datetime,
                         answer, locked: bool = False) -> CompletionResult:
        """Write a prepared completion; _Stale if what it was prepared from has changed.
        `locked`: prepared in this transaction with the case's and the task's rows locked."""
        task, case, workflow, data = plan.task, plan.case, plan.workflow, plan.data
        s.add(task)     # the rows read while preparing, for the effects and the answer to use
        # Unlocked (SQLite), the case may have moved on since it was read: the guarded
        # save_case_state below finds that out, with the writer's turn holding everyone else off.
        # Unlocked, a task prepared without files is closed only if it still has none.
        if not queries.mark_task_done(s, task.id, "completed", now, actor.id, assignee_id=plan.assignee_id,
                                      without_files=not locked and not plan.files):
            raise _Stale()  # completed, cancelled, claimed or released meanwhile, or a file came: afresh
        # Closed now, the task takes no more uploads or removals; a change meanwhile is redone.
        if not locked and plan.files and attachment_queries.ids_of_task(s, task.id) != [f["id"] for f in plan.files]:
            raise _Stale()
        self._audit(s, case.id, actor.id, "completed", now, task=task, data=_jsonable(data))
        self._apply_effects(s, case, plan.recorder, actor.id, now)
        summary = plan.summary
        if plan.failure is None and self._deliver_standing_messages(s, case, workflow, plan.recorder, actor.id, now):
            summary = self._summary(workflow, now)
        still_open: list[HumanTask] = []
        created = self._sync(s, case, workflow, plan.loaded, now, actor.id, completed_data=data,
                             still_open=still_open, others_open=plan.others_open)
        if plan.failure is not None:
            summary = {**summary, **errored(plan.failure)}
            self._audit(s, case.id, None, "error", now,
                        data={"message": plan.failure.message, **plan.failure.details})
        if not queries.save_case_state(s, case.id, plan.version, **summary):
            raise _Stale()
        self._end_event_audit(s, case, workflow, now)
        # The guarded UPDATEs bypassed the ORM; bring the loaded objects in line instead
        # of reloading them.
        for key, value in summary.items():
            set_committed_value(case, key, value)
        set_committed_value(case, "lock_version", plan.version + 1)
        for key, value in (("status", "completed"), ("completed_at", now), ("completed_by_id", actor.id)):
            set_committed_value(task, key, value)
        for row in created:     # what callers show about the next steps, loaded while we can
            _ = (row.org, row.case)
        result = CompletionResult(case=case, completed=task, next_tasks=created, actor=actor,
                                  open_tasks=sorted(still_open + created, key=lambda t: t.id))
        if answer is not None:
            result.answer = answer(s, result)
        return result

    def claim(self, actor: Actor, task_id: int) -> HumanTask:
        now = self.clock.now()
        with self.db.transaction() as s:
            task = self._open_task_for(s, actor, task_id)
            if task.assignee_id == actor.id:
                return task
            if not queries.set_assignee(s, task.id, None, actor.id):
                raise Conflict("someone else claimed this task first")
            self._audit(s, task.case_id, actor.id, "claimed", now, task=task)
            set_committed_value(task, "assignee_id", actor.id)
            return task

    def unclaim(self, actor: Actor, task_id: int) -> HumanTask:
        now = self.clock.now()
        with self.db.transaction() as s:
            task = queries.get_by_id(s, HumanTask, task_id)
            if task is None:
                raise NotFound(f"task {task_id} does not exist")
            if task.status != "open":
                raise self._closed(s, actor, task)
            if task.assignee_id is None:
                if not (actor.may_work_on(task) or actor.is_admin):
                    raise PermissionDenied("this task is not yours")
                return task
            if task.assignee_id != actor.id and not actor.is_admin:
                raise PermissionDenied(f"this task is assigned to {task.assignee.display_name}")
            if not task.role:
                raise InvalidData("this task belongs to the case's starter and cannot be released")
            if not queries.set_assignee(s, task.id, task.assignee_id, None):
                raise Conflict("the task changed meanwhile; reload")
            self._audit(s, task.case_id, actor.id, "unclaimed", now, task=task)
            set_committed_value(task, "assignee_id", None)
            return task


def errored(failure: WorkflowError) -> dict:
    """The summary columns of a case stopped by a failing script or condition."""
    step = failure.details.get("step")
    return {"status": "error", "error_message": failure.message[:4000], "completed_at": None,
            "current_steps": (f"Stopped at: {step}" if step else "Stopped by an error")[:500]}


def _check_start_data(data) -> None:
    if not isinstance(data, dict):
        raise InvalidData("data must be an object", {"data": "Expected an object."})
    errors = {k: "Field names starting with '_' are not accepted." for k in data if str(k).startswith("_")}
    if "project" in data:
        errors["project"] = "Set by the system from the case's project."
    if errors:
        raise InvalidData("The data has errors.", errors)
    try:
        size = len(json.dumps(data, default=str, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        raise InvalidData("data must be plain JSON (no NaN or Infinity)", {"data": "Not JSON."}) from None
    if size > MAX_START_DATA_BYTES:
        raise InvalidData("data is too large", {"data": f"At most {MAX_START_DATA_BYTES} bytes."})
    for key, value in data.items():
        if isinstance(value, str) and len(value) > MAX_STRING:
            errors[key] = f"At most {MAX_STRING} characters."
    if errors:
        raise InvalidData("The data has errors.", errors)


def _split_read_only(schema: dict, data, case_data: dict) -> tuple:
    """Set a form's readOnly fields apart: they hold the case's values whatever was sent, so a
    schema condition on them (e.g. a reason required only in an adjustment) cannot be talked around."""
    fixed = {name for name, prop in (schema.get("properties") or {}).items()
             if isinstance(prop, dict) and prop.get("readOnly")}
    if not fixed or not isinstance(data, dict):
        return data, {}
    return ({k: v for k, v in data.items() if k not in fixed},
            {k: case_data[k] for k in fixed if k in case_data})


def _jsonable(data: dict) -> dict:
    return json.loads(json.dumps(data, default=str))
