"""Link 4, self-assessment and spot-check review: the scoring table, the score, and what a
`self_assessment_review` case records.

A case starts from the project's approved goals (what the year is measured against) and its
budget. The unit enters what it spent and, per indicator, the actual value (or, for a
qualitative one, the level reached and points inside that level's band), or says that the
indicator does not apply. The rules in `rules/self_assessment.py` score each line; the total
is rescaled to 100 over the lines that apply, and graded. Every line short of full score
needs a cause and an improvement measure: refused per row otherwise.

Weights: the budget line gets the budget weight; each level-1 part (output, effect,
satisfaction) gets its part weight, shared among that part's indicators in proportion to
their weights in the approved goals (the goals weigh indicators against each other, the
settings weigh the parts). A part with no indicator is simply absent: the rescaling covers it.

If the performance section draws the project's department, it reviews the self-assessment on
four criteria and scores the project itself; a gap of `spot_check.gap_flag` points or more
between the two scores is flagged, and every problem found goes to rectification.
"""
from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage import queries
from storage.models import Case, MonitoringRecord, Project, SelfAssessment

from .errors import InvalidData
from .rules import self_assessment as rules
from .rules.grading import grade

CENT = Decimal("0.01")
# The largest amount or value the unit may enter: far beyond any project, and small enough
# that scores and rates round to cents without overflowing decimal precision.
MAX_FIGURE = 10 ** 15
PARTS = ("output", "effect", "satisfaction")
PART_LABELS = {"budget": "Budget", "output": "Output", "effect": "Effect", "satisfaction": "Satisfaction"}
OPERATOR_LABELS = {">=": "≥", ">": ">", "=": "=", "<": "<", "<=": "≤", "qualitative": "qualitative"}
LEVELS = {"achieved": "achieved", "partly": "partly achieved", "not": "not achieved"}
CRITERIA = {
    "completeness": "Completeness of the self-assessment",
    "indicator_rationality": "Rationality of the indicators",
    "data_accuracy": "Accuracy of the data",
    "result_objectivity": "Objectivity of the result",
}
# Form fields of one indicator row: the system's (copied from the basis whatever was sent)
# and the unit's.
BASIS_FIELDS = ("level1", "name", "operator", "target", "unit", "weight")
INPUT_FIELDS = ("not_applicable", "actual", "level", "points", "cause", "measure")


