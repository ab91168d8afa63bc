"""Importing projects from an .xlsx declaration table (issue #3): the template, all-or-nothing
imports with one error per bad row, who may import, and the page and API around it."""
from __future__ import annotations

import io
import zipfile
from datetime import date
from decimal import Decimal

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from engine import project_import as pi
from engine.errors import Conflict, PermissionDenied
from engine.project_import import HEADERS, ImportRejected, template_bytes
from storage import project_queries, queries
from storage.models import AuditEvent, Project

P = "/api/v1"
XLSX = pi.XLSX_MEDIA_TYPE
KEYS = [c.key for c in pi.COLUMNS]


def row(code: str, **fields) -> list:
    """A valid declaration row for the demo's No. 1 Middle School, with `fields` changed."""
    values = {"code": code, "name": f"Imported project {code}", "year": 2027, "unit": "school", "competent": "",
              "funding": "edu_funding", "category": "Education", "is_new": "new", "general_budget": 100000,
              "start_date": date(2027, 1, 1), "end_date": date(2027, 12, 31), "is_key": "no", **fields}
    return [values.get(key) for key in KEYS]


def workbook(rows, template: bytes | None = None, headers=None) -> bytes:
    """The template (or a bare sheet with `headers`) filled with `rows`, as .xlsx bytes."""
    if headers is None:
        book = load_workbook(io.BytesIO(template or template_bytes()))
        sheet = book["Projects"]
    else:
        book = Workbook()
        sheet = book.active
        sheet.append(headers)
    for values in rows:
        sheet.append(values)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def project_count(core) -> int:
    with core.db.reading() as s:
        return s.scalar(select(func.count()).select_from(Project))


def upload(content: bytes, name: str = "projects.xlsx") -> dict:
    return {"file": (io.BytesIO(content), name)}


def api_import(client, headers, content: bytes, name: str = "projects.xlsx"):
    return client.post(f"{P}/projects/import", headers=headers, data=upload(content, name),
                       content_type="multipart/form-data")


# ---- the template --------------------------------------------------------------------------

def test_template_downloads_as_a_valid_xlsx_with_the_declaration_columns(api):
    r = api("perf1").get(f"{P}/projects/import/template.xlsx")
    assert r.status_code == 200
    assert r.mimetype == XLSX
    assert "attachment" in r.headers["Content-Disposition"] and ".xlsx" in r.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(r.data))
    assert book.sheetnames == ["Projects", "Organisations"]
    sheet = book["Projects"]
    assert tuple(c.value for c in sheet[1]) == HEADERS
    for header in ("Project code", "Project name", "Budget year", "Budget unit", "Competent department",
                   "Funding business section", "Category", "New or continuing", "General public budget (yuan)",
                   "Government fund budget (yuan)", "State capital operation budget (yuan)",
                   "Special account funds (yuan)", "Other funds (yuan)", "Carried-over funds (yuan)",
                   "Start date", "End date", "Key project"):
        assert header in HEADERS
    hints = [c.value for c in sheet[2]]
    assert all(hints) and "5,000,000" in hints[HEADERS.index("Key project")]
    assert sheet.column_dimensions["A"].width >= 15
    lists = {dv.formula1 for dv in sheet.data_validations.dataValidation}
    assert lists == {'"new,continuing"', '"yes,no"'}
    organisations = list(book["Organisations"].iter_rows(values_only=True))
    codes = {r[2]: r for r in organisations[1:]}
    assert codes["school"][:2] == ("budget unit", "Budget unit")
    assert codes["school"][4] == "Education Bureau (edu_bureau)"
    assert codes["edu_bureau"][0] == "competent department"
    assert codes["edu_funding"][0] == "finance section"
    assert "finance" not in codes and "expert_agency" not in codes   # not usable in the table


def test_template_hint_follows_the_key_amount_setting(demo_core, actor):
    demo_core.settings.update(actor("admin"), "project.key_amount", {"value": 3000000})
    sheet = load_workbook(io.BytesIO(demo_core.project_import.template()))["Projects"]
    assert "3,000,000 yuan" in sheet.cell(row=2, column=len(HEADERS)).value


def test_any_logged_in_user_may_download_the_template_but_not_anonymous(client, api, pages):
    assert api("school_unit").get(f"{P}/projects/import/template.xlsx").status_code == 200
    page = pages("school_unit").get("/projects/import/template.xlsx")
    assert page.status_code == 200 and page.mimetype == XLSX
    r = client.get(f"{P}/projects/import/template.xlsx")
    assert r.status_code == 401 and r.get_json()["error"].startswith("a valid bearer token")
    assert client.get("/projects/import/template.xlsx").status_code == 302    # to the login page


