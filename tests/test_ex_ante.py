"""Link 1: ex-ante evaluation through the engine and the pages, and its gate on goal review."""

import pytest

from engine import demo, ex_ante
from engine.errors import Conflict, InvalidData

SITE = {"examined_on": "2026-12-03", "participants": "Li Na, Wang Jun (review center); the unit's head",
        "findings": "Site and permits as declared; the existing library seats 60 for 1,800 pupils.",
        "documents": [{"title": "Land use permit", "reference": "JY-2026-118"}]}
APPROVE = {"decision": "approve", "comment": "Complete declaration."}


def rated(*ratings: str) -> list[dict]:
    """The scoring sheet with the dimensions rated in order (one rating per dimension)."""
    sheet = ex_ante.scoring_sheet()
    per = {d: r for d, r in zip(("necessity", "economy", "goal_rationality", "feasibility", "fund_compliance"),
                                ratings)}
    return [{**row, "rating": per[row["dimension"]]} for row in sheet]


class Flow:
    def __init__(self, core, actor, project_id):
        self.core, self.actor, self.project_id = core, actor, project_id

    def start(self, code, who="school_unit"):
        return self.core.cases.start(self.actor(who), "ex_ante_evaluation", self.project_id(code)).id

    def task(self, case_id):
        tasks = self.core.reads.case(self.actor("supervisor"), case_id, with_data=False)["tasks"]
        assert len(tasks) == 1, tasks
        return tasks[0]

    def do(self, case_id, who, data, step=None):
        task = self.task(case_id)
        if step:
            assert task["step"] == step
        return self.core.cases.complete(self.actor(who), task["id"], data)

    def project(self, code):
        return self.core.reads.project(self.actor("supervisor"), self.project_id(code))


@pytest.fixture
def flow(core, actor, project_id):
    return Flow(core, actor, project_id)


def declaration(code="EDU-2027-004"):
    return demo.sample_declaration("School library expansion", "900000")


def test_the_scoring_sheet_has_four_sub_items_per_dimension():
    sheet = ex_ante.scoring_sheet()
    assert len(sheet) == 20
    assert {row["dimension"] for row in sheet} == {"necessity", "economy", "goal_rationality", "feasibility",
                                                   "fund_compliance"}
    assert all(row["rating"] is None for row in sheet)


@pytest.mark.parametrize("ratings, total, conclusion", [
    (("excellent",) * 5, 100, "support"),
    (("good",) * 5, 80, "support"),                                  # 4 x 4 x 5 = 80: the cut-off itself
    (("good", "good", "good", "good", "fair"), 76, "adjust"),
    (("fair",) * 5, 60, "adjust"),
    (("fair", "fair", "fair", "fair", "poor"), 52, "reject"),
])
def test_result_from_the_rated_sheet(core, ratings, total, conclusion):
    result = ex_ante.result(rated(*ratings), core.settings.values())
    assert (result["total"], result["conclusion"]) == (total, conclusion)
    assert sum(result["dimensions"].values()) == total


def test_cut_offs_are_settings(core, actor):
    core.settings.update(actor("admin"), "ex_ante.adjust_min", {"value": 50})
    assert ex_ante.result(rated("fair", "fair", "fair", "fair", "poor"), core.settings.values())["conclusion"] \
        == "adjust"


def test_an_unrated_sub_item_is_refused(core):
    sheet = rated(*("good",) * 5)
    sheet[3]["rating"] = None
    with pytest.raises(ValueError, match="not rated"):
        ex_ante.result(sheet, core.settings.values())


def test_goal_review_waits_for_a_passed_evaluation(flow, core, actor, project_id):
    with pytest.raises(Conflict, match="needs a passed ex-ante evaluation"):
        core.cases.start(actor("school_unit"), "goal_review", project_id("EDU-2027-004"))
    case_id = flow.start("EDU-2027-004")
    assert flow.project("EDU-2027-004")["ex_ante_status"] == "in_progress"
    flow.do(case_id, "school_unit", declaration(), "declare_project")
    flow.do(case_id, "edu_bureau", APPROVE, "competent_check")
    flow.do(case_id, "review1", SITE, "site_examination")
    result = flow.do(case_id, "review1", {"scores": rated(*("good",) * 5), "summary": "Sound."}, "scoring")
    assert result.case.status == "completed"
    project = flow.project("EDU-2027-004")
    assert project["ex_ante_status"] == "support"
    [evaluation] = project["ex_ante_evaluations"]
    assert (evaluation["round"], evaluation["total"], evaluation["conclusion"]) == (1, 80.0, "support")
    assert evaluation["site_examination"]["participants"] == SITE["participants"]
    assert evaluation["third_party"] is None
    # Now the goals may be reviewed.
    goal_case = core.cases.start(actor("school_unit"), "goal_review", project_id("EDU-2027-004"))
    assert goal_case.status == "running"


def test_a_key_project_gets_a_third_party_opinion(flow):
    case_id = flow.start("AGR-2027-004", "farm_unit")
    flow.do(case_id, "farm_unit", demo.sample_declaration("Irrigation canal renovation", "5600000"),
            "declare_project")
    flow.do(case_id, "agri_bureau", APPROVE, "competent_check")
    flow.do(case_id, "review1", SITE, "site_examination")
    assert flow.task(case_id)["role"] == "third_party"
    flow.do(case_id, "expert1", {"opinion": "Costs are in line with the provincial standard.",
                                 "recommendation": "support"}, "third_party_opinion")
    flow.do(case_id, "review1", {"scores": rated(*("excellent",) * 5), "summary": "Strong case."}, "scoring")
    [evaluation] = flow.project("AGR-2027-004")["ex_ante_evaluations"]
    assert evaluation["third_party"] == {"opinion": "Costs are in line with the provincial standard.",
                                         "recommendation": "support"}
    assert evaluation["total"] == 100.0


