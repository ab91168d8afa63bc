"""Deploying process models: versions, immutability, and refusing bad models whole."""
from __future__ import annotations

import json
import os
import uuid

import pytest
from sqlalchemy import create_engine, func, select, text

from engine.app import PerfBudget
from engine.deployment import ModelFiles, parse_model
from engine.demo import sample_goals
from engine.errors import DeploymentError
from engine.processes import PROCESSES_DIR
from storage import queries
from storage.models import AuditEvent, ProcessFile, ProcessVersion

from interop_models import INTEROP_FOLDERS, INTEROP_ROOT, interop_model

GOAL_REVIEW_DIR = PROCESSES_DIR / "goal_review"
BASE = ModelFiles.from_folder(GOAL_REVIEW_DIR)
BPMN = BASE.files["goal_review.bpmn"].decode("utf-8")
META = json.loads(BASE.files["process_model.json"])
XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'


def variant(key: str = "goal_review", **files) -> ModelFiles:
    """The shipped model with some files replaced (str/bytes) or removed (None).
    File names are given with '__' for '.', e.g. review__schema__json."""
    out = dict(BASE.files)
    for name, content in files.items():
        name = name.replace("__", ".")
        if content is None:
            out.pop(name, None)
        else:
            out[name] = content.encode("utf-8") if isinstance(content, str) else content
    return ModelFiles(key, out)


def bpmn_with(old: str, new: str, count: int = 1) -> str:
    assert old in BPMN, old
    return BPMN.replace(old, new, count)


def stored(core) -> dict:
    with core.db.reading() as s:
        return {
            "versions": s.scalar(select(func.count()).select_from(ProcessVersion)),
            "files": s.scalar(select(func.count()).select_from(ProcessFile)),
            "deployed_events": s.scalar(select(func.count()).select_from(AuditEvent)
                                        .where(AuditEvent.action == "deployed")),
            "latest": [(v.key, v.version, v.content_hash) for v in queries.latest_versions(s)],
        }


# ---- the shipped model ---------------------------------------------------------------------

def test_shipped_model_parses_with_its_forms_and_start_role():
    parsed = parse_model(BASE)
    assert parsed.key == "goal_review"
    assert parsed.name == "Performance goal review"
    assert parsed.primary_file == "goal_review.bpmn"
    assert parsed.primary_process_id == "goal_review"
    assert parsed.start_role == "unit"
    assert sorted(parsed.forms) == [
        "final_review.schema.json", "final_review.uischema.json", "goals.schema.json", "goals.uischema.json",
        "preliminary_review.schema.json", "review.schema.json", "review.uischema.json"]
    assert parsed.forms["goals.schema.json"] == json.loads(BASE.files["goals.schema.json"])
    user_tasks = sorted(name for name, spec in parsed.spec.task_specs.items()
                        if type(spec).__name__ == "UserTask")
    assert user_tasks == sorted(["compile_goals", "competent_check", "preliminary_review", "re_examination",
                                 "third_party_review", "final_review"])


def shipped_models() -> list[tuple[str, str, str]]:
    """(key, display name, primary process) of every model folder under processes/."""
    out = []
    for folder in sorted(PROCESSES_DIR.iterdir()):
        if (folder / "process_model.json").is_file():
            meta = json.loads((folder / "process_model.json").read_text())
            out.append((folder.name, meta["display_name"], meta["primary_process_id"]))
    return out


def test_every_shipped_model_is_deployed_as_version_1(core):
    latest = core.processes.latest()
    assert [(v.key, v.version, v.name, v.primary_process_id) for v in latest] == [
        (key, 1, name, process_id) for key, name, process_id in shipped_models()]
    assert {"ex_ante_evaluation", "goal_review", "rectification"} <= {v.key for v in latest}


def test_shipped_model_is_deployed_with_its_files(core):
    goal_review = next(v for v in core.processes.latest() if v.key == "goal_review")
    with core.db.reading() as s:
        files = queries.version_files(s, goal_review.id)
    assert files == BASE.files
    assert goal_review.content_hash == BASE.content_hash


def test_redeploying_identical_content_makes_no_new_version(core):
    before = stored(core)
    row, created = core.processes.deploy(ModelFiles.from_folder(GOAL_REVIEW_DIR))
    assert created is False
    assert (row.key, row.version) == ("goal_review", 1)
    assert sorted((v.key, v.version, created) for v, created in core.processes.deploy_all()) == [
        (key, 1, False) for key, _, _ in shipped_models()]
    assert stored(core) == before


