"""The request gate of a serving process (webui/request_gate.py): one request at a time runs the
app, a body still arriving does not hold the turn, a request that waited too long still runs, and
the app behind it gets every body whole (through `perfbudget serve`, which puts the gate in front)."""
from __future__ import annotations

import io
import json
import socket
import threading
import time

import requests
from werkzeug.test import EnvironBuilder

import crash_harness as h
from engine import demo
from storage import queries
from webui.request_gate import RequestGate

JOIN_SECONDS = 30       # only a hang reaches it


def _call(gate, environ) -> tuple[str, bytes]:
    status = []
    body = b"".join(gate(environ, lambda s, headers, exc_info=None: status.append(s)))
    return status[0], body


def _call_in_thread(gate, environ) -> tuple[threading.Thread, list]:
    """Start a request in a thread of its own: (the thread, the list its answer goes to)."""
    answers: list = []
    thread = threading.Thread(target=lambda: answers.append(_call(gate, environ)), daemon=True)
    thread.start()
    return thread, answers


class _Recorder:
    """A WSGI app that notes how many of its calls run at once."""

    def __init__(self, hold: threading.Event | None = None, barrier: threading.Barrier | None = None):
        self.lock = threading.Lock()
        self.running = self.most = self.calls = 0
        self.hold, self.barrier = hold, barrier

    def __call__(self, environ, start_response):
        with self.lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
        try:
            if self.barrier is not None:
                self.barrier.wait()
            if self.hold is not None and environ.get("PATH_INFO") == "/hold":
                self.hold.wait(JOIN_SECONDS)
            time.sleep(0.002)   # room for another thread to come in, were it let in
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [environ["wsgi.input"].read()]
        finally:
            with self.lock:
                self.running -= 1


def _run_threads(target, n: int) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_SECONDS)
    assert not any(t.is_alive() for t in threads), "a request never finished"
    return threads


def test_requests_of_one_process_take_turns():
    app = _Recorder()
    gate = RequestGate(app, slots=1, wait_seconds=JOIN_SECONDS)
    answers = []

    def client():
        for i in range(10):
            environ = EnvironBuilder(path="/", method="POST", data=f"body {i}").get_environ()
            answers.append(_call(gate, environ))

    _run_threads(client, 6)
    assert app.calls == 60 and app.most == 1
    assert sorted(body for _s, body in answers) == sorted([f"body {i}".encode() for i in range(10)] * 6)
    assert {status for status, _b in answers} == {"200 OK"}


def test_more_slots_let_that_many_run_together():
    # Two requests that each wait for the other get through only if both run at once.
    app = _Recorder(barrier=threading.Barrier(2, timeout=JOIN_SECONDS))
    gate = RequestGate(app, slots=2, wait_seconds=JOIN_SECONDS)
    _run_threads(lambda: _call(gate, EnvironBuilder(path="/").get_environ()), 2)
    assert app.most == 2


def test_a_request_that_waited_too_long_runs_anyway(caplog):
    hold = threading.Event()
    app = _Recorder(hold=hold)
    gate = RequestGate(app, slots=1, wait_seconds=0.2)
    holder, _ = _call_in_thread(gate, EnvironBuilder(path="/hold").get_environ())
    while app.running == 0:
        time.sleep(0.001)
    second, answer = _call_in_thread(gate, EnvironBuilder(path="/next").get_environ())
    second.join(JOIN_SECONDS)
    try:
        assert answer and answer[0][0] == "200 OK", "the second request waited for the first to end"
        assert holder.is_alive()
        assert "waited 0.2 s for its turn" in caplog.text
    finally:
        hold.set()
        holder.join(JOIN_SECONDS)
    # The turn taken by the holder was given back once: the gate lets one in again, not two.
    assert gate._turns.acquire(blocking=False) and not gate._turns.acquire(blocking=False)


class _SlowBody(io.RawIOBase):
    """A request body whose second half arrives when `more` is set (a slow upload)."""

    def __init__(self, data: bytes, more: threading.Event):
        self.data, self.more, self.sent = data, more, 0

    def readable(self):
        return True

    def read(self, n=-1):
        half = len(self.data) // 2
        if self.sent >= half:
            self.more.wait(JOIN_SECONDS)
        end = len(self.data) if n is None or n < 0 else self.sent + n
        end = min(end, half) if self.sent < half else min(end, len(self.data))
        chunk, self.sent = self.data[self.sent:end], end
        return chunk


