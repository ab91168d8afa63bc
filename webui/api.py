"""JSON API v1: token auth, cases and tasks. Each handler parses, calls the engine, answers."""
from __future__ import annotations

import re
from functools import wraps

from flask import Blueprint, g, jsonify, request

from engine.errors import InvalidData, NotAuthenticated

from .context import core
from .openapi import openapi_document
from .security import client_address, login_guard

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_PAGE = 200
CASE_STATUSES = ("running", "completed", "cancelled", "error")


def token_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        actor = core().accounts.actor_for_token(token.strip()) if scheme.lower() == "bearer" and token else None
        if actor is None:
            raise NotAuthenticated("a valid bearer token is required (POST /api/v1/tokens)")
        g.actor = actor
        return view(*args, **kwargs)
    return wrapper


def _body() -> dict:
    try:
        body = request.get_json(silent=True)
    except RecursionError:      # absurdly nested JSON: the parser gives up, the client gets a 400
        body = None
    if not isinstance(body, dict):
        raise InvalidData("the request body must be a JSON object", {"body": "Expected a JSON object."})
    return body


def _int_arg(name: str, default: int, low: int = 0, high: int = 2**31 - 1) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"-?[0-9]+", raw) or len(raw) > 40:
        raise InvalidData(f"'{name}' must be a whole number", {name: "Expected a whole number."})
    value = int(raw)
    if value < low or (high is not None and value > high):
        raise InvalidData(f"'{name}' is out of range", {name: f"Between {low} and {high}."})
    return value


def _page() -> tuple[int, int]:
    return _int_arg("limit", 50, 1, MAX_PAGE), _int_arg("offset", 0, 0)


@bp.post("/tokens")
def create_token():
    body = _body()
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise InvalidData("username and password are required",
                          {k: "This field is required." for k in ("username", "password")
                           if not isinstance(body.get(k), str)})
    actor = login_guard().authenticate(username, password, client_address())   # 429 while locked
    return jsonify({"token": core().accounts.issue_token(actor)}), 201


@bp.get("/me")
@token_required
def me():
    return jsonify(core().reads.me(g.actor))


@bp.get("/processes")
@token_required
def processes():
    items = core().reads.processes()
    return jsonify({"items": items, "total": len(items)})


@bp.get("/projects")
@token_required
def projects():
    items = core().reads.projects(g.actor, year=_int_arg("year", 0, 0, 9999) or None)
    return jsonify({"items": items, "total": len(items)})


@bp.post("/cases")
@token_required
def start_case():
    body = _body()
    process, project, data = body.get("process"), body.get("project"), body.get("data", {})
    errors = {}
    if not isinstance(process, str) or not process:
        errors["process"] = "This field is required."
    if isinstance(project, bool) or not isinstance(project, (int, str)) or project == "":
        errors["project"] = "Give the project's id or code."
    if not isinstance(data, dict):
        errors["data"] = "Expected an object."
    if errors:
        raise InvalidData("the request has errors", errors)
    return jsonify(core().cases.start(g.actor, process, None, data, answer=core().reads.started_case,
                                      project_ref=project)), 201


@bp.get("/cases")
@token_required
def list_cases():
    limit, offset = _page()
    status = request.args.get("status") or None
    if status and status not in CASE_STATUSES:
        raise InvalidData("unknown status", {"status": f"One of {', '.join(CASE_STATUSES)}."})
    items, total = core().reads.cases(
        g.actor, process=request.args.get("process") or None, status=status,
        org=request.args.get("org") or None, year=_int_arg("year", 0, 0, 9999) or None,
        limit=limit, offset=offset)
    return jsonify({"items": items, "total": total})


@bp.get("/cases/<int:case_id>")
@token_required
def get_case(case_id: int):
    return jsonify(core().reads.case(g.actor, case_id))


@bp.get("/tasks")
@token_required
def list_tasks():
    scope = request.args.get("scope", "all")
    if scope not in ("mine", "group", "all"):
        raise InvalidData("unknown scope", {"scope": "One of mine, group, all."})
    limit, offset = _page()
    items, total = core().reads.inbox(g.actor, scope, limit, offset)
    return jsonify({"items": items, "total": total})


@bp.get("/tasks/<int:task_id>")
@token_required
def get_task(task_id: int):
    return jsonify(core().reads.task(g.actor, task_id))


@bp.post("/tasks/<int:task_id>/claim")
@token_required
def claim(task_id: int):
    core().cases.claim(g.actor, task_id)
    return jsonify(core().reads.task_brief(task_id))


@bp.post("/tasks/<int:task_id>/unclaim")
@token_required
def unclaim(task_id: int):
    core().cases.unclaim(g.actor, task_id)
    return jsonify(core().reads.task_brief(task_id))


@bp.post("/tasks/<int:task_id>/complete")
@token_required
def complete(task_id: int):
    body = _body()
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise InvalidData("data must be an object", {"data": "Expected an object."})
    # The answer is built in the completion's transaction from the rows it holds (not re-read).
    result = core().cases.complete(g.actor, task_id, data, answer=core().reads.completion_answer)
    return jsonify(result.answer)


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())
