"""Pages over what the links keep: the problem register and the bureau's yearly figures."""
from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import login_required

from engine.rectification import STATUS_LABELS

from .api import _int_arg
from .auth import current_actor
from .context import core

bp = Blueprint("records", __name__)
PROBLEM_FILTERS = ("open", *STATUS_LABELS)


@bp.get("/problems")
@login_required
def problems():
    year = _int_arg("year", 0, 0, 9999) or None
    status = request.args.get("status") or None
    if status not in (None, *PROBLEM_FILTERS):
        status = None
    overdue = request.args.get("overdue") == "1"
    rows = core().records.problems(current_actor(), year, status, overdue)
    return render_template("problems.html", problems=rows, years=core().records.years(), statuses=STATUS_LABELS,
                           filters={"year": year, "status": status, "overdue": overdue})


@bp.get("/figures")
@login_required
def figures():
    years = core().records.years()
    year = _int_arg("year", years[0] if years else core().clock.now().year, 2000, 2100)
    return render_template("figures.html", figures=core().records.figures(current_actor(), year), years=years)
