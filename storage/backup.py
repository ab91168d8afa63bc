"""Backing up and restoring the whole database.

SQLite: sqlite3's online backup API copies the live database page by page in one step, under
one read transaction, so the copy is a consistent snapshot that includes what is committed in
the WAL, while the app keeps running. The copy is a single self-contained file (rollback
journal mode). Restoring runs the backup API the other way, into the live file: it writes
every page in one write transaction, so the database is replaced whole or not at all.

PostgreSQL: pg_dump in custom format (-Fc), and pg_restore --clean --if-exists --no-owner in
one transaction. The connection comes from the configured URL; the password is handed over in
PGPASSWORD, never on a command line.

A backup says what it is by its first bytes ('SQLite format 3\\0' or 'PGDMP'); a backup of one
kind is never restored into a database of the other. A backup must hold our schema (the
alembic_version table) at a revision this code knows; an older one is upgraded after the
restore, a newer one is refused.
"""
from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from .db import SQLITE_BUSY_TIMEOUT_MS, Database
from .models import Base
from .schema import alembic_config, upgrade

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
KIND_NAMES = {SQLITE: "SQLite", POSTGRESQL: "PostgreSQL"}
SQLITE_MAGIC = b"SQLite format 3\x00"
PG_MAGIC = b"PGDMP"

# libpq connection parameters a URL may carry in its query, and the variables that set them.
PG_QUERY_ENV = {
    "host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "sslmode": "PGSSLMODE",
    "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY", "sslrootcert": "PGSSLROOTCERT", "sslcrl": "PGSSLCRL",
    "connect_timeout": "PGCONNECT_TIMEOUT", "application_name": "PGAPPNAME", "options": "PGOPTIONS",
    "target_session_attrs": "PGTARGETSESSIONATTRS", "gssencmode": "PGGSSENCMODE",
    "channel_binding": "PGCHANNELBINDING", "passfile": "PGPASSFILE", "service": "PGSERVICE",
}
PG_CONNECT_TIMEOUT = "10"
# How libpq's tools say they could not open the connection (refused, unknown host, timeout,
# authentication failed, no such database).
UNREACHABLE = re.compile(r"connection to server .* failed|could not connect|could not translate host name")


class BackupError(Exception):
    """A backup or restore that could not be done; nothing was changed."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class BackupInfo:
    kind: str           # sqlite | postgresql
    path: Path
    revision: str       # the schema revision in the backup
    size: int           # bytes


@dataclass
class RestoreInfo:
    kind: str
    path: Path
    revision: str       # the schema revision in the backup
    upgraded_to: str | None     # the head revision, when the backup was older and was upgraded


# ---- what a file is --------------------------------------------------------------------------

def kind_of_database(db: Database) -> str:
    return SQLITE if db.is_sqlite else POSTGRESQL


def detect_kind(path: str | os.PathLike) -> str | None:
    """'sqlite' or 'postgresql' by the file's magic bytes, None for anything else."""
    with open(path, "rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if head == SQLITE_MAGIC:
        return SQLITE
    if head.startswith(PG_MAGIC):
        return POSTGRESQL
    return None


def _not_a_backup(path: Path, why: str) -> BackupError:
    return BackupError(f"{path} is not a PerfBudget backup: {why}")


def _check_restorable_file(db: Database, path: Path) -> str:
    if not path.exists():
        raise BackupError(f"no such file: {path}")
    if not path.is_file():
        raise BackupError(f"{path} is not a file")
    kind = detect_kind(path)
    if kind is None:
        raise _not_a_backup(path, "it is neither an SQLite database nor a PostgreSQL custom-format dump")
    target = kind_of_database(db)
    if kind != target:
        article = "an" if kind == SQLITE else "a"
        raise BackupError(f"{path} is a backup of {article} {KIND_NAMES[kind]} database and cannot be restored "
                          f"into the configured {KIND_NAMES[target]} database")
    return kind


# ---- schema revisions ------------------------------------------------------------------------

def _scripts(db: Database) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(db.url))


def head_revision(db: Database) -> str:
    return _scripts(db).get_current_head()


def _check_revision(db: Database, path: Path, revision: str) -> None:
    """The backup's revision must be one of this code's migrations (else it is newer)."""
    scripts = _scripts(db)
    known = {script.revision for script in scripts.walk_revisions()}
    if revision not in known:
        raise BackupError(f"{path} is at schema revision {revision}, which this version of PerfBudget does "
                          f"not know (its newest is {scripts.get_current_head()}): the backup was made by "
                          "a newer version; upgrade PerfBudget before restoring it")


