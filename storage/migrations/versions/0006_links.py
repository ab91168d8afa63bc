"""all five links: campaigns, monitoring records, self-assessments, problems and their
rectification, key evaluations; cases know their campaign; versions know what they call

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('cutoff_date', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('started_by_id', sa.Integer(), nullable=True),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.Column('sample_ratio', sa.Numeric(precision=5, scale=4), nullable=True),
    sa.Column('seed', sa.String(length=64), nullable=True),
    sa.Column('population', sa.JSON(), nullable=True),
    sa.Column('sampled', sa.JSON(), nullable=True),
    sa.Column('drawn_at', sa.DateTime(), nullable=True),
    sa.Column('drawn_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['drawn_by_id'], ['users.id'], name=op.f('fk_campaigns_drawn_by_id_users')),
    sa.ForeignKeyConstraint(['started_by_id'], ['users.id'], name=op.f('fk_campaigns_started_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )
    op.create_index('ix_campaigns_kind_year', 'campaigns', ['kind', 'year'], unique=False)
    op.create_table('key_evaluations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('selection_reason', sa.String(length=20), nullable=False),
    sa.Column('evaluator', sa.String(length=20), nullable=True),
    sa.Column('plan', sa.JSON(), nullable=True),
    sa.Column('scores', sa.JSON(), nullable=True),
    sa.Column('score', sa.Numeric(precision=6, scale=2), nullable=True),
    sa.Column('grade', sa.String(length=20), nullable=True),
    sa.Column('report', sa.Text(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=True),
    sa.Column('feedback', sa.Text(), nullable=False),
    sa.Column('proposed_result', sa.String(length=20), nullable=True),
    sa.Column('result', sa.String(length=20), nullable=True),
    sa.Column('result_note', sa.Text(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('reported_at', sa.DateTime(), nullable=True),
    sa.Column('applied_at', sa.DateTime(), nullable=True),
    sa.Column('applied_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['applied_by_id'], ['users.id'], name=op.f('fk_key_evaluations_applied_by_id_users')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_key_evaluations_case_id_cases')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_key_evaluations_project_id_projects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_key_evaluations')),
    sa.UniqueConstraint('case_id', name=op.f('uq_key_evaluations_case_id'))
    )
    op.create_index(op.f('ix_key_evaluations_project_id'), 'key_evaluations', ['project_id'], unique=False)
    op.create_index(op.f('ix_key_evaluations_year'), 'key_evaluations', ['year'], unique=False)
    op.create_table('monitoring_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('cutoff_date', sa.Date(), nullable=True),
    sa.Column('budget', sa.Numeric(precision=18, scale=2), nullable=True),
    sa.Column('spent', sa.Numeric(precision=18, scale=2), nullable=True),
    sa.Column('execution_rate', sa.Numeric(precision=8, scale=4), nullable=True),
    sa.Column('budget_light', sa.String(length=10), nullable=True),
    sa.Column('indicators', sa.JSON(), nullable=True),
    sa.Column('light', sa.String(length=10), nullable=True),
    sa.Column('causes', sa.JSON(), nullable=True),
    sa.Column('measures', sa.Text(), nullable=False),
    sa.Column('explanation', sa.Text(), nullable=False),
    sa.Column('key_monitoring', sa.Boolean(), nullable=False),
    sa.Column('findings', sa.Text(), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=True),
    sa.Column('reduced_amount', sa.Numeric(precision=18, scale=2), nullable=True),
    sa.Column('reported_at', sa.DateTime(), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_monitoring_records_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_monitoring_records_case_id_cases')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_monitoring_records_decided_by_id_users')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_monitoring_records_project_id_projects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitoring_records')),
    sa.UniqueConstraint('case_id', name=op.f('uq_monitoring_records_case_id'))
    )
    op.create_index(op.f('ix_monitoring_records_campaign_id'), 'monitoring_records', ['campaign_id'], unique=False)
    op.create_index(op.f('ix_monitoring_records_project_id'), 'monitoring_records', ['project_id'], unique=False)
    op.create_table('problems',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('ref', sa.String(length=40), nullable=False),
    sa.Column('origin', sa.String(length=20), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('requirement', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('deadline', sa.Date(), nullable=True),
    sa.Column('measures', sa.Text(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=True),
    sa.Column('rounds', sa.Integer(), nullable=False),
    sa.Column('check_comment', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('notified_at', sa.DateTime(), nullable=True),
    sa.Column('submitted_at', sa.DateTime(), nullable=True),
    sa.Column('rectified_at', sa.DateTime(), nullable=True),
    sa.Column('checked_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_problems_case_id_cases')),
    sa.ForeignKeyConstraint(['checked_by_id'], ['users.id'], name=op.f('fk_problems_checked_by_id_users')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_problems_project_id_projects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_problems')),
    sa.UniqueConstraint('case_id', 'ref', name='uq_problems_case_ref')
    )
    op.create_index(op.f('ix_problems_project_id'), 'problems', ['project_id'], unique=False)
    op.create_index('ix_problems_status_deadline', 'problems', ['status', 'deadline'], unique=False)
    op.create_index(op.f('ix_problems_year'), 'problems', ['year'], unique=False)
    op.create_table('self_assessments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('lines', sa.JSON(), nullable=True),
    sa.Column('score', sa.Numeric(precision=6, scale=2), nullable=True),
    sa.Column('grade', sa.String(length=20), nullable=True),
    sa.Column('submitted_at', sa.DateTime(), nullable=True),
    sa.Column('sampled', sa.Boolean(), nullable=True),
    sa.Column('review', sa.JSON(), nullable=True),
    sa.Column('review_score', sa.Numeric(precision=6, scale=2), nullable=True),
    sa.Column('gap_flag', sa.Boolean(), nullable=False),
    sa.Column('reviewed_at', sa.DateTime(), nullable=True),
    sa.Column('reviewed_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_self_assessments_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_self_assessments_case_id_cases')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_self_assessments_project_id_projects')),
    sa.ForeignKeyConstraint(['reviewed_by_id'], ['users.id'], name=op.f('fk_self_assessments_reviewed_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_self_assessments')),
    sa.UniqueConstraint('case_id', name=op.f('uq_self_assessments_case_id'))
    )
    op.create_index(op.f('ix_self_assessments_campaign_id'), 'self_assessments', ['campaign_id'], unique=False)
    op.create_index(op.f('ix_self_assessments_project_id'), 'self_assessments', ['project_id'], unique=False)
    op.create_index(op.f('ix_self_assessments_year'), 'self_assessments', ['year'], unique=False)
    op.add_column('cases', sa.Column('campaign_id', sa.Integer(), nullable=True))
    op.create_index(op.f('ix_cases_campaign_id'), 'cases', ['campaign_id'], unique=False)
    op.add_column('process_versions', sa.Column('calls', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('process_versions', 'calls')
    op.drop_index(op.f('ix_cases_campaign_id'), table_name='cases')
    op.drop_column('cases', 'campaign_id')
    op.drop_index(op.f('ix_self_assessments_year'), table_name='self_assessments')
    op.drop_index(op.f('ix_self_assessments_project_id'), table_name='self_assessments')
    op.drop_index(op.f('ix_self_assessments_campaign_id'), table_name='self_assessments')
    op.drop_table('self_assessments')
    op.drop_index(op.f('ix_problems_year'), table_name='problems')
    op.drop_index('ix_problems_status_deadline', table_name='problems')
    op.drop_index(op.f('ix_problems_project_id'), table_name='problems')
    op.drop_table('problems')
    op.drop_index(op.f('ix_monitoring_records_project_id'), table_name='monitoring_records')
    op.drop_index(op.f('ix_monitoring_records_campaign_id'), table_name='monitoring_records')
    op.drop_table('monitoring_records')
    op.drop_index(op.f('ix_key_evaluations_year'), table_name='key_evaluations')
    op.drop_index(op.f('ix_key_evaluations_project_id'), table_name='key_evaluations')
    op.drop_table('key_evaluations')
    op.drop_index('ix_campaigns_kind_year', table_name='campaigns')
    op.drop_table('campaigns')
