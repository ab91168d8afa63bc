"""The HTML pages through the Flask test client, as the demo users (password 'demo').

Cases are moved along either through the pages under test or, where a test is about what a
page shows at some later step, through the engine's own CaseService (the same calls the pages
make), so each test starts from a known state.
"""
from __future__ import annotations

import json
import re
from datetime import datetime
from urllib.parse import urlsplit

import pytest
from lxml import html as lxml_html

from engine.clock import FixedClock
from engine.forms import from_form_fields

T0 = datetime(2027, 3, 1, 9, 30)

GOALS = {
    "project_overview": "Cameras and access control at both campus gates.",
    "long_term_goal": "A safe campus for all 2,400 students.",
    "annual_goal": "Install 40 cameras and two access gates by year end.",
    "indicators": [
        {"level1": "output", "level2": "quantity", "name": "Cameras installed", "operator": ">=",
         "target": "40", "unit": "units", "weight": 60, "core": True},
        {"level1": "satisfaction", "level2": "satisfaction", "name": "Parent satisfaction", "operator": ">=",
         "target": "90", "unit": "%", "weight": 40},
    ],
}


def worker(step: str, code: str) -> str:
    """The demo user who works on a step of a goal review of the project `code`."""
    agri = code.startswith("AGR")
    return {"compile_goals": "farm_unit" if agri else "school_unit",
            "competent_check": "agri_bureau" if agri else "edu_bureau",
            "preliminary_review": "review1", "re_examination": "perf1", "third_party_review": "expert1",
            "final_review": "agri_section" if agri else "edu_section"}[step]


def form_fields(goals: dict) -> dict:
    """The goals as a browser posts them: flat HTML field names, text values."""
    out = {k: v for k, v in goals.items() if k != "indicators"}
    for i, row in enumerate(goals.get("indicators", [])):
        for key, value in row.items():
            if value is True:
                out[f"indicators-{i}-{key}"] = "true"
            elif value is not False:
                out[f"indicators-{i}-{key}"] = str(value)
    return out


# ---- fixtures and helpers -------------------------------------------------------------------

@pytest.fixture
def clock():
    """Time stands still unless a test moves it, so shown times are exact."""
    return FixedClock(T0)


class Flow:
    """Moves goal-review cases along through the engine (as the named demo users)."""

    def __init__(self, core, actor, project_id, clock):
        self.core, self.actor, self.project_id, self.clock = core, actor, project_id, clock

    def start(self, code: str = "EDU-2027-001") -> int:
        unit = worker("compile_goals", code)
        return self.core.cases.start(self.actor(unit), "goal_review", self.project_id(code)).id

    def open_task(self, case_id: int) -> dict:
        tasks = self.core.reads.case(self.actor("supervisor"), case_id, with_data=False)["tasks"]
        assert len(tasks) == 1, tasks
        return tasks[0]

    def do(self, case_id: int, data: dict | None = None, username: str | None = None) -> dict:
        """Complete the case's open task (goals for the unit, approval for a reviewer)."""
        task = self.open_task(case_id)
        self.clock.advance(minutes=5)
        if data is None:
            data = GOALS if task["step"] == "compile_goals" else {"decision": "approve"}
        username = username or worker(task["step"], task["project"]["code"])
        self.core.cases.complete(self.actor(username), task["id"], data)
        return task

    def to(self, step: str, code: str = "EDU-2027-001") -> tuple[int, int]:
        """Start a case and approve it up to `step`; return (case id, id of the open task)."""
        case_id = self.start(code)
        while (task := self.open_task(case_id))["step"] != step:
            self.do(case_id)
        return case_id, task["id"]


@pytest.fixture
def flow(demo_core, actor, project_id, clock):
    return Flow(demo_core, actor, project_id, clock)


def _csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def doc(response):
    return lxml_html.fromstring(response.get_data(as_text=True))


def words(el) -> str:
    return " ".join(el.text_content().split())


def cls(name: str) -> str:
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


def one(tree, xpath: str):
    found = tree.xpath(xpath)
    assert len(found) == 1, f"{xpath}: {len(found)} matches"
    return found[0]


def flashes(tree) -> list[str]:
    return [words(p) for p in tree.xpath(f"//p[{cls('flash')}]")]


def field_errors(tree) -> dict[str, str]:
    return {e.get("data-field"): words(e) for e in tree.xpath(f"//small[{cls('field-error')}]")}


def inbox_count(tree) -> int:
    return int(one(tree, "//*[@data-testid='inbox-count']").text)


def task_rows(tree, section: str) -> list[dict]:
    """Rows of 'my-tasks' or 'group-tasks' on the inbox page."""
    rows = []
    for tr in tree.xpath(f"//section[@id='{section}']//tr[@data-task-id]"):
        cells = tr.xpath("./td")
        rows.append({"id": int(tr.get("data-task-id")), "step": words(cells[0]), "project": words(cells[1]),
                     "case": words(cells[2]), "for": " ".join(" ".join(cells[3].itertext()).split()),
                     "since": words(cells[4]),
                     "since_iso": cells[4].xpath(".//time/@datetime")[0], "due": words(cells[5]),
                     "action": words(cells[6])})
    return rows


def facts(dl) -> dict[str, str]:
    return dict(zip([words(d) for d in dl.xpath("./dt")], [words(d) for d in dl.xpath("./dd")], strict=True))


def opinions(tree) -> list[str]:
    return [words(d) for d in tree.xpath(f"//article[@id='opinions']//div[{cls('opinion')}]")]


def timeline(tree) -> list[str]:
    return [words(li) for li in tree.xpath("//ol[@id='timeline']/li")]


def diagram_data(tree) -> dict:
    return json.loads(one(tree, "//script[@id='diagram-data']").text)


def error_page(response) -> tuple[str, str]:
    tree = doc(response)
    return words(one(tree, "//article/h1")), words(one(tree, "//article/p[@role='alert']"))


def sentence(text: str) -> str:
    """Engine messages start lower-case; error pages show them as a sentence."""
    return text[:1].upper() + text[1:]


# ---- login, logout, sessions, CSRF ----------------------------------------------------------

def test_login_page_has_a_form_with_csrf_token_and_no_navigation(client):
    response = client.get("/login")
    assert response.status_code == 200
    tree = doc(response)
    assert words(one(tree, "//title")) == "Log in · PerfBudget"
    form = one(tree, "//article[@class='login']//form")
    assert form.get("method") == "post"
    assert [i.get("name") for i in form.xpath(".//input")] == ["csrf_token", "username", "password"]
    assert form.xpath(".//input[@name='password']/@type") == ["password"]
    assert form.xpath(".//input[@name='csrf_token']/@value")[0]
    assert tree.xpath("//*[@data-testid='inbox-count']") == []
    assert tree.xpath("//p[@role='alert']") == []


