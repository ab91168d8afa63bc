"""`perfbudget demo`: cases of all five links at different stages, and safe to run again."""
from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from engine import demo
from storage.models import Campaign, Case, KeyEvaluation, MonitoringRecord, Problem

LINKS = ("ex_ante_evaluation", "goal_review", "operation_monitoring", "self_assessment_review", "key_evaluation",
         "rectification")


def snapshot(core) -> dict:
    with core.db.reading() as s:
        cases = s.scalars(select(Case)).all()
        return {
            "status": Counter((c.process_key, c.status) for c in cases),
            "steps": {key: {c.current_steps for c in cases if c.process_key == key and c.status == "running"}
                      for key in LINKS},
            "campaigns": sorted((c.kind, c.year) for c in s.scalars(select(Campaign))),
            "problems": Counter(p.status for p in s.scalars(select(Problem))),
            "lights": Counter(m.light for m in s.scalars(select(MonitoringRecord))),
            "evaluations": s.scalar(select(func.count()).select_from(KeyEvaluation)),
        }


def test_demo_has_cases_of_every_link_at_different_stages_and_loads_again_safely(core):
    demo.load(core)         # on top of the organisations, users and projects every test starts with
    first = snapshot(core)
    status, steps = first["status"], first["steps"]
    for key in ("ex_ante_evaluation", "goal_review", "operation_monitoring", "self_assessment_review",
                "key_evaluation"):
        assert status[(key, "running")] >= 1, key
    for key in ("goal_review", "operation_monitoring", "self_assessment_review", "key_evaluation"):
        assert status[(key, "completed")] >= 1, key
    # Running cases stand at different steps, rectification of found problems included.
    assert len(steps["goal_review"]) >= 4 and len(steps["operation_monitoring"]) >= 2
    assert len(steps["key_evaluation"]) >= 2 and len(steps["self_assessment_review"]) >= 2
    assert any("Rectify the problem" in step for key in LINKS for step in steps[key])
    assert first["campaigns"] == [("monitoring", 2026), ("self_assessment", 2025)]
    assert first["problems"]["notified"] >= 1
    assert {"green", "yellow", "red"} <= set(first["lights"])
    assert first["evaluations"] >= 2

    demo.load(core)
    assert snapshot(core) == first


def test_the_demo_command_prints_the_logins(app):
    result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert "perf1" in result.output and "password 'demo'" in result.output
