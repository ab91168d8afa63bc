"""The trigger-kept case_counts (migration 0012) stay equal to the cases they count, whatever
changes the cases, and the case list's total for users who see every case comes from them."""
from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import create_engine, func, inspect, select, text

from storage.models import Case, Organisation
from storage.schema import alembic_config, upgrade
from test_engine_goal_review import NON_KEY_CHAIN, Flow


@pytest.fixture
def flow(demo_core, actor, project_id):
    return Flow(demo_core, actor, project_id)


def counted(db) -> dict:
    with db.reading() as s:
        return {tuple(r[:4]): r[4] for r in s.execute(text(
            "SELECT process_key, status, year, org_id, n FROM case_counts WHERE n <> 0"))}


def actual(db) -> dict:
    year = func.coalesce(Case.year, 0)
    with db.reading() as s:
        return {tuple(r[:4]): r[4] for r in s.execute(
            select(Case.process_key, Case.status, year, Case.org_id, func.count())
            .group_by(Case.process_key, Case.status, year, Case.org_id))}


def test_counts_follow_starts_completions_and_any_update(flow, demo_core):
    db = demo_core.db
    before = counted(db)
    assert before == actual(db)

    approved = flow.start("EDU-2027-001")
    rejected = flow.start("AGR-2027-002")
    assert counted(db) == actual(db) != before
    flow.walk(approved, "EDU-2027-001", NON_KEY_CHAIN)
    flow.walk(rejected, "AGR-2027-002", NON_KEY_CHAIN[:-1])
    flow.act(rejected, "AGR-2027-002", "final_review", {"decision": "reject", "comment": "Not this year."})
    assert flow.case(approved)["status"] == flow.case(rejected)["status"] == "completed"
    assert counted(db) == actual(db)

    # Changes made outside the engine are counted too: the triggers watch the table itself.
    with db.transaction() as s:
        other_org = s.scalar(select(Organisation.id).order_by(Organisation.id.desc()).limit(1))
        s.execute(text("UPDATE cases SET status = 'cancelled', year = 2031 WHERE id = :id"), {"id": approved})
        s.execute(text("UPDATE cases SET org_id = :org, process_key = 'renamed' WHERE id = :id"),
                  {"org": other_org, "id": rejected})
        s.execute(text("UPDATE cases SET title = 'untouched columns' WHERE id = :id"), {"id": approved})
    assert counted(db) == actual(db)
    assert counted(db)[("renamed", "completed", 2027, other_org)] == 1

    # A rolled-back change leaves no trace in the counts.
    with pytest.raises(RuntimeError):
        with db.transaction() as s:
            s.execute(text("UPDATE cases SET status = 'error'"))
            raise RuntimeError("roll back")
    assert counted(db) == actual(db)

    with db.transaction() as s:
        for table in ("audit_events", "notifications", "human_tasks", "project_goals"):
            s.execute(text(f"DELETE FROM {table} WHERE case_id = :id"), {"id": rejected})
        s.execute(text("DELETE FROM cases WHERE id = :id"), {"id": rejected})
    assert counted(db) == actual(db)
    assert ("renamed", "completed", 2027, other_org) not in counted(db)


FILTERS = [{}, {"status": "running"}, {"status": "completed"}, {"process": "goal_review"},
           {"year": 2027}, {"status": "completed", "year": 2027}, {"org": "school"},
           {"process": "goal_review", "status": "running", "org": "farm_station", "year": 2027},
           {"process": "no_such_process"}, {"org": "no-such-org"}]


@pytest.mark.parametrize("username", ["supervisor", "review1"])
def test_list_totals_of_users_who_see_everything_are_exact(flow, api, demo_core, username):
    for code in ("EDU-2027-001", "AGR-2027-001", "AGR-2027-002"):
        flow.start(code)
    done = flow.start("EDU-2027-002")
    flow.walk(done, "EDU-2027-002", ["compile_goals", "competent_check", "preliminary_review", "re_examination",
                                     "third_party_review", "final_review"])
    with demo_core.db.reading() as s:
        orgs = dict(s.execute(select(Organisation.code, Organisation.id)).all())
    totals = []
    for filters in FILTERS:
        conds = [getattr(Case, {"process": "process_key"}.get(k, k)) == v for k, v in filters.items() if k != "org"]
        if "org" in filters:
            conds.append(Case.org_id == orgs.get(filters["org"], -1))
        with demo_core.db.reading() as s:
            expected = s.scalar(select(func.count()).select_from(Case).where(*conds))
        query = "&".join(f"{k}={v}" for k, v in filters.items())
        answer = api(username).get(f"/api/v1/cases?{query}&limit=200").get_json()
        assert answer["total"] == expected == len(answer["items"]), (filters, answer["total"], expected)
        totals.append(expected)
    assert totals[0] == 4 and totals[2] == 1 and totals[-1] == 0, totals


def test_the_migration_fills_the_counts_and_goes_down_and_up(flow, demo_core):
    flow.start("EDU-2027-001")
    cfg = alembic_config(demo_core.db.url)
    demo_core.db.dispose()
    plain = create_engine(demo_core.db.url)
    try:
        with plain.connect() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0011")
            conn.commit()
            assert "case_counts" not in inspect(conn).get_table_names()
            indexes = {ix["name"] for ix in inspect(conn).get_indexes("cases")}
            assert {"ix_cases_started_by_id", "ix_cases_project_id"} <= indexes
        # Cases changed while the counts did not exist are counted when they come back.
        with plain.begin() as conn:
            conn.execute(text("UPDATE cases SET status = 'cancelled' WHERE id = (SELECT max(id) FROM cases)"))
    finally:
        plain.dispose()
    upgrade(demo_core.db)
    assert counted(demo_core.db) == actual(demo_core.db)
    flow.start("AGR-2027-001")      # and the triggers are back
    assert counted(demo_core.db) == actual(demo_core.db)


SCOPED_USERS = ["school_unit", "farm_unit", "edu_bureau", "agri_bureau", "edu_section", "agri_section", "expert1"]


def test_scoped_lists_count_and_page_each_visible_case_once(flow, api, demo_core):
    """A scoped user's list is a merge of disjoint branches (cases they started, their unit's,
    their department's or section's projects'): the cases a unit officer started are in two of
    them and must still be counted and listed once."""
    for code in ("EDU-2027-001", "EDU-2027-002", "AGR-2027-002"):
        flow.start(code)
    flow.walk(flow.start("AGR-2027-001"), "AGR-2027-001", NON_KEY_CHAIN[:2])
    with demo_core.db.reading() as s:
        all_ids = list(s.scalars(select(Case.id)))
    for username in SCOPED_USERS:
        client = api(username)
        visible = {i for i in all_ids if client.get(f"/api/v1/cases/{i}").status_code == 200}
        assert visible or username == "expert1"     # the expert sees only cases that asked them
        for filters in ("", "&status=running", "&process=goal_review", "&year=2027"):
            paged, total, offset = [], None, 0
            while True:
                answer = client.get(f"/api/v1/cases?limit=2&offset={offset}{filters}").get_json()
                total = answer["total"] if total is None else total
                assert answer["total"] == total
                if not answer["items"]:
                    break
                paged += answer["items"]
                offset += 2
            ids = [c["id"] for c in paged]
            assert len(ids) == len(set(ids)) == total, (username, filters, ids, total)
            assert [(c["started_at"], c["id"]) for c in paged] == sorted(
                ((c["started_at"], c["id"]) for c in paged), reverse=True)
            if not filters:
                assert set(ids) == visible, username