def _finish_restore(db: Database, kind: str, path: Path, revision: str) -> RestoreInfo:
    db.dispose()    # pooled connections were opened on the replaced content
    head = head_revision(db)
    if revision == head:
        return RestoreInfo(kind, path, revision, None)
    try:
        upgrade(db)
    except Exception as exc:   # noqa: BLE001 - whatever a migration raised
        raise BackupError(f"{path} was restored at schema revision {revision}, but upgrading it to {head} failed "
                          f"({exc}); run `perfbudget init` to try the upgrade again") from exc
    return RestoreInfo(kind, path, revision, head)


def _prepare_target(path: Path, live: Path | None = None) -> None:
    if path.exists() and not path.is_file():
        raise BackupError(f"{path} exists and is not a file")
    if not path.parent.is_dir():
        raise BackupError(f"no such directory: {path.parent}")
    if live is not None and path.exists() and live.exists() and path.samefile(live):
        raise BackupError(f"{path} is the live database itself; choose another file for the backup")


def _temporary_beside(path: Path) -> Path:
    """A new empty file in the target's directory, so that os.replace is atomic."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    return Path(name)


# ---- entry points ----------------------------------------------------------------------------

def backup(db: Database, path: str | os.PathLike) -> BackupInfo:
    """Write a backup of the whole database to `path` (replaced atomically if it exists)."""
    path = Path(path)
    if db.is_sqlite:
        return _sqlite_backup(db, path)
    return _pg_backup(db, path)


def restore(db: Database, path: str | os.PathLike) -> RestoreInfo:
    """Replace the whole content of the database with the backup at `path`. The file is checked
    first; a backup of the other kind, of another schema or of a newer schema revision is refused
    and nothing is changed."""
    path = Path(path)
    kind = _check_restorable_file(db, path)
    if kind == SQLITE:
        return _sqlite_restore(db, path)
    return _pg_restore(db, path)


# ---- SQLite ----------------------------------------------------------------------------------

def sqlite_path(db: Database) -> Path:
    database = make_url(db.url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError("only an SQLite database in a file can be backed up or restored "
                          f"(the configured database is {db.url!r})")
    return Path(database)


def _sqlite_connect(path: Path, mode: str) -> sqlite3.Connection:
    """mode: ro (read only), rw (an existing file) or rwc (created if missing)."""
    uri = f"{path.resolve().as_uri()}?mode={mode}"
    return sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None)


class _Unsound(Exception):
    """What is wrong with an SQLite file, told by whoever knows what the file was meant to be."""


def _sqlite_revision(conn: sqlite3.Connection) -> str | None:
    """Check the file is a sound SQLite database; return its schema revision (None when it has
    no alembic_version table). Raises _Unsound."""
    try:
        check = conn.execute("PRAGMA quick_check").fetchall()
        has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
                                 ).fetchone()
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall() if has_table else None
    except sqlite3.DatabaseError as exc:
        raise _Unsound(f"SQLite cannot read it ({exc})") from None
    if check != [("ok",)]:
        raise _Unsound(f"the SQLite file is damaged ({'; '.join(str(row[0]) for row in check[:3])})")
    if rows is not None and len(rows) != 1:
        raise _Unsound(f"its alembic_version table holds {len(rows)} revisions instead of one")
    return rows[0][0] if rows else None


def _no_schema(db: Database) -> BackupError:
    return BackupError(f"the {KIND_NAMES[kind_of_database(db)]} database has no PerfBudget schema "
                       "(no alembic_version table); run `perfbudget init` first")


def _sqlite_backup(db: Database, path: Path) -> BackupInfo:
    live = sqlite_path(db)
    if not live.is_file():
        raise BackupError(f"the database file {live} does not exist")
    _prepare_target(path, live)
    part = _temporary_beside(path)
    try:
        source = _sqlite_connect(live, "ro")
        try:
            target = sqlite3.connect(part, isolation_level=None)
            try:
                # pages=-1: the whole database in one step, under one read transaction.
                source.backup(target, pages=-1)
                # A standalone file: no -wal beside it that a copy could leave behind.
                target.execute("PRAGMA journal_mode=DELETE")
                revision = _sqlite_revision(target)
            finally:
                target.close()
        finally:
            source.close()
        if revision is None:
            raise _no_schema(db)
        os.replace(part, path)
    except sqlite3.Error as exc:
        raise BackupError(f"the SQLite backup failed: {exc}") from None
    except _Unsound as exc:
        raise BackupError(f"the copy of {live} does not pass its check, no backup was written: {exc}") from None
    finally:
        part.unlink(missing_ok=True)
    return BackupInfo(SQLITE, path, revision, path.stat().st_size)


def _sqlite_restore(db: Database, path: Path) -> RestoreInfo:
    live = sqlite_path(db)
    if live.exists() and path.samefile(live):
        raise BackupError(f"{path} is the live database itself")
    if not live.parent.is_dir():
        raise BackupError(f"no such directory for the database file: {live.parent}")
    try:
        source = _sqlite_connect(path, "ro")
    except sqlite3.Error as exc:
        raise _not_a_backup(path, f"SQLite cannot open it ({exc})") from None
    try:
        try:
            revision = _sqlite_revision(source)
        except _Unsound as exc:
            raise _not_a_backup(path, str(exc)) from None
        if revision is None:
            raise _not_a_backup(path, "the SQLite database has no alembic_version table")
        _check_revision(db, path, revision)
        # (A database file that is gone is created: restoring is how it comes back.)
        target = _sqlite_connect(live, "rwc")
        try:
            # One write transaction on the live file: other connections see the old content or
            # the new, never a mix; a failure leaves the old content.
            source.backup(target, pages=-1)
        except sqlite3.Error as exc:
            raise BackupError(f"restoring into {live} failed, nothing was changed: {exc}") from None
        finally:
            target.close()
    finally:
        source.close()
    return _finish_restore(db, SQLITE, path, revision)


# ---- PostgreSQL ------------------------------------------------------------------------------

def pg_command(tool: str, url: str | URL, args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run a PostgreSQL client tool on the database of
    `url`: every connection setting (the password above all) goes in the environment, never
    on the command line."""
    url = make_url(url)
    program = shutil.which(tool)
    if program is None:
        raise BackupError(f"{tool} was not found on PATH; install the PostgreSQL client tools "
                          "(the same major version as the server or newer)")
    env = dict(os.environ)
    env.setdefault("PGCONNECT_TIMEOUT", PG_CONNECT_TIMEOUT)
    for key, value in url.query.items():
        name = PG_QUERY_ENV.get(key)
        if name is None:
            raise BackupError(f"the database URL option {key!r} is not supported by backup and restore")
        env[name] = value if isinstance(value, str) else value[-1]
    for name, value in (("PGHOST", url.host), ("PGPORT", url.port), ("PGUSER", url.username),
                        ("PGPASSWORD", url.password), ("PGDATABASE", url.database)):
        if value is not None:
            env[name] = str(value)
    return [program, *args], env


