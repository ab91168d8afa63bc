"""One request at a time runs the app in a serving process; the others wait their turn.

Why: the app's work is CPU in Python (the engine, SQLAlchemy, SQLite in-process), and a
process runs Python on one core at a time (the GIL). Two threads working at once do not go
faster; they hand the GIL to each other at every database call (the driver lets it go around
each statement), and every hand-over is a wake-up and a context switch. Measured with
`bench/bench_throughput.py --active 0,1` (2 workers, 4 clients, two rounds): SQLite 39.7-40.9 ->
36.4-36.7 ms of app CPU per case and 36.0-36.7 -> 43.5-44.1 cases/s; PostgreSQL 43.5-44.1 ->
38.4-40.2 ms (its own backends 11.5-11.8 -> 8.7-9.9) and 31.7-33.9 -> 36.5-39.1 cases/s.

Threads are still what lets a process take several connections: the gate only holds back the
part that computes. A request's body is received before it queues (a slow upload over a slow
link holds a thread, not everyone's turn), and its response is sent after its turn ends
(gunicorn writes it once the app has returned; files are streamed then too).

Like the SQLite writer queue, the gate is an optimisation and never a new way to hang: a
request that has waited `wait_seconds` (one very long request ahead of it; a lock held
elsewhere) runs anyway, beside the one holding the turn, as it would without the gate.
"""
from __future__ import annotations

import logging
import tempfile
import threading
from typing import Callable, Iterable

log = logging.getLogger(__name__)

# Bodies up to this size are held in memory; larger ones (attachments) go to a temporary file.
IN_MEMORY_BODY_BYTES = 1024 * 1024
_READ_STEP = 64 * 1024
WAIT_SECONDS = 2.0


class RequestGate:
    """WSGI middleware: at most `slots` requests of this process run `app` at once."""

    def __init__(self, app: Callable, slots: int = 1, body_limit: int | None = None,
                 wait_seconds: float = WAIT_SECONDS):
        if slots < 1:
            raise ValueError("a gate needs at least one slot")
        self.app = app
        self.slots = slots
        self.body_limit = body_limit
        self.wait_seconds = wait_seconds
        self._turns = threading.BoundedSemaphore(slots)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        try:
            self._receive_body(environ)
        except Exception:   # noqa: BLE001 - whatever the server's reader raises, the body is incomplete
            # The client stopped sending (or sent broken chunking): there is no request to run.
            start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"The request body was not received completely.\n"]
        if not self._turns.acquire(timeout=self.wait_seconds):
            log.warning("request %s %s waited %.1f s for its turn; running it beside the one ahead",
                        environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), self.wait_seconds)
            return self.app(environ, start_response)
        try:
            return self.app(environ, start_response)
        finally:
            self._turns.release()

    def _receive_body(self, environ: dict) -> None:
        """Read the whole body from the connection and hand the app a local copy of it. A body
        larger than any route accepts is left unread: the app refuses it from its headers."""
        stream = environ.get("wsgi.input")
        if stream is None:
            return
        declared = environ.get("CONTENT_LENGTH")
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if declared:
            try:
                remaining = int(declared)
            except ValueError:
                return      # the app answers the malformed header
            if remaining <= 0 or (self.body_limit is not None and remaining > self.body_limit):
                return
        elif chunked:
            # No length given: read one byte past the limit at most, so the app still sees
            # (and refuses) a body that is too large, without receiving all of it.
            remaining = self.body_limit + 1 if self.body_limit is not None else None
        else:
            return          # no body
        copy = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_BODY_BYTES)
        while remaining is None or remaining > 0:
            block = stream.read(_READ_STEP if remaining is None else min(_READ_STEP, remaining))
            if not block:
                break
            copy.write(block)
            if remaining is not None:
                remaining -= len(block)
        if declared and remaining:
            raise EOFError("the connection closed before the declared body length")
        copy.seek(0)
        environ["wsgi.input"] = copy
        if chunked:
            # The copy ends where the body ended; tell the app to read it to its end.
            environ["wsgi.input_terminated"] = True
