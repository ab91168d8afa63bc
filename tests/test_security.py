"""Login hardening: security headers, failed-login limits, password policy, session expiry.

Time is an engine.clock.FixedClock that the tests move; nothing sleeps. The last test drives
real Chromium over the pages (the case page's bpmn-js diagram included) and fails on any
Content-Security-Policy violation."""
from __future__ import annotations

import os
import re
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from engine import demo
from engine.clock import FixedClock
from engine.errors import InvalidData, NotAuthenticated
from engine.login_guard import LoginGuard, LoginLimits, TooManyAttempts
from storage.models import LoginAttempt
from webui import create_app

T0 = datetime(2027, 3, 1, 9, 0, 0)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self' data:; "
       "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "same-origin"}

USER_LOCKED_15 = "too many failed log-in attempts for this username; try again in 15 minutes"
EXPIRED_FLASH = '<p class="flash flash-warning" role="status">Your session has expired. Please log in again.</p>'


@pytest.fixture
def clock():
    return FixedClock(T0)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def page_login(client, username: str, password: str = demo.DEMO_PASSWORD, **kw):
    token = _csrf(client.get("/login", **kw).get_data(as_text=True))
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token}, **kw)


def api_login(client, username: str, password: str = demo.DEMO_PASSWORD):
    return client.post("/api/v1/tokens", json={"username": username, "password": password})


def login_error(response) -> str | None:
    match = re.search(r'<p class="error" role="alert">([^<]*)</p>', response.get_data(as_text=True))
    return match.group(1) if match else None


def attempts_in_table(core) -> int:
    with core.db.reading() as s:
        return s.scalar(select(func.count()).select_from(LoginAttempt))


# ---- security headers ---------------------------------------------------------------------

def _assert_security_headers(response, cache_control: str | None = "no-store"):
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.path, name)
    if cache_control is not None:
        assert response.headers.get("Cache-Control") == cache_control, response.request.path


def test_headers_on_pages_redirects_and_errors(client, pages):
    _assert_security_headers(client.get("/login"))
    _assert_security_headers(client.get("/inbox"))                   # 302 to the login page
    _assert_security_headers(client.get("/no-such-page"))            # 404 page
    _assert_security_headers(page_login(client, "school_unit", "wrong"))   # 401 page
    session = pages("school_unit")
    for path in ("/inbox", "/cases", "/start"):
        response = session.get(path)
        assert response.status_code == 200
        _assert_security_headers(response)


def test_headers_on_api_answers(client, api):
    created = api_login(client, "school_unit")
    assert created.status_code == 201
    _assert_security_headers(created)
    _assert_security_headers(client.get("/api/v1/me"))               # 401
    _assert_security_headers(client.get("/api/v1/openapi.json"))
    _assert_security_headers(api("school_unit").get("/api/v1/me"))


@pytest.mark.parametrize("path", ["/static/css/app.css", "/static/js/case-diagram.js",
                                  "/static/vendor/bpmn-js/bpmn-navigated-viewer.production.min.js"])
def test_static_files_get_the_headers_but_may_be_cached(client, path):
    response = client.get(path)
    assert response.status_code == 200
    _assert_security_headers(response, cache_control=None)
    assert response.headers["Cache-Control"] == "no-cache"   # Flask's: revalidate with the ETag
    response.close()


# ---- failed-login limits: the login page and POST /api/v1/tokens ----------------------------

def test_five_failures_lock_the_username_until_the_window_passes(client, clock):
    for _ in range(5):
        response = page_login(client, "school_unit", "wrong")
        assert (response.status_code, login_error(response)) == (401, "Wrong username or password.")
    # Locked: even the right password is refused, without being looked at.
    response = page_login(client, "school_unit")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "900"
    assert login_error(response) == "Too many failed log-in attempts for this username; try again in 15 minutes."
    # The API shares the count.
    response = api_login(client, "school_unit")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "900"
    assert response.get_json() == {"error": USER_LOCKED_15, "details": {"retry_after": 900}}

    # Another user from the same address is not affected.
    assert page_login(client.application.test_client(), "edu_bureau").status_code == 302

    clock.advance(minutes=14, seconds=59)
    response = api_login(client, "school_unit")
    assert (response.status_code, response.headers["Retry-After"]) == (429, "1")
    assert response.get_json()["error"] == "too many failed log-in attempts for this username; try again in 1 second"
    clock.advance(seconds=1)
    response = page_login(client, "school_unit")
    assert response.status_code == 302
    assert response.headers["Location"] == "/inbox"


