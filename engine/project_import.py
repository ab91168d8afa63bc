"""Import projects from an .xlsx file laid out like the project declaration table.

All or nothing: every row is checked, every problem comes back with its spreadsheet row, its
column header and a message, and a file with any problem imports no project at all, so the
person importing fixes the sheet and uploads it again instead of hunting for half an import.
The template (`template_bytes`) is the same layout with a row of hints and a sheet listing the
organisations by kind, so that units and departments can be looked up while filling it in.
"""
from __future__ import annotations

import io
import math
import re
import warnings
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Iterable

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from sqlalchemy.exc import IntegrityError

from storage import project_queries
from storage.db import Database
from storage.models import AuditEvent, Organisation, Project

from .access import Actor
from .clock import Clock
from .errors import Conflict, InvalidData, PermissionDenied
from .rules.defaults import DEFAULTS
from .settings import SettingsService

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TEMPLATE_FILENAME = "project-import-template.xlsx"
SHEET = "Projects"
ORG_SHEET = "Organisations"

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 5000
# An .xlsx is a zip archive: a small upload can expand enormously. Real declaration tables
# of 5,000 rows unpack to a few MB, so this only stops archives built to exhaust the server.
MAX_UNZIPPED_BYTES = 200 * 1024 * 1024
# Blank rows are skipped, but scanning stops somewhere (a stray value in row 1,048,576).
MAX_SCANNED_ROWS = 100_000
# A sheet full of errors would make a page nobody reads; the count of the rest is still given.
MAX_REPORTED_ERRORS = 500
YEAR_RANGE = (2000, 2100)
# Project.amount is NUMERIC(18, 2).
MAX_AMOUNT = Decimal("9999999999999999.99")
CENT = Decimal("0.01")

# Who may import: the project library is the finance bureau's own record of what the budget
# funds, so it is loaded by the budget section (which compiles the budget and keeps the list
# of projects) and the performance management section (which puts every budget project under
# goal management and collects the declaration tables), and by administrators who set the
# system up. Units, competent departments and funding sections declare their projects through
# the ex-ante and goal processes, where finance reviews them; the review center, third
# parties and supervisors review or oversee projects and should not create what they review.
IMPORT_ROLES = ("admin", "budget", "performance")

# Keys of Project.funding_sources, as the ex-ante declaration form names them.
FUNDING_SOURCES = ("general_budget", "government_fund", "state_capital", "special_account", "other_funds",
                   "carried_over")

KIND_NAMES = {"unit": "budget unit", "department": "competent department", "section": "finance section",
              "bureau": "bureau", "center": "review center", "agency": "third-party agency"}


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    hint: str
    width: int
    number_format: str | None = None


_AMOUNT_HINT = "Yuan, 0 or more, up to 2 decimals; blank = 0"
COLUMNS: tuple[Column, ...] = (
    Column("code", "Project code", "Required. Unique, e.g. EDU-2027-010 (not digits only)", 18, "@"),
    Column("name", "Project name", "Required. Up to 300 characters", 36),
    Column("year", "Budget year", "Required. e.g. 2027", 11, "0"),
    Column("unit", "Budget unit", "Required. Code or name (sheet Organisations)", 26),
    Column("competent", "Competent department", "Code or name; blank = the unit's own department", 26),
    Column("funding", "Funding business section", "Required. Code or name of the finance section", 28),
    Column("category", "Category", "Required. e.g. Education, Infrastructure", 18),
    Column("is_new", "New or continuing", "Required. new / continuing", 16),
    Column("general_budget", "General public budget (yuan)", _AMOUNT_HINT, 20, "#,##0.00"),
    Column("government_fund", "Government fund budget (yuan)", _AMOUNT_HINT, 20, "#,##0.00"),
    Column("state_capital", "State capital operation budget (yuan)", _AMOUNT_HINT, 20, "#,##0.00"),
    Column("special_account", "Special account funds (yuan)", _AMOUNT_HINT, 20, "#,##0.00"),
    Column("other_funds", "Other funds (yuan)", _AMOUNT_HINT, 20, "#,##0.00"),
    Column("carried_over", "Carried-over funds (yuan)", _AMOUNT_HINT, 20, "#,##0.00"),
    Column("start_date", "Start date", "Required. YYYY-MM-DD", 13, "yyyy-mm-dd"),
    Column("end_date", "End date", "Required. YYYY-MM-DD, not before the start", 13, "yyyy-mm-dd"),
    Column("is_key", "Key project", "yes / no; blank = no. {key_amount} yuan or more is key anyway", 16),
)
HEADERS = tuple(c.header for c in COLUMNS)
_BY_KEY = {c.key: c for c in COLUMNS}


