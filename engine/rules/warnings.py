"""Monitoring warning lights: red, yellow, green, blue.

budget: execution rate / share of the year elapsed: below 60% red, below 80% yellow, else green.
">=" indicators: progress / pro-rata target: below 60% red, below 80% yellow, below 120%
green, else blue. "<=" indicators: red once the value is over the target. A project's light
is its worst light.
"""
from __future__ import annotations

from decimal import Decimal

from .defaults import DEFAULTS, to_decimal

SEVERITY = {"red": 3, "yellow": 2, "green": 1, "blue": 0}


def _band(ratio: Decimal, red_below, yellow_below, blue_from=None) -> str:
    if ratio < to_decimal(red_below):
        return "red"
    if ratio < to_decimal(yellow_below):
        return "yellow"
    if blue_from is not None and ratio >= to_decimal(blue_from):
        return "blue"
    return "green"


def budget_light(budget, spent, year_share, bands: dict | None = None) -> str:
    b = {**_defaults(), **(bands or {})}
    budget, spent, share = to_decimal(budget), to_decimal(spent), to_decimal(year_share)
    if budget <= 0 or share <= 0:
        raise ValueError("budget and the share of the year elapsed must be positive")
    ratio = (spent / budget) / share
    return _band(ratio, b["monitoring.budget_red_below"], b["monitoring.budget_yellow_below"])


def indicator_light(operator: str, target, current, year_share, bands: dict | None = None) -> str | None:
    """The light of one indicator, or None for indicators the rules do not light
    (qualitative, '=' and '<' / '>' are treated like '<=' / '>=')."""
    b = {**_defaults(), **(bands or {})}
    if operator in (">=", ">"):
        target, current, share = to_decimal(target), to_decimal(current), to_decimal(year_share)
        if target <= 0 or share <= 0:
            raise ValueError("target and the share of the year elapsed must be positive")
        ratio = current / (target * share)
        return _band(ratio, b["monitoring.indicator_red_below"], b["monitoring.indicator_yellow_below"],
                     b["monitoring.indicator_blue_from"])
    if operator in ("<=", "<"):
        return "red" if to_decimal(current) > to_decimal(target) else "green"
    return None


def worst(lights) -> str | None:
    lit = [light for light in lights if light is not None]
    return max(lit, key=SEVERITY.__getitem__) if lit else None


def _defaults() -> dict:
    return {k: v for k, v in DEFAULTS.items() if k.startswith("monitoring.")}
