"""Case state without the spec: a round trip mid-process keeps tasks and typed data."""
from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

from engine.demo import sample_goals
from engine.deployment import ModelFiles, parse_model
from engine.errors import DeploymentError
from engine.processes import PROCESSES_DIR
from engine.scripting import script_engine
from engine.serializer import STATE_FORMAT, _register_data_types, dump_state, load_state, stock_serializer
from storage import queries
from storage.models import Case

from interop_models import INTEROP_FOLDERS, interop_model

PARSED = parse_model(ModelFiles.from_folder(PROCESSES_DIR / "goal_review"))
DOMAIN_FUNCTIONS = ("mark_goals_in_review", "approve_goals", "reject_goals")


def engine_with_log(log: list | None = None):
    log = [] if log is None else log
    functions = {name: (lambda name=name: log.append(name)) for name in DOMAIN_FUNCTIONS}
    return script_engine(functions), log


def new_workflow(data: dict, log: list | None = None):
    engine, log = engine_with_log(log)
    workflow = BpmnWorkflow(PARSED.spec, PARSED.subprocess_specs, script_engine=engine)
    workflow.task_tree.data.update(data)
    workflow.do_engine_steps()
    return workflow, log


def ready(workflow):
    return workflow.get_tasks(state=TaskState.READY, manual=True)


def complete(workflow, data: dict) -> None:
    [task] = ready(workflow)
    task.data.update(data)
    task.run()
    workflow.do_engine_steps()


def typed_project() -> dict:
    return {"code": "EDU-2027-002", "name": "Smart classroom renovation", "is_key": True,
            "amount": Decimal("6500000.00"), "year": 2027}


def test_round_trip_mid_process_keeps_tasks_and_typed_data():
    workflow, log = new_workflow({"project": typed_project(), "deadline": date(2027, 3, 31),
                                  "requested_at": datetime(2026, 11, 2, 9, 30, 15), "share": Decimal("0.125")})
    complete(workflow, sample_goals("Smart classroom renovation"))
    assert [t.task_spec.name for t in ready(workflow)] == ["competent_check"]

    state = dump_state(workflow)
    restored = load_state(state, PARSED.spec, PARSED.subprocess_specs)

    assert {t.id: (t.task_spec.name, t.state) for t in restored.get_tasks()} == \
        {t.id: (t.task_spec.name, t.state) for t in workflow.get_tasks()}
    [task] = ready(restored)
    assert task.id == ready(workflow)[0].id
    data = task.data
    assert data == ready(workflow)[0].data
    assert data["project"]["amount"] == Decimal("6500000.00")
    assert type(data["project"]["amount"]) is Decimal
    assert str(data["project"]["amount"]) == "6500000.00"          # the scale survives too
    assert type(data["deadline"]) is date and data["deadline"] == date(2027, 3, 31)
    assert type(data["requested_at"]) is datetime and data["requested_at"] == datetime(2026, 11, 2, 9, 30, 15)
    assert type(data["share"]) is Decimal and data["share"] == Decimal("0.125")
    assert data["indicators"] == sample_goals("Smart classroom renovation")["indicators"]
    assert dump_state(restored) == state

    # The restored case runs on: a return at the competent check goes back to the unit.
    restored.script_engine, restored_log = engine_with_log()
    complete(restored, {"decision": "return", "comment": "Add a cost indicator."})
    [back] = ready(restored)
    assert back.task_spec.name == "compile_goals"
    assert back.data["returned_from"] == "competent_check"
    assert back.data["project"]["amount"] == Decimal("6500000.00")
    assert log == ["mark_goals_in_review"] and restored_log == []


def test_round_trip_to_the_end_of_a_key_project():
    workflow, log = new_workflow({"project": typed_project()})
    steps = [sample_goals("x"), {"decision": "approve"}, {"decision": "approve", "grade": "good"},
             {"decision": "approve"}, {"decision": "approve"}, {"decision": "approve"}]
    names = []
    for data in steps:
        workflow = load_state(dump_state(workflow), PARSED.spec, PARSED.subprocess_specs)
        workflow.script_engine, _ = engine_with_log(log)
        names.append(ready(workflow)[0].task_spec.name)
        complete(workflow, data)
    assert names == ["compile_goals", "competent_check", "preliminary_review", "re_examination",
                     "third_party_review", "final_review"]
    restored = load_state(dump_state(workflow), PARSED.spec, PARSED.subprocess_specs)
    assert restored.is_completed()
    assert log == ["mark_goals_in_review", "approve_goals"]


