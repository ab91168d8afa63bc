"""Files attached to the tasks of a case: an on-site examination record, the ledgers behind a
monitoring report, rectification and evaluation evidence.

A file is uploaded for one open task, by someone who may act on that task, and may be removed
by its uploader while the task is open. When the task is completed, its files become part of
what was submitted: the completion puts them in the task data (FILES_KEY), where diagrams and
effects see them and the audit log records them. Anyone who may see the case may download them.

What is accepted is decided by the content, not by the name alone: the extension says what the
file claims to be, and its first bytes (or, for Office files, the package inside) must agree.
The content type stored and served comes from that check, never from the browser.
"""
from __future__ import annotations

import hashlib
import io
import math
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from storage import attachment_queries, queries
from storage.db import Database
from storage.models import Attachment, AuditEvent, Case, HumanTask

from .access import Actor
from .clock import Clock
from .errors import Conflict, InvalidData, NotFound, PermissionDenied

if TYPE_CHECKING:   # cases imports this module for the completion helper
    from .cases import CaseService

MEGABYTE = 1024 * 1024
MAX_FILE_BYTES = 20 * MEGABYTE
MAX_FILES_PER_TASK = 30
MAX_NAME_LENGTH = 255
# The task data key a completion sets to the task's files. Not 'attachments': the monitoring
# report's form already has a field of that name (references to paper documents).
FILES_KEY = "attached_files"

WORD = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
EXCEL = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
POWERPOINT = "application/vnd.openxmlformats-officedocument.presentationml.presentation"

# extension -> (what it is, for messages; content type stored and, if safe, served)
TYPES = {
    "pdf": ("a PDF document", "application/pdf"),
    "png": ("a PNG image", "image/png"),
    "jpg": ("a JPEG image", "image/jpeg"),
    "jpeg": ("a JPEG image", "image/jpeg"),
    "gif": ("a GIF image", "image/gif"),
    "webp": ("a WebP image", "image/webp"),
    "docx": ("a Word document", WORD),
    "xlsx": ("an Excel workbook", EXCEL),
    "pptx": ("a PowerPoint presentation", POWERPOINT),
    "doc": ("a Word 97-2003 document", "application/msword"),
    "xls": ("an Excel 97-2003 workbook", "application/vnd.ms-excel"),
    "txt": ("a text file", "text/plain"),
    "csv": ("a CSV file", "text/csv"),
}
ACCEPTED = "PDF, PNG, JPEG, GIF, WebP, Word (.docx, .doc), Excel (.xlsx, .xls), PowerPoint (.pptx), .txt and .csv"
# Served under their own type; anything else is served as application/octet-stream, so that no
# browser ever renders an uploaded file as a page of this site.
INLINE_SAFE = frozenset({"application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp"})

# An Office Open XML package declares its main part's type in [Content_Types].xml. Macro-enabled
# and template variants declare other types, so they are refused under these extensions.
_OOXML_MAIN = {
    "docx": b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
    "xlsx": b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
    "pptx": b"application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
}
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_CONTENT_TYPES_MAX = 1024 * 1024
# Characters dropped from names: control and format characters (a right-to-left override can
# make "report‮fdp.exe" read as "reportexe.pdf"), surrogates, private use, unassigned, and
# line or paragraph separators.
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Text files: printable text plus tab, line feed, carriage return and form feed.
_BINARY_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


# ---- what is accepted (pure functions) ---------------------------------------------------------

def clean_file_name(raw: str | None) -> str:
    """The name to keep and show: its last path part, without control or invisible format
    characters, whitespace runs made one space, no leading or trailing dots or spaces, at most
    255 characters (the extension kept). Chinese and other letters stay as they are."""
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[\\/]", name)[-1]      # some browsers send the whole path, C:\Users\...\x.pdf
    name = " ".join(name.split())            # tabs and line breaks are spaces first, not dropped
    name = "".join(ch for ch in name if unicodedata.category(ch) not in _DROPPED)
    name = " ".join(name.split()).strip(" .")
    if len(name) > MAX_NAME_LENGTH:
        stem, dot, ext = name.rpartition(".")
        if dot and stem and len(ext) < 20:
            name = stem[:MAX_NAME_LENGTH - len(ext) - 1].rstrip(" .") + "." + ext
        else:
            name = name[:MAX_NAME_LENGTH]
    return name


