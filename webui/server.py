"""`perfbudget serve`: gunicorn with threaded workers, configured in code."""
from __future__ import annotations

from gunicorn.app.base import BaseApplication


class _Server(BaseApplication):
    def __init__(self, app, options: dict):
        self.application = app      # what gunicorn calls: the Flask app, behind the request gate
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            if key in self.cfg.settings:    # settings newer than the installed gunicorn are skipped
                self.cfg.set(key, value)

    def load(self):
        return self.application


def _worker_threads(app, timers: bool):
    """gunicorn's post_worker_init hook: the background threads of each serving process — the
    SQLite log checkpointer (storage/wal_checkpointer.py) and, unless `--no-timers`, the timer
    worker. Not in the master: threads do not survive fork, and the master serves nothing.
    Several serving processes each get their own, which is safe (timers are claimed per case;
    SQLite runs one checkpoint at a time), and the threads die with their process, so
    gunicorn's restarts manage them."""
    def hook(_worker):
        core = app.extensions["perfbudget"]
        core.db.start_checkpointer()
        if timers:
            from engine.worker import TimerWorker
            from .notifications import email_settings
            TimerWorker(core, email=email_settings(app)).start_thread()
    return hook


def _own_connections(app):
    """gunicorn's post_fork hook: a serving process starts with no database connection of the
    master's. Forgotten, not closed: closing would end the master's sessions under it."""
    def hook(_arbiter, _worker):
        core = app.extensions["perfbudget"]
        core.db.engine.dispose(close=False)
        if core.db.read_engine is not core.db.engine:
            core.db.read_engine.dispose(close=False)
    return hook


def freeze_startup_heap() -> None:
    """Move every object alive now (modules, the app, the warmed specs and forms) out of the
    garbage collector's reach. They live as long as the process, yet each full collection
    walked all of them again: about 0.2 ms per request, 4 % of a task completion. In the
    master before forking, it also keeps the serving processes' collections from writing to
    pages they share with it (gc.freeze's documented use)."""
    import gc
    gc.collect()    # what is garbage already is freed, not frozen for good
    gc.freeze()


def gated(app, active: int):
    """The Flask app behind a RequestGate of `active` slots (0: no gate). The gate receives
    bodies up to the largest any route accepts (the attachment uploads')."""
    if active == 0:
        return app
    from .attachments import UPLOAD_BODY_LIMITS
    from .request_gate import RequestGate
    limit = max([app.config.get("MAX_CONTENT_LENGTH") or 0, *UPLOAD_BODY_LIMITS.values()])
    return RequestGate(app, slots=active, body_limit=limit)


def serve(app, host: str, port: int, threads: int, workers: int = 1, timers: bool = True,
          active: int = 1) -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "accesslog": "-",
        "timeout": 60,
        # gunicorn 27's control socket sits at one path per user (~/.gunicorn/gunicorn.ctl): two
        # servers on one machine (tests, benchmarks, a second instance) would fight over it.
        "control_socket_disable": True,
    }
    options["post_fork"] = _own_connections(app)
    options["post_worker_init"] = _worker_threads(app, timers)
    # Close what the master opened (init, the spec warm-up) before it forks. A pooled connection
    # inherited by a serving process shares its socket with the master and with every serving
    # process forked before: on PostgreSQL, one SIGKILLed in the middle of a transaction left
    # the server-side session open in that transaction, and the next process forked took the
    # connection over and read the dead one's half-consumed answers (500s), or carried on
    # inside its transaction and could commit half of a request that never returned.
    core = app.extensions["perfbudget"]
    core.db.dispose()
    freeze_startup_heap()
    _Server(gated(app, active), options).run()
