"""Part 2: whole goal-review cases per second through the JSON API of a real server.

For each database and each number of gunicorn workers, a server is started the way
`perfbudget serve` runs (gunicorn, gthread, 8 threads per worker, access log on; each worker
builds the app after the fork) on a free 127.0.0.1 port. Then 1 and 4 client threads, each on
its own keep-alive connection and its own project, run complete cases as the demo users for a
fixed time: POST /cases, then five POST /tasks/{id}/complete (compile, competent check,
preliminary review, re-examination, final review), each task id taken from the previous answer.
With --read-tasks each task is also fetched (GET /tasks/{id}) before it is completed, as a
form page would.

The clients run on the same machine as the server (and the database), so they take CPU from it.
A shared machine's speed drifts by several per cent from one minute to the next: with --rounds N
every configuration runs N times, round after round (so a slow spell hits them all alike), and
the verdict is given on each configuration's median as well as on the best run.

    python bench/bench_throughput.py [--seconds 6] [--clients 1,4] [--workers 1,2] [--rounds 1]
        [--database-url sqlite] [--database-url postgresql+psycopg://...] [--read-tasks]
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import threading
import time

import common

# SpiffWorkflow's own web application: about 170 ms for a 5-task case over HTTP.
REFERENCE_CASE_SECONDS = 0.170


def run_config(url: str, workers: int, clients: int, seconds: float, projects, read_tasks: bool,
               threads: int, active: int, freeze: bool = True) -> dict:
    with common.Server(url, workers=workers, threads=threads, active=active, freeze=freeze) as server:
        runners = [common.ApiCaseRunner(server.port, read_tasks=read_tasks) for _ in range(clients)]
        # one case per client before the clock starts (connections, every worker's first requests)
        for runner in runners:
            project = projects.take()
            runner.run_case(project[1], project[2])
        for runner in runners:
            runner.http.timings = []
            runner.requests = 0
        done = [0] * clients
        case_times: list[float] = []
        errors: list[str] = []
        barrier = threading.Barrier(clients + 1)
        stop_at = [0.0]
        ended = [0.0] * clients

        def client(i):
            runner = runners[i]
            barrier.wait()
            while time.perf_counter() < stop_at[0]:
                # A fresh project per case: once a goal review of a project has finished, the
                # next one is an in-year adjustment (another form, a reason required).
                project = projects.take()
                t = time.perf_counter()
                try:
                    runner.run_case(project[1], project[2])
                except Exception as exc:        # report, do not hide: a failed case is not counted
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    runner.http.close()
                    continue
                case_times.append(time.perf_counter() - t)
                done[i] += 1
            ended[i] = time.perf_counter()

        pool = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for th in pool:
            th.start()
        server_cpu = common.CpuMeter(lambda: server.worker_pids()).start()
        db_cpu = common.CpuMeter(lambda: common.pg_backend_pids(url)).start()
        client_cpu = time.process_time()
        start = time.perf_counter()
        stop_at[0] = start + seconds
        barrier.wait()
        for th in pool:
            th.join()
        elapsed = max(ended) - start
        cpu = {"server": server_cpu.stop(), "db": db_cpu.stop(), "client": (time.process_time() - client_cpu) * 1000}
        # Each keep-alive connection stays with the worker that accepted it, and which one that
        # is, is up to the kernel: with 4 clients on 2 workers, 3 + 1 or 4 + 0 happen, and then
        # one process (one core, by the GIL) does most of the work. The split shows it.
        split = sorted(server_cpu.by_pid.values(), reverse=True)
        total = sum(split) or 1.0
        for runner in runners:
            runner.close()
        timings = [t for r in runners for t in r.http.timings]
        return {"cases": sum(done), "elapsed": elapsed, "cases_s": sum(done) / elapsed,
                "requests_s": sum(r.requests for r in runners) / elapsed,
                "case_ms": common.median(case_times) * 1000,
                "req_ms": common.median(timings) * 1000, "req_p95": common.percentile(timings, 95) * 1000,
                "cpu_case": {k: v / max(1, sum(done)) for k, v in cpu.items()}, "errors": errors,
                "cpu_split": "/".join(f"{100 * ms / total:.0f}" for ms in split)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_database_args(parser, multiple=True)
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per configuration")
    parser.add_argument("--clients", default="1,4", help="comma-separated client counts")
    parser.add_argument("--workers", default="1,2", help="comma-separated gunicorn worker counts")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (perfbudget serve: 8)")
    parser.add_argument("--active", default="1",
                        help="comma-separated requests running at once per worker (perfbudget serve --active: 1; "
                             "0 = no limit, every thread at once)")
    parser.add_argument("--freeze", default="1",
                        help="comma-separated 1/0: the startup heap frozen out of the garbage collector's "
                             "reach (perfbudget serve: 1) or not, for an A/B in one run")
    parser.add_argument("--read-tasks", action="store_true", help="GET each task before completing it")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of every configuration, one round after another; the verdict "
                             "is also given on each configuration's median")
    parser.add_argument("--projects", type=int, default=None,
                        help="projects created up front (one per case; default 3000 per round, "
                             "enough for every row)")
    args = parser.parse_args()
    urls = args.database_url or ["sqlite"]
    clients = [int(c) for c in args.clients.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    actives = [int(a) for a in args.active.split(",")]
    freezes = [bool(int(f)) for f in args.freeze.split(",")]

    print(f"machine: {common.machine()}; {common.load_average()}")
    target = 10 / REFERENCE_CASE_SECONDS
    rows, best = [], 0.0
    runs: dict[tuple, list[float]] = {}      # configuration -> cases/s of each round
    from engine.app import PerfBudget
    for url in urls:
        with common.bench_database(url) as db_url:
            app = PerfBudget(db_url)
            projects = common.ProjectPool(common.add_projects(app, args.projects or 3000 * args.rounds))
            app.close()
            configurations = list(itertools.product(workers, clients, actives, freezes))
            for _round, (w, c, a, f) in itertools.product(range(args.rounds), configurations):
                r = run_config(db_url, w, c, args.seconds, projects, args.read_tasks, args.threads, a, f)
                best = max(best, r["cases_s"])
                runs.setdefault((common.backend_name(db_url), w, c, a or "any", "yes" if f else "no"), []).append(
                    r["cases_s"])
                rows.append([common.backend_name(db_url), w, c, a or "any", "yes" if f else "no", r["cases"], r["cases_s"], r["requests_s"],
                             r["case_ms"], r["req_ms"], r["req_p95"], r["cpu_case"]["server"],
                             r["cpu_case"]["db"] if not db_url.startswith("sqlite") else "-",
                             r["cpu_case"]["client"], r["cpu_split"],
                             f"{r['cases_s'] * REFERENCE_CASE_SECONDS:.1f}x",
                             len(r["errors"])])
                print(f"  {rows[-1][0]} workers={w} clients={c} active={a or 'any'} freeze={int(f)}: "
                      f"{r['cases_s']:.1f} cases/s", flush=True)
                for e in r["errors"][:3]:
                    print(f"    error: {e}")
    per_case = 6 + (5 if args.read_tasks else 0)
    common.print_table(
        ["database", "workers", "clients", "active", "frozen", "cases", "cases/s", "req/s", "case ms (med)", "req ms (med)",
         "req ms (p95)", "CPU/case app", "CPU/case PG", "CPU/case client", "app CPU % by worker", "x SpiffArena",
         "errors"], rows,
        title=f"Part 2: whole goal-review cases over HTTP ({per_case} requests per case, "
              f"{args.seconds:g} s per row)")
    print("CPU/case: CPU ms per completed case used by the gunicorn workers, by PostgreSQL's backends for\n"
          "this database, and by the client threads; with 2 cores, 2000 / (their sum) is a ceiling on cases/s.\n"
          "app CPU % by worker: each worker's share of the app CPU, busiest first (a keep-alive connection stays\n"
          "with the worker that accepted it; an uneven split leaves one process, i.e. one core, doing most of it).\n"
          f"active: requests running at once per worker (perfbudget serve --active; 'any' = all {args.threads} threads).\n"
          "frozen: the objects alive after start-up frozen out of the garbage collector's reach (perfbudget serve: yes).")
    print(common.load_average())
    print(f"\nreference: SpiffWorkflow's own web app ~{REFERENCE_CASE_SECONDS * 1000:.0f} ms per 5-task case "
          f"= {1 / REFERENCE_CASE_SECONDS:.1f} cases/s; target 10x = {target:.0f} cases/s")
    print(f"best here: {best:.1f} cases/s -> {'met' if best >= target else 'NOT met'} "
          f"({best * REFERENCE_CASE_SECONDS:.1f}x the reference)")
    if args.rounds > 1:
        medians = [(statistics.median(values), config, values) for config, values in runs.items()]
        common.print_table(
            ["database", "workers", "clients", "active", "frozen", "cases/s of each round", "median", "x SpiffArena",
             f"rounds >= {target:.0f}"],
            [[*config, ", ".join(f"{v:.1f}" for v in values), round(median, 1),
              f"{median * REFERENCE_CASE_SECONDS:.1f}x", f"{sum(v >= target for v in values)} of {len(values)}"]
             for median, config, values in medians],
            title=f"Medians over {args.rounds} rounds")
        top, config, values = max(medians)
        print(f"best median: {top:.1f} cases/s ({config[0]}, workers={config[1]}, clients={config[2]}) -> "
              f"{'met' if top >= target else 'NOT met'} ({top * REFERENCE_CASE_SECONDS:.1f}x the reference; "
              f"{sum(v >= target for v in values)} of {len(values)} rounds at or over the target)")


if __name__ == "__main__":
    main()
