"""The JSON API v1 end to end, as the demo users, on goal-review cases.

Who is who (password 'demo'): school_unit is the budget unit No. 1 Middle School, edu_bureau
its competent department, edu_section the funding section of EDU projects; farm_unit,
agri_bureau and agri_section the same for AGR projects; review1 the budget review center,
perf1 the performance section, expert1 the third-party agency, supervisor and admin.
"""
from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta

import pytest

from engine import demo
from engine.processes import PROCESSES_DIR
from engine.roles import ROLES

P = "/api/v1"

DISPLAY = {u: d for u, d, _r, _o in demo.USERS}
ORG_NAMES = {code: name for code, name, _k, _p in demo.ORGS}
# Projects whose goals may be reviewed (their ex-ante evaluation passed), and every project.
PROJECTS = {code: {"name": name, "unit": unit, "funding": funding, "key": key}
            for code, name, unit, funding, _amount, key, _cat in demo.PROJECTS}
LISTED = sorted([row[0] for row in demo.PROJECTS + demo.PROJECTS_TO_EVALUATE])
EDU = sorted(c for c in LISTED if c.startswith("EDU"))
AGR = sorted(c for c in LISTED if c.startswith("AGR"))
ALL_PROJECTS = LISTED

STEP_NAMES = {
    "compile_goals": "Compile performance goals",
    "competent_check": "Competent department check",
    "preliminary_review": "Preliminary review",
    "re_examination": "Re-examination",
    "third_party_review": "Third-party opinion",
    "final_review": "Final review",
}
ROUTE = ["compile_goals", "competent_check", "preliminary_review", "re_examination", "final_review"]
KEY_ROUTE = ["compile_goals", "competent_check", "preliminary_review", "re_examination",
             "third_party_review", "final_review"]
WORKERS = ["school_unit", "edu_bureau", "edu_section", "farm_unit", "agri_bureau", "agri_section",
           "review1", "perf1", "expert1"]
BIG_ID = 99999999999999999999      # beyond any database integer

APPROVE = {"decision": "approve", "comment": "Goals are specific and measurable."}


def family(code: str) -> str:
    return code.split("-")[0]


def handler(code: str, step: str) -> str:
    """The demo user who works on a step of a project's goal review."""
    scoped = {"EDU": {"compile_goals": "school_unit", "competent_check": "edu_bureau", "final_review": "edu_section"},
              "AGR": {"compile_goals": "farm_unit", "competent_check": "agri_bureau", "final_review": "agri_section"}}
    common = {"preliminary_review": "review1", "re_examination": "perf1", "third_party_review": "expert1"}
    return scoped[family(code)].get(step) or common[step]


def step_role_org(code: str, step: str) -> tuple[str, str | None, str]:
    """(role, org code, org name) the task of a step carries; bureau-wide roles have no org."""
    edu = family(code) == "EDU"
    role, org = {
        "compile_goals": ("unit", "school" if edu else "farm_station"),
        "competent_check": ("competent", "edu_bureau" if edu else "agri_bureau"),
        "preliminary_review": ("review_center", None),
        "re_examination": ("performance", None),
        "third_party_review": ("third_party", None),
        "final_review": ("funding", "edu_funding" if edu else "agri_funding"),
    }[step]
    return role, org, ORG_NAMES[org] if org else "Finance bureau"


def goals(code: str) -> dict:
    return demo.sample_goals(PROJECTS[code]["name"])


def form(code: str, step: str) -> dict:
    if step == "compile_goals":
        return goals(code)
    if step == "preliminary_review":
        return {**APPROVE, "grade": "good"}
    return dict(APPROVE)


def ids(listing: dict) -> list[int]:
    return [item["id"] for item in listing["items"]]


class Flow:
    """Drives goal-review cases through the API as the right demo users."""

    def __init__(self, api):
        self.api = api

    def start(self, code: str, user: str | None = None, data: dict | None = None) -> dict:
        body = {"process": "goal_review", "project": code}
        if data is not None:
            body["data"] = data
        r = self.api(user or handler(code, "compile_goals")).post(f"{P}/cases", body)
        assert r.status_code == 201, r.get_json()
        return r.get_json()

    def case(self, case_id: int, user: str = "supervisor") -> dict:
        r = self.api(user).get(f"{P}/cases/{case_id}")
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    def open_task(self, case_id: int) -> dict:
        tasks = self.case(case_id)["tasks"]
        assert len(tasks) == 1, tasks
        return tasks[0]

    def complete(self, user: str, task_id: int, data: dict) -> dict:
        r = self.api(user).post(f"{P}/tasks/{task_id}/complete", {"data": data})
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    def advance(self, case_id: int, data: dict | None = None) -> dict:
        case = self.case(case_id)
        code = case["project"]["code"]
        task = self.open_task(case_id)
        step = task["step"]
        return self.complete(handler(code, step), task["id"], form(code, step) if data is None else data)

    def walk_to(self, case_id: int, step: str) -> dict:
        for _ in range(10):
            task = self.open_task(case_id)
            if task["step"] == step:
                return task
            self.advance(case_id)
        raise AssertionError(f"case {case_id} never reached {step}")

    def finish(self, case_id: int) -> dict:
        for _ in range(10):
            result = self.advance(case_id)
            if result["case"]["status"] == "completed":
                return result
        raise AssertionError(f"case {case_id} did not finish")

    def snapshot(self, case_id: int) -> dict:
        """What a failed request must leave as it was: the case (open tasks, history, data, times)
        and the inboxes of its unit and of whoever holds its open task."""
        case = self.case(case_id)
        code = case["project"]["code"]
        users = {handler(code, "compile_goals")} | {handler(code, t["step"]) for t in case["tasks"]}
        return {"case": case,
                "inboxes": {u: self.api(u).get(f"{P}/tasks?limit=200").get_json() for u in sorted(users)}}


class Caller:
    """Calls /api/v1 as one user with a bearer token (the same interface as conftest's ApiClient)."""

    def __init__(self, client, token: str):
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path, **kw):
        return self.client.get(path, headers=self.headers, **kw)

    def post(self, path, json=None, **kw):
        return self.client.post(path, headers=self.headers, json=json if json is not None else {}, **kw)


@pytest.fixture
def api(client, demo_core, actor):
    """api('review1') -> a Caller for that user, like conftest's `api`, except that the token is
    issued by the engine instead of POST /tokens: each password check costs about 0.3 s of scrypt
    and these tests act as many users. POST /tokens itself is tested in this module."""
    cache = {}

    def get(username: str) -> Caller:
        if username not in cache:
            cache[username] = Caller(client, demo_core.accounts.issue_token(actor(username)))
        return cache[username]
    return get


@pytest.fixture
def flow(api):
    return Flow(api)


@pytest.fixture
def colleague(demo_core, api):
    """A second budget-unit officer of No. 1 Middle School (the demo has one per unit)."""
    demo_core.accounts.ensure_user("school_unit2", "Ma Li (No. 1 Middle School)", demo.DEMO_PASSWORD,
                                  enforce_policy=False)
    demo_core.accounts.grant("school_unit2", "unit", "school")
    return api("school_unit2")


def _login(client, username: str, password: str = demo.DEMO_PASSWORD) -> str:
    r = client.post(f"{P}/tokens", json={"username": username, "password": password})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["token"]


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# ---- tokens and authentication -----------------------------------------------------------

def test_token_is_issued_and_works(client):
    r = client.post(f"{P}/tokens", json={"username": "school_unit", "password": "demo"})
    assert r.status_code == 201
    body = r.get_json()
    assert list(body) == ["token"] and isinstance(body["token"], str) and len(body["token"]) >= 32
    second = _login(client, "school_unit")
    assert second != body["token"]
    for token in (body["token"], second):
        me = client.get(f"{P}/me", headers=_auth(token))
        assert me.status_code == 200 and me.get_json()["username"] == "school_unit"
    # the scheme name is case-insensitive
    assert client.get(f"{P}/me", headers={"Authorization": f"bearer {second}"}).status_code == 200


def test_a_token_expires_after_30_days(client, clock, monkeypatch):
    issued = clock.now()
    monkeypatch.setattr(clock, "now", lambda: issued)
    token = _login(client, "school_unit")
    monkeypatch.setattr(clock, "now", lambda: issued + timedelta(days=29, hours=23))
    assert client.get(f"{P}/me", headers=_auth(token)).status_code == 200
    monkeypatch.setattr(clock, "now", lambda: issued + timedelta(days=30))
    r = client.get(f"{P}/me", headers=_auth(token))
    assert (r.status_code, r.get_json()) == (401, BEARER_REQUIRED)


@pytest.mark.parametrize("username, password", [("school_unit", "wrong"), ("school_unit", ""),
                                                ("nobody", "demo"), ("", "demo"), ("SCHOOL_UNIT", "demo")])