def _dec(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _cents(value) -> float:
    return float(_dec(value).quantize(CENT, rounding=ROUND_HALF_UP))


def _num(value) -> int | float:
    """A weight or amount as JSON shows it best: 10 rather than 10.0."""
    number = _dec(value)
    return int(number) if number == number.to_integral_value() else float(number)


def _set(row: dict) -> dict:
    """A form row without its empty values: what is prefilled or kept is what the form can
    take back as it is (a number field does not accept null)."""
    return {k: v for k, v in row.items() if v is not None}


def _text(value) -> str:
    return " ".join(str(value or "").split())


def _share(total: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """`total` shared in proportion to `weights`, in cents, adding up to `total` exactly (the
    rounding difference goes to the largest share), so full marks are exactly 100."""
    whole = sum(weights, Decimal(0))
    shares = [(total * w / whole).quantize(CENT, rounding=ROUND_HALF_UP) for w in weights]
    if shares:
        largest = max(range(len(shares)), key=lambda i: weights[i])
        shares[largest] += total - sum(shares, Decimal(0))
    return shares


# ---- the case's start: what the year is measured against ---------------------------------

def prepare_start(s: Session, project: Project, data: dict, title: str) -> tuple[dict, str]:
    """The approved goals in force and the year's budget: the project amount less any funds
    that monitoring reduced (finance's outcome recorded in link 3)."""
    goals = queries.latest_goals(s, project.id)
    reduced = s.scalar(select(func.coalesce(func.sum(MonitoringRecord.reduced_amount), 0))
                       .where(MonitoringRecord.project_id == project.id)) or 0
    budget = _dec(project.amount or 0) - _dec(reduced)
    indicators = [{k: item.get(k) for k in ("level1", "level2", "name", "operator", "target", "unit", "weight")}
                  for item in ((goals.goals or {}).get("indicators") or [] if goals else [])]
    data = {**data, "goal_indicators": indicators, "budget": float(budget),
            "goals_version": goals.version if goals else None,
            "annual_goal": ((goals.goals or {}).get("annual_goal") or "") if goals else ""}
    year = (data.get("campaign") or {}).get("year") or project.year
    return data, f"Self-assessment {year}: {title}"


def setup(goal_indicators: list[dict], budget, settings: dict) -> dict:
    """The scoring basis (weights fixed for the case from the settings in force) and the two
    tables the unit fills in, prefilled."""
    weights = settings["self_assessment.weights"]
    bands = settings["self_assessment.qualitative_bands"]
    rows = [dict(item) for item in goal_indicators or []]
    for part in PARTS:
        members = [row for row in rows if row.get("level1") == part]
        if members:
            shares = _share(_dec(weights[part]), [_dec(row.get("weight") or 0) for row in members])
            for row, share in zip(members, shares):
                row["goal_weight"], row["weight"] = row.get("weight"), _num(share)
    basis_rows = [row for row in rows if row.get("level1") in PARTS]
    basis = {
        "budget": _num(budget), "budget_weight": _num(weights["budget"]),
        "part_weights": {part: weights[part] for part in PARTS},
        # As percentages of the weight, for the instructions.
        "bands": {level: _plain(_dec(bands[level]) * 100) for level in ("achieved", "partly")},
        "indicators": basis_rows,
    }
    return {
        "basis": basis,
        "budget_execution": [{"budget": basis["budget"], "weight": basis["budget_weight"],
                              "cause": "", "measure": ""}],
        "indicator_scores": [_set({**{k: row.get(k) for k in BASIS_FIELDS}, "not_applicable": False,
                                   "cause": "", "measure": ""}) for row in basis_rows],
    }


# ---- the unit's self-assessment ------------------------------------------------------------

def _number(value) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = _dec(value)
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _explained(row: dict, errors: dict, where: str, what: str) -> None:
    """A line short of full score: its cause and its improvement measure are required."""
    if not _text(row.get("cause")):
        errors[f"{where}.cause"] = f"Give the cause: {what}."
    if not _text(row.get("measure")):
        errors[f"{where}.measure"] = f"Give the improvement measure: {what}."


def result(budget_execution: list[dict], indicator_scores: list[dict], basis: dict, settings: dict) -> dict:
    """Score the self-assessment; raise InvalidData with one message per field at fault."""
    errors: dict[str, str] = {}
    bands = settings["self_assessment.qualitative_bands"]
    lines: list[rules.Line] = []
    table: list[dict] = []

    # Budget execution.
    budget_rows = list(budget_execution or [])
    if len(budget_rows) != 1:
        raise InvalidData("The budget execution table has one row.", {"budget_execution": "Keep its one row."})
    given = budget_rows[0] if isinstance(budget_rows[0], dict) else {}
    budget, weight = _dec(basis["budget"]), _dec(basis["budget_weight"])
    spent = _number(given.get("spent"))
    budget_row = {"budget": _num(budget), "weight": _num(weight), "spent": given.get("spent"),
                  "rate": None, "score": None, "cause": _text(given.get("cause")),
                  "measure": _text(given.get("measure"))}
    if spent is None or spent < 0:
        errors["budget_execution.0.spent"] = "Enter the amount spent in the year (0 or more)."
    elif spent > MAX_FIGURE:
        errors["budget_execution.0.spent"] = f"Enter an amount of at most {MAX_FIGURE:,} yuan."
    elif budget <= 0:
        errors["budget_execution.0.spent"] = "The project has no budget for the year; the budget line cannot be scored."
    else:
        score = rules.budget_score(budget, spent, weight)
        rate = spent / budget
        budget_row.update(spent=_num(spent), rate=_cents(rate * 100), score=_cents(score))
        lines.append(rules.Line(weight=weight, score=score))
        if score < weight:
            _explained(budget_row, errors, "budget_execution.0",
                       f"execution {budget_row['rate']}% scores {budget_row['score']} of {_plain(weight)}")
        table.append({"part": "budget", "part_label": PART_LABELS["budget"], "name": "Budget execution",
                      "target": f"{_money(budget)} yuan", "actual": f"{_money(spent)} yuan ({budget_row['rate']}%)",
                      "weight": _num(weight), "score": budget_row["score"], "applies": True,
                      "cause": budget_row["cause"], "measure": budget_row["measure"]})

    # Indicators: what they are comes from the basis, whatever the form sent back.
    basis_rows = basis.get("indicators") or []
    given_rows = list(indicator_scores or [])
    if len(given_rows) != len(basis_rows):
        raise InvalidData(f"The indicator table must keep its {len(basis_rows)} rows, one per approved indicator.",
                          {"indicator_scores": f"Keep the {len(basis_rows)} rows of the approved goals."})
    rows = []
    for i, (fixed, sent) in enumerate(zip(basis_rows, given_rows)):
        sent = sent if isinstance(sent, dict) else {}
        where = f"indicator_scores.{i}"
        row = {**{k: fixed.get(k) for k in BASIS_FIELDS}, "not_applicable": bool(sent.get("not_applicable")),
               "actual": None, "level": None, "points": None, "cause": _text(sent.get("cause")),
               "measure": _text(sent.get("measure")), "score": None}
        rows.append(row)
        name, weight, operator = _text(fixed.get("name")), _dec(fixed["weight"]), fixed.get("operator")
        line = {"part": fixed.get("level1"), "part_label": PART_LABELS.get(fixed.get("level1"), ""), "name": name,
                "target": " ".join(p for p in (OPERATOR_LABELS.get(operator, operator) if operator != "qualitative"
                                               else "", _text(fixed.get("target")), _text(fixed.get("unit"))) if p),
                "weight": _num(weight), "score": None, "applies": not row["not_applicable"],
                "cause": row["cause"], "measure": row["measure"]}
        if row["not_applicable"]:
            # Dropped and rescaled away; the reason is what makes dropping it checkable.
            if not row["cause"]:
                errors[f"{where}.cause"] = "Say why this indicator does not apply."
            line["actual"] = "does not apply"
            lines.append(rules.Line(weight=weight, score=Decimal(0), applies=False))
            table.append(line)
            continue
        try:
            if operator == "qualitative":
                row["level"], row["points"] = sent.get("level") or None, sent.get("points")
                points = _number(row["points"])
                if row["level"] not in LEVELS:
                    errors[f"{where}.level"] = "Choose the level reached."
                    continue
                if points is None:
                    errors[f"{where}.points"] = f"Give the points (of {_plain(weight)}) inside the level's band."
                    continue
                score = rules.qualitative_score(row["level"], points, weight, bands)
                line["actual"] = f"{LEVELS[row['level']]} ({_plain(points)} points)"
            else:
                row["actual"] = sent.get("actual")
                actual = _number(row["actual"])
                if actual is None:
                    errors[f"{where}.actual"] = "Enter the actual value."
                    continue
                if abs(actual) > MAX_FIGURE:
                    errors[f"{where}.actual"] = f"Enter a value of at most {MAX_FIGURE:,} in size."
                    continue
                target = _number(fixed.get("target"))
                if target is None:
                    errors[f"{where}.actual"] = (f"The target '{_text(fixed.get('target'))}' is not a number, so "
                                                 "this indicator cannot be scored: mark it as not applying and "
                                                 "say why.")
                    continue
                score = rules.quantitative_score(operator, target, actual, weight)
                line["actual"] = " ".join(p for p in (_plain(actual), _text(fixed.get("unit"))) if p)
        except rules.ScoreRefused as exc:
            field = "points" if operator == "qualitative" else "actual"
            errors[f"{where}.{field}"] = f"{str(exc)[:1].upper()}{str(exc)[1:]} ({name}, weight {_plain(weight)})."
            continue
        row["score"] = line["score"] = _cents(score)
        lines.append(rules.Line(weight=weight, score=score))
        table.append(line)
        if score < weight:
            _explained(row, errors, where, f"'{name}' scores {_cents(score)} of {_plain(weight)}")
    # Lines of weight 0 (a part the settings weigh 0) score nothing either way.
    if not errors and not any(line.applies and line.weight > 0 for line in lines):
        errors["indicator_scores"] = "Nothing is left to score: not every line may be dropped."
    if errors:
        raise InvalidData(_summary(errors, basis_rows), errors)
    total = rules.total(lines)
    return {"budget_execution": [_set(budget_row)], "indicator_scores": [_set(row) for row in rows],
            "score_table": table,
            "total": float(total), "grade": grade(total, settings["grades.min"])}


def _summary(errors: dict, basis_rows: list[dict]) -> str:
    """One sentence naming the rows at fault, for whoever reads only the message."""
    places = []
    for key in errors:
        parts = key.split(".")
        if parts[0] == "budget_execution":
            place = "budget execution"
        elif parts[0] == "indicator_scores" and len(parts) > 1:
            place = f"row {int(parts[1]) + 1} ({_text(basis_rows[int(parts[1])].get('name'))})"
        else:
            place = parts[0].replace("_", " ")
        if place not in places:
            places.append(place)
    missing = any(key.endswith((".cause", ".measure")) for key in errors)
    lead = ("Every line short of full score needs its cause and an improvement measure; "
            if missing else "")
    return f"The self-assessment has errors: {lead}see {', '.join(places)}."


def _plain(value) -> str:
    text = format(_dec(value).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP).normalize(), "f")
    return text


def _money(value) -> str:
    return f"{_dec(value):,.2f}"


# ---- the spot-check review -----------------------------------------------------------------

def review_sheet() -> list[dict]:
    return [{"criterion": key, "rating": None, "comment": ""} for key in CRITERIA]


def review_result(criteria: list[dict], review_score, self_score, gap_points) -> dict:
    """The four criteria in their order, the gap between the two scores and whether it is
    flagged (at least `gap_points` apart)."""
    given = {}
    for row in criteria or []:
        if isinstance(row, dict) and row.get("criterion") in CRITERIA:
            if row["criterion"] in given:
                raise InvalidData("Each criterion is rated once.", {"criteria": "Rate each of the four criteria once."})
            given[row["criterion"]] = row
    missing = [label for key, label in CRITERIA.items() if key not in given]
    if missing:
        raise InvalidData(f"Rate every criterion: {', '.join(missing)}.",
                          {"criteria": "Rate each of the four criteria once."})
    rows = [{"criterion": key, "label": CRITERIA[key], "rating": given[key].get("rating"),
             "comment": _text(given[key].get("comment"))} for key in CRITERIA]
    gap = abs(_dec(review_score) - _dec(self_score))
    return {"criteria": rows, "gap": _cents(gap), "flagged": gap >= _dec(gap_points)}


# ---- what the case records -----------------------------------------------------------------

def _row(s: Session, case: Case) -> SelfAssessment | None:
    return s.scalars(select(SelfAssessment).where(SelfAssessment.case_id == case.id)).first()


def record_self_assessment(s: Session, case: Case, data: dict, actor_id, now: datetime) -> None:
    """Keep the unit's scored lines, total and grade (a resubmission replaces them)."""
    row = _row(s, case)
    if row is None:
        row = SelfAssessment(campaign_id=case.campaign_id, project_id=case.project_id,
                             case_id=case.id, year=(data.get("campaign") or {}).get("year") or case.year,
                             gap_flag=False)
        s.add(row)
    row.lines = {"budget_execution": data.get("budget_execution"), "lines": data.get("score_table"),
                 "achievement_summary": data.get("achievement_summary") or ""}
    row.score = Decimal(str(data["self_score"]))
    row.grade = data["self_grade"]
    row.submitted_at = now
    s.flush()


def record_draw(s: Session, case: Case, data: dict, actor_id, now: datetime) -> None:
    """The draw reached this case: whether its department was drawn."""
    row = _row(s, case)
    if row is not None:
        row.sampled = bool((data.get("draw") or {}).get("sampled"))
        s.flush()


def record_review(s: Session, case: Case, data: dict, actor_id, now: datetime) -> None:
    row = _row(s, case)
    if row is None:
        return
    review = data.get("review") or {}
    row.review = {"criteria": review.get("criteria"), "summary": data.get("review_summary") or "",
                  "gap": review.get("gap"), "problems": [p.get("description") for p in data.get("problems") or []]}
    row.review_score = Decimal(str(data["review_score"]))
    row.gap_flag = bool(review.get("flagged"))
    row.reviewed_at, row.reviewed_by_id = now, actor_id
    s.flush()


def calculations(context) -> dict:
    return {
        "self_assessment_setup": lambda goal_indicators, budget: setup(goal_indicators, budget, context.settings()),
        "self_assessment_result": lambda budget_execution, indicator_scores, basis: result(
            budget_execution, indicator_scores, basis, context.settings()),
        "spot_check_sheet": review_sheet,
        "spot_check_gap_points": lambda: context.settings()["spot_check.gap_flag"],
        "spot_check_result": review_result,
    }


EFFECT_HANDLERS = {
    "record_self_assessment": record_self_assessment,
    "record_spot_check_draw": record_draw,
    "record_spot_check_review": record_review,
}
# Campaigns own the start guard of `self_assessment_review` (its cases are opened by one).
START_GUARDS: dict = {}
START_DATA = {"self_assessment_review": prepare_start}