@dataclass(frozen=True)
class RowError:
    row: int            # the spreadsheet's row number, as Excel shows it
    column: str         # the column's header ("" for a problem of the whole row)
    message: str

    def as_dict(self) -> dict:
        return {"row": self.row, "column": self.column, "message": self.message}


class ImportRejected(InvalidData):
    """The file was refused and nothing was imported; `rows` lists the problems found."""

    def __init__(self, message: str, rows: Iterable[RowError] = ()):
        super().__init__(message)
        self.rows = [r.as_dict() for r in rows]


@dataclass(frozen=True)
class ImportResult:
    imported: int
    codes: list[str]


@dataclass(frozen=True)
class OrgInfo:
    """An organisation as the template's Organisations sheet lists it."""
    kind: str
    code: str
    name: str
    parent_code: str = ""
    parent_name: str = ""


# ---- the template --------------------------------------------------------------------------

def _money(amount) -> str:
    value = Decimal(str(amount))
    return f"{value:,.0f}" if value == value.to_integral_value() else f"{value:,.2f}"


def template_bytes(organisations: Iterable[OrgInfo] = (), key_amount=DEFAULTS["project.key_amount"]) -> bytes:
    """The import template: the declaration columns, a row of hints, and the organisations."""
    wb = Workbook()
    ws = wb.active
    ws.title = SHEET
    ws.append(list(HEADERS))
    ws.append([c.hint.format(key_amount=_money(key_amount)) for c in COLUMNS])
    header_font, hint_font = Font(bold=True), Font(italic=True, color="666666", size=9)
    header_fill = PatternFill("solid", fgColor="DDEBF7")
    for index, column in enumerate(COLUMNS, start=1):
        letter = get_column_letter(index)
        dimension = ws.column_dimensions[letter]
        dimension.width = column.width
        if column.number_format:
            # A column style: cells typed later take it (codes stay text, so "001" keeps its zeros).
            dimension.number_format = column.number_format
        head, hint = ws.cell(row=1, column=index), ws.cell(row=2, column=index)
        head.font, head.fill = header_font, header_fill
        head.alignment = Alignment(wrap_text=True, vertical="center")
        hint.font, hint.alignment = hint_font, Alignment(wrap_text=True, vertical="top")
    ws.row_dimensions[2].height = 36
    ws.freeze_panes = "A3"

    last = MAX_ROWS + 2
    for key, choices in (("is_new", "new,continuing"), ("is_key", "yes,no")):
        letter = get_column_letter(HEADERS.index(_BY_KEY[key].header) + 1)
        rule = DataValidation(type="list", formula1=f'"{choices}"', allow_blank=True, showErrorMessage=True,
                              errorTitle=_BY_KEY[key].header, error=f"Choose one of: {choices.replace(',', ', ')}.")
        rule.add(f"{letter}3:{letter}{last}")
        ws.add_data_validation(rule)

    orgs = wb.create_sheet(ORG_SHEET)
    orgs.append(["Kind", "Use in column", "Code", "Name", "Competent department (of a unit)"])
    use_in = {"unit": _BY_KEY["unit"].header, "department": _BY_KEY["competent"].header,
              "section": _BY_KEY["funding"].header}
    order = {kind: i for i, kind in enumerate(use_in)}
    for org in sorted(organisations, key=lambda o: (order.get(o.kind, 99), o.code)):
        if org.kind in use_in:
            parent = f"{org.parent_name} ({org.parent_code})" if org.kind == "unit" and org.parent_code else ""
            orgs.append([KIND_NAMES.get(org.kind, org.kind), use_in[org.kind], org.code, org.name, parent])
    for index, width in enumerate((22, 26, 18, 40, 40), start=1):
        orgs.column_dimensions[get_column_letter(index)].width = width
    for cell in orgs[1]:
        cell.font, cell.fill = header_font, header_fill
    orgs.freeze_panes = "A2"

    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


