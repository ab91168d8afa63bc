"""indexes for the inbox and the case list at scale (issue 6, part 3)

The group inbox index gains assignee_id (status, role, org_id, assignee_id, created_at), so that
"open, unclaimed, my role and organisation" is one index range in created_at order and the
inbox counts need no table rows; the case list gets indexes in its order (started_at) alone and
after its process and year filters (replacing the single-column ones on process_key and year),
and the columns its visibility rules test (cases.started_by_id, projects.competent_id and
projects.funding_id) get indexes of their own. bench/bench_inbox_scale.py measures them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('human_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_human_tasks_open_role_org')
        batch_op.create_index('ix_human_tasks_open_role_org',
                              ['status', 'role', 'org_id', 'assignee_id', 'created_at'], unique=False)
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cases_process_key'))
        batch_op.drop_index(batch_op.f('ix_cases_year'))
        batch_op.create_index('ix_cases_started', ['started_at'], unique=False)
        batch_op.create_index('ix_cases_process_started', ['process_key', 'started_at'], unique=False)
        batch_op.create_index('ix_cases_year_started', ['year', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_started_by_id'), ['started_by_id'], unique=False)
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_projects_competent_id'), ['competent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_projects_funding_id'), ['funding_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_projects_funding_id'))
        batch_op.drop_index(batch_op.f('ix_projects_competent_id'))
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cases_started_by_id'))
        batch_op.drop_index('ix_cases_year_started')
        batch_op.drop_index('ix_cases_process_started')
        batch_op.drop_index('ix_cases_started')
        batch_op.create_index(batch_op.f('ix_cases_year'), ['year'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_process_key'), ['process_key'], unique=False)
    with op.batch_alter_table('human_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_human_tasks_open_role_org')
        batch_op.create_index('ix_human_tasks_open_role_org', ['status', 'role', 'org_id', 'created_at'],
                              unique=False)
