"""Scripts and conditions from diagrams: they work on task data, and they cannot escape the
RestrictedPython sandbox; a failing script is an exception, never a crash or a half-saved case."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException

from engine.demo import sample_goals
from engine.deployment import ModelFiles, parse_model
from engine.effects import EffectRecorder
from engine.errors import WorkflowError
from engine.processes import PROCESSES_DIR
from engine.scripting import (
    BASE_GLOBALS, SAFE_BUILTINS, RestrictedEnvironment, ScriptLimitExceeded, ScriptRefused, check_expression,
    check_script,
    script_engine,
)


def task_data() -> dict:
    return {
        "decision": "approve",
        "project": {"code": "EDU-2027-002", "is_key": True, "amount": Decimal("6500000.00")},
        "indicators": [{"name": "Sites", "weight": 30}, {"name": "Rate", "weight": 20},
                       {"name": "Satisfaction", "weight": 50}],
        "deadline": date(2027, 12, 31),
        "count": 1,
    }


# ---- conditions ----------------------------------------------------------------------------

@pytest.mark.parametrize("expression, expected", [
    ("decision == 'return'", False),
    ("decision != 'return' and project['is_key']", True),
    ("project['amount'] >= Decimal('5000000')", True),
    ("project['amount'] * 2", Decimal("13000000.00")),
    ("sum(i['weight'] for i in indicators)", 100),
    ("[i['name'] for i in indicators if i['weight'] > 25]", ["Sites", "Satisfaction"]),
    ("deadline - timedelta(days=30)", date(2027, 12, 1)),
    ("deadline > date(2027, 6, 30)", True),
    ("len(indicators) == 3 and max(i['weight'] for i in indicators) == 50", True),
    ("sorted(i['weight'] for i in indicators)[0]", 20),
    ("'%s-%d' % (project['code'], count)", "EDU-2027-002-1"),
    ("(lambda w: w * 2)(count)", 2),
])
def test_conditions_evaluate_on_task_data(expression, expected):
    data = task_data()
    assert RestrictedEnvironment().evaluate(expression, data) == expected
    assert data == task_data()     # evaluating never changes the data


def test_a_condition_with_an_unknown_name_raises_name_error():
    with pytest.raises(NameError):
        RestrictedEnvironment().evaluate("returned_from == 'final_review'", {})


# ---- scripts -------------------------------------------------------------------------------

def test_scripts_read_and_write_task_data():
    data = task_data()
    RestrictedEnvironment().execute(
        "total = sum(i['weight'] for i in indicators)\n"
        "count += 1\n"
        "names = [i['name'].upper() for i in indicators]\n"
        "indicators.append({'name': 'Cost', 'weight': 0})\n"
        "half = project['amount'] / 2\n"
        "review_by = deadline - timedelta(days=1)\n"
        "def weight_of(name):\n"
        "    return [i['weight'] for i in indicators if i['name'] == name][0]\n"
        "sites = weight_of('Sites')\n"
        "del decision\n", data)
    expected = task_data()
    del expected["decision"]
    expected["indicators"].append({"name": "Cost", "weight": 0})
    expected.update(total=100, count=2, names=["SITES", "RATE", "SATISFACTION"], half=Decimal("3250000.00"),
                    review_by=date(2027, 12, 30), sites=30)
    # Helpers defined by the script and the sandbox's own names are not left in the data.
    assert data == expected


def test_scripts_call_domain_functions_which_see_the_running_task_data():
    recorder = EffectRecorder(("approve_goals",))
    environment = RestrictedEnvironment(recorder.functions())
    recorder.environment = environment
    data = {"annual_goal": "Renovate 40 classrooms", "indicators": [{"name": "Rooms"}]}
    environment.execute("status = 'approved'\napprove_goals()", data)
    assert [(e.name, e.data) for e in recorder.pending] == [
        ("approve_goals", {"annual_goal": "Renovate 40 classrooms", "indicators": [{"name": "Rooms"}],
                           "status": "approved"})]
    # The effect keeps a snapshot: later changes to the data do not alter it.
    data["indicators"][0]["name"] = "changed"
    assert recorder.pending[0].data["indicators"] == [{"name": "Rooms"}]
    assert data == {"annual_goal": "Renovate 40 classrooms", "indicators": [{"name": "changed"}],
                    "status": "approved"}
    assert environment.current_context is None


def test_task_data_that_hides_a_domain_function_is_refused():
    environment = RestrictedEnvironment({"approve_goals": lambda: None})
    data = {"approve_goals": "yes"}
    with pytest.raises(ValueError, match="approve_goals"):
        environment.execute("x = 1", data)
    assert data == {"approve_goals": "yes"}


def test_task_data_named_like_a_sandbox_helper_survives_a_script():
    """Data wins over the sandbox's helper names, in scripts as in conditions."""
    data = {"date": "2027-03-31", "Decimal": "12.50", "timedelta": 3, "n": 1}
    RestrictedEnvironment().execute("n = n + 1\nseen = date\ndays = timedelta * 2", data)
    assert data == {"date": "2027-03-31", "Decimal": "12.50", "timedelta": 3, "n": 2, "seen": "2027-03-31",
                    "days": 6}
    assert RestrictedEnvironment().evaluate("date", {"date": "2027-03-31"}) == "2027-03-31"


