"""Copy SQLite's write-ahead log back into the database from a thread of its own.

In WAL mode every commit appends the pages it changed to `<database>-wal`; a checkpoint copies
them into the database file and syncs it, so the log can start over. By default SQLite runs that
checkpoint in the connection whose commit took the log past 1,000 pages, inside the COMMIT — for
the app, inside `Database.transaction()`, while the writer queue holds every other writer of
every process back, and on the request that happened to commit last. A completion adds about 25
pages, so every 40th or so paid for everyone's copying and syncing. Measured with
`bench/bench_throughput.py` (SQLite, 2 workers, 4 clients): with no checkpoint in the commits
at all, 45 -> 49.5 cases per second.

A serving process (`perfbudget serve`) starts this checkpointer: its connections then leave
checkpoints to it up to a far larger log (`SAFETY_NET_PAGES`, in case it falls behind), and it
runs a PASSIVE checkpoint — one that never waits for, nor blocks, readers or writers — after
every `every_commits` commits of its process, or when commits have stopped for `idle_seconds`.
Several processes may each run one; SQLite lets one checkpoint run at a time and the others
return at once. Processes that do not start one (the CLI, `perfbudget worker`) keep SQLite's own.
"""
from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

# wal_autocheckpoint of the connections of a process whose checkpointer runs: a commit still
# checkpoints on its own past this many log pages (~32 MB), if the thread cannot keep up.
SAFETY_NET_PAGES = 8000


class WalCheckpointer:
    def __init__(self, database_path: str, every_commits: int = 32, idle_seconds: float = 2.0,
                 busy_timeout_seconds: float = 15.0):
        self.path = database_path
        self.every_commits = every_commits
        self.idle_seconds = idle_seconds
        self.busy_timeout = busy_timeout_seconds
        self._commits = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # What it has done, for tests and for anyone asking why the log is the size it is.
        self.checkpoints = 0
        self.pages_copied = 0
        self.failures = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sqlite-wal-checkpointer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def note_commit(self) -> None:
        """Called after each write transaction of this process has committed."""
        with self._lock:
            self._commits += 1
            due = self._commits >= self.every_commits
        if due:
            self._wake.set()

    def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint now: (busy, pages in the log, pages copied), as SQLite says."""
        with self._lock:
            self._commits = 0
        connection = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                     check_same_thread=False)
        try:
            busy, in_log, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            connection.close()
        self.checkpoints += 1
        self.pages_copied += max(copied, 0)
        return busy, in_log, copied

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.idle_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            with self._lock:
                pending = self._commits
            # Woken: enough commits. Not woken: the process went quiet; copy what it left.
            if pending:
                try:
                    self.checkpoint()
                except sqlite3.Error as exc:     # a locked or vanished file: the next round retries
                    self.failures += 1
                    log.warning("WAL checkpoint of %s failed: %s", self.path, exc)
