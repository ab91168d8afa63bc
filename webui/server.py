"""`perfbudget serve`: gunicorn with threaded workers, configured in code."""
from __future__ import annotations

from gunicorn.app.base import BaseApplication


class _Server(BaseApplication):
    def __init__(self, app, options: dict):
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.application


def _timers_in_worker(app):
    """gunicorn's post_worker_init hook: run the timer worker as a daemon thread of each
    serving process. Not in the master: threads do not survive fork, and the master serves
    nothing. Several serving processes each get a thread, which is safe (timers are claimed
    per case), and the thread dies with its process, so gunicorn's restarts manage it."""
    def hook(_worker):
        from engine.worker import TimerWorker
        core = app.extensions["perfbudget"]
        # Connections opened by the master before the fork are its own: start afresh here.
        core.db.engine.dispose(close=False)
        if core.db.read_engine is not core.db.engine:
            core.db.read_engine.dispose(close=False)
        TimerWorker(core).start_thread()
    return hook


def serve(app, host: str, port: int, threads: int, workers: int = 1, timers: bool = True) -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "accesslog": "-",
        "timeout": 60,
    }
    if timers:
        options["post_worker_init"] = _timers_in_worker(app)
    _Server(app, options).run()
