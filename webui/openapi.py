"""The OpenAPI 3.1 document of /api/v1, built once from Python dicts.

Every response shape here mirrors a read model of engine/queries.py (task_summary,
case_summary, project_summary, ReadService.case/task/me/completion); tests/test_openapi.py
validates real answers of a goal-review run against it, field by field.
"""
from __future__ import annotations

import copy
from functools import lru_cache

from engine.goals import GOAL_FIELDS
from engine.roles import ROLES

JSON = "application/json"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# Times are naive UTC in ISO 8601 (datetime.isoformat()): no offset, microseconds when non-zero.
_TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?$"
_DECIMAL_PATTERN = r"^-?\d+(\.\d+)?$"
MAX_INT = 2**31 - 1     # ids and numbers are INTEGER columns (PostgreSQL int4)


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable_ref(name: str, description: str | None = None) -> dict:
    out: dict = {"anyOf": [_ref(name), {"type": "null"}]}
    if description:
        out["description"] = description
    return out


def _string(description: str | None = None, nullable: bool = False, **extra) -> dict:
    out: dict = {"type": ["string", "null"] if nullable else "string"}
    if description:
        out["description"] = description
    out.update(extra)
    return out


def _integer(description: str | None = None, nullable: bool = False, **extra) -> dict:
    out: dict = {"type": ["integer", "null"] if nullable else "integer"}
    if description:
        out["description"] = description
    out.update(extra)
    return out


def _boolean(description: str) -> dict:
    return {"type": "boolean", "description": description}


def _timestamp(description: str, nullable: bool = False) -> dict:
    return _string(description + " Naive UTC in ISO 8601, e.g. 2027-03-01T09:30:00.123456.",
                   nullable=nullable, pattern=_TIMESTAMP_PATTERN)


def _object(properties: dict, description: str | None = None, required: list[str] | None = None) -> dict:
    """An object schema; every property is required unless `required` says otherwise."""
    out: dict = {"type": "object"}
    if description:
        out["description"] = description
    out["required"] = list(properties) if required is None else required
    out["properties"] = properties
    return out


def _list_of(item: str, what: str) -> dict:
    return _object({
        "items": {"type": "array", "items": _ref(item), "description": f"This page of {what}."},
        "total": _integer(f"How many {what} match in all, across every page.", minimum=0),
    }, f"A page of {what}.")