@pytest.mark.parametrize("username, password", [("school_unit", "wrong"), ("nobody", "demo"), ("school_unit", "")])
def test_bad_login_is_a_401_page_with_the_message_and_the_username_kept(client, username, password):
    token = _csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    assert response.status_code == 401
    tree = doc(response)
    assert words(one(tree, "//p[@role='alert']")) == "Wrong username or password."
    assert tree.xpath("//input[@name='username']/@value") == [username]
    assert tree.xpath("//input[@name='password']/@value") == []
    assert client.get("/inbox").status_code == 302


@pytest.mark.parametrize("path", ["/", "/inbox", "/cases", "/start", "/tasks/1", "/cases/1", "/projects/1"])
def test_pages_need_a_login_and_redirect_to_it_with_next(client, path):
    response = client.get(path)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert location.query == "next=" + path.replace("/", "%2F")


def test_login_goes_to_the_next_page_asked_for(client):
    page = client.get("/login?next=/cases")
    token = _csrf_from(page.get_data(as_text=True))
    response = client.post("/login?next=/cases", data={"username": "review1", "password": "demo",
                                                       "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/cases"
    assert client.get("/cases").status_code == 200
    # Logged in, the login page sends people to their inbox.
    again = client.get("/login")
    assert (again.status_code, again.headers["Location"]) == (302, "/inbox")


@pytest.mark.parametrize("target", ["//evil.example", "//evil.example/inbox", "https://evil.example/",
                                    "http:evil.example", "/\\evil.example", "\\\\evil.example",
                                    "javascript:alert(1)", "/%2F%2Fevil.example"])
def test_login_refuses_to_redirect_off_site(client, target):
    page = client.get("/login")
    token = _csrf_from(page.get_data(as_text=True))
    response = client.post("/login", query_string={"next": target},
                           data={"username": "review1", "password": "demo", "csrf_token": token})
    assert response.status_code == 302
    location = response.headers["Location"]
    parts = urlsplit(location)
    assert (parts.scheme, parts.netloc) == ("", ""), location
    assert location.startswith("/") and not location.startswith("//"), location
    assert "\\" not in location, location
    if target.startswith(("//", "https:", "http:", "javascript:", "\\")):
        assert location == "/inbox"


def test_logout_is_a_post_with_csrf_token(pages):
    s = pages("school_unit")
    assert s.client.get("/logout").status_code == 405
    refused = s.client.post("/logout")
    assert refused.status_code == 400
    assert error_page(refused) == ("Something is wrong",
                                   "The form expired or was sent from elsewhere; reload the page and try again.")
    assert s.get("/inbox").status_code == 200          # still logged in
    tree = doc(s.get("/inbox"))
    form = one(tree, "//form[@action='/logout']")
    assert form.get("method") == "post"
    assert form.xpath(".//input[@name='csrf_token']/@value")[0]
    response = s.post_form("/logout", {}, page_path="/inbox")
    assert (response.status_code, response.headers["Location"]) == (302, "/login")
    login = s.get("/login")
    assert flashes(doc(login)) == ["You have logged out."]
    after = s.get("/inbox")
    assert after.status_code == 302 and after.headers["Location"].startswith("/login")


def test_posts_without_csrf_token_are_refused_and_change_nothing(pages, flow, project_id, client):
    s = pages("school_unit")
    case_id, task_id = flow.to("compile_goals")
    posts = [
        ("/start", {"process": "goal_review", "project": str(project_id("EDU-2027-002"))}),
        (f"/tasks/{task_id}", form_fields(GOALS)),
        (f"/tasks/{task_id}/claim", {}),
    ]
    for path, data in posts:
        for token in (None, "not-a-token"):
            body = dict(data) if token is None else {**data, "csrf_token": token}
            response = s.client.post(path, data=body)
            assert response.status_code == 400, path
            assert error_page(response)[1] == \
                "The form expired or was sent from elsewhere; reload the page and try again."
    # Nothing happened: one case, its task still open and unclaimed.
    tree = doc(s.get("/inbox"))
    assert [r["id"] for r in task_rows(tree, "group-tasks")] == [task_id]
    assert task_rows(tree, "my-tasks") == []
    assert doc(s.get("/cases")).xpath("//table//a[starts-with(@href, '/cases/')]/@href") == [f"/cases/{case_id}"]
    # The login form is protected too.
    response = client.post("/login", data={"username": "school_unit", "password": "demo"})
    assert response.status_code == 400
    assert client.get("/inbox").status_code == 302


def test_session_cookie_is_httponly_and_samesite_lax(client):
    token = _csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"username": "school_unit", "password": "demo", "csrf_token": token})
    assert response.status_code == 302
    cookies = response.headers.getlist("Set-Cookie")
    session = [c for c in cookies if c.startswith("session=")]
    assert len(session) == 1, cookies
    attributes = {a.strip().split("=")[0].lower(): a.strip() for a in session[0].split(";")[1:]}
    assert "httponly" in attributes
    assert attributes["samesite"] == "SameSite=Lax"
    assert attributes["path"] == "Path=/"
    # No long-lived "remember me" cookie is handed out (Flask-Login only sends one that deletes it).
    assert [c for c in cookies if c.startswith("remember_token=") and not c.startswith("remember_token=;")] == []


# ---- start page -------------------------------------------------------------------------------

def test_start_page_lists_the_units_projects_with_start_buttons(pages, project_id):
    tree = doc(pages("school_unit").get("/start"))
    section = one(tree, "//section[@id='start-goal_review']")
    assert words(one(section, "./h2")) == "Performance goal review"
    assert "Started by the budget unit." in words(one(section, "./p"))
    rows = section.xpath(".//tbody/tr")
    assert [words(r.xpath("./td")[0]) for r in rows] == [
        "Campus safety upgrade EDU-2027-001",
        "Smart classroom renovation EDU-2027-002 key",
        "Student nutrition improvement EDU-2027-003",
        "School library expansion EDU-2027-004",
    ]
    assert [words(r.xpath("./td")[2]) for r in rows] == ["1,200,000", "6,500,000", "2,000,000", "900,000"]
    assert [words(r.xpath("./td")[3]) for r in rows] == ["none", "none", "none", "none"]
    # A new project without a passed ex-ante evaluation says why instead of offering a start.
    assert rows[3].xpath(".//form") == []
    assert words(one(rows[3], ".//small[@class='muted blocked']")) == (
        "Project EDU-2027-004 needs a passed ex-ante evaluation before its goals are reviewed (evaluation: none)")
    rows = rows[:3]
    for row, code in zip(rows, ["EDU-2027-001", "EDU-2027-002", "EDU-2027-003"], strict=True):
        form = one(row, ".//form")
        assert form.get("method") == "post"
        hidden = {i.get("name"): i.get("value") for i in form.xpath(".//input[@type='hidden']")}
        assert hidden["process"] == "goal_review"
        assert hidden["project"] == str(project_id(code))
        assert hidden["csrf_token"]
        assert words(one(form, ".//button")) == "Start"


