"""Part 1: the cost of one task completion, from the raw SpiffWorkflow step to a real HTTP request.

In one run, on the same five goal-review steps (compile, competent check, preliminary review,
re-examination, final review of a non-key project), measured in interleaved rounds so that a
change in background load hits every method alike:

  raw, spec kept out     load the saved state with the cached spec (engine.serializer), complete
                         the user task, run the engine, save the state; plain Python script engine
  raw, stock serializer  the same with SpiffWorkflow's default serializer (spec in every state)
  raw + sandbox          the spec-less raw step with the app's RestrictedPython script engine
  CaseService.complete   the engine service: permission check, rows, effects, audit, commit
  Flask test client      POST /api/v1/tasks/{id}/complete through the WSGI app (token auth,
                         JSON in and out, the answer's read model), no network
  HTTP (gunicorn)        the same request to a real gunicorn server (gthread, 1 worker, like
                         `perfbudget serve`) over a keep-alive http.client connection

Prints milliseconds per completion and the ratio to the raw step; with --profile, also where
the time of CaseService.complete and of the test-client request goes (cProfile by package)
and the SQL statements of one completion.

    python bench/bench_step.py [--cases 20] [--raw-reps 20] [--database-url URL] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import time
from uuid import UUID

import common


def noop(*_args, **_kwargs):
    return None


def plain_script_engine():
    from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment
    from engine.cases import EFFECT_HANDLERS   # the domain functions a diagram may call
    return PythonScriptEngine(environment=TaskDataEnvironment({name: noop for name in EFFECT_HANDLERS}))


class RawSteps:
    """The five steps of one case as saved states, to be replayed by the raw engine."""

    def __init__(self, app, driver, project):
        from engine.serializer import load_state
        from engine.serializer import stock_serializer
        from storage.models import Case
        self.stock = stock_serializer()
        case_id = driver.start(project[0])
        self.steps = []     # (specless state, stock state, spiff task id, form data)
        for _ in common.STEPS:
            task = driver.open_task(case_id)
            with app.db.reading() as s:
                case = s.get(Case, case_id)
                state, version_id = case.state, case.process_version_id
            loaded = app.specs.get(version_id)
            self.spec, self.subs = loaded.model.spec, loaded.model.subprocess_specs
            workflow = load_state(state, self.spec, self.subs)
            data = common.form(task.step, project[2])
            self.steps.append((state, self.stock.serialize_json(workflow), UUID(task.spiff_task_id), data))
            driver.complete(task, data)
        self.engine = plain_script_engine()

    def _finish(self, workflow, task_id, data):
        from SpiffWorkflow.util.task import TaskState
        task = workflow.get_task_from_id(task_id)
        assert task.state == TaskState.READY
        task.data.update(data)
        task.run()
        workflow.do_engine_steps()

    def specless(self, i):
        from engine.serializer import dump_state, load_state
        state, _stock, task_id, data = self.steps[i]
        t, c = time.perf_counter(), time.thread_time()
        workflow = load_state(state, self.spec, self.subs)
        workflow.script_engine = self.engine
        self._finish(workflow, task_id, data)
        dump_state(workflow)
        return time.perf_counter() - t, time.thread_time() - c

    def stock_step(self, i):
        _state, stock, task_id, data = self.steps[i]
        t, c = time.perf_counter(), time.thread_time()
        workflow = self.stock.deserialize_json(stock)
        workflow.script_engine = self.engine
        self._finish(workflow, task_id, data)
        self.stock.serialize_json(workflow)
        return time.perf_counter() - t, time.thread_time() - c

    def sandboxed(self, i, cases):
        from engine.serializer import dump_state, load_state
        state, _stock, task_id, data = self.steps[i]
        t, c = time.perf_counter(), time.thread_time()
        workflow = load_state(state, self.spec, self.subs)
        cases._attach_engine(workflow)
        self._finish(workflow, task_id, data)
        dump_state(workflow)
        return time.perf_counter() - t, time.thread_time() - c


def run(args) -> None:
    from engine.app import PerfBudget
    from webui import create_app

    print(f"machine: {common.machine()}; {common.load_average()}")
    with common.bench_database(args.database_url) as url:
        print(f"database: {common.backend_name(url)}")
        app = PerfBudget(url)
        app.specs.warm()
        projects = common.add_projects(app, 3 * args.cases + 4 + (2 * args.profile_cases if args.profile else 0))
        driver = common.EngineDriver(app)
        raw = RawSteps(app, driver, projects.pop())
        flask_app = create_app({"TESTING": True, "DATABASE_URL": url}, perfbudget=app)
        client = flask_app.test_client()
        tokens = {}
        for user in common.USERS:
            r = client.post("/api/v1/tokens", json={"username": user, "password": common.PASSWORD})
            tokens[user] = r.get_json()["token"]

        times = {k: [] for k in ("raw", "stock", "sandbox", "service", "testclient", "http")}
        queries = {"service": [], "testclient": []}

        def service_case(project, count_queries):
            case_id = driver.start(project[0])
            for _ in common.STEPS:
                task = driver.open_task(case_id)
                data = common.form(task.step, project[2])
                with common.QueryCounter(app.db) as qc:
                    t, c = time.perf_counter(), time.thread_time()
                    driver.complete(task, data)
                    times["service"].append((time.perf_counter() - t, time.thread_time() - c))
                if count_queries:
                    queries["service"].append(qc.count)

        def testclient_case(project, count_queries):
            r = client.post("/api/v1/cases", json={"process": "goal_review", "project": project[1]},
                            headers={"Authorization": f"Bearer {tokens['school_unit']}"})
            tasks = r.get_json()["tasks"]
            while tasks:
                task = tasks[0]
                headers = {"Authorization": f"Bearer {tokens[common.STEP_USERS[task['step']]]}"}
                body = {"data": common.form(task["step"], project[2])}
                with common.QueryCounter(app.db) as qc:
                    t, c = time.perf_counter(), time.thread_time()
                    r = client.post(f"/api/v1/tasks/{task['id']}/complete", json=body, headers=headers)
                    times["testclient"].append((time.perf_counter() - t, time.thread_time() - c))
                assert r.status_code == 200, r.get_json()
                if count_queries:
                    queries["testclient"].append(qc.count)
                tasks = r.get_json()["next_tasks"]

        with common.Server(url, workers=1, threads=8) as server:
            http = common.HttpClient(server.port)
            worker = server.worker_pids()[0]
            http_tokens = {u: http.login(u) for u in common.USERS}

            def http_case(project):
                case = http.request("POST", "/api/v1/cases", {"process": "goal_review", "project": project[1]},
                                    token=http_tokens["school_unit"])
                tasks = case["tasks"]
                while tasks:
                    task = tasks[0]
                    body = {"data": common.form(task["step"], project[2])}
                    token = http_tokens[common.STEP_USERS[task["step"]]]
                    c = common.cpu_ns(worker)
                    t = time.perf_counter()
                    answer = http.request("POST", f"/api/v1/tasks/{task['id']}/complete", body, token=token)
                    wall = time.perf_counter() - t
                    times["http"].append((wall, (common.cpu_ns(worker) - c) / 1e9))
                    tasks = answer["next_tasks"]

            # one warm-up case per app path (first-use costs: compiled SQL cache, sandbox, ...)
            service_case(projects.pop(), False)
            testclient_case(projects.pop(), False)
            http_case(projects.pop())
            for key in ("service", "testclient", "http"):
                times[key].clear()
            for _ in range(3):
                for i in range(len(raw.steps)):
                    raw.specless(i), raw.stock_step(i), raw.sandboxed(i, app.cases)

            gc.collect()
            for round_no in range(args.cases):
                for _ in range(max(1, args.raw_reps // args.cases)):
                    for i in range(len(raw.steps)):
                        times["raw"].append(raw.specless(i))
                        times["stock"].append(raw.stock_step(i))
                        times["sandbox"].append(raw.sandboxed(i, app.cases))
                service_case(projects.pop(), round_no == 0)
                testclient_case(projects.pop(), round_no == 0)
                http_case(projects.pop())
            http.close()

        labels = [("raw", "raw step, spec kept out"), ("stock", "raw step, stock serializer"),
                  ("sandbox", "raw step + app sandbox"), ("service", "CaseService.complete"),
                  ("testclient", "Flask test client POST"), ("http", "HTTP POST (gunicorn, keep-alive)")]
        wall = {k: [w * 1000 for w, _c in v] for k, v in times.items()}
        cpu = {k: [c * 1000 for _w, c in v] for k, v in times.items()}
        base, base_cpu = common.median(wall["raw"]), common.median(cpu["raw"])
        rows = []
        for key, label in labels:
            med, med_cpu = common.median(wall[key]), common.median(cpu[key])
            q = f"{sum(queries[key]) / len(queries[key]):.1f}" if queries.get(key) else ""
            rows.append([label, len(wall[key]), med, common.percentile(wall[key], 90), f"{med / base:.1f}x",
                         med_cpu, f"{med_cpu / base_cpu:.1f}x", q])
        common.print_table(["path", "n", "wall ms (med)", "wall p90", "x raw", "CPU ms (med)", "CPU x raw",
                            "SQL/compl."], rows,
                           title="Part 1: one task completion (5 goal-review steps, interleaved rounds)")
        print("CPU = this thread's CPU time (in-process paths) or the gunicorn worker's CPU time (HTTP);\n"
              "it leaves out time waiting for other processes, so it is steadier than wall time on a busy\n"
              "machine. PostgreSQL's own CPU is not in it.")
        http_med = common.median(wall["http"])
        stock_med = common.median(wall["stock"])
        print(f"\nraw step: spec kept out {base:.2f} ms vs stock serializer {stock_med:.2f} ms "
              f"({stock_med / base:.1f}x)")
        verdict = "met" if http_med <= 3 * base else "NOT met"
        print(f"target 'HTTP completion <= 3x raw step': {http_med:.2f} ms = {http_med / base:.1f}x raw "
              f"(CPU: {common.median(cpu['http']) / base_cpu:.1f}x) -> {verdict}")
        print(f"reference: SpiffWorkflow's own web app ~44 ms per form over HTTP; here {http_med:.1f} ms "
              f"({44 / http_med:.1f}x faster)")
        if queries["service"]:
            print(f"SQL statements per completion (incl. BEGIN): service {queries['service']}, "
                  f"API request {queries['testclient']}  (steps {', '.join(common.STEPS)})")
        print(common.load_average())

        if args.profile:
            profile(app, driver, client, tokens, projects, args.profile_cases)
        app.close()


# ---- profiling -----------------------------------------------------------------------------

CATEGORIES = [
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("DB driver", ("sqlite3", "psycopg", "_sqlite")),
    ("SpiffWorkflow", ("SpiffWorkflow/",)),
    ("RestrictedPython sandbox", ("RestrictedPython/", "engine/scripting.py", "ast.py", "compile")),
    ("jsonschema", ("jsonschema/", "referencing/", "rpds", "jsonschema_specifications/")),
    ("json / uuid / copy", ("json/", "uuid.py", "copy.py", "_json")),
    ("Flask / Werkzeug / Jinja", ("flask/", "werkzeug/", "jinja2/", "flask_login/", "flask_wtf/")),
    ("PerfBudget code", ("/engine/", "/storage/", "/webui/")),
]


def categorize(stats: pstats.Stats) -> list[tuple[str, float]]:
    totals: dict[str, float] = {}
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        key = filename + " " + name
        label = "other (stdlib, builtins)"
        for cat, needles in CATEGORIES:
            if any(n in key for n in needles):
                label = cat
                break
        totals[label] = totals.get(label, 0.0) + tottime
    return sorted(totals.items(), key=lambda kv: -kv[1])


def profile(app, driver, client, tokens, projects, n_cases) -> None:
    import io
    prof_service, prof_client = cProfile.Profile(), cProfile.Profile()
    n_service = n_client = 0
    statements = None
    for k in range(n_cases):
        project = projects.pop()
        case_id = driver.start(project[0])
        for _ in common.STEPS:
            task = driver.open_task(case_id)
            data = common.form(task.step, project[2])
            prof_service.enable()
            driver.complete(task, data)
            prof_service.disable()
            n_service += 1
        project = projects.pop()
        r = client.post("/api/v1/cases", json={"process": "goal_review", "project": project[1]},
                        headers={"Authorization": f"Bearer {tokens['school_unit']}"})
        tasks = r.get_json()["tasks"]
        while tasks:
            task = tasks[0]
            headers = {"Authorization": f"Bearer {tokens[common.STEP_USERS[task['step']]]}"}
            body = {"data": common.form(task["step"], project[2])}
            keep = k == 0 and task["step"] == "competent_check"
            with common.QueryCounter(app.db, keep=keep) as qc:
                prof_client.enable()
                r = client.post(f"/api/v1/tasks/{task['id']}/complete", json=body, headers=headers)
                prof_client.disable()
            if keep:
                statements = qc.statements
            n_client += 1
            tasks = r.get_json()["next_tasks"]

    for title, prof, n in (("CaseService.complete", prof_service, n_service),
                           ("API request POST /tasks/{id}/complete (test client)", prof_client, n_client)):
        stats = pstats.Stats(prof, stream=io.StringIO())
        total = sum(v for _k, v in categorize(stats))
        rows = [[cat, sec / n * 1000, f"{100 * sec / total:.0f}%"] for cat, sec in categorize(stats)]
        common.print_table(["where (own time)", "ms per completion", "share"], rows,
                           title=f"Profile: {title}, {n} completions (cProfile inflates small calls)")
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats("cumulative").print_stats(r"(engine|storage|webui)/.*\.py", 18)
        print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))
    if statements:
        print("\nSQL of one API completion (competent check step):")
        for i, stmt in enumerate(statements, 1):
            print(f"  {i:2d}. {stmt[:130]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_database_args(parser)
    parser.add_argument("--cases", type=int, default=20, help="cases per app path (5 completions each)")
    parser.add_argument("--raw-reps", type=int, default=20, help="replays of the 5 raw steps")
    parser.add_argument("--profile", action="store_true", help="also profile the service and the API path")
    parser.add_argument("--profile-cases", type=int, default=20)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