# ---- reading the file ------------------------------------------------------------------------

def _size(count: int) -> str:
    return f"{count / 1024 / 1024:.1f} MB" if count >= 1024 * 1024 else f"{count / 1024:.0f} KB"


def _norm(value) -> str:
    return " ".join(str(value).split()).casefold() if value is not None else ""


def _is_blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def read_sheet(file_bytes: bytes) -> tuple[dict[str, int], list[tuple[int, tuple]]]:
    """The column positions by key and the non-blank data rows (row number, values), or
    ImportRejected for a file that is not a usable workbook in the template's layout."""
    if not file_bytes:
        raise ImportRejected("The file is empty.")
    if len(file_bytes) > MAX_BYTES:
        raise ImportRejected(f"The file is {_size(len(file_bytes))}; the limit is {_size(MAX_BYTES)}. "
                             "Split it into several files.")
    if file_bytes.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportRejected("This is an old Excel 97-2003 (.xls) file: open it in Excel or WPS and save it "
                             "as an Excel workbook (.xlsx), then upload that.")
    if not file_bytes.startswith(b"PK"):
        raise ImportRejected("The file is not an Excel workbook (.xlsx). Download the template, fill it in "
                             "and upload it as .xlsx.")
    try:
        with zipfile.ZipFile(io.BytesIO(file_bytes)) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        raise ImportRejected("The file is damaged or not an Excel workbook (.xlsx).") from None
    if unzipped > MAX_UNZIPPED_BYTES:
        raise ImportRejected("The workbook unpacks to far more data than a project table holds; it was refused.")

    try:
        with warnings.catch_warnings():
            # openpyxl warns about Excel features it drops (extensions, styles); reading values is unaffected.
            warnings.simplefilter("ignore")
            workbook = load_workbook(io.BytesIO(file_bytes), read_only=True, data_only=True)
    except Exception:   # openpyxl raises many kinds (KeyError, InvalidFileException, XML errors)
        raise ImportRejected("The file could not be read as an Excel workbook (.xlsx); save it again from "
                             "Excel or WPS as .xlsx.") from None
    try:
        sheet = workbook[SHEET] if SHEET in workbook.sheetnames else workbook.worksheets[0]
        # Files written by other programs may state wrong dimensions; read what is there.
        sheet.reset_dimensions()
        rows = sheet.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None or all(_is_blank(v) for v in header):
            raise ImportRejected("The sheet is empty: it has no header row. Use the template.")
        positions = _match_headers(header)
        data: list[tuple[int, tuple]] = []
        for number, values in enumerate(rows, start=2):
            if number > MAX_SCANNED_ROWS:
                raise ImportRejected(f"The sheet has content beyond row {MAX_SCANNED_ROWS:,}; remove it.")
            if all(_is_blank(v) for v in values):
                continue
            if number == 2 and _norm(_cell(values, positions["code"])) == _norm(_BY_KEY["code"].hint):
                continue    # the template's row of hints
            data.append((number, values))
            if len(data) > MAX_ROWS:
                raise ImportRejected(f"The file has more than {MAX_ROWS:,} projects; split it into several files.")
    finally:
        workbook.close()
    if not data:
        raise ImportRejected("The file has no project rows: fill in one row per project under the headers.")
    return positions, data


def _match_headers(header: tuple) -> dict[str, int]:
    """Columns may come in any order, but each template header must be there exactly once."""
    wanted = {_norm(c.header): c for c in COLUMNS}
    positions: dict[str, int] = {}
    unknown: list[str] = []
    repeated: list[str] = []
    for index, value in enumerate(header):
        if _is_blank(value):
            continue
        column = wanted.get(_norm(value))
        if column is None:
            unknown.append(" ".join(str(value).split()))
        elif column.key in positions:
            repeated.append(column.header)
        else:
            positions[column.key] = index
    missing = [c.header for c in COLUMNS if c.key not in positions]
    if not (missing or unknown or repeated):
        return positions
    problems = [RowError(1, name, "This column of the template is missing.") for name in missing]
    problems += [RowError(1, name, "This is not a column of the template.") for name in unknown]
    problems += [RowError(1, name, "This column appears twice.") for name in repeated]
    parts = [f"{what} " + ", ".join(f"'{name}'" for name in names)
             for what, names in (("missing", missing), ("unknown", unknown), ("repeated", repeated)) if names]
    raise ImportRejected("The header row does not match the template: " + "; ".join(parts) + ".", problems)


