"""Demo organisations, users, projects and cases at different stages (idempotent)."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from storage import queries
from storage.models import ExAnteEvaluation, Project

from .access import Actor

DEMO_PASSWORD = "demo"

ORGS = [  # code, name, kind, parent
    ("finance", "Finance Bureau", "bureau", None),
    ("review_center", "Budget Review Center", "center", "finance"),
    ("perf_section", "Performance Management Section", "section", "finance"),
    ("budget_section", "Budget Section", "section", "finance"),
    ("edu_funding", "Education and Culture Funding Section", "section", "finance"),
    ("agri_funding", "Agriculture Funding Section", "section", "finance"),
    ("expert_agency", "Mingjian Evaluation Consulting Co.", "agency", None),
    ("edu_bureau", "Education Bureau", "department", None),
    ("school", "No. 1 Middle School", "unit", "edu_bureau"),
    ("agri_bureau", "Agriculture Bureau", "department", None),
    ("farm_station", "Agricultural Technology Station", "unit", "agri_bureau"),
]

USERS = [  # username, display name, role, organisation
    ("admin", "Administrator", "admin", "finance"),
    ("supervisor", "Bureau Supervisor (Director Wang)", "supervisor", "finance"),
    ("review1", "Li Na (Review Center)", "review_center", "review_center"),
    ("perf1", "Zhao Lei (Performance Section)", "performance", "perf_section"),
    ("edu_section", "Chen Jing (Education Funding Section)", "funding", "edu_funding"),
    ("agri_section", "Sun Hao (Agriculture Funding Section)", "funding", "agri_funding"),
    ("edu_bureau", "Zhou Min (Education Bureau)", "competent", "edu_bureau"),
    ("agri_bureau", "Wu Gang (Agriculture Bureau)", "competent", "agri_bureau"),
    ("school_unit", "Liu Yang (No. 1 Middle School)", "unit", "school"),
    ("farm_unit", "Huang Wei (Agricultural Technology Station)", "unit", "farm_station"),
    ("expert1", "Dr. Xu (Mingjian Evaluation Consulting)", "third_party", "expert_agency"),
]

PROJECTS = [  # code, name, unit, funding, amount, key, category
    ("EDU-2027-001", "Campus safety upgrade", "school", "edu_funding", "1200000", False, "Education"),
    ("EDU-2027-002", "Smart classroom renovation", "school", "edu_funding", "6500000", True, "Education"),
    ("EDU-2027-003", "Student nutrition improvement", "school", "edu_funding", "2000000", False, "Education"),
    ("AGR-2027-001", "High-standard farmland construction", "farm_station", "agri_funding", "8000000", True,
     "Agriculture"),
    ("AGR-2027-002", "Agricultural technology extension training", "farm_station", "agri_funding", "800000",
     False, "Agriculture"),
    ("AGR-2027-003", "Crop pest monitoring network", "farm_station", "agri_funding", "1500000", False,
     "Agriculture"),
]

# New projects still waiting for their ex-ante evaluation (the projects above passed theirs
# in autumn, before budget compilation).
PROJECTS_TO_EVALUATE = [
    ("EDU-2027-004", "School library expansion", "school", "edu_funding", "900000", False, "Education"),
    ("AGR-2027-004", "Irrigation canal renovation", "farm_station", "agri_funding", "5600000", True,
     "Agriculture"),
]
EARLIER_EVALUATION = {"total": Decimal("86.00"), "conclusion": "support",
                      "dimensions": {"necessity": 19.0, "economy": 16.0, "goal_rationality": 17.0,
                                     "feasibility": 17.0, "fund_compliance": 17.0},
                      "summary": "Evaluated before budget compilation, with an on-site examination."}


def sample_goals(project_name: str) -> dict:
    return {
        "project_overview": f"{project_name}: scope, sites and beneficiaries as declared in the budget.",
        "basis": "Required by the county's five-year plan; demand confirmed by a survey of users.",
        "schedule": "Procurement in Q1, works in Q2-Q3, acceptance in Q4.",
        "safeguards": "Project office with a named lead; monthly progress reports to the competent department.",
        "long_term_goal": "Lasting improvement of the service the project supports, within budget.",
        "annual_goal": "Complete the planned works this year and pass acceptance on schedule.",
        "indicators": [
            {"level1": "output", "level2": "quantity", "name": "Sites completed", "operator": ">=",
             "target": "12", "unit": "sites", "weight": 30, "standard": "Acceptance records", "core": True},
            {"level1": "output", "level2": "quality", "name": "Acceptance pass rate", "operator": ">=",
             "target": "100", "unit": "%", "weight": 20},
            {"level1": "output", "level2": "timeliness", "name": "Completed by year end", "operator": "qualitative",
             "target": "On schedule", "unit": "", "weight": 10},
            {"level1": "output", "level2": "cost", "name": "Cost per site", "operator": "<=",
             "target": "95000", "unit": "yuan", "weight": 10},
            {"level1": "effect", "level2": "social", "name": "People served", "operator": ">=",
             "target": "3000", "unit": "persons", "weight": 20},
            {"level1": "satisfaction", "level2": "satisfaction", "name": "Beneficiary satisfaction",
             "operator": ">=", "target": "90", "unit": "%", "weight": 10},
        ],
    }


APPROVE = {"decision": "approve", "comment": "Goals are specific and measurable."}

# project code -> the steps to walk: (username, form data) per task in order.
CASE_SCRIPTS = {
    "AGR-2027-003": [],                                                 # unit compiling
    "EDU-2027-001": ["compile"],                                        # at competent check
    "AGR-2027-002": ["compile", ("agri_bureau", APPROVE)],              # at preliminary review
    "EDU-2027-002": ["compile", ("edu_bureau", APPROVE), ("review1", {**APPROVE, "grade": "good"}),
                     ("perf1", {"decision": "return",
                                "comment": "The satisfaction target needs a survey method; "
                                           "add a cost indicator per classroom."})],   # returned
    "AGR-2027-001": ["compile", ("agri_bureau", APPROVE), ("review1", {**APPROVE, "grade": "excellent"}),
                     ("perf1", APPROVE)],                               # third-party opinion
    "EDU-2027-003": ["compile", ("edu_bureau", APPROVE), ("review1", {**APPROVE, "grade": "excellent"}),
                     ("perf1", APPROVE), ("edu_section", APPROVE)],     # approved
    # Ex-ante evaluations.
    "AGR-2027-004": ["declare"],                                        # at competent check
    "EDU-2027-004": ["declare", ("edu_bureau", {"decision": "approve",
                                                "comment": "Declaration complete; the need is real."})],
}
PROCESS_OF = {"AGR-2027-004": "ex_ante_evaluation", "EDU-2027-004": "ex_ante_evaluation"}


def sample_declaration(project_name: str, amount: str) -> dict:
    return {
        "category": "Public service", "unit_functions": "Provides the public service the project extends.",
        "overview": f"{project_name}: works, equipment and training as listed in the attached plan.",
        "necessity": "Required by the county plan; current capacity covers two thirds of the demand.",
        "feasibility": "Site and permits secured; the unit ran two similar projects on time.",
        "schedule": "Design in Q1, procurement in Q2, works in Q3, acceptance in Q4.",
        "safeguards": "A project office, monthly reports, and an external supervisor for the works.",
        "long_term_goal": "Meet the full demand for this service by 2030.",
        "annual_goal": "Complete the first phase and serve the first beneficiaries this year.",
        "general_budget": float(amount), "start_date": "2027-01-01", "end_date": "2027-12-31",
    }


def load(app, cases: bool = True) -> list[tuple[str, str, str]]:
    """Create what is missing; return the demo logins (username, role, organisation).
    With cases=False only organisations, users and projects (what tests and benchmarks build on)."""
    accounts = app.accounts
    for code, name, kind, parent in ORGS:
        accounts.ensure_org(code, name, kind, parent)
    for username, display, role, org in USERS:
        with app.db.reading() as s:
            exists = queries.user_by_username(s, username) is not None
        if not exists:
            # The demo logins' well-known password is far below the policy: demo data only.
            accounts.ensure_user(username, display, DEMO_PASSWORD, enforce_policy=False,
                                 # example.org is reserved (RFC 2606): demo mail reaches nobody.
                                 email=f"{username}@example.org")
        accounts.grant(username, role, org)
    created_projects = []
    with app.db.transaction() as s:
        for evaluated, rows in ((True, PROJECTS), (False, PROJECTS_TO_EVALUATE)):
            for code, name, unit, funding, amount, key, category in rows:
                if queries.project_by_code(s, code) is not None:
                    continue
                unit_org = queries.org_by_code(s, unit)
                project = Project(code=code, name=name, year=2027, unit_id=unit_org.id,
                                  competent_id=unit_org.parent_id, funding_id=queries.org_by_code(s, funding).id,
                                  category=category, is_new=True, is_key=key, amount=Decimal(amount),
                                  funding_sources={"general_budget": amount}, start_date=date(2027, 1, 1),
                                  end_date=date(2027, 12, 31), goals_status="none",
                                  ex_ante_status="support" if evaluated else "none")
                s.add(project)
                s.flush()
                if evaluated:
                    s.add(ExAnteEvaluation(project_id=project.id, case_id=None, round=1,
                                           total=EARLIER_EVALUATION["total"],
                                           dimensions=EARLIER_EVALUATION["dimensions"],
                                           conclusion="support", summary=EARLIER_EVALUATION["summary"],
                                           evaluated_at=datetime(2026, 9, 15, 2, 0)))
                created_projects.append(code)
    for code in CASE_SCRIPTS if cases else ():
        _walk_case(app, code)
    if cases:
        from . import demo_links
        demo_links.load(app)
    return [(u, r, o) for u, _d, r, o in USERS]


def _actor(app, username: str) -> Actor:
    with app.db.reading() as s:
        user = queries.user_by_username(s, username)
    return app.accounts.actor(user.id)


def _walk_case(app, code: str) -> None:
    steps = CASE_SCRIPTS.get(code)
    if steps is None:
        return
    with app.db.reading() as s:
        project = queries.project_by_code(s, code)
        if project is None or queries.cases_of_project(s, project.id):
            return          # not a demo project, or its demo case exists already
        unit_user = "school_unit" if project.unit.code == "school" else "farm_unit"
    case = app.cases.start(_actor(app, unit_user), PROCESS_OF.get(code, "goal_review"), project.id)
    for step in steps:
        if step == "compile":
            username, data = unit_user, sample_goals(project.name)
        elif step == "declare":
            username, data = unit_user, sample_declaration(project.name, str(project.amount))
        else:
            username, data = step
        actor = _actor(app, username)
        with app.db.reading() as s:
            task = queries.open_tasks_of_case(s, case.id)[0]
        app.cases.complete(actor, task.id, data)

