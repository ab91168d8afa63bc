"""The problem register, a project's performance record and the yearly figures, read after
a key evaluation found problems (the register must show origin, deadline, status, overdue)."""
from __future__ import annotations

from datetime import datetime

import pytest

from engine.clock import FixedClock
from test_key_evaluation import Flow, evaluation


@pytest.fixture
def clock():
    """Time stands still until a test moves it (deadlines are 30 days after the notice)."""
    return FixedClock(datetime(2028, 5, 6, 2, 0))


@pytest.fixture
def evaluated(api, demo_core):
    """A key evaluation of EDU-2027-002 (good, 86) that found two problems; one is rectified."""
    flow = Flow(api, demo_core)
    case_id = flow.start("EDU-2027-002")
    flow.through_review(case_id, evaluation(problems=("Projectors out of order", "Survey sample too small")))
    flow.do("school_unit", case_id, {"feedback_decision": "acknowledge"}, "unit_feedback")
    rectify = next(t for t in flow.tasks(case_id) if "Projectors" in t["title"])
    assert api("school_unit").post(f"/api/v1/tasks/{rectify['id']}/complete", json={"data": {
        "rectification_measures": "Repaired", "rectification_evidence": [{"title": "Repair order"}]}}).status_code == 200
    check = next(t for t in flow.tasks(case_id) if t["step"] == "check_rectification")
    assert api("edu_section").post(f"/api/v1/tasks/{check['id']}/complete",
                                   json={"data": {"check_decision": "approve"}}).status_code == 200
    return case_id


def test_the_problem_register_lists_origin_status_and_deadline(evaluated, pages):
    page = pages("supervisor").get("/problems")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Projectors out of order" in html and "Survey sample too small" in html
    assert html.count("key performance evaluation") >= 2 and "Rectified" in html and "Notified" in html
    still_open = pages("supervisor").get("/problems?status=open").get_data(as_text=True)
    assert "Survey sample too small" in still_open and "Projectors out of order" not in still_open
    # Units see the problems of their own projects only.
    assert "Survey sample too small" in pages("school_unit").get("/problems").get_data(as_text=True)
    assert "Survey sample too small" not in pages("farm_unit").get("/problems").get_data(as_text=True)


def test_an_open_problem_past_its_deadline_shows_as_overdue(evaluated, pages, clock):
    assert "overdue" not in pages("supervisor").get("/problems?overdue=1").get_data(as_text=True).split("</thead>")[1]
    clock.advance(days=31)
    html = pages("supervisor").get("/problems?overdue=1").get_data(as_text=True)
    assert "Survey sample too small" in html and "light-red\">overdue" in html
    assert "Projectors out of order" not in html       # rectified in time


def test_the_project_page_shows_the_evaluation_and_its_problems(evaluated, pages, project_id):
    html = pages("supervisor").get(f"/projects/{project_id('EDU-2027-002')}").get_data(as_text=True)
    assert "Key performance evaluation" in html and "good" in html
    assert "Problems and rectification" in html and "Survey sample too small" in html


def test_yearly_figures_count_evaluations_and_problems(evaluated, pages):
    html = pages("supervisor").get("/figures?year=2027").get_data(as_text=True)
    assert 'data-testid="key-evaluations">1<' in html
    assert 'data-testid="problems-found">2<' in html
    assert "good 1" in html
    assert pages("school_unit").get("/figures").status_code == 403
