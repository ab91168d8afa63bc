"""Link 3, operation monitoring: the unit's self-monitoring report, its warning lights, and
what finance decides.

A monitoring campaign opens one case per budget project at a cut-off date. The case starts
from the approved goals (`prepare_start`): one progress row per indicator, for the unit to
fill in with the current and the expected year-end value. `monitoring_report` computes the
execution rate, the share of the year elapsed and the lights with the rules of
`rules/warnings.py` and the bands an administrator set; the effects keep the report, the
unit's explanation and finance's outcome in one `monitoring_records` row per case.

Checks that need the case (the budget, the approved indicators) run in the effect handlers:
they raise InvalidData with the field, so a bad report is a 400 at that field and nothing
of the submission is kept.
"""
from __future__ import annotations

import calendar
import math
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import queries
from storage.models import Case, MonitoringRecord, Project

from .errors import InvalidData
from .rules import warnings
from .rules.defaults import DEFAULTS, to_decimal

OPERATOR_LABELS = {">=": "≥", ">": ">", "=": "=", "<": "<", "<=": "≤", "qualitative": "qualitative"}
QUANTITATIVE = (">=", ">", "=", "<", "<=")
# Words, not coloured symbols: a server without an emoji font shows those as boxes.
LIGHT_LABELS = {"red": "Red", "yellow": "Yellow", "green": "Green", "blue": "Blue", None: "not lit"}
OUTCOMES = {"continue": "Continue", "correct": "Correct", "adjust_budget": "Adjust the budget",
            "reduce_funds": "Reduce or recover funds", "suspend": "Suspend payments"}
# What the unit types into a progress row; the rest of the row comes from the approved goals.
ENTRY_FIELDS = ("current", "expected", "likelihood", "note")
IDENTITY_FIELDS = ("level1", "name", "operator", "target", "unit")
# The largest figure a report takes (a typing slip beyond it would overflow the rounding).
MAX_FIGURE = 10 ** 15
BAND_DEFAULTS = {key: value for key, value in DEFAULTS.items()
                 if key.startswith("monitoring.")
                 and key not in ("monitoring.campaign_month_day", "monitoring.campaign_auto_start")}


# ---- the rules, as pure functions ---------------------------------------------------------

def year_share(cutoff: date) -> Decimal:
    """Share of the year elapsed at the end of the cut-off day: days / days in the year
    (30 September 2027: 273 / 365). Days rather than months, so any cut-off date works."""
    days = 366 if calendar.isleap(cutoff.year) else 365
    return Decimal(cutoff.timetuple().tm_yday) / Decimal(days)


def bands_from(settings: dict) -> dict:
    """The `monitoring.bands` setting in the flat keys the warning rules take."""
    return {f"monitoring.{key}": value for key, value in (settings.get("monitoring.bands") or {}).items()}


def _number(value) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = to_decimal(value) if isinstance(value, (int, float, Decimal)) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _pct(ratio: Decimal | None) -> str | None:
    return None if ratio is None else f"{ratio * 100:.1f}%"


def _round(value: Decimal | None, places: int = 4) -> float | None:
    if value is None:
        return None
    try:
        return float(round(value, places))
    except InvalidOperation:
        # More digits than decimal precision: a ratio against an absurdly small or large
        # approved target. Shown unrounded, or not at all beyond what JSON can hold.
        number = float(value)
        return number if math.isfinite(number) else None


def _plain(value: Decimal | None):
    """A number for the task data (JSON): whole numbers stay whole."""
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def _shown(value) -> str:
    return "—" if value in (None, "") else str(value)


def bands_text(bands: dict) -> str:
    def pct(key):
        return f"{float(bands[key]) * 100:g}%"
    return (f"budget red below {pct('budget_red_below')}, yellow below {pct('budget_yellow_below')}; "
            f"≥ indicators red below {pct('indicator_red_below')}, yellow below {pct('indicator_yellow_below')}, "
            f"blue from {pct('indicator_blue_from')}")


def _cell(value) -> str:
    """Text for a Markdown table cell in the instructions: a '|' would end the cell."""
    return "" if value is None else " ".join(str(value).replace("|", "/").split())


def identity(indicator: dict) -> dict:
    """An approved indicator's own columns (those it has: a qualitative one has no unit)."""
    return {key: indicator[key] for key in IDENTITY_FIELDS if indicator.get(key) not in (None, "")}


