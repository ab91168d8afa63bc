"""Access to the engine from request handlers."""
from __future__ import annotations

from flask import current_app

from engine.app import PerfBudget


def core() -> PerfBudget:
    return current_app.extensions["perfbudget"]
