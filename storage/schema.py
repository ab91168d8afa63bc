"""Create or upgrade the schema through Alembic migrations (never create_all)."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from .db import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(db: Database) -> None:
    cfg = alembic_config(db.url)
    with db.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()


def analyze(db: Database) -> None:
    """Refresh the query planner's statistics (`perfbudget analyze`). SQLite keeps none until
    ANALYZE runs (then in sqlite_stat1), and without them it may pick an index that matches
    fewer columns of a query; run it after a large import and now and then as tables grow.
    PostgreSQL's autovacuum does the same by itself; ANALYZE there only makes it happen now."""
    with db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        if db.is_sqlite:
            conn.exec_driver_sql("PRAGMA optimize")
        conn.commit()
