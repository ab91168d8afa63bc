"""Security headers on every response, session expiry, and the failed-login limits' web side.

Configuration (app.config, defaults set here):
  SESSION_MAX_AGE                 a login lasts at most this long (timedelta; 8 hours)
  SESSION_IDLE_TIMEOUT            ...and ends after this long without a request (30 minutes)
  LOGIN_MAX_FAILURES_PER_USERNAME failed logins that lock a username (5)
  LOGIN_MAX_FAILURES_PER_ADDRESS  failed logins that lock a client address (20)
  LOGIN_FAILURE_WINDOW            how long a failure counts (timedelta; 15 minutes)

Times come from the engine clock, so tests move them with engine.clock.FixedClock.

The client address is request.remote_addr. Behind a reverse proxy that is the proxy's address,
which would put every user under one address limit: wrap the app in werkzeug's ProxyFix,
trusting exactly the proxies in front of it, before serving it that way.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app, flash, redirect, request, session
from flask_login import login_url, logout_user

from engine.login_guard import LoginGuard, LoginLimits, TooManyAttempts

from .context import core
from .errors import error_response

# Only our own files: every script and style sheet is served from /static (no CDN), and no
# template has an inline script, style element or style attribute (case.html's data island is
# <script type="application/json">, which is never executed, so CSP does not apply to it).
# style-src needs no 'unsafe-inline' for bpmn-js: checked in Chromium (tests/test_security.py),
# the viewer styles what it draws through the CSSOM (element.style, SVG presentation
# attributes) and its bundled bpmn.io logo and lightbox the same way, which CSP does not
# restrict; only style attributes in parsed markup or <style> elements would need it.
# data: images and fonts are for the vendored style sheets, which embed SVG icons in CSS.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

SESSION_EXPIRED = "Your session has expired. Please log in again."

_EPOCH = datetime(1970, 1, 1)


def init_app(app) -> None:
    app.config.setdefault("SESSION_MAX_AGE", timedelta(hours=8))
    app.config.setdefault("SESSION_IDLE_TIMEOUT", timedelta(minutes=30))
    app.config.setdefault("LOGIN_MAX_FAILURES_PER_USERNAME", 5)
    app.config.setdefault("LOGIN_MAX_FAILURES_PER_ADDRESS", 20)
    app.config.setdefault("LOGIN_FAILURE_WINDOW", timedelta(minutes=15))
    perfbudget = app.extensions["perfbudget"]
    app.extensions["login_guard"] = LoginGuard(perfbudget.db, perfbudget.clock, perfbudget.accounts, LoginLimits(
        per_username=app.config["LOGIN_MAX_FAILURES_PER_USERNAME"],
        per_address=app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"],
        window=_duration(app.config["LOGIN_FAILURE_WINDOW"])))
    app.before_request(_expire_session)
    app.after_request(_add_headers)
    app.register_error_handler(TooManyAttempts, too_many_attempts)


def _duration(value) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(seconds=value)


# ---- failed-login limits ----------------------------------------------------------------

def login_guard() -> LoginGuard:
    return current_app.extensions["login_guard"]


def client_address() -> str:
    return request.remote_addr or "unknown"


def too_many_attempts(exc: TooManyAttempts):
    """429 with Retry-After, as JSON for the API or a page for people."""
    response = current_app.make_response(error_response(exc.status, exc.message, exc.details))
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


# ---- sessions ---------------------------------------------------------------------------

def _now() -> int:
    return int((core().clock.now() - _EPOCH).total_seconds())


def start_session() -> None:
    """Call right after login_user: the login's age and idle time count from now."""
    session["login_at"] = session["seen_at"] = _now()


def _expired(now: int) -> bool:
    login_at, seen_at = session.get("login_at"), session.get("seen_at")
    if not isinstance(login_at, int) or not isinstance(seen_at, int):
        return True     # a login from before these stamps existed
    max_age = _duration(current_app.config["SESSION_MAX_AGE"]).total_seconds()
    idle = _duration(current_app.config["SESSION_IDLE_TIMEOUT"]).total_seconds()
    return now - login_at >= max_age or now - seen_at >= idle


def _expire_session():
    # The API authenticates with bearer tokens (which expire on their own), never cookies.
    if request.endpoint == "static" or request.blueprint == "api" or "_user_id" not in session:
        return None
    now = _now()
    if not _expired(now):
        if session.get("seen_at") != now:
            session["seen_at"] = now
        return None
    logout_user()
    session.pop("login_at", None)
    session.pop("seen_at", None)
    if request.endpoint == "auth.login":
        if request.method == "GET":
            flash(SESSION_EXPIRED, "warning")
        return None     # the login page itself: show it, or log in again
    flash(SESSION_EXPIRED, "warning")
    # Back to this page after logging in again, unless it was a form post (not repeatable).
    return redirect(login_url("auth.login", request.url if request.method == "GET" else None))


# ---- headers ----------------------------------------------------------------------------

def _add_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "static":
        # Pages and API answers show one user's data: never kept by the browser or a proxy.
        # (A view may say more, as long as it says no-store: downloads send "private, no-store".)
        if "no-store" not in response.headers.get("Cache-Control", ""):
            response.headers["Cache-Control"] = "no-store"
    return response