def test_a_failing_script_changes_no_names_in_the_data():
    data = {"n": 1}
    with pytest.raises(ZeroDivisionError):
        RestrictedEnvironment({"helper": lambda: 1}).execute("m = 2\ndel n\nx = 1 / 0", data)
    assert data == {"n": 1}


# ---- sandbox escapes -----------------------------------------------------------------------

REFUSED_AT_COMPILE = [
    pytest.param("import os", id="import"),
    pytest.param("from os import system", id="from-import"),
    pytest.param("import subprocess as s\ns.run(['true'])", id="import-subprocess"),
    pytest.param("if count:\n    import os", id="nested-import"),
    pytest.param("def f():\n    from os import path\n    return path\nx = f()", id="import-in-function"),
    pytest.param("x = __import__('os')", id="dunder-import"),
    pytest.param("x = ().__class__.__bases__[0].__subclasses__()", id="dunder-attributes"),
    pytest.param("x = [c for c in ().__class__.__base__.__subclasses__()]", id="subclasses-walk"),
    pytest.param("x = eval('1 + 1')", id="eval"),
    pytest.param("exec('x = 1')", id="exec"),
    pytest.param("__builtins__['open'] = None", id="write-builtins-item"),
    pytest.param("__builtins__ = {}", id="rebind-builtins"),
    pytest.param("x = __builtins__", id="read-builtins"),
    pytest.param("x = f'{count.__class__}'", id="f-string-dunder"),
    pytest.param("g = (i for i in [1])\nx = g.gi_frame.f_globals", id="generator-frame"),
    pytest.param("try:\n    1 / 0\nexcept Exception as e:\n    x = e.__traceback__.tb_frame", id="traceback-frame"),
    pytest.param("_getattr_ = None", id="rebind-guard"),
    pytest.param("x = (1).__add__", id="dunder-method"),
    pytest.param("x := 1", id="syntax-error"),
]


@pytest.mark.parametrize("script", REFUSED_AT_COMPILE)
def test_escapes_are_refused_when_compiled(script):
    with pytest.raises(ScriptRefused):
        check_script(script)
    data = {"count": 1}
    with pytest.raises(ScriptRefused):
        RestrictedEnvironment().execute(script, data)
    assert data == {"count": 1}


@pytest.mark.parametrize("script, error", [
    pytest.param("f = open(PATH, 'w')\nf.write('pwned')", NameError, id="open"),
    pytest.param("with open(PATH, 'w') as f:\n    f.write('pwned')", NameError, id="open-with"),
    pytest.param("x = compile('1', 's', 'eval')", NameError, id="compile"),
    pytest.param("x = getattr(count, '__class__')", NameError, id="getattr"),
    pytest.param("setattr(count, 'real', 2)", NameError, id="setattr"),
    pytest.param("x = globals()", NameError, id="globals"),
    pytest.param("x = locals()", NameError, id="locals"),
    pytest.param("x = vars()", NameError, id="vars"),
    pytest.param("x = dir()", NameError, id="dir"),
    pytest.param("x = type(count)", NameError, id="type"),
    pytest.param("x = id(count)", NameError, id="id"),
    pytest.param("class A:\n    pass", NameError, id="class-statement"),
    pytest.param("x = '{0.__class__}'.format(count)", NotImplementedError, id="format-dunder"),
    pytest.param("x = '{0.__class__.__base__}'.format_map({'0': count})", NotImplementedError, id="format-map"),
    pytest.param("x = str.format('{0.__class__}', count)", NotImplementedError, id="str-format-unbound"),
    pytest.param("Decimal.prec = 1", TypeError, id="attribute-write-on-class"),
    pytest.param("date.today = None", TypeError, id="attribute-write-on-date"),
    pytest.param("print('x')", NameError, id="print"),
])
def test_escapes_fail_safely_when_run(script, error, tmp_path):
    target = tmp_path / "pwned.txt"
    data = {"count": 1, "PATH": str(target)}
    builtins_before = dict(SAFE_BUILTINS)
    globals_before = dict(BASE_GLOBALS)
    with pytest.raises(error):
        RestrictedEnvironment().execute(script, data)
    assert not target.exists()
    assert data == {"count": 1, "PATH": str(target)}
    assert SAFE_BUILTINS == builtins_before
    assert BASE_GLOBALS == globals_before
    # The sandbox still works for the next script.
    after = {"count": 1}
    RestrictedEnvironment().execute("count += 1", after)
    assert after == {"count": 2}