def _cell(values: tuple, index: int):
    return values[index] if index < len(values) else None


# ---- checking values -----------------------------------------------------------------------

class _Bad(ValueError):
    """One cell's problem; the message is for the person who filled the sheet in."""


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, datetime):
        value = value.date()
    return " ".join(str(value).split())


_CODE = re.compile(r"[\w.\-/]+")


def _code(value) -> str:
    code = _text(value)
    if not code:
        raise _Bad("Required.")
    if len(code) > 64:
        raise _Bad("At most 64 characters.")
    if not _CODE.fullmatch(code):
        raise _Bad("Use letters, digits and - _ . / only, without spaces.")
    if code.isdigit():
        # The API reads an all-digit reference as a project id, and Excel drops leading zeros.
        raise _Bad("A code of digits only is ambiguous: add a prefix, e.g. EDU-" + code + ".")
    return code


def _required_text(limit: int):
    def parse(value) -> str:
        text = _text(value)
        if not text:
            raise _Bad("Required.")
        if len(text) > limit:
            raise _Bad(f"At most {limit} characters.")
        return text
    return parse


def _year(value) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,6}\s*", value):
        value = int(value)
    if _is_blank(value):
        raise _Bad("Required.")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad("A whole year, e.g. 2027.")
    if not YEAR_RANGE[0] <= value <= YEAR_RANGE[1]:
        raise _Bad(f"A year from {YEAR_RANGE[0]} to {YEAR_RANGE[1]}.")
    return value


def _amount(value) -> Decimal:
    if _is_blank(value):
        return Decimal("0.00")
    if isinstance(value, bool):
        raise _Bad("An amount in yuan, e.g. 1200000.")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _Bad("An amount in yuan, e.g. 1200000.")
        amount = Decimal(repr(value))
        rounded = round(value, 2)
        if amount.as_tuple().exponent < -2 and abs(value - rounded) <= 1e-9 * max(1.0, abs(value)):
            # A formula's binary rounding noise (0.1 + 0.2 = 0.30000000000000004) is not a third decimal.
            amount = Decimal(repr(rounded))
    elif isinstance(value, str):
        text = value.strip().replace(",", "").replace("，", "").replace(" ", "")
        if not re.fullmatch(r"[+-]?\d+(\.\d+)?", text):
            raise _Bad("An amount in yuan, e.g. 1200000 or 1,200,000.50.")
        amount = Decimal(text)
    else:
        raise _Bad("An amount in yuan, e.g. 1200000.")
    if amount < 0:
        raise _Bad("Must not be negative.")
    if amount > MAX_AMOUNT:
        raise _Bad("Too large.")
    if amount != amount.quantize(CENT):
        raise _Bad("At most 2 decimals (fen).")
    return amount.quantize(CENT)


_DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?")


def _date(value) -> date:
    if _is_blank(value):
        raise _Bad("Required.")
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        match = _DATE.fullmatch(value.strip())
        if match:
            try:
                return date(*(int(part) for part in match.groups()))
            except ValueError:
                raise _Bad("No such date.") from None
    raise _Bad("A date, YYYY-MM-DD.")


_YES = {"yes", "y", "true", "1", "是", "key"}
_NO = {"no", "n", "false", "0", "否"}


def _flag(value) -> bool | None:
    if _is_blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = _norm(value)
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise _Bad("yes or no.")


_NEW = {"new", "新增", "新", "新建"}
_CONTINUING = {"continuing", "continued", "continuation", "延续", "续建", "延续性"}


def _new_or_continuing(value) -> bool:
    text = _norm(value)
    if not text:
        raise _Bad("Required: new or continuing.")
    if text in _NEW:
        return True
    if text in _CONTINUING:
        return False
    raise _Bad("new or continuing.")


