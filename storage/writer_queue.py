"""A queue in front of SQLite's single write lock.

SQLite lets one writer at a time hold a database. A writer that finds it taken does not wait
in line: its busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms between
retries, so once the lock is free again it can stay idle for up to 100 ms while the CPU has
nothing to do. Under concurrent requests (gunicorn threads and workers) that sleeping, not the
work, set the pace: two workers completed fewer cases per second than one.

This queue makes writers wait where they are woken at once: threads of one process on a
`threading.Lock`, processes on an advisory `flock` of a file beside the database (the way
`-wal` and `-shm` sit beside it). Whoever holds both is the only writer of this process family
that asks SQLite for its lock, which it then gets without sleeping.

The queue is only an optimisation, never a new way to fail: a nested write transaction in the
same thread skips it (as before, SQLite's busy timeout decides), and a writer that has waited
the whole timeout goes ahead anyway, where SQLite's own timeout answers "database is locked"
as it always did. Writers outside this class (migrations, backups) do not queue; SQLite still
keeps them correct.
"""
from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager
from typing import Iterator

# Between two tries for the file lock held by another process (flock cannot wait with a
# timeout, and a blocking wait with none would hang every writer behind a stuck one). Short,
# because the time slept after the lock is freed is lost: with two gunicorn workers, polling up
# to every 1 ms gave 22-24 cases/s, up to every 0.25 ms 25-28 (bench_throughput.py, SQLite,
# interleaved). The thread that polls is the only waiting one of its process (the others wait
# on the thread lock), so this costs little CPU.
_POLL_SECONDS = (0.0001, 0.00025)


class WriterQueue:
    def __init__(self, database_path: str, timeout_seconds: float):
        self.lock_path = database_path + "-writers.lock"
        self.timeout = timeout_seconds
        self._held = threading.local()
        self._pid = None        # the process that made _thread_lock and _fd (see _for_this_process)
        self._thread_lock: threading.Lock | None = None
        self._fd: int | None = None
        self._setup = threading.Lock()

    def _for_this_process(self) -> tuple[threading.Lock, int | None]:
        # A forked child (a gunicorn worker) must not share the parent's file description (flock
        # locks belong to it, so parent and child would never exclude each other), nor inherit
        # a thread lock, or a thread's "already holds its turn", from the moment of the fork.
        pid = os.getpid()
        if self._pid != pid:
            with self._setup:
                if self._pid != pid:
                    if self._fd is not None:
                        # The parent's descriptor, inherited: closing this copy leaves the
                        # parent's lock alone, and a dead parent's lock then dies with it.
                        os.close(self._fd)
                    self._thread_lock = threading.Lock()
                    self._held = threading.local()
                    try:
                        self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                    except OSError:
                        # No lock file here (a read-only folder): threads still queue, and
                        # processes fall back on SQLite's busy handler as before.
                        self._fd = None
                    self._pid = pid
        return self._thread_lock, self._fd

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Wait for this writer's turn, hold it for the block, then wake the next writer."""
        thread_lock, fd = self._for_this_process()
        if getattr(self._held, "depth", 0):
            self._held.depth += 1
            try:
                yield
            finally:
                self._held.depth -= 1
            return
        deadline = time.monotonic() + self.timeout
        have_thread = thread_lock.acquire(timeout=self.timeout)
        try:
            have_file = have_thread and fd is not None and self._lock_file(fd, deadline)
        except OSError:
            have_file = False       # a file system without flock: SQLite's own lock still orders writers
        self._held.depth = 1
        try:
            yield
        finally:
            self._held.depth = 0
            if have_file:
                fcntl.flock(fd, fcntl.LOCK_UN)
            if have_thread:
                thread_lock.release()

    @staticmethod
    def _lock_file(fd: int, deadline: float) -> bool:
        tries = 0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(_POLL_SECONDS[min(tries, len(_POLL_SECONDS) - 1)])
                tries += 1

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._pid = self._fd = self._thread_lock = None