def test_the_window_slides_with_the_failures(client, clock):
    for minute in range(5):
        assert api_login(client, "school_unit", "wrong").status_code == 401
        clock.advance(minutes=1)
    clock.advance(minutes=-1)          # now: the fifth failure, at T0 + 4 minutes
    response = api_login(client, "school_unit")
    assert (response.status_code, response.headers["Retry-After"]) == (429, "660")
    assert response.get_json()["error"] == "too many failed log-in attempts for this username; try again in 11 minutes"
    clock.advance(minutes=11)          # T0 + 15 min: the first failure has left the window
    assert api_login(client, "school_unit", "wrong").status_code == 401
    response = api_login(client, "school_unit")
    # Locked again until the second failure (T0 + 1 min) leaves it.
    assert (response.status_code, response.headers["Retry-After"]) == (429, "60")
    assert response.get_json()["error"] == "too many failed log-in attempts for this username; try again in 1 minute"
    clock.advance(minutes=1)
    assert api_login(client, "school_unit").status_code == 201


def test_a_successful_login_resets_the_username_count(client):
    for _ in range(4):
        assert page_login(client, "school_unit", "wrong").status_code == 401
    assert page_login(client, "school_unit").status_code == 302
    other = client.application.test_client()
    for _ in range(5):
        assert page_login(other, "school_unit", "wrong").status_code == 401
    assert page_login(other, "school_unit").status_code == 429


def test_twenty_failures_lock_the_address(app, clock):
    here = app.test_client()
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "10.1.2.3"
    # 19 failures spread over usernames (none reaches 5), then a success that does not reset
    # the address's count, then the 20th failure.
    usernames = ["school_unit"] * 4 + ["ghost1"] * 4 + ["ghost2"] * 4 + ["ghost3"] * 4 + ["ghost4"] * 3
    for username in usernames:
        assert api_login(here, username, "wrong").status_code == 401
    assert api_login(here, "school_unit").status_code == 201
    assert api_login(here, "edu_bureau", "wrong").status_code == 401
    clock.advance(minutes=3)
    for attempt in (lambda: api_login(here, "review1"), lambda: page_login(here, "review1")):
        response = attempt()
        assert (response.status_code, response.headers["Retry-After"]) == (429, "720")
    assert api_login(here, "review1").get_json()["error"] == \
        "too many failed log-in attempts for this address; try again in 12 minutes"
    # Another address logs in, even as a username that failed here.
    assert api_login(elsewhere, "school_unit").status_code == 201
    assert page_login(elsewhere, "edu_bureau").status_code == 302
    clock.advance(minutes=12)
    assert api_login(here, "review1").status_code == 201


def test_requests_that_never_reach_the_password_check_do_not_count(client):
    for _ in range(8):
        assert client.post("/api/v1/tokens", json={"username": "school_unit"}).status_code == 400
        assert client.post("/api/v1/tokens", data="not json", content_type="application/json").status_code == 400
        assert client.post("/login", data={"username": "school_unit", "password": "wrong"}).status_code == 400  # no CSRF
    assert api_login(client, "school_unit").status_code == 201


