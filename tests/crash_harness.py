"""Crash harness for tests/test_crash_safety.py: the real server and timer worker as processes,
API clients that keep count of what they were told, and a check of every case in the database.

- `ServerProcess`: `perfbudget serve --no-timers` (gunicorn master + one gthread worker) in its
  own process group. `kill_serving()` SIGKILLs the process that serves requests (gunicorn forks
  a new one from the master); `kill()` SIGKILLs master and worker together, as a crash of the
  machine's web service would.
- `WorkerProcess`: `perfbudget worker`, the separate timer worker.
- `GoalReviewClient`, `TimerReviewClient`: threads driving cases through /api/v1 with bearer
  tokens. Every request is logged with what was sent and how it ended: a status code, or no
  answer at all (the server died with it). After no answer a client reads the case back before
  it goes on, so it never sends a write twice on purpose; any answer other than 200/201 is
  wrong, since every client works on its own cases.
- `check_cases()`: for every case, the saved workflow, the case row's summary columns, the
  inbox rows, the audit log and the goals a review approves must tell one story.
"""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import requests
from sqlalchemy import select
from SpiffWorkflow.util.task import TaskState

from engine import demo
from engine.serializer import load_state
from storage.models import AuditEvent, Case, HumanTask, Project, ProjectGoals, User

ROOT = Path(__file__).resolve().parent.parent

# Goal review of a non-key, already evaluated project of No. 1 Middle School: five user tasks.
STEP_USERS = {"compile_goals": "school_unit", "competent_check": "edu_bureau",
              "preliminary_review": "review1", "re_examination": "perf1", "final_review": "edu_section"}
APPROVE = {"decision": "approve", "comment": "Goals are specific and measurable."}


def goal_form(step: str, project_name: str) -> dict:
    if step == "compile_goals":
        return demo.sample_goals(project_name)
    if step == "preliminary_review":
        return {**APPROVE, "grade": "good"}
    return dict(APPROVE)


def add_projects(core, n: int, prefix: str) -> list[tuple[str, str]]:
    """n non-key, not new projects of No. 1 Middle School, each for one goal review:
    [(code, name)]. Goal review allows one running case per project, so no two clients share one."""
    from storage import queries
    out = []
    with core.db.transaction() as s:
        unit = queries.org_by_code(s, "school")
        funding = queries.org_by_code(s, "edu_funding")
        for i in range(n):
            code, name = f"{prefix}-{i:03d}", f"Crash project {prefix} {i}"
            s.add(Project(code=code, name=name, year=2027, unit_id=unit.id, competent_id=unit.parent_id,
                          funding_id=funding.id, category="Education", is_new=False, is_key=False,
                          amount=Decimal("500000"), funding_sources={"general_budget": "500000"},
                          start_date=date(2027, 1, 1), end_date=date(2027, 12, 31), goals_status="none",
                          ex_ante_status="none"))
            out.append((code, name))
    return out


# ---- processes ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _perfbudget_command() -> list[str]:
    """The installed `perfbudget` script of this interpreter's environment, else its entry point."""
    script = Path(sys.executable).parent / "perfbudget"
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-c", "from webui.cli import main; main()"]


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


