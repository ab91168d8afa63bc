"""Files attached to the tasks of a case: what is accepted (by content, not by name alone), who
may upload, download and remove them, what a completion records of them, the pages and the API,
and that backups carry them."""
from __future__ import annotations

import hashlib
import io
import re
import zipfile
from urllib.parse import quote

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, select

from engine import attachments, demo
from engine.attachments import FILES_KEY, MAX_FILE_BYTES, MAX_FILES_PER_TASK, check_file, clean_file_name
from engine.errors import Conflict, InvalidData, NotFound, PermissionDenied
from storage import backup, queries
from storage.models import Attachment, AuditEvent
from storage.schema import alembic_config, upgrade

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64)
WORD_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"


def office_package(main_type: str, part: str = "word/document.xml", extra: dict | None = None) -> bytes:
    """A minimal Office Open XML package declaring its main part's type."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        package.writestr("[Content_Types].xml",
                         '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                         f'content-types"><Override PartName="/{part}" ContentType="{main_type}"/></Types>')
        package.writestr(part, "<document/>")
        for name, content in (extra or {}).items():
            package.writestr(name, content)
    return out.getvalue()


def real_xlsx() -> bytes:
    from openpyxl import Workbook
    out = io.BytesIO()
    workbook = Workbook()
    workbook.active.append(["ledger", 1200])
    workbook.save(out)
    return out.getvalue()


def pdf(n: int) -> bytes:
    """A distinct small PDF (a task refuses the same content twice)."""
    return PDF + f"% {n}\n".encode()


# ---- fixtures ----------------------------------------------------------------------------------

@pytest.fixture
def goal_case(core, actor, project_id):
    """A goal review at its first step: the school unit compiles the goals."""
    case = core.cases.start(actor("school_unit"), "goal_review", project_id("EDU-2027-001"))
    return case.id


def open_task(core, case_id: int):
    with core.db.reading() as s:
        [task] = queries.open_tasks_of_case(s, case_id)
        return task


def goals(core):
    with core.db.reading() as s:
        return demo.sample_goals(queries.project_by_code(s, "EDU-2027-001").name)


def audit(core, case_id: int, action: str) -> list[AuditEvent]:
    with core.db.reading() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.case_id == case_id, AuditEvent.action == action)
                              .order_by(AuditEvent.id)))


def multipart(content: bytes, name: str, **fields) -> dict:
    return {"data": {**fields, "file": (io.BytesIO(content), name)}, "content_type": "multipart/form-data"}


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


# ---- names and contents --------------------------------------------------------------------------

@pytest.mark.parametrize("raw, cleaned", [
    ("现场检查记录.pdf", "现场检查记录.pdf"),
    ("C:\\Users\\li\\Desktop\\报告.docx", "报告.docx"),
    ("../../etc/passwd.txt", "passwd.txt"),
    ("  .hidden.pdf. ", "hidden.pdf"),
    ("invoice\u202efdp.exe", "invoicefdp.exe"),            # a right-to-left override hides the real type
    ("line\nbreak\x00\ttab.pdf", "line break tab.pdf"),
    ("a\u3000b  c.pdf", "a b c.pdf"),                          # ideographic space
    ("", ""),
])
def test_file_names_are_cleaned(raw, cleaned):
    assert clean_file_name(raw) == cleaned


def test_long_file_names_keep_their_extension():
    name = clean_file_name("评" * 300 + ".xlsx")
    assert len(name) == 255 and name.endswith("评.xlsx")


@pytest.mark.parametrize("name, content, content_type", [
    ("记录.pdf", PDF, "application/pdf"),
    ("photo.PNG", PNG, "image/png"),
    ("photo.jpg", b"\xff\xd8\xff\xe0" + bytes(16), "image/jpeg"),
    ("photo.jpeg", b"\xff\xd8\xff\xdb" + bytes(16), "image/jpeg"),
    ("anim.gif", b"GIF89a" + bytes(16), "image/gif"),
    ("pic.webp", b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(8), "image/webp"),
    ("report.docx", office_package(WORD_MAIN), attachments.WORD),
    ("ledger.xlsx", real_xlsx(), attachments.EXCEL),
    ("slides.pptx", office_package("application/vnd.openxmlformats-officedocument.presentationml.presentation"
                                   ".main+xml", "ppt/presentation.xml"), attachments.POWERPOINT),
    ("old.doc", OLE, "application/msword"),
    ("old.xls", OLE, "application/vnd.ms-excel"),
    ("notes.txt", "会议纪要：同意。\r\n".encode(), "text/plain"),
    ("ledger.csv", "\ufeff项目,金额\n图书馆,900000\n".encode(), "text/csv"),
])
def test_accepted_files(name, content, content_type):
    assert check_file(name, content) == (clean_file_name(name), content_type)


@pytest.mark.parametrize("name, content, message", [
    ("scan.pdf", b"MZ\x90\x00\x03\x00\x00\x00" + bytes(64), "“scan.pdf”: The file is not a PDF document: its "
                                                             "content does not match its name."),
    ("photo.png", PDF, "“photo.png”: The file is not a PNG image: its content does not match its name."),
    ("setup.exe", b"MZ" + bytes(10), "“setup.exe”: Files of type .exe are not accepted; accepted are PDF, PNG, "
                                     "JPEG, GIF, WebP, Word (.docx, .doc), Excel (.xlsx, .xls), PowerPoint (.pptx), "
                                     ".txt and .csv."),
    ("page.html", b"<script>", "Files of type .html are not accepted"),
    ("image.svg", b"<svg/>", "Files of type .svg are not accepted"),
    ("evidence.zip", b"PK\x03\x04" + bytes(30), "“evidence.zip”: Zip archives are not accepted: attach the files "
                                                "themselves."),
    ("README", b"text", "“README”: The name has no file type extension"),
    ("empty.pdf", b"", "“empty.pdf”: The file is empty."),
    ("plain.docx", office_package("application/xml", "data.xml"),
     "“plain.docx”: The file is not a Word document: it is another kind of Office file"),
    ("bundle.docx", b"PK\x03\x04" + bytes(40), "“bundle.docx”: The file is not a Word document: it is a zip "
                                               "archive, not an Office file."),
    ("macros.docx", office_package("application/vnd.ms-word.document.macroEnabled.main+xml"),
     "it is another kind of Office file (one with macros, a template, or another program's)."),
    ("report.xlsx", office_package(WORD_MAIN), "“report.xlsx”: The file is not an Excel workbook"),
    ("gbk.csv", "项目,金额".encode("gbk"), "it is not UTF-8 text; save it with the UTF-8 encoding"),
    ("binary.txt", b"abc\x00def", "“binary.txt”: The file is not a text file: it holds binary data."),
    ("old.doc", PDF, "The file is not a Word 97-2003 document"),
    ("\x00\x01", PDF, "The file has no name."),
])
def test_refused_files_say_why(name, content, message):
    with pytest.raises(InvalidData) as caught:
        check_file(name, content)
    assert message in caught.value.message
    assert set(caught.value.details) == {"file"}


def test_a_file_over_the_limit_is_refused():
    check_file("big.pdf", b"%PDF-" + bytes(MAX_FILE_BYTES - 5))
    with pytest.raises(InvalidData) as caught:
        check_file("big.pdf", b"%PDF-" + bytes(MAX_FILE_BYTES - 4))
    assert caught.value.message == "“big.pdf”: The file is 20.1 MB; at most 20 MB per file is accepted."


# ---- uploading, the engine -----------------------------------------------------------------------

def test_upload_records_the_file_and_an_audit_event(core, actor, goal_case):
    task = open_task(core, goal_case)
    added = core.attachments.upload(actor("school_unit"), task.id, "C:\\scans\\现场检查记录.pdf", PDF)
    assert {k: added[k] for k in ("case_id", "task_id", "step", "task_name", "name", "size", "content_type",
                                  "uploaded_by")} == {
        "case_id": goal_case, "task_id": task.id, "step": "compile_goals", "task_name": task.name,
        "name": "现场检查记录.pdf", "size": len(PDF), "content_type": "application/pdf", "uploaded_by": "school_unit"}
    assert added["sha256"] == hashlib.sha256(PDF).hexdigest()
    [event] = audit(core, goal_case, "attached")
    assert (event.human_task_id, event.step, event.data) == (task.id, "compile_goals", {
        "id": added["id"], "name": "现场检查记录.pdf", "size": len(PDF), "content_type": "application/pdf",
        "sha256": added["sha256"]})
    stored = core.attachments.get(actor("supervisor"), added["id"])
    assert (stored.name, stored.content, stored.content_type) == ("现场检查记录.pdf", PDF, "application/pdf")
    # The task and the case show it.
    assert [a["id"] for a in core.reads.task(actor("school_unit"), task.id)["attachments"]] == [added["id"]]
    assert [a["id"] for a in core.reads.case(actor("edu_bureau"), goal_case)["attachments"]] == [added["id"]]
    assert [a["id"] for a in core.attachments.for_case(actor("edu_section"), goal_case)] == [added["id"]]


def test_only_who_may_act_on_the_open_task_uploads(core, actor, goal_case):
    task = open_task(core, goal_case)
    with pytest.raises(PermissionDenied, match="this task is not yours: it belongs to budget unit of"):
        core.attachments.upload(actor("farm_unit"), task.id, "x.pdf", PDF)       # a unit of another organisation
    with pytest.raises(PermissionDenied):
        core.attachments.upload(actor("edu_bureau"), task.id, "x.pdf", PDF)      # sees the case, not its task
    with pytest.raises(NotFound):
        core.attachments.upload(actor("school_unit"), 999999, "x.pdf", PDF)
    # Claimed by a colleague: only they may add files now.
    core.accounts.ensure_user("school_unit2", "Second officer", demo.DEMO_PASSWORD, enforce_policy=False)
    core.accounts.grant("school_unit2", "unit", "school")
    core.cases.claim(actor("school_unit2"), task.id)
    with pytest.raises(PermissionDenied, match="assigned to Second officer"):
        core.attachments.upload(actor("school_unit"), task.id, "x.pdf", PDF)
    core.attachments.upload(actor("school_unit2"), task.id, "x.pdf", PDF)
    # Completed: 409 with who and when, for those who see the case; a stranger learns nothing.
    core.cases.complete(actor("school_unit2"), task.id, goals(core))
    with pytest.raises(Conflict, match="This task was already completed by Second officer"):
        core.attachments.upload(actor("school_unit2"), task.id, "late.pdf", pdf(2))
    with pytest.raises(PermissionDenied):
        core.attachments.upload(actor("farm_unit"), task.id, "late.pdf", pdf(2))
    assert len(audit(core, goal_case, "attached")) == 1


def test_limits_per_task_and_duplicates(core, actor, goal_case):
    task = open_task(core, goal_case)
    unit = actor("school_unit")
    with pytest.raises(InvalidData, match="Choose a file"):
        core.attachments.upload_many(unit, task.id, [])
    # All or none: one refused file keeps the others out too.
    with pytest.raises(InvalidData, match="“b.exe”"):
        core.attachments.upload_many(unit, task.id, [("a.pdf", pdf(1)), ("b.exe", b"MZ")])
    assert core.attachments.for_task(unit, task.id)["files"] == []
    core.attachments.upload_many(unit, task.id, [(f"page {n}.pdf", pdf(n)) for n in range(MAX_FILES_PER_TASK - 1)])
    with pytest.raises(InvalidData) as caught:
        core.attachments.upload_many(unit, task.id, [("x.pdf", pdf(100)), ("y.pdf", pdf(101))])
    assert caught.value.message == "A task takes at most 30 files; this one has 29 and 2 more were sent."
    with pytest.raises(InvalidData, match="The same file is attached to this task already, as “page 3.pdf”"):
        core.attachments.upload(unit, task.id, "copy.pdf", pdf(3))
    core.attachments.upload(unit, task.id, "last.pdf", pdf(100))
    with pytest.raises(InvalidData, match="at most 30 files; this one has 30 and 1 more"):
        core.attachments.upload(unit, task.id, "one more.pdf", pdf(101))
    assert len(core.attachments.for_task(unit, task.id)["files"]) == MAX_FILES_PER_TASK


# ---- downloading ---------------------------------------------------------------------------------

def test_who_may_download(core, actor, goal_case):
    task = open_task(core, goal_case)
    added = core.attachments.upload(actor("school_unit"), task.id, "ledger.xlsx", real_xlsx())
    for who in ("school_unit", "edu_bureau", "edu_section", "supervisor", "review1", "admin"):
        assert core.attachments.get(actor(who), added["id"]).size == added["size"], who
    for who in ("farm_unit", "agri_section", "expert1"):
        with pytest.raises(PermissionDenied):
            core.attachments.get(actor(who), added["id"])
        with pytest.raises(PermissionDenied):
            core.attachments.for_case(actor(who), goal_case)
    with pytest.raises(NotFound):
        core.attachments.get(actor("supervisor"), 999999)
    with pytest.raises(NotFound):
        core.attachments.for_case(actor("supervisor"), 999999)


def test_download_headers(core, actor, goal_case, api, pages):
    task = open_task(core, goal_case)
    unit = actor("school_unit")
    record = core.attachments.upload(unit, task.id, "现场检查记录 2027.pdf", PDF)
    sheet = core.attachments.upload(unit, task.id, "台账.xlsx", real_xlsx())
    notes = core.attachments.upload(unit, task.id, 'x"; filename=evil.html.txt', b"<html><script>alert(1)</script>")
    for response in (api("edu_bureau").get(f"/api/v1/attachments/{record['id']}"),
                     pages("edu_bureau").get(f"/attachments/{record['id']}")):
        assert response.status_code == 200
        assert response.data == PDF
        assert response.mimetype == "application/pdf"
        assert response.headers["Content-Disposition"] == (
            "attachment; filename=\"2027.pdf\"; filename*=UTF-8''"
            + quote("现场检查记录 2027.pdf", safe=""))
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "private, no-store"
    response = api("supervisor").get(f"/api/v1/attachments/{sheet['id']}")
    # Only PDFs and images keep their type; a name of no ASCII letters gets a neutral fallback.
    assert response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"] == (
        f"attachment; filename=\"attachment-{sheet['id']}.xlsx\"; filename*=UTF-8''%E5%8F%B0%E8%B4%A6.xlsx")
    response = api("supervisor").get(f"/api/v1/attachments/{notes['id']}")
    assert response.mimetype == "application/octet-stream"
    # (a quote in the name cannot end the header's quoted string: the fallback replaces it)
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"x_ filename_evil.html.txt\"; filename*=UTF-8''x%22%3B%20filename%3Devil.html.txt")
    assert api("farm_unit").get(f"/api/v1/attachments/{record['id']}").status_code == 403
    assert pages("farm_unit").get(f"/attachments/{record['id']}").status_code == 403


# ---- completion ----------------------------------------------------------------------------------

def test_completion_submits_the_tasks_files(core, actor, goal_case):
    task = open_task(core, goal_case)
    unit = actor("school_unit")
    first = core.attachments.upload(unit, task.id, "说明.pdf", PDF)
    second = core.attachments.upload(unit, task.id, "ledger.csv", b"item,amount\nbooks,1200\n")
    removed = core.attachments.upload(unit, task.id, "wrong.pdf", pdf(9))
    core.attachments.remove(unit, removed["id"])
    # A value the user sends under the system's key is refused like any unknown field.
    with pytest.raises(InvalidData) as caught:
        core.cases.complete(unit, task.id, {**goals(core), FILES_KEY: [{"id": 1, "name": "forged.pdf"}]})
    assert caught.value.details == {FILES_KEY: "Unknown field."}
    result = core.cases.complete(unit, task.id, goals(core))
    expected = [{"id": a["id"], "name": a["name"], "size": a["size"], "content_type": a["content_type"],
                 "sha256": a["sha256"]} for a in (first, second)]
    [completed] = audit(core, goal_case, "completed")
    assert completed.data[FILES_KEY] == expected
    # The next step sees them in the case data (a diagram could test them); a reviewer sees them
    # as the files of earlier steps.
    review = result.next_tasks[0]
    assert core.reads.case(actor("edu_bureau"), goal_case)["data"][FILES_KEY] == expected
    detail = core.reads.task(actor("edu_bureau"), review.id)
    assert detail["attachments"] == [] and [f["id"] for f in detail["context"]["case_files"]] == \
        [first["id"], second["id"]]
    # The review submits no file: the key then means its own (none), not the unit's.
    core.cases.complete(actor("edu_bureau"), review.id, {"decision": "return", "comment": "Add the ledger."})
    latest = audit(core, goal_case, "completed")[-1]
    assert FILES_KEY not in latest.data
    assert FILES_KEY not in core.reads.case(actor("supervisor"), goal_case)["data"]
    # Submitted files stay: no removal once the task is done.
    with pytest.raises(Conflict, match="was submitted with “"):
        core.attachments.remove(unit, first["id"])
    assert [e.data["name"] for e in audit(core, goal_case, "detached")] == ["wrong.pdf"]


def test_removal_rules(core, actor, goal_case):
    task = open_task(core, goal_case)
    core.accounts.ensure_user("school_unit2", "Second officer", demo.DEMO_PASSWORD, enforce_policy=False)
    core.accounts.grant("school_unit2", "unit", "school")
    added = core.attachments.upload(actor("school_unit"), task.id, "a.pdf", PDF)
    with pytest.raises(PermissionDenied, match="who uploaded it"):
        core.attachments.remove(actor("school_unit2"), added["id"])
    with pytest.raises(PermissionDenied):
        core.attachments.remove(actor("farm_unit"), added["id"])
    with pytest.raises(NotFound):
        core.attachments.remove(actor("school_unit"), added["id"], task_id=task.id + 1)
    assert core.attachments.remove(actor("school_unit"), added["id"])["id"] == added["id"]
    with pytest.raises(NotFound):
        core.attachments.remove(actor("school_unit"), added["id"])
    with pytest.raises(NotFound):
        core.attachments.get(actor("school_unit"), added["id"])
    [event] = audit(core, goal_case, "detached")
    assert (event.actor_id, event.human_task_id, event.data["name"]) == (actor("school_unit").id, task.id, "a.pdf")


# ---- the ex-ante on-site examination record --------------------------------------------------------

def test_the_site_examination_record_carries_its_files(core, actor, project_id):
    from test_ex_ante import APPROVE, SITE, rated
    case_id = core.cases.start(actor("school_unit"), "ex_ante_evaluation", project_id("EDU-2027-004")).id

    def step(who, data, files=()):
        task = open_task(core, case_id)
        for name, content in files:
            core.attachments.upload(actor(who), task.id, name, content)
        return core.cases.complete(actor(who), task.id, data)

    step("school_unit", demo.sample_declaration("School library expansion", "900000"),
         [("申报书.pdf", pdf(1))])
    step("edu_bureau", APPROVE)
    step("review1", SITE, [("现场照片.png", PNG), ("检查记录.docx", office_package(WORD_MAIN))])
    step("review1", {"scores": rated(*("good",) * 5), "summary": "Sound."}, [("评分说明.pdf", pdf(2))])
    [evaluation] = core.reads.project(actor("supervisor"), project_id("EDU-2027-004"))["ex_ante_evaluations"]
    site = evaluation["site_examination"]
    assert site["participants"] == SITE["participants"]
    assert [(f["name"], f["content_type"]) for f in site["attachments"]] == [
        ("现场照片.png", "image/png"), ("检查记录.docx", attachments.WORD)]
    assert set(site["attachments"][0]) == {"id", "name", "size", "content_type", "sha256"}
    # ... and each can be downloaded by id.
    assert core.attachments.get(actor("supervisor"), site["attachments"][0]["id"]).content == PNG


def test_a_site_examination_without_files_records_none(core, actor, project_id):
    from test_ex_ante import APPROVE, SITE, rated
    case_id = core.cases.start(actor("school_unit"), "ex_ante_evaluation", project_id("EDU-2027-004")).id
    for who, data in (("school_unit", demo.sample_declaration("School library expansion", "900000")),
                      ("edu_bureau", APPROVE), ("review1", SITE),
                      ("review1", {"scores": rated(*("good",) * 5), "summary": "Sound."})):
        core.cases.complete(actor(who), open_task(core, case_id).id, data)
    [evaluation] = core.reads.project(actor("supervisor"), project_id("EDU-2027-004"))["ex_ante_evaluations"]
    assert evaluation["site_examination"]["attachments"] == []


# ---- the JSON API --------------------------------------------------------------------------------

def test_api_upload_list_and_delete(core, goal_case, api):
    task = open_task(core, goal_case)
    unit = api("school_unit")
    url = f"/api/v1/tasks/{task.id}/attachments"
    r = unit.client.post(url, headers=unit.headers, **multipart(PDF, "检查记录.pdf"))
    assert r.status_code == 201, r.get_json()
    added = r.get_json()
    assert (added["name"], added["content_type"], added["task_id"]) == ("检查记录.pdf", "application/pdf", task.id)
    r = unit.client.post(url, headers=unit.headers, **multipart(b"MZ\x90\x00", "scan.pdf"))
    assert (r.status_code, r.get_json()["details"]) == (400, {"file": "The file is not a PDF document: its "
                                                                      "content does not match its name."})
    r = unit.client.post(url, headers=unit.headers, data={}, content_type="multipart/form-data")
    assert (r.status_code, r.get_json()["details"]) == (400, {"file": "This field is required."})
    r = unit.client.post(url, headers=unit.headers, content_type="multipart/form-data",
                         data={"file": [(io.BytesIO(PDF), "a.pdf"), (io.BytesIO(pdf(2)), "b.pdf")]})
    assert r.status_code == 400 and r.get_json()["error"] == "send one file per request (form field 'file')"
    farm = api("farm_unit")
    assert farm.client.post(url, headers=farm.headers, **multipart(pdf(3), "x.pdf")).status_code == 403
    assert api("edu_bureau").get(f"/api/v1/cases/{goal_case}/attachments").get_json()["total"] == 1
    assert unit.get(f"/api/v1/tasks/{task.id}").get_json()["attachments"][0]["id"] == added["id"]
    assert unit.get(f"/api/v1/cases/{goal_case}").get_json()["attachments"][0]["id"] == added["id"]
    assert unit.client.delete(f"/api/v1/attachments/{added['id']}", headers=unit.headers).status_code == 200
    assert unit.get(f"/api/v1/cases/{goal_case}/attachments").get_json() == {"items": [], "total": 0}


def test_api_upload_body_limit(core, goal_case, api):
    task = open_task(core, goal_case)
    unit = api("school_unit")
    url = f"/api/v1/tasks/{task.id}/attachments"
    # Larger than the app's 8 MiB body limit is fine on this route, up to the file limit ...
    big = b"%PDF-" + bytes(MAX_FILE_BYTES - 5)
    r = unit.client.post(url, headers=unit.headers, **multipart(big, "scan.pdf"))
    assert r.status_code == 201 and r.get_json()["size"] == MAX_FILE_BYTES
    # ... a file just over it is refused by the engine with its reason, a far larger body by the server.
    r = unit.client.post(url, headers=unit.headers, **multipart(big + b"%" * 1000, "scan2.pdf"))
    assert r.status_code == 400 and "at most 20 MB per file" in r.get_json()["error"]
    r = unit.client.post(url, headers=unit.headers, **multipart(big + bytes(2 * 1024 * 1024), "scan3.pdf"))
    assert r.status_code == 413
    # Other routes keep the app's limit.
    r = unit.client.post(f"/api/v1/tasks/{task.id}/complete", headers=unit.headers, data=b"x" * (9 * 1024 * 1024),
                         content_type="application/json")
    assert r.status_code == 413


# ---- the pages -----------------------------------------------------------------------------------

def test_page_upload_needs_the_csrf_token_and_returns_to_the_task(core, goal_case, pages):
    task = open_task(core, goal_case)
    session = pages("school_unit")
    page = session.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert 'id="attachments"' in page and 'enctype="multipart/form-data"' in page
    # The panel comes before the task form, which it is not part of.
    assert page.index('id="attachments"') < page.index('id="task-form"')
    url = f"/tasks/{task.id}/attachments"
    r = session.client.post(url, **multipart(PDF, "记录.pdf"))
    assert r.status_code == 400                                    # no CSRF token
    assert core.attachments.for_task(core.accounts.actor(_uid(core, "school_unit")), task.id)["files"] == []
    r = session.client.post(url, **multipart(PDF, "记录.pdf", csrf_token=csrf_of(page)))
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/tasks/{task.id}#attachments")
    page = session.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert "Attached “记录.pdf”." in page and ">记录.pdf</a>" in page
    [added] = core.attachments.for_task(core.accounts.actor(_uid(core, "school_unit")), task.id)["files"]
    assert f'action="/tasks/{task.id}/attachments/{added["id"]}/remove"' in page
    # A refusal comes back as a message on the task page.
    r = session.client.post(url, **multipart(b"MZ", "setup.pdf", csrf_token=csrf_of(page)))
    assert r.status_code == 303
    assert "“setup.pdf”: The file is not a PDF document" in session.get(f"/tasks/{task.id}").get_data(as_text=True)
    # Several files at once.
    r = session.client.post(url, content_type="multipart/form-data", data={
        "csrf_token": csrf_of(page), "file": [(io.BytesIO(pdf(1)), "a.pdf"), (io.BytesIO(PNG), "b.png")]})
    assert r.status_code == 303
    assert [f["name"] for f in core.reads.task(core.accounts.actor(_uid(core, "school_unit")), task.id)
            ["attachments"]] == ["记录.pdf", "a.pdf", "b.png"]


def _uid(core, username):
    with core.db.reading() as s:
        return queries.user_by_username(s, username).id


def test_htmx_upload_and_removal_swap_the_panel(core, goal_case, pages):
    task = open_task(core, goal_case)
    session = pages("school_unit")
    token = csrf_of(session.get(f"/tasks/{task.id}").get_data(as_text=True))
    htmx = {"HX-Request": "true"}
    r = session.client.post(f"/tasks/{task.id}/attachments", headers=htmx, **multipart(PDF, "记录.pdf",
                                                                                       csrf_token=token))
    assert r.status_code == 200 and r.headers["X-Attachments-Panel"] == "1"
    html = r.get_data(as_text=True)
    assert html.strip().startswith('<section id="attachments"')     # the panel alone, no page around it
    assert ">记录.pdf</a>" in html
    r = session.client.post(f"/tasks/{task.id}/attachments", headers=htmx,
                            **multipart(b"", "empty.pdf", csrf_token=token))
    assert r.status_code == 400 and r.headers["X-Attachments-Panel"] == "1"
    assert "“empty.pdf”: The file is empty." in r.get_data(as_text=True)
    [added] = core.attachments.for_task(core.accounts.actor(_uid(core, "school_unit")), task.id)["files"]
    r = session.client.post(f"/tasks/{task.id}/attachments/{added['id']}/remove", headers=htmx,
                            data={"csrf_token": token})
    assert r.status_code == 200 and "No files attached yet." in r.get_data(as_text=True)


def test_page_removal_and_a_completed_task(core, actor, goal_case, pages):
    task = open_task(core, goal_case)
    added = core.attachments.upload(actor("school_unit"), task.id, "a.pdf", PDF)
    colleague_page = pages("supervisor")
    page = colleague_page.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert ">a.pdf</a>" in page and "/remove" not in page and 'type="file"' not in page
    r = colleague_page.client.post(f"/tasks/{task.id}/attachments/{added['id']}/remove",
                                   data={"csrf_token": csrf_of(page)})
    assert r.status_code == 403
    session = pages("school_unit")
    core.cases.complete(actor("school_unit"), task.id, goals(core))
    page = session.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert ">a.pdf</a>" in page and "/remove" not in page and 'type="file"' not in page
    r = session.client.post(f"/tasks/{task.id}/attachments/{added['id']}/remove", data={"csrf_token": csrf_of(page)})
    assert r.status_code == 303
    assert "was submitted with" in session.get(f"/tasks/{task.id}").get_data(as_text=True)
    r = session.client.post(f"/tasks/{task.id}/attachments", **multipart(pdf(2), "late.pdf",
                                                                         csrf_token=csrf_of(page)))
    assert r.status_code == 303
    assert "This task was already completed" in session.get(f"/tasks/{task.id}").get_data(as_text=True)


def test_the_case_page_lists_every_file_with_its_step(core, actor, goal_case, pages):
    task = open_task(core, goal_case)
    added = core.attachments.upload(actor("school_unit"), task.id, "台账.xlsx", real_xlsx())
    html = pages("edu_bureau").get(f"/cases/{goal_case}").get_data(as_text=True)
    assert 'id="case-attachments"' in html
    assert f'href="/attachments/{added["id"]}">台账.xlsx</a>' in html
    assert task.name in html.split('id="case-attachments"')[1].split("</table>")[0]
    assert "attached the file “台账.xlsx” to" in html


def test_page_upload_body_limit(core, goal_case, pages):
    task = open_task(core, goal_case)
    session = pages("school_unit")
    token = csrf_of(session.get(f"/tasks/{task.id}").get_data(as_text=True))
    # Two files of 12 MB in one upload: more than the app's 8 MiB, within the page's limit.
    r = session.client.post(f"/tasks/{task.id}/attachments", content_type="multipart/form-data", data={
        "csrf_token": token, "file": [(io.BytesIO(b"%PDF-" + bytes(12 << 20)), "a.pdf"),
                                      (io.BytesIO(b"%PDF-1" + bytes(12 << 20)), "b.pdf")]})
    assert r.status_code == 303
    r = session.client.post(f"/tasks/{task.id}/attachments", **multipart(b"%PDF-" + bytes(62 << 20), "huge.pdf",
                                                                         csrf_token=token))
    assert r.status_code == 413


# ---- storage -------------------------------------------------------------------------------------

def test_backups_carry_the_files(core, actor, goal_case, tmp_path):
    from test_backup import snapshot
    task = open_task(core, goal_case)
    added = core.attachments.upload(actor("school_unit"), task.id, "现场检查记录.pdf", PDF)
    before = snapshot(core.db)
    assert [row[0] for row in before["attachments"]] == [added["id"]]
    info = backup.backup(core.db, tmp_path / "with-files.backup")
    core.attachments.remove(actor("school_unit"), added["id"])
    core.attachments.upload(actor("school_unit"), task.id, "other.png", PNG)
    backup.restore(core.db, info.path)
    assert snapshot(core.db) == before
    assert core.attachments.get(actor("supervisor"), added["id"]).content == PDF


def test_the_migration_goes_down_and_up(core, actor, goal_case):
    """0007 drops its table cleanly (SQLite and PostgreSQL) and creates it again."""
    cfg = alembic_config(core.db.url)
    core.db.dispose()
    plain = create_engine(core.db.url)
    try:
        with plain.connect() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0006")
            conn.commit()
            assert "attachments" not in inspect(conn).get_table_names()
    finally:
        plain.dispose()
    upgrade(core.db)
    task = open_task(core, goal_case)
    assert core.attachments.upload(actor("school_unit"), task.id, "a.pdf", PDF)["name"] == "a.pdf"
    with core.db.reading() as s:
        assert s.scalar(select(Attachment.file_name)) == "a.pdf"


# ---- in Chromium: the htmx panel under the Content-Security-Policy --------------------------------

@pytest.fixture
def live_server(app):
    import threading
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="perfbudget-live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.mark.browser
def test_the_panel_uploads_in_place_in_chromium(core, goal_case, live_server, tmp_path):
    """Uploading swaps only the panel (what was typed in the task form stays), a refusal shows
    its message in the panel, removing works, and nothing breaks the CSP or logs an error."""
    import os
    from playwright.sync_api import expect, sync_playwright
    from test_security import CHROMIUM, LAUNCH_ARGS, RECORD_VIOLATIONS
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's Chromium", pytrace=False)
    task = open_task(core, goal_case)
    (tmp_path / "现场检查记录.pdf").write_bytes(PDF)
    (tmp_path / "setup.pdf").write_bytes(b"MZ\x90\x00")
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(base_url=live_server)
            context.add_init_script(RECORD_VIOLATIONS)
            page = context.new_page()
            # (The refused upload's 400 is logged as a failed load: that one is meant.)
            page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
                    if (msg.type == "error" and not msg.text.startswith("Failed to load resource"))
                    or "Content Security Policy" in msg.text else None)
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.goto("/login")
            page.get_by_label("Username").fill("school_unit")
            page.get_by_label("Password").fill(demo.DEMO_PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page).to_have_url(f"{live_server}/inbox")
            page.goto(f"/tasks/{task.id}")
            typed = page.locator("#task-form textarea").first
            typed.fill("Typed before the upload")
            panel = page.locator("#attachments")
            panel.locator("input[type=file]").set_input_files(str(tmp_path / "现场检查记录.pdf"))
            panel.get_by_role("button", name="Upload").click()
            expect(page.locator("#attachments a", has_text="现场检查记录.pdf")).to_be_visible()
            expect(typed).to_have_value("Typed before the upload")
            page.locator("#attachments input[type=file]").set_input_files(str(tmp_path / "setup.pdf"))
            page.locator("#attachments").get_by_role("button", name="Upload").click()
            expect(page.get_by_test_id("attachments-error")).to_contain_text("“setup.pdf”: The file is not a PDF")
            page.locator("#attachments").get_by_role("button", name="Remove 现场检查记录.pdf").click()
            expect(page.locator("#attachments")).to_contain_text("No files attached yet.")
            expect(typed).to_have_value("Typed before the upload")
            problems.extend(page.evaluate("window.__cspViolations"))
        finally:
            browser.close()
    assert problems == []
