"""Part 3: the inbox and the case list at scale (1,000,000 inbox rows, 200,000 of them open).

Builds a database the way the other scripts do (schema, deployed models, demo organisations,
users and projects), then adds with bulk inserts (plain executemany on SQLite, COPY on
PostgreSQL; never through the workflow engine):

  organisations  --orgs in all (default 500): funding sections, competent departments and
                 budget units under them (a unit's parent is its department)
  users          --users in all (default 10,000) with role grants: unit officers (~20 per unit,
                 5 % of them in a second unit), competent department officers, funding section
                 officers, and bureau-wide review-center, performance, budget and supervisor users
  projects       --projects-per-unit per unit (default 20), years 2024-2027
  cases          one per goal-review-like run of five user tasks: running cases (one open task
                 each, at a random step, with the steps before it completed) and completed cases
                 (five completed tasks), process keys spread over the deployed models. Their
                 `state` is a placeholder ('{}'): the inbox and the case list never load it, so
                 these cases cannot be opened or worked on.
  human_tasks    --tasks rows (default 1,000,000), --open-share of them open (default 0.2):
                 compile (unit) -> competent check (competent) -> preliminary review
                 (review_center, bureau-wide) -> re-examination (performance, bureau-wide) ->
                 final review (funding). Open tasks are claimed (assignee set) with probability
                 0.2 for case-scoped roles and 0.5 for bureau-wide ones.

Then, for a sample of users of each kind (unit officer, competent department officer, funding
section officer, review-center officer, supervisor), it times the app's read paths with --calls
calls each (rotating over --sample users of the kind):

  inbox page     what GET /inbox and the navigation badge run: ReadService.inbox(actor, 'mine',
                 50) + .inbox(actor, 'group', 50) + .inbox_count(actor)
  inbox all      ReadService.inbox(actor, 'all', 50) (GET /api/v1/tasks)
  inbox count    ReadService.inbox_count(actor)
  cases ...      ReadService.cases(actor, **filters), first page of 50 with its total, for no
                 filter, status, process, year, organisation and status + year

and prints p50 / p95 / max in ms, then the query plans (SQLite: EXPLAIN QUERY PLAN; PostgreSQL:
EXPLAIN ANALYZE) of the statements one call sends, captured with a before_cursor_execute
listener.

    python bench/bench_inbox_scale.py [--tasks 1000000] [--calls 200] [--database-url URL]
    python bench/bench_inbox_scale.py --tasks 100000 --calls 50          # a quick run
"""
from __future__ import annotations

import argparse
import random
import time
from datetime import datetime, timedelta

import common

STEPS = [  # step, name, role (None org: bureau-wide)
    ("compile_goals", "Compile performance goals", "unit"),
    ("competent_check", "Competent department check", "competent"),
    ("preliminary_review", "Preliminary review", "review_center"),
    ("re_examination", "Re-examination", "performance"),
    ("final_review", "Final review", "funding"),
]
BUREAU = ("review_center", "performance")
KINDS = ["unit", "competent", "funding", "review_center", "supervisor"]
KIND_NAMES = {"unit": "unit officer", "competent": "competent dept officer", "funding": "funding section officer",
              "review_center": "review-center officer", "supervisor": "supervisor (sees all)"}
START = datetime(2024, 1, 1, 8, 0)
END = datetime(2026, 11, 27, 18, 0)


# ---- bulk loading ------------------------------------------------------------------------------

class Loader:
    """Inserts rows fast: sqlite3 executemany on its own connection, or psycopg COPY."""

    def __init__(self, db):
        self.sqlite = db.is_sqlite
        if self.sqlite:
            import sqlite3
            self.conn = sqlite3.connect(db.url.split("///", 1)[1], isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=OFF")
            self.conn.execute("PRAGMA cache_size=-1000000")   # 1 GB page cache for the index builds
            self.conn.execute("BEGIN")
        else:
            self.raw = db.engine.raw_connection()
            self.conn = self.raw.driver_connection

    def insert(self, table: str, columns: list[str], rows, batch: int = 50_000) -> int:
        n = 0
        if self.sqlite:
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            chunk = []
            for row in rows:
                chunk.append(tuple(_sqlite_value(v) for v in row))
                if len(chunk) >= batch:
                    self.conn.executemany(sql, chunk)
                    n += len(chunk)
                    chunk = []
            if chunk:
                self.conn.executemany(sql, chunk)
                n += len(chunk)
            return n
        with self.conn.cursor() as cur:
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    n += 1
        return n

    def finish(self, tables: list[str]) -> None:
        if self.sqlite:
            self.conn.execute("COMMIT")
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.close()
            return
        with self.conn.cursor() as cur:
            for table in tables:
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT max(id) FROM {table}))")
        self.conn.commit()
        self.raw.close()