def test_limits_are_configurable(demo_core, tmp_path, clock):
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": demo_core.db.url,
                      "LOGIN_MAX_FAILURES_PER_USERNAME": 2, "LOGIN_MAX_FAILURES_PER_ADDRESS": 3,
                      "LOGIN_FAILURE_WINDOW": timedelta(minutes=1)}, perfbudget=demo_core)
    client = app.test_client()
    assert [api_login(client, "school_unit", "wrong").status_code for _ in range(3)] == [401, 401, 429]
    assert api_login(client, "edu_bureau", "wrong").status_code == 401
    response = api_login(client, "review1")
    assert (response.status_code, response.headers["Retry-After"]) == (429, "60")
    clock.advance(minutes=1)
    assert api_login(client, "review1").status_code == 201


# ---- failed-login limits: the engine's rules --------------------------------------------------

@pytest.fixture
def guard(demo_core):
    return LoginGuard(demo_core.db, demo_core.clock, demo_core.accounts)


def test_guard_keeps_only_failures_inside_the_window(guard, demo_core, clock):
    assert guard.authenticate("school_unit", demo.DEMO_PASSWORD, "10.0.0.1").username == "school_unit"
    assert attempts_in_table(demo_core) == 0       # a success leaves no row
    for username in ("school_unit", "nobody", "nobody"):
        with pytest.raises(NotAuthenticated):
            guard.authenticate(username, "wrong", "10.0.0.1")
        clock.advance(minutes=5)
    assert attempts_in_table(demo_core) == 3
    # T0 + 15 min: the first failure is out of the window and is pruned by the next attempt.
    with pytest.raises(NotAuthenticated):
        guard.authenticate("nobody", "wrong", "10.0.0.2")
    assert attempts_in_table(demo_core) == 3
    clock.advance(minutes=30)
    assert guard.authenticate("school_unit", demo.DEMO_PASSWORD, "10.0.0.1").username == "school_unit"
    assert attempts_in_table(demo_core) == 0


def test_guard_counts_long_usernames_by_their_first_100_characters(guard):
    for suffix in "abcde":
        with pytest.raises(NotAuthenticated):
            guard.authenticate("x" * 100 + suffix, "wrong", "10.0.0.1")
    with pytest.raises(TooManyAttempts) as refused:
        guard.authenticate("x" * 100, "wrong", "10.0.0.1")
    assert (refused.value.status, refused.value.retry_after) == (429, 900)


def test_parallel_attempts_cannot_slip_under_the_limit(demo_core):
    """Ten wrong passwords at once for one username: the attempt is recorded in the transaction
    that counts, so exactly five are checked and five refused, however the threads interleave."""
    guard = LoginGuard(demo_core.db, demo_core.clock, demo_core.accounts)
    start = threading.Barrier(10)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        start.wait()
        try:
            guard.authenticate("school_unit", "wrong", f"10.0.0.{i}")
        except (NotAuthenticated, TooManyAttempts) as exc:
            with lock:
                outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["NotAuthenticated"] * 5 + ["TooManyAttempts"] * 5


def test_limits_must_be_positive():
    for bad in ({"per_username": 0}, {"per_address": 0}, {"window": timedelta(0)}):
        with pytest.raises(ValueError):
            LoginLimits(**bad)


def test_migration_matches_the_model(demo_core):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from storage.models import Base
    with demo_core.db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert [d for d in diffs if "login_attempts" in repr(d)] == []


# ---- password policy ----------------------------------------------------------------------

@pytest.mark.parametrize("username, password, problems", [
    ("new_officer", "short", "it must have at least 10 characters"),
    ("new_officer", "12345678901", "it must not be only digits"),
    ("new_officer", "1234", "it must have at least 10 characters; it must not be only digits"),
    ("new_officer", "my-New_Officer-pass", "it must not contain the username"),
    ("new_officer", "new_officer", "it must not contain the username"),
    ("new_officer", "Password123", "it is one of the most common passwords"),
    ("new_officer", "WOAINI1314", "it is one of the most common passwords"),
    ("perfbudget", "perfbudget", "it must not contain the username; it is one of the most common passwords"),
])
def test_weak_passwords_are_refused(demo_core, username, password, problems):
    with pytest.raises(InvalidData) as refused:
        demo_core.accounts.ensure_user(username, "New officer", password)
    message = f"the password is too weak: {problems}"
    assert (refused.value.message, refused.value.details) == (message, {"password": message})
    with pytest.raises(NotAuthenticated):     # nothing was created
        demo_core.accounts.authenticate(username, password)


