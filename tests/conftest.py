"""Shared fixtures: a fresh database per test (SQLite, or PostgreSQL when
PERFBUDGET_TEST_DATABASE_URL is set), the engine, the Flask app, and login helpers."""
from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from engine import demo
from engine.app import PerfBudget
from engine.clock import Clock
from webui import create_app

PG_URL = os.environ.get("PERFBUDGET_TEST_DATABASE_URL")
TEST_MODELS_DIR = Path(__file__).parent / "models"


def _admin_engine():
    return create_engine(PG_URL, isolation_level="AUTOCOMMIT")


def _build_template(url: str) -> None:
    """Schema, deployed models, demo organisations, users and projects (no cases)."""
    app = PerfBudget(url)
    app.init()
    demo.load(app, cases=False)
    app.close()


@pytest.fixture(scope="session")
def template_database(tmp_path_factory):
    """Built once per run; every test gets a copy, so each starts from the same clean state
    without paying for migrations and password hashing again."""
    if not PG_URL:
        path = tmp_path_factory.mktemp("template") / "template.db"
        url = f"sqlite:///{path}"
        _build_template(url)
        from sqlalchemy import create_engine as _ce
        engine = _ce(url)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        yield path
        return
    name = f"pbtemplate_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = PG_URL.rpartition("/")[0]
    _build_template(f"{base}/{name}")
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def database_url(tmp_path, template_database):
    """A fresh copy of the template database for this test."""
    if not PG_URL:
        target = tmp_path / "test.db"
        shutil.copyfile(template_database, target)
        yield f"sqlite:///{target}"
        return
    name = f"pbtest_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    yield f"{PG_URL.rpartition('/')[0]}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def sqlite_db(tmp_path):
    """A Database on an SQLite file of its own, whatever database the suite runs on, with one
    table `log (seq, who)`: for the tests of SQLite's writer queue and checkpoints."""
    from storage.db import Database
    db = Database(f"sqlite:///{tmp_path / 'own.db'}")
    with db.transaction() as s:
        s.execute(text("CREATE TABLE log (seq INTEGER PRIMARY KEY AUTOINCREMENT, who TEXT)"))
    yield db
    db.dispose()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def core(database_url, clock):
    """The engine on a database with every model under processes/ deployed and the demo
    organisations, users and projects loaded (no cases)."""
    app = PerfBudget(database_url, clock=clock)
    app.init()      # a no-op upgrade and unchanged deployments: proves init is idempotent
    yield app
    app.close()


@pytest.fixture
def demo_core(core):
    """Alias of `core`, for tests that use the demo users and projects."""
    return core


@pytest.fixture
def deploy_test_model(demo_core):
    """deploy_test_model('timer_demo') -> the version deployed from tests/models/timer_demo,
    which must be a new deployment."""
    def deploy(name: str):
        version, created = demo_core.processes.deploy_folder(TEST_MODELS_DIR / name)
        assert created, f"tests/models/{name} was already deployed"
        return version
    return deploy


@pytest.fixture
def actor(demo_core):
    """actor('school_unit') -> the engine's Actor for a demo login."""
    def get(username: str):
        from storage import queries
        with demo_core.db.reading() as s:
            user = queries.user_by_username(s, username)
        return demo_core.accounts.actor(user.id)
    return get


@pytest.fixture
def project_id(demo_core):
    """project_id('EDU-2027-001') -> the id of a demo project."""
    def get(code: str) -> int:
        from storage import queries
        with demo_core.db.reading() as s:
            return queries.project_by_code(s, code).id
    return get


@pytest.fixture
def app(demo_core, tmp_path):
    # Pages show times in UTC here so tests can state them exactly; test_pages covers the
    # bureau's zone separately.
    flask_app = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": demo_core.db.url,
                            "DISPLAY_TIMEZONE": "UTC"}, perfbudget=demo_core)
    flask_app.instance_path = str(tmp_path)
    return flask_app


@pytest.fixture
def client(app):
    return app.test_client()


class ApiClient:
    """Calls /api/v1 as one demo user with a bearer token."""

    def __init__(self, client, username: str, password: str = demo.DEMO_PASSWORD):
        self.client = client
        response = client.post("/api/v1/tokens", json={"username": username, "password": password})
        assert response.status_code == 201, response.get_json()
        self.headers = {"Authorization": f"Bearer {response.get_json()['token']}"}

    def get(self, path, **kw):
        return self.client.get(path, headers=self.headers, **kw)

    def post(self, path, json=None, **kw):
        return self.client.post(path, headers=self.headers, json=json if json is not None else {}, **kw)


@pytest.fixture
def api(client):
    """api('review1') -> an ApiClient logged in as that demo user."""
    cache = {}

    def get(username: str) -> ApiClient:
        if username not in cache:
            cache[username] = ApiClient(client, username)
        return cache[username]
    return get


class PageSession:
    """A browser-like session on the HTML pages (test client with cookies and CSRF tokens)."""

    def __init__(self, app, username: str):
        self.client = app.test_client()
        page = self.client.get("/login")
        token = _csrf_from(page.get_data(as_text=True))
        response = self.client.post("/login", data={"username": username, "password": demo.DEMO_PASSWORD,
                                                    "csrf_token": token})
        assert response.status_code == 302, response.get_data(as_text=True)

    def get(self, path, **kw):
        return self.client.get(path, **kw)

    def post_form(self, path, data: dict, page_path: str | None = None):
        """Post a form the way a browser does: with the CSRF token of the page it came from."""
        page = self.client.get(page_path or path)
        token = _csrf_from(page.get_data(as_text=True))
        return self.client.post(path, data={**data, "csrf_token": token})


def _csrf_from(html: str) -> str:
    import re
    match = re.search(r'name="csrf_token" value="([^"]+)"', html) or \
        re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


@pytest.fixture
def pages(app):
    """pages('school_unit') -> a logged-in PageSession for the HTML pages."""
    def get(username: str) -> PageSession:
        return PageSession(app, username)
    return get


# ---- a real SMTP server for the e-mail tests ---------------------------------------------------

class _Collect:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp_server():
    """A real SMTP server on a free local port, collecting what it is sent."""
    from aiosmtpd import controller as controller_mod
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = _Collect()
    controller = controller_mod.Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture
def between(demo_core, monkeypatch):
    """between(action, times=1): run `action()` after each of the next `times` preparations of a
    completion (CaseService._prepare_completion), before it is saved: what another user does at
    that moment. Returns the list of the task ids prepared so far. On SQLite the preparation
    holds no lock; on PostgreSQL it holds the case's and the task's rows, so an action that
    needs them must run in another thread (task_helpers.wait_until_done_or_blocked)."""
    calls: list[int] = []

    def install(action, times: int = 1):
        prepare = demo_core.cases._prepare_completion

        def prepare_then_interfere(s, actor, task_id, data, now, **kwargs):
            plan = prepare(s, actor, task_id, data, now, **kwargs)
            calls.append(task_id)
            if len(calls) <= times:
                action()
            return plan
        monkeypatch.setattr(demo_core.cases, "_prepare_completion", prepare_then_interfere)
        return calls
    return install
