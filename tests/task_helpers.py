"""Helpers shared by the timer-worker, deadline and completion tests: the open task of a case,
running several engines at once in threads, and waiting for a thread to finish or block."""
from __future__ import annotations

import threading
import time
from typing import Callable, Iterable, TypeVar

from sqlalchemy import select, text

from storage.models import HumanTask

T = TypeVar("T")


def open_task(core, case_id: int, *, required: bool = False) -> HumanTask | None:
    """The case's one open HumanTask, or None if it has none.

    Raises sqlalchemy's MultipleResultsFound if the case has several open tasks, and
    AssertionError if it has none and `required` is true."""
    with core.db.reading() as s:
        task = s.scalars(select(HumanTask).where(HumanTask.case_id == case_id,
                                                 HumanTask.status == "open")).one_or_none()
    assert task is not None or not required, f"case {case_id} has no open task"
    return task


def run_at_once(cores: Iterable, action: Callable[..., T], *, timeout: float = 120.0) -> list[T]:
    """Run `action(core)` for every core, each in its own thread, all released together by a
    barrier; then close the cores.

    Fails the test if the threads have not all finished within `timeout` seconds, re-raises the
    first error a thread met, and otherwise returns the results in the order of `cores`."""
    cores = list(cores)
    barrier = threading.Barrier(len(cores), timeout=timeout)
    results: list = [None] * len(cores)
    errors: list[BaseException] = []

    def work(index: int, core) -> None:
        try:
            barrier.wait()
            results[index] = action(core)
        except BaseException as exc:    # re-raised in the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, core), daemon=True) for i, core in enumerate(cores)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        hung = sum(thread.is_alive() for thread in threads)
    finally:
        for core in cores:
            core.close()
    assert not hung, f"{hung} of {len(threads)} threads still running after {timeout}s"
    if errors:
        if len(errors) > 1:
            errors[0].add_note(f"({len(errors) - 1} other thread(s) failed too: {errors[1:]!r})")
        raise errors[0]
    return results


def wait_until_done_or_blocked(core, thread: threading.Thread, timeout: float = 30.0) -> None:
    """Return once `thread` has finished or (PostgreSQL) a session of this database waits for a
    row lock, as seen from a connection of its own; fail after `timeout` seconds otherwise."""
    deadline = time.monotonic() + timeout
    while thread.is_alive():
        if not core.db.is_sqlite:
            with core.db.engine.connect() as conn:
                if conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                     "AND datname = current_database()")).scalar():
                    return
        assert time.monotonic() < deadline, f"the thread neither finished nor blocked within {timeout}s"
        time.sleep(0.01)
