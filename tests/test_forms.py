"""Server-side forms: JSON Schema validation with field paths and friendly messages, and
turning HTML form fields (tables as 'indicators-0-name') into form data."""
from __future__ import annotations

import copy
import json

import pytest

from engine.demo import sample_goals
from engine.errors import InvalidData
from engine.forms import MAX_STRING, from_form_fields, validate
from engine.processes import PROCESSES_DIR

FORMS = PROCESSES_DIR / "goal_review"


def load(name: str) -> dict:
    return json.loads((FORMS / name).read_text(encoding="utf-8"))


GOALS = load("goals.schema.json")
REVIEW = load("review.schema.json")
PRELIMINARY = load("preliminary_review.schema.json")
FINAL = load("final_review.schema.json")
INDICATOR_FIELDS = ("level1", "level2", "name", "operator", "target", "unit", "weight", "standard", "core", "note")


def goals(**changes) -> dict:
    data = sample_goals("Campus safety upgrade")
    data.update(changes)
    return data


def indicator(i: int, **changes) -> dict:
    data = sample_goals("Campus safety upgrade")
    data["indicators"][i].update(changes)
    for key, value in changes.items():
        if value is _DROP:
            del data["indicators"][i][key]
    return data


_DROP = object()


def errors_of(schema: dict, data) -> dict:
    with pytest.raises(InvalidData) as err:
        validate(schema, data)
    return err.value.details


# ---- validate ------------------------------------------------------------------------------

VALID = [
    (GOALS, goals()),
    (GOALS, {"long_term_goal": "L", "annual_goal": "A", "indicators": [
        {"level1": "satisfaction", "level2": "satisfaction", "name": "Parents satisfied", "operator": "qualitative",
         "target": "Mostly", "weight": 100}]}),
    (GOALS, indicator(0, target="-12.5", weight=0.5, core=False, note="")),
    (REVIEW, {"decision": "approve"}),
    (REVIEW, {"decision": "return", "comment": "Add a cost indicator."}),
    (PRELIMINARY, {"decision": "approve", "grade": "fair"}),
    (FINAL, {"decision": "reject", "comment": "No budget."}),
    (FINAL, {"decision": "approve"}),
]


@pytest.mark.parametrize("schema, data", VALID)
def test_valid_data_is_returned_unchanged(schema, data):
    before = copy.deepcopy(data)
    assert validate(schema, data) is data
    assert data == before


@pytest.mark.parametrize("schema, data", VALID)
def test_valid_data_passes_the_quick_check_without_jsonschema(schema, data):
    from engine.forms import quick_check_for
    quick_check_for(schema)(data)       # raises if it would have to go on to jsonschema


