"""Role codes, their display names, and how a lane's role resolves against a case.

A task belongs to a role *in an organisation*: "budget unit" means the officers of that
case's unit. Roles scoped to the case resolve to one organisation; the others are held
anywhere in the bureau and their tasks carry no organisation.
"""
from __future__ import annotations

ROLES: dict[str, str] = {
    "unit": "Budget unit",
    "competent": "Competent department",
    "review_center": "Budget review center",
    "performance": "Performance management section",
    "funding": "Funding business section",
    "third_party": "Third-party agency",
    "budget": "Budget section",
    "supervisor": "Supervisor",
    "admin": "Administrator",
}

CASE_SCOPED = ("unit", "competent", "funding")
BUREAU_WIDE = tuple(code for code in ROLES if code not in CASE_SCOPED)
# Bureau roles that may look at every case; the third party sees only cases it works on.
SEE_ALL_CASES = ("review_center", "performance", "budget", "supervisor", "admin")

_BY_NAME = {name.lower(): code for code, name in ROLES.items()}
_BY_NAME.update({code.lower(): code for code in ROLES})
_BY_NAME.update({code.replace("_", " "): code for code in ROLES})


def role_for_lane(lane: str | None) -> str | None:
    """The role code a lane names (by code or display name, case-insensitive), or None."""
    if not lane:
        return None
    return _BY_NAME.get(" ".join(lane.strip().lower().split()))


def scoped_org_id(role: str, project) -> int | None:
    """The organisation a case-scoped role resolves to for this project; None if bureau-wide."""
    if role == "unit":
        return project.unit_id
    if role == "competent":
        return project.competent_id
    if role == "funding":
        return project.funding_id
    return None
