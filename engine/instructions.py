"""Rendering `spiffworkflow:instructionsForEndUser`: Markdown with Jinja placeholders.

The template is rendered in Jinja's sandbox with autoescaping, so task data cannot inject
markup or reach Python internals; a template error shows as a message, not a crash.
"""
from __future__ import annotations

from functools import lru_cache

import markdown
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

_ENV = SandboxedEnvironment(autoescape=True, undefined=StrictUndefined)


@lru_cache(maxsize=1024)
def _template(source: str):
    return _ENV.from_string(source)


def render(source: str | None, data: dict) -> Markup:
    if not source:
        return Markup("")
    try:
        text = _template(source).render(**data)
    except TemplateError as exc:
        return Markup(f'<p class="instructions-error">{escape(f"Instructions could not be shown: {exc}")}</p>')
    return Markup(markdown.markdown(str(text), extensions=["tables"]))
