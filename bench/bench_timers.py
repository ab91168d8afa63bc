"""Part 6: due timers handled by 1 and by 2 worker processes.

Builds a database the way the other scripts do, deploys the timer test model
(tests/models/timer_demo: 'Prepare the material' -> a two-day timer -> a review with a five-day
boundary timer), and runs one case through the engine up to its two-day timer. That case's row
is the template: for each run the script copies it --timers times (plain INSERTs of the same
state, next_due_at and project; no engine work), so that every copy is a case waiting on the
same timer, due once the clock passes it.

Then, for each worker count (--workers, default 1 and 2), it starts that many worker processes
(`python bench/bench_timers.py worker URL NOW`: engine.worker.TimerWorker on a FixedClock one
minute after the due moment, passes of run_once() until a pass finds nothing to fire, which is
what `perfbudget worker` does without its sleeps), and while they run it counts once a second
the cases whose timer has fired (status no longer due), which gives the throughput per second.

At the end it checks every copy:
  fired once   exactly one 'timer' audit row and one 'review' inbox row for the case
  double fire  more than one 'timer' audit row or more than one 'review' row (must be 0)
  lost         no 'timer' audit row, or the case still due (must be 0)
and prints what each worker reported (fired, skipped because another worker had the case,
failed, passes, CPU seconds).

    python bench/bench_timers.py [--timers 10000] [--workers 1 --workers 2] [--database-url URL]
    python bench/bench_timers.py --timers 1000        # a quick run
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import common

MODEL_DIR = common.REPO / "tests" / "models" / "timer_demo"
START = datetime(2027, 3, 1, 8, 0)
NOW = START + timedelta(days=2, minutes=1)      # the two-day timer is due (passed) at this moment


# ---- the worker process ------------------------------------------------------------------------

def _worker_main(argv: list[str]) -> None:
    """One worker process: passes of TimerWorker.run_once() until nothing is left to fire."""
    from engine.app import PerfBudget
    from engine.clock import FixedClock
    from engine.worker import TimerWorker

    url, now, batch = argv[0], datetime.fromisoformat(argv[1]), int(argv[2])
    core = PerfBudget(url, clock=FixedClock(now))
    worker = TimerWorker(core, batch=batch)
    fired_at: list[float] = []
    run_case = worker._run_case

    def timed_run_case(case_id, result):          # when each of this worker's fires committed
        before = len(result.fired)
        run_case(case_id, result)
        if len(result.fired) > before:
            fired_at.append(time.time())

    worker._run_case = timed_run_case
    totals = {"fired": 0, "skipped": 0, "failed": 0, "passes": 0}
    t0 = time.process_time()
    while True:
        result = worker.run_once()
        totals["passes"] += 1
        totals["fired"] += len(result.fired)
        totals["skipped"] += len(result.skipped)
        totals["failed"] += len(result.failed)
        if not result.fired:
            break
    totals["cpu_s"] = time.process_time() - t0
    totals["first"], totals["last"] = (fired_at[0], fired_at[-1]) if fired_at else (None, None)
    core.close()
    print(json.dumps(totals), flush=True)


# ---- setting up --------------------------------------------------------------------------------

def template_case(app) -> int:
    """One timer_demo case through the engine, waiting on its two-day timer."""
    from sqlalchemy import select
    from engine.accounts import actor_of
    from storage import queries
    from storage.models import HumanTask, User

    app.processes.deploy_folder(MODEL_DIR)
    with app.db.reading() as s:
        user = s.scalars(select(User).where(User.username == "perf1")).one()
        perf1 = actor_of(user, queries.grants_of(s, user.id))
        project = queries.project_by_code(s, "EDU-2027-001")
    case = app.cases.start(perf1, "timer_demo", project.id)
    with app.db.reading() as s:
        task = s.scalars(select(HumanTask).where(HumanTask.case_id == case.id, HumanTask.status == "open")).one()
    app.cases.complete(perf1, task.id, {})
    return case.id


def template_row(app, case_id: int) -> dict:
    """The template case's row; the case itself is then cancelled, so that no worker fires it."""
    from sqlalchemy import select, update
    from storage.models import Case
    table = Case.__table__
    with app.db.transaction() as s:
        row = dict(s.execute(select(table).where(table.c.id == case_id)).mappings().one())
        s.execute(update(table).where(table.c.id == case_id).values(status="cancelled", next_due_at=None))
    return row


def copy_case(app, row: dict, n: int) -> list[int]:
    """n new cases with the template's row (its state: waiting on the same timer)."""
    from sqlalchemy import func, insert, select
    from storage.models import Case

    table = Case.__table__
    with app.db.transaction() as s:
        first = (s.scalar(select(func.max(table.c.id))) or 0) + 1
        ids = list(range(first, first + n))
        for i in range(0, n, 2000):
            s.execute(insert(table), [{**row, "id": j, "title": f"Timer case {j}"} for j in ids[i:i + 2000]])
    if not app.db.is_sqlite:
        with app.db.transaction() as s:
            s.execute(select(func.setval(func.pg_get_serial_sequence("cases", "id"), ids[-1])))
    return ids