def test_token_refused_for_bad_credentials(client, username, password):
    r = client.post(f"{P}/tokens", json={"username": username, "password": password})
    assert r.status_code == 401
    assert r.get_json() == {"error": "wrong username or password", "details": {}}


@pytest.mark.parametrize("body, details", [
    ({}, {"username": "This field is required.", "password": "This field is required."}),
    ({"username": "school_unit"}, {"password": "This field is required."}),
    ({"password": "demo"}, {"username": "This field is required."}),
    ({"username": 7, "password": "demo"}, {"username": "This field is required."}),
    ({"username": "school_unit", "password": None}, {"password": "This field is required."}),
])
def test_token_needs_username_and_password(client, body, details):
    r = client.post(f"{P}/tokens", json=body)
    assert r.status_code == 400
    assert r.get_json() == {"error": "username and password are required", "details": details}


NOT_AN_OBJECT = {"error": "the request body must be a JSON object", "details": {"body": "Expected a JSON object."}}


@pytest.mark.parametrize("raw", ['{"username": "school_unit", "password": ', "not json", "", "[1, 2]",
                                 '"school_unit"', "42", "null", "true"])
def test_malformed_or_non_object_bodies_are_400(client, api, flow, raw):
    r = client.post(f"{P}/tokens", data=raw, content_type="application/json")
    assert r.status_code == 400 and r.get_json() == NOT_AN_OBJECT
    unit = api("school_unit")
    r = client.post(f"{P}/cases", data=raw, content_type="application/json", headers=unit.headers)
    assert r.status_code == 400 and r.get_json() == NOT_AN_OBJECT
    case = flow.start("EDU-2027-001")
    task_id = case["tasks"][0]["id"]
    r = client.post(f"{P}/tasks/{task_id}/complete", data=raw, content_type="application/json",
                    headers=unit.headers)
    assert r.status_code == 400 and r.get_json() == NOT_AN_OBJECT
    assert flow.case(case["id"])["history"] == case["history"]


def test_a_json_body_needs_the_json_content_type(client):
    r = client.post(f"{P}/tokens", data='{"username": "school_unit", "password": "demo"}',
                    content_type="text/plain")
    assert r.status_code == 400 and r.get_json() == NOT_AN_OBJECT


BEARER_REQUIRED = {"error": "a valid bearer token is required (POST /api/v1/tokens)", "details": {}}


BAD_AUTHORIZATION = [None, "", "Bearer", "Bearer ", "Bearer not-a-token", "Basic c2Nob29sOmRlbW8=",
                     "Token {valid}", "{valid}", "Bearer {valid}x", "Bearer  {valid} extra"]


@pytest.mark.parametrize("method, path", [("get", "/me"), ("get", "/processes"), ("get", "/projects"),
                                          ("get", "/cases"), ("post", "/cases"), ("get", "/cases/1"),
                                          ("get", "/tasks"), ("get", "/tasks/1"), ("post", "/tasks/1/claim"),
                                          ("post", "/tasks/1/unclaim"), ("post", "/tasks/1/complete")])
def test_every_endpoint_but_tokens_needs_a_valid_bearer_token(client, method, path):
    valid = _login(client, "supervisor")
    body = {"process": "goal_review", "project": "EDU-2027-001", "data": {}}
    for header in BAD_AUTHORIZATION:
        headers = {} if header is None else {"Authorization": header.replace("{valid}", valid)}
        kwargs = {"json": body} if method == "post" else {}
        r = getattr(client, method)(f"{P}{path}", headers=headers, **kwargs)
        assert (r.status_code, r.get_json()) == (401, BEARER_REQUIRED), header
    assert client.get(f"{P}/cases", headers=_auth(valid)).get_json() == {"items": [], "total": 0}


# ---- who am I, processes, projects --------------------------------------------------------

@pytest.mark.parametrize("username, display, role, org", demo.USERS)
def test_me_shows_the_users_roles(api, username, display, role, org):
    r = api(username).get(f"{P}/me")
    assert r.status_code == 200
    me = r.get_json()
    assert isinstance(me["id"], int)
    assert me == {"id": me["id"], "username": username, "display_name": display,
                  "roles": [{"role": role, "role_name": ROLES[role], "org": org, "org_name": ORG_NAMES[org]}]}


def test_processes_lists_goal_review(api):
    r = api("school_unit").get(f"{P}/processes")
    assert r.status_code == 200
    body = r.get_json()
    shipped = sorted(p.name for p in PROCESSES_DIR.iterdir() if (p / "process_model.json").is_file())
    assert [p["key"] for p in body["items"]] == shipped
    assert body["total"] == len(shipped) and "goal_review" in shipped
    process = next(p for p in body["items"] if p["key"] == "goal_review")
    assert process["key"] == "goal_review"
    assert process["version"] == 1
    assert process["name"] == "Performance goal review"
    assert process["description"].startswith("The budget unit compiles the performance goals")
    datetime.fromisoformat(process["deployed_at"])


@pytest.mark.parametrize("username, codes", [
    ("school_unit", EDU), ("edu_bureau", EDU), ("edu_section", EDU),
    ("farm_unit", AGR), ("agri_bureau", AGR), ("agri_section", AGR),
    ("review1", ALL_PROJECTS), ("perf1", ALL_PROJECTS), ("expert1", ALL_PROJECTS),
    ("supervisor", ALL_PROJECTS), ("admin", ALL_PROJECTS),
])
def test_projects_are_scoped_to_the_users_organisations(api, username, codes):
    r = api(username).get(f"{P}/projects")
    assert r.status_code == 200
    body = r.get_json()
    assert [p["code"] for p in body["items"]] == codes
    assert body["total"] == len(codes)
    assert api(username).get(f"{P}/projects?year=2027").get_json() == body
    assert api(username).get(f"{P}/projects?year=0").get_json() == body
    assert api(username).get(f"{P}/projects?year=2026").get_json() == {"items": [], "total": 0}


def test_project_fields(api):
    projects = {p["code"]: p for p in api("school_unit").get(f"{P}/projects").get_json()["items"]}
    p = projects["EDU-2027-002"]
    assert isinstance(p["id"], int)
    assert p == {"id": p["id"], "code": "EDU-2027-002", "name": "Smart classroom renovation", "year": 2027,
                 "unit": "school", "unit_name": "No. 1 Middle School", "competent": "edu_bureau",
                 "competent_name": "Education Bureau", "funding": "edu_funding",
                 "funding_name": "Education and Culture Funding Section", "category": "Education",
                 "is_new": True, "is_key": True, "amount": "6500000.00", "goals_status": "none",
                 "ex_ante_status": "support", "needs_ex_ante": True, "goal_history": []}


@pytest.mark.parametrize("year, details", [("next", {"year": "Expected a whole number."}),
                                           ("-1", {"year": "Between 0 and 9999."}),
                                           ("10000", {"year": "Between 0 and 9999."}),
                                           ("20.5", {"year": "Expected a whole number."})])
def test_projects_bad_year_is_400(api, year, details):
    r = api("supervisor").get(f"{P}/projects?year={year}")
    assert r.status_code == 400
    assert r.get_json()["details"] == details


# ---- the happy paths ------------------------------------------------------------------------

