"""Notifications: the bell's count, the page that lists them, their JSON API, and the e-mail outbox.

The API routes are added to the API blueprint itself (as webui/project_import.py does), so they
get bearer tokens, no CSRF and JSON errors; create_app imports this module before it registers
api.bp.

E-mail leaves after the request's transaction has committed: after a successful POST (the only
requests that create notifications), a background thread runs the outbox, so the user never
waits for the mail server and a broken one cannot fail the request. One thread at a time per
process; a request that finds it busy asks it for one more pass. `perfbudget notify-email` runs
the same outbox from cron or by hand, and several outboxes never send one notification twice
(each row is claimed in the database before it is sent).
"""
from __future__ import annotations

import logging
import smtplib
import sys
import threading

import click
from flask import Blueprint, Flask, current_app, g, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from engine.errors import InvalidData
from engine.notifications import EmailSettings

from . import api
from .api import _body, _page, token_required
from .auth import current_actor
from .context import core

# cli_group=None: `notify-email` is a top-level command of `perfbudget`, beside the others.
bp = Blueprint("notifications", __name__, cli_group=None)
log = logging.getLogger(__name__)
PAGE_SIZE = 50


def email_settings(app: Flask) -> EmailSettings:
    """SMTP settings: the app's config key EMAIL_SETTINGS if set (tests), else the environment."""
    settings = app.config.get("EMAIL_SETTINGS")
    if settings is None:
        settings = app.config["EMAIL_SETTINGS"] = EmailSettings.from_env()
    return settings


def send_pending_email(app: Flask, limit: int = 100) -> int:
    """Send the notifications not yet e-mailed (after commit); how many were sent."""
    return app.extensions["perfbudget"].email.send_pending(email_settings(app), limit)


class _Outbox:
    """At most one sending thread per app; a kick while it runs makes it go round once more."""

    def __init__(self):
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.again = False

    def kick(self, app: Flask) -> None:
        with self.lock:
            if self.thread is not None and self.thread.is_alive():
                self.again = True
                return
            self.again = False
            self.thread = threading.Thread(target=self._run, args=(app,), name="perfbudget-email", daemon=True)
            self.thread.start()

    def _run(self, app: Flask) -> None:
        while True:
            try:
                send_pending_email(app)
            except Exception:   # the mail server's trouble is logged, never the user's
                log.exception("sending notification e-mail failed; the next run retries")
            with self.lock:
                if not self.again:
                    return
                self.again = False

    def wait(self, timeout: float = 10.0) -> None:
        """For tests and shutdown: let the running pass finish."""
        thread = self.thread
        if thread is not None:
            thread.join(timeout)


def outbox(app: Flask) -> _Outbox:
    return app.extensions.setdefault("perfbudget_outbox", _Outbox())


@bp.after_app_request
def _mail_after_commit(response):
    # Services commit before the view returns, so what this request notified is in the database.
    if request.method == "POST" and response.status_code < 400 and email_settings(current_app).configured:
        outbox(current_app).kick(current_app._get_current_object())
    return response


@bp.app_context_processor
def _bell():
    # A function, so that only a page that shows the bell pays for the count.
    def unread_notifications() -> int:
        if not getattr(current_user, "is_authenticated", False):
            return 0
        return core().notifications.unread(current_actor().id)
    return {"unread_notifications": unread_notifications}


# ---- pages ----------------------------------------------------------------------------------

@bp.get("/notifications")
@login_required
def page():
    number = min(max(request.args.get("page", 1, type=int) or 1, 1), 100_000)
    listing = core().notifications.page(current_actor().id, PAGE_SIZE, (number - 1) * PAGE_SIZE)
    return render_template("notifications.html", listing=listing, page=number, page_size=PAGE_SIZE)


@bp.post("/notifications/read")
@login_required
def mark_all_read():
    core().notifications.mark_read(current_actor().id)
    return redirect(url_for("notifications.page"))


@bp.get("/notifications/<int:notification_id>")
@login_required
def open_one(notification_id: int):
    # A GET that marks read: opening a notification is reading it, as in any mail client.
    task_id, case_id = core().notifications.open(current_actor().id, notification_id)
    if task_id is not None:
        return redirect(url_for("pages.task", task_id=task_id))
    if case_id is not None:
        return redirect(url_for("pages.case", case_id=case_id))
    return redirect(url_for("notifications.page"))


# ---- JSON API (on the API blueprint: see the module docstring) ------------------------------

@api.bp.get("/notifications")
@token_required
def list_notifications_api():
    limit, offset = _page()
    unread = request.args.get("unread", "")
    if unread not in ("", "true", "false"):
        raise InvalidData("'unread' must be true or false", {"unread": "true or false."})
    return jsonify(core().notifications.page(g.actor.id, limit, offset, unread_only=unread == "true"))


@api.bp.post("/notifications/read")
@token_required
def mark_read_api():
    body = _body()
    ids, everything = body.get("ids"), body.get("all")
    if everything is True and ids is None:
        ids = None          # every unread notification
    elif everything is None and isinstance(ids, list):
        pass                # these (ids of other users' notifications match nothing)
    else:
        raise InvalidData("give either ids (a list) or all: true",
                          {"ids": "A list of notification ids, or leave it out and send all: true."})
    updated = core().notifications.mark_read(g.actor.id, ids)
    return jsonify({"updated": updated, "unread": core().notifications.unread(g.actor.id)})


# ---- command line -----------------------------------------------------------------------------

@bp.cli.command("notify-email")
@click.option("--limit", default=500, show_default=True, type=click.IntRange(1, 100_000),
              help="Send at most this many.")
def notify_email_command(limit):
    """E-mail the notifications not sent yet (needs PERFBUDGET_SMTP_HOST)."""
    app = current_app._get_current_object()
    settings = email_settings(app)
    if not settings.configured:
        click.echo("No SMTP server configured (PERFBUDGET_SMTP_HOST); notifications stay in the app.")
        return
    try:
        sent = send_pending_email(app, limit)
    except (smtplib.SMTPException, OSError) as exc:
        click.secho(f"error: the SMTP server {settings.host}:{settings.port} failed: {exc}", fg="red", err=True)
        sys.exit(1)
    click.echo(f"Sent {sent} notification e-mail{'s' if sent != 1 else ''} through {settings.host}:{settings.port}")
