"""Parsed specs of deployed versions, parsed once per process and kept.

A deployed version never changes, so its parsed spec can be shared by every request; the
cache is bounded by the number of versions, not by cases.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from SpiffWorkflow.bpmn import BpmnWorkflow

from storage import queries
from storage.db import Database

from .deployment import CalledModel, ModelFiles, ParsedModel, parse_model
from .errors import NotFound
from .scripting import script_engine


@dataclass
class LoadedVersion:
    id: int
    key: str
    version: int
    model: ParsedModel

    def form(self, file_name: str | None, process_id: str | None = None) -> dict | None:
        """A form file of the task's process (a called model's process has its own forms)."""
        return self.model.form(file_name, process_id)


class SpecCache:
    def __init__(self, db: Database):
        self.db = db
        self._versions: dict[int, LoadedVersion] = {}
        self._lock = threading.Lock()

    def get(self, version_id: int) -> LoadedVersion:
        loaded = self._versions.get(version_id)
        if loaded is not None:
            return loaded
        with self._lock:
            loaded = self._versions.get(version_id)
            if loaded is None:
                loaded = self._load(version_id)
                self._versions[version_id] = loaded
        return loaded

    def put(self, version_id: int, key: str, version: int, model: ParsedModel) -> None:
        with self._lock:
            self._versions[version_id] = LoadedVersion(version_id, key, version, model)

    def warm(self) -> int:
        """Parse every deployed version and run each spec once, before threads share it."""
        with self.db.reading() as s:
            ids = queries.all_version_ids(s)
        for version_id in ids:
            loaded = self.get(version_id)
            # Building a workflow touches lazily-initialised spec state; do it single-threaded.
            BpmnWorkflow(loaded.model.spec, loaded.model.subprocess_specs, script_engine=script_engine())
        return len(ids)

    def _load(self, version_id: int) -> LoadedVersion:
        from storage.models import ProcessVersion
        with self.db.reading() as s:
            row = s.get(ProcessVersion, version_id)
            if row is None:
                raise NotFound(f"process version {version_id} does not exist")
            files = queries.version_files(s, version_id)
            key, number = row.key, row.version
            # The called versions bound at deployment, not today's newest.
            called = {}
            for process_id, called_id in (row.calls or {}).items():
                called_row = s.get(ProcessVersion, called_id)
                called[process_id] = CalledModel(called_id, ModelFiles(called_row.key,
                                                                        queries.version_files(s, called_id)))
        return LoadedVersion(version_id, key, number, parse_model(ModelFiles(key, files), called.get))
