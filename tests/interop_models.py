"""The foreign BPMN models in ../shared/interop (SpiffWorkflow's samples, Camunda's examples),
each folder as a ModelFiles, for the deployment and serializer tests."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from lxml import etree

from engine.deployment import ALLOWED_SUFFIXES, ModelFiles


def _interop_root() -> Path | None:
    here = Path(__file__).resolve()
    for candidate in (os.environ.get("PERFBUDGET_INTEROP_DIR"), here.parents[2] / "shared" / "interop",
                      "/work/shared/interop"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


INTEROP_ROOT = _interop_root()
INTEROP_FOLDERS = sorted({p.parent for p in INTEROP_ROOT.rglob("*.bpmn")}) if INTEROP_ROOT else []
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"


def _first_executable_process(files: dict[str, bytes]) -> tuple[str, str]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    for name in sorted(n for n in files if n.endswith(".bpmn")):
        try:
            root = etree.fromstring(files[name], parser)
        except etree.XMLSyntaxError:
            continue
        processes = root.findall(f"{{{BPMN_NS}}}process")
        executable = [p for p in processes if p.get("isExecutable") == "true"] or processes
        if executable:
            return name, executable[0].get("id") or ""
    return "", ""


def interop_model(index: int, folder: Path) -> ModelFiles:
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir())
             if p.is_file() and p.suffix in ALLOWED_SUFFIXES}
    if "process_model.json" not in files:
        primary_file, process_id = _first_executable_process(files)
        files["process_model.json"] = json.dumps({
            "display_name": folder.name, "description": f"Imported from {folder.relative_to(INTEROP_ROOT)}",
            "primary_file_name": primary_file, "primary_process_id": process_id}).encode()
    slug = re.sub(r"[^a-z0-9_-]+", "-", str(folder.relative_to(INTEROP_ROOT)).lower()).strip("-")
    return ModelFiles(f"m{index:03d}-{slug}"[:100], files)
