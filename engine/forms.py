"""User-task forms: JSON Schema files, validated on the server before a task completes."""
from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any, Mapping

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


def _one_of(validator, alternatives, instance, schema):
    """oneOf, with a shortcut for a list of titled choices: `[{"const": "output", "title":
    "Output"}, ...]`, the way forms spell a select with labels. jsonschema checks every
    alternative as a subschema and builds an error for each one that does not match, which
    was 40 % of validating the goals form (six indicators). For string consts, an instance
    valid under exactly one alternative is the string equal to exactly one of them; that case
    returns at once, and everything else (any failure, for its messages) is jsonschema's own."""
    if isinstance(instance, str) and all(
            isinstance(a, dict) and isinstance(a.get("const"), str) and a.keys() <= _ANNOTATIONS
            for a in alternatives):
        if sum(1 for a in alternatives if a["const"] == instance) == 1:
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
    if not errors:
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
