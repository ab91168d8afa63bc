"""SQLite's write-ahead log is copied back by a thread of the serving process, not inside commits
(storage/wal_checkpointer.py): with the checkpointer started the commits leave the log to it, it
copies the log after enough commits and when they stop, and without it nothing changes. These
tests use their own SQLite file whatever database the suite runs on."""
from __future__ import annotations

import sqlite3
import time

from sqlalchemy import text

from storage.db import Database
from storage.wal_checkpointer import SAFETY_NET_PAGES

ROW = "x" * 3000        # about one page per row (the conftest's sqlite_db table)


def _commit_rows(db, n: int) -> None:
    for _ in range(n):
        with db.transaction() as s:
            s.execute(text("INSERT INTO log (who) VALUES (:who)"), {"who": ROW})


def _log_pages(db) -> int:
    """Pages in the log now (a PASSIVE checkpoint reports them; it also copies them). On a
    connection of its own: a checkpoint cannot run inside a transaction."""
    connection = sqlite3.connect(db.engine.url.database, isolation_level=None)
    try:
        return connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    finally:
        connection.close()


def _autocheckpoint(db) -> int:
    with db.reading() as s:
        return s.execute(text("PRAGMA wal_autocheckpoint")).scalar_one()


def _wait_for(condition, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_without_a_checkpointer_commits_checkpoint_as_sqlite_does(sqlite_db):
    assert _autocheckpoint(sqlite_db) == 1000
    _commit_rows(sqlite_db, 700)        # well past 1,000 log pages
    assert _log_pages(sqlite_db) < 1000, "the commits let the log grow past SQLite's own checkpoint"


def test_with_the_checkpointer_commits_leave_the_log_to_it(sqlite_db):
    checkpointer = sqlite_db.checkpointer
    checkpointer.every_commits, checkpointer.idle_seconds = 10 ** 9, 3600     # it never gets to run
    sqlite_db.start_checkpointer()
    assert _autocheckpoint(sqlite_db) == SAFETY_NET_PAGES
    _commit_rows(sqlite_db, 700)
    assert 1000 < _log_pages(sqlite_db) < SAFETY_NET_PAGES
    assert checkpointer.checkpoints == 0


def test_the_checkpointer_copies_the_log_after_enough_commits_and_when_they_stop(sqlite_db):
    checkpointer = sqlite_db.checkpointer
    checkpointer.every_commits, checkpointer.idle_seconds = 50, 0.3
    sqlite_db.start_checkpointer()
    _commit_rows(sqlite_db, 120)
    assert _wait_for(lambda: checkpointer.checkpoints >= 2), "no checkpoint after 120 commits"
    _commit_rows(sqlite_db, 7)          # fewer than every_commits: copied once the process is quiet
    copied_before = checkpointer.pages_copied
    assert _wait_for(lambda: checkpointer.pages_copied > copied_before)
    assert checkpointer.failures == 0
    with sqlite_db.reading() as s:
        assert s.execute(text("SELECT count(*) FROM log")).scalar_one() == 127


def test_disposing_of_the_database_stops_the_checkpointer(sqlite_db):
    sqlite_db.start_checkpointer()
    assert sqlite_db.checkpointer.running
    sqlite_db.dispose()
    assert not sqlite_db.checkpointer.running


def test_a_database_without_a_file_has_no_checkpointer():
    assert Database("sqlite:///:memory:").checkpointer is None