def _describe_server(url: URL) -> str:
    where = url.host or url.query.get("host") or "the local socket"
    port = f":{url.port}" if url.port else ""
    return f"database {url.database!r} at {where}{port}"


def _run_pg(tool: str, db: Database, args: list[str], action: str) -> subprocess.CompletedProcess:
    argv, env = pg_command(tool, db.url, args)
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        detail = _tool_message(result.stderr) or f"{tool} exited with status {result.returncode}"
        if UNREACHABLE.search(result.stderr):
            raise BackupError(f"cannot reach the {_describe_server(make_url(db.url))}: {detail}")
        raise BackupError(f"{action} failed: {detail}")
    return result


def _tool_message(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return " ".join(lines[:4])


def _pg_backup(db: Database, path: Path) -> BackupInfo:
    _prepare_target(path)
    part = _temporary_beside(path)
    try:
        _run_pg("pg_dump", db, ["--format=custom", "--no-password", f"--file={part}"], "pg_dump")
        revision = _pg_dump_revision(db, part, path)
        if revision is None:
            raise _no_schema(db)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return BackupInfo(POSTGRESQL, path, revision, path.stat().st_size)


def _pg_list(db: Database, path: Path) -> list[tuple[str, str, str]]:
    """(type, schema, name) of each table and table-data entry of a custom-format dump."""
    argv, env = pg_command("pg_restore", db.url, ["--list", str(path)])
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise _not_a_backup(path, "pg_restore cannot read it as a custom-format dump ("
                            + (_tool_message(result.stderr) or f"status {result.returncode}") + ")")
    entries = []
    for line in result.stdout.splitlines():
        # e.g. "215; 1259 16386 TABLE public alembic_version postgres"
        match = re.match(r"^\d+; \d+ \d+ (TABLE DATA|TABLE) (\S+) (\S+) ", line)
        if match:
            entries.append(match.groups())
    return entries


def _pg_dump_revision(db: Database, file: Path, shown: Path, entries: list | None = None) -> str | None:
    """Check a custom-format dump is readable; return its schema revision (None when it has
    no alembic_version table)."""
    entries = _pg_list(db, file) if entries is None else entries
    tables = [(schema, name) for kind, schema, name in entries if kind == "TABLE" and name == "alembic_version"]
    if not tables:
        return None
    argv, env = pg_command("pg_restore", db.url, ["--data-only", f"--schema={tables[0][0]}",
                                                  "--table=alembic_version", "--file=-", str(file)])
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise _not_a_backup(shown, "pg_restore cannot read its alembic_version data ("
                            + _tool_message(result.stderr) + ")")
    match = re.search(r"^COPY \S*alembic_version \(version_num\) FROM stdin;\n(.*?)^\\\.$", result.stdout,
                      re.MULTILINE | re.DOTALL)
    rows = match.group(1).splitlines() if match else []
    if len(rows) != 1:
        raise _not_a_backup(shown, f"its alembic_version table holds {len(rows)} revisions instead of one")
    return rows[0]


def _pg_restore(db: Database, path: Path) -> RestoreInfo:
    entries = _pg_list(db, path)
    revision = _pg_dump_revision(db, path, path, entries)
    if revision is None:
        raise _not_a_backup(path, "the PostgreSQL dump has no alembic_version table")
    _check_revision(db, path, revision)
    dumped = {name for kind, _schema, name in entries if kind == "TABLE"}
    # Reach the server before touching anything, for a clear message when it is down.
    try:
        with db.engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
    except SQLAlchemyError as exc:
        raise BackupError(f"cannot reach the {_describe_server(make_url(db.url))}: "
                          f"{str(exc).strip().splitlines()[0]}") from None
    # Tables of ours that a later migration created and an older backup does not have: they
    # go, and the upgrade after the restore creates them again, empty as at the backup's time.
    extra = sorted((present & set(Base.metadata.tables)) - dumped)
    db.dispose()
    failed = f"restoring {path} (nothing was changed): "
    restore_args = ["--clean", "--if-exists", "--no-owner", "--no-password"]
    if not extra:
        # One transaction: if any statement fails, the database keeps its old content.
        _run_pg("pg_restore", db, [*restore_args, "--single-transaction", "--exit-on-error",
                                   f"--dbname={_conninfo_dbname(db)}", str(path)], failed + "pg_restore")
    else:
        _pg_restore_dropping(db, path, extra, restore_args, failed)
    return _finish_restore(db, POSTGRESQL, path, revision)


def _pg_restore_dropping(db: Database, path: Path, extra: list[str], restore_args: list[str],
                         failed: str) -> None:
    """pg_restore cannot drop tables its dump does not hold, and their foreign keys keep it from
    dropping the tables they point to: pg_restore writes the SQL, and psql runs it after dropping
    those tables, all in one transaction."""
    fd, name = tempfile.mkstemp(prefix="perfbudget-restore-", suffix=".sql")   # mode 0600: it holds data
    os.close(fd)
    script = Path(name)
    try:
        _run_pg("pg_restore", db, [*restore_args, f"--file={script}", str(path)], failed + "pg_restore")
        drops = "; ".join(f'DROP TABLE IF EXISTS "{table}" CASCADE' for table in extra)
        _run_pg("psql", db, ["--no-psqlrc", "--quiet", "--no-password", "--single-transaction",
                             "--set=ON_ERROR_STOP=1", "--output=/dev/null", f"--dbname={_conninfo_dbname(db)}",
                             f"--command={drops}", f"--file={script}"], failed + "psql")
    finally:
        script.unlink(missing_ok=True)


def _conninfo_dbname(db: Database) -> str:
    """The database name as a connection string (so that a name with '=' in it stays a name);
    everything else comes from the environment pg_command sets."""
    name = make_url(db.url).database or ""
    return "dbname='" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"
