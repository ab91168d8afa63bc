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
import sys
import time
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Callable

from RestrictedPython import compile_restricted_eval, compile_restricted_exec, safe_builtins
from RestrictedPython.transformer import RestrictingNodeTransformer, copy_locations
from RestrictedPython.Eval import default_guarded_getitem, default_guarded_getiter
from RestrictedPython.Guards import (
    full_write_guard, guarded_iter_unpack_sequence, guarded_unpack_sequence, safer_getattr,
)
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import TaskDataEnvironment

_DENIED_BUILTINS = {"setattr", "delattr", "id", "__build_class__"}

# Limits of one script or condition. A diagram's code does a few arithmetic steps on task data;
# these stop an endless loop or a runaway allocation long before it hurts the server.
MAX_STEPS = 100_000          # lines executed in sandboxed code
MAX_SECONDS = 2.0            # wall time
MAX_ITEMS = 1_000_000        # length of a sequence built by `*` or `range`
MAX_EXPONENT = 10_000        # `**` and `<<` beyond this build numbers of megabytes


class ScriptLimitExceeded(RuntimeError):
    """A script ran too long or tried to build something too large; it was stopped."""


def _sized(value) -> int | None:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else None


def _binop(op: str, a: Any, b: Any) -> Any:
    """`*`, `**` and `<<` in scripts: the operators whose result can outgrow memory at once."""
    if op == "*":
        for seq, n in ((a, b), (b, a)):
            size = _sized(seq)
            if size is not None and isinstance(n, int) and size * n > MAX_ITEMS:
                raise ScriptLimitExceeded(f"a sequence of more than {MAX_ITEMS:,} items is not allowed in scripts")
        return a * b
    if op == "**":
        if isinstance(a, int) and isinstance(b, int) and abs(a) > 1 and b > MAX_EXPONENT:
            raise ScriptLimitExceeded(f"exponents above {MAX_EXPONENT:,} are not allowed in scripts")
        return a ** b
    if op == "<<":
        if isinstance(b, int) and b > MAX_EXPONENT:
            raise ScriptLimitExceeded(f"shifts above {MAX_EXPONENT:,} bits are not allowed in scripts")
        return a << b
    raise SyntaxError(f"operator {op} is not handled")


_GUARDED_OPS = {ast.Mult: "*", ast.Pow: "**", ast.LShift: "<<"}


class _LimitingTransformer(RestrictingNodeTransformer):
    """RestrictedPython's checks, plus size guards on `*`, `**` and `<<` (also as `*=`)."""

    def visit_BinOp(self, node: ast.BinOp):
        node = self.node_contents_visit(node)
        op = _GUARDED_OPS.get(type(node.op))
        if op is None:
            return node
        call = ast.Call(func=ast.Name("_binop_", ast.Load()), args=[ast.Constant(op), node.left, node.right],
                        keywords=[])
        copy_locations(call, node)
        return call


def _bounded_range(*args):
    numbers = range(*args)
    if len(numbers) > MAX_ITEMS:
        raise ScriptLimitExceeded(f"a range of more than {MAX_ITEMS:,} numbers is not allowed in scripts")
    return numbers


@contextmanager
def _limits():
    """Count the lines sandboxed code executes and watch the clock while it runs.

    Only frames of code compiled here are traced (their file name is the sandbox's), so the
    cost falls on diagram code alone; the domain functions it calls run untraced."""
    started = time.monotonic()
    steps = 0

    def local(frame, event, arg):
        nonlocal steps
        if event == "line":
            steps += 1
            if steps > MAX_STEPS:
                raise ScriptLimitExceeded(f"the script ran more than {MAX_STEPS:,} steps and was stopped")
            if steps % 1000 == 0 and time.monotonic() - started > MAX_SECONDS:
                raise ScriptLimitExceeded(f"the script ran longer than {MAX_SECONDS:g} s and was stopped")
        return local

    def outer(frame, event, arg):
        return local if frame.f_code.co_filename == SANDBOX_FILE else None

    previous = sys.gettrace()
    sys.settrace(outer)
    try:
        yield
    finally:
        sys.settrace(previous)


SANDBOX_FILE = "<diagram script>"


def _inplacevar(op: str, x: Any, y: Any) -> Any:
    ops: dict[str, Callable[[Any, Any], Any]] = {
        "+=": lambda a, b: a + b, "-=": lambda a, b: a - b, "*=": lambda a, b: _binop("*", a, b),
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
        "range": _bounded_range,
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
    "_binop_": _binop,
    "Decimal": Decimal, "date": date, "datetime": datetime, "timedelta": timedelta,
}


class ScriptRefused(SyntaxError):
    """The sandbox would not compile a script (a forbidden name, import, or bad syntax)."""


@lru_cache(maxsize=4096)
def _compile_eval(expression: str):
    result = compile_restricted_eval(expression.strip(), filename=SANDBOX_FILE, policy=_LimitingTransformer)
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
    result = compile_restricted_exec(script, filename=SANDBOX_FILE, policy=_LimitingTransformer)
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
        code = _compile_eval(expression)
        with _limits():
            return eval(code, scope)  # noqa: S307 - sandboxed code object

    def execute(self, script, context, external_context=None):
        self.check_for_overwrite(context, external_context or {})
        provided = {**BASE_GLOBALS, **self.globals, **(external_context or {})}
        # The script runs in its own scope (helpers first, task data over them), and only
        # what it set or changed goes back into the task data: a data field called `date`
        # is neither lost nor replaced by the helper of that name.
        scope = {**provided, **context}
        self.current_context = scope
        code = _compile_exec(script)
        try:
            with _limits():
                exec(code, scope)  # noqa: S102 - sandboxed code object
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