# ---- good files ----------------------------------------------------------------------------

def test_a_good_file_from_the_downloaded_template_imports_every_project(api, demo_core, pages):
    admin = api("admin")
    template = admin.get(f"{P}/projects/import/template.xlsx").data
    before = project_count(demo_core)
    content = workbook([
        row("IMP-2027-001"),
        row("IMP-2027-002", unit="Agricultural Technology Station", competent="agri_bureau",
            funding="Agriculture Funding Section", is_new="continuing", general_budget=4000000,
            government_fund=1500000.5, carried_over="1,000.25", is_key=""),
        row("IMP-2027-003", name="Small but key", is_key="是", general_budget=None, other_funds=20000),
    ], template)
    r = api_import(admin.client, admin.headers, content)
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"imported": 3, "codes": ["IMP-2027-001", "IMP-2027-002", "IMP-2027-003"]}
    assert project_count(demo_core) == before + 3

    listed = {p["code"]: p for p in api("supervisor").get(f"{P}/projects").get_json()["items"]}
    first, second, third = listed["IMP-2027-001"], listed["IMP-2027-002"], listed["IMP-2027-003"]
    assert (first["unit"], first["competent"], first["funding"]) == ("school", "edu_bureau", "edu_funding")
    assert first["is_new"] is True and first["is_key"] is False and first["amount"] == "100000.00"
    assert first["goals_status"] == "none" and first["ex_ante_status"] == "none" and first["needs_ex_ante"]
    # Over the key amount: key whatever the sheet says; the amount is the sum of the sources.
    assert second["amount"] == "5501000.75" and second["is_key"] is True and second["is_new"] is False
    assert (second["unit"], second["competent"], second["funding"]) == ("farm_station", "agri_bureau",
                                                                       "agri_funding")
    assert third["is_key"] is True and third["amount"] == "20000.00"
    # The unit sees its own imported projects; another unit does not.
    assert "IMP-2027-001" in {p["code"] for p in api("school_unit").get(f"{P}/projects").get_json()["items"]}
    assert "IMP-2027-001" not in {p["code"] for p in api("farm_unit").get(f"{P}/projects").get_json()["items"]}

    with demo_core.db.reading() as s:
        project = queries.project_by_code(s, "IMP-2027-002")
        assert project.funding_sources == {"general_budget": "4000000.00", "government_fund": "1500000.50",
                                           "state_capital": "0.00", "special_account": "0.00",
                                           "other_funds": "0.00", "carried_over": "1000.25"}
        assert (project.start_date, project.end_date) == (date(2027, 1, 1), date(2027, 12, 31))
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "projects_imported")).one()
        assert event.case_id is None and event.actor_id == admin_id(demo_core)
        assert event.data == {"count": 3, "codes": ["IMP-2027-001", "IMP-2027-002", "IMP-2027-003"],
                              "file": "projects.xlsx"}
    page = pages("edu_bureau").get(f"/projects/{listed['IMP-2027-001']['id']}")
    assert page.status_code == 200 and "Imported project IMP-2027-001" in page.get_data(as_text=True)


def admin_id(core) -> int:
    with core.db.reading() as s:
        return queries.user_by_username(s, "admin").id


def test_columns_may_come_in_any_order_and_blank_rows_are_skipped(demo_core, actor):
    order = list(reversed(HEADERS))
    values = list(reversed(row("ORD-1", name="Reordered")))
    content = workbook([values, [None] * len(order), ["  "] + [None] * (len(order) - 1),
                        list(reversed(row("ORD-2")))], headers=order)
    result = demo_core.project_import.import_file(actor("perf1"), content)
    assert result.codes == ["ORD-1", "ORD-2"]


@pytest.mark.parametrize("raw, expected", [
    ("yes", True), ("YES", True), ("true", True), (1, True), (True, True), ("是", True),
    ("no", False), ("False", False), (0, False), (False, False), ("否", False), (None, False), ("", False),
])
def test_key_flags_parse(raw, expected):
    assert bool(pi._flag(raw)) is expected


@pytest.mark.parametrize("raw, expected", [
    (100, "100.00"), (100.5, "100.50"), ("1,234.56", "1234.56"), (None, "0.00"), ("", "0.00"),
    (0.1 + 0.2, "0.30"), (0, "0.00"),
])
def test_amounts_parse(raw, expected):
    assert pi._amount(raw) == Decimal(expected)


