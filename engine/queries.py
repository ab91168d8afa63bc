"""Read models: what inboxes, case pages and the API show, shaped once for all of them."""
from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from storage import attachment_queries, deadline_queries, queries
from storage.db import Database
from storage.models import Case, HumanTask, Project

from .access import Actor
from .attachments import summary as attachment_summary
from .deadlines import case_deadline, is_overdue
from .cases import user_task_form_files
from .clock import Clock
from .errors import Conflict, NotFound, PermissionDenied
from .goals import adjustment_under_review, goal_changes, goal_versions, goals_from_data
from .instructions import render
from .roles import BUREAU_WIDE, ROLES
from .serializer import load_state, pruned_steps_of, task_in_workflow
from .specs import SpecCache


def _iso(value):
    return value.isoformat() if value is not None else None


def deadline_fields(due_at, escalated_at, escalated_to, now) -> dict:
    """What every list shows about a task's deadline: overdue by the app's clock, and whether
    (and to whom) it was escalated."""
    return {"overdue": is_overdue(due_at, now),
            "escalated_at": _iso(escalated_at), "escalated_to": escalated_to or None,
            "escalated_to_name": ROLES.get(escalated_to) if escalated_to else None}


def _person(user_id, relation, people) -> tuple[str | None, str | None]:
    """(username, display name) of a task's assignee or completer: from `people`, those the
    caller knows already (the actor), else through the relationship (the session's user)."""
    if user_id is None:
        return None, None
    if user_id in people:
        return people[user_id]
    user = relation()
    return user.username, user.display_name


def task_summary(task: HumanTask, now=None, people: dict | None = None) -> dict:
    """`people`: {user id: (username, display name)} known to the caller, read from nowhere else."""
    case = task.case
    people = people or {}
    assignee, assignee_name = _person(task.assignee_id, lambda: task.assignee, people)
    completed_by, _ = _person(task.completed_by_id, lambda: task.completed_by, people)
    return {
        **deadline_fields(task.due_at, task.escalated_at, task.escalated_to, now),
        "id": task.id, "case_id": task.case_id, "name": task.name, "step": task.step, "title": task.title,
        "role": task.role or None, "role_name": ROLES.get(task.role, "Case starter"),
        "org": task.org.code if task.org else None,
        "org_name": task.org.name if task.org else ("Finance bureau" if task.role else None),
        "assignee": assignee, "assignee_name": assignee_name,
        "status": task.status, "created_at": _iso(task.created_at), "due_at": _iso(task.due_at),
        "completed_at": _iso(task.completed_at), "completed_by": completed_by,
        "process": case.process_key, "case_title": case.title,
        "project": {"id": case.project.id, "code": case.project.code, "name": case.project.name}
        if case.project else None,
    }


def task_row_summary(row, now=None) -> dict:
    """task_summary of a row of storage.queries.inbox (the same fields, no ORM objects)."""
    return {
        **deadline_fields(row.due_at, row.escalated_at, row.escalated_to, now),
        "id": row.id, "case_id": row.case_id, "name": row.name, "step": row.step, "title": row.title,
        "role": row.role or None, "role_name": ROLES.get(row.role, "Case starter"),
        "org": row.org_code, "org_name": row.org_name if row.org_code is not None else
        ("Finance bureau" if row.role else None),
        "assignee": row.assignee, "assignee_name": row.assignee_name if row.assignee is not None else None,
        "status": row.status, "created_at": _iso(row.created_at), "due_at": _iso(row.due_at),
        "completed_at": _iso(row.completed_at), "completed_by": row.completed_by,
        "process": row.process_key, "case_title": row.case_title,
        "project": {"id": row.project_id, "code": row.project_code, "name": row.project_name}
        if row.project_id is not None else None,
    }


