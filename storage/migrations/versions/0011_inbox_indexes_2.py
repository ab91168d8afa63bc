"""inbox and case list indexes at scale, second round (issue 6, part 3)

The group inbox gets partial indexes of the unclaimed open rows, (role, org_id, created_at, id)
for roles held in an organisation and (role, created_at, id) for bureau-wide ones (org_id
NULL): PostgreSQL's planner does not treat `IS NULL` as fixing a column, so with
ix_human_tasks_open_role_org it read and sorted the whole range (20,000 rows for the review
center) for a page of 50. "Completed cases of 2025" (status and year together) read one of
the single-filter indexes and fetched every row of the other filter's range; with
(status, year, started_at) its count reads the index alone. The organisation filter gets
(org_id, started_at), its page in the list's order. bench/bench_inbox_scale.py
measures them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

QUEUE = "status = 'open' AND assignee_id IS NULL"


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index('ix_cases_status_year_started', ['status', 'year', 'started_at'], unique=False)
        batch_op.create_index('ix_cases_org_started', ['org_id', 'started_at'], unique=False)
    with op.batch_alter_table('human_tasks', schema=None) as batch_op:
        where = QUEUE + " AND org_id IS NOT NULL"
        batch_op.create_index('ix_human_tasks_queue_org', ['role', 'org_id', 'created_at', 'id'], unique=False,
                              sqlite_where=sa.text(where), postgresql_where=sa.text(where))
        where = QUEUE + " AND org_id IS NULL"
        batch_op.create_index('ix_human_tasks_queue_bureau', ['role', 'created_at', 'id'], unique=False,
                              sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def downgrade() -> None:
    with op.batch_alter_table('human_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_human_tasks_queue_bureau')
        batch_op.drop_index('ix_human_tasks_queue_org')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_org_started')
        batch_op.drop_index('ix_cases_status_year_started')
