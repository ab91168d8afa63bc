"""Database engine and units of work."""
from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from storage.wal_checkpointer import SAFETY_NET_PAGES, WalCheckpointer
from storage.writer_queue import WriterQueue

SQLITE_BUSY_TIMEOUT_MS = 15000
_ONE_STATEMENT = "perfbudget_one_statement"


def _configure_sqlite(engine: Engine, immediate: bool, background_checkpoints) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Autocommit at the driver level; SQLAlchemy's BEGIN below takes over transactions.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if background_checkpoints():
            # The process's checkpointer copies the log back; a commit does only past the safety net.
            cur.execute(f"PRAGMA wal_autocheckpoint={SAFETY_NET_PAGES}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        if conn.get_execution_options().get(_ONE_STATEMENT):
            return      # see read_connection
        # Writers BEGIN IMMEDIATE: they take the write lock up front and queue on the busy
        # timeout, instead of failing with "database is locked" when a read lock is upgraded.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# _end_read: on PostgreSQL a read ends with COMMIT, not ROLLBACK. Both just end a transaction
# that wrote nothing, but psycopg forgets every statement it prepared on the connection at each
# ROLLBACK, so with reads ending that way no statement ever reached its prepare threshold (5
# uses) and the server planned every statement afresh on every request: 4-5 ms for the inbox
# page's joined SELECT. A read that failed still rolls back (close()).
class Database:
    def __init__(self, url: str, echo: bool = False):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # SQLite runs one write transaction at a time for the whole database: work that can be
        # done before a writer takes its turn (running the engine) should be. PostgreSQL locks
        # rows, so a writer holding a case's rows delays that case alone.
        self.one_writer_at_a_time = self.is_sqlite
        kwargs: dict = {"echo": echo, "future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        else:
            # No pool_pre_ping: it costs a round trip (SELECT 1) at every checkout, i.e. at every
            # session of every request. Instead, connections are replaced after pool_recycle,
            # and when a statement fails with a disconnect (a server restart) SQLAlchemy
            # invalidates that connection and every older one in the pool: that one request
            # fails and the next ones get fresh connections.
            kwargs.update(pool_size=10, max_overflow=20, pool_recycle=1800)
            if make_url(url).get_driver_name() == "psycopg":
                from storage.pg_cursor import LazyDescriptionCursor
                kwargs["connect_args"] = {"cursor_factory": LazyDescriptionCursor}
        self.engine = create_engine(url, **kwargs)
        # SQLite writers line up in a queue that wakes the next one at once (see writer_queue);
        # an in-memory database has no file to lock and only one connection anyway.
        path = make_url(url).database if self.is_sqlite else None
        on_disk = bool(path) and path != ":memory:" and not path.startswith("file:")
        self.writer_queue = WriterQueue(os.path.abspath(path), SQLITE_BUSY_TIMEOUT_MS / 1000) if on_disk else None
        # Not started here: a serving process starts it (start_checkpointer).
        self.checkpointer = (WalCheckpointer(os.path.abspath(path), busy_timeout_seconds=SQLITE_BUSY_TIMEOUT_MS / 1000)
                             if on_disk else None)
        if self.is_sqlite:
            _configure_sqlite(self.engine, immediate=True, background_checkpoints=self._checkpointing)
            # Readers get their own pool with deferred transactions, so WAL lets them run
            # beside a writer.
            self.read_engine = create_engine(url, **kwargs)
            _configure_sqlite(self.read_engine, immediate=False, background_checkpoints=self._checkpointing)
        else:
            self.read_engine = self.engine
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)

    def _checkpointing(self) -> bool:
        return self.checkpointer is not None and self.checkpointer.running

    def start_checkpointer(self) -> None:
        """SQLite: copy the write-ahead log back into the database from a thread of this process
        instead of inside commits (storage/wal_checkpointer.py). For a long-running process that
        writes (a serving process); call it after any fork. Connections opened before keep
        SQLite's own checkpoints, so the pools are emptied first."""
        if self.checkpointer is None or self.checkpointer.running:
            return
        self.checkpointer.start()
        self.engine.dispose()
        self.read_engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on any error."""
        with self.writer_queue.turn() if self.writer_queue is not None else nullcontext():
            session = self._sessions()
            try:
                with session.begin():
                    yield session
            finally:
                session.close()
        if self._checkpointing():
            self.checkpointer.note_commit()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session (no write lock on SQLite)."""
        session = self._read_sessions()
        try:
            yield session
            if not self.is_sqlite and not (session.new or session.dirty or session.deleted):
                session.commit()    # nothing to write; see _end_read
        finally:
            # close() ends the transaction without expiring what was loaded, so results
            # stay readable after the block.
            session.close()

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A Core connection for one plain SELECT: no Session, no identity map, and no
        transaction around it, for the statement every API request runs (token
        authentication). One statement sees one consistent state on its own; a BEGIN before
        it and a ROLLBACK (SQLite) or COMMIT (PostgreSQL) after it were two more round trips
        per request. Run a single statement on it: two would not see the same state."""
        with self.read_engine.connect() as conn:
            if self.is_sqlite:
                conn.execution_options(**{_ONE_STATEMENT: True})     # the driver autocommits
            else:
                conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()
        if self.writer_queue is not None:
            self.writer_queue.close()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()