def _schemas(case_statuses: tuple[str, ...]) -> dict:
    role_codes = list(ROLES)
    project_ref = _object({
        "id": _integer("Project id."),
        "code": _string("Project code, e.g. EDU-2027-001."),
        "name": _string("Project name."),
    }, "The project a task or case belongs to.")

    task = {
        "id": _integer("Task id (an inbox row)."),
        "case_id": _integer("The case the task belongs to."),
        "name": _string("The step's name in the diagram, e.g. 'Preliminary review'."),
        "step": _string("The BPMN element id of the step, e.g. 'preliminary_review'."),
        "title": _string("Step name and case title, for inboxes."),
        "role": {"type": ["string", "null"], "enum": [*role_codes, None],
                 "description": "The role (lane) whose holders work on the task; null for a task that "
                                "stays with whoever started the case."},
        "role_name": _string("Display name of the role ('Case starter' when role is null)."),
        "org": _string("Code of the organisation whose role holders own the task; null for bureau-wide "
                       "roles (review center, performance section, third party) and starter tasks.",
                       nullable=True),
        "org_name": _string("Name of that organisation; 'Finance bureau' for bureau-wide roles, null for "
                            "starter tasks.", nullable=True),
        "assignee": _string("Username of the user who claimed the task; null while it is unclaimed.",
                            nullable=True),
        "assignee_name": _string("Display name of the assignee.", nullable=True),
        "status": {"type": "string", "enum": ["open", "completed", "cancelled"],
                   "description": "open: waiting for input; completed: done by a user; cancelled: "
                                  "closed by the process."},
        "created_at": _timestamp("When the task was created."),
        "due_at": _timestamp("When the task is due, if it has a deadline.", nullable=True),
        "overdue": _boolean("The task has a due date and it has passed (by the server's clock)."),
        "escalated_at": _timestamp("When the overdue task was escalated (see the diagram's escalateAfter); "
                                   "null if it was not.", nullable=True),
        "escalated_to": {"type": ["string", "null"], "enum": [*role_codes, None],
                         "description": "The role it was escalated to."},
        "escalated_to_name": _string("Display name of that role.", nullable=True),
        "completed_at": _timestamp("When the task was completed or cancelled.", nullable=True),
        "completed_by": _string("Username of who completed it.", nullable=True),
        "process": _string("Key of the case's process."),
        "case_title": _string("Title of the case."),
        "project": _nullable_ref("ProjectRef", "The case's project."),
    }

    case = {
        "id": _integer("Case id."),
        "process": _string("Process key, e.g. goal_review."),
        "version": _integer("Version of the process the case runs on (cases stay on the version they "
                            "started with).", minimum=1),
        "process_name": _string("Display name of that process version."),
        "title": _string("Case title: project name and code."),
        "project": _nullable_ref("ProjectRef", "The case's project."),
        "org": _string("Code of the case's organisation (the project's budget unit)."),
        "org_name": _string("Name of that organisation."),
        "year": _integer("Budget year.", nullable=True),
        "status": {"type": "string", "enum": list(case_statuses), "description": "State of the case."},
        "current_steps": _string("Names of the steps waiting for input, comma separated; empty when none."),
        "started_at": _timestamp("When the case was started."),
        "updated_at": _timestamp("When the case last changed."),
        "completed_at": _timestamp("When the case ended.", nullable=True),
        "error": _string("Why the case stopped, for status 'error'.", nullable=True),
    }
    open_tasks = {"type": "array", "items": _ref("Task"), "description": "The case's open tasks."}

    project_facts = _object({
        "id": _integer("Project id."),
        "code": _string("Project code."),
        "name": _string("Project name."),
        "year": _integer("Budget year."),
        "is_key": _boolean("Key project (gets a third-party opinion)."),
        "is_new": _boolean("New project."),
        "amount": _string("Budget amount in yuan, as a decimal string.", pattern=_DECIMAL_PATTERN),
        "category": _string("Category."),
        "unit": _string("Name of the budget unit."),
        "competent": _string("Name of the competent department."),
        "funding": _string("Name of the funding business section."),
    }, "What the process knows of the case's project (task data `project`).")

    indicator = {"type": "object", "description": "One performance indicator, as the goals form defines it "
                                                  "(level1, level2, name, operator, target, unit, weight, ...)."}
    goal_props = {name: _string(f"Goal field '{name}'.") for name in GOAL_FIELDS if name != "indicators"}
    goal_props["indicators"] = {"type": "array", "items": indicator, "description": "Performance indicators."}
    goals = _object(goal_props, "The performance goals in the case data so far (only the fields present).",
                    required=[])

    goal_change = _object({
        "kind": {"type": "string", "enum": ["field", "indicator_changed", "indicator_added", "indicator_removed"],
                 "description": "A narrative field changed, or an indicator (matched by name) changed, "
                                "was added or was removed."},
        "label": _string("Title of the field, or name of the indicator."),
        "old": _string("The field's text before, or the indicator's target and weight before "
                       "(empty when added)."),
        "new": _string("The same after (empty when removed)."),
        "details": {"type": "array", "description": "For a changed indicator: each aspect that changed "
                                                    "(category, target, weight, core, evaluation standard, note).",
                    "items": _object({"label": _string("The aspect."), "old": _string("Before."),
                                      "new": _string("After.")})},
        "text": _string("The change in one line, for people."),
    }, "One change between two versions of a project's performance goals.")

    opinion = _object({
        "at": _timestamp("When the opinion was given."),
        "step": _string("Name of the review step.", nullable=True),
        "actor": _string("Display name of the reviewer.", nullable=True),
        "decision": _string("The decision: approve, return or reject.", nullable=True),
        "comment": _string("The reviewer's opinion.", nullable=True),
        "grade": _string("The grade given (preliminary review only).", nullable=True),
    }, "A review opinion given earlier in the case.")

    history_event = _object({
        "at": _timestamp("When it happened."),
        "actor": _string("Username of who did it; null for the system.", nullable=True),
        "actor_name": _string("Display name of who did it; 'System' for the system."),
        "action": _string("What happened: started, completed, claimed, unclaimed, attached and detached "
                          "(a file added to or removed from a task), finished (the case reached an end "
                          "event), ..."),
        "task": _string("Name of the task concerned.", nullable=True),
        "step": _string("BPMN element id of the task concerned.", nullable=True),
        "data": {"type": ["object", "null"],
                 "description": "What was submitted: the start data, the form data of a completion, "
                                "{end} for 'finished'; null for claims."},
    }, "One entry of a case's audit log (append-only).")

    task_detail = {
        **task,
        "may_act": _boolean("The caller may complete the task now."),
        "may_claim": _boolean("The caller may claim the task now."),
        "may_release": _boolean("The caller may release (unclaim) the task now."),
        "form": _object({
            "schema": {"type": "object", "description": "JSON Schema (draft 2020-12) of the form data that "
                                                        "POST /tasks/{task_id}/complete accepts."},
            "ui_schema": {"type": "object", "description": "Layout hints for the form (may be empty)."},
        }, "The task's form."),
        "data": {"type": "object", "description": "Prefilled form data: what this step submitted earlier "
                                                  "(a resubmission); empty for review steps."},
        "instructions": _string("Instructions for the user, as HTML rendered from the diagram's Markdown."),
        "context": _object({
            "project": _nullable_ref("ProjectFacts", "The case's project."),
            "goals": _ref("Goals"),
            "opinions": {"type": "array", "items": _ref("Opinion"),
                         "description": "Review opinions given so far, oldest first."},
            "adjustment": {"anyOf": [_object({
                "base_version": _integer("The approved goals version the case changes.", minimum=1),
                "reason": _string("The unit's reason for the change (null until given).", nullable=True),
                "changes": {"type": "array", "items": _ref("GoalChange"),
                            "description": "The goals in the case against that version."},
            }), {"type": "null"}], "description": "In an in-year adjustment of approved goals: what it "
                                                  "changes and why; null otherwise."},
            "case_files": {"type": "array", "items": _ref("Attachment"),
                           "description": "The files uploaded for the case's other tasks (what earlier steps "
                                          "submitted), oldest first."},
        }, "What a reviewer needs to see beside the form."),
        "attachments": {"type": "array", "items": _ref("Attachment"),
                        "description": "The files uploaded for this task, oldest first; its completion submits "
                                       "them (task data 'attached_files')."},
        "case": _ref("Case"),
    }

    case_detail = {
        **case,
        "tasks": open_tasks,
        "history": {"type": "array", "items": _ref("HistoryEvent"), "description": "Audit log, oldest first."},
        "attachments": {"type": "array", "items": _ref("Attachment"),
                        "description": "Every file uploaded for the case's tasks, oldest first."},
        "data": {"type": "object", "description": "The case's current data (keys starting with '_' "
                                                  "are never shown)."},
        "completed_steps": {"type": "array", "items": {"type": "string"},
                            "description": "BPMN ids of completed elements, for highlighting the diagram."},
        "current_step_ids": {"type": "array", "items": {"type": "string"},
                             "description": "BPMN ids of the elements waiting now."},
    }

    return {
        "Error": _object({
            "error": _string("What went wrong, for people."),
            "details": {"type": "object",
                        "additionalProperties": {"type": ["string", "integer", "null"]},
                        "description": "Per-field messages keyed by field path (e.g. 'comment', "
                                       "'indicators.0.unit'), or facts about a conflict (e.g. 'task', "
                                       "'status', 'case_id'); empty when there is nothing more to say."},
        }, "Every error answer."),
        "TokenRequest": _object({
            "username": _string("Login name."),
            "password": _string("Password."),
        }),
        "Token": _object({
            "token": _string("Bearer token for the Authorization header; valid 30 days."),
        }),
        "RoleGrant": _object({
            "role": {"type": "string", "enum": role_codes, "description": "Role code."},
            "role_name": _string("Display name of the role."),
            "org": _string("Code of the organisation the role is held in."),
            "org_name": _string("Name of that organisation."),
        }, "A role held in one organisation."),
        "Me": _object({
            "id": _integer("User id."),
            "username": _string("Login name."),
            "display_name": _string("Name shown to people."),
            "roles": {"type": "array", "items": _ref("RoleGrant"), "description": "Roles held."},
        }, "The calling user."),
        "Process": _object({
            "key": _string("Process key, e.g. goal_review."),
            "version": _integer("Latest deployed version.", minimum=1),
            "name": _string("Display name."),
            "description": _string("What the process is for."),
            "deployed_at": _timestamp("When this version was deployed."),
        }, "The latest deployed version of a process."),
        "Project": _object({
            "id": _integer("Project id."),
            "code": _string("Project code, e.g. EDU-2027-001."),
            "name": _string("Project name."),
            "year": _integer("Budget year."),
            "unit": _string("Code of the budget unit."),
            "unit_name": _string("Name of the budget unit."),
            "competent": _string("Code of the competent department."),
            "competent_name": _string("Name of the competent department."),
            "funding": _string("Code of the funding business section."),
            "funding_name": _string("Name of the funding business section."),
            "category": _string("Category."),
            "is_new": _boolean("New project."),
            "is_key": _boolean("Key project (gets a third-party opinion)."),
            "amount": _string("Budget amount in yuan, as a decimal string.", pattern=_DECIMAL_PATTERN),
            "goals_status": {"type": "string", "enum": ["none", "in_review", "approved", "rejected"],
                             "description": "Where the project's performance goals stand."},
            "ex_ante_status": {"type": "string", "enum": ["none", "in_progress", "support", "adjust", "reject"],
                               "description": "Conclusion of the project's latest ex-ante evaluation."},
            "needs_ex_ante": _boolean("New or key: its goals may be reviewed only after a 'support' "
                                      "ex-ante evaluation."),
            "goal_history": {"type": "array", "items": _ref("GoalVersion"),
                             "description": "The approved versions of the project's performance goals, oldest "
                                            "first; the last is in force."},
        }, "A budget project."),
        "GoalVersion": _object({
            "version": _integer("Version number, from 1.", minimum=1),
            "kind": {"type": "string", "enum": ["initial", "adjustment"],
                     "description": "The first approved goals, or an in-year adjustment of them."},
            "reason": _string("Why the goals were adjusted; null for the initial version.", nullable=True),
            "approved_at": _timestamp("When the version was approved."),
            "approved_by": _string("Username of who gave the final approval.", nullable=True),
            "case_id": _integer("The goal-review case that approved it."),
        }, "One approved version of a project's performance goals."),
        "GoalChange": goal_change,
        "ProjectRef": project_ref,
        "ProjectFacts": project_facts,
        "Goals": goals,
        "Opinion": opinion,
        "HistoryEvent": history_event,
        "Task": _object(task, "A human task (inbox row)."),
        "TaskDetail": _object(task_detail, "A task with its form, prefilled data, instructions and context."),
        "Case": _object(case, "A case: one run of a process for a project."),
        "CaseWithTasks": _object({**case, "tasks": open_tasks}, "A case with its open tasks."),
        "CaseDetail": _object(case_detail, "A case with its open tasks, audit log and data."),
        "Completion": _object({
            "case": _ref("CaseWithTasks"),
            "completed": _ref("Task"),
            "next_tasks": {"type": "array", "items": _ref("Task"),
                           "description": "The tasks the completion led to (empty when the case ended)."},
        }, "What completing a task answers: the case as it is now and the tasks it led to."),
        "StartCase": _object({
            "process": _string("Key of the process to start.", minLength=1),
            "project": {"type": ["integer", "string"], "minLength": 1,
                        "description": "The project, by id or by code."},
            "data": {"type": "object", "default": {},
                     "description": "Initial case data. Keys starting with '_' and the key 'project' "
                                    "(set by the system) are refused."},
        }, required=["process", "project"]),
        "CompleteTask": _object({
            "data": {"type": "object", "default": {},
                     "description": "The form data; it must satisfy the task's form schema (see "
                                    "GET /tasks/{task_id}). Keys starting with '_' are refused."},
        }, required=[]),
        "ProjectImport": _object({
            "imported": _integer("How many projects were created.", minimum=1),
            "codes": {"type": "array", "items": {"type": "string"}, "description": "Their codes, in file order."},
        }, "A file imported whole."),
        "ImportRejected": _object({
            "error": _string("Why the file was refused; nothing was imported."),
            "details": {"type": "object", "description": "Always empty: the problems are in rows."},
            "rows": {"type": "array", "description": "One entry per problem, by row then column (at most 500); "
                                                     "empty for a problem of the whole file.",
                     "items": _object({
                         "row": _integer("Row number in the sheet, as Excel shows it (1 is the header row).",
                                         minimum=1),
                         "column": _string("Header of the column concerned."),
                         "message": _string("What is wrong, for people."),
                     })},
        }, "A refused project import: an Error with the problems found, row by row."),
        "TaskList": _list_of("Task", "tasks"),
        "CaseListItem": _object({
            **case,
            "due_at": _timestamp("The earliest due date of the case's open tasks; null if none has one.",
                                 nullable=True),
            "overdue": _boolean("That due date has passed (by the server's clock)."),
            "escalated": _boolean("One of the open tasks went overdue and was escalated."),
        }, "A case in a list, with its nearest deadline."),
        "CaseList": _list_of("CaseListItem", "cases"),
        "ProjectList": _list_of("Project", "projects"),
        "ProcessList": _list_of("Process", "processes"),
        **_campaign_schemas(),
        **_notification_schemas(),
        **_attachment_schemas(),
    }


