"""Rule settings: defaults, validated changes by administrators, and their history."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from engine.errors import InvalidData, NotFound, PermissionDenied
from engine.rules.defaults import DEFAULTS
from storage.models import Base


def test_migrations_create_exactly_the_models(core):
    with core.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_every_setting_starts_at_its_default(core):
    values = core.settings.values()
    assert values["self_assessment.weights"] == {"budget": 10, "output": 50, "effect": 30, "satisfaction": 10}
    assert values["ex_ante.support_min"] == 80
    assert values["monitoring.bands"]["indicator_blue_from"] == DEFAULTS["monitoring.indicator_blue_from"]
    assert all(not s["changed"] for s in core.settings.describe())
    assert core.settings.history() == []


def test_an_administrator_changes_a_setting_and_the_change_is_kept(core, actor, clock):
    admin = actor("admin")
    core.settings.update(admin, "self_assessment.weights",
                         {"budget": 20, "output": 40, "effect": 30, "satisfaction": 10}, "provincial notice")
    core.settings.update(admin, "ex_ante.adjust_min", {"value": 55})
    values = core.settings.values()
    assert values["self_assessment.weights"]["budget"] == 20
    assert values["ex_ante.adjust_min"] == 55
    history = core.settings.history()
    assert [(h["key"], h["old"], h["new"], h["reason"], h["by"]) for h in history] == [
        ("ex_ante.adjust_min", 60, 55, "", "Administrator"),
        ("self_assessment.weights", {"budget": 10, "output": 50, "effect": 30, "satisfaction": 10},
         {"budget": 20, "output": 40, "effect": 30, "satisfaction": 10}, "provincial notice", "Administrator")]
    # Saving the same value again records nothing.
    core.settings.update(admin, "ex_ante.adjust_min", {"value": 55})
    assert len(core.settings.history()) == 2


@pytest.mark.parametrize("key, data, field", [
    ("self_assessment.weights", {"budget": 10, "output": 50, "effect": 30, "satisfaction": 20}, "budget"),
    ("grades.min", {"excellent": 80, "good": 85, "fair": 60}, "excellent"),
    ("ex_ante.adjust_min", {"value": 90}, "value"),
    ("spot_check.sample_ratio", {"value": 0}, "value"),
    ("rectification.days", {"value": 2.5}, "value"),
    ("monitoring.campaign_month_day", {"value": "13-40"}, "value"),
    ("results.by_grade", {"excellent": "double", "good": "keep", "fair": "reduce", "poor": "cancel"}, "excellent"),
    ("self_assessment.weights", {"budget": 10, "output": 50, "effect": 30}, "satisfaction"),
])
def test_bad_values_are_refused_and_nothing_changes(core, actor, key, data, field):
    with pytest.raises(InvalidData) as err:
        core.settings.update(actor("admin"), key, data)
    assert field in err.value.details
    assert core.settings.history() == []


def test_only_administrators_change_settings(core, actor):
    with pytest.raises(PermissionDenied):
        core.settings.update(actor("perf1"), "ex_ante.adjust_min", {"value": 50})
    with pytest.raises(NotFound):
        core.settings.update(actor("admin"), "no.such.setting", {"value": 1})


def test_settings_page_edits_with_history(pages):
    admin = pages("admin")
    page = admin.get("/admin/settings")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Self-assessment weights" in html and "No change yet" in html
    bad = admin.post_form("/admin/settings/self_assessment.weights",
                          {"budget": "10", "output": "50", "effect": "30", "satisfaction": "30"}, "/admin/settings")
    assert bad.status_code == 400
    assert "The weights add up to 120, not 100." in bad.get_data(as_text=True)
    good = admin.post_form("/admin/settings/self_assessment.weights",
                           {"budget": "15", "output": "45", "effect": "30", "satisfaction": "10",
                            "reason": "pilot"}, "/admin/settings")
    assert good.status_code == 302
    html = admin.get("/admin/settings").get_data(as_text=True)
    assert "pilot" in html and "“Self-assessment weights” saved." in html


@pytest.mark.parametrize("username", ["perf1", "school_unit", "supervisor"])
def test_settings_page_is_for_administrators(pages, username):
    s = pages(username)
    assert s.get("/admin/settings").status_code == 403
    assert s.post_form("/admin/settings/ex_ante.adjust_min", {"value": "50"}, "/inbox").status_code == 403
