"""Part 7: resident memory of one server process as completed cases pile up.

Starts one gunicorn worker (gthread, 8 threads, like `perfbudget serve`) and runs --cases
complete goal-review cases through the JSON API with --clients client threads, sampling the
worker's resident set size (VmRSS) after the warm-up and every --sample-every cases.
Target: under 200 MB after 10,000 cases, and no longer growing.

The default is the target's 10,000 cases, which takes a while (about 1,000 cases a minute
per 15 cases/s of throughput; see bench_throughput.py); `--cases 600 --sample-every 100`
is a quick look.

    python bench/bench_memory.py [--cases 10000] [--sample-every 1000] [--clients 2]
        [--database-url URL]
"""
from __future__ import annotations

import argparse
import threading
import time

import common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_database_args(parser)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--sample-every", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    from engine.app import PerfBudget

    print(f"machine: {common.machine()}; {common.load_average()}")
    with common.bench_database(args.database_url) as url:
        app = PerfBudget(url)
        # one fresh project per case (see ProjectPool), made before the server starts
        projects = common.ProjectPool(common.add_projects(app, args.cases + args.clients))
        app.close()
        with common.Server(url, workers=1, threads=args.threads) as server:
            worker = server.worker_pids()[0]
            samples = [("server started", 0, common.rss_kb(worker), 0.0)]
            runners = [common.ApiCaseRunner(server.port) for _ in range(args.clients)]
            for runner in runners:       # warm-up: one case per client
                project = projects.take()
                runner.run_case(project[1], project[2])
            samples.append(("after warm-up", 0, common.rss_kb(worker), 0.0))
            lock = threading.Lock()
            counter = [0]     # cases handed out
            done = [0]        # cases finished
            next_sample = [args.sample_every]
            errors = []
            start = time.perf_counter()

            def client(i):
                runner = runners[i]
                while True:
                    with lock:
                        if counter[0] >= args.cases:
                            return
                        counter[0] += 1     # reserve one case
                    project = projects.take()
                    try:
                        runner.run_case(project[1], project[2])
                    except Exception as exc:
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])
                        runner.http.close()
                    with lock:
                        done[0] += 1
                        if done[0] >= next_sample[0]:
                            samples.append(("", done[0], common.rss_kb(worker), time.perf_counter() - start))
                            print(f"  {done[0]:>6} cases  RSS {samples[-1][2] / 1024:6.1f} MB  "
                                  f"{done[0] / (time.perf_counter() - start):5.1f} cases/s", flush=True)
                            next_sample[0] += args.sample_every

            threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if samples[-1][1] != done[0]:
                samples.append(("end", done[0], common.rss_kb(worker), time.perf_counter() - start))
            for runner in runners:
                runner.close()
            alive = worker in server.worker_pids()

    rows, prev = [], None
    for label, n, kb, elapsed in samples:
        rows.append([label or f"{n} cases", n, kb / 1024, "" if prev is None else f"{(kb - prev) / 1024:+.1f}",
                     f"{elapsed:.0f}"])
        prev = kb
    common.print_table(["when", "cases", "RSS MB", "change MB", "seconds"], rows,
                       title=f"Part 7: resident memory of one gunicorn worker ({common.backend_name(url)}, "
                             f"{args.clients} clients)")
    if errors:
        print(f"{len(errors)} failed cases, e.g. {errors[0]}")
    if not alive:
        print("the worker was restarted during the run: the samples are not one process")
    final = samples[-1][2] / 1024
    measured = [s for s in samples if s[1] > 0]
    half = [s for s in measured if s[1] >= measured[-1][1] / 2] if measured else []
    growth = (half[-1][2] - half[0][2]) / 1024 if len(half) >= 2 else float("nan")
    span = half[-1][1] - half[0][1] if len(half) >= 2 else 0
    flat = growth == growth and growth <= 0.02 * final + 2      # within 2% + 2 MB over the second half
    verdict = ("not measured: cases failed" if errors else "met" if final < 200 and flat else "NOT met")
    print(f"\ntarget 'under 200 MB after {done[0]} cases and no longer growing': {final:.1f} MB; second half "
          f"({span} cases) {growth:+.1f} MB -> {verdict}")


if __name__ == "__main__":
    main()
