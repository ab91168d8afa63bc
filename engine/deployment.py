"""Deploying process model folders as immutable, versioned process specs.

A model folder follows spiff-arena's layout: process_model.json beside the BPMN, DMN and
form files. Everything is checked before anything is stored, so a bad model never leaves a
half-deployed version: XML that will not parse (entities and network access are refused),
missing references, forms that are not JSON Schema, lanes that name no role, and scripts or
conditions the sandbox refuses.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.mixins import (
    ExclusiveGatewayMixin, InclusiveGatewayMixin, ScriptTaskMixin, StartEventMixin, UserTaskMixin,
)
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser

from . import deadlines
from .errors import DeploymentError, InvalidData
from .forms import check_schema
from .roles import role_for_lane
from .scripting import ScriptRefused, check_expression, check_script

MODEL_FILE = "process_model.json"
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")
MAX_FILE_BYTES = 5 * 1024 * 1024
ALLOWED_SUFFIXES = (".bpmn", ".dmn", ".json", ".md")


def _xml_parser() -> etree.XMLParser:
    # No entity expansion, no DTD loading, no network: diagrams come from users.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           huge_tree=False, remove_comments=True)


@dataclass
class ModelFiles:
    """A process model as uploaded: its key and its files (name -> bytes)."""
    key: str
    files: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def from_folder(cls, folder: str | Path) -> "ModelFiles":
        folder = Path(folder)
        if not folder.is_dir():
            raise DeploymentError(f"{folder}: not a folder")
        files = {}
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix in ALLOWED_SUFFIXES:
                files[path.name] = path.read_bytes()
        return cls(folder.name, files)

    @property
    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for name in sorted(self.files):
            digest.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        return digest.hexdigest()


@dataclass
class ParsedModel:
    key: str
    name: str
    description: str
    primary_file: str
    primary_process_id: str
    spec: object
    subprocess_specs: dict
    forms: dict[str, dict]          # form file name -> JSON (schema or UI schema)
    start_role: str | None          # role whose lane holds the start event
    # Processes called by call activities that another deployed model provides, with the
    # version bound at deployment (process id -> process version id).
    calls: dict[str, int] = field(default_factory=dict)
    # Forms of the called models' processes (process id -> form file name -> JSON): a called
    # model's tasks find their own forms even when a file name repeats across models.
    process_forms: dict[str, dict[str, dict]] = field(default_factory=dict)

    def form(self, file_name: str | None, process_id: str | None = None) -> dict | None:
        if not file_name:
            return None
        forms = self.process_forms.get(process_id, self.forms) if process_id else self.forms
        return forms.get(file_name)


@dataclass
class CalledModel:
    """A deployed model that provides a called process: the version and its files."""
    version_id: int
    files: "ModelFiles"


# Looks up the deployed model whose primary process has this id, or None.
CalledModelLookup = Callable[[str], "CalledModel | None"]
CALLED_ELEMENT = re.compile(rb'calledElement\s*=\s*"([^"]+)"')


def _fail(key: str, message: str, file: str | None = None, element: str | None = None) -> DeploymentError:
    where = ": ".join(p for p in (key, file, f"element '{element}'" if element else None) if p)
    return DeploymentError(f"{where}: {message}", {"model": key, "file": file, "element": element,
                                                   "problem": message})


def parse_model(model: ModelFiles, called: CalledModelLookup | None = None) -> ParsedModel:
    """Parse and check a model; raise DeploymentError naming the file and element at fault.

    A call activity whose process is not in the model is resolved through `called`: the
    called model's diagrams are parsed with this one, so the version carries the whole
    chain it runs and later deployments of the called model do not change running cases."""
    key = model.key
    if not KEY_PATTERN.match(key):
        raise _fail(key, "the folder name is the process key: lower-case letters, digits, '_' or '-'")
    for name, content in model.files.items():
        if len(content) > MAX_FILE_BYTES:
            raise _fail(key, f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB", name)
    if MODEL_FILE not in model.files:
        raise _fail(key, f"{MODEL_FILE} is missing")
    try:
        meta = json.loads(model.files[MODEL_FILE])
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail(key, f"not valid JSON ({exc})", MODEL_FILE) from None
    if not isinstance(meta, dict):
        raise _fail(key, "must hold a JSON object", MODEL_FILE)
    primary_file = meta.get("primary_file_name")
    process_id = meta.get("primary_process_id")
    if not primary_file or primary_file not in model.files:
        raise _fail(key, f"primary_file_name {primary_file!r} names no file of the model", MODEL_FILE)
    if not process_id:
        raise _fail(key, "primary_process_id is missing", MODEL_FILE)

    parser = SpiffBpmnParser()
    _add_diagrams(parser, key, model.files)
    calls, owners = _add_called_models(parser, key, model, called)

    try:
        spec = parser.get_spec(process_id)
        subprocess_specs = parser.get_subprocess_specs(process_id)
    except ValidationException as exc:
        raise _fail(key, str(exc).splitlines()[0], getattr(exc, "file_name", None) or primary_file,
                    getattr(exc, "id", None)) from None
    except Exception as exc:
        raise _fail(key, f"cannot build process {process_id!r}: {exc}", primary_file) from None

    forms: dict[str, dict] = {}
    process_forms: dict[str, dict[str, dict]] = {}
    start_role = None
    for each_spec in [spec, *subprocess_specs.values()]:
        owner = owners.get(each_spec.name)
        spec_forms = forms if owner is None else process_forms.setdefault(each_spec.name, {})
        for task_spec in each_spec.task_specs.values():
            _check_task_spec(key if owner is None else owner.key, model if owner is None else owner,
                             task_spec, spec_forms, getattr(each_spec, "file", None))
            if each_spec is spec and isinstance(task_spec, StartEventMixin) and start_role is None:
                start_role = role_for_lane(getattr(task_spec, "lane", None))
    return ParsedModel(
        key=key,
        name=str(meta.get("display_name") or key),
        description=str(meta.get("description") or ""),
        primary_file=primary_file,
        primary_process_id=process_id,
        spec=spec,
        subprocess_specs=subprocess_specs,
        forms=forms,
        start_role=start_role,
        calls=calls,
        process_forms=process_forms,
    )


def _add_diagrams(parser: SpiffBpmnParser, key: str, files: dict[str, bytes], prefix: str = "") -> None:
    for name, content in files.items():
        if not name.endswith((".bpmn", ".dmn")):
            continue
        _refuse_doctype(key, name, content)
        try:
            root = etree.fromstring(content, _xml_parser())
        except etree.XMLSyntaxError as exc:
            raise _fail(key, f"XML error: {exc}", name) from None
        if root is None:
            raise _fail(key, "empty XML document", name)
        docinfo = root.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None:
            raise _fail(key, "documents with a DOCTYPE are refused (entities are not allowed)", name)
        try:
            if name.endswith(".bpmn"):
                parser.add_bpmn_xml(etree.ElementTree(root), filename=prefix + name)
            else:
                parser.add_dmn_xml(root, filename=prefix + name)
        except ValidationException as exc:
            raise _fail(key, str(exc).splitlines()[0], name, getattr(exc, "id", None)) from None
        except Exception as exc:  # the parser raises many kinds on odd input
            raise _fail(key, f"cannot be read as {name.rsplit('.', 1)[1].upper()}: {exc}", name) from None


def called_process_ids(files: dict[str, bytes]) -> set[str]:
    """Process ids named by the call activities of a model's diagrams."""
    return {m.decode("utf-8", "replace") for name, content in files.items() if name.endswith(".bpmn")
            for m in CALLED_ELEMENT.findall(content)}