def _campaign_schemas() -> dict:
    from engine.campaigns import KINDS
    number = {"type": ["number", "null"]}
    summary = {
        "id": _integer("Campaign id."),
        "kind": _string("monitoring or self_assessment.", enum=list(KINDS)),
        "kind_name": _string("Display name of the kind."),
        "process": _string("Key of the process each project's case runs."),
        "year": _integer("Budget year."),
        "title": _string("Title."),
        "cutoff_date": _string("Monitoring cut-off date (YYYY-MM-DD); null for self-assessment.", nullable=True,
                               format="date"),
        "status": _string("open or closed.", enum=["open", "closed"]),
        "started_at": _string("When it was launched (naive UTC, seconds)."),
        "started_by": _string("Who launched it.", nullable=True),
        "draw": {"anyOf": [_object({
            "ratio": {"type": "number", "description": "Share of departments drawn."},
            "seed": _string("Seed of the random draw."),
            "population": {"type": "array", "items": {"type": "string"},
                           "description": "The departments drawn from, sorted."},
            "sampled": {"type": "array", "items": {"type": "string"}, "description": "The departments drawn."},
            "drawn_at": _string("When (naive UTC, seconds)."),
        }, "The spot-check draw: repeat it with engine.rules.sampling.draw(population, ratio, seed)."),
            {"type": "null"}], "description": "The spot-check draw, once made (self-assessment only)."},
    }
    row = _object({
        "case_id": _integer("The project's case."),
        "status": _string("Case status."),
        "current_steps": _string("Where the case stands."),
        "project": _object({"id": _integer("Project id."), "code": _string("Code."), "name": _string("Name."),
                            "is_key": _boolean("Key project.")}, required=["id", "code", "name", "is_key"]),
        "unit": _string("Budget unit."),
        "department": _string("Competent department."),
        "due_at": _timestamp("The earliest due date of the case's open tasks.", nullable=True),
        "overdue": _boolean("That due date has passed."),
        "escalated": _boolean("One of the open tasks went overdue and was escalated."),
        "light": _string("Monitoring: the project's warning light.", nullable=True),
        "key_monitoring": {"type": ["boolean", "null"], "description": "Monitoring: selected for key monitoring."},
        "outcome": _string("Monitoring: finance's outcome.", nullable=True),
        "execution_rate": {**number, "description": "Monitoring: budget execution rate (0-1)."},
        "reduced_amount": _string("Monitoring: funds reduced, in yuan.", nullable=True),
        "score": {**number, "description": "Self-assessment: the unit's score."},
        "grade": _string("Self-assessment: grade of the unit's score.", nullable=True),
        "sampled": {"type": ["boolean", "null"], "description": "Self-assessment: its department was drawn."},
        "review_score": {**number, "description": "Self-assessment: finance's review score."},
        "gap_flag": {"type": ["boolean", "null"], "description": "Self-assessment: scores differ by the flagged gap."},
    }, "One project's case in a campaign (the fields of the campaign's kind).",
        required=["case_id", "status", "current_steps", "project", "unit", "department"])
    return {
        "Campaign": _object(summary, "A monitoring or self-assessment campaign.", required=list(summary)),
        "CampaignDetail": _object({
            **summary, "cases": {"type": "array", "items": _ref("CampaignCase"),
                                 "description": "The cases the caller may see, one per project."},
            "counts": _object({"cases": _integer("Cases shown."), "running": _integer("Running."),
                               "completed": _integer("Completed.")}, required=["cases", "running", "completed"]),
        }, "A campaign with its cases.", required=[*summary, "cases", "counts"]),
        "CampaignCase": row,
        "CampaignList": _object({
            "items": {"type": "array", "items": _ref("Campaign"), "description": "Campaigns, newest year first."},
            "total": _integer("How many.", minimum=0)}, "Campaigns."),
        "LaunchCampaign": _object({
            "kind": _string("monitoring or self_assessment.", enum=list(KINDS)),
            "year": _integer("Budget year; cases open for its projects with approved goals.", minimum=2000,
                             maximum=2100),
            "cutoff_date": _string("Monitoring cut-off date in that year (default: the "
                                   "monitoring.campaign_month_day setting, 30 September).", format="date"),
            "key_projects": {"type": "array", "items": {"type": "string"},
                             "description": "Monitoring: codes of the projects finance monitors itself "
                                            "(default: every key project)."},
            "title": _string("Title (default from kind, year and cut-off)."),
        }, required=["kind", "year"]),
        "RetryCase": _object({
            "data": {"type": "object", "default": {},
                     "description": "Values merged into the failed step's data. Keys starting with '_' are refused."},
            "version": _integer("Id of the process version to run the case on (another version of its process)."),
        }, required=[]),
        "DrawSample": _object({
            "ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                      "description": "Share of departments to draw (default: the spot_check.sample_ratio setting)."},
            "seed": _string("Seed (default: a random one); recorded either way.", minLength=1, maxLength=64),
        }, required=[]),
    }


