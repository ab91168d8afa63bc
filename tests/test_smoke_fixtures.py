def test_api_start_and_inbox(api, project_id):
    unit = api("school_unit")
    r = unit.post("/api/v1/cases", {"process": "goal_review", "project": "EDU-2027-001", "data": {}})
    assert r.status_code == 201, r.get_json()
    case = r.get_json()
    assert case["status"] == "running"
    assert [t["name"] for t in case["tasks"]] == ["Compile performance goals"]
    inbox = unit.get("/api/v1/tasks").get_json()
    assert inbox["total"] == 1


def test_pages_login_and_inbox(pages):
    s = pages("review1")
    r = s.get("/inbox")
    assert r.status_code == 200
    assert "Inbox" in r.get_data(as_text=True)
