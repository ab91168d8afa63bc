"""Errors the engine raises; each maps to one HTTP status in webui."""
from __future__ import annotations


class PerfBudgetError(Exception):
    status = 400

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidData(PerfBudgetError):
    status = 400


class NotAuthenticated(PerfBudgetError):
    status = 401


class PermissionDenied(PerfBudgetError):
    status = 403


class NotFound(PerfBudgetError):
    status = 404


class Conflict(PerfBudgetError):
    """Someone else changed the case or completed the task first; nothing was applied."""
    status = 409


class DeploymentError(PerfBudgetError):
    status = 400


class WorkflowError(PerfBudgetError):
    """A script or condition in the diagram failed."""
    status = 422

    def __init__(self, message: str, details: dict | None = None, refuses_input: bool = False):
        super().__init__(message, details)
        # True when a domain calculation refused the submitted values (ValueError): the user can
        # correct them, so nothing is saved. Otherwise the diagram itself failed.
        self.refuses_input = refuses_input
