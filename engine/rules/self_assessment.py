"""Self-assessment scores (domain.md, link 4).

Budget score = spent / budget x budget weight. Quantitative indicators: ">=" full weight when
the actual reaches the target, else actual / target x weight; "<=" full weight when at or
under the target, (1 - (actual - target) / target) x weight between the target and twice the
target, zero from twice the target. Qualitative: a score inside the band of the level
reached (achieved 80-100%, partly 60-80%, not achieved 0-60% of the weight), anything else
is refused. Indicators that do not apply are dropped and the total rescaled to 100.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from .defaults import DEFAULTS, to_decimal

CENT = Decimal("0.01")


class ScoreRefused(ValueError):
    """A score the rules do not allow (e.g. a qualitative score outside its band)."""


def budget_score(budget, spent, weight=None) -> Decimal:
    weight = to_decimal(DEFAULTS["self_assessment.weights"]["budget"] if weight is None else weight)
    budget, spent = to_decimal(budget), to_decimal(spent)
    if budget <= 0:
        raise ScoreRefused("the budget must be positive")
    return min(spent / budget, Decimal(1)) * weight


def quantitative_score(operator: str, target, actual, weight) -> Decimal:
    target, actual, weight = to_decimal(target), to_decimal(actual), to_decimal(weight)
    if operator in (">=", ">", "="):
        if target <= 0:
            raise ScoreRefused("a '≥' target must be positive")
        if operator == "=":
            # Like '≥' below: a negative actual scores nothing, never less than nothing.
            return weight if actual == target else min(max(actual, Decimal(0)) / target, Decimal(1)) * weight
        return weight if actual >= target else max(actual, Decimal(0)) / target * weight
    if operator in ("<=", "<"):
        if target <= 0:
            raise ScoreRefused("a '≤' target must be positive")
        if actual <= target:
            return weight
        if actual >= 2 * target:
            return Decimal(0)
        return (1 - (actual - target) / target) * weight
    raise ScoreRefused(f"operator {operator!r} is not quantitative")


def qualitative_bands(bands: dict | None = None) -> dict[str, tuple[Decimal, Decimal]]:
    """Each level's band as shares of the weight, from the two configured lower bounds."""
    b = bands or DEFAULTS["self_assessment.qualitative_bands"]
    achieved, partly = to_decimal(b["achieved"]), to_decimal(b["partly"])
    return {"achieved": (achieved, Decimal(1)), "partly": (partly, achieved), "not": (Decimal(0), partly)}


def qualitative_score(level: str, score, weight, bands: dict | None = None) -> Decimal:
    table = qualitative_bands(bands)
    if level not in table:
        raise ScoreRefused(f"unknown level {level!r}; use one of {', '.join(table)}")
    low, high = (x * to_decimal(weight) for x in table[level])
    value = to_decimal(score)
    if not (low <= value <= high):
        raise ScoreRefused(f"a '{level}' score must lie between {_plain(low)} and {_plain(high)}")
    return value


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


@dataclass
class Line:
    """One scored line: its weight, its score, and whether it applies."""
    weight: Decimal
    score: Decimal
    applies: bool = True


def total(lines: list[Line]) -> Decimal:
    """The total on 100: lines that do not apply are dropped and the rest rescaled."""
    applying = [line for line in lines if line.applies]
    weight = sum((to_decimal(line.weight) for line in applying), Decimal(0))
    if weight <= 0:
        raise ScoreRefused("no scored line applies")
    raw = sum((to_decimal(line.score) for line in applying), Decimal(0))
    return (raw * 100 / weight).quantize(CENT, rounding=ROUND_HALF_UP)


def shortfalls(lines: list[Line]) -> list[int]:
    """Indexes of applying lines that lost points: each needs a cause and a measure."""
    return [i for i, line in enumerate(lines) if line.applies and to_decimal(line.score) < to_decimal(line.weight)]