def test_happy_path_of_a_project_that_is_not_key(api, flow):
    code = "EDU-2027-001"
    case = flow.start(code)
    case_id = case["id"]
    assert case["status"] == "running" and case["process"] == "goal_review" and case["version"] == 1
    assert case["title"] == "Campus safety upgrade (EDU-2027-001)"
    assert (case["org"], case["org_name"], case["year"]) == ("school", "No. 1 Middle School", 2027)
    assert case["project"]["code"] == code and case["project"]["name"] == "Campus safety upgrade"
    assert case["current_steps"] == "Compile performance goals" and case["current_step_ids"] == ["compile_goals"]
    assert [(e["action"], e["actor"]) for e in case["history"]] == [("started", "school_unit")]
    assert api("school_unit").get(f"{P}/projects").get_json()["items"][0]["goals_status"] == "in_review"

    sent = []
    result = None
    for i, step in enumerate(ROUTE):
        task = flow.open_task(case_id)
        role, org, org_name = step_role_org(code, step)
        assert (task["step"], task["name"], task["role"], task["org"], task["org_name"]) == \
               (step, STEP_NAMES[step], role, org, org_name)
        assert task["role_name"] == ROLES[role] and task["status"] == "open" and task["assignee"] is None
        user = handler(code, step)
        for other in WORKERS:
            inbox = api(other).get(f"{P}/tasks").get_json()
            assert (task["id"] in ids(inbox)) == (other == user), (step, other)
        detail = api(user).get(f"{P}/tasks/{task['id']}").get_json()
        assert (detail["may_act"], detail["may_claim"], detail["may_release"]) == (True, True, False)
        data = form(code, step)
        result = flow.complete(user, task["id"], data)
        sent.append((user, step, data))
        assert result["completed"]["id"] == task["id"]
        assert (result["completed"]["status"], result["completed"]["completed_by"]) == ("completed", user)
        if i + 1 < len(ROUTE):
            assert [t["step"] for t in result["next_tasks"]] == [ROUTE[i + 1]]
            assert result["case"]["tasks"] == result["next_tasks"]
            assert result["case"]["status"] == "running"

    assert result["next_tasks"] == [] and result["case"]["tasks"] == []
    assert result["case"]["status"] == "completed"

    case = flow.case(case_id, "school_unit")
    assert case["status"] == "completed" and case["completed_at"] is not None
    assert case["current_steps"] == "" and case["tasks"] == [] and case["current_step_ids"] == []
    assert "goals_approved" in case["completed_steps"] and "goals_rejected" not in case["completed_steps"]
    history = case["history"]
    assert [(e["action"], e["actor"], e["step"]) for e in history] == \
           [("started", "school_unit", None)] + [("completed", u, s) for u, s, _ in sent] + [("finished", None, None)]
    assert [e["actor_name"] for e in history] == \
           [DISPLAY["school_unit"]] + [DISPLAY[u] for u, _, _ in sent] + ["System"]
    assert [e["task"] for e in history[1:-1]] == [STEP_NAMES[s] for _, s, _ in sent]
    assert [e["data"] for e in history[1:-1]] == [d for _, _, d in sent]
    assert history[-1]["data"] == {"end": "Goals approved"}
    assert history[0]["data"]["project"]["code"] == code
    for field, value in goals(code).items():
        assert case["data"][field] == value
    assert case["data"]["decision"] == "approve"
    assert case["data"]["project"]["code"] == code
    projects = {p["code"]: p for p in api("school_unit").get(f"{P}/projects").get_json()["items"]}
    assert projects[code]["goals_status"] == "approved"
    # nobody has anything left to do
    for user in WORKERS:
        assert api(user).get(f"{P}/tasks").get_json() == {"items": [], "total": 0}


@pytest.mark.parametrize("code", ["EDU-2027-002", "AGR-2027-001"])
def test_key_project_goes_through_the_third_party(api, flow, code):
    case_id = flow.start(code)["id"]
    expert = api("expert1")
    for step in KEY_ROUTE[:4]:
        assert expert.get(f"{P}/cases/{case_id}").status_code == 403
        assert case_id not in ids(expert.get(f"{P}/cases").get_json())
        flow.advance(case_id)
    task = flow.open_task(case_id)
    assert (task["step"], task["name"], task["role"], task["org"], task["org_name"]) == \
           ("third_party_review", "Third-party opinion", "third_party", None, "Finance bureau")
    assert ids(expert.get(f"{P}/tasks?scope=group").get_json()) == [task["id"]]
    assert expert.get(f"{P}/cases/{case_id}").status_code == 200
    assert ids(expert.get(f"{P}/cases").get_json()) == [case_id]
    detail = expert.get(f"{P}/tasks/{task['id']}").get_json()
    assert detail["may_act"] is True and detail["data"] == {}
    assert detail["context"]["goals"] == goals(code)
    assert detail["context"]["project"]["code"] == code and detail["context"]["project"]["is_key"] is True
    assert [o["step"] for o in detail["context"]["opinions"]] == [STEP_NAMES[s] for s in KEY_ROUTE[1:4]]
    assert "key project" in detail["instructions"].lower()
    result = flow.complete("expert1", task["id"], APPROVE)
    assert [t["step"] for t in result["next_tasks"]] == ["final_review"]
    result = flow.advance(case_id)
    assert result["case"]["status"] == "completed"
    case = flow.case(case_id)
    assert [e["step"] for e in case["history"] if e["action"] == "completed"] == KEY_ROUTE
    assert [e["actor"] for e in case["history"] if e["action"] == "completed"] == \
           [handler(code, s) for s in KEY_ROUTE]
    # the third party still sees the case it worked on
    assert expert.get(f"{P}/cases/{case_id}").status_code == 200


# ---- returns ------------------------------------------------------------------------------

@pytest.mark.parametrize("level", KEY_ROUTE[1:])
def test_a_return_goes_to_the_unit_and_the_resubmission_straight_back(api, flow, level):
    code = "EDU-2027-002"                        # a key project: every level is on its route
    case_id = flow.start(code)["id"]
    task = flow.walk_to(case_id, level)
    reviewer = handler(code, level)
    comment = "Add a survey method for the satisfaction indicator."
    returned = {"decision": "return", "comment": comment}
    result = flow.complete(reviewer, task["id"], returned)
    assert [(t["step"], t["org"], t["assignee"]) for t in result["next_tasks"]] == [("compile_goals", "school", None)]
    assert result["case"]["current_steps"] == "Compile performance goals"
    back = result["next_tasks"][0]

    unit = api("school_unit")
    assert ids(unit.get(f"{P}/tasks").get_json()) == [back["id"]]
    assert api(reviewer).get(f"{P}/tasks").get_json()["total"] == 0
    detail = unit.get(f"{P}/tasks/{back['id']}").get_json()
    assert detail["may_act"] is True
    assert detail["data"] == goals(code)                # its earlier goals, prefilled
    assert "This submission goes back to the step that returned it." in detail["instructions"]
    assert f"Opinion given: <em>{comment}</em>" in detail["instructions"]
    last = detail["context"]["opinions"][-1]
    assert (last["step"], last["actor"], last["decision"], last["comment"]) == \
           (STEP_NAMES[level], DISPLAY[reviewer], "return", comment)

    revised = goals(code)
    revised["annual_goal"] = "Finish the works and survey the beneficiaries this year."
    result = flow.complete("school_unit", back["id"], revised)
    assert [t["step"] for t in result["next_tasks"]] == [level]      # no level is walked again
    again = result["next_tasks"][0]
    assert ids(api(reviewer).get(f"{P}/tasks").get_json()) == [again["id"]]
    review = api(reviewer).get(f"{P}/tasks/{again['id']}").get_json()
    assert review["data"] == {}                                     # the old opinion is not prefilled
    assert review["context"]["goals"] == revised

    flow.finish(case_id)
    case = flow.case(case_id)
    at = KEY_ROUTE.index(level)
    assert [e["step"] for e in case["history"] if e["action"] == "completed"] == \
           KEY_ROUTE[:at + 1] + ["compile_goals"] + KEY_ROUTE[at:]
    assert case["status"] == "completed" and case["data"]["annual_goal"] == revised["annual_goal"]
    assert case["history"][-1]["data"] == {"end": "Goals approved"}


def test_two_returns_in_a_row_each_go_back_to_their_level(flow):
    code = "EDU-2027-001"
    case_id = flow.start(code)["id"]
    task = flow.walk_to(case_id, "preliminary_review")
    flow.complete("review1", task["id"], {"decision": "return", "comment": "Grade poor.", "grade": "poor"})
    result = flow.advance(case_id)
    assert [t["step"] for t in result["next_tasks"]] == ["preliminary_review"]
    flow.advance(case_id)                                           # approved this time
    task = flow.open_task(case_id)
    assert task["step"] == "re_examination"
    flow.complete("perf1", task["id"], {"decision": "return", "comment": "Targets too low."})
    result = flow.advance(case_id)
    assert [t["step"] for t in result["next_tasks"]] == ["re_examination"]


def test_a_case_returned_many_times_keeps_a_short_state_and_its_whole_record(api, flow, demo_core):
    """Past a couple of dozen finished tasks in a row, the saved state leaves the oldest out
    (engine.state_history); the case, its diagram and its old tasks' pages must not show it."""
    import json as _json
    from storage.models import Case
    from engine import state_history
    code = "EDU-2027-001"
    case_id = flow.start(code)["id"]
    unit, bureau = api("school_unit"), api("edu_bureau")
    first_compile = flow.open_task(case_id)
    versions = []

    def submit(task_id: int, n: int) -> dict:
        revised = goals(code)
        revised["annual_goal"] = f"Version {n}: finish the works this year."
        versions.append(revised)
        return flow.complete("school_unit", task_id, revised)

    result = submit(first_compile["id"], 1)
    first_check = result["next_tasks"][0]
    for n in range(1, 16):
        check = result["next_tasks"][0]
        assert check["step"] == "competent_check"
        result = flow.complete("edu_bureau", check["id"], {"decision": "return", "comment": f"Round {n}: add a cost."})
        result = submit(result["next_tasks"][0]["id"], n + 1)

    with demo_core.db.reading() as s:
        saved = _json.loads(s.get(Case, case_id).state)
    assert len(saved["tasks"]) <= state_history.KEPT + 15, len(saved["tasks"])     # 15 rounds: over 60 whole
    assert {"start", "init_case", "compile_goals"} <= set(saved["pruned_steps"])
    case = flow.case(case_id)
    # the diagram still marks the steps whose tasks were left out as done
    assert {"start", "init_case", "compile_goals", "competent_decision"} <= set(case["completed_steps"])
    assert case["current_step_ids"] == ["competent_check"]
    # the first round's pages show what was submitted and reviewed then, from the audit log
    page = unit.get(f"{P}/tasks/{first_compile['id']}").get_json()
    assert page["may_act"] is False and page["data"] == versions[0]
    page = bureau.get(f"{P}/tasks/{first_check['id']}").get_json()
    assert page["data"] == {"decision": "return", "comment": "Round 1: add a cost."}
    assert page["context"]["goals"] == versions[0]
    assert [o["comment"] for o in page["context"]["opinions"]][:2] == ["Round 1: add a cost.", "Round 2: add a cost."]

    flow.finish(case_id)
    case = flow.case(case_id)
    assert case["status"] == "completed" and case["history"][-1]["data"] == {"end": "Goals approved"}
    assert case["data"]["annual_goal"] == versions[-1]["annual_goal"]
    steps = [e["step"] for e in case["history"] if e["action"] == "completed"]
    assert steps == ["compile_goals"] + ["competent_check", "compile_goals"] * 15 + ROUTE[1:]
    assert {"start", "init_case", "goals_approved"} <= set(case["completed_steps"])