def test_content_hash_depends_on_names_and_contents():
    renamed = dict(BASE.files)
    renamed["extra.md"] = b"notes"
    assert ModelFiles("goal_review", renamed).content_hash != BASE.content_hash
    assert ModelFiles("goal_review", dict(reversed(list(BASE.files.items())))).content_hash == BASE.content_hash


def test_changed_content_makes_version_2_and_running_cases_stay_on_version_1(demo_core, actor, project_id):
    core = demo_core
    unit = actor("school_unit")
    v1_case = core.cases.start(unit, "goal_review", project_id("EDU-2027-001"))

    v2_files = variant(goal_review__bpmn=bpmn_with('name="Competent department check"',
                                                   'name="Competent department review (v2)"'))
    row, created = core.processes.deploy(v2_files)
    assert created is True
    assert (row.key, row.version) == ("goal_review", 2)
    assert {v.key: v.version for v in core.processes.latest()}["goal_review"] == 2

    # The case started on version 1 goes on running version 1.
    task = core.reads.inbox(unit)[0][0]
    result = core.cases.complete(unit, task["id"], sample_goals("Campus safety upgrade"))
    assert [t.name for t in result.next_tasks] == ["Competent department check"]
    assert core.reads.case(actor("supervisor"), v1_case.id)["version"] == 1

    # A new case runs version 2.
    v2_case = core.cases.start(unit, "goal_review", project_id("EDU-2027-002"))
    assert core.reads.case(actor("supervisor"), v2_case.id)["version"] == 2
    task = core.reads.case(actor("supervisor"), v2_case.id)["tasks"][0]
    result = core.cases.complete(unit, task["id"], sample_goals("Smart classroom renovation"))
    assert [t.name for t in result.next_tasks] == ["Competent department review (v2)"]

    # After a restart (nothing cached), version 1 is parsed again from its stored files.
    restarted = PerfBudget(core.db.url)
    try:
        v1_task = restarted.reads.case(actor("supervisor"), v1_case.id)["tasks"][0]
        assert v1_task["step"] == "competent_check"
        result = restarted.cases.complete(actor("edu_bureau"), v1_task["id"], {"decision": "approve"})
        assert [t.name for t in result.next_tasks] == ["Preliminary review"]
        assert restarted.reads.case(actor("supervisor"), v1_case.id)["version"] == 1
    finally:
        restarted.close()


# ---- refusals ------------------------------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n' for i in range(1, 10))
    + "]>\n")
# Below libxml2's amplification limit, in an encoding where '<!DOCTYPE' is not ASCII bytes.
SMALL_EXPANSION_UTF16 = ('<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE d [<!ENTITY lol "lol">'
                         '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>\n')
EXTERNAL_ENTITY = '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'


def _with_prolog(prolog: str, entity: str) -> str:
    return bpmn_with(XML_DECL, prolog).replace('name="Open the case"', f'name="&{entity};"', 1)


BPMN_FILE = "goal_review.bpmn"