def _refuse(name: str, message: str) -> InvalidData:
    return InvalidData(f"“{name}”: {message}" if name else message, {"file": message})


def check_file(raw_name: str | None, content: bytes) -> tuple[str, str]:
    """(cleaned name, content type) of an acceptable file; InvalidData saying why otherwise."""
    name = clean_file_name(raw_name)
    if not name:
        raise _refuse("", "The file has no name.")
    stem, dot, ext = name.rpartition(".")
    ext = ext.lower()
    if not dot or not stem:
        raise _refuse(name, f"The name has no file type extension; accepted are {ACCEPTED}.")
    if ext == "zip":
        raise _refuse(name, "Zip archives are not accepted: attach the files themselves.")
    if ext not in TYPES:
        raise _refuse(name, f"Files of type .{ext} are not accepted; accepted are {ACCEPTED}.")
    if not content:
        raise _refuse(name, "The file is empty.")
    if len(content) > MAX_FILE_BYTES:
        # (Rounded up: a file just over the limit must not read as "20 MB; at most 20 MB".)
        raise _refuse(name, f"The file is {math.ceil(len(content) * 10 / MEGABYTE) / 10:.1f} MB; at most "
                            f"{MAX_FILE_BYTES // MEGABYTE} MB per file is accepted.")
    what, content_type = TYPES[ext]
    problem = _content_problem(ext, content)
    if problem:
        raise _refuse(name, f"The file is not {what}: {problem}")
    return name, content_type


def _content_problem(ext: str, content: bytes) -> str | None:
    """Why the content is not what the extension says, or None when it is."""
    mismatch = "its content does not match its name."
    if ext == "pdf":
        # Readers accept a PDF header anywhere in the first kilobyte.
        return None if b"%PDF-" in content[:1024] else mismatch
    if ext == "png":
        return None if content.startswith(b"\x89PNG\r\n\x1a\n") else mismatch
    if ext in ("jpg", "jpeg"):
        return None if content.startswith(b"\xff\xd8\xff") else mismatch
    if ext == "gif":
        return None if content[:6] in (b"GIF87a", b"GIF89a") else mismatch
    if ext == "webp":
        return None if content[:4] == b"RIFF" and content[8:12] == b"WEBP" else mismatch
    if ext in ("doc", "xls"):
        return None if content.startswith(_OLE) else mismatch
    if ext in _OOXML_MAIN:
        return _office_package_problem(ext, content)
    if ext in ("txt", "csv"):
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            return "it is not UTF-8 text; save it with the UTF-8 encoding (in Excel: CSV UTF-8)."
        return "it holds binary data." if _BINARY_IN_TEXT.search(text) else None
    return mismatch


def _office_package_problem(ext: str, content: bytes) -> str | None:
    if not content.startswith(b"PK\x03\x04"):
        return "its content does not match its name."
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as package:
            info = package.getinfo("[Content_Types].xml")
            if info.file_size > _CONTENT_TYPES_MAX:     # a real one is a few kilobytes
                return "it is not an Office file."
            declared = package.read(info)
    except (KeyError, zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError,
            RuntimeError, ValueError):
        # A zip archive that is no Office package (or a damaged one): refused like any zip.
        # zipfile raises NotImplementedError for a compression method it cannot read.
        return "it is a zip archive, not an Office file."
    if _OOXML_MAIN[ext] not in declared:
        return "it is another kind of Office file (one with macros, a template, or another program's)."
    return None


# ---- read shapes -------------------------------------------------------------------------------

def _iso(value):
    return value.isoformat() if value is not None else None