def _parameters(max_page: int, case_statuses: tuple[str, ...]) -> dict:
    def query(name, schema, description):
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}

    def path(name, description):
        return {"name": name, "in": "path", "required": True,
                "schema": {"type": "integer", "minimum": 0}, "description": description}

    return {
        "CaseId": path("case_id", "Case id."),
        "CampaignId": path("campaign_id", "Campaign id."),
        "AttachmentId": path("attachment_id", "Attachment id."),
        "TaskId": path("task_id", "Task id."),
        "Limit": query("limit", {"type": "integer", "minimum": 1, "maximum": max_page, "default": 50},
                       "Page size."),
        "Offset": query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_INT, "default": 0},
                        "How many matching rows to skip."),
        "Year": query("year", {"type": "integer", "minimum": 0, "maximum": 9999},
                      "Only this budget year (0 or empty: every year)."),
        "Process": query("process", {"type": "string"}, "Only cases of this process key."),
        "Status": query("status", {"type": "string", "enum": list(case_statuses)}, "Only cases in this status."),
        "Org": query("org", {"type": "string"}, "Only cases of this organisation (budget unit code)."),
        "Scope": query("scope", {"type": "string", "enum": ["mine", "group", "all"], "default": "all"},
                       "mine: tasks claimed by or assigned to the caller; group: unclaimed tasks of the "
                       "caller's roles; all: both."),
    }


