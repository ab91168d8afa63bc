"""Grades from scores, and ex-ante conclusions."""
from __future__ import annotations

from decimal import Decimal

from .defaults import DEFAULTS, to_decimal

GRADES = ("excellent", "good", "fair", "poor")


def grade(score, minimums: dict | None = None) -> str:
    """excellent >= 90, good 80-89, fair 60-79, poor < 60 by default."""
    mins = minimums or DEFAULTS["grades.min"]
    value = to_decimal(score)
    for name in ("excellent", "good", "fair"):
        if value >= to_decimal(mins[name]):
            return name
    return "poor"


def ex_ante_dimension_score(ratings: list[str], points: dict | None = None) -> Decimal:
    """A dimension's score: the sum of its sub-items' points (each sub-item is worth 5)."""
    table = points or DEFAULTS["ex_ante.rating_points"]
    total = Decimal(0)
    for rating in ratings:
        if rating not in table:
            raise ValueError(f"unknown rating {rating!r}; use one of {', '.join(table)}")
        total += to_decimal(table[rating])
    return total


def ex_ante_conclusion(total, support_min=None, adjust_min=None) -> str:
    """support (>= 80), adjust (60 to below 80), reject (below 60) by default."""
    support = to_decimal(DEFAULTS["ex_ante.support_min"] if support_min is None else support_min)
    adjust = to_decimal(DEFAULTS["ex_ante.adjust_min"] if adjust_min is None else adjust_min)
    if adjust > support:
        raise ValueError("the adjustment cut-off must not be above the support cut-off")
    value = to_decimal(total)
    if value >= support:
        return "support"
    if value >= adjust:
        return "adjust"
    return "reject"
