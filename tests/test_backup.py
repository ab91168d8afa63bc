"""perfbudget backup / restore: a restore brings back every row of every table as it was at
backup time, the app keeps working on it, and what is not a backup of this database's kind
and schema is refused without touching anything. Runs on SQLite and on PostgreSQL."""
from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess

import pytest
from alembic import command
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.engine import make_url

from engine import demo
from engine.app import PerfBudget
from engine.errors import NotAuthenticated
from storage import backup, queries
from storage.backup import BackupError
from storage.db import Database
from storage.models import Base, User
from storage.schema import alembic_config, upgrade
from webui import create_app

NEW_PASSWORD = "Backup-probe-passphrase-2027"

# The goal review of a school project, step by step: (username, form data); "compile" is the
# unit's goals form.
SCHOOL_STEPS = ["compile", ("edu_bureau", demo.APPROVE), ("review1", {**demo.APPROVE, "grade": "excellent"}),
                ("perf1", demo.APPROVE), ("edu_section", demo.APPROVE)]
FARM_STEPS = ["compile", ("agri_bureau", demo.APPROVE)]


# ---- helpers ---------------------------------------------------------------------------------

def snapshot(db: Database) -> dict[str, list[tuple]]:
    """Every row of every table, ordered by primary key, plus the schema revision."""
    tables = {}
    with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
            tables[table.name] = [tuple(row) for row in rows]
        tables["alembic_version"] = [tuple(row) for row in conn.execute(text("SELECT * FROM alembic_version"))]
    return tables


def head(db: Database) -> str:
    return backup.head_revision(db)


def safe_url(db: Database) -> str:
    return make_url(db.url).render_as_string(hide_password=True)


class Cases:
    """Drives goal-review cases of the demo projects through core.cases.start/complete."""

    def __init__(self, core, actor, project_id):
        self.core, self.actor, self.project_id = core, actor, project_id
        self.ids: dict[str, int] = {}
        self.walked: dict[str, int] = {}

    def start(self, code: str) -> int:
        unit = "school_unit" if code.startswith("EDU") else "farm_unit"
        case = self.core.cases.start(self.actor(unit), "goal_review", self.project_id(code))
        self.ids[code], self.walked[code] = case.id, 0
        return case.id

    def open_task(self, code: str):
        with self.core.db.reading() as s:
            return queries.open_tasks_of_case(s, self.ids[code])[0]

    def advance(self, code: str, count: int = 1):
        steps = SCHOOL_STEPS if code.startswith("EDU") else FARM_STEPS
        result = None
        for step in steps[self.walked[code]:self.walked[code] + count]:
            if step == "compile":
                unit = "school_unit" if code.startswith("EDU") else "farm_unit"
                with self.core.db.reading() as s:
                    name = queries.project_by_code(s, code).name
                step = (unit, demo.sample_goals(name))
            username, data = step
            result = self.core.cases.complete(self.actor(username), self.open_task(code).id, data)
            self.walked[code] += 1
        return result


@pytest.fixture
def cases(core, actor, project_id):
    """Goal reviews at different stages: compiling, at competent check, at preliminary review,
    and one approved (its goals written to project_goals)."""
    driver = Cases(core, actor, project_id)
    for code, steps in (("EDU-2027-001", 0), ("AGR-2027-002", 1), ("EDU-2027-002", 2), ("EDU-2027-003", 5)):
        driver.start(code)
        driver.advance(code, steps)
    return driver


def change_everything(core, cases: Cases, start_case: bool = True) -> None:
    """What happens after the backup: tasks completed, a case started, a user added."""
    cases.advance("EDU-2027-001")
    cases.advance("EDU-2027-002")
    cases.advance("AGR-2027-002")
    if start_case:
        cases.start("AGR-2027-003")
    core.accounts.ensure_user("backup_probe", "Backup Probe", NEW_PASSWORD)
    core.accounts.grant("backup_probe", "unit", "school")


