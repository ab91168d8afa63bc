"""Notifications: who is told of a new task or a return, the bell and the page, the API, and
e-mail through a local SMTP server that these tests start (after commit, once only)."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from engine import demo
from engine.errors import InvalidData, PermissionDenied
from engine.notifications import EmailSettings, return_comment
from storage import queries
from storage.models import Case, HumanTask, Notification, User
from webui.notifications import outbox, send_pending_email

GOALS = demo.sample_goals("Campus safety upgrade")
RETURN = {"decision": "return", "comment": "The satisfaction target needs a survey method."}


def _user_id(core, username: str) -> int:
    with core.db.reading() as s:
        return queries.user_by_username(s, username).id


def _notified(core, **where) -> dict[str, list[Notification]]:
    """username -> their notifications, oldest first."""
    with core.db.reading() as s:
        q = select(Notification, User.username).join(User, User.id == Notification.user_id)
        for name, value in where.items():
            q = q.where(getattr(Notification, name) == value)
        out: dict[str, list[Notification]] = {}
        for n, username in s.execute(q.order_by(Notification.id)):
            out.setdefault(username, []).append(n)
        return out


@pytest.fixture
def colleague(demo_core):
    """A second officer of No. 1 Middle School, so that 'the unit' is more than one person."""
    demo_core.accounts.ensure_user("school_unit2", "Second officer", demo.DEMO_PASSWORD, enforce_policy=False)
    demo_core.accounts.grant("school_unit2", "unit", "school")
    return "school_unit2"


@pytest.fixture
def goal_review(demo_core, actor, project_id, colleague):
    """A goal review of EDU-2027-001 started by an administrator, so that the unit's first task
    is news to every school officer."""
    case = demo_core.cases.start(actor("admin"), "goal_review", project_id("EDU-2027-001"))
    with demo_core.db.reading() as s:
        task = queries.open_tasks_of_case(s, case.id)[0]
    return case.id, task.id


# ---- who is told ----------------------------------------------------------------------------

def test_a_new_task_notifies_exactly_the_users_who_may_act_on_it(demo_core, actor, goal_review):
    case_id, compile_id = goal_review
    told = _notified(demo_core, human_task_id=compile_id)
    # The school's unit officers; not the farm's, not the administrator who started the case.
    assert sorted(told) == ["school_unit", "school_unit2"]
    note = told["school_unit"][0]
    assert note.kind == "new_task" and note.case_id == case_id and note.read_at is None
    assert note.title.startswith("New task: ") and "No. 1 Middle School" in note.body

    result = demo_core.cases.complete(actor("school_unit"), compile_id, GOALS)
    check = result.next_tasks[0]
    # A case-scoped role in another organisation: the Education Bureau, not the Agriculture Bureau;
    # and the officer who submitted is told nothing about the step that follows.
    assert sorted(_notified(demo_core, human_task_id=check.id)) == ["edu_bureau"]


def test_a_bureau_wide_task_notifies_every_holder_of_the_role(demo_core, actor, goal_review):
    _, compile_id = goal_review
    demo_core.accounts.ensure_user("review2", "Second reviewer", demo.DEMO_PASSWORD, enforce_policy=False)
    demo_core.accounts.grant("review2", "review_center", "review_center")
    check = demo_core.cases.complete(actor("school_unit"), compile_id, GOALS).next_tasks[0]
    review = demo_core.cases.complete(actor("edu_bureau"), check.id, {"decision": "approve", "comment": "Ok."}
                                      ).next_tasks[0]
    assert review.role == "review_center" and review.org_id is None
    assert sorted(_notified(demo_core, human_task_id=review.id)) == ["review1", "review2"]


def test_whoever_completes_a_step_is_not_told_about_the_next_one_even_if_it_is_theirs(demo_core, actor, goal_review):
    _, compile_id = goal_review
    # An officer of the Education Bureau who also works for the school.
    demo_core.accounts.grant("school_unit2", "competent", "edu_bureau")
    check = demo_core.cases.complete(actor("school_unit2"), compile_id, GOALS).next_tasks[0]
    assert check.role == "competent"
    assert sorted(_notified(demo_core, human_task_id=check.id)) == ["edu_bureau"]
    # Anyone else holding the role is told, once.
    back = demo_core.cases.complete(actor("edu_bureau"), check.id, RETURN).next_tasks[0]
    told = _notified(demo_core, human_task_id=back.id)
    assert sorted(told) == ["school_unit", "school_unit2"] and all(len(n) == 1 for n in told.values())


def test_a_return_notifies_the_unit_with_the_comment(demo_core, actor, goal_review):
    _, compile_id = goal_review
    check = demo_core.cases.complete(actor("school_unit"), compile_id, GOALS).next_tasks[0]
    resubmit = demo_core.cases.complete(actor("edu_bureau"), check.id, RETURN).next_tasks[0]
    told = _notified(demo_core, human_task_id=resubmit.id)
    assert sorted(told) == ["school_unit", "school_unit2"]
    note = told["school_unit"][0]
    assert note.kind == "returned" and note.title.startswith("Returned: ")
    assert RETURN["comment"] in note.body
    # The resubmission itself is news again, not another return (the unit's data has no decision).
    check2 = demo_core.cases.complete(actor("school_unit"), resubmit.id, GOALS).next_tasks[0]
    assert [n.kind for n in _notified(demo_core, human_task_id=check2.id)["edu_bureau"]] == ["new_task"]


def test_return_comment_is_generic():
    assert return_comment({"decision": "return", "comment": "Redo."}) == "Redo."
    assert return_comment({"check_decision": "return", "check_comment": "Again."}) == "Again."
    assert return_comment({"decision": "return"}) == ""
    assert return_comment({"decision": "approve", "comment": "Fine."}) is None
    assert return_comment({"returned": "return"}) is None and return_comment(None) is None


def test_a_refused_completion_notifies_nobody(demo_core, actor, goal_review):
    _, compile_id = goal_review
    with demo_core.db.reading() as s:
        before = s.scalar(select(Notification.id).order_by(Notification.id.desc()).limit(1))
    with pytest.raises(InvalidData):
        demo_core.cases.complete(actor("school_unit"), compile_id, {"indicators": "none"})
    with pytest.raises(PermissionDenied):
        demo_core.cases.complete(actor("farm_unit"), compile_id, GOALS)
    with demo_core.db.reading() as s:
        assert s.scalar(select(Notification.id).order_by(Notification.id.desc()).limit(1)) == before


def test_notify_is_there_for_reminders_and_escalations(demo_core, goal_review):
    from engine import notifications
    case_id, compile_id = goal_review
    school = _user_id(demo_core, "school_unit")
    with demo_core.db.transaction() as s:
        case, task = s.get(Case, case_id), s.get(HumanTask, compile_id)
        notifications.notify(s, [school, school], "reminder", case, task, "Due in 3 days", "Please submit.",
                             demo_core.clock.now())
    reminders = _notified(demo_core, kind="reminder")
    assert list(reminders) == ["school_unit"] and len(reminders["school_unit"]) == 1


# ---- the bell, the page and the API -------------------------------------------------------------

def test_bell_page_open_and_mark_all_read(pages, demo_core, goal_review):
    _, compile_id = goal_review
    unit = pages("school_unit")
    html = unit.get("/inbox").get_data(as_text=True)
    assert 'data-testid="notification-count">1<' in html
    listing = unit.get("/notifications")
    assert listing.status_code == 200 and "New task: " in listing.get_data(as_text=True)
    note = _notified(demo_core, human_task_id=compile_id)["school_unit"][0]
    opened = unit.get(f"/notifications/{note.id}")
    assert opened.status_code == 302 and opened.headers["Location"].endswith(f"/tasks/{compile_id}")
    assert 'data-testid="notification-count"' not in unit.get("/inbox").get_data(as_text=True)
    # Someone else's notification is not found, and stays unread.
    other = _notified(demo_core, human_task_id=compile_id)["school_unit2"][0]
    assert unit.get(f"/notifications/{other.id}").status_code == 404
    colleague = pages("school_unit2")
    assert 'data-testid="notification-count">1<' in colleague.get("/inbox").get_data(as_text=True)
    # Mark all read needs the CSRF token, like every form post.
    assert colleague.client.post("/notifications/read").status_code == 400
    assert colleague.post_form("/notifications/read", {}, page_path="/notifications").status_code == 302
    assert 'data-testid="notification-count"' not in colleague.get("/inbox").get_data(as_text=True)
    assert "Mark all read" not in colleague.get("/notifications").get_data(as_text=True)


def test_api_lists_and_marks_read(api, demo_core, actor, goal_review):
    _, compile_id = goal_review
    check = demo_core.cases.complete(actor("school_unit"), compile_id, GOALS).next_tasks[0]
    demo_core.cases.complete(actor("edu_bureau"), check.id, RETURN)
    unit = api("school_unit")
    body = unit.get("/api/v1/notifications").get_json()
    assert body["total"] == 2 and body["unread"] == 2
    assert [n["kind"] for n in body["items"]] == ["returned", "new_task"]          # newest first
    assert body["items"][0]["task_id"] and RETURN["comment"] in body["items"][0]["body"]
    assert unit.get("/api/v1/notifications?limit=1").get_json()["items"][0]["kind"] == "returned"
    other = _notified(demo_core, kind="returned")["school_unit2"][0].id
    r = unit.post("/api/v1/notifications/read", json={"ids": [body["items"][1]["id"], other]})
    assert r.status_code == 200 and r.get_json() == {"updated": 1, "unread": 1}
    assert unit.get("/api/v1/notifications?unread=true").get_json()["total"] == 1
    assert unit.post("/api/v1/notifications/read", json={"all": True}).get_json() == {"updated": 1, "unread": 0}
    for bad in ({}, {"all": False}, {"ids": [1], "all": True}, {"ids": ["x"]}, {"ids": [True]}, {"ids": 3}):
        assert unit.post("/api/v1/notifications/read", json=bad).status_code == 400, bad
    # The colleague's notification was not touched.
    assert api("school_unit2").get("/api/v1/notifications?unread=true").get_json()["total"] == 2


# ---- e-mail ---------------------------------------------------------------------------------

def test_email_is_sent_after_commit_once_only(app, pages, demo_core, project_id, smtp_server):
    handler, port = smtp_server
    app.config["EMAIL_SETTINGS"] = EmailSettings(host="127.0.0.1", port=port, sender="perf@example.org",
                                                 base_url="https://perf.example.org")
    demo_core.accounts.ensure_user("school_unit2", "Second officer", demo.DEMO_PASSWORD, enforce_policy=False)
    demo_core.accounts.grant("school_unit2", "unit", "school")   # with no e-mail address: in the app only
    with demo_core.db.transaction() as s:
        s.execute(update(User).where(User.username == "school_unit2").values(email=None))
    admin = pages("admin")
    started = admin.post_form("/start", {"process": "goal_review", "project": str(project_id("EDU-2027-001"))})
    assert started.status_code == 302
    outbox(app).wait()
    assert len(handler.messages) == 1
    recipients, message = handler.messages[0]
    assert recipients == ["school_unit@example.org"] and message["To"] == "school_unit@example.org"
    assert message["From"] == "perf@example.org"
    assert message["Subject"].startswith("[PerfBudget] New task: ")
    note = _notified(demo_core, kind="new_task")["school_unit"][0]
    text = message.get_content()
    assert note.body in text and f"https://perf.example.org/notifications/{note.id}" in text
    assert note.emailed_at is not None
    # Once only: the outbox finds nothing more, however often it runs.
    assert send_pending_email(app) == 0
    runner = app.test_cli_runner()
    result = runner.invoke(args=["notify-email"])
    assert result.exit_code == 0 and "Sent 0 notification e-mails" in result.output
    assert len(handler.messages) == 1


def test_no_email_without_an_smtp_server_and_none_for_a_refused_change(app, pages, api, demo_core, smtp_server):
    handler, port = smtp_server
    app.config["EMAIL_SETTINGS"] = EmailSettings()            # no host: notifications stay in the app
    unit = api("school_unit")
    case = unit.post("/api/v1/cases", json={"process": "goal_review", "project": "EDU-2027-001"}).get_json()
    compile_id = case["tasks"][0]["id"]
    assert unit.post(f"/api/v1/tasks/{compile_id}/complete", json={"data": GOALS}).status_code == 200
    assert send_pending_email(app) == 0
    result = app.test_cli_runner().invoke(args=["notify-email"])
    assert result.exit_code == 0 and "No SMTP server configured" in result.output
    told = _notified(demo_core, kind="new_task")
    assert told["edu_bureau"][0].emailed_at is None
    # Configured now: a refused completion notifies nobody and sends nothing. (Logged in before:
    # any successful POST, a log-in too, runs the outbox.)
    bureau = api("edu_bureau")
    app.config["EMAIL_SETTINGS"] = EmailSettings(host="127.0.0.1", port=port)
    check = told["edu_bureau"][0].human_task_id
    assert bureau.post(f"/api/v1/tasks/{check}/complete", json={"data": {"decision": "maybe"}}).status_code == 400
    outbox(app).wait()
    assert handler.messages == []
    # What was pending from before goes out on the next run (the CLI's or a request's).
    result = app.test_cli_runner().invoke(args=["notify-email"])
    assert result.exit_code == 0 and "Sent 1 notification e-mail through 127.0.0.1" in result.output
    assert [rcpt for rcpt, _ in handler.messages] == [["edu_bureau@example.org"]]


def test_users_command_sets_the_email_address(app, demo_core):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["users", "school_unit", "--email", "liu.yang@example.org"]).exit_code == 0
    with demo_core.db.reading() as s:
        assert queries.user_by_username(s, "school_unit").email == "liu.yang@example.org"
    refused = runner.invoke(args=["users", "school_unit", "--email", "not an address"])
    assert refused.exit_code == 1 and "not an e-mail address" in refused.output
    assert runner.invoke(args=["users", "school_unit", "--email", ""]).exit_code == 0
    with demo_core.db.reading() as s:
        assert queries.user_by_username(s, "school_unit").email is None