def test_final_review_may_reject(api, flow):
    code = "EDU-2027-001"
    case_id = flow.start(code)["id"]
    task = flow.walk_to(case_id, "final_review")
    r = api("edu_section").post(f"{P}/tasks/{task['id']}/complete", {"data": {"decision": "reject"}})
    assert r.status_code == 400
    assert r.get_json() == {"error": "The form has errors.", "details": {"comment": "This field is required."}}
    result = flow.complete("edu_section", task["id"], {"decision": "reject", "comment": "No budget this year."})
    assert result["case"]["status"] == "completed" and result["next_tasks"] == []
    case = flow.case(case_id)
    assert case["history"][-1]["action"] == "finished"
    assert case["history"][-1]["data"] == {"end": "Goals rejected"}
    assert "goals_rejected" in case["completed_steps"]
    projects = {p["code"]: p for p in api("school_unit").get(f"{P}/projects").get_json()["items"]}
    assert projects[code]["goals_status"] == "rejected"


# ---- who may act ----------------------------------------------------------------------------

def test_only_the_tasks_role_in_its_organisation_may_complete_or_claim(api, flow):
    case = flow.start("EDU-2027-001")
    task_id = case["tasks"][0]["id"]
    before = flow.snapshot(case["id"])
    message = "this task is not yours: it belongs to budget unit of No. 1 Middle School"
    for user in ("perf1", "edu_bureau", "edu_section", "review1", "expert1", "supervisor", "admin",
                 "farm_unit", "agri_bureau", "agri_section"):
        r = api(user).post(f"{P}/tasks/{task_id}/complete", {"data": goals("EDU-2027-001")})
        assert r.status_code == 403, user
        assert r.get_json() == {"error": message, "details": {}}
        r = api(user).post(f"{P}/tasks/{task_id}/claim")
        assert r.status_code == 403, user
        assert r.get_json() == {"error": message, "details": {}}
    assert flow.snapshot(case["id"]) == before


@pytest.mark.parametrize("step, intruders, message", [
    ("competent_check", ["agri_bureau", "school_unit", "review1"],
     "this task is not yours: it belongs to competent department of Education Bureau"),
    ("preliminary_review", ["perf1", "edu_bureau", "expert1", "supervisor"],
     "this task is not yours: it belongs to budget review center"),
    ("final_review", ["agri_section", "perf1", "school_unit"],
     "this task is not yours: it belongs to funding business section of Education and Culture Funding Section"),
])
def test_review_steps_refuse_other_roles_and_organisations(api, flow, step, intruders, message):
    case_id = flow.start("EDU-2027-001")["id"]
    task = flow.walk_to(case_id, step)
    before = flow.snapshot(case_id)
    for user in intruders:
        r = api(user).post(f"{P}/tasks/{task['id']}/complete", {"data": APPROVE})
        assert (r.status_code, r.get_json()) == (403, {"error": message, "details": {}}), user
    assert flow.snapshot(case_id) == before


def test_another_organisation_never_sees_nor_acts_on_the_case(api, flow):
    edu_case = flow.start("EDU-2027-001")["id"]
    agr_case = flow.start("AGR-2027-002")["id"]
    outsiders = ("agri_section", "agri_bureau", "farm_unit")
    for _ in range(len(ROUTE)):
        task = flow.open_task(edu_case)
        for name in outsiders:
            outsider = api(name)
            r = outsider.get(f"{P}/cases/{edu_case}")
            assert (r.status_code, r.get_json()) == (403, {"error": "you may not see this case", "details": {}})
            listed = outsider.get(f"{P}/cases?limit=200").get_json()
            assert ids(listed) == [agr_case] and listed["total"] == 1
            assert outsider.get(f"{P}/cases?org=school").get_json() == {"items": [], "total": 0}
            for scope in ("mine", "group", "all"):
                assert task["id"] not in ids(outsider.get(f"{P}/tasks?scope={scope}&limit=200").get_json())
            r = outsider.get(f"{P}/tasks/{task['id']}")
            assert (r.status_code, r.get_json()) == (403, {"error": "you may not see this task", "details": {}})
            assert outsider.post(f"{P}/tasks/{task['id']}/complete", {"data": APPROVE}).status_code == 403
            assert outsider.post(f"{P}/tasks/{task['id']}/claim").status_code == 403
        flow.advance(edu_case)
    assert flow.case(edu_case)["status"] == "completed"
    assert api("agri_section").get(f"{P}/cases/{edu_case}").status_code == 403
    # while the case's own funding section sees it
    assert api("edu_section").get(f"{P}/cases/{edu_case}").status_code == 200
    assert api("agri_section").get(f"{P}/cases/{agr_case}").status_code == 200


# ---- invalid data ---------------------------------------------------------------------------

def test_invalid_goals_are_refused_per_field_and_nothing_is_saved(api, flow):
    code = "EDU-2027-001"
    case = flow.start(code)
    task_id = case["tasks"][0]["id"]
    before = flow.snapshot(case["id"])
    bad = goals(code)
    del bad["indicators"][0]["unit"]                 # quantitative: needs a unit
    bad["indicators"][1]["target"] = "all of them"   # quantitative: needs a number
    bad["indicators"][2]["weight"] = 0
    bad["indicators"][3]["level2"] = "social"        # not an output sub-category
    bad["annual_goal"] = ""
    del bad["long_term_goal"]
    r = api("school_unit").post(f"{P}/tasks/{task_id}/complete", {"data": bad})
    assert r.status_code == 400
    assert r.get_json() == {"error": "The form has errors.", "details": {
        "indicators.0.unit": "This field is required.",
        "indicators.1.target": "Enter a number.",
        "indicators.2.weight": "Must be more than 0.",
        "indicators.3.level2": "Choose one of the listed values.",
        "annual_goal": "This field is required.",
        "long_term_goal": "This field is required.",
    }}
    r = api("school_unit").post(f"{P}/tasks/{task_id}/complete", {"data": {**goals(code), "indicators": []}})
    assert (r.status_code, r.get_json()["details"]) == (400, {"indicators": "Add at least 1 row(s)."})
    r = api("school_unit").post(f"{P}/tasks/{task_id}/complete", {"data": {**goals(code), "budget": 5}})
    assert (r.status_code, r.get_json()["details"]) == (400, {"budget": "Unknown field."})
    r = api("school_unit").post(f"{P}/tasks/{task_id}/complete", {"data": "goals"})
    assert (r.status_code, r.get_json()) == (400, {"error": "data must be an object",
                                                  "details": {"data": "Expected an object."}})
    assert flow.snapshot(case["id"]) == before


@pytest.mark.parametrize("data, details", [
    ({"decision": "return"}, {"comment": "This field is required."}),
    ({"decision": "return", "comment": ""}, {"comment": "This field is required."}),
    ({"decision": "maybe", "comment": "?"}, {"decision": "Choose one of the listed values."}),
    ({"comment": "Looks fine."}, {"decision": "This field is required."}),
    ({}, {"decision": "This field is required."}),
    ({"decision": "approve", "grade": "good"}, {"grade": "Unknown field."}),
    ({"decision": "approve", "comment": 5}, {"comment": "Expected string."}),
])
def test_invalid_review_opinions_are_refused_and_nothing_is_saved(api, flow, data, details):
    case_id = flow.start("EDU-2027-001")["id"]
    task = flow.walk_to(case_id, "competent_check")
    before = flow.snapshot(case_id)
    r = api("edu_bureau").post(f"{P}/tasks/{task['id']}/complete", {"data": data})
    assert r.status_code == 400
    assert r.get_json() == {"error": "The form has errors.", "details": details}
    assert flow.snapshot(case_id) == before


