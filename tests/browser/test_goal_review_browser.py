"""A goal review driven through real Chromium (Playwright, sync API) against the app served
on a free loopback port: the unit's goals form with its row script, a return and a
resubmission, an approval, and the case page's bpmn-js diagram.

Screenshots go to a pytest temporary folder (printed at the end of each test; run pytest
with -s to see where)."""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1366, "height": 900}

pytestmark = pytest.mark.browser

ROW_FIELDS = ["level1", "level2", "name", "operator", "target", "unit", "weight", "standard", "core", "note"]


# ---- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's Chromium "
                    "(apt-get install chromium; scripts/test.sh installs it)", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def live_server(app):
    """The real app on a free 127.0.0.1 port, served from a background thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="perfbudget-live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def shots(tmp_path):
    folder = tmp_path / "screenshots"
    folder.mkdir()
    yield folder
    print(f"\nscreenshots: {folder}")


class User:
    """One person in their own browser context (own cookies), with the page they look at."""

    def __init__(self, browser, base: str, username: str, shots: Path):
        self.base, self.username, self.shots = base, username, shots
        self.context = browser.new_context(viewport=VIEWPORT, base_url=base)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", self._console)
        self.page.on("response", self._response)

    def _console(self, msg) -> None:
        # Failed loads are judged by _response (a 400 page is expected after a bad form).
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            self.errors.append(f"console: {msg.text}")

    def _response(self, response) -> None:
        # Pages may answer 4xx on purpose; their scripts and styles must load. The app has no
        # favicon, which Chromium asks for all the same.
        if (response.status >= 400 and response.request.resource_type != "document"
                and not response.url.endswith("/favicon.ico")):
            self.errors.append(f"{response.status} for {response.url}")

    def login(self) -> "User":
        page = self.page
        page.goto("/inbox")
        expect(page).to_have_url(f"{self.base}/login?next=%2Finbox")
        page.get_by_label("Username").fill(self.username)
        page.get_by_label("Password").fill("demo")
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(f"{self.base}/inbox")
        expect(page.locator("li.who")).to_have_attribute("title", self.username)
        return self

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], f"{self.username}'s browser reported errors: {self.errors}"


@pytest.fixture
def people(browser, live_server, shots):
    opened: list[User] = []

    def open_as(username: str) -> User:
        user = User(browser, live_server, username, shots).login()
        opened.append(user)
        return user
    yield open_as
    for user in opened:
        user.close()


def row_names(page) -> list[list[str]]:
    """The field names of each row of the indicators table, in order."""
    return page.eval_on_selector_all(
        "[data-table=indicators] tbody tr.row",
        "rows => rows.map(r => Array.from(r.querySelectorAll('[name]')).map(e => e.name))")


def fill_row(row, level1, level2, name, operator, target, unit, weight, core=False):
    row.get_by_label("Level-1 indicator").select_option(level1)
    row.get_by_label("Level-2 indicator").select_option(level2)
    row.get_by_label("Indicator name").fill(name)
    row.get_by_label("Operator").select_option(operator)
    row.get_by_label("Target value").fill(target)
    row.get_by_label("Unit of measure").fill(unit)
    row.get_by_label("Weight").fill(weight)
    if core:
        row.get_by_label("Core indicator").check()


def submit(page, expected_path: str) -> None:
    with page.expect_navigation():
        page.locator("#task-form").get_by_role("button", name="Submit", exact=True).click()
    assert urlsplit(page.url).path == expected_path


def open_first_task(page, step: str) -> None:
    page.goto("/inbox")
    page.locator("table.tasks").get_by_role("link", name=step).first.click()
    expect(page.locator("h1")).to_have_text(step)


# ---- tests --------------------------------------------------------------------------------

def test_goal_review_round_trip_in_chromium(people):

    # The school's officer starts a goal review from the Start page.
    unit = people("school_unit")
    page = unit.page
    expect(page.get_by_test_id("inbox-count")).to_have_text("0")
    page.get_by_role("link", name="Start a case").click()
    row = page.locator("#start-goal_review tbody tr", has_text="EDU-2027-001")
    row.get_by_role("button", name="Start").click()
    expect(page).to_have_url(re.compile(r"/tasks/\d+$"))
    expect(page.locator("h1")).to_have_text("Compile performance goals")
    flash = page.locator("p.flash")
    expect(flash).to_have_text(re.compile(r"^Case (\d+) started: Compile performance goals\.$"))
    case_id = re.search(r"Case (\d+)", flash.inner_text()).group(1)

    # The goals, with rows added and one removed again: the script keeps the names numbered.
    page.get_by_label("Project overview").fill("Cameras and access control at both campus gates.")
    page.get_by_label("Long-term goal").fill("A safe campus for all 2,400 students.")
    page.get_by_label("Annual goal").fill("Install 40 cameras and two access gates by year end.")
    rows = page.locator("[data-table=indicators] tbody tr.row")
    expect(rows).to_have_count(1)
    fill_row(rows.nth(0), "output", "quantity", "Cameras installed", ">=", "40", "units", "50", core=True)
    add_row = page.get_by_role("button", name="Add row")
    add_row.click()
    expect(rows).to_have_count(2)
    assert row_names(page)[1] == [f"indicators-1-{f}" for f in ROW_FIELDS]
    # The new row starts empty, even though it was copied from a filled one.
    assert rows.nth(1).get_by_label("Indicator name").input_value() == ""
    assert rows.nth(1).get_by_label("Level-1 indicator").input_value() == ""
    assert not rows.nth(1).get_by_label("Core indicator").is_checked()
    fill_row(rows.nth(1), "output", "cost", "Typed by mistake", "<=", "1", "yuan", "10")
    add_row.click()
    expect(rows).to_have_count(3)
    fill_row(rows.nth(2), "satisfaction", "satisfaction", "Parent satisfaction", ">=", "90", "%", "50")
    rows.nth(1).get_by_role("button", name="✕").click()
    expect(rows).to_have_count(2)
    assert row_names(page) == [[f"indicators-{i}-{f}" for f in ROW_FIELDS] for i in (0, 1)]
    assert rows.nth(1).get_by_label("Indicator name").input_value() == "Parent satisfaction"
    # The last row cannot be removed.
    rows.nth(0).get_by_role("button", name="✕").click()
    rows.nth(0).get_by_role("button", name="✕").click()
    expect(rows).to_have_count(1)
    assert rows.nth(0).get_by_label("Indicator name").input_value() == "Parent satisfaction"
    assert row_names(page) == [[f"indicators-0-{f}" for f in ROW_FIELDS]]
    add_row.click()
    fill_row(rows.nth(1), "output", "quantity", "Cameras installed", ">=", "40", "units", "50", core=True)
    unit.shot("01-unit-goals-form")
    submit(page, "/inbox")
    expect(page.locator("p.flash")).to_have_text(
        "“Compile performance goals” submitted. Next step: Competent department check "
        "(Competent department, Education Bureau).")
    expect(page.get_by_test_id("inbox-count")).to_have_text("0")
    unit.shot("02-unit-inbox-after-submit")

    # The education bureau returns the goals with an opinion.
    bureau = people("edu_bureau")
    bpage = bureau.page
    expect(bpage.get_by_test_id("inbox-count")).to_have_text("1")
    expect(bpage.locator("#group-tasks tr[data-task-id]")).to_have_count(1)
    bureau.shot("03-bureau-inbox")
    open_first_task(bpage, "Competent department check")
    goals = bpage.locator("#goals tbody tr")
    expect(goals).to_have_count(2)
    expect(goals.nth(0)).to_contain_text("Parent satisfaction")
    expect(goals.nth(1)).to_contain_text("Cameras installed")
    bpage.get_by_label("Return to the unit").check()
    bpage.get_by_label("Opinion", exact=True).fill("Add a cost indicator per camera.")
    bureau.shot("04-bureau-review-form")
    submit(bpage, "/inbox")
    expect(bpage.locator("p.flash")).to_have_text(
        "“Competent department check” submitted. Next step: Compile performance goals "
        "(Budget unit, No. 1 Middle School).")
    expect(bpage.get_by_test_id("inbox-count")).to_have_text("0")

    # The unit sees the opinion, finds its goals as sent, adds the indicator and resubmits.
    page.goto("/inbox")
    expect(page.get_by_test_id("inbox-count")).to_have_text("1")
    open_first_task(page, "Compile performance goals")
    opinion = page.locator("#opinions .opinion")
    expect(opinion).to_have_count(1)
    expect(opinion.locator(".decision")).to_have_text("Returned")
    expect(opinion.locator("blockquote")).to_have_text("Add a cost indicator per camera.")
    expect(page.locator(".instructions")).to_contain_text("Opinion given: Add a cost indicator per camera.")
    expect(rows).to_have_count(2)
    assert rows.nth(0).get_by_label("Indicator name").input_value() == "Parent satisfaction"
    assert rows.nth(1).get_by_label("Core indicator").is_checked()
    assert page.get_by_label("Annual goal").input_value() == "Install 40 cameras and two access gates by year end."
    add_row.click()
    expect(rows).to_have_count(3)
    assert row_names(page)[2] == [f"indicators-2-{f}" for f in ROW_FIELDS]
    fill_row(rows.nth(2), "output", "cost", "Cost per camera", "<=", "3000", "yuan", "10")
    rows.nth(0).get_by_label("Weight").fill("40")
    unit.shot("05-unit-returned-goals")
    submit(page, "/inbox")
    expect(page.locator("p.flash")).to_have_text(
        "“Compile performance goals” submitted. Next step: Competent department check "
        "(Competent department, Education Bureau).")

    # The bureau approves the revised goals.
    open_first_task(bpage, "Competent department check")
    expect(goals).to_have_count(3)
    expect(goals.nth(2)).to_contain_text("Cost per camera")
    assert not bpage.get_by_label("Return to the unit").is_checked()
    assert bpage.get_by_label("Opinion", exact=True).input_value() == ""
    bpage.get_by_label("Approve").check()
    submit(bpage, "/inbox")
    expect(bpage.locator("p.flash")).to_have_text(
        "“Competent department check” submitted. Next step: Preliminary review (Budget review center).")

    # The case page: the diagram drawn by bpmn-js with the steps marked, and the timeline.
    bpage.goto(f"/cases/{case_id}")
    bpage.wait_for_selector("#diagram[data-rendered=true]")
    diagram = bpage.locator("#diagram")
    expect(diagram.locator(".djs-element.step-done[data-element-id=compile_goals]")).to_have_count(1)
    expect(diagram.locator(".djs-element.step-done[data-element-id=competent_check]")).to_have_count(1)
    expect(diagram.locator(".djs-element.step-current")).to_have_count(1)
    expect(diagram.locator(".djs-element.step-current[data-element-id=preliminary_review]")).to_have_count(1)
    expect(diagram.locator(".bjs-powered-by")).to_be_visible()
    expect(bpage.get_by_test_id("case-status")).to_have_text("running")
    events = bpage.locator("#timeline li")
    expect(events).to_have_count(5)
    expect(events.nth(0)).to_contain_text("Zhou Min (Education Bureau) approved at Competent department check")
    expect(events.nth(1)).to_contain_text("Liu Yang (No. 1 Middle School) completed Compile performance goals")
    expect(events.nth(2)).to_contain_text("returned the goals at Competent department check")
    expect(events.nth(2).locator("blockquote")).to_have_text("Add a cost indicator per camera.")
    expect(events.nth(4)).to_contain_text("started the case")
    bureau.shot("06-case-page")


def test_goal_form_errors_come_back_at_the_renumbered_rows_in_chromium(people, demo_core, actor, project_id):
    demo_core.cases.start(actor("school_unit"), "goal_review", project_id("EDU-2027-001"))
    unit = people("school_unit")
    page = unit.page
    open_first_task(page, "Compile performance goals")
    page.get_by_label("Long-term goal").fill("A safe campus.")
    rows = page.locator("[data-table=indicators] tbody tr.row")
    fill_row(rows.nth(0), "output", "quantity", "Cameras installed", ">=", "40", "units", "50")
    add_row = page.get_by_role("button", name="Add row")
    add_row.click()
    add_row.click()
    rows.nth(1).get_by_role("button", name="✕").click()
    # Now row 1 (was row 2): a level-2 of another level-1, a quantity without unit, a bad weight.
    fill_row(rows.nth(1), "effect", "quality", "Incidents on campus", "<", "2", "", "lots")
    submit(page, urlsplit(page.url).path)
    expect(page.locator("section.task-form p.error")).to_have_text("The form has 4 errors; see the marked fields.")
    errors = page.locator("small.field-error")
    assert {errors.nth(i).get_attribute("data-field"): errors.nth(i).inner_text() for i in range(errors.count())} == {
        "annual_goal": "This field is required.",
        "indicators-1-level2": "Choose one of the listed values.",
        "indicators-1-unit": "This field is required.",
        "indicators-1-weight": "Enter a number.",
    }
    expect(rows).to_have_count(2)
    assert rows.nth(1).get_by_label("Indicator name").input_value() == "Incidents on campus"
    assert rows.nth(1).get_by_label("Weight").input_value() == "lots"
    assert rows.nth(1).get_by_label("Level-2 indicator").input_value() == "quality"
    assert page.get_by_label("Long-term goal").input_value() == "A safe campus."
    # Each message sits right under its own field.
    for field in ("indicators-1-unit", "indicators-1-weight"):
        control = page.locator(f"[name='{field}']").bounding_box()
        message = page.locator(f"small.field-error[data-field='{field}']").bounding_box()
        assert abs(message["x"] - control["x"]) < 2 and 0 <= message["y"] - (control["y"] + control["height"]) < 20
    unit.shot("07-goal-form-errors")
    # A row added now starts clean: no copied error or invalid mark.
    add_row.click()
    expect(rows).to_have_count(3)
    expect(rows.nth(2).locator("small.field-error")).to_have_count(0)
    expect(rows.nth(2).locator("[aria-invalid]")).to_have_count(0)
    assert row_names(page)[2] == [f"indicators-2-{f}" for f in ROW_FIELDS]
    rows.nth(2).get_by_role("button", name="✕").click()
    # Corrected, the form goes through.
    page.get_by_label("Annual goal").fill("Fewer incidents this year.")
    rows.nth(1).get_by_label("Level-2 indicator").select_option("social")
    rows.nth(1).get_by_label("Unit of measure").fill("incidents")
    rows.nth(1).get_by_label("Weight").fill("50")
    submit(page, "/inbox")
    expect(page.locator("p.flash")).to_have_text(
        "“Compile performance goals” submitted. Next step: Competent department check "
        "(Competent department, Education Bureau).")


def test_completed_case_diagram_in_chromium(people, demo_core, actor, project_id):
    goals = {"long_term_goal": "A safe campus.", "annual_goal": "40 cameras.",
             "indicators": [{"level1": "output", "level2": "quantity", "name": "Cameras installed",
                             "operator": ">=", "target": "40", "unit": "units", "weight": 100}]}
    case = demo_core.cases.start(actor("school_unit"), "goal_review", project_id("EDU-2027-001"))
    for username in ("school_unit", "edu_bureau", "review1", "perf1", "edu_section"):
        task = demo_core.reads.case(actor("supervisor"), case.id, with_data=False)["tasks"][0]
        demo_core.cases.complete(actor(username), task["id"],
                                 goals if username == "school_unit" else {"decision": "approve"})
    viewer = people("supervisor")
    page = viewer.page
    page.goto(f"/cases/{case.id}")
    page.wait_for_selector("#diagram[data-rendered=true]")
    diagram = page.locator("#diagram")
    expect(page.get_by_test_id("case-status")).to_have_text("completed")
    expect(diagram.locator(".djs-element.step-current")).to_have_count(0)
    for element in ("start", "compile_goals", "competent_check", "preliminary_review", "re_examination",
                    "final_review", "mark_approved", "goals_approved"):
        expect(diagram.locator(f".djs-element.step-done[data-element-id={element}]")).to_have_count(1)
    for element in ("third_party_review", "mark_rejected", "goals_rejected"):
        expect(diagram.locator(f".djs-element.step-done[data-element-id={element}]")).to_have_count(0)
    expect(page.locator("#timeline li").first).to_have_text(re.compile(r"System\s+The case ended:\s+Goals approved"))
    viewer.shot("08-completed-case")


# ---- layout: what the screenshots showed ------------------------------------------------------

TWO_INDICATORS = {
    "long_term_goal": "A safe campus for all 2,400 students.",
    "annual_goal": "Install 40 cameras and two access gates by year end.",
    "indicators": [
        {"level1": "satisfaction", "level2": "satisfaction", "name": "Parent satisfaction", "operator": ">=",
         "target": "90", "unit": "%", "weight": 50},
        {"level1": "output", "level2": "quantity", "name": "Cameras installed", "operator": ">=", "target": "40",
         "unit": "units", "weight": 50, "core": True},
    ],
}


@pytest.fixture
def at_competent_check(demo_core, actor, project_id):
    """A case whose goals (two ordinary indicators) wait for the competent department."""
    case = demo_core.cases.start(actor("school_unit"), "goal_review", project_id("EDU-2027-001"))
    task = demo_core.reads.case(actor("supervisor"), case.id, with_data=False)["tasks"][0]
    demo_core.cases.complete(actor("school_unit"), task["id"], TWO_INDICATORS)
    return case.id, demo_core.reads.case(actor("supervisor"), case.id, with_data=False)["tasks"][0]["id"]


def test_review_page_fits_a_1366px_window(people, at_competent_check):
    _, task_id = at_competent_check
    page = people("edu_bureau").page
    page.goto(f"/tasks/{task_id}")
    width, visible = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    table = page.locator("#goals table").bounding_box()
    card = page.locator("#goals").bounding_box()
    assert table["x"] + table["width"] <= card["x"] + card["width"], "goals table sticks out of its card"
    assert width <= visible, f"page is {width}px wide in a {visible}px window"


def test_task_page_keeps_a_margin_from_the_window_edge(people, at_competent_check):
    _, task_id = at_competent_check
    page = people("edu_bureau").page
    page.goto(f"/tasks/{task_id}")
    assert page.locator("h1").bounding_box()["x"] >= 16
    assert page.locator(".instructions").bounding_box()["x"] >= 16


def test_core_indicator_checkbox_is_a_square_box(people, demo_core, actor, project_id):
    demo_core.cases.start(actor("school_unit"), "goal_review", project_id("EDU-2027-001"))
    page = people("school_unit").page
    open_first_task(page, "Compile performance goals")
    box = page.locator("[data-table=indicators] tbody tr.row").nth(0).get_by_label("Core indicator").bounding_box()
    assert abs(box["width"] - box["height"]) <= 2, box


def test_diagram_watermark_covers_no_step(people, at_competent_check):
    case_id, _ = at_competent_check
    page = people("edu_bureau").page
    page.goto(f"/cases/{case_id}")
    page.wait_for_selector("#diagram[data-rendered=true]")
    mark = page.locator("#diagram .bjs-powered-by").bounding_box()
    covered = page.evaluate(
        """mark => Array.from(document.querySelectorAll('#diagram .djs-element.djs-shape'))
            .filter(el => !/^(lane_|goal_review_participant)/.test(el.dataset.elementId))
            .filter(el => { const r = el.getBoundingClientRect();
                            return r.left < mark.x + mark.width && mark.x < r.right &&
                                   r.top < mark.y + mark.height && mark.y < r.bottom; })
            .map(el => el.dataset.elementId)""", mark)
    assert covered == []