def pg_dump_to(db: Database, path, *args: str) -> None:
    """A dump made directly with pg_dump (for files our own backup would not write)."""
    argv, env = backup.pg_command("pg_dump", db.url, ["--format=custom", f"--file={path}", *args])
    subprocess.run(argv, env=env, check=True, capture_output=True)


def sqlite_backup_of_fresh_schema(tmp_path):
    """A real PerfBudget SQLite backup (schema only), made beside whatever database the test uses."""
    db = Database(f"sqlite:///{tmp_path / 'other.db'}")
    upgrade(db)
    info = backup.backup(db, tmp_path / "other-sqlite.backup")
    db.dispose()
    return info.path


def needs_pg_tools():
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump and pg_restore are not installed")


# ---- round trips ---------------------------------------------------------------------------

def test_restore_brings_back_every_row_of_every_table(core, cases, tmp_path):
    before = snapshot(core.db)
    # The staged cases are in the tables, at their stages.
    assert len(before["cases"]) == 4
    assert len(before["project_goals"]) == 1
    assert {row.step for row in _open_tasks(core)} == {"compile_goals", "competent_check", "preliminary_review"}

    info = backup.backup(core.db, tmp_path / "perfbudget.backup")
    kind = "sqlite" if core.db.is_sqlite else "postgresql"
    assert (info.kind, info.path, info.revision) == (kind, tmp_path / "perfbudget.backup", head(core.db))
    assert info.size == os.path.getsize(info.path) > 0
    assert backup.detect_kind(info.path) == kind
    # Only the backup is left (no temporary or journal file), readable by its owner alone: it
    # holds password hashes.
    assert sorted(p.name for p in tmp_path.iterdir() if "backup" in p.name) == ["perfbudget.backup"]
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600

    change_everything(core, cases)
    changed = snapshot(core.db)
    for table in ("cases", "human_tasks", "audit_events", "users", "role_grants"):
        assert changed[table] != before[table], table

    restored = backup.restore(core.db, info.path)
    assert (restored.kind, restored.revision, restored.upgraded_to) == (kind, head(core.db), None)
    after = snapshot(core.db)
    assert list(after) == list(before)
    for table in before:
        assert after[table] == before[table], f"table {table} differs from the backup"

    # The app keeps working on the restored content: the compiling case is compiling again,
    # and completing it creates the next task with the id that came next at backup time.
    assert cases.open_task("EDU-2027-001").step == "compile_goals"
    cases.walked["EDU-2027-001"] = 0
    result = cases.advance("EDU-2027-001")
    assert [t.step for t in result.next_tasks] == ["competent_check"]
    assert result.next_tasks[0].id == max(row[0] for row in before["human_tasks"]) + 1
    user = core.accounts.ensure_user("after_restore", "After Restore", NEW_PASSWORD)
    assert user.id == max(row[0] for row in before["users"]) + 1
    assert core.accounts.authenticate("after_restore", NEW_PASSWORD).id == user.id
    with pytest.raises(NotAuthenticated):
        core.accounts.authenticate("backup_probe", NEW_PASSWORD)


def _open_tasks(core):
    from storage.models import HumanTask
    with core.db.reading() as s:
        return s.scalars(select(HumanTask).where(HumanTask.status == "open")).all()


def test_backup_is_consistent_while_the_app_writes(core, cases, tmp_path):
    """The backup holds what was committed when it ran (on SQLite also what is still only in
    the WAL), and nothing of a transaction still open."""
    if core.db.is_sqlite:
        wal = backup.sqlite_path(core.db).with_name(backup.sqlite_path(core.db).name + "-wal")
        assert wal.stat().st_size > 0      # the staged cases are not checkpointed yet
    before = snapshot(core.db)
    with core.db.engine.connect() as writer:
        writer.begin()
        writer.execute(insert(User.__table__).values(username="uncommitted", display_name="Uncommitted",
                                                     password_hash="x", active=True,
                                                     created_at=core.clock.now()))
        info = backup.backup(core.db, tmp_path / "online.backup")
        writer.commit()
    assert any(row[1] == "uncommitted" for row in snapshot(core.db)["users"])
    backup.restore(core.db, info.path)
    assert snapshot(core.db) == before


