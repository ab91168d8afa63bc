"""Deploying process models and listing what is deployed."""
from __future__ import annotations

from pathlib import Path

from storage import queries
from storage.db import Database
from storage.models import AuditEvent, ProcessFile, ProcessVersion

from .clock import Clock
from .deployment import ModelFiles, parse_model
from .errors import DeploymentError
from .specs import SpecCache

PROCESSES_DIR = Path(__file__).resolve().parent.parent / "processes"


class ProcessService:
    def __init__(self, db: Database, specs: SpecCache, clock: Clock):
        self.db = db
        self.specs = specs
        self.clock = clock

    def deploy(self, model: ModelFiles, actor_id: int | None = None) -> tuple[ProcessVersion, bool]:
        """Deploy a model; returns (version, created). Unchanged content makes no new version."""
        parsed = parse_model(model)     # raises DeploymentError before anything is written
        digest = model.content_hash
        now = self.clock.now()
        with self.db.transaction() as s:
            latest = queries.latest_version(s, model.key)
            if latest is not None and latest.content_hash == digest:
                return latest, False
            row = ProcessVersion(
                key=model.key, version=(latest.version + 1) if latest else 1, name=parsed.name,
                description=parsed.description, primary_file=parsed.primary_file,
                primary_process_id=parsed.primary_process_id, content_hash=digest,
                deployed_by_id=actor_id, deployed_at=now)
            s.add(row)
            s.flush()
            for name, content in sorted(model.files.items()):
                s.add(ProcessFile(version_id=row.id, name=name, content=content))
            s.add(AuditEvent(case_id=None, at=now, actor_id=actor_id, action="deployed",
                             data={"process": row.key, "version": row.version, "hash": digest}))
        self.specs.put(row.id, row.key, row.version, parsed)
        return row, True

    def deploy_folder(self, folder: str | Path, actor_id: int | None = None) -> tuple[ProcessVersion, bool]:
        return self.deploy(ModelFiles.from_folder(folder), actor_id)

    def deploy_all(self, root: str | Path = PROCESSES_DIR) -> list[tuple[ProcessVersion, bool]]:
        root = Path(root)
        folders = sorted(p for p in root.iterdir() if (p / "process_model.json").is_file())
        if not folders:
            raise DeploymentError(f"{root}: no process model folders found")
        return [self.deploy_folder(folder) for folder in folders]

    def latest(self) -> list[ProcessVersion]:
        with self.db.reading() as s:
            return queries.latest_versions(s)
