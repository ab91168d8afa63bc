"""Part 5: does a request get dearer as one case goes round its return loop again and again?

One goal-review case: the unit submits its goals, the competent department returns them, the
unit resubmits, ... (a return loop = one resubmission + one return). After 1, 10 and 50 return
loops (--loops) it measures, through the JSON API in-process (Flask test client, token auth,
JSON in and out):

  POST compile      the unit's resubmission (POST /tasks/{id}/complete with the goals)
  POST return       the competent department's return
  GET task          the form page's read (GET /tasks/{id}: loads the workflow and the history)
  GET case          the case page's read (GET /cases/{id}: workflow, open tasks, full history)
  raw step          the raw SpiffWorkflow step on the state at that point (load, complete the
                    resubmission, run the engine, save; spec kept out), as the app saves it: the
                    oldest finished rounds left out (engine.state_history)
  raw, whole        the same step on the same case kept whole, as SpiffWorkflow keeps it (every
                    round's tasks; replayed in memory beside the app's case)

POSTs are the median over --window consecutive loops from the checkpoint on (a completion
cannot be repeated); GETs and the raw step are repeated --reps times at the checkpoint.

    python bench/bench_growth.py [--loops 1,10,50] [--window 3] [--reps 15] [--database-url URL]
"""
from __future__ import annotations

import argparse
import time
from uuid import UUID

