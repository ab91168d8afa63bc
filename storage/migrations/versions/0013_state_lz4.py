"""PostgreSQL: the case state compressed with lz4 (issue 6, part 2)

Every completion writes the case's saved state (5-10 KB of JSON for a goal review, more after
return loops) and reads it back. PostgreSQL compresses a value of over 2 KB before storing it,
with pglz unless told otherwise; lz4 compresses this JSON as well (2.6 KB for a 5.6 KB state,
either way) and costs the server less CPU: an UPDATE of such a state took 0.32 instead of 0.37
ms on the 2-core benchmark machine. Values already stored stay pglz (both are read alike);
each case's next save writes lz4.

lz4 needs PostgreSQL 14 or later built with it (Debian's and the official images are): on a
server without it, or on SQLite, this migration changes nothing.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def _lz4_available() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or bind.dialect.server_version_info < (14,):
        return False
    values = bind.exec_driver_sql(
        "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'").scalar()
    return values is not None and "lz4" in values


def upgrade() -> None:
    if _lz4_available():
        op.execute("ALTER TABLE cases ALTER COLUMN state SET COMPRESSION lz4")


def downgrade() -> None:
    if _lz4_available():
        op.execute("ALTER TABLE cases ALTER COLUMN state SET COMPRESSION pglz")
