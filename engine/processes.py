"""Deploying process models and listing what is deployed."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from storage import queries
from storage.db import Database
from storage.models import AuditEvent, ProcessFile, ProcessVersion

from .clock import Clock
from .deployment import CalledModel, ModelFiles, called_process_ids, parse_model
from .errors import DeploymentError
from .specs import SpecCache

PROCESSES_DIR = Path(__file__).resolve().parent.parent / "processes"


class ProcessService:
    def __init__(self, db: Database, specs: SpecCache, clock: Clock):
        self.db = db
        self.specs = specs
        self.clock = clock

    def _called_model(self, process_id: str) -> CalledModel | None:
        """The newest deployed model whose primary process is `process_id`."""
        with self.db.reading() as s:
            row = queries.latest_version_providing(s, process_id)
            if row is None:
                return None
            return CalledModel(row.id, ModelFiles(row.key, queries.version_files(s, row.id)))

    def deploy(self, model: ModelFiles, actor_id: int | None = None) -> tuple[ProcessVersion, bool]:
        """Deploy a model; returns (version, created). Unchanged content makes no new version.

        A model that calls another model's process is bound to that model's newest version;
        after the called model changes, deploying the caller again binds it to the new one."""
        parsed = parse_model(model, self._called_model)     # raises before anything is written
        digest = model.content_hash
        if parsed.calls:
            digest = hashlib.sha256((digest + json.dumps(parsed.calls, sort_keys=True)).encode()).hexdigest()
        now = self.clock.now()
        with self.db.transaction() as s:
            latest = queries.latest_version(s, model.key)
            if latest is not None and latest.content_hash == digest:
                return latest, False
            row = ProcessVersion(
                key=model.key, version=(latest.version + 1) if latest else 1, name=parsed.name,
                description=parsed.description, primary_file=parsed.primary_file,
                primary_process_id=parsed.primary_process_id, content_hash=digest,
                calls=parsed.calls or None, deployed_by_id=actor_id, deployed_at=now)
            s.add(row)
            s.flush()
            for name, content in sorted(model.files.items()):
                s.add(ProcessFile(version_id=row.id, name=name, content=content))
            s.add(AuditEvent(case_id=None, at=now, actor_id=actor_id, action="deployed",
                             data={"process": row.key, "version": row.version, "hash": digest,
                                   **({"calls": parsed.calls} if parsed.calls else {})}))
        self.specs.put(row.id, row.key, row.version, parsed)
        return row, True

    def deploy_folder(self, folder: str | Path, actor_id: int | None = None) -> tuple[ProcessVersion, bool]:
        return self.deploy(ModelFiles.from_folder(folder), actor_id)

    def deploy_all(self, root: str | Path = PROCESSES_DIR) -> list[tuple[ProcessVersion, bool]]:
        root = Path(root)
        folders = sorted(p for p in root.iterdir() if (p / "process_model.json").is_file())
        if not folders:
            raise DeploymentError(f"{root}: no process model folders found")
        return [self.deploy(model) for model in _called_first([ModelFiles.from_folder(f) for f in folders])]

    def latest(self) -> list[ProcessVersion]:
        with self.db.reading() as s:
            return queries.latest_versions(s)


def _called_first(models: list[ModelFiles]) -> list[ModelFiles]:
    """Order models so that each is deployed after the models whose processes it calls."""
    provides = {}
    for model in models:
        try:
            provides[json.loads(model.files["process_model.json"]).get("primary_process_id")] = model.key
        except (KeyError, ValueError, AttributeError):
            continue        # parse_model reports it when that model is deployed
    by_key = {m.key: m for m in models}
    ordered: list[ModelFiles] = []
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(model: ModelFiles) -> None:
        if model.key in done or model.key in visiting:
            return          # a call cycle is reported by the parser, not here
        visiting.add(model.key)
        for process_id in sorted(called_process_ids(model.files)):
            callee = provides.get(process_id)
            if callee and callee != model.key:
                visit(by_key[callee])
        visiting.discard(model.key)
        ordered.append(model)
        done.add(model.key)

    for model in models:
        visit(model)
    return ordered