@pytest.fixture
def empty_database(core, tmp_path):
    """The URL of a new, empty database of the same kind as core's (no file yet on SQLite)."""
    if core.db.is_sqlite:
        yield f"sqlite:///{tmp_path / 'recovered' / 'perfbudget.db'}"
        return
    url = make_url(core.db.url)
    name = f"{url.database}_recovered"
    admin = core.db.engine.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_a_backup_restores_into_a_new_empty_database(core, cases, tmp_path, empty_database):
    """Disaster recovery: the database is gone; a new empty one (or no file at all on SQLite)
    gets the backup, and the app runs on it."""
    if core.db.is_sqlite:
        (tmp_path / "recovered").mkdir()
    expected = snapshot(core.db)
    path = backup.backup(core.db, tmp_path / "before-the-disaster.backup").path
    recovered = PerfBudget(empty_database, clock=core.clock)
    try:
        info = backup.restore(recovered.db, path)
        assert (info.revision, info.upgraded_to) == (head(core.db), None)
        assert snapshot(recovered.db) == expected
        with recovered.db.reading() as s:
            task = queries.open_tasks_of_case(s, cases.ids["EDU-2027-001"])[0]
        with recovered.db.reading() as s:
            unit = recovered.accounts.actor(queries.user_by_username(s, "school_unit").id)
        with recovered.db.reading() as s:
            name = queries.project_by_code(s, "EDU-2027-001").name
        result = recovered.cases.complete(unit, task.id, demo.sample_goals(name))
        assert [t.step for t in result.next_tasks] == ["competent_check"]
    finally:
        recovered.close()


def test_an_older_backup_is_restored_and_upgraded(core, cases, tmp_path):
    """A backup made at an earlier schema revision comes back at that revision's content and is
    then upgraded to this code's head."""
    cfg = alembic_config(core.db.url)
    current = head(core.db)
    # A plain engine: SQLite's batch migrations rebuild tables, which the app's connections
    # (foreign_keys=ON) do not allow.
    plain = create_engine(core.db.url)
    with plain.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "-1")
        conn.commit()
    plain.dispose()
    with core.db.engine.connect() as conn:
        older = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert older != current
    info = backup.backup(core.db, tmp_path / "older.backup")
    assert info.revision == older
    upgrade(core.db)
    expected = snapshot(core.db)
    # (The downgrade dropped the ex-ante evaluations that a new goal review needs.)
    change_everything(core, cases, start_case=False)

    restored = backup.restore(core.db, info.path)
    assert (restored.revision, restored.upgraded_to) == (older, current)
    assert snapshot(core.db) == expected
    cases.walked["EDU-2027-001"] = 0
    assert [t.step for t in cases.advance("EDU-2027-001").next_tasks] == ["competent_check"]


# ---- through the command line ----------------------------------------------------------------

