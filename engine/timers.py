"""When a case next needs the engine to run on its own: the earliest pending timer.

Kept in the indexed `cases.next_due_at` column so a worker finds due cases with one query
instead of loading workflows.
"""
from __future__ import annotations

from datetime import datetime, timezone


def _as_naive_utc(value) -> datetime | None:
    if isinstance(value, dict):          # cycle timers keep {'cycles', 'next', 'duration'}
        if value.get("cycles") == 0:
            return None
        value = value.get("next")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def next_due(workflow) -> datetime | None:
    moments = [m for event in workflow.waiting_events()
               if "Timer" in (event.event_type or "") or "Timer" in type(event).__name__
               if (m := _as_naive_utc(event.value)) is not None]
    return min(moments) if moments else None


# ---- the clock SpiffWorkflow's timers read ------------------------------------------------
#
# SpiffWorkflow's timer event definitions call `datetime.now(timezone.utc)` when a timer is
# entered (to turn "P30D" into a moment) and on every check. We swap the `datetime` name *in
# that one module* for a subclass whose now() asks the app's Clock, looked up in a ContextVar
# that `engine_clock()` sets only while our code runs the engine. Why this and not subclassed
# event definitions: those would need our own parser classes for start, intermediate and
# boundary events in both parsers and would bake a class into every deployed spec; the swap
# touches nothing that is stored, is thread- and context-local (two apps with two clocks in
# one process, as in tests, do not see each other's time), and outside engine_clock() it is
# the real time, exactly as before.
from contextlib import contextmanager  # noqa: E402
from contextvars import ContextVar  # noqa: E402

from SpiffWorkflow.bpmn.specs.event_definitions import timer as _spiff_timer  # noqa: E402

_engine_clock: ContextVar = ContextVar("perfbudget_engine_clock", default=None)


class _AnyDatetime(type):
    # The module also does isinstance(x, datetime) on values of the real class.
    def __instancecheck__(cls, obj):
        return isinstance(obj, datetime)


class _ClockDatetime(datetime, metaclass=_AnyDatetime):
    @classmethod
    def now(cls, tz=None):
        clock = _engine_clock.get()
        if clock is None:
            return datetime.now(tz)
        moment = clock.now().replace(tzinfo=timezone.utc)     # the Clock gives naive UTC
        return moment.astimezone(tz) if tz is not None else moment.astimezone().replace(tzinfo=None)


_spiff_timer.datetime = _ClockDatetime


@contextmanager
def engine_clock(clock):
    """Run the engine with its timers on this clock."""
    token = _engine_clock.set(clock)
    try:
        yield
    finally:
        _engine_clock.reset(token)


def waiting_timers(workflow) -> list[tuple[str, str]]:
    """(timer name, when) of every timer the workflow waits on; compared before and after a run
    to tell which fired."""
    return sorted((event.name or "", str(_as_naive_utc(event.value) or event.value))
                  for event in workflow.waiting_events()
                  if "Timer" in (event.event_type or ""))


def boundary_timer_due(task) -> datetime | None:
    """When a timer boundary event on this (ready) user task fires, the earliest if several.
    SpiffWorkflow runs an activity with boundary events under a BoundaryEventSplit whose
    other children are the waiting boundary events, each with its fire time once entered."""
    parent = task.parent
    if parent is None or type(parent.task_spec).__name__ != "BoundaryEventSplit":
        return None
    moments = [m for sibling in parent.children if sibling is not task
               if isinstance(getattr(sibling.task_spec, "event_definition", None), _spiff_timer.TimerEventDefinition)
               if (m := _as_naive_utc(sibling._get_internal_data("event_value"))) is not None]
    return min(moments) if moments else None


def due_in(expression, start: datetime) -> datetime | None:
    """`start` (naive UTC) plus an ISO 8601 duration ("P10D", "PT36H"); None if it is not one.
    Months and years count calendar months from the start, as SpiffWorkflow's timers do."""
    if not isinstance(expression, str) or not expression.upper().startswith("P"):
        return None
    try:
        parsed = _spiff_timer.TimerEventDefinition.parse_iso_duration(expression)
        aware = start.replace(tzinfo=timezone.utc)
        return start + _spiff_timer.TimerEventDefinition.get_timedelta_from_start(parsed, aware)
    except Exception:        # Spiff raises a bare Exception for a malformed duration
        return None
