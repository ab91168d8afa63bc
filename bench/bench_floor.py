"""Parts 1 and 2: the fixed costs every request pays before any work, to read the targets against.

Measures, on this machine, in the same run:

  empty transaction       Database.transaction() with nothing in it (SQLite: BEGIN IMMEDIATE +
                          COMMIT; PostgreSQL: a round trip for BEGIN+COMMIT on first statement)
  one-row write           the same with one UPDATE of one row: the commit then writes (WAL
                          append on SQLite with synchronous=NORMAL; WAL flush + fsync on PostgreSQL)
  Core SELECT             a pooled Core connection running one primary-key SELECT
  ORM read session        Database.reading() with one Session.get() by primary key
  Flask no-op             a route returning {"ok": true}, added to the real app (its before/after
                          request hooks: session expiry, security headers, CSRF, login manager)
  Flask no-op + token     the same behind the API's bearer-token authentication
  bare Flask no-op        the same route on an empty Flask app (no PerfBudget hooks)
  ... over HTTP           each Flask route served by gunicorn (gthread, 1 worker, access log on,
                          as `perfbudget serve`), keep-alive http.client client on 127.0.0.1

Prints median wall and CPU milliseconds (CPU: this thread's, or the gunicorn worker's for HTTP).

    python bench/bench_floor.py [--database-url URL] [--reps 300]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import common


def _timed(fn, reps: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.thread_time()
        fn()
        walls.append((time.perf_counter() - t) * 1000)
        cpus.append((time.thread_time() - c) * 1000)
    return common.median(walls), common.median(cpus)


def _add_floor_routes(app) -> None:
    from flask import g, jsonify
    from webui.api import token_required

    @app.get("/_floor")
    def floor():
        return jsonify({"ok": True})

    @app.get("/_floor_token")
    @token_required
    def floor_token():
        return jsonify({"ok": True, "user": g.actor.id})


def _bare_app():
    from flask import Flask, jsonify
    app = Flask("bare")

    @app.get("/_floor")
    def floor():
        return jsonify({"ok": True})
    return app


def run(args) -> None:
    from sqlalchemy import select, text, update

    from engine.app import PerfBudget
    from storage.models import Organisation, User
    from webui import create_app

    print(f"machine: {common.machine()}; {common.load_average()}")
    rows = []
    with common.bench_database(args.database_url) as url:
        print(f"database: {common.backend_name(url)}")
        app = PerfBudget(url)
        db = app.db
        with db.reading() as s:
            org_id = s.scalar(select(Organisation.id).limit(1))
            user_id = s.scalar(select(User.id).where(User.username == "school_unit"))

        def empty_tx():
            with db.transaction():
                pass

        def empty_tx_touch():
            with db.transaction() as s:
                s.execute(text("SELECT 1"))

        def one_write():
            with db.transaction() as s:
                s.execute(update(Organisation).where(Organisation.id == org_id).values(kind=Organisation.kind))

        def core_select():
            with db.read_connection() as conn:
                conn.execute(select(User.id, User.username).where(User.id == user_id)).all()

        def orm_get():
            with db.reading() as s:
                s.get(User, user_id)

        for label, fn in (("empty transaction (session, no statement)", empty_tx),
                          ("transaction with SELECT 1", empty_tx_touch),
                          ("transaction with a one-row UPDATE (commit writes)", one_write),
                          ("Core connection, one PK SELECT", core_select),
                          ("ORM read session, one Session.get()", orm_get)):
            for _ in range(20):
                fn()
            wall, cpu = _timed(fn, args.reps)
            rows.append([label, wall, cpu])

        flask_app = create_app({"TESTING": True, "DATABASE_URL": url}, perfbudget=app)
        _add_floor_routes(flask_app)
        client = flask_app.test_client()
        token = client.post("/api/v1/tokens", json={"username": "school_unit", "password": common.PASSWORD}
                            ).get_json()["token"]
        bare = _bare_app().test_client()
        auth = {"Authorization": f"Bearer {token}"}
        for label, fn in (("Flask test client: bare app no-op", lambda: bare.get("/_floor")),
                          ("Flask test client: PerfBudget app no-op", lambda: client.get("/_floor")),
                          ("Flask test client: no-op + token auth", lambda: client.get("/_floor_token", headers=auth))):
            for _ in range(20):
                fn()
            wall, cpu = _timed(fn, args.reps)
            rows.append([label, wall, cpu])

        for kind in ("bare", "app"):
            env_cmd = [sys.executable, os.path.abspath(__file__), "serve", "--kind", kind]
            with FloorServer(url, env_cmd) as server:
                http = common.HttpClient(server.port)
                worker = server.worker_pids()[0]
                paths = [("/_floor", None)] if kind == "bare" else [("/_floor", None), ("/_floor_token", "x")]
                for path, needs_token in paths:
                    tok = http.login("school_unit") if needs_token else None
                    walls, cpus = [], []
                    for i in range(args.reps + 20):
                        c = common.cpu_ns(worker)
                        t = time.perf_counter()
                        http.request("GET", path, token=tok)
                        if i >= 20:
                            walls.append((time.perf_counter() - t) * 1000)
                            cpus.append((common.cpu_ns(worker) - c) / 1e6)
                    label = {"bare": "HTTP gunicorn: bare Flask no-op",
                             "/_floor": "HTTP gunicorn: PerfBudget app no-op",
                             "/_floor_token": "HTTP gunicorn: no-op + token auth"}[kind if kind == "bare" else path]
                    rows.append([label, common.median(walls), common.median(cpus)])
                http.close()
        app.close()
    common.print_table(["what", "wall ms (med)", "CPU ms (med)"], rows,
                       title="Fixed costs per request on this machine")
    print("CPU: this thread's CPU time; for HTTP the gunicorn worker's (the client's is not in it).")
    print(common.load_average())


class FloorServer(common.Server):
    """common.Server, but running this script's `serve` (the floor routes added)."""

    def __init__(self, url, cmd):
        super().__init__(url, workers=1, threads=8)
        self.cmd = cmd

    def __enter__(self):
        import subprocess
        self.port = common.free_port()
        env = dict(os.environ, PERFBUDGET_DATABASE_URL=self.database_url)
        self.log = open(self.log_dir / "server.log", "wb")
        self.proc = subprocess.Popen(self.cmd + ["--port", str(self.port)], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=str(common.REPO))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "bench worker" in self.log_text() and self.worker_pids():
                time.sleep(0.3)
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log_text()}")


def serve(argv) -> None:
    """The server subprocess: gunicorn gthread, 1 worker, access log on (as perfbudget serve)."""
    from gunicorn.app.base import BaseApplication
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kind", choices=("bare", "app"), required=True)
    args = parser.parse_args(argv)

    class Floor(BaseApplication):
        def load_config(self):
            for key, value in {"bind": f"127.0.0.1:{args.port}", "workers": 1, "worker_class": "gthread",
                               "threads": 8, "timeout": 60, "accesslog": "-", "loglevel": "info"}.items():
                self.cfg.set(key, value)

        def load(self):
            if args.kind == "bare":
                app = _bare_app()
            else:
                from webui import create_app
                app = create_app()
                _add_floor_routes(app)
            print(f"bench worker {os.getpid()} ready", flush=True)
            return app

    Floor().run()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_database_args(parser)
    parser.add_argument("--reps", type=int, default=300)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