def test_keys_starting_with_underscore_are_refused(api, flow):
    unit = api("school_unit")
    r = unit.post(f"{P}/cases", {"process": "goal_review", "project": "EDU-2027-001",
                                 "data": {"_secret": 1, "note": "x", "__class__": "y"}})
    assert r.status_code == 400
    assert r.get_json() == {"error": "The data has errors.", "details": {
        "_secret": "Field names starting with '_' are not accepted.",
        "__class__": "Field names starting with '_' are not accepted."}}
    assert unit.get(f"{P}/cases").get_json() == {"items": [], "total": 0}

    case = flow.start("EDU-2027-001")
    task_id = case["tasks"][0]["id"]
    before = flow.snapshot(case["id"])
    r = unit.post(f"{P}/tasks/{task_id}/complete", {"data": {**goals("EDU-2027-001"), "_returned": True}})
    assert r.status_code == 400
    assert r.get_json()["details"] == {"_returned": "Field names starting with '_' are not accepted."}
    nested = goals("EDU-2027-001")
    nested["indicators"][0]["_score"] = 100
    r = unit.post(f"{P}/tasks/{task_id}/complete", {"data": nested})
    assert r.status_code == 400
    assert r.get_json()["details"] == {"indicators.0._score": "Field names starting with '_' are not accepted."}
    assert flow.snapshot(case["id"]) == before


def test_start_data_may_not_set_the_project_or_overwrite_a_diagram_function(api):
    unit = api("school_unit")
    r = unit.post(f"{P}/cases", {"process": "goal_review", "project": "EDU-2027-001",
                                 "data": {"project": {"is_key": True}}})
    assert (r.status_code, r.get_json()["details"]) == (400, {"project": "Set by the system from the case's project."})
    r = unit.post(f"{P}/cases", {"process": "goal_review", "project": "EDU-2027-001",
                                 "data": {"mark_goals_in_review": 1}})
    assert r.status_code == 422
    assert r.get_json()["details"] == {"step": "Open the case"}
    assert "mark_goals_in_review" in r.get_json()["error"]
    # nothing was kept: the project can still be started
    assert unit.get(f"{P}/cases").get_json()["total"] == 0
    assert unit.post(f"{P}/cases", {"process": "goal_review", "project": "EDU-2027-001",
                                    "data": {"note": "first try"}}).status_code == 201