def _error(description: str) -> dict:
    return {"description": description, "content": {JSON: {"schema": _ref("Error")}}}


def _ok(description: str, schema: str) -> dict:
    return {"description": description, "content": {JSON: {"schema": _ref(schema)}}}


def _param(name: str) -> dict:
    return {"$ref": f"#/components/parameters/{name}"}


UNAUTHORIZED = _error("No valid bearer token.")
TOO_LARGE = _error("The body is larger than the server accepts (MAX_CONTENT_LENGTH, 8 MiB by default).")


def _body(schema: str, description: str) -> dict:
    return {"required": True, "description": description, "content": {JSON: {"schema": _ref(schema)}}}


def _paths() -> dict:
    bad_body = "The body is not a JSON object, or a field is missing or of the wrong type."
    return {
        "/tokens": {"post": {
            "operationId": "createToken", "tags": ["auth"], "summary": "Log in: get a bearer token.",
            "security": [],
            "requestBody": _body("TokenRequest", "The user's credentials."),
            "responses": {
                "201": _ok("A new token.", "Token"),
                "400": _error(bad_body),
                "401": _error("Wrong username or password (the same answer for an unknown user)."),
                "413": TOO_LARGE,
                "429": {**_error("Too many failed log-ins for this username or address; `details.retry_after` "
                                 "gives the seconds to wait."),
                        "headers": {"Retry-After": {"description": "Seconds until another attempt is accepted.",
                                                    "schema": {"type": "integer", "minimum": 1}}}},
            },
        }},
        "/me": {"get": {
            "operationId": "getMe", "tags": ["auth"], "summary": "The calling user and the roles it holds.",
            "responses": {"200": _ok("The caller.", "Me"), "401": UNAUTHORIZED},
        }},
        "/processes": {"get": {
            "operationId": "listProcesses", "tags": ["lookups"],
            "summary": "The latest deployed version of every process.",
            "responses": {"200": _ok("Every process (not paged).", "ProcessList"), "401": UNAUTHORIZED},
        }},
        "/projects": {"get": {
            "operationId": "listProjects", "tags": ["lookups"],
            "summary": "The projects the caller may see (its organisations' projects; every project for "
                       "bureau roles and the third party).",
            "parameters": [_param("Year")],
            "responses": {
                "200": _ok("The visible projects (not paged), newest year first, then by code.", "ProjectList"),
                "400": _error("A query parameter is not a whole number or is out of range."),
                "401": UNAUTHORIZED,
            },
        }},
        "/cases": {
            "post": {
                "operationId": "startCase", "tags": ["cases"], "summary": "Start a case for a project.",
                "requestBody": _body("StartCase", "The process, the project and optional initial data."),
                "responses": {
                    "201": _ok("The new case.", "CaseDetail"),
                    "400": _error(bad_body + " Or the data has a key starting with '_' or the key 'project'."),
                    "401": UNAUTHORIZED,
                    "403": _error("The caller may not see the project, or does not hold the role that "
                                  "starts this process for it."),
                    "404": _error("No such process is deployed, or no such project exists."),
                    "409": _error("The project already has a case of this process in progress "
                                  "(details.case_id names it)."),
                    "413": TOO_LARGE,
                    "422": _error("A script or condition of the diagram failed, e.g. because the start data "
                                  "overwrites a function the diagram calls; nothing was saved."),
                },
            },
            "get": {
                "operationId": "listCases", "tags": ["cases"],
                "summary": "The cases the caller may see, newest first.",
                "parameters": [_param(n) for n in ("Process", "Status", "Org", "Year", "Limit", "Offset")],
                "responses": {
                    "200": _ok("A page of cases.", "CaseList"),
                    "400": _error("A filter or paging parameter is invalid."),
                    "401": UNAUTHORIZED,
                },
            },
        },
        "/cases/{case_id}": {"get": {
            "operationId": "getCase", "tags": ["cases"],
            "summary": "One case with its open tasks, history and data.",
            "parameters": [_param("CaseId")],
            "responses": {
                "200": _ok("The case.", "CaseDetail"),
                "401": UNAUTHORIZED,
                "403": _error("The caller may not see this case."),
                "404": _error("No such case."),
            },
        }},
        "/tasks": {"get": {
            "operationId": "listTasks", "tags": ["tasks"], "summary": "The caller's inbox: open tasks, oldest first.",
            "parameters": [_param("Scope"), _param("Limit"), _param("Offset")],
            "responses": {
                "200": _ok("A page of open tasks.", "TaskList"),
                "400": _error("Unknown scope, or an invalid paging parameter."),
                "401": UNAUTHORIZED,
            },
        }},
        "/tasks/{task_id}": {"get": {
            "operationId": "getTask", "tags": ["tasks"],
            "summary": "One task with its form, prefilled data, instructions and context.",
            "parameters": [_param("TaskId")],
            "responses": {
                "200": _ok("The task.", "TaskDetail"),
                "401": UNAUTHORIZED,
                "403": _error("The caller may neither work on the task nor see its case."),
                "404": _error("No such task."),
            },
        }},
        "/tasks/{task_id}/claim": {"post": {
            "operationId": "claimTask", "tags": ["tasks"],
            "summary": "Claim an open task: it leaves the other role holders' group inbox. Claiming a task "
                       "the caller already holds changes nothing. No body is needed.",
            "parameters": [_param("TaskId")],
            "responses": {
                "200": _ok("The task as it is now.", "Task"),
                "401": UNAUTHORIZED,
                "403": _error("The task is not the caller's: another role or organisation, or claimed by "
                              "someone else."),
                "404": _error("No such task."),
                "409": _error("The task is no longer open (the message says who completed it and when), "
                              "or someone else claimed it first."),
            },
        }},
        "/tasks/{task_id}/unclaim": {"post": {
            "operationId": "unclaimTask", "tags": ["tasks"],
            "summary": "Release a claimed task back to its role's group inbox. Releasing an unclaimed task "
                       "changes nothing. No body is needed.",
            "parameters": [_param("TaskId")],
            "responses": {
                "200": _ok("The task as it is now.", "Task"),
                "400": _error("The task belongs to the case's starter (no role) and cannot be released."),
                "401": UNAUTHORIZED,
                "403": _error("The task is claimed by someone else (only they or an administrator may "
                              "release it)."),
                "404": _error("No such task."),
                "409": _error("The task is no longer open, or it changed meanwhile."),
            },
        }},
        "/tasks/{task_id}/complete": {"post": {
            "operationId": "completeTask", "tags": ["tasks"],
            "summary": "Submit the task's form and move the case on. All or nothing: on any error "
                       "nothing is saved.",
            "parameters": [_param("TaskId")],
            "requestBody": _body("CompleteTask", "The form data."),
            "responses": {
                "200": _ok("The completion.", "Completion"),
                "400": _error("The body is not a JSON object, data is not an object, or the form data is "
                              "invalid: details has one message per field path (e.g. 'comment', "
                              "'indicators.0.unit')."),
                "401": UNAUTHORIZED,
                "403": _error("The task is not the caller's: another role or organisation, or claimed by "
                              "someone else."),
                "404": _error("No such task."),
                "409": _error("The task was already completed (the message says by whom and when), the "
                              "case is not running, or someone else changed the case at the same time."),
                "413": TOO_LARGE,
                "422": _error("A script or condition of the diagram failed; nothing was saved."),
            },
        }},
        "/projects/import": {"post": {
            "operationId": "importProjects", "tags": ["projects"],
            "summary": "Import projects from an .xlsx declaration table laid out like the template. All or "
                       "nothing: every row is checked, and a file with any problem imports no project. Only "
                       "the budget section, the performance section and administrators may import.",
            "requestBody": {"required": True, "description": "The workbook (at most 5 MB and 5,000 projects).",
                            "content": {"multipart/form-data": {"schema": {
                                "type": "object", "required": ["file"],
                                "properties": {"file": {"type": "string", "contentMediaType": XLSX,
                                                        "description": "The .xlsx file."}}}}}},
            "responses": {
                "200": _ok("Every project of the file was created.", "ProjectImport"),
                "400": {"description": "The file was refused and nothing was imported: no file, not an .xlsx, "
                                       "too large, too many rows, no rows, headers unlike the template, or "
                                       "rows with problems (listed in rows).",
                        "content": {JSON: {"schema": _ref("ImportRejected")}}},
                "401": UNAUTHORIZED,
                "403": _error("The caller may not import projects."),
                "409": _error("Someone created one of the file's projects at the same time; nothing was "
                              "imported."),
                "413": TOO_LARGE,
            },
        }},
        "/projects/import/template.xlsx": {"get": {
            "operationId": "getProjectImportTemplate", "tags": ["projects"],
            "summary": "The import template: the columns with a row of hints, and a sheet listing the "
                       "organisations to choose from.",
            "responses": {
                "200": {"description": "The template workbook.",
                        "content": {XLSX: {"schema": {"type": "string", "contentMediaType": XLSX}}}},
                "401": UNAUTHORIZED,
            },
        }},
        "/cases/{case_id}/retry": {"post": {
            "operationId": "retryCase", "tags": ["cases"],
            "summary": "Run the failed step of an errored case again (administrators): optionally merge "
                       "corrected values into that step's data and move the case to another deployed "
                       "version of its process. A retry that fails again changes nothing.",
            "parameters": [_param("CaseId")],
            "requestBody": _body("RetryCase", "The correction, both parts optional."),
            "responses": {
                "200": _ok("The step ran; the case as it is now.", "CaseDetail"),
                "400": _error(bad_body + " Or the data correction or the version is not valid."),
                "401": UNAUTHORIZED,
                "403": _error("Only an administrator retries cases."),
                "404": _error("No such case or version."),
                "409": _error("The case is not errored (nothing to retry), or changed meanwhile."),
                "413": TOO_LARGE,
                "422": _error("The step failed again; the case stays errored, unchanged."),
            },
        }},
        "/campaigns": {
            "get": {
                "operationId": "listCampaigns", "tags": ["campaigns"], "summary": "Campaigns, newest year first.",
                "parameters": [_param("Year")],
                "responses": {"200": _ok("The campaigns.", "CampaignList"), "400": _error("A bad year."),
                              "401": UNAUTHORIZED},
            },
            "post": {
                "operationId": "launchCampaign", "tags": ["campaigns"],
                "summary": "Launch a monitoring or self-assessment campaign: one case per project of the year "
                           "with approved goals, opened at once. Performance section or administrator only.",
                "requestBody": _body("LaunchCampaign", "What to launch."),
                "responses": {
                    "201": _ok("Launched, with its cases.", "CampaignDetail"),
                    "400": _error(bad_body + " Or the year, the cut-off date or a selected project is not valid."),
                    "401": UNAUTHORIZED,
                    "403": _error("Only the performance section runs campaigns."),
                    "409": _error("A campaign of this kind and year (and cut-off date) is open already, or no "
                                  "project of the year has approved goals."),
                    "413": TOO_LARGE,
                },
            },
        },
        "/campaigns/{campaign_id}": {"get": {
            "operationId": "getCampaign", "tags": ["campaigns"], "summary": "A campaign and its cases.",
            "parameters": [_param("CampaignId")],
            "responses": {"200": _ok("The campaign.", "CampaignDetail"), "401": UNAUTHORIZED,
                          "404": _error("No such campaign.")},
        }},
        "/campaigns/{campaign_id}/draw": {"post": {
            "operationId": "drawSpotCheck", "tags": ["campaigns"],
            "summary": "Draw the departments whose self-assessments finance reviews, record the draw, and "
                       "tell every case of the campaign. Once per campaign.",
            "parameters": [_param("CampaignId")],
            "requestBody": {"required": False, "description": "Ratio and seed, both optional.",
                            "content": {JSON: {"schema": _ref("DrawSample")}}},
            "responses": {
                "200": _ok("Drawn.", "CampaignDetail"),
                "400": _error("A bad ratio or seed, or not a self-assessment campaign."),
                "401": UNAUTHORIZED,
                "403": _error("Only the performance section draws."),
                "404": _error("No such campaign."),
                "409": _error("Drawn already (a draw is never repeated), or the campaign is closed."),
            },
        }},
        "/campaigns/{campaign_id}/close": {"post": {
            "operationId": "closeCampaign", "tags": ["campaigns"],
            "summary": "Close a campaign whose cases have all finished.",
            "parameters": [_param("CampaignId")],
            "responses": {
                "200": _ok("Closed (or closed already).", "CampaignDetail"),
                "401": UNAUTHORIZED,
                "403": _error("Only the performance section closes campaigns."),
                "404": _error("No such campaign."),
                "409": _error("Some of its cases are still running."),
            },
        }},
        **_notification_paths(),
        **_attachment_paths(),
        "/openapi.json": {"get": {
            "operationId": "getOpenApi", "tags": ["meta"], "summary": "This document.",
            "security": [],
            "responses": {"200": {"description": "The OpenAPI 3.1 document of this API.",
                                  "content": {JSON: {"schema": {"type": "object"}}}}},
        }},
    }