def test_a_good_password_is_accepted_and_changes_are_checked_too(demo_core):
    demo_core.accounts.ensure_user("new_officer", "New officer", "budget-Spring-2027")
    assert demo_core.accounts.authenticate("new_officer", "budget-Spring-2027").username == "new_officer"
    with pytest.raises(InvalidData):
        demo_core.accounts.ensure_user("new_officer", password="changeme")
    demo_core.accounts.ensure_user("new_officer", "Renamed officer")      # no password: no check
    assert demo_core.accounts.authenticate("new_officer", "budget-Spring-2027").display_name == "Renamed officer"


def test_only_an_explicit_flag_skips_the_policy(demo_core):
    demo_core.accounts.ensure_user("trainer", "Trainer", demo.DEMO_PASSWORD, enforce_policy=False)
    assert demo_core.accounts.authenticate("trainer", demo.DEMO_PASSWORD).username == "trainer"


def test_the_users_command_enforces_the_policy(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "new_officer", "--password", "letmein"])
    assert result.exit_code == 1
    assert "error: the password is too weak: it must have at least 10 characters" in result.output
    result = runner.invoke(args=["users", "new_officer", "--password", "budget-Spring-2027"])
    assert result.exit_code == 0, result.output
    assert page_login(app.test_client(), "new_officer", "budget-Spring-2027").status_code == 302


# ---- session expiry -----------------------------------------------------------------------

def _logged_in(app):
    client = app.test_client()
    assert page_login(client, "school_unit").status_code == 302
    return client


def _assert_expired(client, path="/inbox", location="/login?next=%2Finbox"):
    response = client.get(path)
    assert (response.status_code, response.headers["Location"]) == (302, location)
    page = client.get("/login")
    assert page.status_code == 200
    assert EXPIRED_FLASH in page.get_data(as_text=True)
    # Logged out for good: the next page asks to log in, without the expiry message.
    again = client.get("/inbox")
    assert again.status_code == 302
    assert "expired" not in client.get("/login").get_data(as_text=True)


def test_session_ends_after_30_idle_minutes(app, clock):
    client = _logged_in(app)
    for _ in range(3):
        clock.advance(minutes=29, seconds=59)
        assert client.get("/inbox").status_code == 200   # each request restarts the idle time
    clock.advance(minutes=30)
    _assert_expired(client, "/cases?status=running", "/login?next=%2Fcases%3Fstatus%3Drunning")
    assert page_login(client, "school_unit").status_code == 302
    assert client.get("/inbox").status_code == 200


def test_session_ends_8_hours_after_login_however_active(app, clock):
    client = _logged_in(app)
    for _ in range(23):
        clock.advance(minutes=20)
        assert client.get("/inbox").status_code == 200
    clock.advance(minutes=19, seconds=59)          # T0 + 7:59:59
    assert client.get("/inbox").status_code == 200
    clock.advance(seconds=1)
    _assert_expired(client)


def test_session_lifetimes_are_configurable(demo_core, clock):
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": demo_core.db.url,
                      "SESSION_IDLE_TIMEOUT": timedelta(minutes=5), "SESSION_MAX_AGE": timedelta(minutes=12)},
                     perfbudget=demo_core)
    client = _logged_in(app)
    clock.advance(minutes=4, seconds=59)
    assert client.get("/inbox").status_code == 200
    clock.advance(minutes=5)
    _assert_expired(client)
    client = _logged_in(app)
    for _ in range(2):
        clock.advance(minutes=4)
        assert client.get("/inbox").status_code == 200
    clock.advance(minutes=4)                       # 12 minutes after this login
    _assert_expired(client)