def _sent_statements(db, request):
    """(the SQL statements `request()` sends on the app's database engines, its result)."""
    from sqlalchemy import event
    sent: list[str] = []

    def seen(_conn, _cursor, statement, *_args):
        sent.append(" ".join(statement.split()))
    engines = {db.engine, db.read_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", seen)
    try:
        result = request()
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", seen)
    return sent, result


def _counting_statements(db, request):
    """(the number of SQL statements `request()` sends on the app's database engines, its result)."""
    sent, result = _sent_statements(db, request)
    return len(sent), result


def test_the_case_page_reads_its_tasks_people_and_organisations_in_the_same_statements(api, flow, demo_core):
    """No lazy load per task: a case whose open task has an organisation and an assignee costs
    the same statements as one whose task has neither."""
    bare = flow.start("EDU-2027-001")
    flow.walk_to(bare["id"], "preliminary_review")      # the review center's: no organisation
    full = flow.start("EDU-2027-003")
    task = flow.walk_to(full["id"], "competent_check")  # the education bureau's
    assert api("edu_bureau").post(f"{P}/tasks/{task['id']}/claim").status_code == 200

    def page(case_id: int) -> dict:
        return api("supervisor").get(f"{P}/cases/{case_id}").get_json()
    page(bare["id"])        # the first request of a client logs in
    bare_statements, bare_page = _counting_statements(demo_core.db, lambda: page(bare["id"]))
    full_statements, full_page = _counting_statements(demo_core.db, lambda: page(full["id"]))

    assert [(t["org"], t["assignee"]) for t in bare_page["tasks"]] == [(None, None)]
    assert [(t["org"], t["assignee"]) for t in full_page["tasks"]] == [("edu_bureau", "edu_bureau")]
    assert full_statements == bare_statements


def test_a_start_and_a_completion_do_not_read_back_the_rows_they_write(api, demo_core):
    """The new case and its tasks are written by Core INSERTs and handed to the session as
    loaded rows (storage.queries.add_loaded): a column left expired there would cost a SELECT
    of that row by id when the answer reads it. Nor does a completion read an organisation
    on its own: they come with the task's project."""
    unit = api("school_unit")
    unit.get(f"{P}/cases")      # the first request of a client logs in

    def reads_by_id_after_insert(sent: list[str], table: str) -> list[str]:
        inserted = next(i for i, q in enumerate(sent) if q.startswith(f"INSERT INTO {table} "))
        return [q for q in sent[inserted:] if q.startswith("SELECT") and f"WHERE {table}.id = " in q]

    sent, r = _sent_statements(demo_core.db, lambda: unit.post(
        f"{P}/cases", {"process": "goal_review", "project": "EDU-2027-001"}))
    assert r.status_code == 201, r.get_json()
    started = r.get_json()
    assert started["status"] == "running" and started["current_steps"] and len(started["tasks"]) == 1
    assert reads_by_id_after_insert(sent, "cases") == []
    assert reads_by_id_after_insert(sent, "human_tasks") == []

    task = started["tasks"][0]
    sent, r = _sent_statements(demo_core.db, lambda: unit.post(
        f"{P}/tasks/{task['id']}/complete", {"data": goals("EDU-2027-001")}))
    assert r.status_code == 200, r.get_json()
    assert [t["step"] for t in r.get_json()["next_tasks"]] == ["competent_check"]
    assert reads_by_id_after_insert(sent, "human_tasks") == []
    # the task's, the case's and the new task's organisations came with the project's
    assert r.get_json()["next_tasks"][0]["org"] == "edu_bureau"
    assert [q for q in sent if "FROM organisations" in q] == []


def test_a_completion_learns_of_other_open_tasks_and_of_files_with_its_task(api, flow, demo_core):
    """Whether the case has open tasks besides this one and whether the task has files come in
    the SELECT of the task: a step with neither (most steps) looks for no open inbox rows and
    lists no files afterwards, on either database."""
    task = flow.walk_to(flow.start("EDU-2027-001")["id"], "competent_check")
    api("edu_bureau")   # logged in before the statements are counted
    sent, answer = _sent_statements(
        demo_core.db, lambda: flow.complete("edu_bureau", task["id"], {"decision": "approve"}))
    assert [t["step"] for t in answer["next_tasks"]] == ["preliminary_review"]
    selects = [q for q in sent if q.startswith("SELECT")]
    [task_read] = [q for q in selects if "other_tasks" in q]
    assert "FROM attachments" in task_read
    assert [q for q in selects if q != task_read and "FOR NO KEY UPDATE" not in q
            and ("FROM human_tasks" in q or "FROM attachments" in q)] == []


# A task's status bound as a value (`human_tasks.status = ?`, `= %(status_1)s`) instead of
# written into the SQL: what storage.models.TASK_OPEN is there to prevent.
_BOUND_TASK_STATUS = re.compile(r"\b(human_tasks|other_tasks)\.status\s*(=|!=|<>|IN)\s*\(?\s*(\?|%\(|\$\d)")


def test_no_statement_binds_the_status_of_a_task(api, flow, demo_core, clock):
    """SQLite prepares a statement again at every execution when it compares a bound value with
    the column a partial index's WHERE tests (human_tasks.status): the inbox, the task, claims,
    completions, the case pages and the deadline worker write the status into the SQL instead."""
    from sqlalchemy import update
    from storage import attachment_queries, deadline_queries, queries
    from storage.models import HumanTask
    edu = api("edu_bureau")

    def requests():
        case = flow.start("EDU-2027-001")
        task = flow.walk_to(case["id"], "competent_check")
        assert edu.get(f"{P}/tasks").status_code == 200
        assert edu.get(f"{P}/tasks/{task['id']}").status_code == 200
        assert edu.post(f"{P}/tasks/{task['id']}/claim").status_code == 200
        assert edu.post(f"{P}/tasks/{task['id']}/unclaim").status_code == 200
        flow.complete("edu_bureau", task["id"], {"decision": "approve"})
        assert edu.get(f"{P}/cases?status=running").status_code == 200
        flow.case(case["id"])
        return case["id"], task["id"]
    sent, (case_id, completed_id) = _sent_statements(demo_core.db, requests)
    alert_at = clock.now() + timedelta(days=1)
    with demo_core.db.transaction() as s:
        [open_id] = [t.id for t in queries.open_tasks_of_case(s, case_id)]
        s.execute(update(HumanTask).where(HumanTask.id == open_id).values(alert_at=alert_at))

    def deadline_worker():
        with demo_core.db.transaction() as s:
            assert open_id in [task_id for task_id, _ in deadline_queries.due_alerts(s, alert_at, 100)]
            assert deadline_queries.open_task(s, open_id) is not None
            assert deadline_queries.take_alerts(s, open_id, alert_at, {"alert_at": None})
            assert case_id in deadline_queries.open_task_deadlines(s, [case_id])
            assert attachment_queries.latest_completed_task_of_step(s, case_id, "competent_check") == completed_id
    sent += _sent_statements(demo_core.db, deadline_worker)[0]
    assert len([q for q in sent if "human_tasks" in q]) > 20
    assert [q for q in sent if _BOUND_TASK_STATUS.search(q)] == []


# ---- concurrency and conflicts ------------------------------------------------------------

CONFLICT_MESSAGES = ("this task was completed by someone else a moment ago; reload the case",
                     "the case was changed by someone else while you worked; reload and try again")


@pytest.mark.parametrize("code", ["EDU-2027-001", "EDU-2027-002", "EDU-2027-003", "AGR-2027-002", "AGR-2027-003"])
def test_the_same_task_completed_twice_at_once(app, flow, code):
    user = handler(code, "compile_goals")
    case = flow.start(code)
    task_id = case["tasks"][0]["id"]
    clients = [app.test_client(), app.test_client()]
    tokens = [_login(c, user) for c in clients]
    barrier = threading.Barrier(2, timeout=120)
    results: list = [None, None]

    def worker(i):
        try:
            barrier.wait()
            r = clients[i].post(f"{P}/tasks/{task_id}/complete", headers=_auth(tokens[i]),
                                json={"data": goals(code)})
            results[i] = (r.status_code, r.get_json())
        except BaseException as exc:            # surfaced below, in the test's thread
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a completion hung"
    for result in results:
        if isinstance(result, BaseException):
            raise result
    assert sorted(status for status, _ in results) == [200, 409]
    (_, won), (_, lost) = sorted(results, key=lambda r: r[0])
    assert set(lost) == {"error", "details"}
    assert (lost["error"].startswith(f"This task was already completed by {DISPLAY[user]} at ")
            or lost["error"] in CONFLICT_MESSAGES), lost

    case = flow.case(case["id"])
    assert [e["action"] for e in case["history"]] == ["started", "completed"]
    assert [t["step"] for t in case["tasks"]] == ["competent_check"]
    assert [t["id"] for t in won["next_tasks"]] == [case["tasks"][0]["id"]]
    assert case["data"]["indicators"] == goals(code)["indicators"]
    done = flow.api(user).get(f"{P}/tasks/{task_id}").get_json()
    assert (done["status"], done["completed_by"], done["may_act"]) == ("completed", user, False)
    # and the case goes on as usual
    result = flow.advance(case["id"])
    assert [t["step"] for t in result["next_tasks"]] == ["preliminary_review"]


def test_a_second_completion_is_409_naming_who_completed_it(api, flow, colleague):
    case = flow.start("EDU-2027-001")
    task_id = case["tasks"][0]["id"]
    done = flow.complete("school_unit", task_id, goals("EDU-2027-001"))
    at = datetime.fromisoformat(done["completed"]["completed_at"]).strftime("%Y-%m-%d %H:%M:%S")
    expected = {"error": f"This task was already completed by Liu Yang (No. 1 Middle School) at {at}. "
                         "Reload to see the case as it is now.",
                "details": {"task": task_id, "status": "completed"}}
    before = flow.snapshot(case["id"])
    for caller in (api("school_unit"), colleague):
        r = caller.post(f"{P}/tasks/{task_id}/complete", {"data": goals("EDU-2027-001")})
        assert (r.status_code, r.get_json()) == (409, expected)
        r = caller.post(f"{P}/tasks/{task_id}/claim")
        assert (r.status_code, r.get_json()) == (409, expected)
        r = caller.post(f"{P}/tasks/{task_id}/unclaim")
        assert r.status_code == 409 and r.get_json()["error"] == expected["error"]
    assert flow.snapshot(case["id"]) == before


def test_a_second_case_for_the_same_project_is_409(api, flow):
    case = flow.start("EDU-2027-001")
    r = api("school_unit").post(f"{P}/cases", {"process": "goal_review", "project": "EDU-2027-001"})
    assert r.status_code == 409
    assert r.get_json() == {"error": f"project EDU-2027-001 already has a goal review in progress (case {case['id']})",
                            "details": {"case_id": case["id"]}}
    flow.finish(case["id"])
    # once the first is over, the goals may be reviewed again
    assert api("school_unit").post(f"{P}/cases", {"process": "goal_review", "project": "EDU-2027-001"}).status_code == 201


# ---- claiming -------------------------------------------------------------------------------

def test_claim_and_release(api, flow, colleague):
    unit = api("school_unit")
    case = flow.start("EDU-2027-001")
    case_id = case["id"]
    task_id = case["tasks"][0]["id"]
    for who in (unit, colleague):
        assert ids(who.get(f"{P}/tasks?scope=group").get_json()) == [task_id]
        assert who.get(f"{P}/tasks?scope=mine").get_json() == {"items": [], "total": 0}
        detail = who.get(f"{P}/tasks/{task_id}").get_json()
        assert (detail["may_act"], detail["may_claim"], detail["may_release"]) == (True, True, False)

    r = unit.post(f"{P}/tasks/{task_id}/claim")
    assert r.status_code == 200
    task = r.get_json()
    assert (task["id"], task["assignee"], task["assignee_name"], task["status"]) == \
           (task_id, "school_unit", DISPLAY["school_unit"], "open")
    assert unit.post(f"{P}/tasks/{task_id}/claim").get_json() == task      # claiming again changes nothing
    assert ids(unit.get(f"{P}/tasks?scope=mine").get_json()) == [task_id]
    assert ids(unit.get(f"{P}/tasks?scope=all").get_json()) == [task_id]
    assert unit.get(f"{P}/tasks?scope=group").get_json() == {"items": [], "total": 0}
    assert colleague.get(f"{P}/tasks?scope=group").get_json() == {"items": [], "total": 0}
    assert colleague.get(f"{P}/tasks").get_json() == {"items": [], "total": 0}
    detail = unit.get(f"{P}/tasks/{task_id}").get_json()
    assert (detail["may_act"], detail["may_claim"], detail["may_release"]) == (True, False, True)
    detail = colleague.get(f"{P}/tasks/{task_id}").get_json()
    assert (detail["may_act"], detail["may_claim"], detail["may_release"]) == (False, False, False)

    taken = {"error": f"this task is assigned to {DISPLAY['school_unit']}", "details": {}}
    for path, body in (("claim", None), ("unclaim", None), ("complete", {"data": goals("EDU-2027-001")})):
        r = colleague.post(f"{P}/tasks/{task_id}/{path}", body)
        assert (r.status_code, r.get_json()) == (403, taken), path
    r = api("supervisor").post(f"{P}/tasks/{task_id}/unclaim")
    assert (r.status_code, r.get_json()) == (403, taken)

    r = unit.post(f"{P}/tasks/{task_id}/unclaim")
    assert r.status_code == 200
    assert (r.get_json()["assignee"], r.get_json()["assignee_name"]) == (None, None)
    assert unit.post(f"{P}/tasks/{task_id}/unclaim").get_json() == r.get_json()   # releasing again: nothing
    for who in (unit, colleague):
        assert ids(who.get(f"{P}/tasks?scope=group").get_json()) == [task_id]

    # the colleague claims it; an administrator may release anyone's claim
    assert colleague.post(f"{P}/tasks/{task_id}/claim").get_json()["assignee"] == "school_unit2"
    assert ids(colleague.get(f"{P}/tasks?scope=mine").get_json()) == [task_id]
    assert unit.get(f"{P}/tasks").get_json() == {"items": [], "total": 0}
    r = api("admin").post(f"{P}/tasks/{task_id}/unclaim")
    assert r.status_code == 200 and r.get_json()["assignee"] is None
    assert colleague.post(f"{P}/tasks/{task_id}/claim").status_code == 200
    result = flow.complete("school_unit2", task_id, goals("EDU-2027-001"))
    assert result["completed"]["completed_by"] == "school_unit2"

    history = flow.case(case_id)["history"]
    assert [(e["action"], e["actor"], e["task"]) for e in history] == [
        ("started", "school_unit", None),
        ("claimed", "school_unit", "Compile performance goals"),
        ("unclaimed", "school_unit", "Compile performance goals"),
        ("claimed", "school_unit2", "Compile performance goals"),
        ("unclaimed", "admin", "Compile performance goals"),
        ("claimed", "school_unit2", "Compile performance goals"),
        ("completed", "school_unit2", "Compile performance goals"),
    ]
    assert all(e["data"] is None for e in history if e["action"] in ("claimed", "unclaimed"))


def test_claimed_review_task_leaves_the_group_inbox(api, flow):
    case_id = flow.start("EDU-2027-001")["id"]
    task = flow.walk_to(case_id, "preliminary_review")
    center = api("review1")
    assert ids(center.get(f"{P}/tasks?scope=group").get_json()) == [task["id"]]
    assert center.post(f"{P}/tasks/{task['id']}/claim").status_code == 200
    assert center.get(f"{P}/tasks?scope=group").get_json()["total"] == 0
    assert ids(center.get(f"{P}/tasks?scope=mine").get_json()) == [task["id"]]
    result = flow.complete("review1", task["id"], {**APPROVE, "grade": "excellent"})
    assert result["completed"]["assignee"] == "review1"
    assert center.get(f"{P}/tasks?scope=mine").get_json() == {"items": [], "total": 0}


# ---- listing cases and tasks ----------------------------------------------------------------

def test_case_filters_and_paging(api, flow):
    started = [flow.start(code)["id"] for code in ("EDU-2027-001", "EDU-2027-002", "AGR-2027-001",
                                                   "AGR-2027-002", "EDU-2027-003", "AGR-2027-003")]
    flow.finish(started[0])
    boss = api("supervisor")

    def listed(query=""):
        r = boss.get(f"{P}/cases{query}")
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    newest_first = sorted(started, reverse=True)
    everything = listed("?limit=200")
    assert ids(everything) == newest_first and everything["total"] == 6
    assert listed() == everything                                   # default page of 50
    assert ids(listed("?process=goal_review")) == newest_first
    assert listed("?process=budget_execution") == {"items": [], "total": 0}
    assert ids(listed("?status=completed")) == [started[0]]
    assert ids(listed("?status=running")) == [i for i in newest_first if i != started[0]]
    assert listed("?status=cancelled") == {"items": [], "total": 0}
    assert listed("?status=error") == {"items": [], "total": 0}
    edu = [started[4], started[1], started[0]]
    agr = [started[5], started[3], started[2]]
    assert ids(listed("?org=school")) == edu
    assert ids(listed("?org=farm_station")) == agr
    assert listed("?org=edu_bureau") == {"items": [], "total": 0}
    assert ids(listed("?year=2027")) == newest_first
    assert listed("?year=2026") == {"items": [], "total": 0}
    assert ids(listed("?org=school&status=running&year=2027&process=goal_review")) == [started[4], started[1]]
    assert listed("?status=&org=&year=&process=") == everything       # empty filters are no filters

    pages = [listed(f"?limit=4&offset={offset}") for offset in (0, 4, 8)]
    assert [ids(p) for p in pages] == [newest_first[:4], newest_first[4:], []]
    assert all(p["total"] == 6 for p in pages)
    page = listed("?org=farm_station&limit=2&offset=1")
    assert ids(page) == agr[1:] and page["total"] == 3
    assert ids(listed("?limit=1&offset=5")) == newest_first[5:]

    # a unit sees its own cases only, with its own totals
    unit_page = api("school_unit").get(f"{P}/cases?limit=2").get_json()
    assert ids(unit_page) == edu[:2] and unit_page["total"] == 3
    assert api("farm_unit").get(f"{P}/cases?org=school").get_json() == {"items": [], "total": 0}
    case = everything["items"][0]
    assert set(case) == {"id", "process", "version", "process_name", "title", "project", "org", "org_name",
                         "year", "status", "current_steps", "started_at", "updated_at", "completed_at", "error",
                         "due_at", "overdue", "escalated"}


@pytest.mark.parametrize("query, details", [
    ("status=paused", {"status": "One of running, completed, cancelled, error."}),
    ("status=RUNNING", {"status": "One of running, completed, cancelled, error."}),
    ("limit=0", {"limit": "Between 1 and 200."}),
    ("limit=201", {"limit": "Between 1 and 200."}),
    ("limit=-5", {"limit": "Between 1 and 200."}),
    ("limit=ten", {"limit": "Expected a whole number."}),
    ("offset=-1", {"offset": "Between 0 and 2147483647."}),
    ("offset=2147483648", {"offset": "Between 0 and 2147483647."}),
    ("offset=1.5", {"offset": "Expected a whole number."}),
    ("year=2027a", {"year": "Expected a whole number."}),
    ("year=-2027", {"year": "Between 0 and 9999."}),
    ("year=99999999999999999999", {"year": "Between 0 and 9999."}),
])
def test_bad_case_filters_are_400(api, query, details):
    r = api("supervisor").get(f"{P}/cases?{query}")
    assert r.status_code == 400
    assert r.get_json()["details"] == details


def test_the_largest_page_is_allowed(api, flow):
    flow.start("EDU-2027-001")
    assert api("supervisor").get(f"{P}/cases?limit=200").get_json()["total"] == 1


def test_inbox_paging_and_bad_scope(api, flow):
    started = [flow.start(code)["id"] for code in EDU if code in PROJECTS]
    unit = api("school_unit")
    everything = unit.get(f"{P}/tasks").get_json()
    assert everything["total"] == 3
    assert [t["case_id"] for t in everything["items"]] == started          # oldest first
    assert all(t["step"] == "compile_goals" for t in everything["items"])
    first = unit.get(f"{P}/tasks?limit=2").get_json()
    rest = unit.get(f"{P}/tasks?limit=2&offset=2").get_json()
    assert (ids(first) + ids(rest), first["total"], rest["total"]) == (ids(everything), 3, 3)
    assert unit.get(f"{P}/tasks?offset=3").get_json() == {"items": [], "total": 3}
    assert unit.get(f"{P}/tasks?scope=group").get_json() == everything
    for scope in ("everything", "MINE", "groups"):
        r = unit.get(f"{P}/tasks?scope={scope}")
        assert r.status_code == 400
        assert r.get_json() == {"error": "unknown scope", "details": {"scope": "One of mine, group, all."}}
    r = unit.get(f"{P}/tasks?limit=500")
    assert (r.status_code, r.get_json()["details"]) == (400, {"limit": "Between 1 and 200."})


# ---- unknown things and starting cases ------------------------------------------------------

@pytest.mark.parametrize("method, path, message", [
    ("get", "/cases/999999", "case 999999 does not exist"),
    ("get", "/tasks/999999", "task 999999 does not exist"),
    ("post", "/tasks/999999/claim", "task 999999 does not exist"),
    ("post", "/tasks/999999/unclaim", "task 999999 does not exist"),
    ("post", "/tasks/999999/complete", "task 999999 does not exist"),
    ("get", "/cases/0", "case 0 does not exist"),
])
def test_unknown_ids_are_404(api, method, path, message):
    caller = api("supervisor")
    r = caller.get(f"{P}{path}") if method == "get" else caller.post(f"{P}{path}", {"data": {}})
    assert r.status_code == 404
    assert r.get_json() == {"error": message, "details": {}}


@pytest.mark.parametrize("path", ["/cases/abc", "/tasks/-1", "/nothing-here", "/cases/1/tasks"])
def test_unknown_paths_are_json_404(api, path):
    r = api("supervisor").get(f"{P}{path}")
    assert r.status_code == 404
    assert set(r.get_json()) == {"error", "details"}


def test_start_case_by_project_id_or_code(api, project_id):
    r = api("school_unit").post(f"{P}/cases", {"process": "goal_review", "project": project_id("EDU-2027-002")})
    assert r.status_code == 201 and r.get_json()["project"]["code"] == "EDU-2027-002"
    r = api("school_unit").post(f"{P}/cases", {"process": "goal_review", "project": str(project_id("EDU-2027-003"))})
    assert r.status_code == 201 and r.get_json()["project"]["code"] == "EDU-2027-003"


@pytest.mark.parametrize("user, body, status, error", [
    ("school_unit", {"process": "budget_execution", "project": "EDU-2027-001"}, 404,
     "no process 'budget_execution' is deployed"),
    ("school_unit", {"process": "goal_review", "project": "EDU-2099-999"}, 404, "project EDU-2099-999 does not exist"),
    ("school_unit", {"process": "goal_review", "project": 999999}, 404, "project 999999 does not exist"),
    ("school_unit", {"process": "goal_review", "project": "AGR-2027-001"}, 403, "you may not see this project"),
    ("agri_section", {"process": "goal_review", "project": "EDU-2027-001"}, 403, "you may not see this project"),
    ("review1", {"process": "goal_review", "project": "EDU-2027-001"}, 403,
     "only the project's budget unit may start 'Performance goal review'"),
    ("edu_bureau", {"process": "goal_review", "project": "EDU-2027-001"}, 403,
     "only the project's budget unit may start 'Performance goal review'"),
    ("expert1", {"process": "goal_review", "project": "EDU-2027-001"}, 403,
     "only the project's budget unit may start 'Performance goal review'"),
    ("farm_unit", {"process": "goal_review", "project": "EDU-2027-001"}, 403, "you may not see this project"),
])
def test_start_case_refusals(api, user, body, status, error):
    r = api(user).post(f"{P}/cases", body)
    assert r.status_code == status
    assert r.get_json() == {"error": error, "details": {}}
    assert api("supervisor").get(f"{P}/cases").get_json() == {"items": [], "total": 0}


@pytest.mark.parametrize("body, details", [
    ({}, {"process": "This field is required.", "project": "Give the project's id or code."}),
    ({"process": "goal_review"}, {"project": "Give the project's id or code."}),
    ({"process": "", "project": "EDU-2027-001"}, {"process": "This field is required."}),
    ({"process": 5, "project": "EDU-2027-001"}, {"process": "This field is required."}),
    ({"process": "goal_review", "project": ""}, {"project": "Give the project's id or code."}),
    ({"process": "goal_review", "project": True}, {"project": "Give the project's id or code."}),
    ({"process": "goal_review", "project": 1.5}, {"project": "Give the project's id or code."}),
    ({"process": "goal_review", "project": ["EDU-2027-001"]}, {"project": "Give the project's id or code."}),
    ({"process": "goal_review", "project": "EDU-2027-001", "data": [1]}, {"data": "Expected an object."}),
])
def test_start_case_bad_requests_are_400(api, body, details):
    r = api("school_unit").post(f"{P}/cases", body)
    assert r.status_code == 400
    assert r.get_json() == {"error": "the request has errors", "details": details}


@pytest.mark.parametrize("user, process, project", [
    ("school_unit", "goal_review", "EDU-2027-002"),
    ("admin", "goal_review", "AGR-2027-003"),
    ("perf1", "key_evaluation", "EDU-2027-002"),
    ("school_unit", "ex_ante_evaluation", "EDU-2027-004"),
])
def test_the_start_answer_is_the_case_as_committed(api, user, process, project):
    # POST /cases builds its answer inside the start's transaction from the rows and the
    # workflow in hand; it must be exactly what reading the committed case gives.
    r = api(user).post(f"{P}/cases", {"process": process, "project": project})
    assert r.status_code == 201, r.get_json()
    started = r.get_json()
    assert started["history"][0]["action"] == "started" and started["tasks"] and started["data"]
    assert api(user).get(f"{P}/cases/{started['id']}").get_json() == started


def test_admin_may_start_for_any_unit(api):
    r = api("admin").post(f"{P}/cases", {"process": "goal_review", "project": "AGR-2027-003"})
    assert r.status_code == 201
    case = r.get_json()
    assert case["history"][0]["actor"] == "admin"
    assert case["tasks"][0]["org"] == "farm_station" and case["tasks"][0]["assignee"] is None
    assert ids(api("farm_unit").get(f"{P}/tasks").get_json()) == [case["tasks"][0]["id"]]


# ---- bugs found (each kept failing until fixed) ----------------------------------------------

def test_an_outsider_may_not_release_or_read_a_task_through_unclaim(api, flow):
    case = flow.start("EDU-2027-001")
    task_id = case["tasks"][0]["id"]
    r = api("agri_section").post(f"{P}/tasks/{task_id}/unclaim")
    assert r.status_code == 403
    assert "Campus safety upgrade" not in r.get_data(as_text=True)


@pytest.mark.parametrize("action", ["complete", "claim", "unclaim"])
def test_an_outsider_acting_on_a_closed_task_gets_403(api, flow, action):
    case = flow.start("EDU-2027-001")
    task_id = case["tasks"][0]["id"]
    flow.complete("school_unit", task_id, goals("EDU-2027-001"))
    r = api("agri_section").post(f"{P}/tasks/{task_id}/{action}", {"data": APPROVE})
    assert r.status_code == 403
    assert DISPLAY["school_unit"] not in r.get_json()["error"]


@pytest.mark.parametrize("method, path, status, body", [
    ("get", f"/cases/{BIG_ID}", 404, {"error": f"case {BIG_ID} does not exist", "details": {}}),
    ("get", "/cases/2147483648", 404, {"error": "case 2147483648 does not exist", "details": {}}),
    ("get", f"/tasks/{BIG_ID}", 404, {"error": f"task {BIG_ID} does not exist", "details": {}}),
    ("post", f"/tasks/{BIG_ID}/claim", 404, {"error": f"task {BIG_ID} does not exist", "details": {}}),
    ("post", f"/tasks/{BIG_ID}/unclaim", 404, {"error": f"task {BIG_ID} does not exist", "details": {}}),
    ("post", f"/tasks/{BIG_ID}/complete", 404, {"error": f"task {BIG_ID} does not exist", "details": {}}),
    ("get", f"/cases?offset={BIG_ID}", 400,
     {"error": "'offset' is out of range", "details": {"offset": "Between 0 and 2147483647."}}),
    ("get", f"/tasks?offset={BIG_ID}", 400,
     {"error": "'offset' is out of range", "details": {"offset": "Between 0 and 2147483647."}}),
    ("get", f"/projects?year={BIG_ID}", 400,
     {"error": "'year' is out of range", "details": {"year": "Between 0 and 9999."}}),
])
def test_numbers_beyond_the_databases_integers_are_client_errors(app, api, method, path, status, body):
    """Regression: these were 500s (OverflowError on SQLite, DataError on PostgreSQL)."""
    app.config["PROPAGATE_EXCEPTIONS"] = False       # answer 500 as the server would, not raise
    caller = api("supervisor")
    r = caller.get(f"{P}{path}") if method == "get" else caller.post(f"{P}{path}", {"data": {}})
    assert (r.status_code, r.get_json()) == (status, body)


@pytest.mark.parametrize("ref", [BIG_ID, "3000000000", 2147483648, 0, -1, "²"])
def test_a_project_id_no_row_can_have_is_404(app, api, ref):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    r = api("school_unit").post(f"{P}/cases", {"process": "goal_review", "project": ref})
    assert (r.status_code, r.get_json()) == (404, {"error": f"project {ref} does not exist", "details": {}})


@pytest.mark.parametrize("path", ["/tokens", "/cases", "/tasks/{task}/complete"])
def test_a_too_deeply_nested_body_is_400(app, api, flow, path):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    task_id = flow.start("EDU-2027-001")["tasks"][0]["id"]
    r = app.test_client().post(f"{P}{path.format(task=task_id)}", data="[" * 100_000,
                               content_type="application/json", headers=api("school_unit").headers)
    assert (r.status_code, r.get_json()) == (400, NOT_AN_OBJECT)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_start_data_that_is_not_json_is_400(app, api, constant):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    body = '{"process": "goal_review", "project": "EDU-2027-001", "data": {"x": %s}}' % constant
    r = app.test_client().post(f"{P}/cases", data=body, content_type="application/json",
                               headers=api("school_unit").headers)
    assert r.status_code == 400
    assert api("supervisor").get(f"{P}/cases").get_json()["total"] == 0


def test_a_completion_answer_names_its_people_reading_no_user_but_the_others(api, flow, demo_core,
                                                                             deploy_test_model, actor, project_id):
    """The completer is named from who is logged in; a person the answer names besides them (a
    colleague who claimed a parallel step) is read, and named right."""
    form_data = {"decision": "approve"}
    plain = flow.walk_to(flow.start("EDU-2027-001")["id"], "competent_check")
    claimed = flow.walk_to(flow.start("EDU-2027-003")["id"], "competent_check")
    assert api("edu_bureau").post(f"{P}/tasks/{claimed['id']}/claim").status_code == 200
    plain_statements, plain_answer = _sent_statements(
        demo_core.db, lambda: flow.complete("edu_bureau", plain["id"], form_data))
    claimed_statements, claimed_answer = _sent_statements(
        demo_core.db, lambda: flow.complete("edu_bureau", claimed["id"], form_data))
    for answer in (plain_answer, claimed_answer):
        assert answer["completed"]["completed_by"] == "edu_bureau"
    assert plain_answer["completed"]["assignee"] is None
    assert (claimed_answer["completed"]["assignee"], claimed_answer["completed"]["assignee_name"]) == \
        ("edu_bureau", actor("edu_bureau").display_name)
    reads_users = [st for st in plain_statements + claimed_statements if "FROM users WHERE users.id" in st]
    assert reads_users == []
    assert len(claimed_statements) == len(plain_statements)

    deploy_test_model("parallel_checks")
    case = demo_core.cases.start(actor("perf1"), "parallel_checks", project_id("EDU-2027-001"))
    tasks = {t["step"]: t for t in flow.case(case.id)["tasks"]}
    assert api("review1").post(f"{P}/tasks/{tasks['check_budget']['id']}/claim").status_code == 200
    api("perf1")    # logged in before the statements are counted
    statements, answer = _sent_statements(
        demo_core.db, lambda: flow.complete("perf1", tasks["check_indicators"]["id"], {"indicator_note": "on track"}))
    assert len([st for st in statements if "FROM users WHERE users.id" in st]) == 1     # review1, once
    [still_open] = answer["case"]["tasks"]
    assert (still_open["step"], still_open["assignee"], still_open["assignee_name"]) == \
        ("check_budget", "review1", actor("review1").display_name)
    assert answer["completed"]["completed_by"] == "perf1"
