"""goal history: each approved goals version says whether it is the initial one or an
in-year adjustment, and why it was adjusted

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE, as in 0004: a batch rebuild would trip the foreign keys.
    op.add_column('project_goals', sa.Column('kind', sa.String(length=20), nullable=False,
                                             server_default='initial'))
    op.add_column('project_goals', sa.Column('reason', sa.Text(), nullable=True))
    # Versions approved before this revision: every one after the first changed goals in force.
    op.execute("UPDATE project_goals SET kind = 'adjustment' WHERE version > 1")


def downgrade() -> None:
    op.drop_column('project_goals', 'reason')
    op.drop_column('project_goals', 'kind')
