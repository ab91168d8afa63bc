"""Case state without the spec.

SpiffWorkflow's stock serializer writes the whole parsed spec into every instance. A case
here always runs on one immutable deployed version whose parsed spec is cached, so the
saved state keeps only the running part and the spec is supplied again when it is loaded.
"""
from __future__ import annotations

import json
from contextvars import ContextVar
from datetime import date
from decimal import Decimal
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import (
    BpmnSubWorkflowConverter, BpmnWorkflowConverter, TaskConverter)
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

from . import state_history

STATE_FORMAT = "perfbudget-1"


class _Ids(dict):
    """Task id string -> UUID, each parsed once per load: an id appears three or four times in
    a state (as a key, as the task's id, in its parent's children, as its children's parent),
    and parsing them was a fifth of a load. Per call, so nothing of a case outlives its load."""

    def __missing__(self, key: str) -> UUID:
        value = self[key] = UUID(key)
        return value


class _Names(dict):
    """UUID -> its string, each printed once per save (the other way round)."""

    def __missing__(self, key: UUID) -> str:
        value = self[key] = str(key)
        return value


class _TaskConverter(TaskConverter):
    """SpiffWorkflow's task converter (data saved as a delta against the parent), the same
    dictionaries in and out, with each id parsed or printed once per load or save (`ids`,
    `names`: shared by the whole call) and without the registry's round trip for the empty
    internal data of most tasks."""

    def to_dict(self, task, names: _Names | None = None):
        names = _Names() if names is None else names
        parent = task.workflow.tasks.get(task._parent)
        if parent is None:
            data, delta = task.data, {}
        else:
            data, delta = {}, {"updates": DeepMerge.get_updated_keys(parent.data, task.data),
                               "deletions": DeepMerge.get_deleted_keys(parent.data, task.data)}
        return {
            "id": names[task.id],
            "parent": names[task._parent] if parent is not None else None,
            "children": [names[child] for child in task._children],
            "last_state_change": task.last_state_change,
            "state": task._state,
            "task_spec": task.task_spec.name,
            "triggered": task.triggered,
            "internal_data": self.registry.convert(task.internal_data) if task.internal_data else {},
            "data": data,
            "delta": delta,
        }

    def from_dict(self, dct, workflow, ids: _Ids | None = None):
        ids = _Ids() if ids is None else ids
        task_spec = workflow.spec.task_specs.get(dct["task_spec"])
        task = self.target_class(workflow, task_spec, state=dct["state"], id=ids[dct["id"]])
        parent_id = dct["parent"]
        task._parent = ids[parent_id] if parent_id is not None else None
        task._children = [ids[child] for child in dct["children"]]
        task.last_state_change = dct["last_state_change"]
        task.triggered = dct["triggered"]
        internal_data = dct["internal_data"]
        task.internal_data = self.registry.restore(internal_data) if internal_data else {}
        if isinstance(task_spec, CatchingEvent) and task.has_state(TaskState.WAITING):
            workflow.top_workflow.event_manager.add_task(task)
        delta = dct.get("delta")
        parent = workflow.tasks.get(task._parent) if delta else None
        if parent is not None:
            data = DeepMerge.merge({}, parent.data)
            updates = delta.get("updates")
            if updates:
                data.update(self.registry.restore(updates))
            for key in delta.get("deletions", ()):
                if key in data:
                    del data[key]
        else:
            data = self.registry.restore(dct["data"])
        task.data = data
        return task


class _TaskMappings:
    """A workflow's tasks to and from their mapping, straight through the task converter
    instead of the registry's typename dispatch (and its copy of each task's dictionary)."""

    def tasks_to_dict(self, tasks: dict, names: _Names, left_out: list | None = None) -> dict:
        """The tasks' mappings, less those `left_out` (the straight finished start of the tree,
        see engine.state_history): the first task kept after them then hangs from the root,
        with its data whole instead of as a delta against a parent that is not saved."""
        to_dict = self.registry.convert_to_dict["Task"]
        if not left_out:
            return {names[task_id]: to_dict(task, names=names) for task_id, task in tasks.items()}
        skipped = {task.id for task in left_out}
        out = {names[task_id]: to_dict(task, names=names) for task_id, task in tasks.items()
               if task_id not in skipped}
        root = out[names[left_out[0]._parent]]
        first = tasks[left_out[-1]._children[0]]
        root["children"] = [names[first.id]]
        out[names[first.id]].update(parent=root["id"], data=first.data, delta={})
        return out

    def tasks_from_dict(self, mapping: dict, workflow, ids: _Ids) -> dict:
        from_dict = self.registry.convert_from_dict["Task"].args[0]
        restore = self.registry.restore
        return {ids[task_id]: from_dict(dct, workflow=workflow, ids=ids) if dct.get("typename") == "Task"
                else restore(dct, workflow=workflow) for task_id, dct in mapping.items()}

    def common_to_dict(self, workflow) -> dict:
        """WorkflowConverter.to_dict, in the same key order, less the oldest finished history
        (engine.state_history); the steps that history went through are listed instead."""
        names = _Names()
        kept = _KEPT.get()
        left_out = state_history.prunable(workflow, kept) if kept is not None else []
        dct = {
            "data": self.registry.convert(self.registry.clean(workflow.data)),
            "correlations": workflow.correlations,
            "last_task": names[workflow.last_task.id] if workflow.last_task is not None else None,
            "success": workflow.success,
            "completed": workflow.completed,
            "tasks": self.tasks_to_dict(workflow.tasks, names, left_out),
            "root": names[workflow.task_tree.id],
        }
        steps = pruned_steps_of(workflow) | {task.task_spec.bpmn_id for task in left_out
                                             if getattr(task.task_spec, "bpmn_id", None)}
        if steps:
            dct["pruned_steps"] = sorted(steps)
        return dct

    def set_default_attributes(self, workflow, dct):
        super().set_default_attributes(workflow, dct)
        workflow.pruned_steps = frozenset(dct.get("pruned_steps", ()))


