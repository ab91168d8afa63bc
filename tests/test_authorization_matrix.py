"""Who may use which page and API route: one table, every route, every demo role.

Each cell is either allowed (anything but 403; a request built to be refused by validation
answers 400, one for a missing campaign 404) or refused (403). The scene: a goal review of
EDU-2027-001 (No. 1 Middle School, Education Bureau, Education Funding Section) waiting at the
Education Bureau's check. Requests never change anything that a later request depends on.
"""
from __future__ import annotations

import io
import re

import pytest

from conftest import ApiClient, PageSession
from engine import demo

USERS = ("admin", "supervisor", "review1", "perf1", "edu_section", "agri_section", "edu_bureau", "agri_bureau",
         "school_unit", "farm_unit", "expert1")
EVERYONE = frozenset(USERS)
FINANCE = frozenset({"admin", "supervisor", "review1", "perf1"})         # see every case and the figures
CASE = FINANCE | {"school_unit", "edu_bureau", "edu_section"}            # the case's unit, department, section
PROJECT = CASE | {"expert1"}                                             # third parties see projects
ACTOR = frozenset({"edu_bureau"})                                        # the open task's holders
RELEASE = ACTOR | {"admin"}
RUNNERS = frozenset({"perf1", "admin"})                                  # campaigns
IMPORTERS = frozenset({"perf1", "admin"})                                # (and the budget section)
STARTERS = frozenset({"school_unit", "admin"})                           # the project's unit
ADMIN = frozenset({"admin"})
NO_CAMPAIGN = 999999

# (method, path, who is allowed, what to send)
PAGES = [
    ("GET", "/inbox", EVERYONE, None),
    ("GET", "/cases", EVERYONE, None),
    ("GET", "/start", EVERYONE, None),
    ("GET", "/problems", EVERYONE, None),
    ("GET", "/campaigns", EVERYONE, None),
    ("GET", "/figures", FINANCE, None),
    ("GET", "/admin/settings", ADMIN, None),
    ("POST", "/admin/settings/spot_check.sample_ratio", ADMIN, {"value": "many"}),
    ("GET", "/tasks/{task}", CASE, None),
    ("POST", "/tasks/{task}", ACTOR, {"decision": "maybe"}),
    ("POST", "/tasks/{task}/claim", ACTOR, {}),
    ("POST", "/tasks/{task}/unclaim", RELEASE, {}),
    ("GET", "/cases/{case}", CASE, None),
    ("GET", "/projects/{project}", PROJECT, None),
    ("POST", "/start", STARTERS, {"process": "goal_review", "project": "{project}"}),
    ("GET", "/campaigns/{campaign}", EVERYONE, None),
    ("POST", "/campaigns", RUNNERS, {"kind": "audit", "year": "2027"}),
    ("POST", "/campaigns/{campaign}/draw", RUNNERS, {"ratio": "0.5"}),
    ("POST", "/campaigns/{campaign}/close", RUNNERS, {}),
    ("POST", "/cases/{case}/retry", ADMIN, {}),
    ("GET", "/projects/import", IMPORTERS, None),
    ("POST", "/projects/import", IMPORTERS, {}),
    ("GET", "/projects/import/template.xlsx", EVERYONE, None),
    # Each user sees only their own notifications; another's id is 'not found' (404) to everyone.
    ("GET", "/notifications", EVERYONE, None),
    ("POST", "/notifications/read", EVERYONE, {}),
    ("GET", "/notifications/999999", EVERYONE, None),
    # Files: added to the open task by its holders; the unit's file (of its submitted task) is seen
    # by whoever sees the case and removed by nobody, not even the unit (409, its task is done).
    ("POST", "/tasks/{task}/attachments", ACTOR, {}),
    ("POST", "/tasks/{submitted}/attachments/{attachment}/remove", frozenset({"school_unit"}), {}),
    ("GET", "/attachments/{attachment}", CASE, None),
]
API = [
    ("GET", "/api/v1/me", EVERYONE, None),
    ("GET", "/api/v1/processes", EVERYONE, None),
    ("GET", "/api/v1/projects", EVERYONE, None),
    ("GET", "/api/v1/cases", EVERYONE, None),
    ("GET", "/api/v1/tasks", EVERYONE, None),
    ("GET", "/api/v1/campaigns", EVERYONE, None),
    ("GET", "/api/v1/cases/{case}", CASE, None),
    ("POST", "/api/v1/cases", STARTERS, {"process": "goal_review", "project": "EDU-2027-001"}),
    ("GET", "/api/v1/tasks/{task}", CASE, None),
    ("POST", "/api/v1/tasks/{task}/complete", ACTOR, {"data": {"decision": "maybe"}}),
    ("POST", "/api/v1/tasks/{task}/claim", ACTOR, {}),
    ("POST", "/api/v1/tasks/{task}/unclaim", RELEASE, {}),
    ("GET", "/api/v1/campaigns/{campaign}", EVERYONE, None),
    ("POST", "/api/v1/campaigns", RUNNERS, {"kind": "audit", "year": 2027}),
    ("POST", "/api/v1/campaigns/{campaign}/draw", RUNNERS, {"ratio": 0.5}),
    ("POST", "/api/v1/campaigns/{campaign}/close", RUNNERS, {}),
    ("POST", "/api/v1/cases/{case}/retry", ADMIN, {}),
    ("POST", "/api/v1/projects/import", IMPORTERS, "multipart"),
    ("GET", "/api/v1/projects/import/template.xlsx", EVERYONE, None),
    ("GET", "/api/v1/notifications", EVERYONE, None),
    ("POST", "/api/v1/notifications/read", EVERYONE, {"all": True}),
    ("POST", "/api/v1/tasks/{task}/attachments", ACTOR, "multipart"),
    ("GET", "/api/v1/cases/{case}/attachments", CASE, None),
    ("GET", "/api/v1/attachments/{attachment}", CASE, None),
    ("DELETE", "/api/v1/attachments/{attachment}", frozenset({"school_unit"}), None),
]
# Routes open to anyone (logging in, the API description, static files) or that only redirect.
PUBLIC = {"/", "/login", "/logout", "/api/v1/tokens", "/api/v1/openapi.json", "/static/<path:filename>"}