@pytest.mark.parametrize("raw, message", [
    (-1, "negative"), (1.234, "2 decimals"), ("1.001", "2 decimals"), ("a lot", "amount"), (True, "amount"),
    (float("nan"), "amount"), (10**17, "Too large"),
])
def test_bad_amounts_are_refused(raw, message):
    with pytest.raises(pi._Bad, match=message):
        pi._amount(raw)


@pytest.mark.parametrize("raw, expected", [
    ("2027-03-01", date(2027, 3, 1)), ("2027/3/1", date(2027, 3, 1)), ("2027年3月1日", date(2027, 3, 1)),
    (date(2027, 3, 1), date(2027, 3, 1)),
])
def test_dates_parse(raw, expected):
    assert pi._date(raw) == expected


# ---- bad files: one error per bad row, nothing imported ------------------------------------

def test_bad_rows_each_get_an_error_and_nothing_is_imported(api, demo_core):
    admin = api("admin")
    before = project_count(demo_core)
    content = workbook([
        row("BAD-01"),                                           # row 3: fine
        row("BAD-02", name=""),                                  # row 4: required
        row("BAD-03", year=1899),                                # row 5: year out of range
        row("BAD-04", year="next year"),                         # row 6: not a year
        row("BAD-05", general_budget=-5),                        # row 7: negative
        row("BAD-06", general_budget=10.123),                    # row 8: 3 decimals
        row("BAD-07", start_date="2027-02-30"),                  # row 9: no such date
        row("BAD-08", start_date=date(2027, 6, 1), end_date=date(2027, 1, 1)),   # row 10: ends first
        row("BAD-09", unit="edu_bureau"),                        # row 11: a department, not a unit
        row("BAD-10", competent="agri_bureau"),                  # row 12: not the unit's department
        row("BAD-11", funding="Nowhere Section"),                # row 13: unknown organisation
        row("BAD-12", funding="school"),                         # row 14: wrong kind
        row("BAD-13", is_key="perhaps"),                         # row 15: not yes/no
        row("BAD-14", is_new="maybe"),                           # row 16: not new/continuing
        row("BAD-15", general_budget=0),                         # row 17: no funds at all
        row("12345"),                                            # row 18: digits only
        row("BAD 17"),                                           # row 19: a space in the code
    ])
    r = api_import(admin.client, admin.headers, content)
    assert r.status_code == 400
    body = r.get_json()
    assert set(body) == {"error", "details", "rows"}
    assert body["error"] == "Nothing was imported: 16 problems in 16 rows of 17."
    assert [e["row"] for e in body["rows"]] == list(range(4, 20))
    by_row = {e["row"]: e for e in body["rows"]}
    assert by_row[4]["column"] == "Project name" and by_row[4]["message"] == "Required."
    assert by_row[5]["column"] == "Budget year" and "2000" in by_row[5]["message"]
    assert by_row[6]["column"] == "Budget year"
    assert by_row[7]["column"] == "General public budget (yuan)" and "negative" in by_row[7]["message"]
    assert "2 decimals" in by_row[8]["message"]
    assert by_row[9]["column"] == "Start date" and by_row[9]["message"] == "No such date."
    assert by_row[10]["column"] == "End date"
    assert by_row[11]["column"] == "Budget unit" and "competent department, not a budget unit" in \
        by_row[11]["message"]
    assert by_row[12]["column"] == "Competent department" and "belongs to Education Bureau" in by_row[12]["message"]
    assert by_row[13]["column"] == "Funding business section" and "Nowhere Section" in by_row[13]["message"]
    assert "is a budget unit, not a finance section" in by_row[14]["message"]
    assert by_row[15]["column"] == "Key project"
    assert by_row[16]["column"] == "New or continuing"
    assert "no funds" in by_row[17]["message"]
    assert by_row[18]["column"] == "Project code" and "digits only" in by_row[18]["message"]
    assert by_row[19]["column"] == "Project code"
    assert project_count(demo_core) == before
    with demo_core.db.reading() as s:
        assert queries.project_by_code(s, "BAD-01") is None
        assert s.scalars(select(AuditEvent).where(AuditEvent.action == "projects_imported")).first() is None


