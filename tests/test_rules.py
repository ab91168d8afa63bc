"""The bureau's rules, from worked examples (domain.md) including its edge cases."""
from decimal import Decimal as D

import pytest

from engine.rules import grading, sampling, warnings
from engine.rules.self_assessment import (
    Line, ScoreRefused, budget_score, qualitative_score, quantitative_score, shortfalls, total,
)


@pytest.mark.parametrize("score, expected", [
    (100, "excellent"), (90, "excellent"), (D("89.99"), "good"), (80, "good"),
    (D("79.5"), "fair"), (60, "fair"), (D("59.99"), "poor"), (0, "poor"),
])
def test_grade_bands(score, expected):
    assert grading.grade(score) == expected


def test_grade_with_configured_cut_offs():
    assert grading.grade(85, {"excellent": 85, "good": 75, "fair": 50}) == "excellent"
    assert grading.grade(74, {"excellent": 85, "good": 75, "fair": 50}) == "fair"


def test_ex_ante_dimension_and_conclusion():
    # Four sub-items of 5 points: excellent 5 + good 4 + good 4 + fair 3 = 16 of 20.
    assert grading.ex_ante_dimension_score(["excellent", "good", "good", "fair"]) == D(16)
    with pytest.raises(ValueError, match="unknown rating"):
        grading.ex_ante_dimension_score(["superb"])
    assert grading.ex_ante_conclusion(80) == "support"
    assert grading.ex_ante_conclusion(D("79.9")) == "adjust"
    assert grading.ex_ante_conclusion(60) == "adjust"
    assert grading.ex_ante_conclusion(D("59.9")) == "reject"
    assert grading.ex_ante_conclusion(70, support_min=70, adjust_min=50) == "support"
    with pytest.raises(ValueError):
        grading.ex_ante_conclusion(70, support_min=50, adjust_min=60)


def test_budget_light():
    # Half the budget spent at 75% of the year: 0.5 / 0.75 = 67% -> yellow.
    assert warnings.budget_light(1_000_000, 500_000, D("0.75")) == "yellow"
    assert warnings.budget_light(1_000_000, 400_000, D("0.75")) == "red"       # 53%
    assert warnings.budget_light(1_000_000, 600_000, D("0.75")) == "green"     # 80%
    assert warnings.budget_light(1_000_000, 600_000, D("0.75"), {"monitoring.budget_yellow_below": 0.9}) == "yellow"


def test_indicator_lights():
    # Target 100 sites, 75% of the year: pro-rata 75.
    assert warnings.indicator_light(">=", 100, 40, D("0.75")) == "red"       # 53%
    assert warnings.indicator_light(">=", 100, 50, D("0.75")) == "yellow"    # 67%
    assert warnings.indicator_light(">=", 100, 60, D("0.75")) == "green"     # 80%
    assert warnings.indicator_light(">=", 100, 90, D("0.75")) == "blue"      # 120%
    assert warnings.indicator_light("<=", 95000, 95000, D("0.75")) == "green"
    assert warnings.indicator_light("<=", 95000, 95001, D("0.75")) == "red"
    assert warnings.indicator_light("qualitative", "on time", "late", D("0.75")) is None
    assert warnings.worst(["green", "blue", "yellow", None]) == "yellow"
    assert warnings.worst(["blue", "green"]) == "green"
    assert warnings.worst([None]) is None


def test_budget_score_caps_at_weight():
    assert budget_score(1000, 950) == D("9.5")
    assert budget_score(1000, 1200) == D(10)


def test_quantitative_scores():
    assert quantitative_score(">=", 100, 120, 20) == D(20)
    assert quantitative_score(">=", 100, 80, 20) == D(16)
    # "<=" between the target and twice the target: (1 - (150 - 100) / 100) x 20 = 10.
    assert quantitative_score("<=", 100, 150, 20) == D(10)
    assert quantitative_score("<=", 100, 100, 20) == D(20)
    assert quantitative_score("<=", 100, 200, 20) == D(0)
    assert quantitative_score("<=", 100, 260, 20) == D(0)
    with pytest.raises(ScoreRefused):
        quantitative_score("qualitative", 1, 1, 10)


def test_qualitative_score_must_lie_in_its_band():
    assert qualitative_score("achieved", 9, 10) == D(9)
    assert qualitative_score("partly", 6, 10) == D(6)
    with pytest.raises(ScoreRefused, match="between 8 and 10"):
        qualitative_score("achieved", 7, 10)
    with pytest.raises(ScoreRefused):
        qualitative_score("not", 7, 10)


def test_dropped_indicators_rescale_to_100():
    lines = [Line(D(10), D(9)), Line(D(50), D(45)), Line(D(30), D(30)), Line(D(10), D(0), applies=False)]
    # 84 of the 90 points that apply -> 93.33 on 100.
    assert total(lines) == D("93.33")
    assert shortfalls(lines) == [0, 1]
    with pytest.raises(ScoreRefused):
        total([Line(D(10), D(5), applies=False)])


def test_sampling_is_reproducible_and_recorded_by_seed():
    departments = [f"dept{i:02d}" for i in range(20)]
    first = sampling.draw(departments, 0.2, "seed-2026")
    assert len(first) == 4
    assert sampling.draw(list(reversed(departments)), 0.2, "seed-2026") == first
    assert set(first) <= set(departments)
    assert sampling.draw(departments, 0.2, "another-seed") != first or len(departments) < 5
    assert sampling.sample_size(3, 0.1) == 1
    assert sampling.sample_size(0, 0.3) == 0
    with pytest.raises(ValueError):
        sampling.sample_size(10, 0)