# (model, text the message must hold, file at fault, element at fault). The message must name
# the file and the element too, whenever they are known.
REFUSED = [
    pytest.param(variant(goal_review__bpmn=bpmn_with("</bpmn:process>", "")),
                 ["XML error"], BPMN_FILE, None, id="malformed-xml"),
    pytest.param(variant(goal_review__bpmn=b""), ["XML error"], BPMN_FILE, None, id="empty-bpmn"),
    pytest.param(variant(goal_review__bpmn=_with_prolog(BILLION_LAUGHS, "lol9")),
                 ["DOCTYPE"], BPMN_FILE, None, id="billion-laughs"),
    pytest.param(variant(goal_review__bpmn=_with_prolog(BILLION_LAUGHS.replace("<!DOCTYPE", "<!doctype"), "lol9")),
                 [], BPMN_FILE, None, id="billion-laughs-lowercase"),
    pytest.param(variant(goal_review__bpmn=_with_prolog(
        BILLION_LAUGHS.replace('encoding="UTF-8"', 'encoding="UTF-16"'), "lol9").encode("utf-16")),
                 [], BPMN_FILE, None, id="billion-laughs-utf16"),
    pytest.param(variant(goal_review__bpmn=_with_prolog(SMALL_EXPANSION_UTF16, "lol2").encode("utf-16")),
                 ["DOCTYPE"], BPMN_FILE, None, id="entity-expansion-utf16"),
    pytest.param(variant(goal_review__bpmn=_with_prolog(EXTERNAL_ENTITY, "xxe")),
                 ["DOCTYPE"], BPMN_FILE, None, id="external-entity"),
    pytest.param(variant(goal_review__bpmn=_with_prolog(
        EXTERNAL_ENTITY.replace('encoding="UTF-8"', 'encoding="UTF-16"'), "xxe").encode("utf-16")),
                 [], BPMN_FILE, None, id="external-entity-utf16"),
    pytest.param(variant(process_model__json=None),
                 ["process_model.json is missing"], None, None, id="no-process-model-json"),
    pytest.param(variant(process_model__json="{not json"),
                 ["not valid JSON"], "process_model.json", None, id="process-model-not-json"),
    pytest.param(variant(process_model__json="[1, 2]"),
                 ["JSON object"], "process_model.json", None, id="process-model-not-object"),
    pytest.param(variant(process_model__json=json.dumps({**META, "primary_file_name": "nope.bpmn"})),
                 ["primary_file_name 'nope.bpmn' names no file"], "process_model.json", None,
                 id="primary-file-missing"),
    pytest.param(variant(process_model__json=json.dumps({**META, "primary_process_id": ""})),
                 ["primary_process_id is missing"], "process_model.json", None, id="primary-process-id-empty"),
    pytest.param(variant(process_model__json=json.dumps({**META, "primary_process_id": "no_such_process"})),
                 ["'no_such_process' was not found"], BPMN_FILE, None, id="unknown-primary-process-id"),
    pytest.param(variant(review__schema__json=None),
                 ["form file 'review.schema.json' is missing"], BPMN_FILE, "competent_check", id="form-file-missing"),
    pytest.param(variant(goal_review__bpmn=bpmn_with('value="final_review.uischema.json"', 'value="nope.json"')),
                 ["form file 'nope.json' is missing"], BPMN_FILE, "final_review", id="ui-schema-file-missing"),
    pytest.param(variant(goals__schema__json="{'type': 'object'}"),
                 ["form file 'goals.schema.json' is not valid JSON"], BPMN_FILE, "compile_goals", id="form-not-json"),
    pytest.param(variant(goals__schema__json=json.dumps({"type": "object", "properties": {"x": {"type": 12}}})),
                 ["form file 'goals.schema.json' is not a valid JSON Schema"], BPMN_FILE, "compile_goals",
                 id="form-not-json-schema"),
    pytest.param(variant(final_review__schema__json=json.dumps({"type": "object", "required": "decision"})),
                 ["form file 'final_review.schema.json' is not a valid JSON Schema"], BPMN_FILE, "final_review",
                 id="form-bad-required"),
    pytest.param(variant(goal_review__bpmn=bpmn_with('name="Budget review center"', 'name="Canteen"')),
                 ["lane 'Canteen' names no role"], BPMN_FILE, "preliminary_review", id="lane-names-no-role"),
    pytest.param(variant(goal_review__bpmn=bpmn_with("returned_from = None\nmark_goals_in_review()",
                                                     "import os\nreturned_from = None\nmark_goals_in_review()")),
                 ["refused by the sandbox", "import"], BPMN_FILE, "init_case", id="script-import-os"),
    pytest.param(variant(goal_review__bpmn=bpmn_with("approve_goals()", "from os import system\napprove_goals()")),
                 ["refused by the sandbox", "import"], BPMN_FILE, "mark_approved", id="script-from-import"),
    pytest.param(variant(goal_review__bpmn=bpmn_with(
        "decision == 'return'</bpmn:conditionExpression>",
        "decision.__class__ == 'return'</bpmn:conditionExpression>")),
                 ["refused by the sandbox", "__class__"], BPMN_FILE, "competent_decision", id="condition-dunder"),
    pytest.param(variant(goal_review__bpmn=bpmn_with("returned_from = 'final_review' if decision == 'return' else None",
                                                     "returned_from = ().__class__.__bases__")),
                 ["refused by the sandbox", "__class__"], BPMN_FILE, "final_review", id="post-script-dunder"),
    pytest.param(variant(goal_review__bpmn=bpmn_with("approve_goals()", "exec('approve_goals()')")),
                 ["refused by the sandbox", "Exec calls are not allowed"], BPMN_FILE, "mark_approved",
                 id="script-exec"),
    pytest.param(variant(goal_review__bpmn=bpmn_with("approve_goals()", "approve_goals(")),
                 ["refused by the sandbox"], BPMN_FILE, "mark_approved", id="script-syntax-error"),
    pytest.param(variant(goal_review__bpmn=bpmn_with("decision == 'reject'</bpmn:conditionExpression>",
                                                     "decision = 'reject'</bpmn:conditionExpression>")),
                 ["refused by the sandbox"], BPMN_FILE, "final_decision", id="condition-is-an-assignment"),
    pytest.param(variant(key="Goal Review"), ["the folder name is the process key"], None, None,
                 id="key-with-space-and-capitals"),
    pytest.param(variant(key="../goal_review"), ["the folder name is the process key"], None, None,
                 id="key-path-traversal"),
    pytest.param(variant(key=""), ["the folder name is the process key"], None, None, id="key-empty"),
    pytest.param(variant(key="_hidden"), ["the folder name is the process key"], None, None, id="key-underscore"),
    pytest.param(variant(big__md=b"x" * (5 * 1024 * 1024 + 1)), ["larger than 5 MB"], "big.md", None,
                 id="file-too-large"),
]


