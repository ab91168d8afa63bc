"""Rendering `spiffworkflow:instructionsForEndUser`: Markdown with Jinja placeholders.

The template comes from the diagram; the values come from task data, which users typed.
So values are rendered in Jinja's sandbox, Markdown-escaped (a comment cannot become a link
or an image) and HTML-escaped, and the resulting HTML is cleaned by an allow-list sanitizer
(links only to http, https and mailto). A template error shows as a message, not a crash.
"""
from __future__ import annotations

import re
import threading
from decimal import Decimal, InvalidOperation
from functools import lru_cache

import markdown
import nh3
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!])")
ALLOWED_TAGS = {"p", "br", "strong", "em", "b", "i", "ul", "ol", "li", "a", "code", "pre", "blockquote",
                "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "hr"}


def _markdown_literal(value):
    """Every value printed by a placeholder reads as plain text in Markdown."""
    if value is None:
        return ""
    if isinstance(value, Markup):
        return value
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(value))


def money(value) -> str:
    try:
        return f"{Decimal(str(value)):,.2f}"
    except (InvalidOperation, ValueError):
        return str(value)


_ENV = SandboxedEnvironment(autoescape=True, undefined=StrictUndefined, finalize=_markdown_literal)
_ENV.filters["money"] = money


@lru_cache(maxsize=1024)
def _template(source: str):
    return _ENV.from_string(source)


_CONVERTERS = threading.local()


@lru_cache(maxsize=512)
def _to_html(text: str) -> str:
    """Markdown to clean HTML. Converting costs a third of a task page, and a page shown again
    (or a step whose instructions use no case data) renders the same text: the last 512 results
    are kept. A Markdown converter is built once per thread (it keeps state while converting)."""
    converter = getattr(_CONVERTERS, "markdown", None)
    if converter is None:
        converter = _CONVERTERS.markdown = markdown.Markdown(extensions=["tables"])
    html = converter.reset().convert(text)
    return nh3.clean(html, tags=ALLOWED_TAGS, url_schemes={"http", "https", "mailto"},
                     link_rel="noopener noreferrer")


def render(source: str | None, data: dict) -> Markup:
    if not source:
        return Markup("")
    try:
        text = _template(source).render(**data)
    except TemplateError as exc:
        return Markup(f'<p class="instructions-error">{escape(f"Instructions could not be shown: {exc}")}</p>')
    return Markup(_to_html(str(text)))
