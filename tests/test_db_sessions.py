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
