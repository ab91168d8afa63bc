"""Performance goals as a contract: what goal-review cases do to the project's records."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, defer, selectinload

from storage import queries
from storage.models import Case, Project, ProjectGoals

from .errors import Conflict

# Display names of the fixed indicator levels and the operators (domain.md, link 2).
INDICATOR_LABELS = {
    "output": "Output", "effect": "Effect", "satisfaction": "Satisfaction",
    "quantity": "Quantity", "quality": "Quality", "timeliness": "Timeliness", "cost": "Cost",
    "economic": "Economic benefit", "social": "Social benefit", "ecological": "Ecological benefit",
    "sustainable": "Sustainable impact", "satisfaction_level2": "Service recipient satisfaction",
    ">=": "≥", ">": ">", "=": "=", "<": "<", "<=": "≤", "qualitative": "",
}



def indicator_label(code: str | None, level: int = 1) -> str:
    """The display name of an indicator level (level 2 'satisfaction' reads differently)."""
    if level == 2 and code == "satisfaction":
        return INDICATOR_LABELS["satisfaction_level2"]
    return INDICATOR_LABELS.get(code or "", code or "")


GOAL_FIELDS = ("project_overview", "basis", "schedule", "safeguards",
               "long_term_goal", "annual_goal", "indicators")


def goals_from_data(data: dict) -> dict:
    return {k: data[k] for k in GOAL_FIELDS if k in data}


# ---- goal versions and what changed between two of them ---------------------------------

NARRATIVE_LABELS = {
    "project_overview": "Project overview", "basis": "Basis, necessity and feasibility",
    "schedule": "Implementation schedule", "safeguards": "Safeguard measures",
    "long_term_goal": "Long-term goal", "annual_goal": "Annual goal",
}


def _text(value) -> str:
    return "" if value is None else " ".join(str(value).split())


def _number(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _text(value)


def _target(indicator: dict) -> str:
    operator = indicator_label(indicator.get("operator"))
    return " ".join(p for p in (operator, _text(indicator.get("target")), _text(indicator.get("unit"))) if p)


def _category(indicator: dict) -> str:
    return " / ".join(p for p in (indicator_label(indicator.get("level1")),
                                  indicator_label(indicator.get("level2"), 2)) if p)


# What a reviewer compares in one indicator, as readable text; operator, target and unit read
# as one value ("≥ 12 sites"), so a changed unit is not mistaken for an unchanged target.
_INDICATOR_ASPECTS = (
    ("category", _category),
    ("target", _target),
    ("weight", lambda i: _number(i.get("weight"))),
    ("core", lambda i: "yes" if i.get("core") else "no"),
    ("evaluation standard", lambda i: _text(i.get("standard"))),
    ("note", lambda i: _text(i.get("note"))),
)


def _indicator_key(indicator: dict) -> str:
    return _text(indicator.get("name")).casefold()


def _summary(indicator: dict) -> str:
    return f"{_target(indicator)}, weight {_number(indicator.get('weight'))}"


def goal_changes(old: dict | None, new: dict) -> list[dict]:
    """What changed from one version of a project's goals to another, for people: narrative
    fields changed, then indicators changed, added or removed. Indicators are matched by
    name (case and spacing aside); order alone is no change. Each change has `kind`
    (field | indicator_changed | indicator_added | indicator_removed), `label` (field title
    or indicator name), `old` and `new` texts, `details` (per changed aspect of an
    indicator: label, old, new) and a one-line `text`."""
    old, new = old or {}, new or {}
    changes: list[dict] = []
    for field, label in NARRATIVE_LABELS.items():
        before, after = _text(old.get(field)), _text(new.get(field))
        if before != after:
            changes.append({"kind": "field", "label": label, "old": before, "new": after, "details": [],
                            "text": f"{label} changed" if before and after
                            else f"{label} {'added' if after else 'removed'}"})
    remaining: dict[str, list[dict]] = {}
    for indicator in old.get("indicators") or []:
        remaining.setdefault(_indicator_key(indicator), []).append(indicator)
    for indicator in new.get("indicators") or []:
        name = _text(indicator.get("name"))
        matches = remaining.get(_indicator_key(indicator))
        if not matches:
            changes.append({"kind": "indicator_added", "label": name, "old": "", "new": _summary(indicator),
                            "details": [], "text": f"Indicator added: {name} ({_summary(indicator)})"})
            continue
        earlier = matches.pop(0)
        details = [{"label": label, "old": show(earlier), "new": show(indicator)}
                   for label, show in _INDICATOR_ASPECTS if show(earlier) != show(indicator)]
        if details:
            changes.append({"kind": "indicator_changed", "label": name, "old": _summary(earlier),
                            "new": _summary(indicator), "details": details,
                            "text": f"Indicator changed: {name}: " + "; ".join(
                                f"{d['label']} {d['old'] or '(none)'} → {d['new'] or '(none)'}" for d in details)})
    for indicator in (i for matches in remaining.values() for i in matches):
        name = _text(indicator.get("name"))
        changes.append({"kind": "indicator_removed", "label": name, "old": _summary(indicator), "new": "",
                        "details": [], "text": f"Indicator removed: {name} (was {_summary(indicator)})"})
    return changes


def goal_versions(s: Session, project_ids, with_goals: bool = False) -> dict[int, list[ProjectGoals]]:
    """The approved goal versions of the projects, oldest first, with who approved each; the
    goals themselves only when asked for (a project list does not need them)."""
    ids = list(project_ids)
    out: dict[int, list[ProjectGoals]] = {pid: [] for pid in ids}
    if not ids:
        return out
    query = (select(ProjectGoals).options(selectinload(ProjectGoals.approved_by))
             .where(ProjectGoals.project_id.in_(ids)).order_by(ProjectGoals.project_id, ProjectGoals.version))
    if not with_goals:
        query = query.options(defer(ProjectGoals.goals))
    for row in s.scalars(query):
        out[row.project_id].append(row)
    return out


def adjustment_under_review(s: Session, project_id: int | None, data: dict) -> dict | None:
    """For a task of an adjustment case: the version being changed, the unit's reason, and
    the changes of the goals in the case data against that version."""
    base_version = data.get("base_version")
    if not data.get("adjustment") or project_id is None or not isinstance(base_version, int):
        return None
    base = s.scalars(select(ProjectGoals).where(ProjectGoals.project_id == project_id,
                                                ProjectGoals.version == base_version)).first()
    return {"base_version": base_version, "reason": data.get("adjustment_reason") or None,
            "changes": goal_changes(base.goals if base else {}, goals_from_data(data))}


def check_can_start(s: Session, project: Project, settings: dict) -> None:
    """A new or key project needs a passed ex-ante evaluation; and one goal review at a time
    per project: two would race to set the approved goals."""
    from .ex_ante import needs_evaluation
    if needs_evaluation(project, settings["project.key_amount"]) and project.ex_ante_status != "support":
        raise Conflict(f"project {project.code} needs a passed ex-ante evaluation before its goals are reviewed "
                       f"(evaluation: {project.ex_ante_status.replace('_', ' ')})",
                       {"ex_ante_status": project.ex_ante_status})
    running = queries.running_case_of_project(s, project.id, "goal_review")
    if running is not None:
        raise Conflict(f"project {project.code} already has a goal review in progress (case {running})",
                       {"case_id": running})


def prepare_start(s: Session, project: Project, data: dict, title: str) -> tuple[dict, str]:
    """A goal review of a project whose goals are approved already is an in-year adjustment:
    it starts from the goals in force (the unit edits them instead of typing them again) and
    says which version it changes. The flags are the system's, whatever the starter sent."""
    data = {k: v for k, v in data.items() if k not in ("adjustment", "base_version")}
    current = queries.latest_goals(s, project.id)
    if current is None:
        return data, title
    return ({**current.goals, **data, "adjustment": True, "base_version": current.version},
            f"Goal adjustment: {title}")