def test_duplicate_codes_in_the_file_and_in_the_database(api, demo_core):
    admin = api("admin")
    before = project_count(demo_core)
    content = workbook([row("DUP-1"), row("EDU-2027-001"), row("DUP-1"), row("DUP-2"), row("DUP-1")])
    r = api_import(admin.client, admin.headers, content)
    assert r.status_code == 400
    assert r.get_json()["rows"] == [
        {"row": 4, "column": "Project code", "message": "A project with code EDU-2027-001 already exists."},
        {"row": 5, "column": "Project code", "message": "Code DUP-1 is also on row 3."},
        {"row": 7, "column": "Project code", "message": "Code DUP-1 is also on row 3."},
    ]
    assert project_count(demo_core) == before


def test_a_file_imported_twice_is_refused_the_second_time(demo_core, actor):
    content = workbook([row("TWICE-1"), row("TWICE-2")])
    assert demo_core.project_import.import_file(actor("admin"), content).imported == 2
    with pytest.raises(ImportRejected) as caught:
        demo_core.project_import.import_file(actor("admin"), content)
    assert [e["row"] for e in caught.value.rows] == [3, 4]


def test_headers_unlike_the_template_are_named(api, demo_core):
    admin = api("admin")
    headers = [h for h in HEADERS if h != "Category"] + ["Colour"]
    headers[0] = "Project ID"
    r = api_import(admin.client, admin.headers, workbook([["X"] * len(headers)], headers=headers))
    assert r.status_code == 400
    body = r.get_json()
    assert body["error"] == ("The header row does not match the template: missing 'Project code', 'Category'; "
                             "unknown 'Project ID', 'Colour'.")
    assert {(e["row"], e["column"]) for e in body["rows"]} == {(1, "Project ID"), (1, "Colour"),
                                                               (1, "Project code"), (1, "Category")}


def test_a_repeated_column_is_refused(demo_core, actor):
    with pytest.raises(ImportRejected, match="repeated 'Budget year'"):
        demo_core.project_import.import_file(actor("admin"), workbook([], headers=[*HEADERS, "Budget year"]))


@pytest.mark.parametrize("content, message", [
    (b"", "The file is empty."),
    (b"code,name\nX,Y\n", "not an Excel workbook (.xlsx)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "old Excel 97-2003 (.xls)"),
    (b"PK\x03\x04 this is no zip", "damaged or not an Excel workbook"),
])
def test_files_that_are_not_xlsx_are_refused_clearly(api, content, message):
    admin = api("admin")
    r = api_import(admin.client, admin.headers, content, "projects.csv")
    assert r.status_code == 400
    assert message in r.get_json()["error"] and r.get_json()["rows"] == []


def test_a_zip_that_is_not_a_workbook_is_refused(demo_core, actor):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "hello")
    with pytest.raises(ImportRejected, match="could not be read as an Excel workbook"):
        demo_core.project_import.import_file(actor("admin"), out.getvalue())


def test_a_template_without_rows_is_refused(demo_core, actor):
    with pytest.raises(ImportRejected, match="no project rows"):
        demo_core.project_import.import_file(actor("admin"), template_bytes())
    with pytest.raises(ImportRejected, match="no header row"):
        demo_core.project_import.import_file(actor("admin"), workbook([], headers=[]))


def test_size_and_row_limits(demo_core, actor, monkeypatch):
    monkeypatch.setattr(pi, "MAX_BYTES", 4096)
    with pytest.raises(ImportRejected, match="The file is 5 KB; the limit is 4 KB"):
        demo_core.project_import.import_file(actor("admin"), b"PK" + b"\0" * 5000)
    monkeypatch.setattr(pi, "MAX_BYTES", 5 * 1024 * 1024)
    monkeypatch.setattr(pi, "MAX_ROWS", 3)
    with pytest.raises(ImportRejected, match="more than 3 projects"):
        demo_core.project_import.import_file(actor("admin"), workbook([row(f"LIM-{i}") for i in range(4)]))
    assert demo_core.project_import.import_file(actor("admin"), workbook([row(f"LIM-{i}") for i in range(3)])
                                                ).imported == 3


def test_the_real_limits_are_5_mb_and_5000_rows():
    assert (pi.MAX_BYTES, pi.MAX_ROWS) == (5 * 1024 * 1024, 5000)


def test_no_file_in_the_request(api):
    admin = api("admin")
    r = admin.client.post(f"{P}/projects/import", headers=admin.headers, data={"other": "x"},
                          content_type="multipart/form-data")
    assert r.status_code == 400 and "Choose the .xlsx file" in r.get_json()["error"]