def test_starting_a_goal_review_goes_to_the_units_first_task(pages, project_id, flow):
    s = pages("school_unit")
    response = s.post_form("/start", {"process": "goal_review", "project": str(project_id("EDU-2027-001"))})
    assert response.status_code == 302
    task_path = response.headers["Location"]
    assert re.fullmatch(r"/tasks/\d+", task_path)
    page = s.get(task_path)
    assert page.status_code == 200
    tree = doc(page)
    case_id = int(re.search(r"/cases/(\d+)", one(tree, "//hgroup/p/a").get("href")).group(1))
    assert flashes(tree) == [f"Case {case_id} started: Compile performance goals."]
    assert words(one(tree, "//h1")) == "Compile performance goals"
    assert flow.open_task(case_id)["id"] == int(task_path.rsplit("/", 1)[1])
    # The start page now links the running case instead of offering a second one.
    start = doc(s.get("/start"))
    first = one(start, "//section[@id='start-goal_review']//tbody/tr[1]")
    assert first.xpath(".//form") == []
    assert words(one(first, ".//a")) == f"case #{case_id} running"
    assert one(first, ".//a").get("href") == f"/cases/{case_id}"
    assert words(first.xpath("./td")[3]) == "in review"


def test_a_second_goal_review_of_the_same_project_is_refused(pages, project_id, flow):
    case_id = flow.start("EDU-2027-001")
    response = pages("school_unit").post_form(
        "/start", {"process": "goal_review", "project": str(project_id("EDU-2027-001"))})
    assert response.status_code == 409
    assert error_page(response)[1] == \
        f"Project EDU-2027-001 already has a goal review in progress (case {case_id})"


@pytest.mark.parametrize("username, code, message", [
    ("school_unit", "AGR-2027-001", "you may not start cases for this project"),
    ("edu_bureau", "EDU-2027-001", "only the project's budget unit may start 'Performance goal review'"),
    ("review1", "EDU-2027-001", "only the project's budget unit may start 'Performance goal review'"),
])
def test_only_the_projects_unit_may_start_a_goal_review(pages, project_id, username, code, message):
    response = pages(username).post_form("/start", {"process": "goal_review", "project": str(project_id(code))})
    assert response.status_code == 403
    assert error_page(response) == ("Not allowed", sentence(message))


def test_start_page_tells_other_roles_they_start_nothing(pages):
    tree = doc(pages("edu_bureau").get("/start"))
    section = one(tree, "//section[@id='start-goal_review']")
    assert section.xpath(".//form") == []
    assert words(one(section, "./p[2]")) == "You hold no role that starts this process for any project."


def test_start_without_a_project_is_a_400_page(pages):
    response = pages("school_unit").post_form("/start", {"process": "goal_review", "project": ""})
    assert response.status_code == 400
    tree = doc(response)
    assert words(one(tree, "//article/p[@role='alert']")) == "Choose a project"
    assert words(one(tree, "//article/ul/li")) == "project: This field is required."


# ---- the unit's goals form --------------------------------------------------------------------

def test_compile_task_page_renders_the_goals_form_and_the_project(pages, flow):
    case_id, task_id = flow.to("compile_goals")
    tree = doc(pages("school_unit").get(f"/tasks/{task_id}"))
    assert words(one(tree, "//h1")) == "Compile performance goals"
    assert words(one(tree, "//p[@class='task-meta']")) == \
        "For Budget unit of No. 1 Middle School · waiting since 2027-03-01 09:30"
    assert words(one(tree, "//div[@class='instructions']/p[1]")) == \
        "Compile the performance goals of Campus safety upgrade (EDU-2027-001) for budget year 2027."
    form = one(tree, "//form[@id='task-form']")
    assert form.get("method") == "post"
    assert form.xpath(".//input[@name='csrf_token']/@value")[0]
    textareas = [(t.get("name"), t.get("rows")) for t in form.xpath(".//textarea")]
    assert textareas == [("project_overview", "4"), ("basis", "4"), ("schedule", "3"), ("safeguards", "3"),
                         ("long_term_goal", "3"), ("annual_goal", "3")]
    labels = {lab.get("for"): words(lab) for lab in form.xpath(".//label[@for]")}
    assert labels["f-long_term_goal"] == "Long-term goal *"
    assert labels["f-annual_goal"] == "Annual goal *"
    assert labels["f-project_overview"] == "Project overview"
    table = one(form, ".//div[@class='table-field' and @data-table='indicators']")
    assert [words(th) for th in table.xpath(".//thead/tr/th")] == [
        "Level-1 indicator *", "Level-2 indicator *", "Indicator name *", "Operator *", "Target value *",
        "Unit of measure", "Weight *", "Evaluation standard", "Core indicator", "Note", ""]
    rows = table.xpath(".//tbody/tr[@class='row']")
    assert len(rows) == 1
    assert [el.get("name") for el in rows[0].xpath(".//*[@name]")] == [
        f"indicators-0-{c}" for c in ("level1", "level2", "name", "operator", "target", "unit", "weight",
                                      "standard", "core", "note")]

    def options(name):
        return [(o.get("value"), words(o)) for o in one(rows[0], f".//select[@name='{name}']").xpath("./option")]
    assert options("indicators-0-level1") == [("", "—"), ("output", "Output"), ("effect", "Effect"),
                                              ("satisfaction", "Satisfaction")]
    assert options("indicators-0-level2") == [
        ("", "—"), ("quantity", "Quantity"), ("quality", "Quality"), ("timeliness", "Timeliness"),
        ("cost", "Cost"), ("economic", "Economic benefit"), ("social", "Social benefit"),
        ("ecological", "Ecological benefit"), ("sustainable", "Sustainable impact"),
        ("satisfaction", "Service recipient satisfaction")]
    assert options("indicators-0-operator") == [("", "—"), (">=", "≥"), (">", ">"), ("=", "="), ("<", "<"),
                                                ("<=", "≤"), ("qualitative", "Qualitative")]
    assert rows[0].xpath(".//input[@name='indicators-0-core']/@type") == ["checkbox"]
    assert rows[0].xpath(".//input[@name='indicators-0-target']/@placeholder") == ["e.g. 95"]
    assert words(one(rows[0], f".//button[{cls('remove-row')}]")) == "✕"
    assert words(one(table, f".//button[{cls('add-row')}]")) == "Add row"
    assert tree.xpath("//script[@src='/static/js/table-rows.js']")
    # The project's facts beside the form; no goals or opinions yet.
    assert facts(one(tree, "//aside[@class='task-context']//dl[@class='facts']")) == {
        "Code": "EDU-2027-001", "Name": "Campus safety upgrade", "Year": "2027",
        "Budget unit": "No. 1 Middle School", "Competent department": "Education Bureau",
        "Funding section": "Education and Culture Funding Section", "Amount": "1,200,000.00 yuan",
        "Key project": "No"}
    assert tree.xpath("//article[@id='goals']") == []
    assert words(one(tree, "//article[@id='opinions']/p")) == "No opinion yet."