def mark_in_review(s: Session, case: Case, data: dict, actor_id: int | None, now: datetime) -> None:
    if case.project_id is not None:
        queries.set_goals_status(s, case.project_id, "in_review")


def approve(s: Session, case: Case, data: dict, actor_id: int | None, now: datetime) -> None:
    """Keep the approved goals as a new version and mark the project's goals approved; the
    versions before it stay, as the history of what was in force when."""
    project = case.project
    if project is None:
        return
    version = queries.next_goals_version(s, project.id)
    # Told by the versions on record rather than by the case data: a case started before
    # adjustments were flagged still changes goals in force.
    adjustment = version > 1
    queries.add_loaded(s, ProjectGoals(
        project_id=project.id, version=version, case_id=case.id, goals=goals_from_data(data), approved_at=now,
        approved_by_id=actor_id, kind="adjustment" if adjustment else "initial",
        reason=(data.get("adjustment_reason") or None) if adjustment else None))
    queries.set_goals_status(s, project.id, "approved")


def reject(s: Session, case: Case, data: dict, actor_id: int | None, now: datetime) -> None:
    if case.project_id is not None:
        # A rejection of an in-year change leaves the goals approved earlier in force.
        had_goals = queries.latest_goals(s, case.project_id) is not None
        queries.set_goals_status(s, case.project_id, "approved" if had_goals else "rejected")


EFFECT_HANDLERS = {
    "approve_goals": approve,
    "reject_goals": reject,
    "mark_goals_in_review": mark_in_review,
}

START_GUARDS = {"goal_review": check_can_start}
START_DATA = {"goal_review": prepare_start}