@pytest.mark.parametrize("schema, data, expected", [
    pytest.param(REVIEW, {"decision": "return"}, {"comment": "This field is required."}, id="return-without-comment"),
    pytest.param(REVIEW, {"decision": "return", "comment": ""}, {"comment": "This field is required."},
                 id="return-with-empty-comment"),
    pytest.param(FINAL, {"decision": "reject"}, {"comment": "This field is required."}, id="reject-without-comment"),
    pytest.param(REVIEW, {}, {"decision": "This field is required."}, id="no-decision"),
    pytest.param(REVIEW, {"decision": "reject", "comment": "x"}, {"decision": "Choose one of the listed values."},
                 id="decision-not-offered"),
    pytest.param(PRELIMINARY, {"decision": "approve", "grade": "superb"}, {"grade": "Choose one of the listed values."},
                 id="unknown-grade"),
    pytest.param(REVIEW, {"decision": "approve", "comment": 5}, {"comment": "Expected string."}, id="comment-number"),
    pytest.param(REVIEW, {"decision": "approve", "grade": "good"}, {"grade": "Unknown field."}, id="unknown-field"),
    pytest.param(REVIEW, {"decision": "approve", "_meta": 1},
                 {"_meta": "Field names starting with '_' are not accepted."},
                 id="underscore-field"),
    pytest.param(GOALS, goals(long_term_goal=""), {"long_term_goal": "This field is required."}, id="empty-goal"),
    pytest.param(GOALS, {k: v for k, v in goals().items() if k != "annual_goal"},
                 {"annual_goal": "This field is required."}, id="missing-goal"),
    pytest.param(GOALS, goals(indicators=[]), {"indicators": "Add at least 1 row(s)."}, id="no-rows"),
    pytest.param(GOALS, goals(indicators="none"), {"indicators": "Expected array."}, id="rows-not-a-list"),
    pytest.param(GOALS, indicator(0, level2="social"), {"indicators.0.level2": "Choose one of the listed values."},
                 id="output-with-effect-level2"),
    pytest.param(GOALS, indicator(5, level2="quality"), {"indicators.5.level2": "Choose one of the listed values."},
                 id="satisfaction-with-output-level2"),
    pytest.param(GOALS, indicator(4, level1="impact"), {"indicators.4.level1": "Choose one of the listed values."},
                 id="unknown-level1"),
    pytest.param(GOALS, indicator(3, unit=_DROP), {"indicators.3.unit": "This field is required."},
                 id="quantitative-without-unit"),
    pytest.param(GOALS, indicator(1, unit=""), {"indicators.1.unit": "This field is required."},
                 id="quantitative-empty-unit"),
    pytest.param(GOALS, indicator(0, target="twelve"), {"indicators.0.target": "Enter a number."},
                 id="quantitative-text-target"),
    pytest.param(GOALS, indicator(0, target="12."), {"indicators.0.target": "Enter a number."},
                 id="quantitative-trailing-dot"),
    pytest.param(GOALS, indicator(2, target=""), {"indicators.2.target": "This field is required."},
                 id="qualitative-empty-target"),
    pytest.param(GOALS, indicator(0, weight=0), {"indicators.0.weight": "Must be more than 0."}, id="zero-weight"),
    pytest.param(GOALS, indicator(0, weight=100.5), {"indicators.0.weight": "Must be at most 100."},
                 id="weight-over-100"),
    pytest.param(GOALS, indicator(0, weight="30"), {"indicators.0.weight": "Enter a number."}, id="weight-text"),
    pytest.param(GOALS, indicator(0, weight=_DROP), {"indicators.0.weight": "This field is required."},
                 id="weight-missing"),
    pytest.param(GOALS, indicator(0, operator="~"), {"indicators.0.operator": "Choose one of the listed values."},
                 id="unknown-operator"),
    pytest.param(GOALS, indicator(0, core="yes"), {"indicators.0.core": "Expected boolean."}, id="core-not-boolean"),
    pytest.param(GOALS, indicator(2, secret=1), {"indicators.2.secret": "Unknown field."}, id="unknown-column"),
    pytest.param(GOALS, indicator(2, _x=1), {"indicators.2._x": "Field names starting with '_' are not accepted."},
                 id="underscore-column"),
    pytest.param(GOALS, goals(basis="x" * (MAX_STRING + 1)), {"basis": f"At most {MAX_STRING} characters."},
                 id="too-long-text"),
    pytest.param(GOALS, indicator(1, note="x" * (MAX_STRING + 1)),
                 {"indicators.1.note": f"At most {MAX_STRING} characters."}, id="too-long-cell"),
])
def test_errors_name_the_field_path_with_a_friendly_message(schema, data, expected):
    assert errors_of(schema, data) == expected


def test_every_bad_field_is_reported_once():
    data = indicator(0, unit="", weight=-1)
    data["indicators"][3]["level1"] = "effect"           # cost is not an effect
    data["annual_goal"] = ""
    assert errors_of(GOALS, data) == {
        "annual_goal": "This field is required.",
        "indicators.0.unit": "This field is required.",
        "indicators.0.weight": "Must be more than 0.",
        "indicators.3.level2": "Choose one of the listed values.",
    }


def test_the_error_is_an_invalid_data_with_status_400():
    with pytest.raises(InvalidData) as err:
        validate(REVIEW, {"decision": "return"})
    assert err.value.message == "The form has errors."
    assert err.value.status == 400


@pytest.mark.parametrize("data", [None, [], "decision=approve", 3])
def test_form_data_must_be_an_object(data):
    with pytest.raises(InvalidData) as err:
        validate(REVIEW, data)
    assert err.value.message == "Form data must be an object."
    assert err.value.details == {"": "Expected an object."}


