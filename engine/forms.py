"""User-task forms: JSON Schema files, validated on the server before a task completes."""
from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any, Mapping

import fastjsonschema
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError

from .errors import InvalidData

MAX_STRING = 100_000


def check_schema(schema: dict) -> None:
    """Raise SchemaError for a schema that is not valid JSON Schema, or whose $refs do not all
    point inside the schema itself (a form must never fetch anything, nor fail at submit time)."""
    Draft202012Validator.check_schema(schema)
    for ref in _refs(schema):
        if not ref.startswith("#"):
            raise SchemaError(f"$ref {ref!r} points outside the form; only local references ('#/...') are allowed")
        if _resolve_pointer(schema, ref[1:]) is _MISSING:
            raise SchemaError(f"$ref {ref!r} points to nothing in the form")


_MISSING = object()


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve_pointer(document, pointer: str):
    if pointer in ("", "/"):
        return document
    node = document
    for part in pointer.lstrip("/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isascii() and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


# Keywords that only describe: an alternative made of a const and these matches exactly the
# instances equal to the const.
_ANNOTATIONS = frozenset({"const", "title", "description", "$comment", "examples", "default",
                          "deprecated", "readOnly", "writeOnly"})
_STOCK_ONE_OF = Draft202012Validator.VALIDATORS["oneOf"]


def _titled_choices(alternatives) -> list[str] | None:
    """The consts of a oneOf that only lists titled string choices (`[{"const": "output",
    "title": "Output"}, ...]`, the way forms spell a select with labels), else None."""
    if isinstance(alternatives, list) and alternatives and all(
            isinstance(a, dict) and isinstance(a.get("const"), str) and a.keys() <= _ANNOTATIONS
            for a in alternatives):
        return [a["const"] for a in alternatives]
    return None


def _one_of(validator, alternatives, instance, schema):
    """oneOf, with a shortcut for a list of titled choices. jsonschema checks every
    alternative as a subschema and builds an error for each one that does not match, which
    was 40 % of validating the goals form (six indicators). For string consts, an instance
    valid under exactly one alternative is the string equal to exactly one of them; that case
    returns at once, and everything else (any failure, for its messages) is jsonschema's own."""
    choices = _titled_choices(alternatives)
    if isinstance(instance, str) and choices is not None and choices.count(instance) == 1:
        return
    yield from _STOCK_ONE_OF(validator, alternatives, instance, schema)


FormValidator = validators.extend(Draft202012Validator, {"oneOf": _one_of})


@lru_cache(maxsize=512)
def _validator(schema_json: str) -> Draft202012Validator:
    return FormValidator(json.loads(schema_json))


# Forms come from the spec cache: the same dict object for every completion of a step. Keying
# by its identity skips serialising the schema (8 KB for the goals form) on every validation.
# Each entry keeps the schema itself, so its id cannot be reused by another object while the
# entry lives; forms are never changed after parsing. A schema built afresh per call misses
# here and falls back to the content-keyed cache above.
_by_identity: dict[int, tuple[dict, Draft202012Validator]] = {}
_BY_IDENTITY_MAX = 512


def validator_for(schema: dict) -> Draft202012Validator:
    entry = _by_identity.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    validator = _validator(json.dumps(schema, sort_keys=True))
    if len(_by_identity) >= _BY_IDENTITY_MAX:
        _by_identity.clear()
    _by_identity[id(schema)] = (schema, validator)
    return validator


# ---- the quick check -------------------------------------------------------------------------
# jsonschema walks a schema anew on every validation, building a validator object for each
# subschema it enters: 0.8 ms for the goals form with six indicators, most of a compile step's
# validation. fastjsonschema turns a schema into a Python function once. It answers only "valid
# or not", and it implements draft 7, not 2020-12, so it is used only as a first check, and
# only for forms that use nothing but keywords both drafts and both libraries read the same way
# (checked against jsonschema in tests/test_forms.py and tests/test_properties.py). Valid data
# is accepted at once; anything it refuses goes to jsonschema, whose verdict and messages are
# the ones that count.

# Keywords whose subschemas are walked, by shape of their value.
_SUBSCHEMA_MAPS = frozenset({"properties"})
_SUBSCHEMAS = frozenset({"items", "not", "if", "then", "else", "additionalProperties"})
_SUBSCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf"})
# Subschemas whose failing can make the whole pass: there, the quick check must never be
# stricter than jsonschema either (elsewhere being stricter only sends the data to jsonschema).
_INVERTING = frozenset({"not", "if", "oneOf"})
# Keywords that check the same thing in draft 7 and 2020-12 (items only with a schema as its
# value: a list means prefixItems in one and tuple items in the other). `const` and `enum`
# only with strings: fastjsonschema compares with ==, for which True == 1, jsonschema does not.
# `format` is an annotation in both without a format checker (fastjsonschema's is off).
# Not multipleOf: the two libraries divide floats differently.
_CHECKS = frozenset({"type", "required", "minLength", "maxLength", "pattern", "minimum", "maximum",
                     "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", "const", "enum", "format"})
_QUICK_KEYWORDS = _SUBSCHEMA_MAPS | _SUBSCHEMAS | _SUBSCHEMA_LISTS | _CHECKS | _ANNOTATIONS | {"$schema"}


def _quick_checkable(schema, inverting: bool = False) -> bool:
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict) or not schema.keys() <= _QUICK_KEYWORDS:
        return False
    if "const" in schema and not isinstance(schema["const"], str):
        return False
    if "enum" in schema and not (isinstance(schema["enum"], list) and all(isinstance(v, str) for v in schema["enum"])):
        return False
    # fastjsonschema reads a pattern's `$` as the very end of the string; Python's re (and so
    # jsonschema) also matches before a final newline: "x\n" fails "^x$" in the quick check only.
    if inverting and "$" in str(schema.get("pattern", "")):
        return False
    for key, value in schema.items():
        inside = inverting or key in _INVERTING
        if key in _SUBSCHEMA_MAPS:
            if not isinstance(value, dict) or not all(_quick_checkable(v, inside) for v in value.values()):
                return False
        elif key in _SUBSCHEMAS:
            if not _quick_checkable(value, inside):
                return False
        elif key in _SUBSCHEMA_LISTS:
            if not isinstance(value, list) or not all(_quick_checkable(v, inside) for v in value):
                return False
    return True