def test_cli_backup_and_restore(app, core, cases, tmp_path):
    runner = app.test_cli_runner()
    path = tmp_path / "cli.backup"
    before = snapshot(core.db)
    kind = "SQLite" if core.db.is_sqlite else "PostgreSQL"

    result = runner.invoke(args=["backup", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output == (f"Backed up {safe_url(core.db)} to {path}: {kind} backup at schema revision "
                             f"{head(core.db)}, {path.stat().st_size} bytes\n")

    change_everything(core, cases)
    result = runner.invoke(args=["restore", str(path), "--yes"])
    assert result.exit_code == 0, result.output
    assert result.output == (f"Restored {path} into {safe_url(core.db)} (schema revision {head(core.db)})\n"
                             "Restart any running PerfBudget server: it keeps state cached from before the restore\n")
    assert snapshot(core.db) == before
    cases.walked["EDU-2027-002"] = 2
    assert [t.step for t in cases.advance("EDU-2027-002").next_tasks] == ["re_examination"]


def test_cli_restore_refuses_without_yes(app, core, cases, tmp_path):
    runner = app.test_cli_runner()
    path = tmp_path / "cli.backup"
    assert runner.invoke(args=["backup", str(path)]).exit_code == 0
    change_everything(core, cases)
    changed = snapshot(core.db)
    result = runner.invoke(args=["restore", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (f"error: restoring replaces everything in {safe_url(core.db)} with the content of "
                             f"{path}; run again with --yes to confirm\n")
    assert snapshot(core.db) == changed


@pytest.mark.parametrize("content", [b"", b"name,amount\nschool,1200000\n", b"SQLite format 2\x00" + bytes(100)],
                         ids=["empty", "csv", "almost-sqlite"])
def test_cli_restore_refuses_a_file_that_is_not_a_backup(app, core, tmp_path, content):
    path = tmp_path / "not-a-backup"
    path.write_bytes(content)
    before = snapshot(core.db)
    result = app.test_cli_runner().invoke(args=["restore", str(path), "--yes"])
    assert result.exit_code == 1
    assert result.stderr == (f"error: {path} is not a PerfBudget backup: it is neither an SQLite database nor "
                             "a PostgreSQL custom-format dump\n")
    assert snapshot(core.db) == before


def test_cli_restore_refuses_a_missing_file_and_a_folder(app, core, tmp_path):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["restore", str(tmp_path / "nothing-here"), "--yes"])
    assert (result.exit_code, result.stderr) == (1, f"error: no such file: {tmp_path / 'nothing-here'}\n")
    result = runner.invoke(args=["restore", str(tmp_path), "--yes"])
    assert (result.exit_code, result.stderr) == (1, f"error: {tmp_path} is not a file\n")


def test_restore_refuses_a_database_of_the_same_kind_without_our_schema(app, core, tmp_path):
    path = tmp_path / "foreign.backup"
    if core.db.is_sqlite:
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount NUMERIC)")
        conn.commit()
        conn.close()
        why = "the SQLite database has no alembic_version table"
    else:
        needs_pg_tools()
        pg_dump_to(core.db, path, "--exclude-table=alembic_version")
        why = "the PostgreSQL dump has no alembic_version table"
    before = snapshot(core.db)
    result = app.test_cli_runner().invoke(args=["restore", str(path), "--yes"])
    assert result.exit_code == 1
    assert result.stderr == f"error: {path} is not a PerfBudget backup: {why}\n"
    assert snapshot(core.db) == before


def test_restore_refuses_a_damaged_backup_and_changes_nothing(core, cases, tmp_path):
    info = backup.backup(core.db, tmp_path / "whole.backup")
    whole = info.path.read_bytes()
    half = tmp_path / "half.backup"
    half.write_bytes(whole[: info.size // 2])
    change_everything(core, cases)
    changed = snapshot(core.db)
    with pytest.raises(BackupError) as caught:
        backup.restore(core.db, half)
    if core.db.is_sqlite:
        assert caught.value.message.startswith(f"{half} is not a PerfBudget backup: ")
    else:
        # The table of contents (with every definition) is the first part of the file.
        assert caught.value.message == (f"{half} is not a PerfBudget backup: pg_restore cannot read it as a "
                                        "custom-format dump (pg_restore: error: could not read from input "
                                        "file: end of file)")
    assert snapshot(core.db) == changed
    if not core.db.is_sqlite:
        # Only the last table's data cut off: the restore starts, fails at the cut, and its one
        # transaction rolls back.
        tail_cut = tmp_path / "tail-cut.backup"
        tail_cut.write_bytes(whole[:-64])
        with pytest.raises(BackupError) as caught:
            backup.restore(core.db, tail_cut)
        assert caught.value.message.startswith(f"restoring {tail_cut} (nothing was changed): pg_restore failed: ")
        assert snapshot(core.db) == changed


def test_restore_refuses_a_backup_of_a_newer_schema(app, core, cases, tmp_path):
    current = head(core.db)
    with core.db.transaction() as s:
        s.execute(text("UPDATE alembic_version SET version_num = 'f00dfacecafe'"))
    path = tmp_path / "newer.backup"
    assert backup.backup(core.db, path).revision == "f00dfacecafe"
    with core.db.transaction() as s:
        s.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": current})
    change_everything(core, cases)
    changed = snapshot(core.db)
    result = app.test_cli_runner().invoke(args=["restore", str(path), "--yes"])
    assert result.exit_code == 1
    assert result.stderr == (f"error: {path} is at schema revision f00dfacecafe, which this version of PerfBudget "
                             f"does not know (its newest is {current}): the backup was made by a newer version; "
                             "upgrade PerfBudget before restoring it\n")
    assert snapshot(core.db) == changed


def test_restore_refuses_a_backup_of_the_other_kind(app, core, tmp_path):
    if core.db.is_sqlite:
        # The first bytes of a pg_dump custom-format archive are enough to tell.
        path = tmp_path / "postgresql.backup"
        path.write_bytes(b"PGDMP\x01\x0e\x00\x04\x08\x01\x01" + bytes(200))
        message = (f"error: {path} is a backup of a PostgreSQL database and cannot be restored into the "
                   "configured SQLite database\n")
    else:
        path = sqlite_backup_of_fresh_schema(tmp_path)
        message = (f"error: {path} is a backup of an SQLite database and cannot be restored into the "
                   "configured PostgreSQL database\n")
    before = snapshot(core.db)
    result = app.test_cli_runner().invoke(args=["restore", str(path), "--yes"])
    assert (result.exit_code, result.stderr) == (1, message)
    assert snapshot(core.db) == before


# ---- backups that cannot be made ---------------------------------------------------------------

def test_backup_of_a_database_without_our_schema_is_refused(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE invoices (id INTEGER PRIMARY KEY)"))
    with pytest.raises(BackupError) as caught:
        backup.backup(db, tmp_path / "empty.backup")
    assert caught.value.message == ("the SQLite database has no PerfBudget schema (no alembic_version table); "
                                    "run `perfbudget init` first")
    assert not (tmp_path / "empty.backup").exists()
    db.dispose()


def test_backup_refuses_to_overwrite_the_live_database(core, tmp_path):
    if not core.db.is_sqlite:
        pytest.skip("SQLite only: a PostgreSQL database is not a file")
    live = backup.sqlite_path(core.db)
    before = snapshot(core.db)
    with pytest.raises(BackupError) as caught:
        backup.backup(core.db, live)
    assert caught.value.message == f"{live} is the live database itself; choose another file for the backup"
    assert snapshot(core.db) == before


def test_backup_needs_a_file_in_an_existing_folder(core, tmp_path):
    with pytest.raises(BackupError) as caught:
        backup.backup(core.db, tmp_path / "missing" / "x.backup")
    assert caught.value.message == f"no such directory: {tmp_path / 'missing'}"
    with pytest.raises(BackupError) as caught:
        backup.backup(core.db, tmp_path)
    assert caught.value.message == f"{tmp_path} exists and is not a file"


def test_backup_replaces_an_existing_file_whole(core, tmp_path):
    path = tmp_path / "nightly.backup"
    path.write_bytes(b"yesterday's backup, much longer than a header " * 10_000)
    info = backup.backup(core.db, path)
    assert path.stat().st_size == info.size
    assert backup.detect_kind(path) == ("sqlite" if core.db.is_sqlite else "postgresql")


def test_cli_reports_an_unreachable_database(tmp_path):
    needs_pg_tools()
    url = "postgresql+psycopg://perfbudget:not-shown-anywhere@127.0.0.1:1/perfbudget_nowhere"
    core = PerfBudget(url)
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": url}, perfbudget=core)
    app.instance_path = str(tmp_path)
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "x.backup")])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: cannot reach the database 'perfbudget_nowhere' at 127.0.0.1:1: pg_dump: error: connection to "
        'server at "127.0.0.1", port 1 failed: Connection refused')
    assert "not-shown-anywhere" not in result.output
    assert list(tmp_path.iterdir()) == []
    core.close()


def test_restore_reports_an_unreachable_database(core, tmp_path):
    if core.db.is_sqlite:
        pytest.skip("PostgreSQL only: needs a real custom-format dump")
    info = backup.backup(core.db, tmp_path / "good.backup")
    url = "postgresql+psycopg://perfbudget:not-shown-anywhere@127.0.0.1:1/perfbudget_nowhere"
    db = Database(url)
    with pytest.raises(BackupError) as caught:
        backup.restore(db, info.path)
    assert caught.value.message.startswith("cannot reach the database 'perfbudget_nowhere' at 127.0.0.1:1: ")
    assert "Connection refused" in caught.value.message
    assert "not-shown-anywhere" not in caught.value.message
    db.dispose()


def test_cli_reports_missing_postgresql_tools(app, core, tmp_path, monkeypatch):
    if core.db.is_sqlite:
        pytest.skip("PostgreSQL only")
    runner = app.test_cli_runner()
    good = backup.backup(core.db, tmp_path / "good.backup").path
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))     # a machine without the PostgreSQL client tools
    result = runner.invoke(args=["backup", str(tmp_path / "x.backup")])
    assert (result.exit_code, result.stderr) == (
        1, "error: pg_dump was not found on PATH; install the PostgreSQL client tools (the same major version "
           "as the server or newer)\n")
    assert not (tmp_path / "x.backup").exists()
    result = runner.invoke(args=["restore", str(good), "--yes"])
    assert (result.exit_code, result.stderr) == (
        1, "error: pg_restore was not found on PATH; install the PostgreSQL client tools (the same major version "
           "as the server or newer)\n")