@lru_cache(maxsize=1)
def _document() -> dict:
    from .api import CASE_STATUSES, MAX_PAGE   # imported here: api imports this module
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PerfBudget API",
            "version": "1",
            "description": "Budget performance workflows: start cases, work on tasks, read cases. "
                           "Get a token with POST /tokens and send it as 'Authorization: Bearer <token>'. "
                           "Every error answers {error, details} with the status code as documented.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}],
        "tags": [
            {"name": "auth", "description": "Tokens and the calling user."},
            {"name": "lookups", "description": "Processes and projects."},
            {"name": "cases", "description": "Starting and reading cases."},
            {"name": "tasks", "description": "Inbox, claiming and completing tasks."},
            {"name": "projects", "description": "Importing projects from a declaration table."},
            {"name": "campaigns", "description": "Monitoring and self-assessment rounds, and the spot-check draw."},
            {"name": "notifications", "description": "The caller's notifications and what is unread."},
            {"name": "attachments", "description": "Files uploaded for a case's tasks."},
            {"name": "meta", "description": "This document."},
        ],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "A token from POST /tokens, valid 30 days.",
            }},
            "parameters": _parameters(MAX_PAGE, CASE_STATUSES),
            "schemas": _schemas(CASE_STATUSES),
        },
    }


def openapi_document() -> dict:
    """The OpenAPI document (a fresh copy of the cached one: callers may change it freely)."""
    return copy.deepcopy(_document())