def _choices_as_enums(schema):
    """The schema with each list of titled choices, when they all differ, made one enum: the
    same verdict (exactly one matches iff the value is among them), without fastjsonschema
    raising and catching an exception for every choice that does not match."""
    if isinstance(schema, list):
        return [_choices_as_enums(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in _SUBSCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _choices_as_enums(sub) for name, sub in value.items()}
        elif key == "oneOf" and (choices := _titled_choices(value)) and len(set(choices)) == len(choices):
            out[key] = [{"enum": choices}]
        elif key in _SUBSCHEMAS or key in _SUBSCHEMA_LISTS:
            out[key] = _choices_as_enums(value)
        else:
            out[key] = value
    return out


def _quick_check(schema: dict):
    """A compiled function raising fastjsonschema.JsonSchemaException for invalid data, or None
    for a form the quick check does not cover."""
    if not _quick_checkable(schema):
        return None
    try:
        # Draft 7 by name: the form's own $schema (2020-12) is not one fastjsonschema knows.
        definition = {**_choices_as_enums(schema), "$schema": "http://json-schema.org/draft-07/schema#"}
        # No defaults filled in (that would change the submitted data), no formats asserted.
        return fastjsonschema.compile(definition, use_default=False, use_formats=False)
    except Exception:   # anything it cannot compile is left to jsonschema alone
        return None


_quick_by_identity: dict[int, tuple[dict, Any]] = {}


def quick_check_for(schema: dict):
    entry = _quick_by_identity.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    check = _quick_check(schema)
    if len(_quick_by_identity) >= _BY_IDENTITY_MAX:
        _quick_by_identity.clear()
    # Keyed like validator_for: the entry keeps the schema, so its id is not reused meanwhile.
    _quick_by_identity[id(schema)] = (schema, check)
    return check


def _quickly_valid(schema: dict, data) -> bool:
    check = quick_check_for(schema)
    if check is None:
        return False
    try:
        check(data)
    except Exception:   # invalid (JsonSchemaException), or a value it cannot handle: jsonschema decides
        return False
    return True


def _path(parts) -> str:
    return ".".join(str(p) for p in parts)


def _message(error) -> tuple[str, str]:
    """A field path and a message a reviewer understands."""
    path = list(error.absolute_path)
    v = error.validator
    if v == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        if missing:
            return _path(path + [missing[0]]), "This field is required."
    if v == "minLength" and error.validator_value == 1:
        return _path(path), "This field is required."
    if v == "minItems":
        return _path(path), f"Add at least {error.validator_value} row(s)."
    if v in ("enum", "const", "oneOf"):
        return _path(path), "Choose one of the listed values."
    if v == "type":
        expected = error.validator_value
        if expected in ("number", "integer"):
            return _path(path), "Enter a number." if expected == "number" else "Enter a whole number."
        return _path(path), f"Expected {expected}."
    if v == "pattern" and "0-9" in str(error.validator_value):
        return _path(path), "Enter a number."
    if v in ("minimum", "exclusiveMinimum"):
        return _path(path), f"Must be {'at least' if v == 'minimum' else 'more than'} {error.validator_value}."
    if v in ("maximum", "exclusiveMaximum"):
        return _path(path), f"Must be {'at most' if v == 'maximum' else 'less than'} {error.validator_value}."
    if v == "maxLength":
        return _path(path), f"At most {error.validator_value} characters."
    return _path(path), error.message


def _refuse_hidden_and_unknown(schema: dict, data: Any, path: list, errors: dict) -> None:
    if isinstance(data, dict):
        props = schema.get("properties") if isinstance(schema, dict) else None
        for key, value in data.items():
            where = _path(path + [key])
            if not isinstance(key, str) or key.startswith("_"):
                errors[where] = "Field names starting with '_' are not accepted."
                continue
            if props is not None and key not in props:
                errors[where] = "Unknown field."
                continue
            # An object the form leaves open (no 'properties') is walked too: a '_' key or an
            # oversized string must not get into the case by nesting it one level down.
            _refuse_hidden_and_unknown(props[key] if props is not None else {}, value, path + [key], errors)
    elif isinstance(data, list):
        items = schema.get("items", {}) if isinstance(schema, dict) else {}
        for i, value in enumerate(data):
            _refuse_hidden_and_unknown(items, value, path + [i], errors)
    elif isinstance(data, str) and len(data) > MAX_STRING:
        errors[_path(path)] = f"At most {MAX_STRING} characters."
    elif isinstance(data, float) and not math.isfinite(data):
        # JSON bodies may spell NaN, Infinity or 1e999; JSON columns (PostgreSQL) refuse them.
        errors[_path(path)] = "Enter a finite number."


def validate(schema: dict, data: Any) -> dict:
    """Return the data if valid; raise InvalidData with one message per field otherwise."""
    if not isinstance(data, dict):
        raise InvalidData("Form data must be an object.", {"": "Expected an object."})
    errors: dict[str, str] = {}
    _refuse_hidden_and_unknown(schema, data, [], errors)
    if not errors and not _quickly_valid(schema, data):
        for error in validator_for(schema).iter_errors(data):
            field, message = _message(error)
            errors.setdefault(field, message)
    if errors:
        raise InvalidData("The form has errors.", errors)
    return data


def _coerce(schema: dict, raw: str) -> Any:
    """Turn one submitted text value into the type the schema asks for; keep it if it won't go."""
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    text = raw.strip()
    if "boolean" in types:
        return text.lower() in ("on", "true", "1", "yes")
    if "integer" in types and re.fullmatch(r"-?\d+", text):
        return int(text)
    if "number" in types:
        try:
            number = float(text)
            return int(number) if number.is_integer() and "." not in text else number
        except ValueError:
            return raw
    return raw


def from_form_fields(schema: dict, fields: Mapping[str, str], prefix: str = "") -> dict:
    """Build the form's data from HTML fields; arrays of objects use names like 'rows-0-name'."""
    data: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        key = f"{prefix}{name}"
        if prop.get("type") == "array" and (prop.get("items") or {}).get("type") == "object":
            rows = []
            indexes = sorted({int(m.group(1)) for f in fields
                              if (m := re.fullmatch(re.escape(key) + r"-(\d+)-.+", f))})
            for i in indexes:
                row = from_form_fields(prop["items"], fields, f"{key}-{i}-")
                # An unticked checkbox alone does not make a row: a blank added row is left out.
                if any(value is not False and value is not None and value != "" for value in row.values()):
                    rows.append(row)
            data[name] = rows
        elif prop.get("type") == "boolean":
            data[name] = key in fields and _coerce(prop, fields[key])
        elif key in fields and fields[key].strip() != "":
            data[name] = _coerce(prop, fields[key])
    return data