def project_summary(project: Project) -> dict:
    return {
        "id": project.id, "code": project.code, "name": project.name, "year": project.year,
        "unit": project.unit.code, "unit_name": project.unit.name,
        "competent": project.competent.code, "competent_name": project.competent.name,
        "funding": project.funding.code, "funding_name": project.funding.name,
        "category": project.category, "is_new": project.is_new, "is_key": project.is_key,
        "amount": str(project.amount), "goals_status": project.goals_status,
        "ex_ante_status": project.ex_ante_status,
        "needs_ex_ante": bool(project.is_new or project.is_key),
    }


def goal_version_summary(row) -> dict:
    return {"version": row.version, "kind": row.kind, "reason": row.reason, "approved_at": _iso(row.approved_at),
            "approved_by": row.approved_by.username if row.approved_by else None, "case_id": row.case_id}


def goal_history(rows) -> list[dict]:
    """Every approved version, oldest first, each with what changed against the one before."""
    out, previous = [], None
    for row in rows:
        out.append({**goal_version_summary(row),
                    "approved_by_name": row.approved_by.display_name if row.approved_by else None,
                    "changes": goal_changes(previous.goals, row.goals) if previous is not None else None})
        previous = row
    return out


def case_summary(case: Case) -> dict:
    return {
        "id": case.id, "process": case.process_key, "version": case.process_version.version,
        "process_name": case.process_version.name, "title": case.title,
        "project": {"id": case.project.id, "code": case.project.code, "name": case.project.name}
        if case.project else None,
        "org": case.org.code, "org_name": case.org.name, "year": case.year, "status": case.status,
        "current_steps": case.current_steps, "started_at": _iso(case.started_at),
        "updated_at": _iso(case.updated_at), "completed_at": _iso(case.completed_at),
        "error": case.error_message,
    }


def case_row_summary(row) -> dict:
    """case_summary of a row of storage.queries.list_cases (the same fields, no ORM objects)."""
    return {
        "id": row.id, "process": row.process_key, "version": row.version, "process_name": row.process_name,
        "title": row.title,
        "project": {"id": row.project_id, "code": row.project_code, "name": row.project_name}
        if row.project_id is not None else None,
        "org": row.org_code, "org_name": row.org_name, "year": row.year, "status": row.status,
        "current_steps": row.current_steps, "started_at": _iso(row.started_at),
        "updated_at": _iso(row.updated_at), "completed_at": _iso(row.completed_at),
        "error": row.error_message,
    }


def _event(event) -> dict:
    """An audit event (a row of storage.queries.history) as the API and the pages show it."""
    return {"at": _iso(event.at), "actor": event.actor_username,
            "actor_name": event.actor_name if event.actor_username is not None else "System",
            "action": event.action, "task": event.task_name, "step": event.step, "data": event.data}


_CASE_PAGE = (select(Case).options(joinedload(Case.process_version), joinedload(Case.project), joinedload(Case.org))
              .where(Case.id == bindparam("b_id")))
# A task page shows the task's organisation and people and its case's version, project and
# organisation: one SELECT instead of six lazy loads after it.
_TASK_PAGE = (select(HumanTask).options(
    joinedload(HumanTask.org), joinedload(HumanTask.assignee), joinedload(HumanTask.completed_by),
    joinedload(HumanTask.case).options(joinedload(Case.process_version), joinedload(Case.project),
                                       joinedload(Case.org)))
    .where(HumanTask.id == bindparam("b_id")))


