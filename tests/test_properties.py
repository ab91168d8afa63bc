"""Properties of form validation and of the bureau's rules, checked with hypothesis.

tests/test_forms.py and tests/test_rules.py pin worked examples; this file states what must
hold for *every* input, and lets hypothesis look for the input that breaks it:

- forms: whatever JSON a client sends (wrong types, huge strings, unknown keys, keys starting
  with '_', NaN), `forms.validate` either returns data a case may store or raises InvalidData
  with a message per field, never anything else; stored data never holds a '_' key or a
  number JSON cannot carry.
- rules: scores stay between 0 and their weight, more achieved never scores less, weights
  share out exactly, every score falls in exactly one grade band, dropping indicators keeps
  full marks at 100, and input the rules refuse raises their documented error.
"""
from __future__ import annotations

import json
import math
from datetime import date
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine import demo, ex_ante, forms, key_evaluation, monitoring, spot_check
from engine.errors import InvalidData
from engine.processes import PROCESSES_DIR
from engine.rules import grading, warnings
from engine.rules import self_assessment as sa
from engine.settings import SPECS, default_value

# Enough examples to find the edge cases hypothesis aims for, few enough that the file runs
# in a handful of seconds on a busy machine; no deadline because that machine is shared.
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Per form schema (there are over 20): fewer each, many in all.
PER_FORM = settings(SLOW, max_examples=15)

SETTINGS = {key: default_value(key) for key in SPECS}
GRADE_RANK = {name: rank for rank, name in enumerate(reversed(grading.GRADES))}   # poor 0 .. excellent 3


# ---- strategies ---------------------------------------------------------------------------

def _form_schemas() -> dict[str, dict]:
    return {f"{path.parent.name}/{path.name}": json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(PROCESSES_DIR.glob("*/*.schema.json"))}


FORM_SCHEMAS = _form_schemas()


def _field_names(node, out: set) -> set:
    if isinstance(node, dict):
        out.update((node.get("properties") or {}).keys())
        for value in node.values():
            _field_names(value, out)
    elif isinstance(node, list):
        for value in node:
            _field_names(value, out)
    return out


# Keys a client might send: the forms' own field names (so generated data gets past the
# unknown-key check into the schema's nested rules), hidden '_' names and anything else.
FIELD_NAMES = sorted(set().union(*(_field_names(s, set()) for s in FORM_SCHEMAS.values())))
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.sampled_from(FIELD_NAMES).map("_".__add__),
                 st.text(max_size=8), st.text(max_size=8).map("_".__add__))
huge = st.integers(forms.MAX_STRING - 1, forms.MAX_STRING + 2).map("x".__mul__)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-10**30, 10**30).map(lambda n: n * 10**30),
                    st.floats(), st.text(max_size=20), huge,
                    st.sampled_from(["excellent", "return", "approve", "2027-01-01"]))
json_data = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(keys, inner, max_size=5)), max_leaves=20)


def _shaped(schema) -> st.SearchStrategy:
    """Data mostly of the form's own shape, so that generated values reach the checks behind
    the type checks (enums, minimums, nested rows), with a stray value or key now and then."""
    if not isinstance(schema, dict):
        return json_data
    kind = schema.get("type")
    consts = [option["const"] for option in schema.get("oneOf", []) if isinstance(option, dict) and "const" in option]
    if consts or "enum" in schema:
        shaped = st.sampled_from(consts or schema["enum"])
    elif kind == "object" and "properties" in schema:
        shaped = st.fixed_dictionaries({}, optional={name: st.deferred(lambda p=prop: _shaped(p))
                                                     for name, prop in schema["properties"].items()})
        stray = st.dictionaries(keys, scalars, max_size=1)
        shaped = st.one_of(shaped, st.tuples(shaped, stray).map(lambda pair: {**pair[0], **pair[1]}))
    elif kind == "array":
        shaped = st.lists(_shaped(schema.get("items", {})), max_size=3)
    elif kind in ("number", "integer"):
        shaped = st.one_of(st.integers(-10**6, 10**6), st.floats())
    elif kind == "string":
        shaped = st.one_of(st.text(max_size=12), huge, st.dates().map(str))
    elif kind == "boolean":
        shaped = st.booleans()
    else:
        return json_data
    return st.one_of(shaped, shaped, shaped, scalars)


