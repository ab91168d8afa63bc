"""Attachments: upload, list, download and remove the files of a case's tasks, as pages (the task
page's panel, swapped in place by htmx) and as JSON API routes.

The API routes are added to the API blueprint itself, like webui/project_import.py's, so that
they get what it stands for (bearer tokens, no CSRF check, JSON errors); create_app imports this
module before it registers api.bp.

Uploads may be larger than the app's MAX_CONTENT_LENGTH (8 MiB): a file may have up to
engine.attachments.MAX_FILE_BYTES. The larger body limit applies to the upload routes only,
through the request class (see UploadRequest), because Flask-WTF's CSRF check reads the form
before any view runs.
"""
from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from flask import Blueprint, Request, Response, flash, g, jsonify, redirect, render_template, request, url_for
from flask_login import login_required

from engine.attachments import ACCEPTED, INLINE_SAFE, MAX_FILE_BYTES, MAX_FILES_PER_TASK, StoredFile, TYPES
from engine.errors import Conflict, InvalidData

from . import api
from .api import token_required
from .auth import current_actor
from .context import core

bp = Blueprint("attachments", __name__)

_MULTIPART_ALLOWANCE = 1024 * 1024
# Request body limits of the upload routes: one file through the API; a few at once from the page.
UPLOAD_BODY_LIMITS = {
    "api.upload_attachment": MAX_FILE_BYTES + _MULTIPART_ALLOWANCE,
    "attachments.upload": 3 * MAX_FILE_BYTES + _MULTIPART_ALLOWANCE,
}
# What the page tells people, and what the file input offers.
LIMITS = {"accepted": ACCEPTED, "max_mb": MAX_FILE_BYTES // (1024 * 1024), "max_files": MAX_FILES_PER_TASK,
          "accept": ",".join("." + ext for ext in TYPES),
          "max_request_mb": 3 * MAX_FILE_BYTES // (1024 * 1024)}
PANEL_HEADER = "X-Attachments-Panel"


class UploadRequest(Request):
    """Flask's request, with a larger body limit on the upload routes (never a smaller one than
    the app's). The route is matched before the CSRF check reads the form, so the limit holds there too."""

    @property
    def max_content_length(self) -> int | None:
        base = super().max_content_length
        rule = self.url_rule
        if getattr(self, "_max_content_length", None) is None and rule is not None \
                and rule.endpoint in UPLOAD_BODY_LIMITS and base is not None:
            return max(base, UPLOAD_BODY_LIMITS[rule.endpoint])
        return base

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        self._max_content_length = value


def init_app(app) -> None:
    app.request_class = UploadRequest
    app.add_template_global(LIMITS, "attachment_limits")


# ---- shared ---------------------------------------------------------------------------------

def _files_sent() -> list[tuple[str, bytes]]:
    # A browser sends one empty part without a name when no file was chosen.
    files = [(part.filename or "", part.read()) for part in request.files.getlist("file")]
    return [(name, content) for name, content in files if name or content]


def content_disposition(name: str, attachment_id: int) -> str:
    """'attachment' with the name in UTF-8 (RFC 5987/6266) and a plain ASCII fallback for old clients."""
    stem, dot, ext = name.rpartition(".")     # a stored name always has an accepted extension
    if not dot:
        stem, ext = name, ""
    stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^A-Za-z0-9 ._()-]+", "_", stem).strip(" _.")
    if not re.search(r"[A-Za-z0-9]", stem):
        # Nothing left of the name in ASCII (e.g. all Chinese): a neutral name.
        stem = f"attachment-{attachment_id}"
    ext = re.sub(r"[^A-Za-z0-9]+", "", ext)
    fallback = f"{stem}.{ext}" if ext else stem
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def file_response(stored: StoredFile) -> Response:
    # Only PDFs and images keep their type; anything else is opaque bytes, so that no browser
    # renders an upload as a page of this site. Always a download, never shown in place.
    mimetype = stored.content_type if stored.content_type in INLINE_SAFE else "application/octet-stream"
    response = Response(stored.content, mimetype=mimetype)
    response.headers["Content-Disposition"] = content_disposition(stored.name, stored.id)
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Never in a shared cache; and, like every page here, not kept by the browser either.
    response.headers["Cache-Control"] = "private, no-store"
    return response


# ---- pages ----------------------------------------------------------------------------------

def _htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def _panel(task_id: int, error: str | None = None, status: int = 200):
    """The task page's attachments panel alone, for htmx to swap in."""
    panel = core().attachments.for_task(current_actor(), task_id)
    html = render_template("attachments_panel.html", panel=panel, error=error)
    return html, status, {PANEL_HEADER: "1"}


def _answer(task_id: int, message: str, error: Conflict | InvalidData | None = None):
    """htmx: the panel (with the refusal, under its status). Otherwise back to the task page,
    with the message flashed."""
    if _htmx():
        return _panel(task_id, error.message if error else None, error.status if error else 200)
    flash(message, "error" if error else "success")
    return redirect(url_for("pages.task", task_id=task_id, _anchor="attachments"), 303)


@bp.post("/tasks/<int:task_id>/attachments")
@login_required
def upload(task_id: int):
    try:
        added = core().attachments.upload_many(current_actor(), task_id, _files_sent())
    except (InvalidData, Conflict) as exc:
        return _answer(task_id, exc.message, exc)
    return _answer(task_id, "Attached " + ", ".join(f"“{a['name']}”" for a in added) + ".")


@bp.post("/tasks/<int:task_id>/attachments/<int:attachment_id>/remove")
@login_required
def remove(task_id: int, attachment_id: int):
    try:
        removed = core().attachments.remove(current_actor(), attachment_id, task_id=task_id)
    except Conflict as exc:
        return _answer(task_id, exc.message, exc)
    return _answer(task_id, f"Removed “{removed['name']}”.")


@bp.get("/attachments/<int:attachment_id>")
@login_required
def download(attachment_id: int):
    return file_response(core().attachments.get(current_actor(), attachment_id))


# ---- JSON API (on the API blueprint: see the module docstring) ------------------------------

@api.bp.post("/tasks/<int:task_id>/attachments")
@token_required
def upload_attachment(task_id: int):
    files = _files_sent()
    if len(files) > 1:
        raise InvalidData("send one file per request (form field 'file')", {"file": "One file only."})
    # (No file at all is refused by the engine, after it checked the caller may act on the task.)
    return jsonify(core().attachments.upload_many(g.actor, task_id, files)[0]), 201


@api.bp.get("/cases/<int:case_id>/attachments")
@token_required
def case_attachments(case_id: int):
    items = core().attachments.for_case(g.actor, case_id)
    return jsonify({"items": items, "total": len(items)})


@api.bp.get("/attachments/<int:attachment_id>")
@token_required
def download_attachment(attachment_id: int):
    return file_response(core().attachments.get(g.actor, attachment_id))


@api.bp.delete("/attachments/<int:attachment_id>")
@token_required
def delete_attachment(attachment_id: int):
    return jsonify(core().attachments.remove(g.actor, attachment_id))