def test_hidden_and_unknown_keys_are_refused_before_schema_checks():
    # The schema error (no decision) is not reported while a key is refused: nothing gets further.
    assert errors_of(REVIEW, {"_x": 1, "extra": 2}) == {
        "_x": "Field names starting with '_' are not accepted.", "extra": "Unknown field."}


# ---- from_form_fields ----------------------------------------------------------------------

def goals_as_fields(data: dict) -> dict[str, str]:
    fields = {k: v for k, v in data.items() if isinstance(v, str)}
    for i, row in enumerate(data["indicators"]):
        for col in INDICATOR_FIELDS:
            value = row.get(col)
            if col == "core":
                if value:
                    fields[f"indicators-{i}-core"] = "true"     # an unticked checkbox is not sent
                continue
            fields[f"indicators-{i}-{col}"] = "" if value is None else str(value)
    fields["csrf_token"] = "token"
    return fields


def test_goal_form_fields_become_the_goal_data():
    data = from_form_fields(GOALS, goals_as_fields(goals()))
    expected = goals()
    for row in expected["indicators"]:
        row.setdefault("core", False)
        if row.get("unit") == "":
            del row["unit"]                                     # a blank cell is left out
    assert data == expected
    assert validate(GOALS, data) == expected
    assert "csrf_token" not in data


def test_numbers_and_booleans_are_coerced():
    fields = {
        "indicators-0-weight": "30", "indicators-0-core": "true",
        "indicators-1-weight": " 12.5 ", "indicators-1-core": "on",
        "indicators-2-weight": "1e2", "indicators-2-core": "false",
        "indicators-3-weight": "-4", "indicators-3-core": "yes",
        "indicators-4-weight": "thirty", "indicators-4-core": "1",
        "indicators-5-weight": "7.0",
    }
    rows = from_form_fields(GOALS, fields)["indicators"]
    assert [(r["weight"], type(r["weight"])) for r in rows] == [
        (30, int), (12.5, float), (100, int), (-4, int), ("thirty", str), (7.0, float)]
    assert [r["core"] for r in rows] == [True, True, False, True, True, False]


def test_an_uncoercible_number_is_kept_and_reported():
    fields = goals_as_fields(goals())
    fields["indicators-0-weight"] = "thirty"
    data = from_form_fields(GOALS, fields)
    assert data["indicators"][0]["weight"] == "thirty"
    assert errors_of(GOALS, data) == {"indicators.0.weight": "Enter a number."}


def test_top_level_booleans_and_integers():
    schema = {"type": "object", "properties": {
        "urgent": {"type": "boolean"}, "copies": {"type": "integer"}, "ratio": {"type": "number"},
        "note": {"type": "string"}}}
    assert from_form_fields(schema, {"urgent": "on", "copies": "3", "ratio": "0.25", "note": "hi"}) == {
        "urgent": True, "copies": 3, "ratio": 0.25, "note": "hi"}
    assert from_form_fields(schema, {"copies": "3.5", "note": "   "}) == {"urgent": False, "copies": "3.5"}
    assert errors_of(schema, {"copies": "3.5"}) == {"copies": "Enter a whole number."}


def test_blank_fields_are_left_out_so_required_ones_are_reported():
    data = from_form_fields(REVIEW, {"decision": "return", "comment": "   "})
    assert data == {"decision": "return"}
    assert errors_of(REVIEW, data) == {"comment": "This field is required."}


def test_table_rows_follow_their_numeric_index():
    fields = {f"indicators-{i}-name": f"row {i}" for i in (10, 2, 0, 1)}
    rows = from_form_fields(GOALS, fields)["indicators"]
    assert [r["name"] for r in rows] == ["row 0", "row 1", "row 2", "row 10"]


def test_table_fields_of_other_tables_or_malformed_names_are_ignored():
    fields = {"indicators-0-name": "kept", "indicators-x-name": "bad index", "indicatorsx-1-name": "other",
              "indicators-1": "no column", "indicators": "plain"}
    assert from_form_fields(GOALS, fields) == {"indicators": [{"name": "kept", "core": False}]}


def test_a_table_with_no_rows_is_an_empty_list():
    assert from_form_fields(GOALS, {"long_term_goal": "L"}) == {"long_term_goal": "L", "indicators": []}


