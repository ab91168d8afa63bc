"""How much of a case's finished history its saved state keeps.

SpiffWorkflow keeps every task a case has run in its task tree, so a case sent round a return
loop fifty times carries fifty rounds of finished tasks, and loading, running and saving it
grow with every round. Who did what and when is already in the audit log; the tree only needs
what the engine may still read.

So the saved state leaves out the oldest finished tasks, under strict conditions that keep the
engine's behaviour the same:

- only the straight start of the tree: tasks, from the root down, that are completed and have
  exactly one child (nothing branches there, so nothing else hangs from them);
- only task types that no later task looks back at: plain activities, exclusive gateways and
  simple events. Joins and parallel or inclusive gateways (which look for earlier instances
  of themselves), boundary-event and start-event splits, multi-instance and looping tasks and
  sub-processes (whose own state is keyed by their task) end the stretch;
- never the workflow's last completed task, and always the most recent `KEPT` tasks of the
  stretch, so what is shown of recent rounds (a task page's data, the previous reviewer's
  step) is read from the tree as before. A case that is not sent round and round never
  reaches that many and is saved whole.

The steps of the tasks left out are remembered (`pruned_steps`), so the diagram still marks
them as done.
"""
from __future__ import annotations

from SpiffWorkflow.bpmn.specs.mixins import (ExclusiveGatewayMixin, ManualTaskMixin, NoneTaskMixin,
                                             ScriptTaskMixin, ServiceTaskMixin, UserTaskMixin)
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import (IntermediateCatchEvent,
                                                                       IntermediateThrowEvent,
                                                                       ReceiveTask, SendTask)
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.dmn.specs.business_rule_task_mixin import BusinessRuleTaskMixin
from SpiffWorkflow.util.task import TaskState

# Finished tasks kept above the live part of the tree: a goal review's return loop is four
# tasks, so the last five rounds. A case that runs straight through has fewer.
KEPT = 20

_PLAIN = (UserTaskMixin, ManualTaskMixin, NoneTaskMixin, ScriptTaskMixin, ServiceTaskMixin,
          BusinessRuleTaskMixin, ExclusiveGatewayMixin, StartEvent, IntermediateCatchEvent,
          IntermediateThrowEvent, SendTask, ReceiveTask)
# Looping and multi-instance activities are built on the activity mixins too; their spec class
# is their own (StandardLoopTask, ...), so the test is on the exact mixin set of the class.
_NOT_PLAIN_NAMES = ("MultiInstance", "LoopTask", "SubWorkflow", "CallActivity", "Subprocess")


def _is_plain(spec) -> bool:
    cls = type(spec)
    if any(part in cls.__name__ for part in _NOT_PLAIN_NAMES):
        return False
    return isinstance(spec, _PLAIN)


def prunable(workflow, kept: int = KEPT) -> list:
    """The tasks of a (sub)workflow that its saved state may leave out, oldest first: the
    straight finished start of its tree, less the `kept` most recent of it. The first task
    kept after them then hangs from the root."""
    if workflow.completed:      # set by the engine (and by is_completed()); a finished case is saved whole
        return []
    tasks, last = workflow.tasks, workflow.last_task
    subprocess_tasks = getattr(workflow.top_workflow, "subprocesses", {})
    stretch = []
    node = workflow.task_tree
    while len(node._children) == 1:
        child = tasks.get(node._children[0])
        if (child is None or child._state != TaskState.COMPLETED or len(child._children) != 1
                or child is last or child.id in subprocess_tasks or not _is_plain(child.task_spec)):
            break
        stretch.append(child)
        node = child
    return stretch[:len(stretch) - kept] if len(stretch) > kept else []