def _notification_schemas() -> dict:
    from engine.notifications import KINDS
    notification = _object({
        "id": _integer("Notification id."),
        "kind": _string("What it is about: " + ", ".join(KINDS) + " (more may come)."),
        "kind_name": _string("Display name of the kind."),
        "title": _string("One line, for lists and e-mail subjects."),
        "body": _string("The message; for a return, the reviewer's comment."),
        "case_id": _integer("The case concerned.", nullable=True),
        "task_id": _integer("The task concerned (GET /tasks/{task_id}).", nullable=True),
        "created_at": _timestamp("When it was sent."),
        "read_at": _timestamp("When the caller read it; null while unread.", nullable=True),
    }, "A notification to the calling user.")
    return {
        "Notification": notification,
        "NotificationList": _object({
            "items": {"type": "array", "items": _ref("Notification"), "description": "This page, newest first."},
            "total": _integer("How many match in all, across every page.", minimum=0),
            "unread": _integer("How many of the caller's notifications are unread (the bell's count).", minimum=0),
        }, "A page of the caller's notifications."),
        "MarkNotificationsRead": {
            "description": "Either the ids to mark read, or all: true for every unread notification.",
            "oneOf": [
                _object({"ids": {"type": "array", "maxItems": 500, "items": {"type": "integer", "minimum": 1},
                                 "description": "Ids of the caller's notifications (others' ids match nothing)."}}),
                _object({"all": {"const": True, "description": "Every unread notification of the caller."}}),
            ]},
        "NotificationsRead": _object({
            "updated": _integer("How many were unread and are read now.", minimum=0),
            "unread": _integer("How many are still unread.", minimum=0),
        }, "What marking read changed."),
    }


