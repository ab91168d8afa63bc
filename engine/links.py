"""The five links' domain modules, gathered for the case service.

Each module may define:
- EFFECT_HANDLERS: name -> handler(session, case, data, actor_id, now); diagrams call the
  name as a function, and the handler runs in the transaction that saves the case;
- START_GUARDS: process key -> guard(session, project, settings); raises to refuse a start;
- calculations(context) -> {name: function}: pure functions diagrams call for a value.
Adding a link means adding its module here, not editing the case service.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from . import campaigns, ex_ante, goals, key_evaluation, monitoring, rectification, spot_check

MODULES = (goals, ex_ante, rectification, monitoring, spot_check, key_evaluation, campaigns)


def _merged(attribute: str) -> dict:
    merged: dict = {}
    for module in MODULES:
        for name, value in getattr(module, attribute, {}).items():
            if name in merged:
                raise RuntimeError(f"{attribute} '{name}' is defined twice ({module.__name__})")
            merged[name] = value
    return merged


EFFECT_HANDLERS = _merged("EFFECT_HANDLERS")
START_GUARDS = _merged("START_GUARDS")


@dataclass
class CalculationContext:
    """What a calculation may read: the rule settings (loaded only if one is used) and now."""
    settings: Callable[[], dict]
    now: datetime


def calculations(context: CalculationContext) -> dict[str, Callable]:
    functions: dict[str, Callable] = {}
    for module in MODULES:
        make = getattr(module, "calculations", None)
        if make is not None:
            functions.update(make(context))
    return functions


def standing_messages(s, case) -> list[tuple[str, dict]]:
    """Messages already sent that a case receives whenever it comes to wait for them."""
    return campaigns.standing_messages(s, case)