import common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_database_args(parser)
    parser.add_argument("--loops", default="1,10,50", help="checkpoints: return loops done")
    parser.add_argument("--window", type=int, default=3)
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    checkpoints = sorted(int(x) for x in args.loops.split(","))

    from bench_step import plain_script_engine
    from engine.app import PerfBudget
    from engine.serializer import dump_state, load_state
    from SpiffWorkflow.util.task import TaskState
    from storage.models import Case
    from webui import create_app

    print(f"machine: {common.machine()}; {common.load_average()}")
    with common.bench_database(args.database_url) as url:
        app = PerfBudget(url)
        app.specs.warm()
        project = common.add_projects(app, 1)[0]
        client = create_app({"TESTING": True, "DATABASE_URL": url}, perfbudget=app).test_client()
        headers = {}
        for user in ("school_unit", "edu_bureau", "supervisor"):
            r = client.post("/api/v1/tokens", json={"username": user, "password": common.PASSWORD})
            headers[user] = {"Authorization": f"Bearer {r.get_json()['token']}"}
        engine = plain_script_engine()
        goals = common.form("compile_goals", project[2])

        def timed(method, path, who, body=None):
            """(answer, (wall ms, CPU ms), SQL statements)"""
            with common.QueryCounter(app.db) as qc:
                t, c = time.perf_counter(), time.thread_time()
                r = (client.post(path, json=body, headers=headers[who]) if method == "POST"
                     else client.get(path, headers=headers[who]))
                elapsed = ((time.perf_counter() - t) * 1000, (time.thread_time() - c) * 1000)
            assert r.status_code in (200, 201), (path, r.get_json())
            return r.get_json(), elapsed, qc.count

        case, _, _ = timed("POST", "/api/v1/cases", "school_unit", {"process": "goal_review", "project": project[1]})
        case_id = case["id"]
        task = case["tasks"][0]
        # The same case kept whole, as SpiffWorkflow keeps it, beside the app's (whose saved
        # state leaves out the oldest finished rounds): replayed in memory, loop for loop.
        with app.db.reading() as s:
            row = s.get(Case, case_id)
            loaded = app.specs.get(row.process_version_id)
            whole = load_state(row.state, loaded.model.spec, loaded.model.subprocess_specs)
        whole.script_engine = engine

        def whole_step(data):
            [ready] = whole.get_tasks(state=TaskState.READY, manual=True)
            ready.data.update(data)
            ready.run()
            whole.do_engine_steps()
        post_compile, post_return, sql_post = {}, {}, {}
        at_checkpoint = {}
        last = checkpoints[-1] + args.window - 1
        # first submission (0 loops done), then loops: return + resubmission
        answer, _, _ = timed("POST", f"/api/v1/tasks/{task['id']}/complete", "school_unit", {"data": goals})
        whole_step(goals)
        for loop in range(1, last + 1):
            whole_step(common.RETURN)
            task = answer["next_tasks"][0]
            assert task["step"] == "competent_check", task
            answer, ms_return, q_return = timed("POST", f"/api/v1/tasks/{task['id']}/complete", "edu_bureau",
                                                {"data": common.RETURN})
            task = answer["next_tasks"][0]
            assert task["step"] == "compile_goals", task
            # `loop` return loops are done; the resubmission is waiting
            if loop in checkpoints:
                gets_task = [timed("GET", f"/api/v1/tasks/{task['id']}", "school_unit")[1] for _ in range(args.reps)]
                gets_case = [timed("GET", f"/api/v1/cases/{case_id}", "supervisor")[1] for _ in range(args.reps)]
                with app.db.reading() as s:
                    row = s.get(Case, case_id)
                    state, version_id = row.state, row.process_version_id
                loaded = app.specs.get(version_id)
                raws = []
                spiff_id = UUID(_spiff_id(app, task["id"]))
                for _ in range(args.reps):
                    t, cpu = time.perf_counter(), time.thread_time()
                    wf = load_state(state, loaded.model.spec, loaded.model.subprocess_specs)
                    wf.script_engine = engine
                    spiff_task = wf.get_task_from_id(spiff_id)
                    spiff_task.data.update(goals)
                    spiff_task.run()
                    wf.do_engine_steps()
                    dump_state(wf)
                    raws.append(((time.perf_counter() - t) * 1000, (time.thread_time() - cpu) * 1000))
                whole_state = dump_state(whole, kept=None)
                [ready] = whole.get_tasks(state=TaskState.READY, manual=True)
                raws_whole = []
                for _ in range(args.reps):
                    t, cpu = time.perf_counter(), time.thread_time()
                    wf_whole = load_state(whole_state, loaded.model.spec, loaded.model.subprocess_specs)
                    wf_whole.script_engine = engine
                    spiff_task = wf_whole.get_task_from_id(ready.id)
                    spiff_task.data.update(goals)
                    spiff_task.run()
                    wf_whole.do_engine_steps()
                    dump_state(wf_whole, kept=None)
                    raws_whole.append(((time.perf_counter() - t) * 1000, (time.thread_time() - cpu) * 1000))
                at_checkpoint[loop] = {"state": len(state.encode()), "tasks": len(wf.get_tasks()),
                                       "raw": raws, "get_task": gets_task, "get_case": gets_case,
                                       "whole_tasks": len(wf_whole.get_tasks()), "raw_whole": raws_whole}
            answer, ms_compile, q_compile = timed("POST", f"/api/v1/tasks/{task['id']}/complete", "school_unit",
                                                  {"data": goals})
            whole_step(goals)
            post_compile[loop], post_return[loop] = ms_compile, ms_return
            sql_post[loop] = (q_compile + q_return) / 2
        app.close()

    def window(series, k, j):
        return common.median([series[i][j] for i in range(k, k + args.window) if i in series])

    def med(values, j):
        return common.median([v[j] for v in values])

    first, lastk = checkpoints[0], checkpoints[-1]
    worst = {}
    for j, clock in ((1, "CPU time of the request's thread"), (0, "wall time")):
        rows = []
        for k in checkpoints:
            c = at_checkpoint[k]
            rows.append([k, c["state"] / 1024, c["tasks"], med(c["raw"], j), window(post_compile, k, j),
                         window(post_return, k, j), common.median([sql_post[i] for i in range(k, k + args.window)]),
                         med(c["get_task"], j), med(c["get_case"], j), c["whole_tasks"], med(c["raw_whole"], j)])
        common.print_table(["loops", "state KB", "wf tasks", "raw step", "POST compile", "POST return",
                            "SQL/POST", "GET task", "GET case", "whole tasks", "raw, whole"], rows,
                           title=f"Part 5: ms per request ({clock}, median) after N return loops in one case "
                                 f"({common.backend_name(url)})")
        print(f"from {first} to {lastk} loops ({clock}):")
        for i, name in ((3, "raw step"), (4, "POST compile"), (5, "POST return"), (7, "GET task"),
                        (8, "GET case"), (10, "raw, whole")):
            a, b = rows[0][i], rows[-1][i]
            print(f"  {name:<13} {a:7.2f} -> {b:7.2f} ms  ({b / a:.2f}x, +{(b - a) / (lastk - first):.3f} ms "
                  f"per loop)")
        worst[j] = max(rows[-1][4] / rows[0][4], rows[-1][5] / rows[0][5])
    print(f"  state         {at_checkpoint[first]['state'] / 1024:7.1f} -> "
          f"{at_checkpoint[lastk]['state'] / 1024:7.1f} KB")
    print(f"\ntarget 'per-request cost nearly flat': completions grow {worst[1]:.2f}x in CPU time "
          f"({worst[0]:.2f}x wall) over {lastk - first} loops -> "
          f"{'met (within 1.5x)' if worst[1] <= 1.5 else 'NOT met (more than 1.5x)'}")
    print(common.load_average())


def _spiff_id(app, task_id: int) -> str:
    from storage.models import HumanTask
    with app.db.reading() as s:
        return s.get(HumanTask, task_id).spiff_task_id


if __name__ == "__main__":
    main()