def _notification_paths() -> dict:
    return {
        "/notifications": {"get": {
            "operationId": "listNotifications", "tags": ["notifications"],
            "summary": "The caller's notifications (new tasks, returns, reminders, escalations), newest first.",
            "parameters": [_param("Limit"), _param("Offset"),
                           {"name": "unread", "in": "query", "required": False,
                            "schema": {"type": "string", "enum": ["true", "false"]},
                            "description": "true: only unread notifications."}],
            "responses": {
                "200": _ok("A page of notifications with the unread count.", "NotificationList"),
                "400": _error("An invalid paging parameter, or unread is neither true nor false."),
                "401": UNAUTHORIZED,
            },
        }},
        "/notifications/read": {"post": {
            "operationId": "markNotificationsRead", "tags": ["notifications"],
            "summary": "Mark some or all of the caller's notifications read.",
            "requestBody": _body("MarkNotificationsRead", "Which to mark read."),
            "responses": {
                "200": _ok("Marked.", "NotificationsRead"),
                "400": _error("The body is not a JSON object. Or neither ids nor all: true, or both, or an id is not a whole "
                              "number."),
                "401": UNAUTHORIZED,
                "413": TOO_LARGE,
            },
        }},
    }



def _attachment_schemas() -> dict:
    from engine.attachments import FILES_KEY, MAX_FILES_PER_TASK
    return {
        "Attachment": _object({
            "id": _integer("Attachment id (GET /attachments/{attachment_id} downloads it)."),
            "case_id": _integer("The case."),
            "task_id": _integer("The task it was uploaded for.", nullable=True),
            "step": _string("BPMN element id of that task's step.", nullable=True),
            "task_name": _string("Name of that task's step.", nullable=True),
            "name": _string("The file's name as uploaded (without path parts or control characters).",
                            maxLength=255),
            "size": _integer("Size in bytes.", minimum=1),
            "content_type": _string("What the content was checked to be (not what the client said), e.g. "
                                    "application/pdf."),
            "sha256": _string("SHA-256 of the content, in hex.", pattern="^[0-9a-f]{64}$"),
            "uploaded_by": _string("Username of the uploader."),
            "uploaded_by_name": _string("Display name of the uploader."),
            "uploaded_at": _timestamp("When it was uploaded."),
        }, f"A file uploaded for a task. Completing the task submits its files: the task data gets "
           f"'{FILES_KEY}' (id, name, size, content_type, sha256 of each), and so does the audit log. "
           f"At most {MAX_FILES_PER_TASK} files per task."),
        "AttachmentList": _list_of("Attachment", "attachments"),
    }


def _attachment_paths() -> dict:
    from engine.attachments import ACCEPTED, INLINE_SAFE, MAX_FILE_BYTES, MAX_FILES_PER_TASK
    from .attachments import UPLOAD_BODY_LIMITS
    megabytes = MAX_FILE_BYTES // (1024 * 1024)
    body_limit = UPLOAD_BODY_LIMITS["api.upload_attachment"] // (1024 * 1024)
    binary = {"type": "string", "contentMediaType": "application/octet-stream"}
    download = {media: {"schema": {"type": "string", "contentMediaType": media}}
                for media in (*sorted(INLINE_SAFE), "application/octet-stream")}
    return {
        "/tasks/{task_id}/attachments": {"post": {
            "operationId": "uploadAttachment", "tags": ["attachments"],
            "summary": "Attach a file to an open task the caller may act on. The type is checked by the content "
                       "as well as by the extension.",
            "parameters": [_param("TaskId")],
            "requestBody": {"required": True, "description": f"One file: {ACCEPTED}; at most {megabytes} MB, "
                                                             f"{MAX_FILES_PER_TASK} files per task.",
                            "content": {"multipart/form-data": {"schema": {
                                "type": "object", "required": ["file"],
                                "properties": {"file": {**binary, "description": "The file, with its name."}}}}}},
            "responses": {
                "201": _ok("Attached.", "Attachment"),
                "400": _error("No file, more than one, an empty file, a type not accepted, content that is not "
                              "what the name says (a .pdf that is no PDF), a file over the size limit, the "
                              "task's file limit reached, or the same file attached to the task already."),
                "401": UNAUTHORIZED,
                "403": _error("The caller may not act on the task (another role or organisation, or claimed "
                              "by someone else)."),
                "404": _error("No such task."),
                "409": _error("The task is no longer open (the message says who completed it and when), or "
                              "its case is not running."),
                "413": _error(f"The body is larger than {body_limit} MiB."),
            },
        }},
        "/cases/{case_id}/attachments": {"get": {
            "operationId": "listCaseAttachments", "tags": ["attachments"],
            "summary": "Every file uploaded for the case's tasks, oldest first.",
            "parameters": [_param("CaseId")],
            "responses": {
                "200": _ok("The files (not paged).", "AttachmentList"),
                "401": UNAUTHORIZED,
                "403": _error("The caller may not see this case."),
                "404": _error("No such case."),
            },
        }},
        "/attachments/{attachment_id}": {
            "get": {
                "operationId": "downloadAttachment", "tags": ["attachments"],
                "summary": "Download a file: for anyone who may see its case. Content-Disposition is "
                           "'attachment' with the name in UTF-8 (filename*) and an ASCII fallback; PDFs and "
                           "images keep their type, anything else is application/octet-stream.",
                "parameters": [_param("AttachmentId")],
                "responses": {
                    "200": {"description": "The file.", "content": download},
                    "401": UNAUTHORIZED,
                    "403": _error("The caller may not see the file's case."),
                    "404": _error("No such file (or it was removed)."),
                },
            },
            "delete": {
                "operationId": "deleteAttachment", "tags": ["attachments"],
                "summary": "Remove a file: only its uploader, and only while its task is open (a submitted "
                           "file stays).",
                "parameters": [_param("AttachmentId")],
                "responses": {
                    "200": _ok("Removed; what it was.", "Attachment"),
                    "401": UNAUTHORIZED,
                    "403": _error("The caller did not upload the file, or may not see its case."),
                    "404": _error("No such file."),
                    "409": _error("The file's task was completed: the file was submitted with it."),
                },
            },
        },
    }
