"""Engine errors as JSON for the API and as pages for people."""
from __future__ import annotations

from flask import jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from engine.errors import PerfBudgetError


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def error_response(status: int, message: str, details: dict | None = None):
    if _wants_json():
        return jsonify({"error": message, "details": details or {}}), status
    return render_template("error.html", status=status, message=message, details=details or {}), status


def init_app(app) -> None:
    @app.errorhandler(PerfBudgetError)
    def _engine_error(exc: PerfBudgetError):
        return error_response(exc.status, exc.message, exc.details)

    @app.errorhandler(CSRFError)
    def _csrf(exc):
        return error_response(400, "The form expired or was sent from elsewhere; reload the page and try again.")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        return error_response(exc.code or 500, exc.description or exc.name)
