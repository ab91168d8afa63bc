"""A saved state leaves out the oldest finished history (engine.state_history), and the engine
does the same with it as with the whole tree.

Each model below is run twice, saved and loaded at every step: once with every task kept, once
with as little kept as the rules allow (`kept=0`). At every step the two runs must show the
same live tasks with the same data, the same workflow data, the same end and the same steps
done, and the domain functions must be called alike."""
from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.util.task import TaskState

from engine import state_history
from engine.demo import sample_goals
from engine.deployment import ModelFiles, parse_model
from engine.errors import DeploymentError
from engine.processes import PROCESSES_DIR
from engine.scripting import script_engine
from engine.serializer import dump_state, load_state, pruned_steps_of

from interop_models import INTEROP_FOLDERS, interop_model

MODELS = Path(__file__).parent / "models"
GOAL_REVIEW = parse_model(ModelFiles.from_folder(PROCESSES_DIR / "goal_review"))
RETURN_LOOPS = parse_model(ModelFiles.from_folder(MODELS / "return_loops"))
GOAL_FUNCTIONS = ("mark_goals_in_review", "approve_goals", "reject_goals")


def _live(workflow) -> list:
    """The unfinished tasks, as what the engine will work on: spec, state and data."""
    return sorted((task.task_spec.name, task.state, json.dumps(task.data, sort_keys=True, default=str))
                  for task in workflow.get_tasks(state=TaskState.NOT_FINISHED_MASK))


def _steps_done(workflow) -> set:
    done = {task.task_spec.bpmn_id for task in workflow.get_tasks(state=TaskState.COMPLETED)
            if getattr(task.task_spec, "bpmn_id", None)}
    for flow in (workflow, *workflow.subprocesses.values()):
        done |= pruned_steps_of(flow)
    return done


def _snapshot(workflow) -> tuple:
    return (_live(workflow), json.dumps(workflow.data, sort_keys=True, default=str), workflow.is_completed(),
            _steps_done(workflow))


def run_case(parsed, start_data: dict, decide, engine_factory, kept, steps: int = 80):
    """Run a case to its end (or `steps` user steps), saving it with `kept` and loading it again
    before every step; the first ready user task by step name is completed with what `decide`
    gives. Returns each step's snapshot, the engine's log and the largest saved task count."""
    engine, log = engine_factory()
    workflow = BpmnWorkflow(parsed.spec, parsed.subprocess_specs, script_engine=engine)
    workflow.task_tree.data.update(start_data)
    workflow.do_engine_steps()
    trace, largest, counts = [], 0, {}
    for _ in range(steps):
        state = dump_state(workflow, kept=kept)
        saved = json.loads(state)
        largest = max(largest, len(saved["tasks"]) + sum(len(s["tasks"]) for s in saved["subprocesses"].values()))
        workflow = load_state(state, parsed.spec, parsed.subprocess_specs)
        workflow.script_engine = engine
        trace.append(_snapshot(workflow))
        ready = sorted(workflow.get_tasks(state=TaskState.READY, manual=True), key=lambda t: t.task_spec.name)
        if not ready:
            break
        task = ready[0]
        name = task.task_spec.name
        counts[name] = counts.get(name, 0) + 1
        task.data.update(decide(name, counts[name]))
        try:
            task.run()
            workflow.do_engine_steps()
        except Exception as exc:        # a foreign model's script: both runs must fail alike
            trace.append(("failed", type(exc).__name__, str(exc)))
            break
    return trace, log, largest


def _goal_engine():
    log = []
    return script_engine({name: (lambda name=name: log.append(name)) for name in GOAL_FUNCTIONS}), log


def _goal_decisions(returns: int):
    """Return the goals `returns` times at the competent check and twice at the final review,
    then approve all the way."""
    def decide(step: str, n: int) -> dict:
        if step == "compile_goals":
            goals = sample_goals("Campus safety upgrade")
            goals["annual_goal"] += f" (version {n})"
            return goals
        if step == "competent_check" and n <= returns:
            return {"decision": "return", "comment": f"Round {n}: add a cost indicator."}
        if step == "final_review" and n <= 2:
            return {"decision": "return", "comment": "Tighten the targets."}
        if step == "preliminary_review":
            return {"decision": "approve", "grade": "good"}
        return {"decision": "approve"}
    return decide


