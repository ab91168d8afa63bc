"""`perfbudget serve --workers 2`: two serving processes on one database, each with its own
connections and its own timer thread, under clients that walk goal reviews at the same time.
Every request must succeed and every case must end whole (the crash harness's checks), on
SQLite (writers of both processes queue on its one write lock) and on PostgreSQL."""
from __future__ import annotations

import threading
import time

import crash_harness as h
from engine.app import PerfBudget

CLIENTS = 4
CASES_PER_CLIENT = 3


def test_two_serving_processes_keep_every_case_whole(database_url, tmp_path):
    setup = PerfBudget(database_url)
    projects = h.add_projects(setup, CLIENTS * CASES_PER_CLIENT, "WORKERS")
    tokens = h.issue_tokens(setup, set(h.STEP_USERS.values()))
    setup.close()
    server = h.ServerProcess(database_url, tmp_path, h.free_port(), extra=("--workers", "2"))
    calls: list[h.Call] = []
    lock = threading.Lock()
    stop = threading.Event()
    clients = [h.GoalReviewClient(f"client-{i}",
                                  h.ApiSession(f"client-{i}", server.port, tokens, calls, lock, timeout=60, refused=[0]),
                                  projects[i * CASES_PER_CLIENT:(i + 1) * CASES_PER_CLIENT], stop)
               for i in range(CLIENTS)]
    try:
        server.start()
        server.wait_ready()
        deadline = time.monotonic() + 60     # gunicorn forks the second one a moment later
        while len(server.serving_pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        serving = server.serving_pids()
        assert len(serving) == 2, f"expected two serving processes, found {serving}:\n{server.tail()}"
        for client in clients:
            client.start()
        for client in clients:
            client.join(300)
        assert not any(c.is_alive() for c in clients), "a client did not finish in 5 minutes"
        assert sorted(server.serving_pids()) == sorted(serving), "a serving process died:\n" + server.tail()
    finally:
        stop.set()
        server.kill()
    failures = [c.failure for c in clients if c.failure is not None]
    assert failures == [], f"{failures}\n{server.tail()}"
    assert all(call.ok for call in calls), [c for c in calls if not c.ok][:5]
    assert sum(len(c.finished) for c in clients) == CLIENTS * CASES_PER_CLIENT
    log = server.log_since_start()
    assert "Traceback" not in log and "[ERROR]" not in log, log[-3000:]

    checker = PerfBudget(database_url)
    try:
        result = h.check_cases(checker)
        assert result.problems == []
        assert result.by_status == {("goal_review", "completed"): CLIENTS * CASES_PER_CLIENT}
        assert h.check_calls(checker, calls) == []
    finally:
        checker.close()


def test_startup_heap_is_frozen_after_its_garbage_is_freed():
    """What perfbudget serve does before forking: cyclic garbage left by start-up is freed,
    not frozen for the life of the process; what is alive leaves the collector's reach."""
    import gc
    import weakref

    from webui.server import freeze_startup_heap

    class Node:
        pass

    garbage = Node()
    garbage.self = garbage      # a cycle only the collector can free
    ref = weakref.ref(garbage)
    del garbage
    frozen_before = gc.get_freeze_count()
    try:
        freeze_startup_heap()
        assert ref() is None
        assert gc.get_freeze_count() > frozen_before
    finally:
        gc.unfreeze()