@pytest.fixture
def scene(api):
    """The ids the table's paths name."""
    unit = api("school_unit")
    case = unit.post("/api/v1/cases", json={"process": "goal_review", "project": "EDU-2027-001"}).get_json()
    task = case["tasks"][0]["id"]
    attachment = unit.client.post(f"/api/v1/tasks/{task}/attachments", headers=unit.headers,
                                  data={"file": (io.BytesIO(b"%PDF-1.7\n"), "goals.pdf")}).get_json()["id"]
    assert unit.post(f"/api/v1/tasks/{task}/complete", json={"data": demo.sample_goals("Campus safety upgrade")}
                     ).status_code == 200
    now = unit.get(f"/api/v1/cases/{case['id']}").get_json()
    return {"case": case["id"], "task": now["tasks"][0]["id"], "project": case["project"]["id"],
            "campaign": NO_CAMPAIGN, "submitted": task, "attachment": attachment}


def _fill(text, scene):
    return re.sub(r"\{(\w+)\}", lambda m: str(scene[m.group(1)]), text) if isinstance(text, str) else text


def _undo_claim(path: str, status: int, send) -> None:
    """A successful claim is released again so the next user meets the same task."""
    if path.endswith("/claim") and status in (200, 302):
        send(path.replace("/claim", "/unclaim"))


def _check(table, scene, call) -> list[str]:
    wrong = []
    for method, template, allowed, body in table:
        path = _fill(template, scene)
        for user in USERS:
            status = call(user, method, path, body)
            if (user in allowed) != (status != 403) or status in (401, 500):
                wrong.append(f"{method} {template} as {user}: {status}, "
                             f"expected {'allowed' if user in allowed else '403'}")
    return wrong


def test_every_page_against_every_role(app, scene):
    sessions = {user: PageSession(app, user) for user in USERS}

    def call(user, method, path, body):
        session = sessions[user]
        if method == "GET":
            return session.get(path).status_code
        form = {k: _fill(v, scene) for k, v in body.items()}
        status = session.post_form(path, form, page_path="/inbox").status_code
        _undo_claim(path, status, lambda p: session.post_form(p, {}, page_path="/inbox"))
        return status

    assert _check(PAGES, scene, call) == []


def test_every_api_route_against_every_role(client, scene):
    callers = {user: ApiClient(client, user) for user in USERS}

    def call(user, method, path, body):
        caller = callers[user]
        if method == "GET":
            return caller.get(path).status_code
        if method == "DELETE":
            return client.delete(path, headers=caller.headers).status_code
        if body == "multipart":
            return client.post(path, headers=caller.headers,
                               data={"file": (io.BytesIO(b"not a workbook"), "projects.xlsx")}).status_code
        status = caller.post(path, json=body).status_code
        _undo_claim(path, status, lambda p: caller.post(p))
        return status

    assert _check(API, scene, call) == []


def test_the_table_names_every_route(app):
    paths = [re.sub(r"\{\w+\}", "1", t) for _, t, _, _ in PAGES + API]
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.rule in PUBLIC:
            continue
        pattern = re.sub(r"<(?:\w+:)?\w+>", "[^/]+", re.escape(rule.rule).replace("\\<", "<").replace("\\>", ">"))
        methods = rule.methods - {"HEAD", "OPTIONS"}
        for method in methods:
            if not any(m == method and re.fullmatch(pattern, p)
                       for (m, _, _, _), p in zip(PAGES + API, paths)):
                missing.append(f"{method} {rule.rule}")
    assert missing == [], "add these routes to the authorization table"
