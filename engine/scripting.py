"""Scripts and conditions from diagrams run here, in a RestrictedPython sandbox.

Diagrams are edited in the browser by administrators, so a script must not be able to
import, open files, or reach object internals (names and attributes starting with "_" are
refused at compile time). Compiled code is cached by source text: the same few conditions
are evaluated on every request.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
import ast
from functools import lru_cache
from typing import Any, Callable

from RestrictedPython import compile_restricted_eval, compile_restricted_exec, safe_builtins
from RestrictedPython.Eval import default_guarded_getitem, default_guarded_getiter
from RestrictedPython.Guards import (
    full_write_guard, guarded_iter_unpack_sequence, guarded_unpack_sequence, safer_getattr,
)
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import TaskDataEnvironment

_DENIED_BUILTINS = {"setattr", "delattr", "id", "__build_class__"}


def _inplacevar(op: str, x: Any, y: Any) -> Any:
    ops: dict[str, Callable[[Any, Any], Any]] = {
        "+=": lambda a, b: a + b, "-=": lambda a, b: a - b, "*=": lambda a, b: a * b,
        "/=": lambda a, b: a / b, "//=": lambda a, b: a // b, "%=": lambda a, b: a % b,
    }
    if op not in ops:
        raise SyntaxError(f"operator {op} is not allowed in scripts")
    return ops[op](x, y)


def _build_builtins() -> dict:
    allowed = {k: v for k, v in safe_builtins.items() if k not in _DENIED_BUILTINS}
    allowed.update({
        "min": min, "max": max, "sum": sum, "sorted": sorted, "any": any, "all": all,
        "enumerate": enumerate, "zip": zip, "dict": dict, "list": list, "set": set,
        "tuple": tuple, "reversed": reversed, "map": map, "filter": filter,
    })
    return allowed


SAFE_BUILTINS = _build_builtins()

BASE_GLOBALS = {
    "__builtins__": SAFE_BUILTINS,
    "_getattr_": safer_getattr,
    "_getitem_": default_guarded_getitem,
    "_getiter_": default_guarded_getiter,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_write_": full_write_guard,
    "_inplacevar_": _inplacevar,
    "Decimal": Decimal, "date": date, "datetime": datetime, "timedelta": timedelta,
}


class ScriptRefused(SyntaxError):
    """The sandbox would not compile a script (a forbidden name, import, or bad syntax)."""


@lru_cache(maxsize=4096)
def _compile_eval(expression: str):
    result = compile_restricted_eval(expression.strip())
    if result.errors:
        raise ScriptRefused("; ".join(result.errors))
    return result.code


@lru_cache(maxsize=4096)
def _compile_exec(script: str):
    try:
        tree = ast.parse(script)
    except SyntaxError as exc:
        raise ScriptRefused(f"Line {exc.lineno}: {exc.msg}") from None
    for node in ast.walk(tree):
        # RestrictedPython compiles imports and fails them only when they run; refuse them
        # up front so a diagram that imports never deploys.
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            raise ScriptRefused(f"Line {node.lineno}: imports are not allowed in scripts")
    result = compile_restricted_exec(script)
    if result.errors:
        raise ScriptRefused("; ".join(result.errors))
    return result.code


def check_expression(expression: str) -> None:
    """Raise ScriptRefused if an expression would not run in the sandbox (used at deploy)."""
    _compile_eval(expression)


def check_script(script: str) -> None:
    _compile_exec(script)


class RestrictedEnvironment(TaskDataEnvironment):
    """TaskDataEnvironment semantics (scripts read and write task data) in the sandbox."""

    def __init__(self, functions: dict[str, Callable] | None = None):
        super().__init__(dict(functions or {}))
        # The task data of the script running now, for domain functions that act on it.
        self.current_context: dict | None = None

    def evaluate(self, expression, context, external_context=None):
        scope = dict(BASE_GLOBALS)
        scope.update(self.globals)
        scope.update(external_context or {})
        scope.update(context)
        return eval(_compile_eval(expression), scope)  # noqa: S307 - sandboxed code object

    def execute(self, script, context, external_context=None):
        self.check_for_overwrite(context, external_context or {})
        provided = {**BASE_GLOBALS, **self.globals, **(external_context or {})}
        # The script runs in its own scope (helpers first, task data over them), and only
        # what it set or changed goes back into the task data: a data field called `date`
        # is neither lost nor replaced by the helper of that name.
        scope = {**provided, **context}
        self.current_context = scope
        try:
            exec(_compile_exec(script), scope)  # noqa: S102 - sandboxed code object
        finally:
            self.current_context = None
        for key in [k for k in context if k not in scope]:
            del context[key]
        for key, value in scope.items():
            if key in provided and value is provided[key] and key not in context:
                continue
            if key == "__builtins__" or callable(value) and key not in context:
                continue
            context[key] = value
        return True


def script_engine(functions: dict[str, Callable] | None = None) -> PythonScriptEngine:
    return PythonScriptEngine(environment=RestrictedEnvironment(functions))