def test_an_expired_form_post_goes_to_the_login_page_without_next(app, clock):
    client = _logged_in(app)
    token = _csrf(client.get("/start").get_data(as_text=True))
    clock.advance(minutes=30)
    response = client.post("/logout", data={"csrf_token": token})
    assert (response.status_code, response.headers["Location"]) == (302, "/login")
    assert EXPIRED_FLASH in client.get("/login").get_data(as_text=True)


def test_opening_the_login_page_with_an_expired_session_shows_why(app, clock):
    client = _logged_in(app)
    clock.advance(hours=1)
    page = client.get("/login")
    assert page.status_code == 200        # not sent on to the inbox: logged out
    assert EXPIRED_FLASH in page.get_data(as_text=True)
    assert client.get("/inbox").status_code == 302


def test_a_session_without_login_times_is_expired(app):
    client = _logged_in(app)
    with client.session_transaction() as session:
        del session["login_at"]
    _assert_expired(client)


def test_api_tokens_expire_after_30_days_and_ignore_sessions(client, clock):
    token = api_login(client, "school_unit").get_json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    clock.advance(days=29, hours=23, minutes=59)
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    clock.advance(minutes=1)
    assert client.get("/api/v1/me", headers=headers).status_code == 401


# ---- the pages in Chromium: no Content-Security-Policy violation ------------------------------

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
# Runs in every page before its own scripts (Playwright injects it, so CSP does not apply).
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') +
                              ' at ' + e.sourceFile + ':' + e.lineNumber);
});
"""


@pytest.fixture
def live_server(app):
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="perfbudget-live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.mark.browser
def test_pages_run_under_the_policy_in_chromium(live_server, demo_core, actor, project_id):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's Chromium", pytrace=False)
    from playwright.sync_api import expect, sync_playwright

    case = demo_core.cases.start(actor("school_unit"), "goal_review", project_id("EDU-2027-001"))
    task_id = demo_core.reads.case(actor("school_unit"), case.id, with_data=False)["tasks"][0]["id"]
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1366, "height": 900}, base_url=live_server)
            context.add_init_script(RECORD_VIOLATIONS)
            page = context.new_page()
            # Chromium reports each CSP violation on the console too. A failed load is logged as
            # well, which only the 404 page causes on purpose.
            page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
                    if (msg.type == "error" and not msg.text.startswith("Failed to load resource"))
                    or "Content Security Policy" in msg.text else None)
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

            def visit(path: str, status: int = 200) -> None:
                response = page.goto(path)
                assert response.status == status, path
                assert response.headers["content-security-policy"] == CSP, path
                check(path)

            def check(where: str) -> None:
                problems.extend(f"{where}: {v}" for v in page.evaluate("window.__cspViolations"))

            visit("/login")
            page.get_by_label("Username").fill("school_unit")
            page.get_by_label("Password").fill(demo.DEMO_PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page).to_have_url(f"{live_server}/inbox")
            check("/inbox after login")

            visit(f"/cases/{case.id}")
            page.wait_for_selector("#diagram[data-rendered=true]")
            diagram = page.locator("#diagram")
            expect(diagram.locator(".djs-element.step-current[data-element-id=compile_goals]")).to_have_count(1)
            page.locator("[data-diagram-zoom=in]").click()
            page.locator("[data-diagram-zoom=fit]").click()
            page.locator("#diagram .bjs-powered-by").click()      # the logo's lightbox
            expect(page.locator(".bjs-powered-by-lightbox")).to_be_visible()
            check("case page")

            visit(f"/tasks/{task_id}")
            page.locator(".table-field .add-row").first.click()   # table-rows.js
            check("task page")

            visit("/no-such-page", 404)
            for path in ("/cases", "/start", f"/projects/{project_id('EDU-2027-001')}", "/inbox"):
                visit(path)
            page.get_by_role("button", name="Log out").click()
            expect(page).to_have_url(f"{live_server}/login")
            check("after logout")
        finally:
            browser.close()
    assert problems == []