class ReadService:
    def __init__(self, db: Database, specs: SpecCache, clock: Clock, settings):
        self.db = db
        self.specs = specs
        self.clock = clock
        self.settings = settings

    # ---- visibility ---------------------------------------------------------------------

    def _visibility(self, actor: Actor):
        return queries.case_visibility(actor.grants, actor.sees_all_cases, actor.id)

    def _case_for(self, s, actor: Actor, case_id: int) -> Case:
        # The version, project and organisation every case answer shows, in the same SELECT.
        case = queries.get_by_statement(s, _CASE_PAGE, case_id)
        if case is None:
            raise NotFound(f"case {case_id} does not exist")
        if not self.may_see_case(s, actor, case):
            raise PermissionDenied("you may not see this case")
        return case

    def may_see_case(self, s, actor: Actor, case: Case) -> bool:
        if actor.sees_all_cases:
            return True
        return queries.case_visible(s, case.id, self._visibility(actor))

    # ---- people and lookups ---------------------------------------------------------------

    def me(self, actor: Actor) -> dict:
        with self.db.reading() as s:
            orgs = queries.orgs_by_ids(s, {org for _, org in actor.grants})
            return {"id": actor.id, "username": actor.username, "display_name": actor.display_name,
                    "roles": [{"role": role, "role_name": ROLES.get(role, role),
                               "org": orgs[org].code, "org_name": orgs[org].name}
                              for role, org in actor.grants]}

    def user_exists(self, username: str) -> bool:
        with self.db.reading() as s:
            return queries.user_by_username(s, username) is not None

    def task_brief(self, task_id: int) -> dict:
        with self.db.reading() as s:
            task = queries.get_by_id(s, HumanTask, task_id)
            if task is None:
                raise NotFound(f"task {task_id} does not exist")
            return task_summary(task, self.clock.now())

    def completion_answer(self, s, result) -> dict:
        """What a completion answers (the case as it is now and the tasks it led to), built inside
        the completion's own transaction (CaseService.complete(answer=...)): the case, its
        version, project and organisations and the inbox rows are in the session already, so
        only the other users the rows name are read, in one SELECT (none at all when the actor is
        the only person named, as in most completions), instead of a new session re-reading
        everything (12 statements)."""
        tasks = [result.completed, *result.open_tasks]
        actor = result.actor
        people = {actor.id: (actor.username, actor.display_name)} if actor is not None else {}
        named = {t.assignee_id for t in tasks} | {t.completed_by_id for t in tasks}
        users = queries.load_users(s, named - people.keys())
        now = self.clock.now()
        out = {"case": case_summary(result.case),
               "completed": task_summary(result.completed, now, people),
               "next_tasks": [task_summary(t, now, people) for t in result.next_tasks]}
        out["case"]["tasks"] = [task_summary(t, now, people) for t in result.open_tasks]
        del users   # held until here: the identity map keeps its objects only weakly
        return out

    # ---- lists --------------------------------------------------------------------------

    def inbox(self, actor: Actor, scope: str = "all", limit: int = 50, offset: int = 0) -> tuple[list[dict], int]:
        bureau_roles = [r for r in actor.roles if r in BUREAU_WIDE]
        with self.db.reading() as s:
            rows, total = queries.inbox(s, actor.id, actor.grants, bureau_roles, scope, limit, offset)
        return [task_row_summary(r, self.clock.now()) for r in rows], total

    def inbox_page(self, actor: Actor, limit: int = 50) -> tuple[list[dict], int, list[dict], int]:
        """What the inbox page shows, in one session: the first tasks assigned to the actor and
        those waiting for their roles, each with its total (their sum is inbox_count)."""
        bureau_roles = [r for r in actor.roles if r in BUREAU_WIDE]
        with self.db.reading() as s:
            mine, mine_total, group, group_total = queries.inbox_mine_and_group(
                s, actor.id, actor.grants, bureau_roles, limit)
        return ([task_row_summary(r, self.clock.now()) for r in mine], mine_total,
                [task_row_summary(r, self.clock.now()) for r in group], group_total)

    def inbox_count(self, actor: Actor) -> int:
        return self.inbox(actor, "all", limit=0)[1]

    def cases(self, actor: Actor, *, limit: int = 50, offset: int = 0, **filters) -> tuple[list[dict], int]:
        with self.db.reading() as s:
            branches = queries.case_visibility_branches(actor.grants, actor.sees_all_cases, actor.id, s)
            rows, total = queries.list_cases(s, branches, limit=limit, offset=offset, **filters)
            deadlines = deadline_queries.open_task_deadlines(s, [r.id for r in rows])
        now = self.clock.now()
        return [{**case_row_summary(r), **case_deadline(*deadlines.get(r.id, (None, False)), now)}
                for r in rows], total

    def projects(self, actor: Actor, year: int | None = None) -> list[dict]:
        with self.db.reading() as s:
            rows = queries.visible_projects(s, actor.grants, actor.sees_all_cases,
                                            "third_party" in actor.roles, year)
            versions = goal_versions(s, (p.id for p in rows))
            return [{**project_summary(p), "goal_history": [goal_version_summary(v) for v in versions[p.id]]}
                    for p in rows]

    def project(self, actor: Actor, project_id: int) -> dict:
        with self.db.reading() as s:
            project = queries.get_by_id(s, Project, project_id)
            if project is None:
                raise NotFound(f"project {project_id} does not exist")
            if not actor.may_see_project(project):
                raise PermissionDenied("you may not see this project")
            out = project_summary(project)
            goals = queries.latest_goals(s, project.id)
            out["approved_goals"] = ({"version": goals.version, "approved_at": _iso(goals.approved_at),
                                      "case_id": goals.case_id, **goals.goals} if goals else None)
            out["goal_history"] = goal_history(goal_versions(s, [project.id], with_goals=True)[project.id])
            out["ex_ante_evaluations"] = [
                {"round": e.round, "case_id": e.case_id, "total": float(e.total), "conclusion": e.conclusion,
                 "dimensions": e.dimensions, "summary": e.summary, "evaluated_at": _iso(e.evaluated_at),
                 "site_examination": e.site_examination, "third_party": e.third_party}
                for e in queries.ex_ante_evaluations(s, project.id)]
            return out

    def start_options(self, actor: Actor) -> list[dict]:
        """Per deployed process, the visible projects this actor may start it for."""
        with self.db.reading() as s:
            projects = queries.visible_projects(s, actor.grants, actor.sees_all_cases,
                                                "third_party" in actor.roles)
            running = queries.running_cases_by_project(s)
            settings = self.settings.values()
            out = []
            for version in queries.latest_versions(s):
                role = self.specs.get(version.id).model.start_role
                allowed = [p for p in projects
                           if role is None or actor.may_act_for_project(role, p) or actor.is_admin]
                out.append({"key": version.key, "name": version.name, "description": version.description,
                            "version": version.version, "role_name": ROLES.get(role) if role else None,
                            "projects": [{**project_summary(p), "running": running.get((p.id, version.key)),
                                          "blocked": _start_refusal(s, version.key, p, settings)}
                                         for p in allowed]})
            return out

    def versions_of(self, process_key: str) -> list[dict]:
        """Every deployed version of a process, newest first (to move an errored case)."""
        with self.db.reading() as s:
            return [{"id": v.id, "version": v.version, "deployed_at": v.deployed_at}
                    for v in queries.versions_of(s, process_key)]

    def processes(self) -> list[dict]:
        with self.db.reading() as s:
            return [{"key": v.key, "version": v.version, "name": v.name, "description": v.description,
                     "deployed_at": _iso(v.deployed_at)} for v in queries.latest_versions(s)]

    # ---- details ------------------------------------------------------------------------

    def case(self, actor: Actor, case_id: int, with_data: bool = True) -> dict:
        with self.db.reading() as s:
            case = self._case_for(s, actor, case_id)
            return self._case_answer(s, case, self._workflow(case) if with_data else None, fresh=True)

    def started_case(self, s, case: Case, workflow, tasks: list) -> dict:
        """case()'s answer for the case just started, built inside the start's transaction
        (CaseService.start(answer=...)) from the case row, its new inbox rows and the workflow
        in hand. Whoever started a case may see it, so there is no visibility check to make.
        Files are uploaded to open tasks, and this case's tasks were made in this very
        transaction: it has none."""
        return self._case_answer(s, case, workflow, tasks=tasks, has_files=False)

    def _case_answer(self, s, case: Case, workflow, fresh: bool = False, has_files: bool = True,
                     tasks: list | None = None) -> dict:
        """`fresh`: a session that holds nothing but the case yet, so the open tasks are read
        with their organisations and people. `has_files=False`: the case cannot have
        attachments yet, none are looked for. `tasks`: its open inbox rows, in hand already."""
        out = case_summary(case)
        if tasks is None:
            tasks = queries.open_tasks_of_case(s, case.id, with_relations=fresh)
        out["tasks"] = [task_summary(t, self.clock.now()) for t in sorted(tasks, key=lambda t: t.id)]
        out["history"] = [_event(e) for e in queries.history(s, case.id)]
        out["attachments"] = ([attachment_summary(a) for a in attachment_queries.of_case(s, case.id)]
                              if has_files else [])
        if workflow is not None:
            out["data"] = _public_data(_latest_data(workflow))
            out["completed_steps"], out["current_step_ids"] = _step_ids(workflow)
        return out

    def diagram(self, actor: Actor, case_id: int) -> tuple[str, list[str], list[str]]:
        """The BPMN XML of the case's version with its completed and current element ids."""
        with self.db.reading() as s:
            case = self._case_for(s, actor, case_id)
            loaded = self.specs.get(case.process_version_id)
            files = queries.version_files(s, case.process_version_id)
            xml = files[loaded.model.primary_file].decode("utf-8")
            completed, current = _step_ids(self._workflow(case))
            return xml, completed, current

    def task(self, actor: Actor, task_id: int) -> dict:
        with self.db.reading() as s:
            task = queries.get_by_statement(s, _TASK_PAGE, task_id)
            if task is None:
                raise NotFound(f"task {task_id} does not exist")
            case = task.case
            if not (actor.may_work_on(task) or self.may_see_case(s, actor, case)):
                raise PermissionDenied("you may not see this task")
            out = task_summary(task, self.clock.now())
            out["may_act"] = task.status == "open" and actor.may_work_on(task)
            out["may_claim"] = task.status == "open" and task.assignee_id is None and actor.may_work_on(task)
            out["may_release"] = (task.status == "open" and task.assignee_id is not None and bool(task.role)
                                  and (task.assignee_id == actor.id or actor.is_admin))
            loaded = self.specs.get(case.process_version_id)
            workflow = self._workflow(case)
            spiff_task = task_in_workflow(workflow, task.spiff_task_id)
            if spiff_task is not None:
                spec, process_id = spiff_task.task_spec, spiff_task.workflow.spec.name
            else:
                spec, process_id = _spec_of_step(loaded, task.step)
            schema_file, ui_file = user_task_form_files(spec) if spec is not None else (None, None)
            schema = loaded.form(schema_file, process_id) or {"type": "object", "properties": {}}
            out["form"] = {"schema": schema, "ui_schema": loaded.form(ui_file, process_id) or {}}
            events = queries.history(s, case.id)
            props = schema.get("properties") or {}
            if spiff_task is not None:
                data = spiff_task.data
                # Prefill only what this form owns and what this step left earlier (a
                # resubmission), never the fields another reviewer filled in under the same name.
                own = {k: v for k, v in data.items() if k in props}
            else:
                data, own = _data_from_history(_latest_data(workflow), events, task.id, props)
            if task.status == "open" and spec is not None and _is_review(props):
                own = {}
            out["data"] = _public_data(own)
            context = _public_data(data)
            out["instructions"] = str(render((spec.extensions or {}).get("instructionsForEndUser")
                                             if spec is not None else None, context))
            out["context"] = {
                "project": context.get("project"),
                "goals": goals_from_data(context),
                "opinions": _opinions(events),
                "adjustment": adjustment_under_review(s, case.project_id, context),
            }
            files = [attachment_summary(a) for a in attachment_queries.of_case(s, case.id)]
            out["attachments"] = [f for f in files if f["task_id"] == task.id]
            # What the earlier steps submitted (the evidence a reviewer looks at).
            out["context"]["case_files"] = [f for f in files if f["task_id"] != task.id]
            out["case"] = case_summary(case)
            return out

    def history(self, actor: Actor, case_id: int) -> list[dict]:
        with self.db.reading() as s:
            self._case_for(s, actor, case_id)
            return [_event(e) for e in queries.history(s, case_id)]

    def _workflow(self, case: Case):
        loaded = self.specs.get(case.process_version_id)
        return load_state(case.state, loaded.model.spec, loaded.model.subprocess_specs)


