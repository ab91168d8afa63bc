"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 17:37:55.215638
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('organisations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['parent_id'], ['organisations.id'], name=op.f('fk_organisations_parent_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organisations')),
    sa.UniqueConstraint('code', name=op.f('uq_organisations_code'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=80), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('process_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('primary_file', sa.String(length=200), nullable=False),
    sa.Column('primary_process_id', sa.String(length=200), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('deployed_by_id', sa.Integer(), nullable=True),
    sa.Column('deployed_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['deployed_by_id'], ['users.id'], name=op.f('fk_process_versions_deployed_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_process_versions')),
    sa.UniqueConstraint('key', 'version', name='uq_process_versions_key_version')
    )
    with op.batch_alter_table('process_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_process_versions_key'), ['key'], unique=False)

    op.create_table('projects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('competent_id', sa.Integer(), nullable=False),
    sa.Column('funding_id', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=100), nullable=False),
    sa.Column('is_new', sa.Boolean(), nullable=False),
    sa.Column('is_key', sa.Boolean(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=18, scale=2), nullable=False),
    sa.Column('funding_sources', sa.JSON(), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=True),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('goals_status', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['competent_id'], ['organisations.id'], name=op.f('fk_projects_competent_id_organisations')),
    sa.ForeignKeyConstraint(['funding_id'], ['organisations.id'], name=op.f('fk_projects_funding_id_organisations')),
    sa.ForeignKeyConstraint(['unit_id'], ['organisations.id'], name=op.f('fk_projects_unit_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_projects')),
    sa.UniqueConstraint('code', name=op.f('uq_projects_code'))
    )
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_projects_unit_id'), ['unit_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_projects_year'), ['year'], unique=False)

    op.create_table('role_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_role_grants_org_id_organisations')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_role_grants_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_role_grants')),
    sa.UniqueConstraint('user_id', 'role', 'org_id', name='uq_role_grants_user_role_org')
    )
    op.create_table('cases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('process_version_id', sa.Integer(), nullable=False),
    sa.Column('process_key', sa.String(length=100), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=True),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=True),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('lock_version', sa.Integer(), nullable=False),
    sa.Column('state', sa.Text(), nullable=False),
    sa.Column('current_steps', sa.String(length=500), nullable=False),
    sa.Column('next_due_at', sa.DateTime(), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('started_by_id', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_cases_org_id_organisations')),
    sa.ForeignKeyConstraint(['process_version_id'], ['process_versions.id'], name=op.f('fk_cases_process_version_id_process_versions')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_cases_project_id_projects')),
    sa.ForeignKeyConstraint(['started_by_id'], ['users.id'], name=op.f('fk_cases_started_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cases'))
    )
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cases_next_due_at'), ['next_due_at'], unique=False)
        batch_op.create_index('ix_cases_org_status', ['org_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_process_key'), ['process_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_project_id'), ['project_id'], unique=False)
        batch_op.create_index('ix_cases_status_started', ['status', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_year'), ['year'], unique=False)

    op.create_table('process_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['process_versions.id'], name=op.f('fk_process_files_version_id_process_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_process_files')),
    sa.UniqueConstraint('version_id', 'name', name='uq_process_files_version_name')
    )
    with op.batch_alter_table('process_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_process_files_version_id'), ['version_id'], unique=False)

    op.create_table('human_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('spiff_task_id', sa.String(length=36), nullable=False),
    sa.Column('step', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('title', sa.String(length=400), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=True),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('due_at', sa.DateTime(), nullable=True),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.Column('completed_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], name=op.f('fk_human_tasks_assignee_id_users')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_human_tasks_case_id_cases')),
    sa.ForeignKeyConstraint(['completed_by_id'], ['users.id'], name=op.f('fk_human_tasks_completed_by_id_users')),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_human_tasks_org_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_human_tasks'))
    )
    with op.batch_alter_table('human_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_human_tasks_assignee_status', ['assignee_id', 'status', 'created_at'], unique=False)
        batch_op.create_index('ix_human_tasks_case_status', ['case_id', 'status'], unique=False)
        batch_op.create_index('ix_human_tasks_open_role_org', ['status', 'role', 'org_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_human_tasks_spiff_task_id'), ['spiff_task_id'], unique=False)

    op.create_table('project_goals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('goals', sa.JSON(), nullable=False),
    sa.Column('approved_at', sa.DateTime(), nullable=False),
    sa.Column('approved_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['approved_by_id'], ['users.id'], name=op.f('fk_project_goals_approved_by_id_users')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_project_goals_case_id_cases')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_project_goals_project_id_projects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_project_goals')),
    sa.UniqueConstraint('project_id', 'version', name='uq_project_goals_project_version')
    )
    with op.batch_alter_table('project_goals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_project_goals_project_id'), ['project_id'], unique=False)

    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('human_task_id', sa.Integer(), nullable=True),
    sa.Column('task_name', sa.String(length=200), nullable=True),
    sa.Column('step', sa.String(length=200), nullable=True),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_audit_events_actor_id_users')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_audit_events_case_id_cases')),
    sa.ForeignKeyConstraint(['human_task_id'], ['human_tasks.id'], name=op.f('fk_audit_events_human_task_id_human_tasks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_case_at', ['case_id', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_case_at')

    op.drop_table('audit_events')
    with op.batch_alter_table('project_goals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_goals_project_id'))

    op.drop_table('project_goals')
    with op.batch_alter_table('human_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_human_tasks_spiff_task_id'))
        batch_op.drop_index('ix_human_tasks_open_role_org')
        batch_op.drop_index('ix_human_tasks_case_status')
        batch_op.drop_index('ix_human_tasks_assignee_status')

    op.drop_table('human_tasks')
    with op.batch_alter_table('process_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_process_files_version_id'))

    op.drop_table('process_files')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cases_year'))
        batch_op.drop_index('ix_cases_status_started')
        batch_op.drop_index(batch_op.f('ix_cases_project_id'))
        batch_op.drop_index(batch_op.f('ix_cases_process_key'))
        batch_op.drop_index('ix_cases_org_status')
        batch_op.drop_index(batch_op.f('ix_cases_next_due_at'))

    op.drop_table('cases')
    op.drop_table('role_grants')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_projects_year'))
        batch_op.drop_index(batch_op.f('ix_projects_unit_id'))

    op.drop_table('projects')
    with op.batch_alter_table('process_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_process_versions_key'))

    op.drop_table('process_versions')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))

    op.drop_table('api_tokens')
    op.drop_table('users')
    op.drop_table('organisations')