@pytest.mark.parametrize("model, fragments, file, element", REFUSED)
def test_bad_model_is_refused_whole_with_a_clear_message(core, model, fragments, file, element):
    before = stored(core)
    with pytest.raises(DeploymentError) as err:
        core.processes.deploy(model)
    message = err.value.message
    assert message.startswith(f"{model.key}: "), message
    for fragment in fragments:
        assert fragment in message, message
    if file:
        assert file in message, message
    if element:
        assert f"element '{element}'" in message, message
    assert err.value.details["file"] == file
    assert (err.value.details["element"] or None) == element
    assert err.value.status == 400
    assert stored(core) == before
    # parse_model alone refuses it the same way.
    with pytest.raises(DeploymentError) as again:
        parse_model(model)
    assert again.value.message == message


def test_a_refused_model_under_a_new_key_leaves_no_trace(core):
    before = stored(core)
    model = ModelFiles("other_model", {"process_model.json": json.dumps(
        {"primary_file_name": "x.bpmn", "primary_process_id": "x"}).encode(), "x.bpmn": b"<not xml"})
    with pytest.raises(DeploymentError):
        core.processes.deploy(model)
    assert stored(core) == before
    with core.db.reading() as s:
        assert queries.latest_version(s, "other_model") is None


def test_deploy_all_refuses_a_root_without_models(core, tmp_path):
    with pytest.raises(DeploymentError) as err:
        core.processes.deploy_all(tmp_path)
    assert "no process model folders found" in err.value.message


# ---- foreign models ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def interop_core(tmp_path_factory):
    """One database for all foreign models (each gets its own key), on SQLite or PostgreSQL."""
    pg_url = os.environ.get("PERFBUDGET_TEST_DATABASE_URL")
    if pg_url:
        name = f"pbtest_{uuid.uuid4().hex[:12]}"
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = f"{pg_url.rpartition('/')[0]}/{name}"
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('interop') / 'interop.db'}"
    app = PerfBudget(url)
    app.init_schema()
    yield app
    app.close()
    if pg_url:
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_interop_models_are_found():
    assert INTEROP_ROOT is not None, "shared/interop not found beside the repository"
    assert len(INTEROP_FOLDERS) > 100
    assert {f.relative_to(INTEROP_ROOT).parts[0] for f in INTEROP_FOLDERS} == {
        "camunda-bpm-examples", "spiff-sample-process-models"}


@pytest.mark.parametrize("index, folder", list(enumerate(INTEROP_FOLDERS)),
                         ids=[str(f.relative_to(INTEROP_ROOT)) for f in INTEROP_FOLDERS])
def test_foreign_model_deploys_or_is_refused_with_a_deployment_error(interop_core, index, folder):
    model = interop_model(index, folder)
    before = stored(interop_core)
    try:
        row, created = interop_core.processes.deploy(model)
    except DeploymentError as exc:
        assert exc.message.startswith(f"{model.key}: ")
        assert exc.details["problem"]
        assert stored(interop_core) == before
        with interop_core.db.reading() as s:
            assert queries.latest_version(s, model.key) is None
        return
    assert created is True
    assert (row.key, row.version) == (model.key, 1)
    with interop_core.db.reading() as s:
        assert queries.version_files(s, row.id) == model.files
    loaded = interop_core.specs.get(row.id)
    assert loaded.model.spec.name == json.loads(model.files["process_model.json"])["primary_process_id"]


@pytest.mark.parametrize("ref", ["#/$defs/missing", "https://schemas.example.invalid/decision.json"])
def test_a_form_with_an_unresolvable_ref_is_refused(core, ref):
    schema = json.loads(BASE.files["review.schema.json"])
    schema["properties"]["decision"] = {"$ref": ref}
    before = stored(core)
    with pytest.raises(DeploymentError) as err:
        core.processes.deploy(variant(review__schema__json=json.dumps(schema)))
    assert "review.schema.json" in err.value.message
    assert err.value.details["element"] == "competent_check"
    assert stored(core) == before