def test_support_after_adjustment_goes_back_to_the_unit_then_straight_to_scoring(flow):
    case_id = flow.start("EDU-2027-004")
    flow.do(case_id, "school_unit", declaration(), "declare_project")
    flow.do(case_id, "edu_bureau", APPROVE, "competent_check")
    flow.do(case_id, "review1", SITE, "site_examination")
    flow.do(case_id, "review1", {"scores": rated("good", "good", "good", "good", "fair"),
                                 "summary": "Funding plan needs detail."}, "scoring")
    assert flow.task(case_id)["step"] == "declare_project"
    assert flow.project("EDU-2027-004")["ex_ante_status"] == "in_progress"
    flow.do(case_id, "school_unit", {**declaration(), "government_fund": 100000}, "declare_project")
    # Re-evaluated without another competent check or site examination; the sheet comes back filled.
    task = flow.core.reads.task(flow.actor("review1"), flow.task(case_id)["id"])
    assert task["step"] == "scoring"
    assert [row["rating"] for row in task["data"]["scores"]][-4:] == ["fair"] * 4
    flow.do(case_id, "review1", {"scores": rated(*("good",) * 5), "summary": "Adjusted."}, "scoring")
    evaluations = flow.project("EDU-2027-004")["ex_ante_evaluations"]
    assert [(e["round"], e["conclusion"], e["total"]) for e in evaluations] == [(1, "adjust", 76.0),
                                                                                (2, "support", 80.0)]
    assert flow.project("EDU-2027-004")["ex_ante_status"] == "support"


def test_do_not_support_ends_the_case_and_keeps_the_gate_closed(flow, core, actor, project_id):
    case_id = flow.start("EDU-2027-004")
    flow.do(case_id, "school_unit", declaration(), "declare_project")
    flow.do(case_id, "edu_bureau", APPROVE, "competent_check")
    flow.do(case_id, "review1", SITE, "site_examination")
    result = flow.do(case_id, "review1", {"scores": rated(*("poor",) * 5), "summary": "Not needed now."})
    assert result.case.status == "completed"
    assert flow.project("EDU-2027-004")["ex_ante_status"] == "reject"
    history = core.reads.case(actor("supervisor"), case_id)["history"]
    assert history[-1]["action"] == "finished" and history[-1]["data"] == {"end": "Not supported"}
    with pytest.raises(Conflict, match="evaluation: reject"):
        core.cases.start(actor("school_unit"), "goal_review", project_id("EDU-2027-004"))


def test_the_competent_department_returns_the_declaration(flow):
    case_id = flow.start("EDU-2027-004")
    flow.do(case_id, "school_unit", declaration(), "declare_project")
    flow.do(case_id, "edu_bureau", {"decision": "return", "comment": "State the pupils served."},
            "competent_check")
    flow.do(case_id, "school_unit", declaration(), "declare_project")
    assert flow.task(case_id)["step"] == "competent_check"


@pytest.mark.parametrize("step_data, field", [
    ({k: v for k, v in SITE.items() if k != "findings"}, "findings"),
    ({**SITE, "examined_on": "next week"}, "examined_on"),
])
def test_the_site_examination_record_is_mandatory(flow, step_data, field):
    case_id = flow.start("EDU-2027-004")
    flow.do(case_id, "school_unit", declaration())
    flow.do(case_id, "edu_bureau", APPROVE)
    with pytest.raises(InvalidData) as err:
        flow.do(case_id, "review1", step_data, "site_examination")
    assert field in err.value.details
    assert flow.task(case_id)["step"] == "site_examination"


def test_every_sub_item_must_be_rated(flow):
    case_id = flow.start("EDU-2027-004")
    flow.do(case_id, "school_unit", declaration())
    flow.do(case_id, "edu_bureau", APPROVE)
    flow.do(case_id, "review1", SITE)
    scores = rated(*("good",) * 5)
    del scores[7]["rating"]
    with pytest.raises(InvalidData) as err:
        flow.do(case_id, "review1", {"scores": scores, "summary": "x"}, "scoring")
    assert "scores.7.rating" in err.value.details


def test_one_evaluation_at_a_time(flow):
    flow.start("EDU-2027-004")
    with pytest.raises(Conflict, match="already has an ex-ante evaluation in progress"):
        flow.start("EDU-2027-004")


def test_the_scoring_page_shows_the_fixed_sheet(flow, pages):
    case_id = flow.start("EDU-2027-004")
    flow.do(case_id, "school_unit", declaration())
    flow.do(case_id, "edu_bureau", APPROVE)
    flow.do(case_id, "review1", SITE)
    html = pages("review1").get(f"/tasks/{flow.task(case_id)['id']}").get_data(as_text=True)
    assert html.count('name="scores-') == 20 * 4          # dimension, item (hidden), rating, note per row
    assert "Add row" not in html
    assert "Necessity of establishment" in html and "Policy basis and mandate" in html
    response = pages("review1").post_form(f"/tasks/{flow.task(case_id)['id']}", {
        **{f"scores-{i}-{k}": v for i, row in enumerate(rated(*("good",) * 5)) for k, v in row.items()},
        "summary": "Sound plan."})
    assert response.status_code == 302
    assert flow.project("EDU-2027-004")["ex_ante_status"] == "support"


def test_project_page_shows_the_evaluations(pages, project_id):
    html = pages("supervisor").get(f"/projects/{project_id('EDU-2027-001')}").get_data(as_text=True)
    assert 'data-testid="ex-ante-status">support' in html
    assert "86.0" in html
    html = pages("supervisor").get(f"/projects/{project_id('EDU-2027-004')}").get_data(as_text=True)
    assert "needed before its goals are reviewed" in html