def test_saved_state_does_not_contain_the_spec():
    # Plain data only: the stock serializer knows no Decimal.
    workflow, _ = new_workflow({"project": {"code": "EDU-2027-001", "is_key": False, "amount": "1200000.00"}})
    complete(workflow, sample_goals("Campus safety upgrade"))
    ours = dump_state(workflow)
    stock = stock_serializer().serialize_json(workflow)
    saved = json.loads(ours)
    assert saved["format"] == STATE_FORMAT
    assert "spec" not in saved and "subprocess_specs" not in saved
    assert "spec" in json.loads(stock)
    for spec_only_text in ("Compile the performance goals of", "goals.schema.json", "returned_from == 'final_review'"):
        assert spec_only_text not in ours
        assert spec_only_text in stock
    assert len(ours) * 3 < len(stock), (len(ours), len(stock))


def test_stock_serializer_handles_the_same_data_as_dump_state():
    workflow, _ = new_workflow({"project": typed_project(), "deadline": date(2027, 3, 31)})
    stock = stock_serializer().serialize_json(workflow)
    assert len(dump_state(workflow)) * 3 < len(stock)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format="perfbudget-0"), "unknown case state format 'perfbudget-0'"),
    (lambda d: d.pop("format"), "unknown case state format None"),
    (lambda d: d.update(format=1), "unknown case state format 1"),
])
def test_a_state_in_another_format_is_refused(change, message):
    workflow, _ = new_workflow({"project": typed_project()})
    saved = json.loads(dump_state(workflow))
    change(saved)
    with pytest.raises(ValueError) as err:
        load_state(json.dumps(saved), PARSED.spec, PARSED.subprocess_specs)
    assert str(err.value) == message


def test_stock_serializer_output_is_refused():
    workflow, _ = new_workflow({"project": {"code": "EDU-2027-001", "is_key": False}})
    with pytest.raises(ValueError, match="unknown case state format None"):
        load_state(stock_serializer().serialize_json(workflow), PARSED.spec, PARSED.subprocess_specs)


def test_a_stored_case_state_loads_with_its_versions_spec(demo_core, actor, project_id):
    unit = actor("school_unit")
    case = demo_core.cases.start(unit, "goal_review", project_id("EDU-2027-001"))
    task = demo_core.reads.inbox(unit)[0][0]
    demo_core.cases.complete(unit, task["id"], sample_goals("Campus safety upgrade"))
    with demo_core.db.reading() as s:
        row = s.get(Case, case.id)
        state, version_id = row.state, row.process_version_id
        [open_task] = queries.open_tasks_of_case(s, case.id)
    saved = json.loads(state)
    assert saved["format"] == STATE_FORMAT and "spec" not in saved
    loaded = demo_core.specs.get(version_id)
    workflow = load_state(state, loaded.model.spec, loaded.model.subprocess_specs)
    [task] = ready(workflow)
    assert str(task.id) == open_task.spiff_task_id
    assert task.task_spec.name == open_task.step == "competent_check"
    amount = task.data["project"]["amount"]
    assert type(amount) is Decimal and amount == Decimal("1200000.00")
    assert task.data["annual_goal"] == sample_goals("Campus safety upgrade")["annual_goal"]


# ---- the same state as SpiffWorkflow's own converters ---------------------------------------