def test_submitting_the_goals_goes_to_the_inbox_naming_the_next_step(pages, flow, demo_core, actor):
    case_id, task_id = flow.to("compile_goals")
    s = pages("school_unit")
    response = s.post_form(f"/tasks/{task_id}", form_fields(GOALS))
    assert (response.status_code, response.headers["Location"]) == (302, "/inbox")
    inbox = doc(s.get("/inbox"))
    assert flashes(inbox) == ["“Compile performance goals” submitted. Next step: Competent department check "
                              "(Competent department, Education Bureau)."]
    assert inbox_count(inbox) == 0
    assert flow.open_task(case_id)["step"] == "competent_check"
    case = demo_core.reads.case(actor("supervisor"), case_id)
    # As typed; the unticked checkbox of the second row reads as False.
    assert case["data"]["indicators"] == [GOALS["indicators"][0], {**GOALS["indicators"][1], "core": False}]
    assert {k: case["data"][k] for k in ("project_overview", "long_term_goal", "annual_goal")} == \
        {k: GOALS[k] for k in ("project_overview", "long_term_goal", "annual_goal")}


INVALID = {
    "unit and annual goal missing": (
        lambda f: {k: v for k, v in f.items() if k not in ("indicators-0-unit", "annual_goal")},
        {"annual_goal": "This field is required.", "indicators-0-unit": "This field is required."}),
    "weight not a number": (
        lambda f: {**f, "indicators-1-weight": "forty"}, {"indicators-1-weight": "Enter a number."}),
    "weight zero": (
        lambda f: {**f, "indicators-0-weight": "0"}, {"indicators-0-weight": "Must be more than 0."}),
    "level 2 of another level 1": (
        lambda f: {**f, "indicators-1-level2": "social"},
        {"indicators-1-level2": "Choose one of the listed values."}),
    "quantitative target not a number": (
        lambda f: {**f, "indicators-0-target": "about 40"}, {"indicators-0-target": "Enter a number."}),
    "no indicator": (
        lambda f: {k: v for k, v in f.items() if not k.startswith("indicators-")},
        {"indicators": "Add at least 1 row(s)."}),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_goals_are_a_400_page_with_errors_at_the_fields_and_input_kept(pages, flow, case):
    case_id, task_id = flow.to("compile_goals")
    change, expected = INVALID[case]
    sent = change(form_fields(GOALS))
    s = pages("school_unit")
    response = s.post_form(f"/tasks/{task_id}", sent)
    assert response.status_code == 400
    tree = doc(response)
    assert field_errors(tree) == expected
    count = len(expected)
    assert words(one(tree, "//section[@class='task-form']/p[@role='alert']")) == \
        f"The form has {count} error{'s' if count > 1 else ''}; see the marked fields."
    for name in expected:
        error = one(tree, f"//small[{cls('field-error')} and @data-field='{name}']")
        if name == "indicators":      # under the whole table
            assert error.getparent().get("id") == "field-indicators"
            continue
        control = error.getprevious()  # right after its control, which is marked invalid
        assert control.get("name") == name
        assert control.get("aria-invalid") == "true"
    # Everything typed comes back as typed.
    for name, value in sent.items():
        if name.startswith("indicators-") and name.endswith("-core"):
            assert one(tree, f"//input[@name='{name}']").get("checked") is not None
        elif name.endswith(("level1", "level2", "operator")):
            assert one(tree, f"//select[@name='{name}']").xpath("./option[@selected]/@value") == [value]
        elif name in ("project_overview", "long_term_goal", "annual_goal"):
            assert (one(tree, f"//textarea[@name='{name}']").text or "") == value
        else:
            assert one(tree, f"//input[@name='{name}']").get("value") == value
    if "annual_goal" in expected:
        assert (one(tree, "//textarea[@name='annual_goal']").text or "") == ""
    # And nothing moved.
    assert flow.open_task(case_id)["id"] == task_id


def test_a_blank_indicator_row_is_left_out(pages, flow, demo_core):
    # What the browser sends after "Add row" was pressed and the new row left empty: every text
    # field of the row, empty; the unticked checkbox not at all.
    case_id, task_id = flow.to("compile_goals")
    blank = {f"indicators-2-{c}": "" for c in ("level1", "level2", "name", "operator", "target", "unit",
                                                 "weight", "standard", "note")}
    schema = demo_core.reads.task(flow.actor("school_unit"), task_id)["form"]["schema"]
    assert from_form_fields(schema, {**form_fields(GOALS), **blank})["indicators"] == \
        [GOALS["indicators"][0], {**GOALS["indicators"][1], "core": False}]


# ---- review steps -----------------------------------------------------------------------------

def test_review_task_page_shows_the_goals_and_the_decision_choices(pages, flow):
    case_id, task_id = flow.to("competent_check")
    tree = doc(pages("edu_bureau").get(f"/tasks/{task_id}"))
    assert words(one(tree, "//h1")) == "Competent department check"
    assert words(one(tree, "//p[@class='task-meta']")) == \
        "For Competent department of Education Bureau · waiting since 2027-03-01 09:35"
    radios = tree.xpath("//form[@id='task-form']//fieldset[@class='radio-group']//input[@type='radio']")
    assert [(r.get("name"), r.get("value"), r.get("checked")) for r in radios] == [
        ("decision", "approve", None), ("decision", "return", None)]
    assert [words(r.getparent()) for r in radios] == ["Approve", "Return to the unit"]
    assert (one(tree, "//textarea[@name='comment']").text or "") == ""
    goals = one(tree, "//article[@id='goals']")
    assert [words(h) for h in goals.xpath("./h6")] == ["Long-term goal", "Annual goal", "Overview"]
    assert [words(p) for p in goals.xpath("./p")] == [GOALS["long_term_goal"], GOALS["annual_goal"],
                                                      GOALS["project_overview"]]
    # (The level columns: see test_goal_tables_show_the_category_titles.)
    assert [[words(td) for td in tr.xpath("./td")][2:] for tr in goals.xpath(".//tbody/tr")] == [
        ["Cameras installed core", "≥ 40 units", "60"],
        ["Parent satisfaction", "≥ 90 %", "40"]]
    assert words(one(tree, "//article[@id='opinions']/p")) == "No opinion yet."


def test_approving_through_the_review_page(pages, flow):
    case_id, task_id = flow.to("competent_check")
    s = pages("edu_bureau")
    response = s.post_form(f"/tasks/{task_id}", {"decision": "approve", "comment": "Fits our plan."})
    assert (response.status_code, response.headers["Location"]) == (302, "/inbox")
    assert flashes(doc(s.get("/inbox"))) == [
        "“Competent department check” submitted. Next step: Preliminary review (Budget review center)."]
    assert flow.open_task(case_id)["step"] == "preliminary_review"


def test_returning_through_the_review_page_shows_the_opinion_to_the_unit(pages, flow):
    case_id, task_id = flow.to("competent_check")
    s = pages("edu_bureau")
    response = s.post_form(f"/tasks/{task_id}", {"decision": "return", "comment": "Add a cost indicator."})
    assert (response.status_code, response.headers["Location"]) == (302, "/inbox")
    assert flashes(doc(s.get("/inbox"))) == [
        "“Competent department check” submitted. Next step: Compile performance goals "
        "(Budget unit, No. 1 Middle School)."]
    unit_task = flow.open_task(case_id)
    assert unit_task["step"] == "compile_goals"
    tree = doc(pages("school_unit").get(f"/tasks/{unit_task['id']}"))
    assert opinions(tree) == ["Competent department check — Zhou Min (Education Bureau) 2027-03-01 09:35 "
                              "Returned Add a cost indicator."]


def test_return_without_an_opinion_is_refused_at_the_comment(pages, flow):
    case_id, task_id = flow.to("competent_check")
    response = pages("edu_bureau").post_form(f"/tasks/{task_id}", {"decision": "return", "comment": "  "})
    assert response.status_code == 400
    tree = doc(response)
    assert field_errors(tree) == {"comment": "This field is required."}
    assert one(tree, "//small[@data-field='comment']").getprevious().get("name") == "comment"
    assert tree.xpath("//input[@name='decision' and @checked]/@value") == ["return"]
    no_decision = pages("edu_bureau").post_form(f"/tasks/{task_id}", {"comment": "Looks fine"})
    assert no_decision.status_code == 400
    tree = doc(no_decision)
    assert field_errors(tree) == {"decision": "This field is required."}
    assert one(tree, "//small[@data-field='decision']").getprevious().tag == "fieldset"
    assert one(tree, "//textarea[@name='comment']").text == "Looks fine"
    assert flow.open_task(case_id)["id"] == task_id


def test_returned_case_shows_the_opinion_and_the_earlier_goals_to_the_unit(pages, flow):
    case_id, _ = flow.to("competent_check")
    flow.do(case_id, {"decision": "return", "comment": "Add a cost indicator per camera."})
    unit_task = flow.open_task(case_id)
    assert unit_task["step"] == "compile_goals"
    s = pages("school_unit")
    assert inbox_count(doc(s.get("/inbox"))) == 1
    tree = doc(s.get(f"/tasks/{unit_task['id']}"))
    assert opinions(tree) == ["Competent department check — Zhou Min (Education Bureau) 2027-03-01 09:40 "
                              "Returned Add a cost indicator per camera."]
    assert one(tree, f"//article[@id='opinions']//div[{cls('opinion-return')}]//blockquote").text == \
        "Add a cost indicator per camera."
    assert words(one(tree, "//div[@class='instructions']/p[3]")) == \
        "This submission goes back to the step that returned it. Opinion given: Add a cost indicator per camera."
    # The form holds the goals as submitted, ready to be revised.
    assert one(tree, "//textarea[@name='annual_goal']").text == GOALS["annual_goal"]
    assert len(tree.xpath("//div[@data-table='indicators']//tbody/tr[@class='row']")) == 2
    assert one(tree, "//input[@name='indicators-0-name']").get("value") == "Cameras installed"
    assert one(tree, "//input[@name='indicators-0-weight']").get("value") == "60"
    assert one(tree, "//input[@name='indicators-0-core']").get("checked") is not None
    assert one(tree, "//input[@name='indicators-1-core']").get("checked") is None
    assert one(tree, "//select[@name='indicators-1-level1']").xpath("./option[@selected]/@value") == \
        ["satisfaction"]
    assert tree.xpath("//textarea[@name='comment'] | //input[@name='decision']") == []


def test_second_review_round_starts_with_an_empty_opinion(pages, flow):
    case_id, _ = flow.to("competent_check")
    flow.do(case_id, {"decision": "return", "comment": "Add a cost indicator per camera."})
    flow.do(case_id)                      # the unit resubmits
    task = flow.open_task(case_id)
    assert task["step"] == "competent_check"
    tree = doc(pages("edu_bureau").get(f"/tasks/{task['id']}"))
    assert tree.xpath("//input[@name='decision' and @checked]") == []
    assert (one(tree, "//textarea[@name='comment']").text or "") == ""
    assert [o.split(" 2027")[0] for o in opinions(tree)] == ["Competent department check — Zhou Min (Education Bureau)"]


def test_opinions_and_timeline_escape_markup(pages, flow):
    case_id, _ = flow.to("competent_check")
    comment = "<script>alert('x')</script><b>bold</b>"
    flow.do(case_id, {"decision": "return", "comment": comment})
    unit_task = flow.open_task(case_id)
    page = pages("school_unit").get(f"/tasks/{unit_task['id']}").get_data(as_text=True)
    assert "<script>alert" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in page
    case_page = pages("school_unit").get(f"/cases/{case_id}").get_data(as_text=True)
    assert "<script>alert" not in case_page and "<b>bold" not in case_page
    assert one(doc(pages("school_unit").get(f"/cases/{case_id}")), "//ol[@id='timeline']//blockquote").text == comment


def test_a_reviewers_comment_cannot_plant_links_in_the_units_instructions(pages, flow):
    case_id, _ = flow.to("competent_check")
    flow.do(case_id, {"decision": "return",
                      "comment": "See [the guide](javascript:alert(document.cookie)) ![x](http://evil.example/t.png)"})
    unit_task = flow.open_task(case_id)
    tree = doc(pages("school_unit").get(f"/tasks/{unit_task['id']}"))
    instructions = one(tree, "//div[@class='instructions']")
    assert instructions.xpath(".//a[starts-with(normalize-space(@href), 'javascript:')]") == []
    assert instructions.xpath(".//img") == []


def test_final_approval_through_the_page_completes_the_case(pages, flow, project_id):
    case_id, task_id = flow.to("final_review")
    s = pages("edu_section")
    tree = doc(s.get(f"/tasks/{task_id}"))
    assert [r.get("value") for r in tree.xpath("//input[@name='decision']")] == ["approve", "return", "reject"]
    response = s.post_form(f"/tasks/{task_id}", {"decision": "approve", "comment": "Approved as submitted."})
    assert (response.status_code, response.headers["Location"]) == (302, "/inbox")
    inbox = doc(s.get("/inbox"))
    assert flashes(inbox) == ["“Final review” submitted. The case is complete."]
    assert inbox_count(inbox) == 0
    case = doc(s.get(f"/cases/{case_id}"))
    assert words(one(case, "//*[@data-testid='case-status']")) == "completed"
    project = doc(s.get(f"/projects/{project_id('EDU-2027-001')}"))
    assert words(one(project, "//*[@data-testid='goals-status']")) == "approved"
    # The closed task can be looked at but not submitted again.
    closed = doc(s.get(f"/tasks/{task_id}"))
    assert closed.xpath("//form[@id='task-form']") == []
    assert "· completed by edu_section at 2027-03-01 09:50" in words(one(closed, "//p[@class='task-meta']"))
    again = s.client.post(f"/tasks/{task_id}", data={"decision": "approve",
                                                     "csrf_token": _csrf_from(s.get("/inbox").get_data(as_text=True))})
    assert again.status_code == 409
    assert error_page(again) == (
        "Already done", "This task was already completed by Chen Jing (Education Funding Section) at "
                        "2027-03-01 09:50:00. Reload to see the case as it is now.")


def test_final_rejection_through_the_page(pages, flow, project_id):
    case_id, task_id = flow.to("final_review")
    s = pages("edu_section")
    response = s.post_form(f"/tasks/{task_id}", {"decision": "reject", "comment": "No budget this year."})
    assert (response.status_code, response.headers["Location"]) == (302, "/inbox")
    assert flashes(doc(s.get("/inbox"))) == ["“Final review” submitted. The case is complete."]
    case = doc(s.get(f"/cases/{case_id}"))
    assert timeline(case)[:2] == [
        "2027-03-01 09:50 System The case ended: Goals rejected",
        "2027-03-01 09:50 Chen Jing (Education Funding Section) rejected the goals at Final review "
        "No budget this year."]
    project = doc(s.get(f"/projects/{project_id('EDU-2027-001')}"))
    assert words(one(project, "//*[@data-testid='goals-status']")) == "rejected"
    assert project.xpath("//h2[starts-with(normalize-space(), 'Approved goals')]") == []


# ---- inbox and claiming -----------------------------------------------------------------------

def test_inbox_rows_show_step_project_case_and_waiting_since(pages, flow):
    first, _ = flow.to("preliminary_review", "EDU-2027-001")
    flow.clock.advance(hours=2)
    second, _ = flow.to("preliminary_review", "AGR-2027-002")
    flow.to("competent_check", "EDU-2027-003")          # not for the review center
    tree = doc(pages("review1").get("/inbox"))
    assert task_rows(tree, "my-tasks") == []
    assert words(one(tree, "//section[@id='my-tasks']/p")) == "Nothing assigned to you."
    rows = task_rows(tree, "group-tasks")
    assert [{k: r[k] for k in ("step", "project", "case", "for", "since", "since_iso", "due", "action")}
            for r in rows] == [
        {"step": "Preliminary review", "project": "Campus safety upgrade EDU-2027-001", "case": f"#{first}",
         "for": "Budget review center Finance bureau", "since": "2027-03-01 09:40",
         "since_iso": "2027-03-01T09:40:00", "due": "—", "action": "Claim"},
        {"step": "Preliminary review", "project": "Agricultural technology extension training AGR-2027-002",
         "case": f"#{second}", "for": "Budget review center Finance bureau", "since": "2027-03-01 11:50",
         "since_iso": "2027-03-01T11:50:00", "due": "—", "action": "Claim"},
    ]
    assert words(one(tree, "//section[@id='group-tasks']/h2")) == "Waiting for my roles 2"
    assert words(one(tree, "//title")) == "Inbox (2) · PerfBudget"
    link = one(tree, f"//tr[@data-task-id='{rows[0]['id']}']/td[1]/a")
    assert link.get("href") == f"/tasks/{rows[0]['id']}"


def test_inbox_count_in_the_navigation_is_the_number_of_open_tasks(pages, flow):
    flow.to("compile_goals", "EDU-2027-001")
    flow.to("competent_check", "EDU-2027-002")
    flow.to("preliminary_review", "EDU-2027-003")
    flow.to("third_party_review", "AGR-2027-001")
    expected = {"school_unit": 1, "edu_bureau": 1, "review1": 1, "perf1": 0, "expert1": 1, "agri_section": 0,
                "supervisor": 0}
    for username, count in expected.items():
        s = pages(username)
        inbox = doc(s.get("/inbox"))
        rows = task_rows(inbox, "my-tasks") + task_rows(inbox, "group-tasks")
        assert (inbox_count(inbox), len(rows)) == (count, count), username
        # The same count on every page.
        assert inbox_count(doc(s.get("/cases"))) == count, username


def test_claiming_moves_a_group_task_to_assigned_to_me_and_release_moves_it_back(pages, flow):
    case_id, task_id = flow.to("preliminary_review")
    s = pages("review1")
    inbox = doc(s.get("/inbox"))
    claim = one(inbox, f"//tr[@data-task-id='{task_id}']//form")
    assert (claim.get("method"), claim.get("action")) == ("post", f"/tasks/{task_id}/claim")
    response = s.post_form(f"/tasks/{task_id}/claim", {}, page_path="/inbox")
    assert (response.status_code, response.headers["Location"]) == (302, f"/tasks/{task_id}")
    task_page = doc(s.get(f"/tasks/{task_id}"))
    assert flashes(task_page) == ["The task is now yours."]
    assert words(one(task_page, "//p[@class='task-meta']")).endswith("· assigned to Li Na (Review Center)")
    assert words(one(task_page, "//div[@class='actions']/button[@form='release-form']")) == "Release to the group"
    inbox = doc(s.get("/inbox"))
    assert [(r["id"], r["action"]) for r in task_rows(inbox, "my-tasks")] == [(task_id, "Open")]
    assert task_rows(inbox, "group-tasks") == []
    assert inbox_count(inbox) == 1
    # A colleague of the same role no longer sees it waiting, and may not take it.
    other = doc(pages("supervisor").get(f"/tasks/{task_id}"))
    assert words(one(other, "//p[@class='notice']")) == \
        "This task is waiting for Li Na (Review Center); you can follow it here."
    response = s.post_form(f"/tasks/{task_id}/unclaim", {}, page_path=f"/tasks/{task_id}")
    assert (response.status_code, response.headers["Location"]) == (302, "/inbox")
    inbox = doc(s.get("/inbox"))
    assert flashes(inbox) == ["The task is back in the group inbox."]
    assert [r["id"] for r in task_rows(inbox, "group-tasks")] == [task_id]
    assert task_rows(inbox, "my-tasks") == []


# ---- who may see what -------------------------------------------------------------------------

def test_someone_elses_task_is_403_to_open_and_to_submit(pages, flow):
    case_id, task_id = flow.to("competent_check")
    # Cannot see the case at all.
    for username in ("agri_section", "agri_bureau", "farm_unit"):
        response = pages(username).get(f"/tasks/{task_id}")
        assert response.status_code == 403, username
        assert error_page(response) == ("Not allowed", "You may not see this task")
    # May follow the case, but the task is not theirs.
    for username in ("school_unit", "review1", "supervisor"):
        s = pages(username)
        page = s.get(f"/tasks/{task_id}")
        assert page.status_code == 200
        tree = doc(page)
        assert tree.xpath("//form[@id='task-form']") == []
        assert words(one(tree, "//p[@class='notice']")) == \
            "This task is waiting for Competent department of Education Bureau; you can follow it here."
        response = s.post_form(f"/tasks/{task_id}", {"decision": "approve"})
        assert response.status_code == 403, username
        assert error_page(response) == (
            "Not allowed", "This task is not yours: it belongs to competent department of Education Bureau")
        claim = s.post_form(f"/tasks/{task_id}/claim", {}, page_path="/inbox")
        assert claim.status_code == 403
    response = pages("agri_section").post_form(f"/tasks/{task_id}", {"decision": "approve"}, page_path="/inbox")
    assert response.status_code == 403
    assert flow.open_task(case_id)["id"] == task_id
    missing = pages("review1").get("/tasks/9999")
    assert missing.status_code == 404
    assert error_page(missing) == ("Not found", "Task 9999 does not exist")


@pytest.mark.parametrize("username, status", [
    ("agri_section", 403), ("agri_bureau", 403), ("farm_unit", 403), ("expert1", 403),
    ("school_unit", 200), ("edu_bureau", 200), ("edu_section", 200), ("review1", 200), ("perf1", 200),
    ("supervisor", 200)])
def test_case_page_is_for_those_who_may_see_the_case(pages, flow, project_id, username, status):
    case_id, _ = flow.to("competent_check")
    response = pages(username).get(f"/cases/{case_id}")
    assert response.status_code == status
    if status == 403:
        assert error_page(response) == ("Not allowed", "You may not see this case")
        assert pages(username).get(f"/projects/{project_id('EDU-2027-001')}").status_code == \
            (200 if username == "expert1" else 403)


def test_third_party_sees_key_project_cases_it_works_on(pages, flow):
    case_id, task_id = flow.to("third_party_review", "EDU-2027-002")
    other, _ = flow.to("competent_check", "EDU-2027-001")
    s = pages("expert1")
    assert [r["id"] for r in task_rows(doc(s.get("/inbox")), "group-tasks")] == [task_id]
    assert s.get(f"/cases/{case_id}").status_code == 200
    assert s.get(f"/cases/{other}").status_code == 403
    tree = doc(s.get("/cases"))
    assert tree.xpath("//table//td[1]/a/text()") == [f"#{case_id}"]


# ---- case page, cases list, project page ------------------------------------------------------

def test_case_page_shows_status_timeline_and_diagram_state(pages, flow):
    case_id, task_id = flow.to("competent_check")
    tree = doc(pages("edu_bureau").get(f"/cases/{case_id}"))
    assert words(one(tree, "//h1")) == f"Case #{case_id}: Campus safety upgrade (EDU-2027-001)"
    assert words(one(tree, "//*[@data-testid='case-status']")) == "running"
    assert words(one(tree, "//*[@data-testid='case-status']/..")) == (
        "running · now at Competent department check · started 2027-03-01 09:30 · project EDU-2027-001")
    data = diagram_data(tree)
    assert data["current"] == ["competent_check"]
    assert data["completed"] == ["compile_goals", "init_case", "route_submission", "start"]
    assert data["xml"].startswith("<?xml") and 'id="competent_check"' in data["xml"]
    assert one(tree, "//div[@id='diagram']").get("data-rendered") is None    # drawn by the browser
    assert tree.xpath("//script/@src")[-2:] == ["/static/vendor/bpmn-js/bpmn-navigated-viewer.production.min.js",
                                                "/static/js/case-diagram.js"]
    assert [words(li) for li in tree.xpath("//section[h2='Open tasks']//li")] == [
        "Competent department check — Competent department of Education Bureau"]
    assert one(tree, "//section[h2='Open tasks']//a").get("href") == f"/tasks/{task_id}"
    assert timeline(tree) == [
        "2027-03-01 09:35 Liu Yang (No. 1 Middle School) completed Compile performance goals",
        "2027-03-01 09:30 Liu Yang (No. 1 Middle School) started the case"]


def test_case_page_after_a_return_and_full_approval(pages, flow):
    case_id, _ = flow.to("competent_check")
    flow.do(case_id, {"decision": "return", "comment": "Add a cost indicator per camera."})
    flow.do(case_id)
    flow.do(case_id, {"decision": "approve", "comment": "Now complete."})
    while flow.core.reads.case(flow.actor("supervisor"), case_id, with_data=False)["status"] == "running":
        flow.do(case_id)
    s = pages("school_unit")
    tree = doc(s.get(f"/cases/{case_id}"))
    assert words(one(tree, "//*[@data-testid='case-status']")) == "completed"
    assert words(one(tree, "//*[@data-testid='case-status']/..")) == (
        "completed · started 2027-03-01 09:30 · finished 2027-03-01 10:05 · project EDU-2027-001")
    assert tree.xpath("//section[h2='Open tasks']") == []
    data = diagram_data(tree)
    assert data["current"] == []
    assert {"compile_goals", "competent_check", "preliminary_review", "re_examination", "final_review",
            "mark_approved", "goals_approved"} <= set(data["completed"])
    assert "third_party_review" not in data["completed"] and "goals_rejected" not in data["completed"]
    assert timeline(tree) == [
        "2027-03-01 10:05 System The case ended: Goals approved",
        "2027-03-01 10:05 Chen Jing (Education Funding Section) approved at Final review",
        "2027-03-01 10:00 Zhao Lei (Performance Section) approved at Re-examination",
        "2027-03-01 09:55 Li Na (Review Center) approved at Preliminary review",
        "2027-03-01 09:50 Zhou Min (Education Bureau) approved at Competent department check Now complete.",
        "2027-03-01 09:45 Liu Yang (No. 1 Middle School) completed Compile performance goals",
        "2027-03-01 09:40 Zhou Min (Education Bureau) returned the goals at Competent department check "
        "Add a cost indicator per camera.",
        "2027-03-01 09:35 Liu Yang (No. 1 Middle School) completed Compile performance goals",
        "2027-03-01 09:30 Liu Yang (No. 1 Middle School) started the case"]


def cases_listed(tree) -> list[tuple[str, ...]]:
    return [tuple(words(td) for td in tr.xpath("./td")[:6]) for tr in tree.xpath("//table/tbody/tr")]


def test_cases_list_filters_and_visibility(pages, flow):
    done, _ = flow.to("final_review", "EDU-2027-003")
    flow.do(done)
    running, _ = flow.to("competent_check", "EDU-2027-001")
    agri, _ = flow.to("preliminary_review", "AGR-2027-002")
    s = pages("review1")
    every = doc(s.get("/cases"))
    assert words(one(every, "//h1")) == "Cases 3"
    assert cases_listed(every) == [
        (f"#{agri}", "Agricultural technology extension training AGR-2027-002", "Performance goal review",
         "Agricultural Technology Station", "running", "Preliminary review"),
        (f"#{running}", "Campus safety upgrade EDU-2027-001", "Performance goal review", "No. 1 Middle School",
         "running", "Competent department check"),
        (f"#{done}", "Student nutrition improvement EDU-2027-003", "Performance goal review",
         "No. 1 Middle School", "completed", ""),
    ]
    completed = doc(s.get("/cases?status=completed"))
    assert [c[0] for c in cases_listed(completed)] == [f"#{done}"]
    assert one(completed, "//select[@name='status']/option[@selected]").text == "completed"
    assert [c[0] for c in cases_listed(doc(s.get("/cases?status=running&process=goal_review&year=2027")))] == \
        [f"#{agri}", f"#{running}"]
    assert [c[0] for c in cases_listed(doc(s.get("/cases?org=farm_station")))] == [f"#{agri}"]
    nothing = doc(s.get("/cases?year=2026"))
    assert words(one(nothing, "//h1")) == "Cases 0"
    assert cases_listed(nothing) == [("No case matches.",)]
    assert one(nothing, "//input[@name='year']").get("value") == "2026"
    assert [c[0] for c in cases_listed(doc(s.get("/cases?year=soon")))] == [f"#{agri}", f"#{running}", f"#{done}"]
    # Each sees the cases of their own organisations.
    assert [c[0] for c in cases_listed(doc(pages("school_unit").get("/cases")))] == [f"#{running}", f"#{done}"]
    assert [c[0] for c in cases_listed(doc(pages("agri_section").get("/cases")))] == [f"#{agri}"]
    assert [c[0] for c in cases_listed(doc(pages("edu_section").get("/cases?status=running")))] == [f"#{running}"]


def test_project_page_shows_the_approved_goals_after_a_full_approval(pages, flow, project_id):
    s = pages("school_unit")
    page = doc(s.get(f"/projects/{project_id('EDU-2027-001')}"))
    assert words(one(page, "//*[@data-testid='goals-status']")) == "none"
    assert page.xpath("//h2[starts-with(normalize-space(), 'Approved goals')]") == []
    case_id, _ = flow.to("final_review")
    assert words(one(doc(s.get(f"/projects/{project_id('EDU-2027-001')}")),
                     "//*[@data-testid='goals-status']")) == "in review"
    flow.do(case_id)
    page = doc(s.get(f"/projects/{project_id('EDU-2027-001')}"))
    assert words(one(page, "//h1")) == "Campus safety upgrade"
    assert facts(one(page, "//dl[@class='facts']")) == {
        "Budget unit": "No. 1 Middle School", "Competent department": "Education Bureau",
        "Funding section": "Education and Culture Funding Section", "Amount": "1,200,000.00 yuan",
        "Goals": "approved", "Ex-ante evaluation": "support"}
    assert words(one(page, "//h2[starts-with(normalize-space(), 'Approved goals')]")) == \
        "Approved goals version 1, 2027-03-01 09:55"
    assert [words(p) for p in page.xpath("//h2[starts-with(normalize-space(), 'Approved goals')]"
                                         "/following-sibling::p[position() <= 2]")] == [
        f"Long-term: {GOALS['long_term_goal']}", f"Annual: {GOALS['annual_goal']}"]
    assert [[words(td) for td in tr.xpath("./td")][2:] for tr in page.xpath("//table[@id='approved-goals']/tbody/tr")] \
        == [["Cameras installed core", "≥ 40 units", "60"], ["Parent satisfaction", "≥ 90 %", "40"]]
    assert [words(li) for li in page.xpath("//h2[.='Cases']/following-sibling::ul/li")] == [
        f"#{case_id} Performance goal review — completed"]


def test_goal_tables_show_the_category_titles(pages, flow, project_id):
    case_id, task_id = flow.to("competent_check")
    review = doc(pages("edu_bureau").get(f"/tasks/{task_id}"))
    assert [[words(td) for td in tr.xpath("./td")][:2] for tr in review.xpath("//article[@id='goals']//tbody/tr")] \
        == [["Output", "Quantity"], ["Satisfaction", "Service recipient satisfaction"]]
    while flow.open_task(case_id)["step"] != "final_review":
        flow.do(case_id)
    flow.do(case_id)
    project = doc(pages("school_unit").get(f"/projects/{project_id('EDU-2027-001')}"))
    assert [[words(td) for td in tr.xpath("./td")][:2]
            for tr in project.xpath("//table[@id='approved-goals']/tbody/tr")] == \
        [["Output", "Quantity"], ["Satisfaction", "Service recipient satisfaction"]]


def test_times_show_in_the_bureaus_time_zone(demo_core, flow, tmp_path):
    """Stored in UTC, shown in PERFBUDGET_TIMEZONE (the bureau's zone, Asia/Shanghai by default)."""
    from webui import create_app
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": demo_core.db.url},
                     perfbudget=demo_core)
    assert app.config["DISPLAY_TIMEZONE"] == "Asia/Shanghai"
    case_id = flow.start("EDU-2027-001")
    from conftest import PageSession
    tree = doc(PageSession(app, "school_unit").get(f"/cases/{case_id}"))
    # The case started at 09:30 UTC: 17:30 in Beijing.
    assert "started 2027-03-01 17:30" in words(one(tree, "//p[span[@data-testid='case-status']]"))