class _Process:
    """A subprocess in its own session (process group), so that a kill takes its children too."""

    def __init__(self, args: list[str], database_url: str, log_path: Path):
        self.args = args
        self.env = {**os.environ, "PERFBUDGET_DATABASE_URL": database_url,
                    # create_app would otherwise keep a secret key in the checkout's instance/.
                    "PERFBUDGET_SECRET_KEY": "crash-harness-" + "0" * 32,
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.started_wall = None    # the app's clock (naive UTC) when it was last started

    def start(self) -> None:
        from engine.clock import Clock
        assert self.proc is None or self.proc.poll() is not None
        self.started_wall = Clock().now()
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== start {self.starts + 1} ====\n".encode())
            log.flush()
            self.mark = log.tell()
            self.proc = subprocess.Popen(_perfbudget_command() + self.args, env=self.env, cwd=str(ROOT),
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_since_start(self) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(self.mark)
            return f.read().decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group: no handler runs, nothing is flushed or rolled back."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        # The group's other members (gunicorn's worker) are children of the master; wait until
        # the kernel has removed them, so that no orphan still holds the port or a connection.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.01)

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


class ServerProcess(_Process):
    def __init__(self, database_url: str, log_dir: Path, port: int, extra: tuple[str, ...] = ("--no-timers",)):
        self.port = port
        super().__init__(["serve", "--port", str(port), "--threads", "8", *extra], database_url,
                         log_dir / "server.log")

    def serving_pids(self) -> list[int]:
        """gunicorn's worker processes (children of the master), the ones that serve requests."""
        return _children(self.proc.pid) if self.running() else []

    def wait_ready(self, timeout: float = 120, old_pid: int | None = None) -> int:
        """Wait until a serving process (not `old_pid`) answers; return its pid."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"the server exited:\n{self.tail()}")
            pids = [p for p in self.serving_pids() if p != old_pid]
            if pids:
                try:
                    r = requests.get(f"http://127.0.0.1:{self.port}/api/v1/openapi.json", timeout=5)
                    if r.status_code == 200:
                        return pids[0]
                except requests.RequestException:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"the server did not come up in {timeout} s:\n{self.tail()}")

    def kill_serving(self) -> int | None:
        """SIGKILL the serving process only; the master forks a new one."""
        pids = self.serving_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids[0] if pids else None


class WorkerProcess(_Process):
    def __init__(self, database_url: str, log_dir: Path):
        super().__init__(["worker"], database_url, log_dir / "worker.log")

    def started(self) -> bool:
        """The worker has its engine and is about to warm the specs and make its first pass."""
        return "Timer worker on" in self.log_since_start()


class WorkerKiller(threading.Thread):
    """Kills the timer worker again and again, and starts it again at once. About half of the
    kills come at a random moment of its start-up and first pass; the others are aimed: as soon as
    its pass has committed one timer while others that were due before it started are still
    waiting, so that it dies between the cases of a pass. `lock` is held while a process is
    killed or started, so that the main killer's whole-service crash sees everything down."""

    def __init__(self, worker: WorkerProcess, core, rng: random.Random, lock: threading.Lock,
                 stop: threading.Event):
        super().__init__(name="worker-killer", daemon=True)
        self.worker, self.core, self.rng, self.lock, self.stop = worker, core, rng, lock, stop
        self.kills = 0
        self.mid_pass = 0           # kills that left a pass half done (some fired, some due)
        self.history: list[tuple] = []  # (aimed, seconds after start-up, timers fired, cases still due)
        self.failure: BaseException | None = None

    def run(self):
        try:
            while not self.stop.is_set():
                with self.lock:
                    if not self.worker.running():
                        self.worker.start()
                    start, since = self.worker.starts, self.worker.started_wall
                    began = time.monotonic()
                if not self._wait(lambda: self.worker.started() or self.worker.starts != start, 60):
                    continue
                # The first kill is always aimed: the backlog due before the start is there for sure.
                aimed = self.kills == 0 or self.rng.random() < 0.5
                if not aimed:
                    self.stop.wait(self.rng.uniform(0.3, 2.5))
                else:
                    self._wait(lambda: self._fired_since(since)[0] > 0 or self.worker.starts != start, 30)
                    if self.kills:      # the first aimed kill goes at once: the pass is under way
                        self.stop.wait(self.rng.uniform(0, 0.15))
                with self.lock:
                    if self.stop.is_set() or self.worker.starts != start or not self.worker.running():
                        continue    # the main killer took it down meanwhile
                    self.worker.kill()
                    self.kills += 1
                    fired, still_due = self._fired_since(since)
                    self.history.append((aimed, round(time.monotonic() - began, 1), fired, still_due))
                    if fired and still_due:
                        self.mid_pass += 1
                    self.worker.start()
        except BaseException as exc:
            self.failure = exc

    def _wait(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.stop.is_set() and time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.02)
        return False

    def _fired_since(self, since) -> tuple[int, int]:
        """Timer events written since the worker started, and cases due before it started that
        are still waiting."""
        from sqlalchemy import func
        with self.core.db.reading() as s:
            fired = s.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == "timer", AuditEvent.at >= since))
            due = s.scalar(select(func.count()).select_from(Case)
                           .where(Case.status == "running", Case.next_due_at < since))
        return fired, due