def test_the_password_goes_in_the_environment_never_on_the_command_line():
    needs_pg_tools()
    url = "postgresql+psycopg://budget%40user:p%40ss%20word@db.example:6543/perf%3Dbudget?sslmode=require"
    argv, env = backup.pg_command("pg_dump", url, ["--format=custom", "--file=/tmp/x"])
    assert argv == [shutil.which("pg_dump"), "--format=custom", "--file=/tmp/x"]
    assert not any("ss word" in arg or "db.example" in arg for arg in argv)
    assert {k: env[k] for k in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE")} == {
        "PGHOST": "db.example", "PGPORT": "6543", "PGUSER": "budget@user", "PGPASSWORD": "p@ss word",
        "PGDATABASE": "perf=budget", "PGSSLMODE": "require"}
    with pytest.raises(BackupError) as caught:
        backup.pg_command("pg_dump", url + "&krbsrvname=x", [])
    assert caught.value.message == "the database URL option 'krbsrvname' is not supported by backup and restore"


def test_analyze_refreshes_the_planner_statistics(app, demo_core):
    """`perfbudget analyze`: afterwards the planner has statistics of the (non-empty) users table."""
    from sqlalchemy import text
    result = app.test_cli_runner().invoke(args=["analyze"])
    assert result.exit_code == 0 and "Planner statistics refreshed." in result.output
    with demo_core.db.reading() as s:
        if demo_core.db.is_sqlite:
            analysed = s.execute(text("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'users'")).scalar()
            assert analysed >= 1
        else:
            when = s.execute(text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'users'"))
            assert when.scalar() is not None
