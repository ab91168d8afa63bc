"""Login and logout (Flask-Login sessions with hashed passwords)."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user

from engine.access import Actor
from engine.errors import NotAuthenticated

from .context import core

bp = Blueprint("auth", __name__)
login_manager = LoginManager()


class SessionUser(UserMixin):
    def __init__(self, actor: Actor):
        self.actor = actor
        self.id = str(actor.id)


@login_manager.user_loader
def _load_user(user_id: str):
    actor = core().accounts.actor(int(user_id)) if user_id.isdigit() else None
    return SessionUser(actor) if actor else None


def init_app(app) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.session_protection = "strong"


def current_actor() -> Actor:
    return current_user.actor


def _safe_next(target: str | None) -> str:
    # Only same-site paths: a crafted ?next= must not send the user elsewhere.
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("pages.inbox")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("pages.inbox"))
    error = None
    if request.method == "POST":
        try:
            actor = core().accounts.authenticate(request.form.get("username", ""), request.form.get("password", ""))
        except NotAuthenticated as exc:
            error = exc.message
        else:
            login_user(SessionUser(actor))
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=error, username=request.form.get("username", "")), \
        (401 if error else 200)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    flash("You have logged out.")
    return redirect(url_for("auth.login"))