# ---- clients -----------------------------------------------------------------------------------

NO_ANSWER = "no answer"


@dataclass
class Call:
    client: str
    method: str
    path: str
    user: str
    body: dict | None
    outcome: int | str          # status code, or NO_ANSWER
    error: str | None = None    # for NO_ANSWER: what the connection said
    answer: dict | None = None
    sent: bool = True           # False: the connection was refused, the request never left
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome in (200, 201)


class ApiSession:
    """Bearer-token calls for several users; a connection per thread, no automatic retries
    (requests' default): every POST goes out exactly once and its fate is recorded."""

    def __init__(self, name: str, port: int, tokens: dict[str, str], calls: list[Call], lock: threading.Lock,
                 timeout: float, refused: list[int]):
        self.name = name
        self.refused = refused
        self.base = f"http://127.0.0.1:{port}/api/v1"
        self.tokens = tokens
        self.calls = calls
        self.lock = lock
        self.timeout = timeout
        self.http = requests.Session()

    def call(self, method: str, path: str, user: str, body: dict | None = None) -> Call:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        began = time.monotonic()
        try:
            r = self.http.request(method, self.base + path, json=body, headers=headers,
                                  timeout=(5, self.timeout))
        except requests.exceptions.ReadTimeout as exc:
            # The server took the request and sat on it: a stuck lock, not a crash.
            raise AssertionError(f"{method} {path} as {user}: no answer in {self.timeout} s ({exc})") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            # Refused (the server is down), reset, or the answer broke off halfway.
            self.http.close()       # drop a pooled connection to a dead server
            refused = "Connection refused" in str(exc) or "NewConnectionError" in str(exc)
            call = Call(self.name, method, path, user, body, NO_ANSWER, type(exc).__name__ + ": " + str(exc)[:200],
                        sent=not refused)
        else:
            try:
                answer = r.json()
            except ValueError:
                answer = {"raw": r.text[:300]}
            call = Call(self.name, method, path, user, body, r.status_code, answer=answer)
        call.seconds = time.monotonic() - began
        if method != "GET" or not call.ok:
            with self.lock:
                if call.sent:
                    self.calls.append(call)
                else:       # the server is down: only counted, there are thousands
                    self.refused[0] += 1
        return call

    def read(self, path: str, user: str) -> dict:
        """GET until the server answers (it may be restarting); anything but 200 is wrong."""
        while True:
            call = self.call("GET", path, user)
            if call.outcome == NO_ANSWER:
                time.sleep(0.1)
                continue
            if call.outcome != 200:
                raise AssertionError(f"GET {path} as {user} -> {call.outcome}: {call.answer}")
            return call.answer