class _Organisations:
    """Finds an organisation by code (exactly, then ignoring case) or by name."""

    def __init__(self, organisations: Iterable[Organisation]):
        self.by_code: dict[str, Organisation] = {}
        self.by_folded_code: dict[str, list[Organisation]] = {}
        self.by_name: dict[str, list[Organisation]] = {}
        for org in organisations:
            self.by_code[org.code] = org
            self.by_folded_code.setdefault(org.code.casefold(), []).append(org)
            self.by_name.setdefault(_norm(org.name), []).append(org)

    def find(self, value, kind: str) -> Organisation:
        text = _text(value)
        org = self.by_code.get(text)
        if org is None:
            candidates = self.by_folded_code.get(text.casefold()) or self.by_name.get(_norm(text)) or []
            if len(candidates) > 1:
                raise _Bad(f"{len(candidates)} organisations go by '{text}': give the code.")
            org = candidates[0] if candidates else None
        if org is None:
            raise _Bad(f"No organisation has the code or name '{text}' (see the sheet {ORG_SHEET}).")
        if org.kind != kind:
            raise _Bad(f"{org.name} ({org.code}) is a {KIND_NAMES.get(org.kind, org.kind)}, "
                       f"not a {KIND_NAMES[kind]}.")
        return org


_PARSERS = {"code": _code, "name": _required_text(300), "year": _year, "category": _required_text(100),
                "is_new": _new_or_continuing, "start_date": _date, "end_date": _date, "is_key": _flag,
                **{source: _amount for source in FUNDING_SOURCES}}


def _check_row(number: int, values: tuple, positions: dict[str, int], orgs: _Organisations,
               key_amount: Decimal) -> tuple[dict, list[RowError]]:
    """The project's fields (those that are valid) and the row's problems (one per column at most)."""
    errors: list[RowError] = []
    out: dict = {}

    def problem(key: str, message: str) -> None:
        errors.append(RowError(number, _BY_KEY[key].header, message))

    for key, parse in _PARSERS.items():
        try:
            out[key] = parse(_cell(values, positions[key]))
        except _Bad as exc:
            problem(key, str(exc))

    for key, kind in (("unit", "unit"), ("competent", "department"), ("funding", "section")):
        raw = _cell(values, positions[key])
        if _is_blank(raw):
            if key != "competent":
                problem(key, "Required.")
            continue
        try:
            out[key] = orgs.find(raw, kind)
        except _Bad as exc:
            problem(key, str(exc))
    unit, competent = out.get("unit"), out.get("competent")
    if unit is not None:
        if competent is not None and unit.parent_id is not None and unit.parent_id != competent.id:
            problem("competent", f"{unit.name} belongs to {unit.parent.name} ({unit.parent.code}), "
                                 f"not to {competent.name}.")
        elif competent is None and _is_blank(_cell(values, positions["competent"])):
            parent = unit.parent
            if parent is None or parent.kind != "department":
                problem("competent", f"Required: {unit.name} has no competent department on record.")
            else:
                out["competent"] = parent

    sources = [out.get(source) for source in FUNDING_SOURCES]
    if all(amount is not None for amount in sources) and sum(sources) <= 0:
        problem("general_budget", "The project has no funds: give the amount of at least one funding source.")
    start, end = out.get("start_date"), out.get("end_date")
    if start is not None and end is not None and start > end:
        problem("end_date", f"Ends before it starts ({start.isoformat()}).")

    if errors:
        return out, errors
    amount = sum(sources, Decimal("0.00"))
    out["amount"] = amount
    # Key: chosen by finance in the sheet, or at or over the configured amount whatever the sheet says.
    out["is_key"] = bool(out["is_key"]) or amount >= key_amount
    return out, []


# ---- the service ----------------------------------------------------------------------------

