"""Flask app factory: configuration, extensions and blueprints."""
from __future__ import annotations

import os
import secrets
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from flask_wtf.csrf import CSRFProtect

from engine.app import PerfBudget

csrf = CSRFProtect()


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


class JSONProvider(DefaultJSONProvider):
    def loads(self, s, **kwargs):
        # NaN and Infinity are not JSON: stored, they would make every later answer invalid.
        kwargs.setdefault("parse_constant", _refuse_constant)
        return super().loads(s, **kwargs)

    @staticmethod
    def default(o):
        if isinstance(o, Decimal):
            return str(o)
        if isinstance(o, (datetime, date)):
            return o.isoformat()
        return DefaultJSONProvider.default(o)


def _secret_key(instance: Path) -> str:
    key = os.environ.get("PERFBUDGET_SECRET_KEY")
    if key:
        return key
    path = instance / "secret_key"
    if not path.exists():
        # Generated once and kept, so sessions survive a restart.
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def default_database_url(instance: Path) -> str:
    return f"sqlite:///{instance / 'perfbudget.db'}"


def create_app(test_config: dict | None = None, perfbudget: PerfBudget | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    app.json = JSONProvider(app)
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    app.config.update(
        SECRET_KEY=_secret_key(instance),
        DATABASE_URL=os.environ.get("PERFBUDGET_DATABASE_URL") or default_database_url(instance),
        # Times are stored in UTC and shown in the bureau's zone.
        DISPLAY_TIMEZONE=os.environ.get("PERFBUDGET_TIMEZONE") or "Asia/Shanghai",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=8),
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=8 * 1024 * 1024,
    )
    if test_config:
        app.config.update(test_config)
    try:
        ZoneInfo(app.config["DISPLAY_TIMEZONE"])
    except (ZoneInfoNotFoundError, ValueError):
        raise RuntimeError(f"PERFBUDGET_TIMEZONE: unknown time zone {app.config['DISPLAY_TIMEZONE']!r}") from None
    core = perfbudget or PerfBudget(app.config["DATABASE_URL"])
    app.extensions["perfbudget"] = core

    csrf.init_app(app)
    # project_import and campaigns add their JSON routes to api.bp before it is registered
    from . import admin, api, auth, campaigns, errors, pages, project_import, records, recovery, templating
    templating.init_app(app)
    auth.init_app(app)
    from . import security
    security.init_app(app)   # security headers, session expiry, failed-login limits
    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(project_import.bp)
    app.register_blueprint(campaigns.bp)
    app.register_blueprint(records.bp)
    app.register_blueprint(recovery.bp)
    from . import notifications   # adds its JSON routes to api.bp, so before api.bp is registered
    app.register_blueprint(notifications.bp)
    from . import attachments   # adds its JSON routes to api.bp, so before api.bp is registered
    attachments.init_app(app)   # the upload routes' larger body limit
    app.register_blueprint(attachments.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)   # the API authenticates with bearer tokens, never cookies
    errors.init_app(app)
    from .cli import register
    register(app)
    return app