def _start_refusal(s, process_key: str, project, settings) -> str | None:
    """Why a case of this process cannot start for the project now, if it cannot."""
    from .cases import START_GUARDS
    guard = START_GUARDS.get(process_key)
    if guard is None:
        return None
    try:
        guard(s, project, settings)
    except Conflict as exc:
        return exc.message[:1].upper() + exc.message[1:]
    return None


def _is_review(props: dict) -> bool:
    return any(name == "decision" or name.endswith("_decision") for name in props)


def _spec_of_step(loaded, step: str):
    """The task spec of a step and its process id, looked up in called processes too."""
    if step in loaded.model.spec.task_specs:
        return loaded.model.spec.task_specs[step], loaded.model.spec.name
    for process_id, spec in loaded.model.subprocess_specs.items():
        if step in spec.task_specs:
            return spec.task_specs[step], process_id
    return None, None


def _latest_data(workflow) -> dict:
    from SpiffWorkflow.util.task import TaskState
    ready = workflow.get_tasks(state=TaskState.READY)
    if ready:
        return ready[0].data
    return workflow.last_task.data if workflow.last_task is not None else workflow.data


def _data_from_history(latest: dict, events, task_id: int, props: dict) -> tuple[dict, dict]:
    """(the case's data as a task saw it, what its form held) for a task the saved state no
    longer has: one of an old round, left out of the state (engine.state_history). The audit
    log has what every step submitted: the submissions up to and including this task's, over
    the case's latest data, are what was before it; its own submission is what its form held.
    A task with no submission of its own (cancelled) gets the latest data, as before."""
    data, own = dict(latest), {}
    for event in events:
        if event.action != "completed" or not isinstance(event.data, dict):
            continue
        data.update(event.data)
        if event.human_task_id == task_id:
            own = {k: v for k, v in event.data.items() if k in props}
            break
    else:
        return dict(latest), {k: v for k, v in latest.items() if k in props}
    return data, own