@pytest.mark.parametrize("expression, error", [
    ("().__class__", ScriptRefused),
    ("decision.__class__.__mro__", ScriptRefused),
    ("__import__('os').system('true')", ScriptRefused),
    ("open('/etc/passwd').read()", NameError),
    ("'{0.__globals__}'.format(decision)", NotImplementedError),
    ("getattr(decision, 'upper')()", NameError),
    ("globals()", NameError),
])
def test_condition_escapes_fail_safely(expression, error):
    with pytest.raises(error):
        RestrictedEnvironment().evaluate(expression, {"decision": "approve"})
    if error is ScriptRefused:
        with pytest.raises(ScriptRefused):
            check_expression(expression)


def test_a_script_cannot_replace_a_sandbox_helper_for_later_scripts():
    first = {}
    RestrictedEnvironment().execute("Decimal = str\ndate = None", first)
    assert BASE_GLOBALS["Decimal"] is Decimal
    later = {}
    RestrictedEnvironment().execute("x = Decimal('1.5') + Decimal('1')\ny = date(2027, 1, 1)", later)
    assert later == {"x": Decimal("2.5"), "y": date(2027, 1, 1)}


# ---- failures inside a running workflow ----------------------------------------------------

def test_a_failing_script_in_a_workflow_raises_a_workflow_exception():
    parsed = parse_model(ModelFiles.from_folder(PROCESSES_DIR / "goal_review"))
    # No domain functions: init_case's call to mark_goals_in_review() fails with a NameError.
    workflow = BpmnWorkflow(parsed.spec, parsed.subprocess_specs, script_engine=script_engine())
    with pytest.raises(SpiffWorkflowException) as err:
        workflow.do_engine_steps()
    assert "mark_goals_in_review" in str(err.value)
    assert err.value.task_spec.name == "init_case"


def _variant_with(old: bytes, new: bytes) -> ModelFiles:
    model = ModelFiles.from_folder(PROCESSES_DIR / "goal_review")
    assert old in model.files["goal_review.bpmn"]
    model.files["goal_review.bpmn"] = model.files["goal_review.bpmn"].replace(old, new)
    return model


def test_a_script_failing_at_start_leaves_no_case(demo_core, actor, project_id):
    row, created = demo_core.processes.deploy(_variant_with(
        b"returned_from = None\nmark_goals_in_review()",
        b"secret = open('/etc/passwd').read()\nmark_goals_in_review()"))
    assert created and row.version == 2
    with pytest.raises(WorkflowError) as err:
        demo_core.cases.start(actor("school_unit"), "goal_review", project_id("EDU-2027-001"))
    assert err.value.status == 422
    assert "open" in err.value.message
    assert demo_core.reads.cases(actor("supervisor")) == ([], 0)
    assert demo_core.reads.project(actor("supervisor"), project_id("EDU-2027-001"))["goals_status"] == "none"


