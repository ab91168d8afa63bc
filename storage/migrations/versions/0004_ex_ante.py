"""ex-ante evaluations

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE on both databases (SQLite >= 3.35 drops columns natively): a batch
    # rebuild of `projects` would trip the foreign keys that point at it.
    op.add_column('projects', sa.Column('ex_ante_status', sa.String(length=20), nullable=False,
                                        server_default='none'))
    op.create_table(
        'ex_ante_evaluations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=True),
        sa.Column('round', sa.Integer(), nullable=False),
        sa.Column('total', sa.Numeric(precision=6, scale=2), nullable=False),
        sa.Column('dimensions', sa.JSON(), nullable=False),
        sa.Column('conclusion', sa.String(length=20), nullable=False),
        sa.Column('site_examination', sa.JSON(), nullable=True),
        sa.Column('third_party', sa.JSON(), nullable=True),
        sa.Column('summary', sa.Text(), nullable=False),
        sa.Column('evaluated_at', sa.DateTime(), nullable=False),
        sa.Column('evaluated_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_ex_ante_evaluations_case_id_cases')),
        sa.ForeignKeyConstraint(['evaluated_by_id'], ['users.id'],
                                name=op.f('fk_ex_ante_evaluations_evaluated_by_id_users')),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id'],
                                name=op.f('fk_ex_ante_evaluations_project_id_projects')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ex_ante_evaluations')),
    )
    op.create_index(op.f('ix_ex_ante_evaluations_project_id'), 'ex_ante_evaluations', ['project_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_ex_ante_evaluations_project_id'), table_name='ex_ante_evaluations')
    op.drop_table('ex_ante_evaluations')
    op.drop_column('projects', 'ex_ante_status')
