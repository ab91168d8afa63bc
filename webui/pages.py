"""HTML pages: inbox, task, case, cases, start. Thin: parse the request, call the engine, render."""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_login import login_required

from engine.errors import InvalidData
from engine.forms import from_form_fields
from engine.roles import ROLES

from .auth import current_actor
from .context import core

bp = Blueprint("pages", __name__)
PAGE_SIZE = 50


@bp.app_context_processor
def _navigation():
    from flask_login import current_user
    if getattr(current_user, "is_authenticated", False):
        count = g.get("inbox_count")
        if count is None:
            count = core().reads.inbox_count(current_actor())
        return {"inbox_count": count, "actor": current_actor(),
                "role_names": ROLES}
    return {"role_names": ROLES}


@bp.route("/")
@login_required
def index():
    return redirect(url_for("pages.inbox"))


@bp.route("/inbox")
@login_required
def inbox():
    actor = current_actor()
    mine, mine_total, group, group_total = core().reads.inbox_page(actor, PAGE_SIZE)
    g.inbox_count = mine_total + group_total   # the badge: 'mine' and 'group' never overlap
    return render_template("inbox.html", mine=mine, mine_total=mine_total, group=group, group_total=group_total)


@bp.route("/tasks/<int:task_id>", methods=["GET", "POST"])
@login_required
def task(task_id: int):
    actor = current_actor()
    detail = core().reads.task(actor, task_id)
    errors, status = {}, 200
    if request.method == "POST":
        data = from_form_fields(detail["form"]["schema"], request.form)
        try:
            result = core().cases.complete(actor, task_id, data)
        except InvalidData as exc:
            errors, status = exc.details, 400
            detail["data"] = data
        else:
            flash(_next_step_message(result), "success")
            return redirect(url_for("pages.inbox"))
    return render_template("task.html", task=detail, errors=errors), status


def _next_step_message(result) -> str:
    done = f"“{result.completed.name}” submitted."
    if result.case.status == "completed":
        return f"{done} The case is complete."
    if not result.next_tasks:
        return f"{done} The case waits at: {result.case.current_steps or 'no open step'}."
    steps = "; ".join(
        f"{t.name} ({ROLES.get(t.role, 'case starter')}{', ' + t.org.name if t.org else ''})"
        for t in result.next_tasks)
    return f"{done} Next step: {steps}."


@bp.post("/tasks/<int:task_id>/claim")
@login_required
def claim(task_id: int):
    core().cases.claim(current_actor(), task_id)
    flash("The task is now yours.", "success")
    return redirect(url_for("pages.task", task_id=task_id))


@bp.post("/tasks/<int:task_id>/unclaim")
@login_required
def unclaim(task_id: int):
    core().cases.unclaim(current_actor(), task_id)
    flash("The task is back in the group inbox.", "success")
    return redirect(url_for("pages.inbox"))


@bp.route("/cases")
@login_required
def cases():
    actor = current_actor()
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), 100_000)
    year = request.args.get("year", type=int)
    filters = {
        "process": request.args.get("process") or None,
        "status": request.args.get("status") or None,
        "year": year if year and 0 < year <= 9999 else None,
        "org": request.args.get("org") or None,
    }
    items, total = core().reads.cases(actor, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, **filters)
    return render_template("cases.html", cases=items, total=total, page=page, page_size=PAGE_SIZE,
                           filters=filters, processes=core().reads.processes())


@bp.route("/cases/<int:case_id>")
@login_required
def case(case_id: int):
    actor = current_actor()
    detail = core().reads.case(actor, case_id)
    xml, completed, current = core().reads.diagram(actor, case_id)
    versions = core().reads.versions_of(detail["process"]) if detail["status"] == "error" and actor.is_admin else []
    return render_template("case.html", case=detail, versions=versions,
                           diagram={"xml": xml, "completed": completed, "current": current})


@bp.route("/projects/<int:project_id>")
@login_required
def project(project_id: int):
    actor = current_actor()
    detail = core().reads.project(actor, project_id)
    items, _ = core().reads.cases(actor, project_id=project_id, limit=PAGE_SIZE)
    # reads.project refused the actor if the project is not theirs to see.
    return render_template("project.html", project=detail, cases=items,
                           record=core().records.project_record(project_id))


@bp.route("/start", methods=["GET", "POST"])
@login_required
def start():
    actor = current_actor()
    if request.method == "POST":
        try:
            project_id = int(request.form.get("project", ""))
        except ValueError:
            raise InvalidData("choose a project", {"project": "This field is required."}) from None
        case = core().cases.start(actor, request.form.get("process", ""), project_id)
        flash(f"Case {case.id} started: {case.current_steps or case.status}.", "success")
        mine, _ = core().reads.inbox(actor, "all", PAGE_SIZE)
        first = next((t for t in mine if t["case_id"] == case.id), None)
        return redirect(url_for("pages.task", task_id=first["id"]) if first
                        else url_for("pages.case", case_id=case.id))
    return render_template("start.html", options=core().reads.start_options(actor))