def test_a_post_script_failing_at_completion_errors_the_case_and_keeps_the_submission(demo_core, actor, project_id):
    """The user did their part; the diagram failed after it. Their submission is kept and the
    case stops as errored for an administrator (tests/test_recovery.py retries it)."""
    demo_core.processes.deploy(_variant_with(
        b"returned_from = 'competent_check' if decision == 'return' else None",
        b"returned_from = open('/etc/passwd').read()"))
    unit, bureau, supervisor = actor("school_unit"), actor("edu_bureau"), actor("supervisor")
    case = demo_core.cases.start(unit, "goal_review", project_id("EDU-2027-001"))
    task = demo_core.reads.case(supervisor, case.id)["tasks"][0]
    demo_core.cases.complete(unit, task["id"], sample_goals("Campus safety upgrade"))
    before = demo_core.reads.case(supervisor, case.id)
    result = demo_core.cases.complete(bureau, before["tasks"][0]["id"], {"decision": "approve"})
    assert result.case.status == "error" and result.next_tasks == []
    after = demo_core.reads.case(supervisor, case.id)
    assert after["status"] == "error" and "open" in after["error"]
    assert after["current_steps"] == "Stopped at: Competent department check"
    assert after["tasks"] == [] and after["history"][-1]["action"] == "error"
    assert after["history"][-2]["data"] == {"decision": "approve"}


def test_timedelta_and_date_helpers_are_available_in_scripts():
    data = {"start": date(2027, 1, 1)}
    RestrictedEnvironment().execute("end = start + timedelta(days=364)", data)
    assert data == {"start": date(2027, 1, 1), "end": date(2027, 12, 31)}
    assert isinstance(BASE_GLOBALS["timedelta"](days=1), timedelta)


# ---- time, step and size limits ------------------------------------------------------------

@pytest.mark.parametrize("script, message", [
    pytest.param("while True:\n    count = 1", "steps", id="endless-loop"),
    pytest.param("for i in range(900000):\n    count = i", "steps", id="long-loop"),
    pytest.param("def f(n):\n    return f(n + 1) if n < 10 ** 9 else n\nx = f(0)", None, id="deep-recursion"),
    pytest.param("x = 'a' * (10 ** 8)", "sequence", id="huge-string"),
    pytest.param("x = [0] * 10 ** 7", "sequence", id="huge-list"),
    pytest.param("x = 'ab'\nx *= 10 ** 8", "sequence", id="huge-inplace"),
    pytest.param("x = 2 ** 10 ** 6", "exponent", id="huge-power"),
    pytest.param("x = 1 << 10 ** 7", "shift", id="huge-shift"),
    pytest.param("x = sum(range(10 ** 12))", "range", id="huge-range"),
    pytest.param("x = len(list(range(10 ** 9)))", "range", id="huge-range-list"),
])
def test_runaway_scripts_are_stopped_by_a_limit(script, message):
    data = {"count": 0}
    with pytest.raises((ScriptLimitExceeded, RecursionError)) as err:
        RestrictedEnvironment().execute(script, data)
    if message:
        assert message in str(err.value)
    assert data == {"count": 0}
    # The limits end with the script: ordinary code runs again at full speed.
    after = {"count": 1}
    RestrictedEnvironment().execute("count = sum(range(1000)) + len('ab' * 3) + 2 ** 10", after)
    assert after == {"count": 499500 + 6 + 1024}


@pytest.mark.parametrize("expression", ["'x' * 10 ** 9 == ''", "2 ** 10 ** 7 > 1", "sum(range(10 ** 10)) > 0",
                                        "[i for i in range(1000000) for j in range(1000000)]"])
def test_runaway_conditions_are_stopped_by_a_limit(expression):
    with pytest.raises(ScriptLimitExceeded):
        RestrictedEnvironment().evaluate(expression, {"decision": "approve"})


def test_a_runaway_script_in_a_case_is_stopped_and_errors_the_case(demo_core, actor, project_id):
    demo_core.processes.deploy(_variant_with(
        b"returned_from = 'competent_check' if decision == 'return' else None",
        b"returned_from = None\nwhile True:\n    returned_from = None"))
    unit, bureau, supervisor = actor("school_unit"), actor("edu_bureau"), actor("supervisor")
    case = demo_core.cases.start(unit, "goal_review", project_id("EDU-2027-001"))
    task = demo_core.reads.case(supervisor, case.id)["tasks"][0]
    demo_core.cases.complete(unit, task["id"], sample_goals("Campus safety upgrade"))
    before = demo_core.reads.case(supervisor, case.id)
    result = demo_core.cases.complete(bureau, before["tasks"][0]["id"], {"decision": "approve"})
    assert result.case.status == "error" and "stopped" in result.case.error_message
