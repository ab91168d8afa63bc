"""SQLite writers wait in storage.writer_queue, not in SQLite's sleeping busy handler: a writer
that arrives while another holds its turn runs only after that one has finished, across threads
and across forked processes, and a nested write in the same thread does not wait for itself.
These tests use their own SQLite file whatever database the suite runs on."""
from __future__ import annotations

import multiprocessing
import threading
import time

import pytest
from sqlalchemy import text

from storage.db import Database


def _who_wrote(db) -> list[str]:
    with db.reading() as s:
        return [row[0] for row in s.execute(text("SELECT who FROM log ORDER BY seq"))]


def test_a_writer_waits_for_the_turn_even_before_the_first_statement(sqlite_db):
    # Without the queue, B would take SQLite's lock first: A has not sent a statement yet.
    a_inside, b_done = threading.Event(), threading.Event()

    def writer_b():
        a_inside.wait(5)
        with sqlite_db.transaction() as s:
            s.execute(text("INSERT INTO log (who) VALUES ('B')"))
        b_done.set()

    thread = threading.Thread(target=writer_b)
    thread.start()
    with sqlite_db.transaction() as s:
        a_inside.set()
        assert not b_done.wait(0.3), "B wrote while A held the turn"
        s.execute(text("INSERT INTO log (who) VALUES ('A')"))
    thread.join(5)
    assert b_done.is_set()
    assert _who_wrote(sqlite_db) == ["A", "B"]


def test_many_threads_write_without_losing_or_failing(sqlite_db):
    errors = []

    def writer(n):
        try:
            for i in range(20):
                with sqlite_db.transaction() as s:
                    s.execute(text("INSERT INTO log (who) VALUES (:who)"), {"who": f"{n}-{i}"})
        except Exception as exc:      # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(_who_wrote(sqlite_db)) == sorted(f"{n}-{i}" for n in range(6) for i in range(20))


def test_a_nested_write_in_the_same_thread_does_not_wait_for_itself(sqlite_db):
    started = time.monotonic()
    with sqlite_db.transaction():
        with sqlite_db.transaction() as inner:
            inner.execute(text("INSERT INTO log (who) VALUES ('inner')"))
    assert time.monotonic() - started < 5, "the nested writer waited for its own turn"
    assert _who_wrote(sqlite_db) == ["inner"]


def _child_writes(url, ready, finished):
    db = Database(url)
    ready.set()
    with db.transaction() as s:
        s.execute(text("INSERT INTO log (who) VALUES ('child')"))
    finished.set()
    db.dispose()


def _forked_child_uses_the_parents_database(db, ready, finished):
    # the Database object made before the fork: the child must lock its own file description
    ready.set()
    with db.transaction() as s:
        s.execute(text("INSERT INTO log (who) VALUES ('child')"))
    finished.set()


@pytest.mark.parametrize("child", [_child_writes, _forked_child_uses_the_parents_database])
def test_another_process_waits_for_the_turn(sqlite_db, child):
    ctx = multiprocessing.get_context("fork")
    ready, finished = ctx.Event(), ctx.Event()
    arg = sqlite_db.url if child is _child_writes else sqlite_db
    with sqlite_db.transaction() as s:     # the parent holds the turn, no statement sent yet
        proc = ctx.Process(target=child, args=(arg, ready, finished))
        proc.start()
        assert ready.wait(10)
        assert not finished.wait(0.5), "the other process wrote while this one held the turn"
        s.execute(text("INSERT INTO log (who) VALUES ('parent')"))
    proc.join(20)
    assert proc.exitcode == 0
    assert finished.is_set()
    assert _who_wrote(sqlite_db) == ["parent", "child"]