class GoalReviewClient(threading.Thread):
    """Walks goal reviews of its own projects from start to approval, one after the other,
    until `stop` is set (then it finishes the case in hand)."""

    def __init__(self, name: str, session: ApiSession, projects: list[tuple[str, str]], stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self.api = session
        self.projects = list(projects)
        self.stop = stop
        self.cases: dict[int, str] = {}         # case id -> project code
        self.finished: list[int] = []
        self.failure: BaseException | None = None

    def run(self):
        try:
            for code, name in self.projects:
                if self.stop.is_set():
                    break
                case_id = self._start(code)
                self.cases[case_id] = code
                self._walk(case_id, name)
                self.finished.append(case_id)
        except BaseException as exc:    # reported by the test
            self.failure = exc

    def _expect(self, call: Call, status: int) -> None:
        if call.outcome != status:
            raise AssertionError(f"{call.method} {call.path} as {call.user} -> {call.outcome}: {call.answer}")

    def _start(self, code: str) -> int:
        while True:
            call = self.api.call("POST", "/cases", "school_unit", {"process": "goal_review", "project": code})
            if call.outcome != NO_ANSWER:
                self._expect(call, 201)
                return call.answer["id"]
            if not call.sent:
                time.sleep(0.1)
                continue
            # The server died with the request: the case was started whole, or not at all.
            found = self._find_case(code)
            if found is not None:
                return found

    def _find_case(self, code: str) -> int | None:
        listing = self.api.read("/cases?process=goal_review&status=running&limit=200", "school_unit")
        ids = [c["id"] for c in listing["items"] if c["project"]["code"] == code]
        assert len(ids) <= 1, f"two running goal reviews of {code}: {ids}"
        return ids[0] if ids else None

    def _walk(self, case_id: int, project_name: str) -> None:
        case = self.api.read(f"/cases/{case_id}", "school_unit")
        while case["status"] == "running":
            assert len(case["tasks"]) == 1, case["tasks"]
            task = case["tasks"][0]
            user = STEP_USERS[task["step"]]
            call = self.api.call("POST", f"/tasks/{task['id']}/complete", user,
                                 {"data": goal_form(task["step"], project_name)})
            if call.outcome == NO_ANSWER:
                # Applied whole or not at all: read the case to see which, then go on from there.
                case = self.api.read(f"/cases/{case_id}", "school_unit")
                continue
            self._expect(call, 200)
            case = call.answer["case"]
        assert case["status"] == "completed", case


class TimerReviewClient(threading.Thread):
    """perf1 completes the 'Review the material' tasks the timer worker opens in timer_demo
    cases, until every one of `case_ids` is finished or `deadline` (monotonic) passes."""

    def __init__(self, session: ApiSession, case_ids: set[int], go_on: threading.Event):
        super().__init__(name="timer-reviews", daemon=True)
        self.api = session
        self.pending = set(case_ids)
        self.go_on = go_on          # cleared: give up (the test's time is out)
        self.failure: BaseException | None = None

    def run(self):
        try:
            while self.pending and self.go_on.is_set():
                inbox = self.api.read("/tasks?scope=all&limit=200", "perf1")
                reviews = [t for t in inbox["items"] if t["process"] == "timer_demo" and t["step"] == "review"]
                if not reviews:
                    self._refresh_finished()
                    time.sleep(0.2)
                    continue
                for task in reviews:
                    call = self.api.call("POST", f"/tasks/{task['id']}/complete", "perf1", {"data": {}})
                    if call.outcome == NO_ANSWER:
                        break           # read the inbox again: it tells whether this one went through
                    if call.outcome != 200:
                        raise AssertionError(f"complete review {task['id']} -> {call.outcome}: {call.answer}")
                    if call.answer["case"]["status"] == "completed":
                        self.pending.discard(task["case_id"])
        except BaseException as exc:
            self.failure = exc

    def _refresh_finished(self):
        for case_id in list(self.pending):
            if self.api.read(f"/cases/{case_id}", "perf1")["status"] == "completed":
                self.pending.discard(case_id)


def issue_tokens(core, usernames) -> dict[str, str]:
    """API tokens made through the engine before the server runs: logging in is not what is
    tested, and the tokens live in the database, so they outlive every restart."""
    from storage import queries
    tokens = {}
    for username in usernames:
        with core.db.reading() as s:
            user = queries.user_by_username(s, username)
        tokens[username] = core.accounts.issue_token(core.accounts.actor(user.id))
    return tokens


# ---- invariants --------------------------------------------------------------------------------

@dataclass
class CheckResult:
    cases: int = 0
    by_status: Counter = field(default_factory=Counter)
    events: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


def check_cases(core) -> CheckResult:
    """Every case, read straight from the database while no server or worker runs: a case is
    wholly before or wholly after each change, so its parts must agree.

    - the inbox's open rows are exactly the READY user tasks of the saved workflow, and its
      completed rows exactly the COMPLETED ones;
    - each completed row has one 'completed' audit event, by the user the row names, and every
      such event points at a completed row of its case;
    - status, current steps and next due time are what the saved workflow says;
    - the case version counts its saves: 1 at the start, then one per completion and per
      timer pass that fired something, each of which writes exactly one audit event;
    - 'started' once; 'finished' once if and only if the workflow is complete;
    - a timer_demo case that passed its wait has one 'timer' event, one that did not has none;
    - a finished goal review approved exactly one goals version, a running one none.
    """
    result = CheckResult()
    problems = result.problems
    with core.db.reading() as s:
        cases = list(s.scalars(select(Case).order_by(Case.id)))
        rows_by_case: dict[int, list[HumanTask]] = {}
        for row in s.scalars(select(HumanTask).order_by(HumanTask.id)):
            rows_by_case.setdefault(row.case_id, []).append(row)
        events_by_case: dict[int, list[AuditEvent]] = {}
        for event in s.scalars(select(AuditEvent).where(AuditEvent.case_id.is_not(None)).order_by(AuditEvent.id)):
            events_by_case.setdefault(event.case_id, []).append(event)
        goals_by_case = Counter(s.scalars(select(ProjectGoals.case_id)))
        goals_by_project = Counter(s.scalars(select(ProjectGoals.project_id)))
        projects = {p.id: p for p in s.scalars(select(Project))}
        usernames = dict(s.execute(select(User.id, User.username)).all())

    for case in cases:
        result.cases += 1
        result.by_status[(case.process_key, case.status)] += 1
        where = f"case {case.id} ({case.process_key}, v{case.lock_version}, {case.status})"
        loaded = core.specs.get(case.process_version_id)
        try:
            workflow = load_state(case.state, loaded.model.spec, loaded.model.subprocess_specs)
        except Exception as exc:     # a torn or empty state
            problems.append(f"{where}: the saved state does not load: {type(exc).__name__}: {exc}")
            continue
        rows = rows_by_case.get(case.id, [])
        events = events_by_case.get(case.id, [])
        actions = Counter(e.action for e in events)
        result.events.update(actions)

        ready = {str(t.id) for t in workflow.get_tasks(state=TaskState.READY, manual=True)}
        done = {str(t.id) for t in workflow.get_tasks(state=TaskState.COMPLETED, manual=True)}
        open_rows = [r.spiff_task_id for r in rows if r.status == "open"]
        completed_rows = [r for r in rows if r.status == "completed"]
        if sorted(open_rows) != sorted(ready):
            problems.append(f"{where}: open inbox rows {open_rows} but READY user tasks {sorted(ready)}")
        if sorted(r.spiff_task_id for r in completed_rows) != sorted(done):
            problems.append(f"{where}: completed rows {[r.spiff_task_id for r in completed_rows]} "
                            f"but COMPLETED user tasks {sorted(done)}")
        if any(r.status not in ("open", "completed") for r in rows):
            problems.append(f"{where}: unexpected row states {[r.status for r in rows]}")

        completions = [e for e in events if e.action == "completed"]
        per_row = Counter(e.human_task_id for e in completions)
        rows_by_id = {r.id: r for r in rows}
        for row in completed_rows:
            if per_row[row.id] != 1:
                problems.append(f"{where}: task {row.id} ({row.step}) is completed with {per_row[row.id]} "
                                "completion events")
        for event in completions:
            row = rows_by_id.get(event.human_task_id)
            if row is None or row.status != "completed":
                problems.append(f"{where}: completion event {event.id} of task {event.human_task_id}, which is "
                                f"{row.status if row else 'not of this case'}")
            elif event.actor_id != row.completed_by_id or event.step != row.step:
                problems.append(f"{where}: completion event {event.id} by {usernames.get(event.actor_id)} at "
                                f"{event.step}, row completed by {usernames.get(row.completed_by_id)} at {row.step}")

        finished = workflow.is_completed()
        expected_status = "completed" if finished else "running"
        if case.status != expected_status:
            problems.append(f"{where}: the workflow is {'complete' if finished else 'not complete'}")
        if actions["started"] != 1 or actions["finished"] != (1 if finished else 0):
            problems.append(f"{where}: events {dict(actions)}")
        if actions["error"] or case.error_message:
            problems.append(f"{where}: error {case.error_message!r}, events {dict(actions)}")
        saves = 1 + actions["completed"] + actions["timer"]
        if case.lock_version != saves:
            problems.append(f"{where}: version {case.lock_version}, but {saves} saves are in the audit log "
                            f"({dict(actions)})")
        summary = core.cases._summary(workflow, case.updated_at)
        for column in ("current_steps", "next_due_at"):
            if getattr(case, column) != summary[column]:
                problems.append(f"{where}: {column} is {getattr(case, column)!r}, the workflow says "
                                f"{summary[column]!r}")

        if case.process_key == "timer_demo":
            waited = [t for t in workflow.get_tasks(state=TaskState.COMPLETED) if t.task_spec.name == "wait"]
            if actions["timer"] != (1 if waited else 0):
                problems.append(f"{where}: {actions['timer']} timer events, the wait is "
                                f"{'over' if waited else 'not over'}")
        elif case.process_key == "goal_review":
            approved = goals_by_case[case.id]
            if approved != (1 if finished else 0):
                problems.append(f"{where}: {approved} approved goal versions")
            project = projects[case.project_id]
            if finished and (project.goals_status != "approved" or goals_by_project[project.id] != 1):
                problems.append(f"{where}: project {project.code} goals {project.goals_status}, "
                                f"{goals_by_project[project.id]} versions")
    return result


def check_calls(core, calls: list[Call]) -> list[str]:
    """What each client was told against what the database holds: a completion answered 200
    is recorded as that user's, with the data sent; a start answered 201 is a case begun by the
    unit. A request with no answer may have gone either way; check_cases() sees it is whole."""
    problems = []
    with core.db.reading() as s:
        usernames = dict(s.execute(select(User.id, User.username)).all())
        completion_events = {}
        for event in s.scalars(select(AuditEvent).where(AuditEvent.action == "completed")):
            completion_events.setdefault(event.human_task_id, []).append(event)
        rows = {r.id: r for r in s.scalars(select(HumanTask))}
        started = {e.case_id: e for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "started"))}
    for call in calls:
        if call.outcome == NO_ANSWER:
            continue
        if not call.ok:
            problems.append(f"{call.client}: {call.method} {call.path} as {call.user} -> {call.outcome}: "
                            f"{call.answer}")
            continue
        if call.method != "POST":
            continue
        if call.path.endswith("/complete"):
            task_id = int(call.path.split("/")[2])
            row, events = rows.get(task_id), completion_events.get(task_id, [])
            if row is None or row.status != "completed" or usernames.get(row.completed_by_id) != call.user:
                problems.append(f"{call.client}: task {task_id} was completed by {call.user} (200), the inbox "
                                f"says {row.status if row else 'missing'} by "
                                f"{usernames.get(row.completed_by_id) if row else None}")
            elif len(events) != 1 or events[0].data != call.body["data"]:
                problems.append(f"{call.client}: task {task_id}: {len(events)} completion events, data "
                                f"{'as sent' if events and events[0].data == call.body['data'] else 'differs'}")
        elif call.path == "/cases":
            event = started.get(call.answer["id"])
            if event is None or usernames.get(event.actor_id) != call.user:
                problems.append(f"{call.client}: case {call.answer['id']} was started (201) but its start "
                                "is not in the audit log")
    return problems


def idle_transactions(core, older_than_seconds: float = 5.0) -> list[tuple]:
    """PostgreSQL sessions of this database sitting in an open transaction: a killed process's
    transaction must end with it, not hold its locks on."""
    if core.db.is_sqlite:
        return []
    from sqlalchemy import text
    with core.db.engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT pid, state, now() - xact_start, left(query, 120) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND state LIKE 'idle in transaction%' AND xact_start < now() - make_interval(secs => :s)"),
            {"s": older_than_seconds}))



def cut_completions(calls: list[Call]) -> tuple[int, int]:
    """Of the completions a kill cut off: how many had committed before it (no later attempt on
    the task was answered 200) and how many had not (the client sent it again, and that went
    through). Both must occur for the run to have killed inside and around the transaction."""
    applied = not_applied = 0
    for i, call in enumerate(calls):
        if call.outcome == NO_ANSWER and call.path.endswith("/complete"):
            later = any(c.path == call.path and c.ok for c in calls[i + 1:])
            not_applied += later
            applied += not later
    return applied, not_applied