class _SpiffConvertersWithoutSpec(BpmnWorkflowConverter):
    """The reference: SpiffWorkflow's converters for the workflow, its subprocesses and every
    task, only without the spec (what engine.serializer did before its tasks got a faster path)."""

    def to_dict(self, workflow):
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct, spec=None, subprocess_specs=None):
        from uuid import UUID
        workflow = self.target_class(spec, subprocess_specs or {}, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


def _reference():
    config = dict(SPIFF_CONFIG)
    config[BpmnWorkflow] = _SpiffConvertersWithoutSpec
    registry = BpmnWorkflowSerializer.configure(config)
    _register_data_types(registry)
    return BpmnWorkflowSerializer(registry)


REFERENCE = _reference()


def reference_dump(workflow) -> str:
    REFERENCE.registry._encoder_mode = True
    try:
        dct = REFERENCE.to_dict(workflow)
    finally:
        REFERENCE.registry._encoder_mode = False
    dct["format"] = STATE_FORMAT
    return json.dumps(dct, cls=REFERENCE._encoder_cls, separators=(",", ":"))


def reference_load(state: str, spec, subprocess_specs):
    dct = json.loads(state)
    dct.pop("format")
    return REFERENCE.registry.restore(dct, spec=spec, subprocess_specs=subprocess_specs)


def _tasks(workflow) -> dict:
    return {task.id: (task.task_spec.name, task.state, task._parent, task._children, task.triggered,
                      task.last_state_change, task.internal_data, task.data)
            for task in workflow.get_tasks()}


def assert_same_as_reference(workflow, spec, subprocess_specs) -> str:
    state = dump_state(workflow)
    assert state == reference_dump(workflow)
    loaded = load_state(state, spec, subprocess_specs)
    assert _tasks(loaded) == _tasks(reference_load(state, spec, subprocess_specs)) == _tasks(workflow)
    assert loaded.subprocesses.keys() == workflow.subprocesses.keys()
    assert reference_dump(loaded) == state
    assert dump_state(reference_load(state, spec, subprocess_specs)) == state
    return state


def test_goal_review_states_are_what_spiffworkflows_converters_write_and_read():
    workflow, _ = new_workflow({"project": typed_project(), "deadline": date(2027, 3, 31),
                                "requested_at": datetime(2026, 11, 2, 9, 30, 15)})
    steps = [sample_goals("x"), {"decision": "return", "comment": "Add a cost indicator."}, sample_goals("x"),
             {"decision": "approve"}, {"decision": "approve", "grade": "good"}, {"decision": "approve"},
             {"decision": "approve"}, {"decision": "approve"}]
    for data in steps:
        state = assert_same_as_reference(workflow, PARSED.spec, PARSED.subprocess_specs)
        workflow = load_state(state, PARSED.spec, PARSED.subprocess_specs)
        workflow.script_engine, _ = engine_with_log()
        [task] = ready(workflow)
        task.data.update(data)
        if data.get("decision") == "return":
            del task.data["deadline"]       # a deletion in the saved delta, too
        task.run()
        workflow.do_engine_steps()
    assert workflow.is_completed()
    final = json.loads(assert_same_as_reference(workflow, PARSED.spec, PARSED.subprocess_specs))
    assert any("deadline" in task["delta"].get("deletions", ()) for task in final["tasks"].values())


def _foreign_states():
    """Each foreign model that parses, run step by step with a plain script engine (completing
    the first ready manual task each time, with typed data), as (name, parsed model, workflow)
    at every step until it ends, waits or fails."""
    for index, folder in enumerate(INTEROP_FOLDERS):
        try:
            parsed = parse_model(interop_model(index, folder))
        except DeploymentError:
            continue
        workflow = BpmnWorkflow(parsed.spec, parsed.subprocess_specs, script_engine=PythonScriptEngine())
        for step in range(8):
            try:
                workflow.do_engine_steps()
            except Exception:       # a foreign script or service this plain engine cannot run
                break
            yield folder.name, parsed, workflow
            manual = workflow.get_tasks(state=TaskState.READY, manual=True)
            if not manual:
                break
            manual[0].data.update({f"step_{step}": {"amount": Decimal("12.50"), "due": date(2027, 1, step + 1)}})
            try:
                manual[0].run()
            except Exception:
                break


def test_foreign_models_states_are_what_spiffworkflows_converters_write_and_read():
    seen, with_subprocesses = 0, 0
    for name, parsed, workflow in _foreign_states():
        state = assert_same_as_reference(workflow, parsed.spec, parsed.subprocess_specs)
        seen += 1
        with_subprocesses += bool(json.loads(state)["subprocesses"])
    # Enough states, some with subprocesses and call activities, to mean something.
    assert seen > 80 and with_subprocesses >= 5, (seen, with_subprocesses)
