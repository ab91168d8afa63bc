"""Default values of every configurable rule (domain.md marks them *configurable*)."""
from __future__ import annotations

from decimal import Decimal

EX_ANTE_DIMENSIONS = ("necessity", "economy", "goal_rationality", "feasibility", "fund_compliance")

DEFAULTS: dict[str, object] = {
    # Ex-ante evaluation: five dimensions of 20 points, sub-items of 5 points rated.
    "ex_ante.rating_points": {"excellent": 5, "good": 4, "fair": 3, "poor": 1},
    "ex_ante.support_min": 80,          # >= support
    "ex_ante.adjust_min": 60,           # >= support after adjustment, below: do not support
    # Key project: amount at or above this, or chosen by finance.
    "project.key_amount": 5_000_000,
    # Monitoring warning bands (ratios).
    "monitoring.budget_red_below": 0.6,
    "monitoring.budget_yellow_below": 0.8,
    "monitoring.indicator_red_below": 0.6,
    "monitoring.indicator_yellow_below": 0.8,
    "monitoring.indicator_blue_from": 1.2,
    "monitoring.campaign_month_day": "09-30",
    # The timer worker launches the year's monitoring campaign on that day by itself.
    "monitoring.campaign_auto_start": True,
    # Self-assessment.
    "self_assessment.weights": {"budget": 10, "output": 50, "effect": 30, "satisfaction": 10},
    # Qualitative indicators: achieved from 80% of the weight, partly from 60%, not achieved below.
    "self_assessment.qualitative_bands": {"achieved": 0.8, "partly": 0.6},
    "grades.min": {"excellent": 90, "good": 80, "fair": 60},
    "spot_check.sample_ratio": 0.2,
    "spot_check.gap_flag": 10,
    "rectification.days": 30,
    "results.by_grade": {"excellent": "priority", "good": "keep", "fair": "reduce", "poor": "cancel"},
}


def to_decimal(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))