class ProjectImportService:
    def __init__(self, db: Database, clock: Clock, settings: SettingsService):
        self.db = db
        self.clock = clock
        self.settings = settings

    @staticmethod
    def may_import(actor: Actor) -> bool:
        return bool(actor.roles.intersection(IMPORT_ROLES))

    def check_may_import(self, actor: Actor) -> None:
        if not self.may_import(actor):
            raise PermissionDenied("only the budget section, the performance section or an administrator "
                                   "may import projects")

    def _key_amount(self) -> Decimal:
        return Decimal(str(self.settings.values()["project.key_amount"]))

    def template(self) -> bytes:
        """The template with the organisations in force and the configured key amount. Any user
        may have it: units fill it in and hand it to finance to import."""
        with self.db.reading() as s:
            orgs = [OrgInfo(o.kind, o.code, o.name, o.parent.code if o.parent else "",
                            o.parent.name if o.parent else "")
                    for o in project_queries.organisations(s, ("unit", "department", "section"))]
        return template_bytes(orgs, self._key_amount())

    def import_file(self, actor: Actor, file_bytes: bytes, filename: str | None = None) -> ImportResult:
        self.check_may_import(actor)
        # Read the workbook before the transaction: parsing is the slow part and must not hold
        # the write lock.
        positions, rows = read_sheet(file_bytes)
        key_amount = self._key_amount()
        try:
            with self.db.transaction() as s:
                codes = self._check_and_add(s, actor, positions, rows, key_amount, filename)
        except IntegrityError:
            # Someone created one of these codes between our check and our insert.
            raise Conflict("another import or user created one of these projects at the same time; nothing "
                           "was imported: upload the file again to see which codes exist now") from None
        return ImportResult(len(codes), codes)

    def _check_and_add(self, s, actor: Actor, positions, rows, key_amount: Decimal,
                       filename: str | None) -> list[str]:
        orgs = _Organisations(project_queries.organisations(s))
        errors: list[RowError] = []
        fields: list[tuple[int, dict]] = []
        first_row: dict[str, int] = {}
        for number, values in rows:
            out, row_errors = _check_row(number, values, positions, orgs, key_amount)
            code = out.get("code")
            if code is not None and code in first_row:
                row_errors.append(RowError(number, _BY_KEY["code"].header,
                                           f"Code {code} is also on row {first_row[code]}."))
            elif code is not None:
                first_row[code] = number
            errors.extend(row_errors)
            if not row_errors:
                fields.append((number, out))
        for code in sorted(project_queries.existing_project_codes(s, first_row)):
            errors.append(RowError(first_row[code], _BY_KEY["code"].header,
                                   f"A project with code {code} already exists."))
        if errors:
            errors.sort(key=lambda e: (e.row, HEADERS.index(e.column) if e.column in HEADERS else -1))
            bad_rows = len({e.row for e in errors})
            message = (f"Nothing was imported: {len(errors)} problem{'s' if len(errors) != 1 else ''} in "
                       f"{bad_rows} row{'s' if bad_rows != 1 else ''} of {len(rows)}.")
            if len(errors) > MAX_REPORTED_ERRORS:
                message += f" The first {MAX_REPORTED_ERRORS} are listed."
            raise ImportRejected(message, errors[:MAX_REPORTED_ERRORS])

        codes = []
        for _number, f in fields:
            s.add(Project(
                code=f["code"], name=f["name"], year=f["year"], unit_id=f["unit"].id,
                competent_id=f["competent"].id, funding_id=f["funding"].id, category=f["category"],
                is_new=f["is_new"], is_key=f["is_key"], amount=f["amount"],
                # Strings: JSON has no decimal type, and floats would lose fen.
                funding_sources={source: str(f[source]) for source in FUNDING_SOURCES},
                start_date=f["start_date"], end_date=f["end_date"], goals_status="none", ex_ante_status="none"))
            codes.append(f["code"])
        data: dict = {"count": len(codes), "codes": codes}
        if filename:
            data["file"] = filename[:200]
        s.add(AuditEvent(case_id=None, at=self.clock.now(), actor_id=actor.id, action="projects_imported",
                         data=data))
        s.flush()   # unique violations surface here, inside the transaction
        return codes


def import_projects(app, actor: Actor, file_bytes: bytes, filename: str | None = None) -> ImportResult:
    """Import every project of the file, or none: see ProjectImportService.import_file."""
    return app.project_import.import_file(actor, file_bytes, filename)