@pytest.mark.parametrize("key", [False, True])
def test_a_goal_review_sent_round_many_times_runs_alike_on_a_shortened_state(key):
    project = {"code": "EDU-2027-002", "name": "Smart classroom renovation", "is_key": key,
               "amount": Decimal("6500000.00"), "year": 2027}
    start = {"project": project, "deadline": date(2027, 3, 31)}
    whole, whole_log, whole_size = run_case(GOAL_REVIEW, start, _goal_decisions(12), _goal_engine, kept=None)
    short, short_log, short_size = run_case(GOAL_REVIEW, start, _goal_decisions(12), _goal_engine, kept=0)
    assert whole[-1][2] is True, "the case did not reach its end"
    assert short == whole
    assert short_log == whole_log and whole_log[-1] == "approve_goals"
    # it was shortened: the whole tree passes 60 tasks, the shortened one stays at a handful
    assert whole_size > 60 and short_size < 15, (whole_size, short_size)


def _loop_decisions(step: str, n: int) -> dict:
    if step == "prepare":
        return {"redo": n <= 6, "want_b": False}
    if step == "draft":
        return {"redo": n % 4 != 0, "text": f"draft {n}"}
    if step == "review":
        return {"redo": n <= 4, "want_b": n % 2 == 1}
    return {step: n}


def _plain_engine():
    return PythonScriptEngine(), []


def test_loops_through_sub_processes_joins_choices_and_timers_run_alike_on_a_shortened_state():
    whole, _, whole_size = run_case(RETURN_LOOPS, {}, _loop_decisions, _plain_engine, kept=None)
    short, _, short_size = run_case(RETURN_LOOPS, {}, _loop_decisions, _plain_engine, kept=0)
    assert whole[-1][2] is True, "the case did not reach its end"
    assert short == whole
    # The plain loop and the sub-process's inner loop were cut; past the first parallel split
    # (and the sub-process task, the timer's split) the tree is kept as it is.
    assert short_size < whole_size - 10, (whole_size, short_size)


def test_the_default_keeps_recent_history_and_cuts_only_long_stretches():
    start = {"project": {"code": "EDU-2027-002", "name": "x", "is_key": False,
                         "amount": Decimal("100.00"), "year": 2027}}
    once, _, once_size = run_case(GOAL_REVIEW, start, _goal_decisions(1), _goal_engine,
                                  kept=state_history.KEPT)
    whole_once, _, whole_once_size = run_case(GOAL_REVIEW, start, _goal_decisions(1), _goal_engine, kept=None)
    assert once_size == whole_once_size     # returned once: nothing is left out
    many, _, many_size = run_case(GOAL_REVIEW, start, _goal_decisions(30), _goal_engine, kept=state_history.KEPT)
    whole_many, _, whole_many_size = run_case(GOAL_REVIEW, start, _goal_decisions(30), _goal_engine, kept=None)
    assert many == whole_many
    # kept: the root, the last `KEPT` finished tasks, and the live part (the ready task and the
    # engine's predicted rest of the process, about a dozen tasks)
    assert whole_many_size > 120 and many_size <= state_history.KEPT + 15, (whole_many_size, many_size)


def _foreign_decisions(step: str, n: int) -> dict:
    return {f"{step}_{n}": {"amount": Decimal("12.50"), "due": date(2027, 1, min(n, 28))}}


def test_foreign_models_run_alike_on_a_shortened_state():
    compared, shortened = 0, 0
    for index, folder in enumerate(INTEROP_FOLDERS):
        try:
            parsed = parse_model(interop_model(index, folder))
        except DeploymentError:
            continue
        try:
            whole, _, whole_size = run_case(parsed, {}, _foreign_decisions, _plain_engine, kept=None, steps=30)
        except Exception:       # a model this plain engine cannot even start
            continue
        short, _, short_size = run_case(parsed, {}, _foreign_decisions, _plain_engine, kept=0, steps=30)
        assert short == whole, folder.name
        compared += 1
        shortened += short_size < whole_size
    assert compared > 30 and shortened >= 5, (compared, shortened)


@pytest.mark.parametrize("folder", sorted(p.name for p in MODELS.iterdir() if p.is_dir()))
def test_the_test_models_run_alike_on_a_shortened_state(folder):
    # parallel_checks branches at its start; with one branch done and the other live, nothing
    # from the split down may be left out. (The rules refuse it twice over: a parallel gateway is
    # not a plain task, and the split has two children. SpiffWorkflow refuses the one shape that
    # would give a plain task two children, a task with two outgoing flows.)
    try:
        parsed = parse_model(ModelFiles.from_folder(MODELS / folder))
    except DeploymentError as exc:
        pytest.skip(f"{folder} does not deploy on its own: {exc}")
    whole, _, _ = run_case(parsed, {}, _foreign_decisions, _plain_engine, kept=None, steps=30)
    short, _, _ = run_case(parsed, {}, _foreign_decisions, _plain_engine, kept=0, steps=30)
    assert short == whole