def indicator_row(indicator: dict, entry: dict, share: Decimal, bands: dict) -> tuple[dict, dict]:
    """One indicator's line of the report, and the errors of the unit's entry for it."""
    operator = indicator.get("operator") or "qualitative"
    row = identity(indicator)
    row.update({key: entry.get(key) for key in ENTRY_FIELDS if entry.get(key) not in (None, "")})
    errors: dict[str, str] = {}
    row.update(operator_label=OPERATOR_LABELS.get(operator, operator), light=None, ratio=None, ratio_pct=None,
               pro_rata_target=None, deviation=None, deviation_text=None)
    target_text = " ".join(str(p) for p in (OPERATOR_LABELS.get(operator, operator) if operator in QUANTITATIVE
                                            else "", indicator.get("target"), indicator.get("unit")) if p)
    row["label"] = _cell(f"{indicator.get('name')} ({target_text})")
    if operator not in QUANTITATIVE:
        return row, errors
    current, expected = _number(entry.get("current")), _number(entry.get("expected"))
    for field, value in (("current", current), ("expected", expected)):
        if value is None:
            errors[field] = "Enter a number: this indicator is quantitative."
        elif abs(value) > MAX_FIGURE:
            # Beyond what any indicator measures, and beyond what the ratios can be computed on.
            errors[field] = f"Enter a number of at most {MAX_FIGURE:,} in size."
    target = _number(indicator.get("target"))
    if errors or target is None:
        return row, errors      # an approved target that is not a number lights nothing
    row["current"], row["expected"] = _plain(current), _plain(expected)
    deviation = expected - target
    row["deviation"] = _plain(deviation)
    if deviation == 0:
        row["deviation_text"] = "on target"
    elif target != 0:
        sign = "+" if deviation > 0 else ""
        row["deviation_text"] = f"{sign}{_pct(deviation / abs(target))} against the target"
    if operator in (">=", ">") and target > 0:
        pro_rata = target * share
        ratio = current / pro_rata
        row.update(pro_rata_target=_round(pro_rata, 2), ratio=_round(ratio), ratio_pct=_pct(ratio))
    if operator in (">=", ">") and target <= 0:
        return row, errors      # a target of zero has no pro-rata share to measure against
    row["light"] = warnings.indicator_light(operator, target, current, share, bands)
    return row, errors


def report(budget, spent, cutoff: date, indicators: list[dict], progress: list[dict], bands: dict) -> dict:
    """The monitoring report at the cut-off date: execution rate against the share of the year
    elapsed, each indicator's progress against its pro-rata target, the lights, and the
    errors of the unit's figures (by form field). The project's light is the worst light."""
    errors: dict[str, str] = {}
    budget = to_decimal(budget or 0)
    share = year_share(cutoff)
    spent_number = _number(spent)
    out = {"cutoff_date": cutoff.isoformat(), "year_share": _round(share), "year_share_pct": _pct(share),
           "budget": _plain(budget), "spent": _plain(spent_number), "execution_rate": None,
           "execution_rate_pct": None, "budget_ratio": None, "budget_ratio_pct": None, "budget_light": None}
    if spent_number is None or spent_number < 0:
        errors["spent"] = "Enter the amount spent to date (0 or more)."
    elif spent_number > budget:
        errors["spent"] = f"More than the project's budget of {budget:,.2f} yuan."
    elif budget > 0:
        rate = spent_number / budget
        ratio = rate / share
        out.update(execution_rate=_round(rate), execution_rate_pct=_pct(rate), budget_ratio=_round(ratio),
                   budget_ratio_pct=_pct(ratio), budget_light=warnings.budget_light(budget, spent_number, share, bands))
    progress = progress if isinstance(progress, list) else []
    if len(progress) != len(indicators):
        errors["progress"] = (f"Keep one row per approved indicator ({len(indicators)}), "
                              f"in the order given; {len(progress)} were sent.")
    rows = []
    for i, indicator in enumerate(indicators):
        entry = progress[i] if i < len(progress) and isinstance(progress[i], dict) else {}
        row, row_errors = indicator_row(indicator, entry, share, bands)
        rows.append(row)
        errors.update({f"progress.{i}.{field}": message for field, message in row_errors.items()})
    out["indicators"] = rows
    # What the unit's progress table holds from now on: its figures under the approved
    # indicators, whatever it sent in the indicators' own columns.
    out["progress"] = [{**identity(indicator),
                        **{k: row[k] for k in ENTRY_FIELDS if row.get(k) not in (None, "")}}
                       for indicator, row in zip(indicators, rows)]
    out["light"] = warnings.worst([out["budget_light"], *(row["light"] for row in rows)])
    out["light_label"] = LIGHT_LABELS[out["light"]]
    out["budget_light_label"] = LIGHT_LABELS[out["budget_light"]]
    for row in rows:
        row["light_label"] = LIGHT_LABELS[row["light"]]
        # Table cells for the instructions (values the unit typed may hold a '|').
        row["figures"] = _cell(f"now {_shown(row.get('current'))}, year end {_shown(row.get('expected'))}"
                               + (f" ({row['deviation_text']})" if row["deviation_text"] else ""))
        row["against"] = _cell(f"pro-rata target {row['pro_rata_target']:g}" if row["pro_rata_target"] is not None
                               else f"target {row.get('target')}")
    # The bands these lights were computed with, shown to the people who act on them.
    out["bands"] = {key.split(".", 1)[1]: value for key, value in {**BAND_DEFAULTS, **bands}.items()}
    out["bands_text"] = bands_text(out["bands"])
    out["errors"] = errors
    return out


