"""Campaigns: a bureau-wide round of one link for a year.

A monitoring campaign (link 3) opens one `operation_monitoring` case per budget project of
the year at a cut-off date; a self-assessment campaign (link 4) opens one
`self_assessment_review` case per project, and later the performance section draws the
departments whose self-assessments it reviews. The draw is reproducible: the ratio, the seed,
the population in the order it was drawn from, and the result are all kept on the campaign.
Cases learn the draw by a BPMN message (`spot_check_draw`) sent to each of them.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy.orm import Session

from storage import campaign_queries, deadline_queries, queries
from storage.db import Database
from storage.models import AuditEvent, Campaign, Case, MonitoringRecord, Project

from .access import Actor
from .clock import Clock
from .deadlines import case_deadline
from .errors import Conflict, InvalidData, NotFound, PermissionDenied
from .rules import sampling
from .settings import SettingsService

KINDS = {
    "monitoring": {"process": "operation_monitoring", "name": "Operation monitoring"},
    "self_assessment": {"process": "self_assessment_review", "name": "Self-assessment and spot-check review"},
}
PROCESS_KINDS = {spec["process"]: kind for kind, spec in KINDS.items()}
DRAW_MESSAGE = "spot_check_draw"
# Who runs campaigns: the performance section (the bureau's rules and spot checks), or an administrator.
CAMPAIGN_ROLES = ("performance", "admin")
# Who launches a scheduled campaign: no user; its rows and audit event carry no actor.
SYSTEM = Actor(id=None, username="system", display_name="the system", grants=())


def opened_by_campaign(s: Session, project: Project, settings: dict) -> None:
    """Start guard of the campaign processes: their cases exist only within a campaign."""
    raise Conflict("these cases are opened for every project at once by a campaign: "
                   "launch one on the Campaigns page (POST /api/v1/campaigns)")


START_GUARDS = {spec["process"]: opened_by_campaign for spec in KINDS.values()}


def draw_payload(campaign: Campaign, department: str) -> dict:
    return {"sampled": department in (campaign.sampled or []), "department": department,
            "seed": campaign.seed, "ratio": float(campaign.sample_ratio or 0),
            "sampled_departments": list(campaign.sampled or [])}


def standing_messages(s: Session, case: Case) -> list[tuple[str, dict]]:
    """Messages a case gets as soon as it waits for them: the draw of its campaign, once made."""
    if case.campaign_id is None or case.process_key != KINDS["self_assessment"]["process"]:
        return []
    campaign = s.get(Campaign, case.campaign_id)
    if campaign is None or campaign.drawn_at is None or case.project is None:
        return []
    return [(DRAW_MESSAGE, draw_payload(campaign, case.project.competent.name))]


def _check_role(actor: Actor) -> None:
    if not actor.roles.intersection(CAMPAIGN_ROLES):
        raise PermissionDenied("only the performance management section runs campaigns")


def campaign_summary(campaign: Campaign) -> dict:
    return {
        "id": campaign.id, "kind": campaign.kind, "kind_name": KINDS[campaign.kind]["name"],
        "process": KINDS[campaign.kind]["process"], "year": campaign.year, "title": campaign.title,
        "cutoff_date": campaign.cutoff_date.isoformat() if campaign.cutoff_date else None,
        "status": campaign.status,
        "started_at": campaign.started_at.isoformat(timespec="seconds"),
        "started_by": campaign.started_by.display_name if campaign.started_by else None,
        "draw": None if campaign.drawn_at is None else {
            "ratio": float(campaign.sample_ratio), "seed": campaign.seed,
            "population": campaign.population, "sampled": campaign.sampled,
            "drawn_at": campaign.drawn_at.isoformat(timespec="seconds")},
    }


class CampaignService:
    def __init__(self, db: Database, cases, clock: Clock, settings: SettingsService):
        self.db = db
        self.cases = cases
        self.clock = clock
        self.settings = settings

    def launch(self, actor: Actor, kind: str, year: int, cutoff_date: date | None = None,
               key_project_codes: list[str] | None = None, title: str | None = None,
               scheduled: bool = False) -> Campaign | None:
        """Open the campaign and one case per project of the year whose goals are approved
        (those are in the budget, with goals to measure against), in one transaction.
        `scheduled`: the system's own launch on the campaign date (actor SYSTEM), which does
        nothing (None) if a campaign of that kind, year and cut-off date exists in any state."""
        if not (scheduled and actor is SYSTEM):
            _check_role(actor)
        if kind not in KINDS:
            raise InvalidData("unknown campaign kind", {"kind": f"One of {', '.join(KINDS)}."})
        if not isinstance(year, int) or isinstance(year, bool) or not 2000 <= year <= 2100:
            raise InvalidData("the year is not valid", {"year": "A year between 2000 and 2100."})
        if kind == "monitoring":
            cutoff_date = cutoff_date or self._default_cutoff(year)
            if cutoff_date.year != year:
                raise InvalidData("the cut-off date must fall in the campaign's year",
                                  {"cutoff_date": f"A date in {year}."})
        else:
            cutoff_date = None
        now = self.clock.now()
        with self.db.transaction() as s:
            # Two launches of one kind and year (several timer workers, or a person and the
            # scheduler) run one after the other, so the second sees the first's campaign.
            queries.lock_keys(s, [f"campaign:{kind}:{year}"])
            if scheduled and campaign_queries.campaign_at(s, kind, year, cutoff_date) is not None:
                return None
            running = campaign_queries.open_campaign(s, kind, year, cutoff_date)
            if running is not None:
                raise Conflict(f"a {KINDS[kind]['name'].lower()} campaign for {year} is already open "
                               f"(campaign {running.id}); close it first", {"campaign_id": running.id})
            projects = campaign_queries.budget_projects(s, year)
            if not projects:
                raise Conflict(f"no project of {year} has approved performance goals: there is nothing to "
                               f"{'monitor' if kind == 'monitoring' else 'self-assess'}")
            codes = {p.code for p in projects}
            selected = set(key_project_codes or [])
            unknown = sorted(selected - codes)
            if unknown:
                raise InvalidData("some selected projects are not in this campaign",
                                  {"key_projects": f"Not budget projects of {year}: {', '.join(unknown)}."})
            name = KINDS[kind]["name"]
            campaign = Campaign(
                kind=kind, year=year, cutoff_date=cutoff_date, status="open", started_at=now,
                started_by_id=actor.id,
                title=(title or (f"{name} {year}" + (f" at {cutoff_date.isoformat()}" if cutoff_date else "")))[:300])
            s.add(campaign)
            s.flush()
            facts = {"id": campaign.id, "kind": kind, "year": year,
                     "cutoff_date": cutoff_date.isoformat() if cutoff_date else None}

            # Finance's own key monitoring: the projects it picked, else every key project. Decided
            # once, for the case data and the overview's record alike.
            key_monitoring = {p.id: (p.code in selected) if selected else bool(p.is_key) for p in projects}

            def data_for(project: Project) -> dict:
                data = {"campaign": facts}
                if kind == "monitoring":
                    data["key_monitoring"] = key_monitoring[project.id]
                return data

            opened = self.cases.open_campaign_cases(s, actor, KINDS[kind]["process"], campaign.id, projects,
                                                    data_for)
            if kind == "monitoring":
                # The overview shows who is under finance's key monitoring before any report.
                for case, project in zip(opened, projects):
                    s.add(MonitoringRecord(case_id=case.id, project_id=project.id, campaign_id=campaign.id,
                                           cutoff_date=cutoff_date, budget=project.amount,
                                           key_monitoring=key_monitoring[project.id],
                                           measures="", explanation="", findings=""))
            s.add(AuditEvent(case_id=None, at=now, actor_id=actor.id, action="campaign_launched",
                             data={**facts, "projects": sorted(codes), "key_projects": sorted(selected),
                                   **({"scheduled": True} if scheduled else {})}))
            s.flush()
            s.refresh(campaign)
            _ = campaign.started_by
            return campaign

    def launch_scheduled(self) -> Campaign | None:
        """The timer worker's daily duty: on or after this year's campaign date, launch the
        monitoring campaign at that cut-off date unless it exists (once per year and date,
        however many workers ask). The date is the UTC date of the clock."""
        values = self.settings.values()
        if not values.get("monitoring.campaign_auto_start", True):
            return None
        today = self.clock.now().date()
        cutoff = self._default_cutoff(today.year)
        if today < cutoff:
            return None
        with self.db.reading() as s:    # the common case, already launched: no write lock
            if campaign_queries.campaign_at(s, "monitoring", today.year, cutoff) is not None:
                return None
            if not campaign_queries.budget_projects(s, today.year):
                return None
        try:
            return self.launch(SYSTEM, "monitoring", today.year, cutoff, scheduled=True)
        except Conflict:     # someone launched an open campaign of the year by hand meanwhile
            return None

    def _default_cutoff(self, year: int) -> date:
        month_day = str(self.settings.values().get("monitoring.campaign_month_day") or "09-30")
        try:
            return date.fromisoformat(f"{year}-{month_day}")
        except ValueError:
            return date(year, 9, 30)

    def draw(self, actor: Actor, campaign_id: int, ratio=None, seed: str | None = None) -> Campaign:
        """Draw the departments whose self-assessments are reviewed, record the draw, and tell
        every case of the campaign whether its department was drawn."""
        _check_role(actor)
        ratio = Decimal(str(ratio if ratio is not None else self.settings.values()["spot_check.sample_ratio"]))
        if not Decimal(0) < ratio <= Decimal(1):
            raise InvalidData("the sample ratio must be above 0 and at most 1", {"ratio": "Between 0 and 1."})
        if seed is not None and (not isinstance(seed, str) or not 1 <= len(seed) <= 64 or not seed.isprintable()):
            raise InvalidData("the seed must be 1 to 64 printable characters", {"seed": "1 to 64 characters."})
        now = self.clock.now()
        with self.db.transaction() as s:
            campaign = campaign_queries.campaign_for_update(s, campaign_id)
            if campaign is None:
                raise NotFound(f"campaign {campaign_id} does not exist")
            if campaign.kind != "self_assessment":
                raise InvalidData("only a self-assessment campaign has a spot-check draw")
            if campaign.drawn_at is not None:
                raise Conflict(f"the departments of campaign {campaign.id} were drawn already at "
                               f"{campaign.drawn_at:%Y-%m-%d %H:%M}; a draw is never repeated",
                               {"campaign_id": campaign.id})
            if campaign.status != "open":
                raise Conflict(f"campaign {campaign.id} is closed")
            cases = campaign_queries.campaign_cases(s, campaign.id)
            population = sorted({case.project.competent.name for case in cases if case.project})
            seed = seed or sampling.new_seed()
            sampled = sampling.draw(population, ratio, seed)
            campaign.sample_ratio, campaign.seed = ratio, seed
            campaign.population, campaign.sampled = population, sampled
            campaign.drawn_at, campaign.drawn_by_id = now, actor.id
            s.flush()
            for case in cases:
                if case.status == "running":
                    self.cases.deliver(s, case.id, DRAW_MESSAGE,
                                       draw_payload(campaign, case.project.competent.name), actor.id)
            campaign_queries.mark_sampled(s, campaign.id, sampled)
            s.add(AuditEvent(case_id=None, at=now, actor_id=actor.id, action="spot_check_drawn",
                             data={"campaign": campaign.id, "ratio": str(ratio), "seed": seed,
                                   "population": population, "sampled": sampled}))
            s.flush()
            _ = campaign.started_by
            return campaign

    def close(self, actor: Actor, campaign_id: int) -> Campaign:
        """Close a campaign whose cases have all finished."""
        _check_role(actor)
        now = self.clock.now()
        with self.db.transaction() as s:
            campaign = campaign_queries.campaign_for_update(s, campaign_id)
            if campaign is None:
                raise NotFound(f"campaign {campaign_id} does not exist")
            if campaign.status == "closed":
                return campaign
            running = [c.id for c in campaign_queries.campaign_cases(s, campaign.id) if c.status == "running"]
            if running:
                raise Conflict(f"{len(running)} case(s) of this campaign are still running (first: case {running[0]})",
                               {"case_id": running[0]})
            campaign.status, campaign.closed_at = "closed", now
            s.flush()
            _ = campaign.started_by
            return campaign

    # ---- reads ---------------------------------------------------------------------------

    def may_run(self, actor: Actor) -> bool:
        return bool(actor.roles.intersection(CAMPAIGN_ROLES))

    def candidates(self, year: int) -> list[dict]:
        """The projects a campaign of this year would open cases for."""
        with self.db.reading() as s:
            return [{"id": p.id, "code": p.code, "name": p.name, "is_key": bool(p.is_key),
                     "unit": p.unit.name, "department": p.competent.name, "amount": str(p.amount)}
                    for p in campaign_queries.budget_projects(s, year)]

    def default_cutoff(self, year: int) -> date:
        return self._default_cutoff(year)

    def list(self, actor: Actor, year: int | None = None) -> list[dict]:
        with self.db.reading() as s:
            return [campaign_summary(c) for c in campaign_queries.campaigns(s, year)]

    def detail(self, actor: Actor, campaign_id: int) -> dict:
        """The campaign and one row per case: project, department, where the case stands."""
        with self.db.reading() as s:
            campaign = queries.get_by_id(s, Campaign, campaign_id)   # None for ids no row can have
            if campaign is None:
                raise NotFound(f"campaign {campaign_id} does not exist")
            out = campaign_summary(campaign)
            rows = []
            cases = [case for case in campaign_queries.campaign_cases(s, campaign.id)
                     if actor.sees_all_cases or actor.may_see_project(case.project)]
            deadlines = deadline_queries.open_task_deadlines(s, [case.id for case in cases])
            now = self.clock.now()
            for case in cases:
                rows.append({"case_id": case.id, "status": case.status, "current_steps": case.current_steps,
                             "project": {"id": case.project.id, "code": case.project.code,
                                         "name": case.project.name, "is_key": case.project.is_key},
                             "unit": case.project.unit.name, "department": case.project.competent.name,
                             **case_deadline(*deadlines.get(case.id, (None, False)), now),
                             **campaign_queries.case_facts(s, campaign.kind, case.id)})
            out["cases"] = rows
            out["counts"] = {"cases": len(rows), "running": sum(r["status"] == "running" for r in rows),
                             "completed": sum(r["status"] == "completed" for r in rows)}
            return out