def summary(row) -> dict:
    """What lists, pages and the API show of an attachment (never its content): `row` is a row
    of attachment_queries' listings (of_case, of_task, listed)."""
    return {
        "id": row.id, "case_id": row.case_id, "task_id": row.human_task_id, "step": row.step,
        "task_name": row.task_name,
        "name": row.file_name, "size": row.size, "content_type": row.content_type, "sha256": row.sha256,
        "uploaded_by": row.uploaded_by, "uploaded_by_name": row.uploaded_by_name,
        "uploaded_at": _iso(row.uploaded_at),
    }


def submitted_entry(row) -> dict:
    """A file (an Attachment or a listing row) as a completion records it in the task data and
    the audit log."""
    return {"id": row.id, "name": row.file_name, "size": row.size, "content_type": row.content_type,
            "sha256": row.sha256}


# ---- helpers the case service and the links call, in their transaction ------------------------

def submitted_files(s: Session, task_id: int) -> list[dict]:
    """The files uploaded for a task, as its completion records them."""
    return [submitted_entry(row) for row in attachment_queries.of_task(s, task_id)]


def with_submitted_files(data: dict, task_data: dict, files: list[dict]) -> dict:
    """The form data of a completing task with its files under FILES_KEY (system-set: a value
    sent by the user is dropped). A previous step's files, inherited in the task data, are
    removed: the key always means the files of the step just completed. The completion
    checks that `files` (submitted_files) are still the task's files when it commits."""
    task_data.pop(FILES_KEY, None)
    data = {k: v for k, v in data.items() if k != FILES_KEY}
    if files:
        data[FILES_KEY] = files
    return data


def submitted_at_step(s: Session, case_id: int, step: str) -> list[dict]:
    """The files submitted with the latest completed task of a step of the case."""
    task_id = attachment_queries.latest_completed_task_of_step(s, case_id, step)
    return [submitted_entry(row) for row in attachment_queries.of_task(s, task_id)] if task_id else []


# ---- the service -------------------------------------------------------------------------------

@dataclass(frozen=True)
class StoredFile:
    id: int
    name: str
    content_type: str
    size: int
    content: bytes


