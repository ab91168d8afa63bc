"""Login and logout (Flask-Login sessions with hashed passwords)."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user

from engine.access import Actor
from engine.errors import NotAuthenticated
from engine.login_guard import TooManyAttempts

from .context import core
from .security import client_address, login_guard, start_session

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
    error, status, headers = None, 200, {}
    if request.method == "POST":
        try:
            actor = login_guard().authenticate(request.form.get("username", ""), request.form.get("password", ""),
                                               client_address())
        except NotAuthenticated as exc:
            error, status = exc.message, 401
        except TooManyAttempts as exc:
            error, status, headers = exc.message, 429, {"Retry-After": str(exc.retry_after)}
        else:
            login_user(SessionUser(actor))
            start_session()
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=error, username=request.form.get("username", "")), status, headers


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    flash("You have logged out.")
    return redirect(url_for("auth.login"))
