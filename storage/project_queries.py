"""Queries for importing projects in bulk (engine/project_import.py)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from .models import Organisation, Project

# Stay well under every driver's bound-parameter limit (SQLite builds before 3.32 allow 999).
_CHUNK = 500


def organisations(s: Session, kinds: tuple[str, ...] | None = None) -> list[Organisation]:
    """Every organisation (or those of the given kinds), with its parent, by kind then code."""
    q = select(Organisation).options(joinedload(Organisation.parent)).order_by(Organisation.kind,
                                                                               Organisation.code)
    if kinds:
        q = q.where(Organisation.kind.in_(kinds))
    return list(s.scalars(q))


def existing_project_codes(s: Session, codes) -> set[str]:
    """Those of `codes` that a project already has."""
    codes = sorted(set(codes))
    found: set[str] = set()
    for start in range(0, len(codes), _CHUNK):
        found.update(s.scalars(select(Project.code).where(Project.code.in_(codes[start:start + _CHUNK]))))
    return found