class _SubWorkflowConverter(_TaskMappings, BpmnSubWorkflowConverter):
    def to_dict(self, workflow):
        dct = self.common_to_dict(workflow)
        dct["parent_task_id"] = str(workflow.parent_task_id)
        dct["spec"] = workflow.spec.name
        return dct

    def from_dict(self, dct, task, top_workflow):
        spec = top_workflow.subprocess_specs.get(task.task_spec.spec)
        subprocess = self.target_class(spec, task.id, top_workflow, deserializing=True)
        ids = _Ids()
        subprocess.tasks = self.tasks_from_dict(dct["tasks"], subprocess, ids)
        subprocess.task_tree = subprocess.tasks.get(ids[dct["root"]])
        self.set_default_attributes(subprocess, dct)
        return subprocess


class SpeclessWorkflowConverter(_TaskMappings, BpmnWorkflowConverter):
    def to_dict(self, workflow):
        dct = self.common_to_dict(workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct, spec=None, subprocess_specs=None):
        workflow = self.target_class(spec, subprocess_specs or {}, deserializing=True)
        ids = _Ids()
        workflow.tasks = self.tasks_from_dict(dct["tasks"], workflow, ids)
        workflow.task_tree = workflow.tasks.get(ids[dct["root"]])
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


def task_in_workflow(workflow: BpmnWorkflow, spiff_task_id: str):
    """The task of the workflow or of one of its sub-processes with this id, or None (a task
    that a save left out as old history, see engine.state_history), where
    BpmnWorkflow.get_task_from_id raises."""
    task_id = UUID(spiff_task_id)
    task = workflow.tasks.get(task_id)
    if task is None:
        for subprocess in workflow.subprocesses.values():
            task = subprocess.tasks.get(task_id)
            if task is not None:
                break
    return task


def pruned_steps_of(workflow) -> frozenset:
    """The steps (BPMN ids) of the finished tasks that an earlier save of this (sub)workflow
    left out of its state."""
    return getattr(workflow, "pruned_steps", frozenset())


def _register_data_types(registry) -> None:
    # Form data carries dates and money; keep their types across a save.
    registry.register(date, lambda v: {"value": v.isoformat()}, lambda v: date.fromisoformat(v["value"]))
    registry.register(Decimal, lambda v: {"value": str(v)}, lambda v: Decimal(v["value"]))


def _make_serializer() -> BpmnWorkflowSerializer:
    config = dict(SPIFF_CONFIG)
    config[BpmnWorkflow] = SpeclessWorkflowConverter
    config[BpmnSubWorkflow] = _SubWorkflowConverter
    config[Task] = _TaskConverter
    registry = BpmnWorkflowSerializer.configure(config)
    _register_data_types(registry)
    return BpmnWorkflowSerializer(registry)


_SERIALIZER = _make_serializer()


# How many finished tasks a save keeps above the live part of each tree (None: all of them),
# for the converters below, which the registry calls without room for an argument. Per call
# and per thread.
_KEPT: ContextVar[int | None] = ContextVar("perfbudget_state_kept", default=state_history.KEPT)


def dump_state(workflow: BpmnWorkflow, kept: int | None = state_history.KEPT) -> str:
    """The state to save. The oldest finished history beyond `kept` tasks is left out (see
    engine.state_history); `kept=None` saves every task, as SpiffWorkflow's converters do."""
    registry = _SERIALIZER.registry
    registry._encoder_mode = True
    token = _KEPT.set(kept)
    try:
        dct = _SERIALIZER.to_dict(workflow)
    finally:
        _KEPT.reset(token)
        registry._encoder_mode = False
    dct["format"] = STATE_FORMAT
    return json.dumps(dct, cls=_SERIALIZER._encoder_cls, separators=(",", ":"))


def load_state(state: str, spec, subprocess_specs) -> BpmnWorkflow:
    dct = json.loads(state)
    fmt = dct.pop("format", None)
    if fmt != STATE_FORMAT:
        raise ValueError(f"unknown case state format {fmt!r}")
    return _SERIALIZER.registry.restore(dct, spec=spec, subprocess_specs=subprocess_specs)


def stock_serializer() -> BpmnWorkflowSerializer:
    """SpiffWorkflow's default serializer (spec embedded), for benchmarks and comparisons."""
    registry = BpmnWorkflowSerializer.configure(SPIFF_CONFIG)
    _register_data_types(registry)
    return BpmnWorkflowSerializer(registry)