def _public_data(data: dict) -> dict:
    import json
    return json.loads(json.dumps({k: v for k, v in data.items() if not k.startswith("_")}, default=str))


def _step_ids(workflow) -> tuple[list[str], list[str]]:
    from SpiffWorkflow.util.task import TaskState
    completed, current = [], []
    for task in workflow.get_tasks():
        bpmn_id = getattr(task.task_spec, "bpmn_id", None)
        if not bpmn_id:
            continue
        if task.state == TaskState.COMPLETED:
            completed.append(bpmn_id)
        elif task.state in (TaskState.READY, TaskState.WAITING, TaskState.STARTED, TaskState.ERROR):
            current.append(bpmn_id)
    # Steps whose finished tasks a save left out of the state (engine.state_history).
    for flow in (workflow, *workflow.subprocesses.values()):
        completed.extend(pruned_steps_of(flow))
    return sorted(set(completed) - set(current)), sorted(set(current))


def _opinions(events) -> list[dict]:
    out = []
    for e in events:
        if e.action != "completed" or not isinstance(e.data, dict):
            continue
        # A review form's decision field is 'decision' or '<something>_decision', with its
        # opinion in the matching 'comment' field.
        key = next((k for k in e.data if k == "decision" or k.endswith("_decision")), None)
        if key is not None:
            prefix = key[: -len("decision")]
            out.append({"at": _iso(e.at), "step": e.task_name,
                        "actor": e.actor_name,
                        "decision": e.data.get(key), "comment": e.data.get(prefix + "comment"),
                        "grade": e.data.get(prefix + "grade")})
    return out
