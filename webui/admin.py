"""Administration pages: rule settings with their history."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import login_required

from engine.errors import InvalidData
from engine.forms import from_form_fields
from engine.settings import SPECS

from .auth import current_actor
from .context import core

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _require_admin():
    if not current_actor().is_admin:
        abort(403, "Only an administrator may change settings.")


@bp.route("/settings")
@login_required
def settings():
    _require_admin()
    return render_template("admin_settings.html", settings=core().settings.describe(), errors={}, failed=None,
                           history=core().settings.history())


@bp.post("/settings/<key>")
@login_required
def update_setting(key: str):
    _require_admin()
    spec = SPECS.get(key)
    if spec is None:
        abort(404, f"No setting '{key}'.")
    data = from_form_fields(spec.schema, request.form)
    try:
        core().settings.update(current_actor(), key, data, request.form.get("reason", ""))
    except InvalidData as exc:
        described = core().settings.describe()
        for item in described:
            if item["key"] == key:
                item["form_data"] = data
        return render_template("admin_settings.html", settings=described, errors=exc.details, failed=key,
                               history=core().settings.history()), 400
    flash(f"“{spec.label}” saved.", "success")
    return redirect(url_for("admin.settings") + f"#setting-{key.replace('.', '-')}")