def test_empty_rows_are_skipped_in_a_table_without_checkboxes():
    schema = {"type": "object", "properties": {"rows": {"type": "array", "items": {
        "type": "object", "properties": {"name": {"type": "string"}, "amount": {"type": "number"}}}}}}
    fields = {"rows-0-name": "a", "rows-0-amount": "1", "rows-1-name": "", "rows-1-amount": " ",
              "rows-2-name": "c", "rows-2-amount": ""}
    assert from_form_fields(schema, fields) == {"rows": [{"name": "a", "amount": 1}, {"name": "c"}]}


def test_empty_indicator_rows_are_skipped():
    """A row added with 'Add row' and left blank sends empty cells and no checkbox."""
    fields = goals_as_fields(goals())
    n = len(goals()["indicators"])
    for col in INDICATOR_FIELDS:
        if col != "core":
            fields[f"indicators-{n}-{col}"] = ""
    data = from_form_fields(GOALS, fields)
    assert len(data["indicators"]) == n
    validate(GOALS, data)


def test_a_row_holding_only_a_zero_is_kept_and_reported():
    fields = goals_as_fields(goals())
    n = len(goals()["indicators"])
    for col in INDICATOR_FIELDS:
        if col != "core":
            fields[f"indicators-{n}-{col}"] = "0" if col == "weight" else ""
    data = from_form_fields(GOALS, fields)
    assert data["indicators"][n] == {"weight": 0, "core": False}
    errors = errors_of(GOALS, data)
    assert errors[f"indicators.{n}.name"] == "This field is required."
    assert errors[f"indicators.{n}.weight"] == "Must be more than 0."


# ---- titled choices (oneOf of consts): the shortcut decides as jsonschema does -------------------

CHOICES = {"oneOf": [{"const": "output", "title": "Output"}, {"const": "effect", "title": "Effect",
                                                             "description": "Economic, social..."}]}
TWICE = {"oneOf": [{"const": "a", "title": "A"}, {"const": "a", "title": "A again"}]}
NOT_ONLY_CONST = {"oneOf": [{"const": "a"}, {"type": "string", "minLength": 1}]}
NUMBERS = {"oneOf": [{"const": 1, "title": "One"}, {"const": True, "title": "Yes"}]}


@pytest.mark.parametrize("schema, instance", [
    (CHOICES, "output"), (CHOICES, "effect"), (CHOICES, "Output"), (CHOICES, ""), (CHOICES, 1),
    (CHOICES, None), (CHOICES, ["output"]), (TWICE, "a"), (TWICE, "b"),
    (NOT_ONLY_CONST, "a"), (NOT_ONLY_CONST, "b"), (NOT_ONLY_CONST, ""),
    (NUMBERS, 1), (NUMBERS, 1.0), (NUMBERS, True), (NUMBERS, "1"),
])
def test_titled_choices_are_checked_as_jsonschema_checks_them(schema, instance):
    from jsonschema import Draft202012Validator

    from engine.forms import FormValidator

    def described(validator):
        return [(e.validator, list(e.absolute_path), e.message) for e in validator.iter_errors(instance)]

    assert described(FormValidator(schema)) == described(Draft202012Validator(schema))


def test_indicator_choices_are_still_refused_in_the_goals_form():
    data = indicator(0, level1="outputs")
    data["indicators"][1]["operator"] = "≥"
    assert errors_of(GOALS, data) == {"indicators.0.level1": "Choose one of the listed values.",
                                              "indicators.1.operator": "Choose one of the listed values."}


# ---- the quick check (fastjsonschema) decides as jsonschema does -------------------------------

def _jsonschema_accepts(schema: dict, data) -> bool:
    from jsonschema import Draft202012Validator
    return Draft202012Validator(schema).is_valid(data)


def _accepted(schema: dict, data) -> bool:
    try:
        validate(schema, data)
        return True
    except InvalidData:
        return False


