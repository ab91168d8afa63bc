"""The `perfbudget` command line: init, demo, serve, deploy, users."""
from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import FlaskGroup

from engine.errors import PerfBudgetError

from .context import core


def _fail(exc: PerfBudgetError) -> None:
    click.secho(f"error: {exc.message}", fg="red", err=True)
    sys.exit(1)


def register(app: Flask) -> None:
    @app.cli.command("init")
    def init_command():
        """Create or upgrade the schema and deploy every model under processes/."""
        try:
            results = core().init()
        except PerfBudgetError as exc:
            _fail(exc)
        click.echo(f"Database ready: {_safe_url(core().db.url)}")
        for version, created in results:
            state = "deployed" if created else "unchanged"
            click.echo(f"  {version.key} v{version.version} ({state})")

    @app.cli.command("demo")
    def demo_command():
        """Load demo organisations, users, projects and cases (safe to run again)."""
        from engine import demo
        try:
            core().init()
            logins = demo.load(core())
        except PerfBudgetError as exc:
            _fail(exc)
        click.echo(f"Demo data ready. Log in at http://127.0.0.1:5000 with password '{demo.DEMO_PASSWORD}':")
        for username, role, org in logins:
            click.echo(f"  {username:<14} {role:<14} {org}")

    @app.cli.command("deploy")
    @click.argument("path", type=click.Path(file_okay=False))
    def deploy_command(path):
        """Deploy one process model folder as a new version."""
        try:
            core().init_schema()
            version, created = core().processes.deploy_folder(path)
        except PerfBudgetError as exc:
            _fail(exc)
        word = "Deployed" if created else "Unchanged, still"
        click.echo(f"{word} {version.key} version {version.version}")

    @app.cli.command("users")
    @click.argument("username")
    @click.option("--name", "display_name", help="Display name.")
    @click.option("--password", help="Set this password (prompted when creating a user without it).")
    @click.option("--role", help="Grant this role code (with --org).")
    @click.option("--org", "org_code", help="Organisation code where the role is held.")
    @click.option("--email", help="E-mail address for notifications ('' removes it).")
    def users_command(username, display_name, password, role, org_code, email):
        """Add a user, set a password, or grant a role in an organisation."""
        accounts = core().accounts
        try:
            core().init_schema()
            if role or org_code:
                if not (role and org_code):
                    raise click.UsageError("--role and --org go together")
            exists = core().reads.user_exists(username)
            if not exists and not password:
                password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
            accounts.ensure_user(username, display_name, password, email=email)
            if role:
                accounts.grant(username, role, org_code)
        except PerfBudgetError as exc:
            _fail(exc)
        click.echo(f"{'Updated' if exists else 'Created'} user {username}"
                   + (f"; granted {role} in {org_code}" if role else ""))

    @app.cli.command("serve")
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=5000, show_default=True, type=int)
    @click.option("--threads", default=8, show_default=True, type=int)
    @click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
                  help="Serving processes (gunicorn workers). More than one lets requests use more "
                       "than one core; each process opens its own database connections.")
    @click.option("--active", default=1, show_default=True, type=click.IntRange(0, 256),
                  help="Requests of one serving process that run at once; the others wait their turn "
                       "with their bodies received (0: no limit). One process computes on one core "
                       "at a time, and more at once only cost CPU; use --workers for more cores.")
    @click.option("--timers/--no-timers", default=True, show_default=True,
                  help="Also fire due timers in the serving process (off when `perfbudget worker` runs apart).")
    def serve_command(host, port, threads, workers, active, timers):
        """Serve the app with a multi-threaded production server."""
        core().init()
        core().specs.warm()
        from .server import serve
        click.echo(f"PerfBudget on http://{host}:{port}  (database: {_safe_url(core().db.url)}; "
                   f"{workers} serving process{'es' if workers > 1 else ''} of {threads} threads, "
                   f"{active or 'any number of'} running at once)")
        serve(app, host, port, threads, workers=workers, timers=timers, active=active)

    @app.cli.command("worker")
    @click.option("--once", is_flag=True, help="Process what is due now, then exit.")
    def worker_command(once):
        """Fire due timers and launch scheduled campaigns; loops, sleeping until the next due time."""
        import logging
        from engine.worker import TimerWorker
        from .notifications import email_settings
        from flask import current_app
        worker = TimerWorker(core(), email=email_settings(current_app))
        if once:
            result = worker.run_once()
            click.echo(f"Timers fired in {len(result.fired)} case(s)"
                       + (f", {len(result.failed)} failed" if result.failed else "")
                       + (f"; {len(result.reminded)} reminder(s)" if result.reminded else "")
                       + (f"; {len(result.escalated)} escalation(s)" if result.escalated else "")
                       + (f"; launched campaign(s) {', '.join(map(str, result.campaigns))}" if result.campaigns else ""))
            if result.failed:
                sys.exit(1)
            return
        # The worker's own news at INFO; SpiffWorkflow logs every task state at INFO, too much here.
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        logging.getLogger("perfbudget").setLevel(logging.INFO)
        click.echo(f"Timer worker on {_safe_url(core().db.url)}; Ctrl-C stops it")
        core().specs.warm()
        try:
            worker.run_forever()
        except KeyboardInterrupt:
            pass

    @app.cli.command("analyze")
    def analyze_command():
        """Refresh the database's query planner statistics (after a large import; now and then on SQLite)."""
        from storage.schema import analyze
        analyze(core().db)
        click.echo("Planner statistics refreshed.")

    @app.cli.command("backup")
    @click.argument("path", type=click.Path())
    def backup_command(path):
        """Back up the whole database to PATH (SQLite file, or pg_dump custom format), online."""
        from storage import backup
        try:
            info = backup.backup(core().db, path)
        except backup.BackupError as exc:
            _fail(exc)
        click.echo(f"Backed up {_safe_url(core().db.url)} to {info.path}: {backup.KIND_NAMES[info.kind]} backup "
                   f"at schema revision {info.revision}, {info.size} bytes")

    @app.cli.command("restore")
    @click.argument("path", type=click.Path())
    @click.option("--yes", is_flag=True, help="Confirm that every table is to be replaced by the backup's content.")
    def restore_command(path, yes):
        """Replace the whole database with the backup at PATH (needs --yes)."""
        from storage import backup
        target = _safe_url(core().db.url)
        if not yes:
            click.secho(f"error: restoring replaces everything in {target} with the content of {path}; "
                        "run again with --yes to confirm", fg="red", err=True)
            sys.exit(1)
        try:
            info = backup.restore(core().db, path)
        except backup.BackupError as exc:
            _fail(exc)
        click.echo(f"Restored {info.path} into {target} (schema revision {info.revision})")
        if info.upgraded_to:
            click.echo(f"Upgraded the schema from revision {info.revision} to {info.upgraded_to}")
        click.echo("Restart any running PerfBudget server: it keeps state cached from before the restore")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)


def _create_app():
    from . import create_app
    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False, add_version_option=False,
             load_dotenv=False)
def cli():
    """PerfBudget: full-process budget performance management."""


def main() -> None:
    cli()
