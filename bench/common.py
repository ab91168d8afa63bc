"""Shared helpers of the benchmarks in bench/ (see bench/README.md).

- `bench_database()`: a fresh, throwaway database with the schema, the deployed models and the
  demo organisations, users and projects (no demo cases), built the way tests/conftest.py builds
  its template. SQLite by default (a file in a temporary directory); given a PostgreSQL URL, a
  new database `pbbench_<random>` is created on that server and dropped afterwards.
- `add_projects()`: extra non-key projects of No. 1 Middle School, so that concurrent clients
  never run two goal reviews on one project (the app allows one at a time per project).
- `EngineDriver`: drives goal-review cases through the engine service (CaseService).
- `HttpClient` / `ApiCaseRunner`: drive them through the JSON API of a real server with a
  keep-alive http.client connection.
- `Server`: a gunicorn server (gthread, like `perfbudget serve`) in a subprocess on a free
  127.0.0.1 port. Run as `python bench/common.py serve ...` it is that server's entry point.
- `QueryCounter`: counts SQL statements with a `before_cursor_execute` listener.
- `print_table()`, `machine()`, `rss_kb()`.

Everything talks to 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# create_app() would otherwise read (or write) instance/secret_key of the checkout.
os.environ.setdefault("PERFBUDGET_SECRET_KEY", "bench-" + "0" * 32)

# ---- the goal review as the demo users walk it ------------------------------------------------

STEPS = ["compile_goals", "competent_check", "preliminary_review", "re_examination", "final_review"]
# Projects made by add_projects() belong to No. 1 Middle School (EDU family, not key projects),
# so a case is exactly these five user tasks.
STEP_USERS = {"compile_goals": "school_unit", "competent_check": "edu_bureau",
              "preliminary_review": "review1", "re_examination": "perf1", "final_review": "edu_section"}
USERS = list(dict.fromkeys(STEP_USERS.values()))
APPROVE = {"decision": "approve", "comment": "Goals are specific and measurable."}
RETURN = {"decision": "return", "comment": "Add a survey method for the satisfaction target."}
PASSWORD = "demo"


def form(step: str, project_name: str = "Bench project") -> dict:
    """The form data the right user submits at a step to approve it (compile: the goals)."""
    from engine import demo
    if step == "compile_goals":
        return demo.sample_goals(project_name)
    if step == "preliminary_review":
        return {**APPROVE, "grade": "good"}
    return dict(APPROVE)


# ---- databases ---------------------------------------------------------------------------------

def add_database_args(parser: argparse.ArgumentParser, multiple: bool = False) -> None:
    extra = {"action": "append", "default": None} if multiple else {"default": "sqlite"}
    parser.add_argument(
        "--database-url", **extra,
        help=("repeat to run on several databases; " if multiple else "")
        + "'sqlite' (default: a new SQLite file in a temporary directory), sqlite:///PATH (a file "
          "that must not exist yet; kept), or a PostgreSQL URL such as "
          "postgresql+psycopg://postgres:pw@127.0.0.1:5432/postgres (a throwaway database "
          "pbbench_<random> is created on that server and dropped at the end)")


def backend_name(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def _build(url: str) -> None:
    """Schema, deployed models, demo organisations, users and projects; no demo cases."""
    from engine import demo
    from engine.app import PerfBudget
    app = PerfBudget(url)
    app.init()
    demo.load(app, cases=False)
    app.close()


@contextlib.contextmanager
def bench_database(url: str = "sqlite"):
    """Yield the URL of a freshly built database; remove it afterwards (temporary ones)."""
    from sqlalchemy import create_engine, text
    if url in ("sqlite", "", None):
        tmp = Path(tempfile.mkdtemp(prefix="pbbench_"))
        target = f"sqlite:///{tmp / 'bench.db'}"
        try:
            _build(target)
            yield target
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        if path.exists():
            raise SystemExit(f"{path} exists; give a new file (the benchmark builds it)")
        _build(url)
        yield url
        return
    name = f"pbbench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    target = f"{url.rpartition('/')[0]}/{name}"
    try:
        _build(target)
        yield target
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def add_projects(app, n: int, prefix: str = "BENCH") -> list[tuple[int, str, str]]:
    """n non-key projects of No. 1 Middle School: [(id, code, name)]."""
    from storage import queries
    from storage.models import Project
    out = []
    tag = uuid.uuid4().hex[:6].upper()
    with app.db.transaction() as s:
        unit = queries.org_by_code(s, "school")
        funding = queries.org_by_code(s, "edu_funding")
        rows = []
        for i in range(n):
            code = f"{prefix}-{tag}-{i:04d}"
            name = f"Bench project {i}"
            p = Project(code=code, name=name, year=2027, unit_id=unit.id, competent_id=unit.parent_id,
                        funding_id=funding.id, category="Education", is_new=True, is_key=False,
                        amount=Decimal("1000000"), funding_sources={"general_budget": "1000000"},
                        start_date=date(2027, 1, 1), end_date=date(2027, 12, 31), goals_status="none",
                        ex_ante_status="support")   # evaluated already: goal review may start
            s.add(p)
            rows.append(p)
        s.flush()
        out = [(p.id, p.code, p.name) for p in rows]
    return out


class ProjectPool:
    """Projects not used yet, handed out one per case to all client threads: a project's
    second goal review is an in-year adjustment, with a form of its own."""

    def __init__(self, projects):
        self._items = list(reversed(projects))
        self._lock = threading.Lock()

    def take(self):
        with self._lock:
            return self._items.pop()


# ---- the engine service ----------------------------------------------------------------------

class EngineDriver:
    """Goal-review cases through CaseService, as the demo users."""

    def __init__(self, app):
        from storage import queries
        self.app = app
        self.actors = {}
        for username in USERS:
            with app.db.reading() as s:
                user = queries.user_by_username(s, username)
            self.actors[username] = app.accounts.actor(user.id)

    def start(self, project_id: int) -> int:
        return self.app.cases.start(self.actors[STEP_USERS["compile_goals"]], "goal_review", project_id).id

    def open_task(self, case_id: int):
        from storage import queries
        with self.app.db.reading() as s:
            tasks = queries.open_tasks_of_case(s, case_id)
        assert len(tasks) == 1, tasks
        return tasks[0]

    def complete(self, task, data: dict):
        return self.app.cases.complete(self.actors[STEP_USERS[task.step]], task.id, data)


# ---- HTTP --------------------------------------------------------------------------------------

class HttpError(RuntimeError):
    pass


class HttpClient:
    """A keep-alive JSON client on one http.client connection (reconnects after idling)."""

    IDLE_RECONNECT = 1.0    # gunicorn's keep-alive timeout is 2 s

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.host, self.port = host, port
        self.conn = None
        self.last = 0.0
        self.token = None
        self.timings: list[float] | None = None    # seconds per request, when a list is set

    def _connection(self):
        if self.conn is None or time.monotonic() - self.last > self.IDLE_RECONNECT:
            if self.conn is not None:
                self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self.conn.connect()
            self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.conn

    def request(self, method: str, path: str, body=None, token: str | None = None, expect=(200, 201)):
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        token = token or self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn = self._connection()
        start = time.perf_counter()
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        if self.timings is not None:
            self.timings.append(time.perf_counter() - start)
        self.last = time.monotonic()
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            self.conn = None
        if response.status not in expect:
            raise HttpError(f"{method} {path} -> {response.status}: {raw[:300]!r}")
        return json.loads(raw) if raw else None

    def login(self, username: str, password: str = PASSWORD) -> str:
        return self.request("POST", "/api/v1/tokens", {"username": username, "password": password})["token"]

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class ApiCaseRunner:
    """One client: tokens of the five step users; runs whole goal-review cases over the API.

    A case is POST /cases (as the unit) and five POST /tasks/{id}/complete, each task id taken
    from the previous answer (`tasks` of the started case, then `next_tasks`). With
    `read_tasks`, each task is fetched first (GET /tasks/{id}), as a form page would.
    """

    def __init__(self, port: int, read_tasks: bool = False):
        self.http = HttpClient(port)
        self.tokens = {u: self.http.login(u) for u in USERS}
        self.read_tasks = read_tasks
        self.requests = 0

    def run_case(self, project_code: str, project_name: str = "Bench project") -> int:
        case = self.http.request("POST", "/api/v1/cases", {"process": "goal_review", "project": project_code},
                                 token=self.tokens[STEP_USERS["compile_goals"]])
        self.requests += 1
        tasks = case["tasks"]
        while tasks:
            task = tasks[0]
            token = self.tokens[STEP_USERS[task["step"]]]
            if self.read_tasks:
                self.http.request("GET", f"/api/v1/tasks/{task['id']}", token=token)
                self.requests += 1
            answer = self.http.request("POST", f"/api/v1/tasks/{task['id']}/complete",
                                       {"data": form(task["step"], project_name)}, token=token)
            self.requests += 1
            tasks = answer["next_tasks"]
        assert answer["case"]["status"] == "completed", answer["case"]
        return case["id"]

    def close(self):
        self.http.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """`python bench/common.py serve` in a subprocess: gunicorn, gthread, N workers."""
    database_url: str
    workers: int = 1
    threads: int = 8
    active: int = 1             # requests running at once per worker (perfbudget serve --active)
    access_log: bool = True
    freeze: bool = True         # the startup heap moved out of the collector's reach, as perfbudget serve does
    port: int = 0
    proc: subprocess.Popen | None = None
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pbbench_log_")))

    def __enter__(self):
        self.port = self.port or free_port()
        env = dict(os.environ, PERFBUDGET_DATABASE_URL=self.database_url)
        cmd = [sys.executable, str(BENCH_DIR / "common.py"), "serve", "--port", str(self.port),
               "--workers", str(self.workers), "--threads", str(self.threads), "--active", str(self.active)]
        if not self.access_log:
            cmd.append("--no-access-log")
        if not self.freeze:
            cmd.append("--no-freeze")
        self.log = open(self.log_dir / "server.log", "wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=str(REPO))
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_text()}")
            # every worker has loaded the app (and warmed its spec cache) once it is listed
            if len(self.worker_pids()) >= self.workers:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                        sock.sendall(b"GET /api/v1/openapi.json HTTP/1.0\r\nHost: x\r\n\r\n")
                        if sock.recv(12).startswith(b"HTTP/1"):
                            time.sleep(0.3 if self.workers > 1 else 0)
                            if all(self._worker_ready(p) for p in self.worker_pids()):
                                return
                except OSError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log_text()}")

    def _worker_ready(self, pid: int) -> bool:
        return f"bench worker {pid} ready" in self.log_text()

    def log_text(self) -> str:
        self.log.flush()
        return (self.log_dir / "server.log").read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        """The gunicorn workers (children of the master)."""
        if self.proc is None:
            return []
        return children_of(self.proc.pid)

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.log_dir, ignore_errors=True)


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return sorted(out)


def cpu_ns(pid: int) -> int:
    """CPU time a process has used so far, summed over its threads (ns, from schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def cpu_ns_many(pids) -> dict[int, int]:
    out = {}
    for pid in pids:
        try:
            out[pid] = cpu_ns(pid)
        except OSError:     # gone
            pass
    return out


def pg_backend_pids(url: str) -> list[int]:
    """Server processes of the other connections to this PostgreSQL database."""
    if url.startswith("sqlite"):
        return []
    from sqlalchemy import create_engine, text
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"))]
    finally:
        engine.dispose()


class CpuMeter:
    """CPU used by some processes between start() and stop(), in ms (processes that appear
    later count from zero)."""

    def __init__(self, pids_fn):
        self.pids_fn = pids_fn
        self.before: dict[int, int] = {}
        self.by_pid: dict[int, float] = {}     # ms per process, set by stop()

    def start(self):
        self.before = cpu_ns_many(self.pids_fn())
        return self

    def stop(self) -> float:
        after = cpu_ns_many(set(self.pids_fn()) | set(self.before))
        self.by_pid = {pid: (ns - self.before.get(pid, 0)) / 1e6 for pid, ns in after.items()}
        return sum(self.by_pid.values())


def load_average() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _serve_main(argv: list[str]) -> None:
    """Entry point of the server subprocess: `perfbudget serve` with N workers.

    Like `perfbudget serve` (gunicorn, gthread, access log to stdout, timeout 60, spec cache
    warmed before threads share it, the request gate of `--active` slots, the SQLite log
    checkpointer), except that each worker builds the app itself after the
    fork, so no database connection is shared between processes. The database is initialised
    by the benchmark before the server starts.
    """
    from gunicorn.app.base import BaseApplication

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--active", type=int, default=1)
    parser.add_argument("--no-access-log", action="store_true")
    parser.add_argument("--no-freeze", action="store_true")
    args = parser.parse_args(argv)

    class BenchServer(BaseApplication):
        def load_config(self):
            options = {"bind": f"127.0.0.1:{args.port}", "workers": args.workers, "worker_class": "gthread",
                       "threads": args.threads, "timeout": 60, "loglevel": "info"}
            if not args.no_access_log:
                options["accesslog"] = "-"
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            from webui import create_app
            from webui.server import freeze_startup_heap, gated
            app = create_app()
            app.extensions["perfbudget"].specs.warm()
            if not args.no_freeze:
                freeze_startup_heap()     # as perfbudget serve does before forking
            app.extensions["perfbudget"].db.start_checkpointer()     # as perfbudget serve's workers do
            print(f"bench worker {os.getpid()} ready", flush=True)
            return gated(app, args.active)

    BenchServer().run()


# ---- measuring ---------------------------------------------------------------------------------

class QueryCounter:
    """Counts SQL statements sent on a Database's engines (writer and reader pools)."""

    def __init__(self, db, keep: bool = False):
        self.engines = [db.engine] + ([db.read_engine] if db.read_engine is not db.engine else [])
        self.count = 0
        self.keep = keep
        self.statements: list[str] = []

    def _on_execute(self, conn, cursor, statement, parameters, context, executemany):
        self.count += 1
        if self.keep:
            self.statements.append(" ".join(statement.split()))

    def __enter__(self):
        from sqlalchemy import event
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._on_execute)
        return self

    def __exit__(self, *exc):
        from sqlalchemy import event
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._on_execute)


def median(values):
    values = sorted(values)
    n = len(values)
    if not n:
        return float("nan")
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def percentile(values, p: float):
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def print_table(headers: list[str], rows: list[list], title: str | None = None) -> None:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    if title:
        print(f"\n{title}")
    line = "  ".join(h.ljust(w) for h, w in zip(cells[0], widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print("  ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(row, widths)))


def _fmt(value) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _numeric(text: str) -> bool:
    return text.replace(".", "", 1).replace("x", "").replace("-", "").replace("%", "").isdigit()


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import sqlalchemy
    import SpiffWorkflow  # noqa: F401
    from importlib.metadata import version
    return (f"{os.cpu_count()} CPUs ({model}); Python {sys.version.split()[0]}; "
            f"SpiffWorkflow {version('SpiffWorkflow')}; SQLAlchemy {sqlalchemy.__version__}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        _serve_main(sys.argv[2:])
    else:
        print(__doc__)