def _walk(value, path=()):
    """Every (path, key-or-None, leaf) in a JSON-ish value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, key, item
            yield from _walk(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield path, None, item
            yield from _walk(item, path + (i,))


def _is_storable(data) -> bool:
    """What a case may keep: plain JSON (no NaN or Infinity) and no '_' key at any depth."""
    try:
        json.dumps(data, allow_nan=False)
    except ValueError:
        return False
    return not any(isinstance(key, str) and key.startswith("_") for _p, key, _v in _walk(data))


# ---- forms --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(FORM_SCHEMAS))
@PER_FORM
@given(data=st.data())
def test_any_data_is_either_stored_valid_or_refused_field_by_field(name, data):
    schema = FORM_SCHEMAS[name]
    data = data.draw(st.one_of(_shaped(schema), _shaped(schema), json_data), label="data")
    try:
        stored = forms.validate(schema, data)
    except InvalidData as exc:
        assert exc.status == 400 and exc.message
        assert exc.details and all(isinstance(k, str) and isinstance(v, str) and v for k, v in exc.details.items())
        if isinstance(data, dict):
            for key in data:
                if key.startswith("_"):
                    assert exc.details[key] == "Field names starting with '_' are not accepted."
        return
    assert stored is data       # nothing is silently changed: what validates is what is kept
    assert _is_storable(stored)
    assert forms.validator_for(schema).is_valid(stored)
    assert all(len(v) <= forms.MAX_STRING for _p, _k, v in _walk(stored) if isinstance(v, str))


# Every form the quick check covers (all but those using keywords it leaves to jsonschema).
QUICK_FORMS = sorted(name for name, schema in FORM_SCHEMAS.items() if forms.quick_check_for(schema) is not None)


def test_the_quick_check_covers_the_shipped_forms():
    assert set(FORM_SCHEMAS) - set(QUICK_FORMS) == {"self_assessment_review/spot_check_review.schema.json"}


def _valid_leaning(schema) -> st.SearchStrategy:
    """Data that meets a form's own rules field by field (its required fields, choices, lengths,
    patterns and bounds), so that many examples are valid and the rest fail by a little (an
    if/then rule across fields): the quick check must agree at that edge, not only far from it."""
    if not isinstance(schema, dict):
        return json_data
    consts = [o["const"] for o in schema.get("oneOf", []) if isinstance(o, dict) and "const" in o]
    if consts or "enum" in schema:
        return st.sampled_from(consts or schema["enum"])
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        props = schema.get("properties") or {}
        required = [n for n in schema.get("required", []) if n in props]
        return st.fixed_dictionaries({n: st.deferred(lambda p=props[n]: _valid_leaning(p)) for n in required},
                                     optional={n: st.deferred(lambda p=p: _valid_leaning(p))
                                               for n, p in props.items() if n not in required})
    if kind == "array":
        return st.lists(_valid_leaning(schema.get("items", {})), min_size=schema.get("minItems", 0),
                        max_size=max(schema.get("minItems", 0), min(schema.get("maxItems", 3), 3)))
    if kind in ("number", "integer"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", -10**6))
        high = schema.get("maximum", schema.get("exclusiveMaximum", 10**6))
        numbers = st.integers(math.ceil(low), math.floor(high))
        return numbers if kind == "integer" else st.one_of(numbers, st.floats(low, high))
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"])
        return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 30))
    if kind == "boolean":
        return st.booleans()
    return json_data


def _with_one_change(value, draw):
    """The value with one leaf replaced, one key dropped or nothing changed."""
    spots = [(path, key) for path, key, _v in _walk(value)]
    if not spots or draw(st.booleans()):
        return value
    path, key = draw(st.sampled_from(spots))
    value = json.loads(json.dumps(value))
    node = value
    for part in path:
        node = node[part]
    if key is not None and draw(st.booleans()):
        del node[key]
    elif key is not None:
        node[key] = draw(scalars)
    return value


@pytest.mark.parametrize("name", QUICK_FORMS)
@PER_FORM
@given(data=st.data())
def test_the_quick_check_never_accepts_what_jsonschema_refuses(name, data):
    from jsonschema import Draft202012Validator
    schema = FORM_SCHEMAS[name]
    draw = data.draw
    value = draw(st.one_of(_valid_leaning(schema), _valid_leaning(schema), _shaped(schema)), label="data")
    value = _with_one_change(value, draw)
    try:
        forms.quick_check_for(schema)(value)
        quick = True
    except Exception:
        quick = False
    # Refusing more is allowed (such data goes on to jsonschema, whose verdict counts: a date
    # pattern's `$` and a final newline); accepting more never is.
    if quick:
        assert Draft202012Validator(schema).is_valid(value)


# A form with a free-form object (no 'properties'): nested keys are the client's own choice.
FREE_FORM = {"type": "object", "properties": {"notes": {"type": "object"}, "rows": {"type": "array"},
                                              "amount": {"type": "number"}}}


@FAST
@given(data=st.fixed_dictionaries({}, optional={"notes": st.dictionaries(keys, json_data, max_size=3),
                                                "rows": st.lists(json_data, max_size=3),
                                                "amount": st.one_of(st.integers(), st.floats())}))
def test_hidden_keys_and_unstorable_numbers_are_refused_at_any_depth(data):
    hidden = any(isinstance(k, str) and k.startswith("_") for _p, k, _v in _walk(data))
    try:
        stored = forms.validate(FREE_FORM, data)
    except InvalidData as exc:
        assert exc.details
        return
    assert not hidden, "a '_' key got through"
    assert _is_storable(stored)


VALID_GOALS = demo.sample_goals("Fuzzed project")
GOALS_SCHEMA = FORM_SCHEMAS["goal_review/goals.schema.json"]


def _containers(value, path=()):
    """Every object inside a JSON value, with its path."""
    if isinstance(value, dict):
        yield path, value
        for key, item in value.items():
            yield from _containers(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _containers(item, path + (i,))


@FAST
@given(where=st.data(), name=st.text(max_size=10), hidden=st.booleans(), value=scalars)
def test_one_stray_key_anywhere_in_valid_goals_is_refused_at_its_path(where, name, hidden, value):
    assert forms.validate(GOALS_SCHEMA, json.loads(json.dumps(VALID_GOALS))) == VALID_GOALS
    data = json.loads(json.dumps(VALID_GOALS))
    path, target = where.draw(st.sampled_from(list(_containers(data))))
    key = ("_" + name) if hidden else name
    assume(key not in target)
    target[key] = value
    with pytest.raises(InvalidData) as caught:
        forms.validate(GOALS_SCHEMA, data)
    where_key = ".".join(str(p) for p in (*path, key))
    expected = "Field names starting with '_' are not accepted." if key.startswith("_") else "Unknown field."
    assert caught.value.details.get(where_key) == expected, caught.value.details


def _schema_of_fields(schema, prefix=""):
    """HTML field names of a form: 'name', or 'table-0-column' for table rows."""
    for name, prop in (schema.get("properties") or {}).items():
        if prop.get("type") == "array" and (prop.get("items") or {}).get("type") == "object":
            for column in (prop["items"].get("properties") or {}):
                yield f"{prefix}{name}-0-{column}"
                yield f"{prefix}{name}-1-{column}"
        else:
            yield f"{prefix}{name}"


@pytest.mark.parametrize("name", sorted(FORM_SCHEMAS))
@PER_FORM
@given(data=st.data())
def test_any_posted_html_fields_become_data_that_validates_or_is_refused(name, data):
    schema = FORM_SCHEMAS[name]
    names = list(_schema_of_fields(schema)) or ["x"]
    text = st.one_of(st.text(max_size=12), st.sampled_from(["", " ", "1", "-3", "2.5", "1e999", "nan", "inf",
                                                             "on", "true", "99999999999999999999999"]))
    fields = data.draw(st.dictionaries(st.one_of(st.sampled_from(names), st.text(max_size=8)), text, max_size=12))
    built = forms.from_form_fields(schema, fields)
    try:
        stored = forms.validate(schema, built)
    except InvalidData as exc:
        assert exc.details
        return
    assert _is_storable(stored)


# ---- grades and ex-ante conclusions -------------------------------------------------------

scores = st.decimals(min_value=0, max_value=100, places=2)


@st.composite
def cut_offs(draw):
    """Grade cut-offs the settings accept: falling from excellent to good to fair."""
    fair, good, excellent = sorted(draw(st.lists(st.integers(0, 100), min_size=3, max_size=3, unique=True)))
    return {"excellent": excellent, "good": good, "fair": fair}


@FAST
@given(score=scores, mins=st.one_of(st.none(), cut_offs()))
def test_every_score_falls_in_exactly_one_grade_band(score, mins):
    bands = mins or SETTINGS["grades.min"]
    lows = {"excellent": D(bands["excellent"]), "good": D(bands["good"]), "fair": D(bands["fair"]), "poor": D(0)}
    highs = {"excellent": D("Infinity"), "good": lows["excellent"], "fair": lows["good"], "poor": lows["fair"]}
    holding = [g for g in grading.GRADES if lows[g] <= score < highs[g]]
    assert holding == [grading.grade(score, mins)]


@FAST
@given(a=scores, b=scores, mins=cut_offs())
def test_a_higher_score_never_gets_a_lower_grade(a, b, mins):
    low, high = sorted((a, b))
    assert GRADE_RANK[grading.grade(low, mins)] <= GRADE_RANK[grading.grade(high, mins)]


@FAST
@given(a=scores, b=scores, cut=st.lists(st.integers(0, 100), min_size=2, max_size=2))
def test_ex_ante_conclusion_is_monotone_and_refuses_crossed_cut_offs(a, b, cut):
    adjust, support = cut
    if adjust > support:
        with pytest.raises(ValueError):
            grading.ex_ante_conclusion(a, support, adjust)
        return
    order = {"reject": 0, "adjust": 1, "support": 2}
    low, high = sorted((a, b))
    assert order[grading.ex_ante_conclusion(low, support, adjust)] <= \
        order[grading.ex_ante_conclusion(high, support, adjust)]
    assert (grading.ex_ante_conclusion(high, support, adjust) == "support") == (high >= support)


RATINGS = list(SETTINGS["ex_ante.rating_points"])        # best first


@st.composite
def rating_points(draw):
    """Points per rating as the settings allow (0 to 5 each), better ratings worth no less."""
    points = sorted(draw(st.lists(st.decimals(0, 5, places=1), min_size=4, max_size=4)), reverse=True)
    return dict(zip(RATINGS, points))


sheet = st.lists(st.sampled_from(RATINGS), min_size=20, max_size=20)


@FAST
@given(ratings=sheet, points=rating_points(), better=st.integers(0, 19))
def test_ex_ante_total_stays_within_100_and_a_better_rating_never_lowers_it(ratings, points, better):
    rows = [{**row, "rating": rating} for row, rating in zip(ex_ante.scoring_sheet(), ratings)]
    cfg = {**SETTINGS, "ex_ante.rating_points": points}
    result = ex_ante.result(rows, cfg)
    assert 0 <= result["total"] <= 100
    assert all(0 <= v <= 20 for v in result["dimensions"].values())
    assert math.isclose(result["total"], sum(result["dimensions"].values()))
    # One sub-item rated one step better.
    i = RATINGS.index(ratings[better])
    improved = [dict(r) for r in rows]
    improved[better]["rating"] = RATINGS[max(i - 1, 0)]
    assert ex_ante.result(improved, cfg)["total"] >= result["total"]
    all_best = [{**row, "rating": RATINGS[0]} for row in rows]
    assert ex_ante.result(all_best, cfg)["total"] == float(points[RATINGS[0]] * 20)


@FAST
@given(rows=st.lists(st.one_of(st.fixed_dictionaries({"dimension": st.text(max_size=6), "rating": st.text(max_size=6)}),
                               json_data), max_size=4))
def test_a_malformed_ex_ante_sheet_is_refused_with_value_error(rows):
    # A ValueError is what the diagram turns into "correct your input" (WorkflowError.refuses_input);
    # anything else would stop the case as errored.
    try:
        result = ex_ante.result(rows, SETTINGS)
    except ValueError:
        return
    assert 0 <= result["total"] <= 100


# ---- self-assessment scores ---------------------------------------------------------------

amounts = st.decimals(min_value=0, max_value=10**9, places=2)
positive = st.decimals(min_value=D("0.01"), max_value=10**9, places=2)
weights = st.decimals(min_value=0, max_value=100, places=2)
any_number = st.decimals(min_value=-10**9, max_value=10**9, places=3)


@FAST
@given(budget=positive, a=amounts, b=amounts, weight=weights)
def test_budget_score_lies_in_zero_to_weight_and_rises_with_spending(budget, a, b, weight):
    low, high = sorted((a, b))
    s_low, s_high = sa.budget_score(budget, low, weight), sa.budget_score(budget, high, weight)
    assert 0 <= s_low <= s_high <= weight
    assert (s_high == weight) == (high >= budget or weight == 0)


@FAST
@given(budget=st.decimals(max_value=0, allow_nan=False), spent=amounts)
def test_budget_score_refuses_a_budget_that_is_not_positive(budget, spent):
    with pytest.raises(sa.ScoreRefused):
        sa.budget_score(budget, spent, 10)


@FAST
@given(operator=st.sampled_from([">=", ">", "=", "<=", "<"]), target=positive, a=any_number, b=any_number,
       weight=weights)
def test_quantitative_score_lies_in_zero_to_weight_and_follows_its_direction(operator, target, a, b, weight):
    low, high = sorted((a, b))
    s_low = sa.quantitative_score(operator, target, low, weight)
    s_high = sa.quantitative_score(operator, target, high, weight)
    assert 0 <= s_low <= weight and 0 <= s_high <= weight
    if operator in (">=", ">"):
        assert s_low <= s_high          # more achieved never scores less
        assert (s_high == weight) == (high >= target or weight == 0)
    elif operator in ("<=", "<"):
        assert s_low >= s_high          # a ceiling: staying further under never scores less
        assert (s_low == weight) == (low <= target or weight == 0)
    else:
        assert sa.quantitative_score(operator, target, target, weight) == weight


@FAST
@given(operator=st.one_of(st.sampled_from([">=", ">", "=", "<=", "<"]), st.text(max_size=3)),
       target=st.decimals(max_value=0, allow_nan=False), actual=any_number)
def test_quantitative_score_refuses_what_it_cannot_score(operator, target, actual):
    with pytest.raises(sa.ScoreRefused):
        sa.quantitative_score(operator, target, actual, 10)


@st.composite
def qualitative_setting(draw):
    partly, achieved = sorted(draw(st.lists(st.decimals(0, 1, places=2), min_size=2, max_size=2, unique=True)))
    return {"achieved": achieved, "partly": partly}


@FAST
@given(bands=qualitative_setting(), weight=positive.filter(lambda w: w <= 100), share=st.decimals(0, 1, places=4),
       level=st.sampled_from(["achieved", "partly", "not"]))
def test_qualitative_bands_cover_zero_to_weight_and_only_the_levels_band_is_accepted(bands, weight, share, level):
    score = weight * share
    table = sa.qualitative_bands(bands)
    accepted = [name for name in table if _accepts(name, score, weight, bands)]
    assert accepted, f"{score} of {weight} fits no level"
    low, high = (x * weight for x in table[level])
    if low <= score <= high:
        assert sa.qualitative_score(level, score, weight, bands) == score
    else:
        with pytest.raises(sa.ScoreRefused, match=level):
            sa.qualitative_score(level, score, weight, bands)


def _accepts(level, score, weight, bands) -> bool:
    try:
        sa.qualitative_score(level, score, weight, bands)
    except sa.ScoreRefused:
        return False
    return True


@st.composite
def scored_lines(draw):
    """Lines with a positive weight, each scored between 0 and its weight, some dropped."""
    n = draw(st.integers(1, 8))
    lines = []
    for _ in range(n):
        weight = draw(st.decimals(D("0.01"), 100, places=2))
        score = weight * draw(st.decimals(0, 1, places=3))
        lines.append(sa.Line(weight=weight, score=score, applies=draw(st.booleans())))
    return lines


@FAST
@given(lines=scored_lines())
def test_total_is_on_100_over_the_lines_that_apply(lines):
    if not any(line.applies for line in lines):
        with pytest.raises(sa.ScoreRefused):
            sa.total(lines)
        return
    result = sa.total(lines)
    assert 0 <= result <= 100
    # Full marks on what applies is exactly 100, whichever lines were dropped.
    full = [sa.Line(weight=line.weight, score=line.weight, applies=line.applies) for line in lines]
    assert sa.total(full) == D(100)
    assert sa.shortfalls(full) == []
    # A dropped line's score does not count at all.
    changed = [sa.Line(weight=l.weight, score=l.score if l.applies else D(0), applies=l.applies) for l in lines]
    assert sa.total(changed) == result


@st.composite
def part_weights(draw):
    """Self-assessment weights the settings accept: four parts adding up to 100."""
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=3, max_size=3)))
    budget, output, effect, satisfaction = (b - a for a, b in zip([0, *cuts], [*cuts, 100]))
    return {"budget": budget, "output": output, "effect": effect, "satisfaction": satisfaction}


goal_indicator = st.fixed_dictionaries({
    "level1": st.sampled_from(["output", "effect", "satisfaction"]),
    "name": st.text(min_size=1, max_size=10),
    "operator": st.sampled_from([">=", ">", "=", "<=", "<", "qualitative"]),
    "target": st.one_of(positive.map(str), st.just("good")),
    "unit": st.sampled_from(["", "%", "people"]),
    "weight": st.integers(1, 40),
})


@FAST
@given(indicators=st.lists(goal_indicator, min_size=1, max_size=8), weights=part_weights(), budget=positive)
def test_part_weights_are_shared_out_exactly_and_full_marks_are_100(indicators, weights, budget):
    cfg = {**SETTINGS, "self_assessment.weights": weights}
    basis = spot_check.setup(indicators, budget, cfg)["basis"]
    for part in spot_check.PARTS:
        members = [row["weight"] for row in basis["indicators"] if row["level1"] == part]
        if members:
            assert sum(D(str(w)) for w in members) == weights[part]
            assert all(w >= 0 for w in members)
    # The unit reaches every target and spends the whole budget: exactly 100, excellent...
    rows = [_full_marks(row, cfg) for row in basis["indicators"]]
    scored = [basis["budget_weight"], *(r["weight"] for r, e in zip(basis["indicators"], rows)
                                        if not e.get("not_applicable"))]
    if any(D(str(w)) > 0 for w in scored):
        result = spot_check.result([{"spent": float(budget)}], rows, basis, cfg)
        assert result["total"] == 100 and result["grade"] == "excellent"
    else:
        # ...unless every line left weighs nothing: refused, not divided by zero.
        with pytest.raises(InvalidData, match="indicator scores"):
            spot_check.result([{"spent": float(budget)}], rows, basis, cfg)


def _full_marks(row, cfg):
    if row["operator"] == "qualitative":
        return {"level": "achieved", "points": row["weight"]}
    if row["target"] == "good":      # a target that is not a number can only be dropped
        return {"not_applicable": True, "cause": "target not measurable"}
    return {"actual": float(row["target"])}


entry_value = st.one_of(st.none(), st.booleans(), any_number.map(float), st.floats(), st.text(max_size=6),
                        st.sampled_from(["1e999", "1e300", "nan", "12", "-1"]))
indicator_entry = st.fixed_dictionaries({}, optional={
    "not_applicable": st.booleans(), "actual": entry_value,
    "level": st.one_of(st.text(max_size=4), st.sampled_from(["achieved", "partly", "not"])),
    "points": entry_value, "cause": st.text(max_size=6), "measure": st.text(max_size=6)})


@SLOW
@given(indicators=st.lists(goal_indicator, min_size=1, max_size=6), budget=st.one_of(positive, st.just(D(0))),
       spent=entry_value, entries=st.data())
def test_any_self_assessment_is_scored_within_100_or_refused_field_by_field(indicators, budget, spent, entries):
    basis = spot_check.setup(indicators, budget, SETTINGS)["basis"]
    n = len(basis["indicators"])
    rows = entries.draw(st.one_of(st.lists(indicator_entry, min_size=n, max_size=n),
                                  st.lists(st.one_of(indicator_entry, json_data), max_size=n + 1)))
    try:
        result = spot_check.result([{"spent": spent, "cause": "c", "measure": "m"}], rows, basis, SETTINGS)
    except InvalidData as exc:
        assert exc.details and exc.message
        return
    assert 0 <= result["total"] <= 100
    assert result["grade"] == grading.grade(D(str(result["total"])), SETTINGS["grades.min"])
    assert _is_storable(result)


@FAST
@given(review=scores, own=scores, flag=st.integers(0, 100), order=st.permutations(list(spot_check.CRITERIA)),
       drop=st.booleans())
def test_the_review_gap_is_flagged_exactly_from_the_configured_points(review, own, flag, order, drop):
    criteria = [{"criterion": c, "rating": "good"} for c in order]
    if drop:
        with pytest.raises(InvalidData):
            spot_check.review_result(criteria[1:], review, own, flag)
        return
    result = spot_check.review_result(criteria, review, own, flag)
    assert [row["criterion"] for row in result["criteria"]] == list(spot_check.CRITERIA)
    assert result["flagged"] == (abs(review - own) >= flag)


# ---- monitoring lights --------------------------------------------------------------------

@st.composite
def light_bands(draw):
    """Bands the settings accept: red <= yellow (budget), red <= yellow <= blue (indicators)."""
    b_red, b_yellow = sorted(draw(st.lists(st.decimals(0, 5, places=2), min_size=2, max_size=2)))
    i_red, i_yellow, i_blue = sorted(draw(st.lists(st.decimals(0, 5, places=2), min_size=3, max_size=3)))
    # Floats, as the settings hold them (JSON).
    return monitoring.bands_from({"monitoring.bands": {
        "budget_red_below": float(b_red), "budget_yellow_below": float(b_yellow), "indicator_red_below": float(i_red),
        "indicator_yellow_below": float(i_yellow), "indicator_blue_from": float(i_blue)}})


days = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
BY_PROGRESS = {"red": 0, "yellow": 1, "green": 2, "blue": 3}


@FAST
@given(day=days)
def test_the_share_of_the_year_is_in_zero_to_one_and_full_on_new_years_eve(day):
    share = monitoring.year_share(day)
    assert 0 < share <= 1
    assert (share == 1) == (day.month == 12 and day.day == 31)


@FAST
@given(budget=positive, a=amounts, b=amounts, day=days, bands=light_bands())
def test_spending_more_never_worsens_the_budget_light(budget, a, b, day, bands):
    low, high = sorted((a, b))
    share = monitoring.year_share(day)
    light_low = warnings.budget_light(budget, low, share, bands)
    light_high = warnings.budget_light(budget, high, share, bands)
    assert light_low in ("red", "yellow", "green") and light_high in ("red", "yellow", "green")
    assert BY_PROGRESS[light_low] <= BY_PROGRESS[light_high]


@FAST
@given(operator=st.sampled_from([">=", ">", "<=", "<"]), target=positive, a=any_number, b=any_number, day=days,
       bands=light_bands())
def test_indicator_lights_follow_progress(operator, target, a, b, day, bands):
    low, high = sorted((a, b))
    share = monitoring.year_share(day)
    light_low = warnings.indicator_light(operator, target, low, share, bands)
    light_high = warnings.indicator_light(operator, target, high, share, bands)
    if operator in (">=", ">"):
        assert BY_PROGRESS[light_low] <= BY_PROGRESS[light_high]
    else:
        # A ceiling: red exactly when over it, whatever the time of year.
        assert light_low == ("red" if low > target else "green")
        assert light_high == ("red" if high > target else "green")


@FAST
@given(lights=st.lists(st.sampled_from(["red", "yellow", "green", "blue", None]), max_size=6))
def test_a_projects_light_is_its_worst(lights):
    worst = warnings.worst(lights)
    lit = [light for light in lights if light]
    assert worst == (max(lit, key=warnings.SEVERITY.get) if lit else None)
    assert worst is None or all(warnings.SEVERITY[worst] >= warnings.SEVERITY[light] for light in lit)


@FAST
@given(operator=st.sampled_from(monitoring.QUANTITATIVE), target=st.floats(min_value=1e-300, max_value=1e300),
       current=any_number.map(float), expected=any_number.map(float), day=days, bands=light_bands())
def test_any_approved_target_and_figures_give_a_light_and_numbers_a_case_can_store(operator, target, current,
                                                                                   expected, day, bands):
    # Targets come from approved goals as text: '1e-30' or '1e30' are typing slips, not reasons
    # for the report to fail (the case would stop as errored) or to store what JSON cannot hold.
    indicator = {"name": "n", "operator": operator, "target": repr(target), "level1": "output"}
    row, errors = monitoring.indicator_row(indicator, {"current": current, "expected": expected},
                                           monitoring.year_share(day), bands)
    assert errors == {}
    assert row["light"] in (("red", "yellow", "green", "blue") if operator in (">=", ">") else
                            ("red", "green", None))
    assert _is_storable(row)


monitored = st.fixed_dictionaries({
    "level1": st.sampled_from(["output", "effect", "satisfaction"]), "name": st.text(max_size=8),
    "operator": st.sampled_from([">=", ">", "=", "<", "<=", "qualitative", None]),
    "target": st.one_of(positive.map(float), st.just(0), st.text(max_size=4), st.sampled_from(["1e30", "-5", "1e-30"])),
    "unit": st.text(max_size=3)})
progress_row = st.fixed_dictionaries({}, optional={"current": entry_value, "expected": entry_value,
                                                   "likelihood": st.text(max_size=4), "note": st.text(max_size=8)})
# Rows a unit fills in properly, so that lights are computed rather than refused.
figures_row = st.fixed_dictionaries({"current": any_number.map(float), "expected": any_number.map(float)})


@SLOW
@given(budget=st.one_of(amounts, st.just(0)), spent=entry_value, day=days,
       indicators=st.lists(monitored, max_size=5),
       progress=st.one_of(st.lists(figures_row, max_size=6), st.lists(progress_row, max_size=6), json_data),
       bands=light_bands())
def test_any_monitoring_report_lights_the_worst_or_names_the_fields_at_fault(budget, spent, day, indicators,
                                                                          progress, bands):
    out = monitoring.report(budget, spent, day, indicators, progress, bands)
    assert all(isinstance(k, str) and v for k, v in out["errors"].items())
    lights = [out["budget_light"], *(row["light"] for row in out["indicators"])]
    assert out["light"] == warnings.worst(lights)
    assert len(out["progress"]) == len(indicators)
    if not out["errors"]:
        assert _is_storable(out)


# ---- key evaluation -----------------------------------------------------------------------

@st.composite
def plans(draw):
    """Framework weights that add up to 100 with output + effect at least 60."""
    results = draw(st.integers(key_evaluation.RESULTS_MIN_WEIGHT, 100))
    output = draw(st.integers(0, results))
    decision = draw(st.integers(0, 100 - results))
    rows = [{"dimension": "decision", "weight": decision}, {"dimension": "process", "weight": 100 - results - decision},
            {"dimension": "output", "weight": output}, {"dimension": "effect", "weight": results - output}]
    return draw(st.permutations(rows))


@FAST
@given(rows=st.one_of(plans(), st.lists(st.one_of(
    st.fixed_dictionaries({"dimension": st.sampled_from([*key_evaluation.DIMENSIONS, "x"]),
                           "weight": st.one_of(st.integers(-5, 105), st.floats(), st.text(max_size=3), st.none())}),
    json_data), max_size=5)))
def test_a_plan_either_weighs_100_with_results_at_least_60_or_says_which_rule_it_breaks(rows):
    try:
        plan = key_evaluation.check_plan(rows)
    except ValueError as exc:
        assert str(exc)
        return
    assert [row["dimension"] for row in plan] == list(key_evaluation.DIMENSIONS)
    weight = {row["dimension"]: D(str(row["weight"])) for row in plan}
    assert sum(weight.values()) == 100 and weight["output"] + weight["effect"] >= 60


@FAST
@given(plan=plans(), shares=st.lists(st.decimals(0, 1, places=2), min_size=4, max_size=4),
       better=st.sampled_from(key_evaluation.DIMENSIONS), mins=cut_offs())
def test_key_evaluation_total_stays_within_100_and_scoring_higher_never_lowers_the_grade(plan, shares, better, mins):
    weights = {row["dimension"]: row["weight"] for row in plan}
    sheet_ = [{"dimension": d, "score": float((D(weights[d]) * s).quantize(D("0.01")))}
              for d, s in zip(key_evaluation.DIMENSIONS, shares)]
    result = key_evaluation.report(sheet_, plan, mins)
    assert 0 <= result["total"] <= 100
    assert result["grade"] == grading.grade(D(str(result["total"])), mins)
    raised = [dict(row, score=weights[row["dimension"]]) if row["dimension"] == better else row for row in sheet_]
    higher = key_evaluation.report(raised, plan, mins)
    assert higher["total"] >= result["total"]
    assert GRADE_RANK[higher["grade"]] >= GRADE_RANK[result["grade"]]
    full = [{"dimension": d, "score": weights[d]} for d in key_evaluation.DIMENSIONS]
    assert key_evaluation.report(full, plan, mins)["total"] == 100


@FAST
@given(plan=plans(), dimension=st.sampled_from(key_evaluation.DIMENSIONS),
       score=st.one_of(st.floats(allow_nan=False), st.none(), st.text(max_size=3), st.booleans()))
def test_a_score_outside_zero_to_its_weight_is_refused(plan, dimension, score):
    weights = {row["dimension"]: row["weight"] for row in plan}
    assume(not (isinstance(score, float) and 0 <= score <= weights[dimension]))
    sheet_ = [{"dimension": d, "score": score if d == dimension else 0} for d in key_evaluation.DIMENSIONS]
    with pytest.raises(ValueError, match=key_evaluation.DIMENSION_TITLES[dimension].lower()):
        key_evaluation.report(sheet_, plan, SETTINGS["grades.min"])


@FAST
@given(grade=st.one_of(st.sampled_from(grading.GRADES), st.text(max_size=5)),
       by_grade=st.dictionaries(st.sampled_from(grading.GRADES),
                                st.one_of(st.sampled_from(key_evaluation.RESULTS), st.text(max_size=5))))
def test_a_grade_proposes_a_known_result_or_the_setting_is_refused(grade, by_grade):
    try:
        result = key_evaluation.proposal(grade, by_grade)
    except ValueError:
        assert grade not in grading.GRADES or by_grade.get(grade) not in key_evaluation.RESULTS
        return
    assert result == by_grade[grade] and result in key_evaluation.RESULTS