OBJ = "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("schema, data", [
    # The $ of a pattern: Python's re (jsonschema) matches before a final newline,
    # fastjsonschema only at the very end.
    ({"type": "object", "properties": {"x": {"pattern": "^x$"}}}, {"x": "x\n"}),
    ({"type": "object", "properties": {"x": {"not": {"pattern": "^x$"}}}}, {"x": "x\n"}),
    ({"type": "object", "properties": {"x": {"if": {"pattern": "^x$"}, "then": {"maxLength": 1}}}}, {"x": "x\n"}),
    ({"type": "object", "properties": {"x": {"oneOf": [{"pattern": "^x$"}, {"maxLength": 1}]}}}, {"x": "x\n"}),
    # Numbers and booleans: 1.0 is an integer, True is not; True == 1 for Python, not for JSON Schema.
    ({"type": "object", "properties": {"n": {"type": "integer"}}}, {"n": 1.0}),
    ({"type": "object", "properties": {"n": {"not": {"type": "integer"}}}}, {"n": 2.0}),
    ({"type": "object", "properties": {"n": {"type": "integer"}}}, {"n": True}),
    ({"type": "object", "properties": {"n": {"const": 1}}}, {"n": True}),
    ({"type": "object", "properties": {"n": {"enum": [0, "x"]}}}, {"n": False}),
    ({"type": "object", "properties": {"n": {"multipleOf": 0.1}}}, {"n": 0.3}),
    ({"type": "object", "properties": {"n": {"not": {"maximum": 0}}}}, {"n": True}),
    ({"type": "object", "properties": {"n": {"not": {"minLength": 2}}}}, {"n": 12}),
    ({"type": "object", "properties": {"n": {"not": {"required": ["a"]}}}}, {"n": ["a"]}),
    # Titled choices: distinct ones become one enum for the quick check; a repeated one does not.
    ({"type": "object", "properties": {"c": CHOICES}}, {"c": "effect"}),
    ({"type": "object", "properties": {"c": CHOICES}}, {"c": "Effect"}),
    ({"type": "object", "properties": {"c": TWICE}}, {"c": "a"}),
    ({"type": "object", "properties": {"c": {"not": CHOICES}}}, {"c": "output"}),
    # 2020-12 keywords draft 7 reads differently or not at all: jsonschema alone decides.
    ({"type": "object", "properties": {"r": {"type": "array", "prefixItems": [{"type": "integer"}]}}}, {"r": ["x"]}),
    ({"type": "object", "properties": {"a": {}, "b": {}}, "dependentRequired": {"a": ["b"]}}, {"a": 1}),
    ({"$schema": OBJ, "type": "object", "properties": {"d": {"$ref": "#/$defs/d"}}, "$defs": {"d": {"type": "string"}}},
     {"d": 1}),
    ({"type": "object", "properties": {"l": {"contains": {"const": "x"}, "minContains": 2}}}, {"l": ["x"]}),
    # Format is an annotation for both (no format checker).
    ({"type": "object", "properties": {"d": {"type": "string", "format": "date"}}}, {"d": "2026-02-31"}),
])
def test_the_quick_check_never_changes_the_verdict(schema, data):
    assert _accepted(schema, data) == _jsonschema_accepts(schema, data)


@pytest.mark.parametrize("schema, covered", [
    ({"type": "object", "properties": {"x": {"not": {"pattern": "^x$"}}}}, False),
    ({"type": "object", "properties": {"x": {"not": {"pattern": "^x"}}}}, True),
    ({"type": "object", "properties": {"x": {"pattern": "^x$"}}}, True),
    ({"type": "object", "properties": {"n": {"const": 1}}}, False),
    ({"type": "object", "properties": {"n": {"multipleOf": 2}}}, False),
    ({"type": "object", "properties": {"r": {"items": [{"type": "integer"}]}}}, False),
    ({"type": "object", "properties": {"d": {"$ref": "#/$defs/d"}}, "$defs": {"d": {"type": "string"}}}, False),
    (GOALS, True), (REVIEW, True), (PRELIMINARY, True), (FINAL, True),
])
def test_the_quick_check_covers_only_keywords_both_libraries_read_alike(schema, covered):
    from engine.forms import quick_check_for
    assert (quick_check_for(schema) is not None) == covered


def test_the_quick_check_fills_in_no_defaults():
    schema = {"type": "object", "properties": {"x": {"type": "string", "default": "d"}, "n": {"type": "integer"}}}
    data = {"n": 1}
    assert validate(schema, data) is data and data == {"n": 1}


def test_data_the_quick_check_refuses_still_gets_jsonschemas_messages():
    data = indicator(2, weight=-1, level1="outputs")
    assert errors_of(GOALS, data) == {"indicators.2.level1": "Choose one of the listed values.",
                                      "indicators.2.weight": "Must be more than 0."}
