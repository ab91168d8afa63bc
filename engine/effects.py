"""Domain functions that diagrams call from script tasks (e.g. `approve_goals()`).

A script runs inside the engine step, before anything is saved; so a call only records the
effect with a snapshot of the task data, and the case service applies the recorded effects
to the domain tables in the same transaction as the workflow state.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

from .scripting import BASE_GLOBALS, RestrictedEnvironment


@dataclass
class Effect:
    name: str
    data: dict


@dataclass
class EffectRecorder:
    names: tuple[str, ...]
    pending: list[Effect] = field(default_factory=list)
    environment: RestrictedEnvironment | None = None

    def functions(self) -> dict[str, Callable]:
        return {name: self._recorder(name) for name in self.names}

    def _recorder(self, name: str) -> Callable:
        def record() -> None:
            context = self.environment.current_context if self.environment else None
            snapshot = {k: copy.deepcopy(v) for k, v in (context or {}).items()
                        if k not in BASE_GLOBALS and not callable(v) and not k.startswith("_")}
            self.pending.append(Effect(name, snapshot))
        record.__name__ = name
        return record