def _add_called_models(parser, key: str, model: ModelFiles, called: CalledModelLookup | None):
    """Parse the deployed models that provide the processes this one calls (and what they
    call in turn); return the bound versions and, per added process id, its model."""
    calls: dict[str, int] = {}
    owners: dict[str, ModelFiles] = {}
    pending = sorted(called_process_ids(model.files))
    while pending:
        process_id = pending.pop(0)
        if process_id in parser.process_parsers or process_id in calls:
            continue
        found = called(process_id) if called else None
        if found is None:
            raise _fail(key, f"a call activity calls process '{process_id}', which is neither in this model "
                        "nor the primary process of a deployed model (deploy that model first)",
                        element=process_id)
        if found.files.key == key:
            raise _fail(key, f"process '{process_id}' is not in this model's diagrams", element=process_id)
        before = set(parser.process_parsers)
        _add_diagrams(parser, found.files.key, found.files.files, prefix=f"{found.files.key}/")
        for added in set(parser.process_parsers) - before:
            owners[added] = found.files
        calls[process_id] = found.version_id
        pending.extend(sorted(called_process_ids(found.files.files)))
    return calls, owners


def _refuse_doctype(key: str, name: str, content: bytes) -> None:
    # A DOCTYPE is how entity expansion and external entities get in; BPMN never needs one.
    if b"<!DOCTYPE" in content.upper():
        raise _fail(key, "documents with a DOCTYPE are refused (entities are not allowed)", name)


