"""Importing projects from an .xlsx declaration table: the page, the template, the JSON API.

The page routes live on this module's blueprint. The two API routes are added to the API
blueprint itself (webui.api.bp) rather than to one of their own, so that they get what that
blueprint stands for everywhere: no CSRF check (bearer tokens, never cookies), no cookie-session
expiry (webui/security.py skips the 'api' blueprint) and JSON errors. That is why create_app
imports this module in the same line as webui.api, before it registers api.bp.
"""
from __future__ import annotations

from flask import Blueprint, Response, flash, g, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from engine.project_import import (
    COLUMNS, MAX_BYTES, MAX_ROWS, TEMPLATE_FILENAME, XLSX_MEDIA_TYPE, ImportRejected, ImportResult,
)

from . import api
from .api import token_required
from .auth import current_actor
from .context import core

bp = Blueprint("project_import", __name__)

# Codes listed in the success message; the audit log keeps them all.
LISTED_CODES = 20


@bp.app_context_processor
def _import_link():
    # A function, so that only templates showing the link pay for the check.
    def may_import_projects() -> bool:
        return bool(getattr(current_user, "is_authenticated", False)) and \
            core().project_import.may_import(current_actor())
    return {"may_import_projects": may_import_projects}


def _uploaded() -> tuple[bytes, str | None]:
    upload = request.files.get("file")
    # The whole body is already bounded by MAX_CONTENT_LENGTH; the engine applies its own limit.
    data = upload.read() if upload is not None else b""
    if upload is None or (not upload.filename and not data):
        # A browser sends an empty part without a name when no file was chosen.
        raise ImportRejected("Choose the .xlsx file to import (form field 'file').")
    return data, upload.filename or None


def _template_response() -> Response:
    return Response(core().project_import.template(), mimetype=XLSX_MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{TEMPLATE_FILENAME}"'})


def _success_message(result: ImportResult) -> str:
    shown = ", ".join(result.codes[:LISTED_CODES])
    more = f" and {result.imported - LISTED_CODES} more" if result.imported > LISTED_CODES else ""
    noun = "project" if result.imported == 1 else "projects"
    return f"{result.imported} {noun} imported: {shown}{more}."


# ---- pages ----------------------------------------------------------------------------------

@bp.route("/projects/import", methods=["GET", "POST"])
@login_required
def page():
    actor = current_actor()
    core().project_import.check_may_import(actor)
    error, rows, status = None, [], 200
    if request.method == "POST":
        try:
            data, filename = _uploaded()
            result = core().project_import.import_file(actor, data, filename)
        except ImportRejected as exc:
            error, rows, status = exc.message, exc.rows, 400
        else:
            flash(_success_message(result), "success")
            # Back to the form with a GET, so that reloading the page does not post the file again.
            return redirect(url_for("project_import.page"))
    return render_template("project_import.html", error=error, rows=rows, columns=COLUMNS, max_rows=MAX_ROWS,
                           max_mb=MAX_BYTES // (1024 * 1024)), status


@bp.get("/projects/import/template.xlsx")
@login_required
def template():
    # Any logged-in user: units fill the table in and hand it to finance to import.
    return _template_response()


# ---- JSON API (on the API blueprint: see the module docstring) ------------------------------

@api.bp.post("/projects/import")
@token_required
def import_projects_api():
    # Refuse before reading the upload: a caller without the right learns nothing about its file.
    core().project_import.check_may_import(g.actor)
    try:
        data, filename = _uploaded()
        result = core().project_import.import_file(g.actor, data, filename)
    except ImportRejected as exc:
        return jsonify({"error": exc.message, "details": exc.details, "rows": exc.rows}), 400
    return jsonify({"imported": result.imported, "codes": result.codes})


@api.bp.get("/projects/import/template.xlsx")
@token_required
def project_import_template_api():
    return _template_response()
