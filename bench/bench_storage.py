"""Part 4: bytes stored per completed goal-review case, against SpiffWorkflow's default serializer.

Runs --cases complete goal-review cases (five user tasks each, non-key projects) through the
engine service, then for each completed case compares:

  state      cases.state as PerfBudget saves it (engine.serializer: the spec kept out)
  stock      the same workflow written by SpiffWorkflow's default serializer
             (engine.serializer.stock_serializer(): the whole parsed spec inside)
  audit      the case's audit_events rows (count, and the bytes of their JSON data)
  inbox      the case's human_tasks rows

and how much the database itself grew per case, per table with its indexes (SQLite: the
dbstat table; PostgreSQL: pg_total_relation_size, and pg_column_size of the state, which is
the compressed size PostgreSQL keeps).

    python bench/bench_storage.py [--cases 30] [--database-url URL]
"""
from __future__ import annotations

import argparse
import json

import common

TABLES = ("cases", "human_tasks", "audit_events", "project_goals")


def table_bytes(app) -> dict[str, int]:
    from sqlalchemy import text
    if app.db.is_sqlite:
        import sqlite3
        conn = sqlite3.connect(app.db.url.split("///", 1)[1])
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            rows = conn.execute(
                "SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_master m ON m.name = d.name "
                "GROUP BY m.tbl_name").fetchall()
        finally:
            conn.close()
        out = {name: int(size) for name, size in rows}
    else:
        out = {}
        with app.db.engine.connect() as conn:
            for table in TABLES:
                out[table] = int(conn.execute(text(f"SELECT pg_total_relation_size('{table}')")).scalar())
    return {t: out.get(t, 0) for t in TABLES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_database_args(parser)
    parser.add_argument("--cases", type=int, default=30)
    args = parser.parse_args()

    from sqlalchemy import func, select, text

    from engine.app import PerfBudget
    from engine.serializer import load_state, stock_serializer
    from storage.models import AuditEvent, Case, HumanTask

    print(f"machine: {common.machine()}")
    stock = stock_serializer()
    with common.bench_database(args.database_url) as url:
        app = PerfBudget(url)
        projects = common.add_projects(app, args.cases)
        driver = common.EngineDriver(app)
        before = table_bytes(app)
        case_ids = []
        for project in projects:
            case_id = driver.start(project[0])
            for _ in common.STEPS:
                task = driver.open_task(case_id)
                driver.complete(task, common.form(task.step, project[2]))
            case_ids.append(case_id)
        after = table_bytes(app)

        per_case = []
        with app.db.reading() as s:
            for case_id in case_ids:
                case = s.get(Case, case_id)
                assert case.status == "completed", case.status
                loaded = app.specs.get(case.process_version_id)
                workflow = load_state(case.state, loaded.model.spec, loaded.model.subprocess_specs)
                stock_json = stock.serialize_json(workflow)
                events = list(s.scalars(select(AuditEvent).where(AuditEvent.case_id == case_id)))
                audit_data = sum(len(json.dumps(e.data, separators=(",", ":")).encode()) for e in events
                                 if e.data is not None)
                inbox = s.scalar(select(func.count()).select_from(HumanTask).where(HumanTask.case_id == case_id))
                stored = None
                if not app.db.is_sqlite:
                    stored = s.scalar(text("SELECT pg_column_size(state) FROM cases WHERE id = :i"), {"i": case_id})
                compact = json.dumps(json.loads(stock_json), separators=(",", ":"))
                per_case.append({"state": len(case.state.encode()), "stock": len(stock_json.encode()),
                                 "stock_compact": len(compact.encode()),
                                 "audit_rows": len(events), "audit_bytes": audit_data, "inbox": inbox,
                                 "stored": stored, "tasks": len(workflow.get_tasks())})
        app.close()

    n = len(per_case)

    def avg(key):
        return sum(c[key] for c in per_case) / n

    state, stock_b, audit_b = avg("state"), avg("stock"), avg("audit_bytes")
    rows = [
        ["cases.state (spec kept out)", f"{state:,.0f}", f"{state / stock_b:.2f}"],
        ["stock serializer JSON, same workflow", f"{stock_b:,.0f}", "1.00"],
        ["  the same without the spaces after , and :", f"{avg('stock_compact'):,.0f}",
         f"{avg('stock_compact') / stock_b:.2f}"],
        ["audit rows: JSON data", f"{audit_b:,.0f}", f"{audit_b / stock_b:.2f}"],
        ["state + audit data", f"{state + audit_b:,.0f}", f"{(state + audit_b) / stock_b:.2f}"],
    ]
    if per_case[0]["stored"] is not None:
        stored = avg("stored")
        rows.insert(1, ["cases.state as PostgreSQL stores it (pg_column_size)", f"{stored:,.0f}",
                        f"{stored / stock_b:.2f}"])
    common.print_table(["per completed case", "bytes", "x stock"], rows,
                       title=f"Part 4: storage per completed goal-review case ({n} cases, "
                             f"{common.backend_name(url)}; {avg('tasks'):.0f} tasks in the workflow, "
                             f"{avg('audit_rows'):.0f} audit rows, {avg('inbox'):.0f} inbox rows)")
    growth = [[t, f"{(after[t] - before[t]) / n:,.0f}"] for t in TABLES]
    growth.append(["total", f"{sum(after[t] - before[t] for t in TABLES) / n:,.0f}"])
    common.print_table(["table (with indexes)", "bytes per case"], growth,
                       title="Database growth per case (pages, so rounded up)")
    verdict = "met" if state <= stock_b / 2 else "NOT met"
    print(f"\ntarget 'at most half of the stock serializer': state {state:,.0f} B vs stock {stock_b:,.0f} B "
          f"= {state / stock_b:.2f} -> {verdict}; against compact stock JSON {state / avg('stock_compact'):.2f}; "
          f"with the audit data {(state + audit_b) / stock_b:.2f}")


if __name__ == "__main__":
    main()
