"""Who is acting, and what they may see and do."""
from __future__ import annotations

from dataclasses import dataclass

from .roles import BUREAU_WIDE, SEE_ALL_CASES, scoped_org_id


@dataclass(frozen=True)
class Actor:
    id: int
    username: str
    display_name: str
    grants: tuple[tuple[str, int], ...]   # (role code, organisation id)

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(role for role, _ in self.grants)

    def orgs_for(self, role: str) -> frozenset[int]:
        return frozenset(org for r, org in self.grants if r == role)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def sees_all_cases(self) -> bool:
        return bool(self.roles.intersection(SEE_ALL_CASES))

    def holds(self, role: str, org_id: int | None) -> bool:
        """True if the actor holds the role where a task of that role and organisation lives."""
        if org_id is None:
            return role in BUREAU_WIDE and role in self.roles
        return (role, org_id) in self.grants

    def may_act_for_project(self, role: str, project) -> bool:
        return self.holds(role, scoped_org_id(role, project) if project is not None else None)

    def may_see_project(self, project) -> bool:
        if self.sees_all_cases or "third_party" in self.roles:
            return True
        return any((role, scoped_org_id(role, project)) in self.grants
                   for role in ("unit", "competent", "funding"))

    def may_work_on(self, task) -> bool:
        """May this actor complete or claim the task (an open inbox row)?"""
        if task.assignee_id is not None:
            return task.assignee_id == self.id
        if not task.role:
            return False
        return self.holds(task.role, task.org_id)
