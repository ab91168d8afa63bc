"""A psycopg cursor whose `description` is built only when something reads it.

psycopg builds `cursor.description` afresh on every access, one `Column` object per result
column, each with a type lookup and a name decoded. SQLAlchemy reads `description` after every
statement that returns rows, but once a compiled statement's result metadata is cached (from
its second execution on) it only tests whether there is one. So the Column objects were built
for nothing: 2-3 µs per column, about 0.2 ms for the completion's 80-column read of a task with
its case, project and organisations, which was half of that statement's CPU on our side.

Here `description` is a sequence of the right length that builds the same columns, from the
result it was taken from, the first time an item is read.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.pq import ExecStatus

_ROW_STATUSES = (ExecStatus.TUPLES_OK, ExecStatus.SINGLE_TUPLE, ExecStatus.TUPLES_CHUNK)


class _ResultOf:
    """What psycopg.Column reads of a cursor, pinned to one result: a later execution on the
    same cursor must not change the columns of a description taken before it."""
    __slots__ = ("pgresult", "_encoding", "adapters")

    def __init__(self, cursor: psycopg.Cursor):
        self.pgresult = cursor.pgresult
        self._encoding = cursor._encoding
        self.adapters = cursor.adapters


class LazyDescription(Sequence):
    __slots__ = ("_source", "_length", "_columns")

    def __init__(self, cursor: psycopg.Cursor, length: int):
        self._source = _ResultOf(cursor)
        self._length = length
        self._columns: list | None = None

    def _built(self) -> list:
        if self._columns is None:
            self._columns = [psycopg.Column(self._source, i) for i in range(self._length)]
            self._source = None
        return self._columns

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: Any) -> Any:
        return self._built()[index]

    def __iter__(self):
        return iter(self._built())

    def __eq__(self, other: object) -> bool:
        return list(self._built()) == list(other) if isinstance(other, Sequence) else NotImplemented

    def __repr__(self) -> str:
        return repr(self._built())


class LazyDescriptionCursor(psycopg.Cursor):
    """psycopg's client-side cursor with a lazily built `description` (see the module's doc);
    the same conditions for None as psycopg's own."""

    @property
    def description(self) -> LazyDescription | None:
        res = self.pgresult
        if res and (res.nfields or res.status in _ROW_STATUSES):
            return LazyDescription(self, res.nfields)
        return None
