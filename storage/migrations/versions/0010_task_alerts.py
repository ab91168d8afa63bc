"""reminders and escalations of inbox rows (issue 4)

Each human task keeps the alerts still to come (`alerts`, JSON) and the earliest moment in the
indexed `alert_at`, which the timer worker searches; `escalated_at` and `escalated_to` record
an escalation for the inbox, the case page and the lists.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('human_tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('alerts', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('alert_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('escalated_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('escalated_to', sa.String(length=32), nullable=True))
        batch_op.create_index('ix_human_tasks_alert_at', ['alert_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('human_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_human_tasks_alert_at')
        batch_op.drop_column('escalated_to')
        batch_op.drop_column('escalated_at')
        batch_op.drop_column('alert_at')
        batch_op.drop_column('alerts')
