"""Rule parameters an administrator edits (weights, bands, thresholds), with their history.

Each setting has a JSON Schema for its value, so the same form machinery that renders and
validates task forms renders and validates settings; semantic checks (ordering of cut-offs,
weights adding up to 100) come on top. Rules read `values()`: the defaults of
rules/defaults.py overlaid with what was changed.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

from storage import queries
from storage.db import Database
from storage.models import Setting, SettingChange

from .access import Actor
from .clock import Clock
from .errors import InvalidData, NotFound, PermissionDenied
from .forms import validate
from .rules.defaults import DEFAULTS

RATINGS = ("excellent", "good", "fair", "poor")
GRADES = ("excellent", "good", "fair")
RESULTS = [{"const": c, "title": t} for c, t in (("priority", "Priority funding"), ("keep", "Funding kept"),
                                                 ("reduce", "Funding reduced"), ("cancel", "Funding cancelled"))]


def _number(title, minimum=0, maximum=None, integer=False, exclusive_min=False):
    schema = {"type": "integer" if integer else "number", "title": title}
    schema["exclusiveMinimum" if exclusive_min else "minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def _obj(properties: dict) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


@dataclass(frozen=True)
class SettingSpec:
    key: str
    label: str
    help: str
    schema: dict            # of the form: an object; scalar settings have one field 'value'
    scalar: bool = False


def _scalar(key, label, help, schema) -> SettingSpec:
    return SettingSpec(key, label, help, _obj({"value": {**schema, "title": label}}), scalar=True)


SPECS: dict[str, SettingSpec] = {s.key: s for s in [
    SettingSpec("ex_ante.rating_points", "Ex-ante sub-item points",
                "Points a 5-point sub-item earns for each rating.",
                _obj({r: _number(r.capitalize(), 0, 5) for r in RATINGS})),
    _scalar("ex_ante.support_min", "Ex-ante: support from", "Total score (of 100) from which the conclusion is "
            "'support'.", _number("", 0, 100)),
    _scalar("ex_ante.adjust_min", "Ex-ante: support after adjustment from", "Total score from which the "
            "conclusion is 'support after adjustment'; below it, 'do not support'.", _number("", 0, 100)),
    _scalar("project.key_amount", "Key project amount (yuan)", "Projects of this amount or more are key "
            "projects.", _number("", 0)),
    SettingSpec("monitoring.bands", "Monitoring warning bands",
                "Ratios of progress to the pro-rata target (budget: execution rate to the share of the year).",
                _obj({"budget_red_below": _number("Budget: red below", 0, 5),
                      "budget_yellow_below": _number("Budget: yellow below", 0, 5),
                      "indicator_red_below": _number("Indicator: red below", 0, 5),
                      "indicator_yellow_below": _number("Indicator: yellow below", 0, 5),
                      "indicator_blue_from": _number("Indicator: blue from", 0, 10)})),
    _scalar("monitoring.campaign_month_day", "Monitoring campaign date", "Month and day (MM-DD) of the "
            "yearly monitoring campaign.", {"type": "string", "pattern": r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"}),
    _scalar("monitoring.campaign_auto_start", "Start the monitoring campaign by itself", "On the campaign "
            "date the system launches the year's monitoring campaign, once.", {"type": "boolean"}),
    SettingSpec("self_assessment.weights", "Self-assessment weights", "Points of each part; they add up to 100.",
                _obj({k: _number(k.capitalize(), 0, 100) for k in ("budget", "output", "effect", "satisfaction")})),
    SettingSpec("self_assessment.qualitative_bands", "Qualitative indicator bands",
                "Share of the weight from which a qualitative indicator counts as achieved or partly achieved.",
                _obj({"achieved": _number("Achieved from", 0, 1), "partly": _number("Partly achieved from", 0, 1)})),
    SettingSpec("grades.min", "Grade cut-offs", "Lowest score of each grade; below 'fair' is 'poor'.",
                _obj({g: _number(g.capitalize(), 0, 100) for g in GRADES})),
    _scalar("spot_check.sample_ratio", "Spot-check sample ratio", "Share of departments drawn for review.",
            _number("", 0, 1, exclusive_min=True)),
    _scalar("spot_check.gap_flag", "Self-score gap flagged", "A review score this many points from the "
            "self score is flagged.", _number("", 0, 100)),
    _scalar("rectification.days", "Rectification deadline (days)", "Days a unit has to rectify a problem.",
            _number("", 1, 365, integer=True)),
    SettingSpec("results.by_grade", "Applying results", "What each evaluation grade means for next year's "
                "funding.", _obj({g: {"title": g.capitalize(), "oneOf": RESULTS} for g in (*GRADES, "poor")})),
]}

# Settings stored as one value; the rest are objects whose fields are the form's fields.
_FLAT_DEFAULTS = {
    "monitoring.bands": {k.split(".", 1)[1]: v for k, v in DEFAULTS.items() if k.startswith("monitoring.")
                         and k not in ("monitoring.campaign_month_day", "monitoring.campaign_auto_start")},
}


def default_value(key: str):
    if key in _FLAT_DEFAULTS:
        return copy.deepcopy(_FLAT_DEFAULTS[key])
    return copy.deepcopy(DEFAULTS[key])


def _check_meaning(key: str, value, current: dict) -> dict[str, str]:
    """Rules a schema cannot say."""
    errors = {}
    if key == "self_assessment.weights" and sum(value.values()) != 100:
        errors["budget"] = f"The weights add up to {sum(value.values())}, not 100."
    if key == "grades.min" and not value["excellent"] > value["good"] > value["fair"]:
        errors["excellent"] = "Cut-offs must fall from excellent to good to fair."
    if key == "self_assessment.qualitative_bands" and not value["achieved"] > value["partly"]:
        errors["achieved"] = "'Achieved' must start above 'partly achieved'."
    if key == "monitoring.bands":
        if not value["budget_red_below"] <= value["budget_yellow_below"]:
            errors["budget_yellow_below"] = "Yellow must start at or above red."
        if not value["indicator_red_below"] <= value["indicator_yellow_below"] <= value["indicator_blue_from"]:
            errors["indicator_yellow_below"] = "Bands must rise from red to yellow to blue."
    if key == "ex_ante.support_min" and value < current["ex_ante.adjust_min"]:
        errors["value"] = "Support must start at or above 'support after adjustment'."
    if key == "ex_ante.adjust_min" and value > current["ex_ante.support_min"]:
        errors["value"] = "'Support after adjustment' must start at or below 'support'."
    return errors


class SettingsService:
    def __init__(self, db: Database, clock: Clock):
        self.db = db
        self.clock = clock

    def values(self, s=None) -> dict:
        """Every setting's value in force; read in the session `s` if given (a transaction
        that acts on them sees them as of its own snapshot, without opening a second one)."""
        if s is not None:
            stored = queries.stored_settings(s)
        else:
            with self.db.reading() as read:
                stored = queries.stored_settings(read)
        return {key: copy.deepcopy(stored[key]) if key in stored else default_value(key) for key in SPECS}

    def describe(self) -> list[dict]:
        values = self.values()
        with self.db.reading() as s:
            stored = queries.stored_settings(s)
        return [{"key": spec.key, "label": spec.label, "help": spec.help, "schema": spec.schema,
                 "scalar": spec.scalar, "value": values[spec.key], "default": default_value(spec.key),
                 "changed": spec.key in stored,
                 "form_data": {"value": values[spec.key]} if spec.scalar else values[spec.key]}
                for spec in SPECS.values()]

    def update(self, actor: Actor, key: str, form_data: dict, reason: str = "") -> object:
        if not actor.is_admin:
            raise PermissionDenied("only an administrator may change settings")
        spec = SPECS.get(key)
        if spec is None:
            raise NotFound(f"no setting '{key}'")
        validate(spec.schema, form_data)
        value = form_data["value"] if spec.scalar else form_data
        errors = _check_meaning(key, value, self.values())
        if errors:
            raise InvalidData("The setting has errors.", errors)
        now = self.clock.now()
        with self.db.transaction() as s:
            row = s.get(Setting, key)
            old = row.value if row is not None else default_value(key)
            if old == value:
                return value
            if row is None:
                s.add(Setting(key=key, value=value, updated_at=now, updated_by_id=actor.id))
            else:
                row.value, row.updated_at, row.updated_by_id = value, now, actor.id
            s.add(SettingChange(key=key, old_value=old, new_value=value, reason=(reason or "")[:2000],
                                at=now, by_id=actor.id))
        return value

    def history(self, key: str | None = None) -> list[dict]:
        with self.db.reading() as s:
            return [{"key": c.key, "label": SPECS[c.key].label if c.key in SPECS else c.key,
                     "old": c.old_value, "new": c.new_value, "reason": c.reason,
                     "at": c.at.isoformat(), "by": c.by.display_name if c.by else None}
                    for c in queries.setting_history(s, key)]
