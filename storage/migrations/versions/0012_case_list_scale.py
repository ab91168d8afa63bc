"""case list at scale: covering indexes for visibility, trigger-kept case counts (issue 6, part 3)

Covering indexes. A scoped user sees the cases they started, their unit's, and those of the
projects their department or section oversees: an OR over started_by_id, org_id and
project_id. SQLite collected the matching rowids from one index per branch and then read
every row for started_at (the list's order) and the filter columns: 18,000 row reads, 45-75 ms,
for a funding section officer's page, and PostgreSQL did the same for the count. The list now
reads three disjoint branches (storage.queries.case_visibility_branches); with started_at, the
filters and the columns that keep the branches apart in those three indexes, each branch's page
and count read its index alone (SQLite 5-7 ms instead of 45-75). They replace the
single-column indexes on started_by_id and project_id, whose lookups they also serve.

case_counts. The exact total of a list of all cases counted 200,000 index entries for
"running": 40-80 ms on PostgreSQL. The triggers below keep one row per process, status, year
and organisation in the same transaction as every INSERT, DELETE and UPDATE of those columns
of `cases`, so the total of any combination of those filters is a sum of a few hundred rows.
The table is filled from the existing cases here.

Note for later migrations: SQLite's batch mode rebuilds a table by copying it, which drops its
triggers; a migration that rebuilds `cases` must create them again (create_triggers()).
tests/test_case_counts.py checks the counts after the whole chain of migrations.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

LIST = ['started_at', 'status', 'process_key', 'year']
KEY = "process_key, status, year, org_id"
WATCHED = ("OLD.status IS NOT NEW.status OR OLD.process_key IS NOT NEW.process_key "
           "OR OLD.year IS NOT NEW.year OR OLD.org_id IS NOT NEW.org_id")


def _add(row: str, delta: str) -> str:
    return (f"INSERT INTO case_counts ({KEY}, n) VALUES ({row}.process_key, {row}.status, "
            f"COALESCE({row}.year, 0), {row}.org_id, {delta}) "
            f"ON CONFLICT ({KEY}) DO UPDATE SET n = case_counts.n + {delta};")


SQLITE_TRIGGERS = [
    f"CREATE TRIGGER tr_case_counts_insert AFTER INSERT ON cases BEGIN {_add('NEW', '1')} END",
    f"CREATE TRIGGER tr_case_counts_delete AFTER DELETE ON cases BEGIN {_add('OLD', '-1')} END",
    f"CREATE TRIGGER tr_case_counts_update AFTER UPDATE OF {KEY} ON cases WHEN {WATCHED} "
    f"BEGIN {_add('OLD', '-1')} {_add('NEW', '1')} END",
]
POSTGRESQL_TRIGGERS = [
    # OR REPLACE: restoring an older backup (storage.backup) drops and recreates the tables
    # but leaves this function behind, and the upgrade that follows runs this again.
    f"""CREATE OR REPLACE FUNCTION case_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN {_add('OLD', '-1')} END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN {_add('NEW', '1')} END IF;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER tr_case_counts AFTER INSERT OR DELETE ON cases "
    "FOR EACH ROW EXECUTE FUNCTION case_counts_track()",
    f"CREATE TRIGGER tr_case_counts_update AFTER UPDATE OF {KEY} ON cases FOR EACH ROW "
    f"WHEN ({WATCHED.replace('IS NOT', 'IS DISTINCT FROM')}) EXECUTE FUNCTION case_counts_track()",
]


def create_triggers() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_TRIGGERS if sqlite else POSTGRESQL_TRIGGERS:
        op.execute(statement)


def drop_triggers() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS tr_case_counts_{name}")
    else:
        op.execute("DROP TRIGGER IF EXISTS tr_case_counts_update ON cases")
        op.execute("DROP TRIGGER IF EXISTS tr_case_counts ON cases")
        op.execute("DROP FUNCTION IF EXISTS case_counts_track()")


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_org_started')
        batch_op.drop_index('ix_cases_started_by_id')
        batch_op.drop_index('ix_cases_project_id')
        batch_op.create_index('ix_cases_org_started', ['org_id', *LIST, 'started_by_id'], unique=False)
        batch_op.create_index('ix_cases_started_by_started', ['started_by_id', *LIST], unique=False)
        batch_op.create_index('ix_cases_project_started', ['project_id', *LIST, 'started_by_id', 'org_id'],
                              unique=False)
    op.create_table(
        'case_counts',
        sa.Column('process_key', sa.String(length=100), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('year', sa.Integer(), nullable=False),
        sa.Column('org_id', sa.Integer(), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('process_key', 'status', 'year', 'org_id', name=op.f('pk_case_counts')),
    )
    op.execute(f"INSERT INTO case_counts ({KEY}, n) SELECT process_key, status, COALESCE(year, 0), org_id, "
               f"count(*) FROM cases GROUP BY process_key, status, COALESCE(year, 0), org_id")
    create_triggers()


def downgrade() -> None:
    drop_triggers()
    op.drop_table('case_counts')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_project_started')
        batch_op.drop_index('ix_cases_started_by_started')
        batch_op.drop_index('ix_cases_org_started')
        batch_op.create_index('ix_cases_project_id', ['project_id'], unique=False)
        batch_op.create_index('ix_cases_started_by_id', ['started_by_id'], unique=False)
        batch_op.create_index('ix_cases_org_started', ['org_id', 'started_at'], unique=False)
