"""Template filters: dates, and reading JSON Schema for the form macros."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import current_app

from engine.goals import indicator_label


def format_datetime(value) -> str:
    """A stored time (naive UTC) in the bureau's time zone (PERFBUDGET_TIMEZONE)."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(ZoneInfo(current_app.config["DISPLAY_TIMEZONE"])).strftime("%Y-%m-%d %H:%M")



def is_overdue(value) -> bool:
    """Is a due time (naive UTC, or its ISO text) past, by the engine's clock (tests move it)?"""
    if not value:
        return False
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return False
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value < current_app.extensions["perfbudget"].clock.now()


def schema_options(prop: dict) -> list[tuple[str, str]]:
    """(value, label) pairs of an enum or a oneOf of consts."""
    if "oneOf" in prop and all("const" in o for o in prop["oneOf"]):
        return [(o["const"], o.get("title", str(o["const"]))) for o in prop["oneOf"]]
    if "enum" in prop:
        return [(v, str(v)) for v in prop["enum"]]
    return []


def ordered_fields(schema: dict, ui: dict | None) -> list[str]:
    """Property names in the UI schema's ui:order ('*' stands for the rest)."""
    props = list((schema or {}).get("properties", {}))
    order = (ui or {}).get("ui:order")
    if not order:
        return props
    listed = [n for n in order if n != "*" and n in props]
    rest = [n for n in props if n not in listed]
    out = []
    for n in order:
        if n == "*":
            out.extend(rest)
        elif n in props:
            out.append(n)
    if "*" not in order:
        out.extend(rest)
    return out


def is_table(prop: dict) -> bool:
    return prop.get("type") == "array" and (prop.get("items") or {}).get("type") == "object"


def kind(prop: dict) -> str:
    types = prop.get("type")
    types = types if isinstance(types, list) else [types]
    if is_table(prop):
        return "table"
    if schema_options(prop):
        return "choice"
    for t in ("boolean", "integer", "number"):
        if t in types:
            return t
    return "string"


def option_label(prop: dict, value) -> str:
    for v, label in schema_options(prop):
        if v == value:
            return label
    return "" if value is None else str(value)


def init_app(app) -> None:
    app.add_template_filter(format_datetime, "datetime")
    app.add_template_filter(is_overdue, "overdue")
    from engine.instructions import money
    app.add_template_filter(money, "money")
    app.add_template_global(schema_options)
    app.add_template_global(ordered_fields)
    app.add_template_global(kind)
    app.add_template_global(option_label)
    app.add_template_global(indicator_label)