def fired_count(app, ids: list[int]) -> int:
    """Cases among ids that are not due any more (their timer fired)."""
    from sqlalchemy import func, or_, select
    from storage.models import Case
    with app.db.reading() as s:
        return s.scalar(select(func.count()).select_from(Case).where(
            Case.id.between(ids[0], ids[-1]), or_(Case.next_due_at.is_(None), Case.next_due_at >= NOW))) or 0


def check(app, ids: list[int]) -> dict:
    from sqlalchemy import func, select
    from storage.models import AuditEvent, Case, HumanTask
    lo, hi = ids[0], ids[-1]
    with app.db.reading() as s:
        timers = dict(s.execute(select(AuditEvent.case_id, func.count()).where(
            AuditEvent.action == "timer", AuditEvent.case_id.between(lo, hi)).group_by(AuditEvent.case_id)).all())
        reviews = dict(s.execute(select(HumanTask.case_id, func.count()).where(
            HumanTask.step == "review", HumanTask.case_id.between(lo, hi)).group_by(HumanTask.case_id)).all())
        still_due = s.scalar(select(func.count()).select_from(Case).where(
            Case.id.between(lo, hi), Case.status == "running", Case.next_due_at < NOW)) or 0
        errored = s.scalar(select(func.count()).select_from(Case).where(
            Case.id.between(lo, hi), Case.status == "error")) or 0
    return {
        "fired once": sum(1 for i in ids if timers.get(i) == 1 and reviews.get(i) == 1),
        "double fires": sum(1 for i in ids if timers.get(i, 0) > 1 or reviews.get(i, 0) > 1),
        "lost": max(sum(1 for i in ids if i not in timers), still_due),
        "errored": errored,
    }


# ---- one run -------------------------------------------------------------------------------------

def run(app, url: str, template: dict, n: int, workers: int, batch: int) -> dict:
    ids = copy_case(app, template, n)
    env = {**os.environ, "PYTHONPATH": str(common.REPO)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "worker", url, NOW.isoformat(), str(batch)]
    print(f"\n{workers} worker process(es), {n} due timers (cases {ids[0]}-{ids[-1]}); {common.load_average()}")
    t0 = time.time()
    procs = [subprocess.Popen(cmd, cwd=common.REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(workers)]
    per_second, last = [], 0
    while any(p.poll() is None for p in procs):
        time.sleep(1.0 - (time.time() - t0) % 1.0)
        done = fired_count(app, ids)
        per_second.append(done - last)
        last = done
        print(f"  {len(per_second):4d} s: {done - (sum(per_second[:-1])):5d} fired, {done:6d} in all", flush=True)
    elapsed = time.time() - t0
    reports = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            print(err[-3000:])
            raise SystemExit(f"a worker failed (exit {p.returncode})")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    result = check(app, ids)
    busy = [r for r in reports if r["first"] is not None]
    span = (max(r["last"] for r in busy) - min(r["first"] for r in busy)) if busy else 0.0
    steady = sorted(per_second[1:-1]) or per_second
    result.update({"workers": workers, "timers": n, "wall_s": elapsed, "span_s": span,
                   "per_s": n / span if span else float("nan"),
                   "median_per_s": common.median(steady), "reports": reports,
                   "load": common.load_average()})
    print(f"  done in {elapsed:.1f} s ({result['per_s']:.1f} timers/s from the first fire to the last); "
          f"{result['load']}")
    for i, r in enumerate(reports, 1):
        print(f"  worker {i}: fired {r['fired']}, skipped {r['skipped']} (held or fired by the other), "
              f"failed {r['failed']}, {r['passes']} passes, CPU {r['cpu_s']:.1f} s")
    print(f"  check: fired once {result['fired once']}, double fires {result['double fires']}, "
          f"lost {result['lost']}, errored {result['errored']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_database_args(parser)
    parser.add_argument("--timers", type=int, default=10_000, help="due timers (cases) per run")
    parser.add_argument("--workers", type=int, action="append", help="worker processes; repeat (default 1 and 2)")
    parser.add_argument("--batch", type=int, default=200, help="the worker's page size (TimerWorker batch)")
    args = parser.parse_args()
    counts = args.workers or [1, 2]

    from engine.app import PerfBudget
    from engine.clock import FixedClock

    print(f"machine: {common.machine()}; {common.load_average()}")
    with common.bench_database(args.database_url) as url:
        backend = common.backend_name(url)
        app = PerfBudget(url, clock=FixedClock(START))
        case_id = template_case(app)
        template = template_row(app, case_id)
        print(f"database: {backend}; template case {case_id} waits on its timer until {START + timedelta(days=2)}, "
              f"workers run at {NOW}")
        results = [run(app, url, template, args.timers, w, args.batch) for w in counts]
        app.close()
    common.print_table(
        ["workers", "timers", "timers/s", "median per second", "wall s", "double fires", "lost", "skipped",
         "worker CPU s"],
        [[r["workers"], r["timers"], r["per_s"], r["median_per_s"], r["wall_s"], r["double fires"], r["lost"],
          sum(w["skipped"] for w in r["reports"]), sum(w["cpu_s"] for w in r["reports"])] for r in results],
        title=f"{backend}: due timers fired by worker processes (timers/s: from the first fire to the last)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        _worker_main(sys.argv[2:])
    else:
        main()
