"""How read sessions end (storage.db): a read never writes, and on PostgreSQL a successful read
ends with COMMIT so psycopg keeps the statements it prepared (it drops them at every ROLLBACK)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from storage.models import Organisation


def test_a_read_session_never_writes(demo_core):
    with demo_core.db.reading() as s:
        before = s.scalar(select(func.count()).select_from(Organisation))
        s.add(Organisation(code="added-in-a-read", name="Should not be saved", kind="unit"))
    with pytest.raises(RuntimeError):
        with demo_core.db.reading() as s:
            s.execute(text("SELECT 1"))
            raise RuntimeError("a failed read")
    with demo_core.db.reading() as s:
        assert s.scalar(select(func.count()).select_from(Organisation)) == before
        assert s.scalar(select(Organisation.id).where(Organisation.code == "added-in-a-read")) is None


def test_postgresql_keeps_prepared_statements_across_reads(demo_core, actor):
    if demo_core.db.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite has no server-side prepared statements")
    supervisor = actor("review1")
    for _ in range(7):      # psycopg prepares a statement at its fifth use on a connection
        demo_core.reads.inbox_page(supervisor)
        with demo_core.db.read_connection() as conn:
            conn.execute(text("SELECT 1"))
    with demo_core.db.reading() as s:
        prepared = s.scalar(text("SELECT count(*) FROM pg_prepared_statements"))
    assert prepared >= 2, prepared      # the inbox's count and rows statements


def _in_transaction(demo_core, dbapi_connection) -> bool:
    if demo_core.db.is_sqlite:
        return dbapi_connection.in_transaction
    from psycopg.pq import TransactionStatus
    return dbapi_connection.info.transaction_status != TransactionStatus.IDLE


def test_the_one_statement_read_runs_outside_a_transaction_and_leaves_the_pool_as_it_was(demo_core):
    # Token authentication's connection: no BEGIN before its SELECT, no ROLLBACK/COMMIT after.
    for _ in range(3):      # the same pooled connection again and again
        with demo_core.db.read_connection() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
            assert not _in_transaction(demo_core, conn.connection.dbapi_connection)
        # A read session on the pool's connection afterwards is in a transaction again, so its
        # SELECTs see one state.
        with demo_core.db.reading() as s:
            s.execute(text("SELECT 1"))
            assert _in_transaction(demo_core, s.connection().connection.dbapi_connection)


def test_token_authentication_still_sees_a_revoked_token_at_once(demo_core, actor):
    unit = actor("school_unit")
    token = demo_core.accounts.issue_token(unit)
    assert demo_core.accounts.actor_for_token(token) == unit
    with demo_core.db.transaction() as s:
        s.execute(text("DELETE FROM api_tokens"))
    assert demo_core.accounts.actor_for_token(token) is None


def test_postgresql_stores_case_states_with_lz4(demo_core, actor, project_id):
    """Migration 0013: a case's saved state, written at every completion, is compressed with
    lz4 instead of pglz (less server CPU per save), where the server has lz4."""
    if demo_core.db.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite does not compress values")
    with demo_core.db.reading() as s:
        if "lz4" not in (s.execute(text("SELECT enumvals FROM pg_settings "
                                         "WHERE name = 'default_toast_compression'")).scalar() or []):
            pytest.skip("this PostgreSQL server was built without lz4")
    case = demo_core.cases.start(actor("school_unit"), "goal_review", project_id("EDU-2027-001"))
    with demo_core.db.reading() as s:
        assert s.execute(text("SELECT attcompression FROM pg_attribute WHERE attrelid = 'cases'::regclass "
                              "AND attname = 'state'")).scalar() == "l"
        length, method = s.execute(text("SELECT octet_length(state), pg_column_compression(state) "
                                        "FROM cases WHERE id = :id"), {"id": case.id}).one()
    assert length > 2100     # over the size PostgreSQL compresses from
    assert method == "lz4"


def test_postgresql_builds_a_cursor_description_only_when_it_is_read(demo_core, actor, project_id, monkeypatch):
    """storage.pg_cursor: SQLAlchemy reads `description` after every statement that returns rows,
    and from a statement's second execution on only tests that there is one."""
    if demo_core.db.is_sqlite:
        pytest.skip("PostgreSQL only: the cursor is psycopg's")
    import psycopg
    from storage import queries
    built = []
    build = psycopg.Column.__init__

    def counted(column, cursor, index):
        built.append(index)
        build(column, cursor, index)

    case = demo_core.cases.start(actor("school_unit"), "goal_review", project_id("EDU-2027-001"))
    with demo_core.db.reading() as s:
        task_id = s.scalar(text("SELECT id FROM human_tasks WHERE case_id = :c"), {"c": case.id})
    with demo_core.db.reading() as s:
        first = queries.task_for_completion(s, task_id)        # its result metadata is cached now
    monkeypatch.setattr(psycopg.Column, "__init__", counted)   # psycopg's own description builds them too
    with demo_core.db.reading() as s:
        again = queries.task_for_completion(s, task_id)
        assert (again.task.id, again.task.case.id, again.task.case.project.code) == \
               (first.task.id, case.id, "EDU-2027-001")
        assert built == []          # 80 columns, and none of them built

        # Whoever does read it gets psycopg's own description, of the result it was taken from,
        # also after the cursor has run another statement.
        raw = s.connection().connection.driver_connection
        cursor = raw.cursor()
        cursor.execute("SELECT id, code AS project_code, amount FROM projects ORDER BY id LIMIT 1")
        lazy = cursor.description
        cursor.execute("SELECT 1 AS one")
        assert [c.name for c in lazy] == ["id", "project_code", "amount"]
        plain = psycopg.ClientCursor(raw)
        plain.execute("SELECT id, code AS project_code, amount FROM projects ORDER BY id LIMIT 1")
        assert [(c.name, c.type_code, c.internal_size) for c in lazy] == \
               [(c.name, c.type_code, c.internal_size) for c in plain.description]
        assert len(lazy) == 3 and built == [0, 1, 2] * 2      # the lazy one, and the plain one's
        cursor.execute("SET LOCAL work_mem = '8MB'")        # no rows: no description, as psycopg's
        plain.execute("SET LOCAL work_mem = '8MB'")
        assert cursor.description is None and plain.description is None
        cursor.execute("SELECT 1 WHERE false")                  # no rows, but a row type
        assert len(cursor.description) == 1 and cursor.description[0].name == "?column?"