def _cutoff(campaign) -> date:
    try:
        return date.fromisoformat(str((campaign or {}).get("cutoff_date")))
    except ValueError:
        raise ValueError("the case has no campaign cut-off date; monitoring cases are opened by a campaign") from None


def calculations(context) -> dict:
    def monitoring_report(project, campaign, spent, goal_indicators, progress):
        return report(project["amount"], spent, _cutoff(campaign), goal_indicators or [], progress,
                      bands_from(context.settings()))

    return {"monitoring_report": monitoring_report}


# ---- starting a case ------------------------------------------------------------------------

def prepare_start(s: Session, project: Project, data: dict, title: str) -> tuple[dict, str]:
    """The unit starts from its approved goals: one progress row per indicator (what it is
    measured against), and the indicators themselves as the case holds them."""
    goals = queries.latest_goals(s, project.id)
    approved = (goals.goals if goals else {}).get("indicators") or []
    indicators = [identity(i) for i in approved if isinstance(i, dict)]
    data = {**data, "goal_indicators": indicators, "goals_version": goals.version if goals else None,
            "annual_goal": (goals.goals if goals else {}).get("annual_goal") or "",
            "progress": [dict(i) for i in indicators]}
    cutoff = (data.get("campaign") or {}).get("cutoff_date")
    return data, f"{title}, monitoring at {cutoff}" if cutoff else title


START_DATA = {"operation_monitoring": prepare_start}


# ---- effects: the monitoring record ---------------------------------------------------------

def _record(s: Session, case: Case, data: dict) -> MonitoringRecord:
    row = s.scalars(select(MonitoringRecord).where(MonitoringRecord.case_id == case.id)).first()
    if row is None:
        row = MonitoringRecord(case_id=case.id, project_id=case.project_id, campaign_id=case.campaign_id,
                               measures="", explanation="", findings="")
        s.add(row)
    return row


def _raise_errors(errors: dict) -> None:
    if errors:
        raise InvalidData("The report has errors.", dict(errors))


def record_report(s: Session, case: Case, data: dict, actor_id, now: datetime) -> None:
    """Keep the unit's report and its lights (again after a return: the same row)."""
    result = data.get("report") or {}
    _raise_errors(result.get("errors"))
    row = _record(s, case, data)
    row.cutoff_date = date.fromisoformat(result["cutoff_date"])
    row.budget = to_decimal(result["budget"])
    row.spent = to_decimal(result["spent"])
    row.execution_rate = to_decimal(result["execution_rate"]) if result.get("execution_rate") is not None else None
    row.budget_light, row.light = result.get("budget_light"), result.get("light")
    row.indicators = [{k: r.get(k) for k in ("level1", "name", "operator", "target", "unit", "current", "expected",
                                             "likelihood", "note", "pro_rata_target", "ratio", "deviation", "light")}
                      for r in result.get("indicators") or []]
    if row.light not in ("red", "yellow"):
        # A corrected report without a warning: an explanation of an earlier warning no
        # longer describes it (the audit log keeps what was said).
        row.causes, row.explanation, row.measures = None, "", ""
    row.key_monitoring = bool(data.get("key_monitoring"))
    row.reported_at = now
    s.flush()


def record_explanation(s: Session, case: Case, data: dict, actor_id, now: datetime) -> None:
    row = _record(s, case, data)
    row.causes = list(data.get("causes") or [])
    row.explanation = str(data.get("explanation") or "")
    row.measures = str(data.get("measures") or "")
    s.flush()


def record_outcome(s: Session, case: Case, data: dict, actor_id, now: datetime) -> None:
    """Keep what finance decided; a reduction needs its amount, at most the budget. A green
    project outside key monitoring continues without anyone deciding (decided_by stays empty)."""
    outcome = data.get("outcome")
    if outcome not in OUTCOMES:
        raise InvalidData("choose the outcome of the monitoring", {"outcome": "Choose one of the listed values."})
    row = _record(s, case, data)
    amount = None
    if outcome == "reduce_funds":
        amount = _number(data.get("reduced_amount"))
        if amount is None or amount <= 0:
            raise InvalidData("a reduction needs the amount reduced",
                              {"reduced_amount": "Enter the amount reduced or recovered (more than 0)."})
        budget = row.budget if row.budget is not None else to_decimal(case.project.amount or 0)
        if amount > budget:
            raise InvalidData("the amount reduced is more than the project's budget",
                              {"reduced_amount": f"At most the budget of {budget:,.2f} yuan."})
    automatic = bool(data.get("outcome_automatic"))
    row.outcome, row.reduced_amount = outcome, amount
    row.findings = "" if automatic else str(data.get("monitoring_comment") or "")
    row.decided_at, row.decided_by_id = now, None if automatic else actor_id
    s.flush()


EFFECT_HANDLERS = {
    "record_monitoring_report": record_report,
    "record_monitoring_explanation": record_explanation,
    "record_monitoring_outcome": record_outcome,
}
START_GUARDS: dict = {}