class AttachmentService:
    def __init__(self, db: Database, clock: Clock, cases: CaseService):
        self.db = db
        self.clock = clock
        # Who may act on a task, and who may see a case, are the case service's rules.
        self.cases = cases

    def _may_see(self, s: Session, actor: Actor, row: Attachment) -> bool:
        task = row.task
        return (task is not None and task.status == "open" and actor.may_work_on(task)) or \
            self.cases._may_see_case(s, actor, row.case_id)

    def _audit(self, s: Session, row: Attachment, task: HumanTask | None, actor: Actor, action: str, now) -> None:
        s.add(AuditEvent(case_id=row.case_id, at=now, actor_id=actor.id, action=action,
                         human_task_id=task.id if task else None, task_name=task.name if task else None,
                         step=row.step, data=submitted_entry(row)))

    def upload(self, actor: Actor, task_id: int, file_name: str | None, content: bytes) -> dict:
        return self.upload_many(actor, task_id, [(file_name, content)])[0]

    def upload_many(self, actor: Actor, task_id: int, files: list[tuple[str | None, bytes]]) -> list[dict]:
        """Attach files to an open task, all or none."""
        now = self.clock.now()
        with self.db.transaction() as s:
            # Refusals about the task come first: whoever may not act on it learns nothing more.
            task = self.cases._open_task_for(s, actor, task_id)
            if task.case.status != "running":
                raise Conflict(f"case {task.case_id} is {task.case.status}; files can no longer be attached")
            if not files:
                raise InvalidData("Choose a file to upload (form field 'file').", {"file": "This field is required."})
            checked = [(*check_file(name, content), content) for name, content in files]
            attachment_queries.lock_task(s, task.id)
            # (Re-read after the lock: a completion that committed meanwhile closed the task.)
            s.refresh(task)
            if task.status != "open":
                raise self.cases._closed(s, actor, task)
            existing = attachment_queries.of_task(s, task.id)
            if len(existing) + len(checked) > MAX_FILES_PER_TASK:
                message = (f"A task takes at most {MAX_FILES_PER_TASK} files; this one has {len(existing)} "
                           f"and {len(checked)} more were sent.")
                raise InvalidData(message, {"file": message})
            known = {row.sha256: row.file_name for row in existing}
            rows = []
            for name, content_type, content in checked:
                digest = hashlib.sha256(content).hexdigest()
                if digest in known:
                    raise _refuse(name, f"The same file is attached to this task already, as “{known[digest]}”.")
                known[digest] = name
                row = Attachment(case_id=task.case_id, human_task_id=task.id, step=task.step, file_name=name,
                                 content_type=content_type, size=len(content), sha256=digest, content=content,
                                 uploaded_by_id=actor.id, uploaded_at=now)
                s.add(row)
                rows.append(row)
            s.flush()
            for row in rows:
                self._audit(s, row, task, actor, "attached", now)
            return [summary(row) for row in attachment_queries.listed(s, [row.id for row in rows])]

    def remove(self, actor: Actor, attachment_id: int, task_id: int | None = None) -> dict:
        """Remove a file: its uploader only, while its task is open (a submitted file stays).
        With task_id, the file must be one of that task's."""
        now = self.clock.now()
        with self.db.transaction() as s:
            row = attachment_queries.get(s, attachment_id)
            if row is None or (task_id is not None and row.human_task_id != task_id):
                raise NotFound(f"attachment {attachment_id} does not exist")
            if not self._may_see(s, actor, row):
                raise PermissionDenied("you may not see this file")
            if row.uploaded_by_id != actor.id:
                raise PermissionDenied(f"only {row.uploaded_by.display_name}, who uploaded it, may remove this file")
            task = row.task
            if task is not None:
                attachment_queries.lock_task(s, task.id)
                s.refresh(task)
            if task is None or task.status != "open":
                where = f"with “{task.name}”" if task is not None else "with the case"
                raise Conflict(f"“{row.file_name}” was submitted {where}; it can no longer be removed",
                               {"attachment": row.id})
            out = summary(attachment_queries.listed(s, [row.id])[0])
            self._audit(s, row, task, actor, "detached", now)
            attachment_queries.remove(s, row.id)
            return out

    def get(self, actor: Actor, attachment_id: int) -> StoredFile:
        """A file to download, for anyone who may see its case."""
        with self.db.reading() as s:
            row = attachment_queries.get(s, attachment_id, with_content=True)
            if row is None:
                raise NotFound(f"attachment {attachment_id} does not exist")
            if not self._may_see(s, actor, row):
                raise PermissionDenied("you may not see this file")
            return StoredFile(row.id, row.file_name, row.content_type, row.size, row.content)

    def for_case(self, actor: Actor, case_id: int) -> list[dict]:
        with self.db.reading() as s:
            case = queries.get_by_id(s, Case, case_id)
            if case is None:
                raise NotFound(f"case {case_id} does not exist")
            if not self.cases._may_see_case(s, actor, case.id):
                raise PermissionDenied("you may not see this case")
            return [summary(row) for row in attachment_queries.of_case(s, case.id)]

    def for_task(self, actor: Actor, task_id: int) -> dict:
        """A task's files and whether the actor may add to them (the task page's panel)."""
        with self.db.reading() as s:
            task = queries.get_by_id(s, HumanTask, task_id)
            if task is None:
                raise NotFound(f"task {task_id} does not exist")
            if not (actor.may_work_on(task) or self.cases._may_see_case(s, actor, task.case_id)):
                raise PermissionDenied("you may not see this task")
            return {"task_id": task.id, "status": task.status,
                    "may_upload": task.status == "open" and actor.may_work_on(task),
                    "files": [summary(row) for row in attachment_queries.of_task(s, task.id)]}