def _sqlite_value(v):
    # The text SQLAlchemy's SQLite dialect stores for DateTime and Boolean columns.
    if isinstance(v, datetime):
        return v.isoformat(sep=" ", timespec="microseconds")
    if isinstance(v, bool):
        return int(v)
    return v


def max_id(conn, table: str) -> int:
    from sqlalchemy import text
    return conn.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar()


def generate(app, args) -> dict:
    """Add the organisations, users, projects, cases and inbox rows; return what the sample needs."""
    from sqlalchemy import text
    rng = random.Random(args.seed)
    with app.db.engine.connect() as conn:
        ids = {t: max_id(conn, t) for t in ("organisations", "users", "role_grants", "projects", "cases",
                                            "human_tasks")}
        finance = conn.execute(text("SELECT id FROM organisations WHERE code = 'finance'")).scalar()
        center = conn.execute(text("SELECT id FROM organisations WHERE code = 'review_center'")).scalar()
        perf = conn.execute(text("SELECT id FROM organisations WHERE code = 'perf_section'")).scalar()
        budget = conn.execute(text("SELECT id FROM organisations WHERE code = 'budget_section'")).scalar()
        versions = list(conn.execute(text(
            "SELECT key, max(id) FROM process_versions GROUP BY key ORDER BY key")))
    existing_orgs = ids["organisations"]
    new_orgs = max(args.orgs - existing_orgs, 30)
    n_sections = max(2, new_orgs // 25)
    n_departments = max(3, new_orgs // 8)
    n_units = new_orgs - n_sections - n_departments
    loader = Loader(app.db)
    t0 = time.perf_counter()

    # organisations
    next_id = ids["organisations"]
    orgs = []
    sections, departments, units = [], [], []
    for i in range(n_sections):
        next_id += 1
        sections.append(next_id)
        orgs.append((next_id, f"S-SEC-{i:03d}", f"Funding Section {i}", "section", finance))
    for i in range(n_departments):
        next_id += 1
        departments.append(next_id)
        orgs.append((next_id, f"S-DEP-{i:03d}", f"Department {i}", "department", None))
    unit_parent = {}
    for i in range(n_units):
        next_id += 1
        units.append(next_id)
        unit_parent[next_id] = departments[i % n_departments]
        orgs.append((next_id, f"S-UNIT-{i:04d}", f"Budget Unit {i}", "unit", unit_parent[next_id]))
    dept_section = {d: sections[i % n_sections] for i, d in enumerate(departments)}
    org_code = {o[0]: o[1] for o in orgs}
    loader.insert("organisations", ["id", "code", "name", "kind", "parent_id"], orgs)

    # users and role grants
    new_users = max(args.users - ids["users"], 100)
    bureau_counts = {"review_center": max(2, new_users * 15 // 1000), "performance": max(2, new_users // 100),
                     "budget": max(1, new_users * 4 // 1000), "supervisor": max(1, new_users * 2 // 1000)}
    bureau_org = {"review_center": center, "performance": perf, "budget": budget, "supervisor": finance}
    n_funding = max(n_sections, new_users * 4 // 100)
    n_competent = max(n_departments, new_users * 9 // 100)
    n_unit = new_users - sum(bureau_counts.values()) - n_funding - n_competent
    uid = ids["users"]
    users, grants = [], []
    holders: dict[tuple[str, int | None], list[int]] = {}
    by_kind: dict[str, list[int]] = {k: [] for k in KINDS}

    def add_user(kind: str, orgs_held: list[int]):
        nonlocal uid
        uid += 1
        users.append((uid, f"s_{kind}_{uid}", f"Scale {kind} user {uid}", "!", True, START))
        for org in orgs_held:
            grants.append((len(grants) + 1 + ids["role_grants"], uid, kind, org))
            holders.setdefault((kind, None if kind in bureau_org else org), []).append(uid)
        if kind in by_kind:
            by_kind[kind].append(uid)
        return uid

    for kind, count in bureau_counts.items():
        for _ in range(count):
            add_user(kind, [bureau_org[kind]])
    for i in range(n_funding):
        add_user("funding", [sections[i % n_sections]])
    for i in range(n_competent):
        add_user("competent", [departments[i % n_departments]])
    for i in range(n_unit):
        held = [units[i % n_units]]
        if rng.random() < 0.05:
            held.append(rng.choice(units))
        add_user("unit", list(dict.fromkeys(held)))
    loader.insert("users", ["id", "username", "display_name", "password_hash", "active", "created_at"], users)
    loader.insert("role_grants", ["id", "user_id", "role", "org_id"], grants)

    # projects
    pid = ids["projects"]
    projects = []
    project_rows = []
    for unit in units:
        for j in range(args.projects_per_unit):
            pid += 1
            year = 2024 + j % 4
            competent = unit_parent[unit]
            funding = dept_section[competent]
            projects.append((pid, unit, competent, funding, year))
            project_rows.append((pid, f"S-P-{pid}", f"Scale project {pid}", year, unit, competent, funding,
                                 "Scale", False, False, 100000, "{}", "approved", "support"))
    loader.insert("projects", ["id", "code", "name", "year", "unit_id", "competent_id", "funding_id", "category",
                               "is_new", "is_key", "amount", "funding_sources", "goals_status", "ex_ante_status"],
                  project_rows)
    unit_users = {}
    for (kind, org), who in holders.items():
        if kind == "unit":
            unit_users[org] = who

    # cases and tasks
    n_open = int(args.tasks * args.open_share)
    open_steps = [rng.randrange(5) for _ in range(n_open)]
    remaining = args.tasks - n_open - sum(open_steps)
    if remaining < 0:
        raise SystemExit("--open-share too high for five-step cases")
    n_done_cases = remaining // 5
    extra = remaining % 5
    kinds_of_case = [None] * n_done_cases + open_steps + ([-extra] if extra else [])
    rng.shuffle(kinds_of_case)   # open and completed cases interleaved in time
    n_cases = len(kinds_of_case)
    span = (END - START).total_seconds()
    weights = [8 if key == "goal_review" else 1 for key, _ in versions]
    case_rows, task_rows = [], []
    cid, tid = ids["cases"], ids["human_tasks"]
    def pick(role, org):
        who = holders.get((role, None if role in BUREAU else org))
        return rng.choice(who) if who else None

    for i, kind in enumerate(kinds_of_case):
        cid += 1
        p, unit, competent, funding, year = projects[rng.randrange(len(projects))]
        key, version_id = rng.choices(versions, weights)[0]
        started = START + timedelta(seconds=span * (i + rng.random()) / n_cases)
        starter = rng.choice(unit_users.get(unit) or [None])
        if kind is None:           # completed: five completed tasks
            done, open_step, status = 5, None, "completed"
        elif kind < 0:             # the odd remainder: a cancelled case with -kind completed tasks
            done, open_step, status = -kind, None, "cancelled"
        else:
            done, open_step, status = kind, kind, "running"
        at = started
        org_of = {"unit": unit, "competent": competent, "funding": funding}
        for k in range(done):
            step, name, role = STEPS[k]
            org = org_of.get(role)
            by = pick(role, org)
            tid += 1
            finished = at + timedelta(hours=rng.randint(1, 72))
            task_rows.append((tid, cid, f"00000000-0000-4000-8000-{tid:012x}", step, name,
                              f"{name}: Scale project {p}", role, org, by, "completed", at, None, finished, by))
            at = finished
        current = ""
        if open_step is not None:
            step, name, role = STEPS[open_step]
            org = org_of.get(role)
            claimed = rng.random() < (0.5 if role in BUREAU else 0.2)
            tid += 1
            task_rows.append((tid, cid, f"00000000-0000-4000-8000-{tid:012x}", step, name,
                              f"{name}: Scale project {p}", role, org, pick(role, org) if claimed else None,
                              "open", at, at + timedelta(days=10), None, None))
            current = name
        case_rows.append((cid, version_id, key, p, unit, year, f"Scale case {cid} of project {p}", status, 1,
                          "{}", current, starter, started, at, at if status != "running" else None))
        if len(task_rows) >= 200_000:
            _flush(loader, case_rows, task_rows)
    _flush(loader, case_rows, task_rows)
    loader.finish(["organisations", "users", "role_grants", "projects", "cases", "human_tasks"])
    elapsed = time.perf_counter() - t0
    t1 = time.perf_counter()
    if app.db.is_sqlite:
        if not args.no_sqlite_analyze:
            _sqlite_analyze(app)
    else:
        import psycopg
        url = app.db.url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
    return {"users": by_kind, "units": units, "unit_code": org_code, "orgs_total": existing_orgs + len(orgs),
            "users_total": ids["users"] + len(users), "grants": len(grants), "projects": len(projects),
            "cases": n_cases, "tasks": tid - ids["human_tasks"], "open": n_open, "load_s": elapsed,
            "analyze_s": time.perf_counter() - t1, "versions": [k for k, _ in versions], "seed": rng}


def _flush(loader, case_rows, task_rows):
    loader.insert("cases", ["id", "process_version_id", "process_key", "project_id", "org_id", "year", "title",
                            "status", "lock_version", "state", "current_steps", "started_by_id", "started_at",
                            "updated_at", "completed_at"], case_rows)
    loader.insert("human_tasks", ["id", "case_id", "spiff_task_id", "step", "name", "title", "role", "org_id",
                                  "assignee_id", "status", "created_at", "due_at", "completed_at",
                                  "completed_by_id"], task_rows)
    case_rows.clear()
    task_rows.clear()


def info_from_db(app, args) -> dict:
    """What generate() returns, read back from a database it made earlier."""
    from sqlalchemy import text
    with app.db.read_engine.connect() as conn:
        units = list(conn.execute(text("SELECT id, code FROM organisations WHERE code LIKE 'S-UNIT-%' ORDER BY id")))
        names = list(conn.execute(text("SELECT id, username FROM users WHERE username LIKE 's_%' ORDER BY id")))
    by_kind = {k: [i for i, name in names if name.startswith(f"s_{k}_")] for k in KINDS}
    return {"users": by_kind, "units": [u for u, _ in units], "unit_code": dict(units), "orgs_total": "-",
            "users_total": "-", "grants": "-", "projects": "-", "cases": "-", "tasks": "-", "open": "-",
            "load_s": 0.0, "analyze_s": 0.0, "seed": random.Random(args.seed)}


import contextlib  # noqa: E402


def _sqlite_analyze(app) -> None:
    """Statistics for SQLite's planner, as `perfbudget analyze` gathers them."""
    from storage.schema import analyze
    analyze(app.db)
    # SQLite reads the statistics when a connection loads the schema: pooled connections
    # opened before ANALYZE would plan with the old ones (or none, for new indexes).
    app.db.dispose()


@contextlib.contextmanager
def _database(args):
    if args.existing:
        yield args.existing
        return
    url = args.database_url
    if args.keep and common.backend_name(url or "sqlite") == "postgresql":
        import uuid
        from sqlalchemy import create_engine, text
        name = f"pbbench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        target = f"{url.rpartition('/')[0]}/{name}"
        common._build(target)
        print(f"kept database: {target}")
        yield target
        return
    with common.bench_database(url) as target:
        yield target


# ---- measuring ---------------------------------------------------------------------------------

def actors(app, user_ids):
    from sqlalchemy import select
    from engine.accounts import actor_of
    from storage import queries
    from storage.models import User
    out = []
    with app.db.reading() as s:
        for u in s.scalars(select(User).where(User.id.in_(user_ids)).order_by(User.id)):
            out.append(actor_of(u, queries.grants_of(s, u.id)))
    return out


def timed(fn, sample, calls: int, cpu: list | None = None) -> list[float]:
    """Wall ms of each call; with `cpu`, also this thread's CPU ms (on a busy machine the wall
    time includes waiting for a core, the CPU time does not; PostgreSQL's own work is in
    neither but its EXPLAIN ANALYZE times below)."""
    out = []
    for i in range(calls):
        actor = sample[i % len(sample)]
        t, c = time.perf_counter(), time.thread_time()
        fn(actor)
        out.append((time.perf_counter() - t) * 1000)
        if cpu is not None:
            cpu.append((time.thread_time() - c) * 1000)
    return out


class Capture:
    """Statements and parameters sent during one call (before_cursor_execute)."""

    def __init__(self, db):
        self.engine = db.read_engine
        self.statements = []

    def _on(self, conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            self.statements.append((statement, parameters))

    def __enter__(self):
        from sqlalchemy import event
        event.listen(self.engine, "before_cursor_execute", self._on)
        return self

    def __exit__(self, *exc):
        from sqlalchemy import event
        event.remove(self.engine, "before_cursor_execute", self._on)


def _short(statement: str) -> str:
    """The statement without its long select list."""
    import re
    text = " ".join(statement.split())
    text = re.sub(r"^SELECT (?!count).*? FROM ", "SELECT ... FROM ", text, count=1)
    return text


def explain(app, statement, parameters) -> list[str]:
    with app.db.read_engine.connect() as conn:
        if app.db.is_sqlite:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
            depth = {0: 0}
            lines = []
            for node, parent, _, detail in rows:
                depth[node] = depth.get(parent, 0) + 1
                lines.append("  " * depth[node] + detail)
            return lines
        rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, COSTS OFF) " + statement, parameters).fetchall()
        return ["  " + r[0] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_database_args(parser)
    parser.add_argument("--tasks", type=int, default=1_000_000, help="inbox rows (human_tasks) to make")
    parser.add_argument("--open-share", type=float, default=0.2, help="share of them open (default 0.2)")
    parser.add_argument("--users", type=int, default=10_000, help="users in all (default 10,000)")
    parser.add_argument("--orgs", type=int, default=500, help="organisations in all (default 500)")
    parser.add_argument("--projects-per-unit", type=int, default=20)
    parser.add_argument("--calls", type=int, default=200, help="timed calls per user kind and query")
    parser.add_argument("--sample", type=int, default=10, help="users of each kind the calls rotate over")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--no-sqlite-analyze", action="store_true",
                        help="do not run ANALYZE on SQLite after loading (as `perfbudget analyze` would; "
                             "PostgreSQL's VACUUM ANALYZE always runs, as autovacuum would)")
    parser.add_argument("--sqlite-analyze", action="store_true",
                        help="with --existing: run ANALYZE on the SQLite file before measuring")
    parser.add_argument("--no-plans", action="store_true", help="do not print the query plans")
    parser.add_argument("--existing", metavar="URL",
                        help="measure a database this script generated before (kept with "
                             "--database-url sqlite:///PATH or --keep): no build, no generation")
    parser.add_argument("--keep", action="store_true",
                        help="PostgreSQL: keep the pbbench_* database (its URL is printed) instead of dropping it")
    args = parser.parse_args()

    from sqlalchemy import text

    from engine.app import PerfBudget

    print(f"machine: {common.machine()}; {common.load_average()}")
    t0 = time.perf_counter()
    with _database(args) as url:
        backend = common.backend_name(url)
        app = PerfBudget(url)
        if args.existing:
            app.init_schema()   # a database kept from an older checkout: bring it to this schema
            info = info_from_db(app, args)
            print(f"database: {backend}, existing ({url.rpartition('@')[2]})")
            if backend == "sqlite" and args.sqlite_analyze:
                t1 = time.perf_counter()
                _sqlite_analyze(app)
                info["analyze_s"] = time.perf_counter() - t1
        else:
            print(f"database: {backend}; schema and demo data in {time.perf_counter() - t0:.1f} s")
            info = generate(app, args)
        print(f"generated in {info['load_s']:.1f} s ({'ANALYZE' if backend == 'sqlite' else 'VACUUM ANALYZE'} "
              f"{info['analyze_s']:.1f} s): {info['orgs_total']} organisations, {info['users_total']} users "
              f"({info['grants']} new role grants), {info['projects']} projects, {info['cases']} cases, "
              f"{info['tasks']} inbox rows ({info['open']} open); {common.load_average()}")
        with app.db.read_engine.connect() as conn:
            counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                      for t in ("organisations", "users", "cases", "human_tasks")}
            open_rows = conn.execute(text("SELECT count(*) FROM human_tasks WHERE status = 'open'")).scalar()
        print("in the database: " + ", ".join(f"{t} {n}" for t, n in counts.items()) + f", open tasks {open_rows}")

        rng = info["seed"]
        samples = {k: actors(app, rng.sample(info["users"][k], min(args.sample, len(info["users"][k]))))
                   for k in KINDS}
        reads = app.reads
        unit_codes = [info["unit_code"][u] for u in info["units"]]

        def own_unit(actor):
            units = [o for r, o in actor.grants if r == "unit"]
            return info["unit_code"].get(units[0]) if units else unit_codes[actor.id % len(unit_codes)]

        inbox_queries = {
            "inbox page (mine+group+counts)": lambda a: reads.inbox_page(a, 50),
            "inbox all, first 50 + total": lambda a: reads.inbox(a, "all", 50),
            "inbox count": lambda a: reads.inbox_count(a),
        }
        case_queries = {
            "cases, no filter": lambda a: reads.cases(a),
            "cases status=running": lambda a: reads.cases(a, status="running"),
            "cases process=goal_review": lambda a: reads.cases(a, process="goal_review"),
            "cases year=2026": lambda a: reads.cases(a, year=2026),
            "cases org=<a unit>": lambda a: reads.cases(a, org=own_unit(a)),
            "cases completed in 2025": lambda a: reads.cases(a, status="completed", year=2025),
        }
        # Warm up: caches, statement compilation, the database's pages.
        for kind in KINDS:
            for fn in list(inbox_queries.values()) + list(case_queries.values()):
                timed(fn, samples[kind], len(samples[kind]))
        sizes = {}
        for kind in KINDS:
            a = samples[kind][0]
            sizes[kind] = (reads.inbox(a, "mine", 0)[1], reads.inbox(a, "group", 0)[1], reads.cases(a, limit=1)[1])
        print("\nwhat the first sampled user of each kind sees: open tasks assigned to them / in their groups "
              "/ visible cases")
        for kind in KINDS:
            print(f"  {KIND_NAMES[kind]:26} {sizes[kind][0]:>7} / {sizes[kind][1]:>7} / {sizes[kind][2]:>7}")

        rows = []
        t_measure = time.perf_counter()
        for name, fn in list(inbox_queries.items()) + list(case_queries.items()):
            for kind in KINDS:
                cpu = []
                ms = timed(fn, samples[kind], args.calls, cpu)
                rows.append([name, KIND_NAMES[kind], common.median(ms), common.percentile(ms, 95), max(ms),
                             common.median(cpu), common.percentile(cpu, 95)])
        print(f"\nmeasured in {time.perf_counter() - t_measure:.0f} s; {common.load_average()}")
        common.print_table(["query", "user", "p50 ms", "p95 ms", "max ms", "CPU p50", "CPU p95"], rows,
                           title=f"{backend}, {args.calls} calls per row over {args.sample} users of the kind "
                                 f"(targets: inbox page p95 <= 20 ms, case list p95 <= 50 ms)")
        worst = {}
        for name, _, _, p95, *_ in rows:
            group = "inbox" if name.startswith("inbox") else "cases"
            worst[group] = max(worst.get(group, 0), p95)
        print(f"\nworst p95: inbox {worst['inbox']:.1f} ms (target 20), case list {worst['cases']:.1f} ms (target 50)")

        if not args.no_plans:
            shown = {}
            plan_calls = [("inbox page", lambda a: reads.inbox_page(a, 50)),
                          ("inbox all", lambda a: reads.inbox(a, "all", 50)),
                          ("cases status=running", case_queries["cases status=running"]),
                          ("cases, no filter", case_queries["cases, no filter"]),
                          ("cases completed in 2025", case_queries["cases completed in 2025"]),
                          ("cases org=<a unit>", case_queries["cases org=<a unit>"])]
            print(f"\nquery plans ({'EXPLAIN QUERY PLAN' if backend == 'sqlite' else 'EXPLAIN ANALYZE'}) "
                  "of the SELECTs one call sends; a plan printed before is referred to by number")
            for label, fn in plan_calls:
                for kind in KINDS:
                    with Capture(app.db) as cap:
                        fn(samples[kind][0])
                    for i, (statement, params) in enumerate(cap.statements):
                        what = "count" if statement.lstrip().upper().startswith("SELECT COUNT") else "page"
                        print(f"\n-- {label}, {KIND_NAMES[kind]}: {what}")
                        print("   " + _short(statement))
                        plan = explain(app, statement, params)
                        key = "\n".join(line for line in plan if "actual time" not in line
                                        and not line.strip().startswith(("Planning", "Execution", "Heap", "Rows")))
                        if backend == "postgresql":
                            print("\n".join(plan))
                        elif key in shown:
                            print(f"   plan: as #{shown[key]}")
                        else:
                            shown[key] = len(shown) + 1
                            print(f"   plan #{shown[key]}:")
                            print("\n".join(plan))
        app.close()
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
