"""Retrying an errored case: the administrator's page form and the JSON route."""
from __future__ import annotations

from flask import Blueprint, flash, g, jsonify, redirect, request, url_for
from flask_login import login_required

from engine import recovery
from engine.errors import Conflict, InvalidData, NotFound, WorkflowError

from . import api
from .api import _body, token_required
from .auth import current_actor
from .context import core

bp = Blueprint("recovery", __name__)


def _version(raw) -> int | None:
    if raw in (None, ""):
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) < 10:   # int('²') fails
        return int(raw)
    raise InvalidData("version must be a process version id", {"version": "A version id."})


@bp.post("/cases/<int:case_id>/retry")
@login_required
def retry(case_id: int):
    try:
        recovery.retry(core().cases, current_actor(), case_id, recovery.parse_patch(request.form.get("data")),
                       _version(request.form.get("version")))
    except (InvalidData, Conflict, WorkflowError, NotFound) as exc:
        flash(f"Not retried: {exc.message}", "error")
    else:
        flash("The failed step ran again; the case goes on.", "success")
    return redirect(url_for("pages.case", case_id=case_id))


@api.bp.post("/cases/<int:case_id>/retry")
@token_required
def api_retry(case_id: int):
    body = _body()
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise InvalidData("data must be an object", {"data": "Expected an object."})
    recovery.retry(core().cases, g.actor, case_id, data, _version(body.get("version")))
    return jsonify(core().reads.case(g.actor, case_id))
