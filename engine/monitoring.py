"""monitoring: to be written"""
from __future__ import annotations

EFFECT_HANDLERS: dict = {}
START_GUARDS: dict = {}
