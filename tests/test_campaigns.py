"""Campaigns through the JSON API and the pages: who may launch, which projects get a case,
the reproducible spot-check draw, and closing. The links' own steps are tested in
test_operation_monitoring.py and test_self_assessment_review.py."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.rules import sampling
from storage.models import AuditEvent, Campaign, Case
from test_engine_goal_review import KEY_CHAIN, NON_KEY_CHAIN, Flow

APPROVED = ("EDU-2027-001", "EDU-2027-002", "AGR-2027-001")     # the last two are key projects


@pytest.fixture
def approved(demo_core, actor, project_id):
    """Three 2027 projects whose goals went through the whole review."""
    flow = Flow(demo_core, actor, project_id)
    for code in APPROVED:
        case_id = flow.start(code)
        flow.walk(case_id, code, NON_KEY_CHAIN if code == "EDU-2027-001" else KEY_CHAIN)
    return flow


def launch(api, user="perf1", **body):
    return api(user).post("/api/v1/campaigns", json={"kind": "monitoring", "year": 2027, **body})


def count(core, model) -> int:
    with core.db.reading() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_monitoring_campaign_opens_one_case_per_budget_project(demo_core, approved, api):
    answer = launch(api, cutoff_date="2027-09-30", key_projects=["EDU-2027-001"])
    assert answer.status_code == 201, answer.get_json()
    campaign = answer.get_json()
    assert (campaign["kind"], campaign["year"], campaign["cutoff_date"], campaign["status"]) == (
        "monitoring", 2027, "2027-09-30", "open")
    assert sorted(row["project"]["code"] for row in campaign["cases"]) == sorted(APPROVED)
    assert {row["status"] for row in campaign["cases"]} == {"running"}
    # Finance picked EDU-2027-001 for key monitoring (and not the key projects, since it picked).
    cases = {row["project"]["code"]: row["case_id"] for row in campaign["cases"]}
    data = {code: api("perf1").get(f"/api/v1/cases/{case_id}").get_json()["data"] for code, case_id in cases.items()}
    assert {code: d["key_monitoring"] for code, d in data.items()} == {
        "EDU-2027-001": True, "EDU-2027-002": False, "AGR-2027-001": False}
    assert all(d["campaign"]["id"] == campaign["id"] for d in data.values())
    # The overview shows the selection before any unit has reported.
    assert {row["project"]["code"]: (row["key_monitoring"], row["light"]) for row in campaign["cases"]} == {
        "EDU-2027-001": (True, None), "EDU-2027-002": (False, None), "AGR-2027-001": (False, None)}
    # Each unit's self-monitoring task is in that unit's inbox only.
    school = {t["case_id"] for t in api("school_unit").get("/api/v1/tasks").get_json()["items"]}
    farm = {t["case_id"] for t in api("farm_unit").get("/api/v1/tasks").get_json()["items"]}
    assert school >= {cases["EDU-2027-001"], cases["EDU-2027-002"]} and cases["AGR-2027-001"] not in school
    assert cases["AGR-2027-001"] in farm
    # Listed, and audited.
    listed = api("supervisor").get("/api/v1/campaigns?year=2027").get_json()
    assert [c["id"] for c in listed["items"]] == [campaign["id"]]
    with demo_core.db.reading() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "campaign_launched")).one()
    assert event.data["projects"] == sorted(APPROVED) and event.data["key_projects"] == ["EDU-2027-001"]


def test_without_a_selection_the_key_projects_get_key_monitoring(approved, api):
    campaign = launch(api).get_json()
    assert campaign["cutoff_date"] == "2027-09-30"     # the default, a setting
    flags = {row["project"]["code"]: api("perf1").get(f"/api/v1/cases/{row['case_id']}").get_json()["data"]
             ["key_monitoring"] for row in campaign["cases"]}
    assert flags == {"EDU-2027-001": False, "EDU-2027-002": True, "AGR-2027-001": True}


@pytest.mark.parametrize("body, field", [
    ({"kind": "audit"}, "kind"),
    ({"year": "soon"}, "year"),
    ({"year": "²²²²"}, "year"),      # digits to str.isdigit(), not to int()
    ({"year": 1850}, "year"),
    ({"cutoff_date": "2027-02-30"}, "cutoff_date"),
    ({"cutoff_date": "2026-09-30"}, "cutoff_date"),
    ({"key_projects": "EDU-2027-001"}, "key_projects"),
    ({"key_projects": ["AGR-2027-002"]}, "key_projects"),   # goals not approved: not in the campaign
])
def test_bad_launches_are_refused_with_the_field_and_nothing_is_opened(demo_core, approved, api, body, field):
    before = (count(demo_core, Campaign), count(demo_core, Case))
    answer = launch(api, **body)
    assert answer.status_code == 400 and field in answer.get_json()["details"], answer.get_json()
    assert (count(demo_core, Campaign), count(demo_core, Case)) == before


def test_only_the_performance_section_launches_and_one_open_campaign_at_a_time(demo_core, approved, api):
    for user in ("school_unit", "edu_section", "review1", "supervisor"):
        assert launch(api, user).status_code == 403
    assert launch(api).status_code == 201
    again = launch(api)
    assert again.status_code == 409 and "already open" in again.get_json()["error"]
    # Another cut-off date of the same year is another campaign (e.g. the year-end round).
    assert launch(api, cutoff_date="2027-12-31").status_code == 201
    assert count(demo_core, Campaign) == 2


def test_a_year_without_approved_goals_has_nothing_to_monitor(demo_core, api):
    answer = launch(api)
    assert answer.status_code == 409 and "approved performance goals" in answer.get_json()["error"]
    assert count(demo_core, Campaign) == 0


def test_campaign_processes_cannot_be_started_one_by_one(approved, api):
    for process in ("operation_monitoring", "self_assessment_review"):
        answer = api("perf1").post("/api/v1/cases", json={"process": process, "project": "EDU-2027-001"})
        assert answer.status_code == 409 and "campaign" in answer.get_json()["error"]


def test_spot_check_draw_is_recorded_reproducible_and_never_repeated(demo_core, approved, api):
    campaign = launch(api, kind="self_assessment").get_json()
    assert campaign["cutoff_date"] is None and campaign["draw"] is None
    assert api("school_unit").post(f"/api/v1/campaigns/{campaign['id']}/draw", json={}).status_code == 403
    bad = api("perf1").post(f"/api/v1/campaigns/{campaign['id']}/draw", json={"ratio": 1.5})
    assert bad.status_code == 400 and "ratio" in bad.get_json()["details"]

    drawn = api("perf1").post(f"/api/v1/campaigns/{campaign['id']}/draw", json={"ratio": 0.5, "seed": "audit-2027"})
    assert drawn.status_code == 200, drawn.get_json()
    draw = drawn.get_json()["draw"]
    assert draw["population"] == ["Agriculture Bureau", "Education Bureau"]
    assert (draw["ratio"], draw["seed"]) == (0.5, "audit-2027")
    # Anyone holding the seed and the list repeats the draw.
    assert draw["sampled"] == sampling.draw(draw["population"], 0.5, "audit-2027")
    assert len(draw["sampled"]) == 1

    again = api("perf1").post(f"/api/v1/campaigns/{campaign['id']}/draw", json={"seed": "another"})
    assert again.status_code == 409 and "never repeated" in again.get_json()["error"]
    monitoring = launch(api).get_json()
    assert api("perf1").post(f"/api/v1/campaigns/{monitoring['id']}/draw", json={}).status_code == 400
    with demo_core.db.reading() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "spot_check_drawn")).one()
    assert event.data["sampled"] == draw["sampled"] and event.data["seed"] == "audit-2027"


def test_a_campaign_closes_only_when_its_cases_are_done(approved, api):
    campaign = launch(api).get_json()
    refused = api("perf1").post(f"/api/v1/campaigns/{campaign['id']}/close", json={})
    assert refused.status_code == 409 and "still running" in refused.get_json()["error"]
    assert api("school_unit").post(f"/api/v1/campaigns/{campaign['id']}/close", json={}).status_code == 403


def test_units_see_only_their_own_projects_in_a_campaign(approved, api):
    campaign = launch(api).get_json()
    seen = api("farm_unit").get(f"/api/v1/campaigns/{campaign['id']}").get_json()
    assert [row["project"]["code"] for row in seen["cases"]] == ["AGR-2027-001"]
    assert api("farm_unit").get("/api/v1/campaigns/999999").status_code == 404


def test_campaign_pages_launch_draw_and_show_the_cases(approved, pages):
    perf = pages("perf1")
    listing = perf.get("/campaigns?year=2027").get_data(as_text=True)
    assert "Launch a campaign" in listing and "AGR-2027-001" in listing
    answer = perf.post_form("/campaigns?year=2027", {"kind": "self_assessment", "year": "2027"})
    assert answer.status_code == 302
    page = perf.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Self-assessment and spot-check review 2027" in page and "Draw departments" in page
    campaign_path = answer.headers["Location"]
    drawn = perf.post_form(f"{campaign_path}/draw", {"ratio": "0.5", "seed": "page-seed"}, page_path=campaign_path)
    assert drawn.status_code == 302
    page = perf.get(campaign_path).get_data(as_text=True)
    assert "page-seed" in page and "Agriculture Bureau, Education Bureau" in page
    # A bad launch re-renders the form with the message.
    bad = perf.post_form("/campaigns?year=2027", {"kind": "monitoring", "year": "2027", "cutoff_date": "2026-01-01"})
    assert bad.status_code == 400 and "cut-off date must fall" in bad.get_data(as_text=True)
    # A unit sees the list but no launch form.
    unit_page = pages("school_unit").get("/campaigns").get_data(as_text=True)
    assert "Launch a campaign" not in unit_page and "Self-assessment and spot-check review 2027" in unit_page
    refused = pages("school_unit").post_form("/campaigns", {"kind": "monitoring", "year": "2027"})
    assert refused.status_code == 403