def _check_task_spec(key: str, model: ModelFiles, task_spec, forms: dict, file: str | None) -> None:
    element = task_spec.bpmn_id or task_spec.name
    lane = getattr(task_spec, "lane", None)
    if lane and role_for_lane(lane) is None and isinstance(task_spec, UserTaskMixin):
        raise _fail(key, f"lane '{lane}' names no role (use a role code or its display name)", file, element)
    for attr in ("prescript", "postscript"):
        _check_code(key, getattr(task_spec, attr, None), check_script, file, element)
    if isinstance(task_spec, ScriptTaskMixin):
        _check_code(key, task_spec.script, check_script, file, element)
    if isinstance(task_spec, (ExclusiveGatewayMixin, InclusiveGatewayMixin)):
        for condition, _target in getattr(task_spec, "cond_task_specs", []):
            # Conditions are wrapped in an operator object holding the expression text.
            expression = condition.args[0] if hasattr(condition, "args") else condition
            _check_code(key, expression, check_expression, file, element)
    if isinstance(task_spec, UserTaskMixin):
        props = (getattr(task_spec, "extensions", None) or {}).get("properties", {})
        if "dueIn" in props:    # a typo would silently leave every such task without a due date
            from datetime import datetime
            from .timers import due_in
            if due_in(props["dueIn"], datetime(2000, 1, 1)) is None:
                raise _fail(key, f"dueIn '{props['dueIn']}' is not an ISO 8601 duration such as P10D", file, element)
        try:
            deadlines.check_properties(props)
        except InvalidData as exc:
            raise _fail(key, exc.message, file, element) from None
        for prop in ("formJsonSchemaFilename", "formUiSchemaFilename"):
            form_file = props.get(prop)
            if not form_file:
                continue
            if form_file not in model.files:
                raise _fail(key, f"form file '{form_file}' is missing", file, element)
            if form_file not in forms:
                try:
                    forms[form_file] = json.loads(model.files[form_file])
                    if prop == "formJsonSchemaFilename":
                        check_schema(forms[form_file])
                except (ValueError, UnicodeDecodeError) as exc:
                    raise _fail(key, f"form file '{form_file}' is not valid JSON ({exc})", file, element) from None
                except Exception as exc:
                    raise _fail(key, f"form file '{form_file}' is not a valid JSON Schema: "
                                f"{str(exc).splitlines()[0]}", file, element) from None


def _check_code(key, code, checker, file, element) -> None:
    if not code:
        return
    try:
        checker(code)
    except ScriptRefused as exc:
        raise _fail(key, f"script or condition refused by the sandbox: {exc}", file, element) from None
    except SyntaxError as exc:
        raise _fail(key, f"script or condition has a syntax error: {exc}", file, element) from None