def test_a_code_created_meanwhile_turns_into_a_conflict_and_nothing_is_imported(demo_core, actor, monkeypatch):
    """The check for existing codes and the insert race with another import: the database's unique
    constraint decides, and the whole import is rolled back."""
    monkeypatch.setattr(project_queries, "existing_project_codes", lambda s, codes: set())
    before = project_count(demo_core)
    with pytest.raises(Conflict):
        demo_core.project_import.import_file(actor("admin"), workbook([row("RACE-1"), row("EDU-2027-001")]))
    assert project_count(demo_core) == before


# ---- who may import --------------------------------------------------------------------------

@pytest.mark.parametrize("username, allowed", [
    ("admin", True), ("perf1", True), ("school_unit", False), ("edu_bureau", False), ("edu_section", False),
    ("review1", False), ("expert1", False), ("supervisor", False),
])
def test_who_may_import(demo_core, actor, username, allowed):
    content = workbook([row(f"WHO-{username}")])
    if allowed:
        assert demo_core.project_import.import_file(actor(username), content).imported == 1
    else:
        with pytest.raises(PermissionDenied):
            demo_core.project_import.import_file(actor(username), content)


def test_the_budget_section_may_import(demo_core, actor):
    demo_core.accounts.ensure_user("budget1", "Qian Yu (Budget Section)", "demo", enforce_policy=False)
    demo_core.accounts.grant("budget1", "budget", "budget_section")
    assert demo_core.project_import.import_file(actor("budget1"), workbook([row("BUD-1")])).codes == ["BUD-1"]


def test_a_budget_unit_gets_403_from_the_api_and_the_page(api, pages, demo_core):
    unit = api("school_unit")
    before = project_count(demo_core)
    r = api_import(unit.client, unit.headers, workbook([row("UNIT-1")]))
    assert r.status_code == 403 and "may import projects" in r.get_json()["error"]
    session = pages("school_unit")
    assert session.get("/projects/import").status_code == 403
    token = _csrf(session.get("/start").get_data(as_text=True))
    r = session.client.post("/projects/import", data={**upload(workbook([row("UNIT-2")])), "csrf_token": token})
    assert r.status_code == 403
    assert project_count(demo_core) == before
    assert "import-projects-link" not in session.get("/start").get_data(as_text=True)


def test_the_api_needs_a_token(client):
    r = client.post(f"{P}/projects/import", data=upload(workbook([row("ANON-1")])))
    assert r.status_code == 401 and r.get_json()["error"].startswith("a valid bearer token")


# ---- the page ----------------------------------------------------------------------------------

def _csrf(html: str) -> str:
    import re
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_the_page_imports_a_good_file_and_says_how_many(pages, demo_core):
    session = pages("perf1")
    page = session.get("/projects/import")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in html and 'name="csrf_token"' in html
    assert "/projects/import/template.xlsx" in html
    r = session.post_form("/projects/import", upload(workbook([row("PAGE-1"), row("PAGE-2")])))
    assert r.status_code == 302 and r.headers["Location"].endswith("/projects/import")
    html = session.get("/projects/import").get_data(as_text=True)
    assert "2 projects imported: PAGE-1, PAGE-2." in html
    with demo_core.db.reading() as s:
        assert queries.project_by_code(s, "PAGE-2") is not None
    assert "import-projects-link" in session.get("/start").get_data(as_text=True)


def test_the_page_lists_each_bad_row(pages, demo_core):
    session = pages("admin")
    before = project_count(demo_core)
    r = session.post_form("/projects/import", upload(workbook([row("P-1", year=""), row("P-2"),
                                                              row("P-3", end_date="soon")])))
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    assert "Nothing was imported: 2 problems in 2 rows of 3." in html
    assert "<tr><td>3</td><td>Budget year</td><td>Required.</td></tr>" in html
    assert "<tr><td>5</td><td>End date</td><td>A date, YYYY-MM-DD.</td></tr>" in html
    assert project_count(demo_core) == before


def test_the_page_shows_a_file_level_problem(pages):
    r = pages("admin").post_form("/projects/import", upload(b"not a workbook", "table.xls"))
    assert r.status_code == 400 and "not an Excel workbook (.xlsx)" in r.get_data(as_text=True)


def test_the_page_form_needs_its_csrf_token(pages, demo_core):
    session = pages("admin")
    before = project_count(demo_core)
    r = session.client.post("/projects/import", data=upload(workbook([row("CSRF-1")])))
    assert r.status_code == 400 and "reload the page" in r.get_data(as_text=True)
    r = session.client.post("/projects/import", data={**upload(workbook([row("CSRF-2")])), "csrf_token": "forged"})
    assert r.status_code == 400
    assert project_count(demo_core) == before


def test_the_page_needs_a_login(client):
    r = client.get("/projects/import")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