def test_a_body_still_arriving_does_not_hold_up_other_requests(app):
    gate = RequestGate(app, slots=1, wait_seconds=600)     # no falling back within the test
    login = json.dumps({"username": "school_unit", "password": demo.DEMO_PASSWORD}).encode()
    more = threading.Event()
    slow = EnvironBuilder(path="/api/v1/tokens", method="POST", data=login,
                          content_type="application/json").get_environ()
    slow["wsgi.input"] = _SlowBody(login, more)
    uploader, slow_answer = _call_in_thread(gate, slow)
    while slow["wsgi.input"].sent == 0:
        time.sleep(0.001)
    reader, other = _call_in_thread(gate, EnvironBuilder(path="/api/v1/openapi.json").get_environ())
    reader.join(JOIN_SECONDS)
    try:
        assert other and other[0][0] == "200 OK", "a request waited for another one's body to arrive"
        assert uploader.is_alive() and not slow_answer
    finally:
        more.set()
        uploader.join(JOIN_SECONDS)
    status, body = slow_answer[0]
    assert status == "201 CREATED" and json.loads(body)["token"]


def _raw_request(port: int, head: bytes, body: bytes = b"", close_write: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=JOIN_SECONDS) as sock:
        sock.sendall(head + body)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while b"\r\n\r\n" not in answer:
            block = sock.recv(65536)
            if not block:
                break
            answer += block
        return answer


def test_the_served_app_gets_every_body_whole(demo_core, actor, project_id, database_url, tmp_path):
    """Through `perfbudget serve` (the gate in front, one request at a time): a 3 MB upload (held in
    a temporary file on its way) comes back byte for byte, a chunked body arrives whole, a body
    larger than any route takes is refused without being waited for, and one cut short gets a 400."""
    tokens = h.issue_tokens(demo_core, ["school_unit"])
    case = demo_core.cases.start(actor("school_unit"), "goal_review", project_id("EDU-2027-001"))
    with demo_core.db.reading() as s:
        [task] = queries.open_tasks_of_case(s, case.id)
    task_id = task.id
    server = h.ServerProcess(database_url, tmp_path, h.free_port())
    try:
        server.start()
        server.wait_ready()
        base = f"http://127.0.0.1:{server.port}/api/v1"
        auth = {"Authorization": f"Bearer {tokens['school_unit']}"}
        content = b"%PDF-1.7\n" + bytes(range(256)) * (3 * 4096) + b"\n%%EOF\n"
        r = requests.post(f"{base}/tasks/{task_id}/attachments", headers=auth,
                          files={"file": ("plan.pdf", content, "application/pdf")}, timeout=JOIN_SECONDS)
        assert r.status_code == 201, r.text
        r = requests.get(f"{base}/attachments/{r.json()['id']}", headers=auth, timeout=JOIN_SECONDS)
        assert r.status_code == 200 and r.content == content

        login = json.dumps({"username": "school_unit", "password": demo.DEMO_PASSWORD}).encode()
        r = requests.post(f"{base}/tokens", data=(login[i:i + 7] for i in range(0, len(login), 7)),
                          headers={"Content-Type": "application/json"}, timeout=JOIN_SECONDS)
        assert r.request.headers.get("Transfer-Encoding") == "chunked"
        assert r.status_code == 201 and r.json()["token"]

        head = (f"POST /api/v1/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {10 ** 9}\r\nConnection: close\r\n\r\n").encode()
        assert _raw_request(server.port, head).startswith(b"HTTP/1.1 413")

        head = (b"POST /api/v1/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\nConnection: close\r\n\r\n")
        assert _raw_request(server.port, head, b'{"username"', close_write=True).startswith(b"HTTP/1.1 400")

        assert requests.get(f"{base}/openapi.json", timeout=JOIN_SECONDS).status_code == 200
        assert "Traceback" not in server.log_since_start()
    finally:
        server.kill()
