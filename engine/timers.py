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
