"""awx/job_templates.json: an `awx import` file (awxkit 24.6.1) whose job templates run our playbooks.

AWX cannot run here, so this checks what AWX and awxkit would check or silently get wrong:
- the layout awxkit's import_assets reads (resource keys, natural keys that resolve, `related`),
- only fields AWX 24.6.1 accepts on POST (awxkit drops unknown fields without a word),
- every survey against the rules of AWX's survey_spec endpoint (awx/api/views JobTemplateSurveySpec),
- every playbook exists and every survey variable is one the playbooks or roles read, with the
  same choices, type and default as the role's argument_specs.
"""

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
EXPORT = ROOT / "awx" / "job_templates.json"

# awxkit.api.pages.api.EXPORTABLE_RESOURCES (24.6.1); note `inventory`, not `inventories`.
EXPORTABLE = {
    "users", "organizations", "teams", "credential_types", "credentials", "notification_templates",
    "projects", "inventory", "inventory_sources", "job_templates", "workflow_job_templates",
    "execution_environments", "applications", "schedules",
}
# resource key -> natural_key type and its fields (awxkit page classes' NATURAL_KEY).
NATURAL = {
    "organizations": ("organization", ("name",)),
    "execution_environments": ("execution_environment", ("name",)),
    "projects": ("project", ("organization", "name")),
    "inventory": ("inventory", ("organization", "name")),
    "job_templates": ("job_template", ("organization", "name")),
    "groups": ("group", ("name", "inventory")),
}
# POST fields of AWX 24.6.1's serializers (OPTIONS .../actions/POST); awxkit sends only these.
POST_FIELDS = {
    "execution_environments": {"name", "description", "organization", "image", "credential", "pull"},
    "projects": {
        "name", "description", "local_path", "scm_type", "scm_url", "scm_branch", "scm_refspec",
        "scm_clean", "scm_track_submodules", "scm_delete_on_update", "credential", "timeout",
        "organization", "scm_update_on_launch", "scm_update_cache_timeout", "allow_override",
        "default_environment", "signature_validation_credential",
    },
    "inventory": {
        "name", "description", "organization", "kind", "host_filter", "variables",
        "prevent_instance_group_fallback",
    },
    "groups": {"name", "description", "variables"},
    "job_templates": {
        "name", "description", "job_type", "inventory", "project", "playbook", "scm_branch", "forks",
        "limit", "verbosity", "extra_vars", "job_tags", "force_handlers", "skip_tags", "start_at_task",
        "timeout", "use_fact_cache", "organization", "execution_environment", "host_config_key",
        "ask_scm_branch_on_launch", "ask_diff_mode_on_launch", "ask_variables_on_launch",
        "ask_limit_on_launch", "ask_tags_on_launch", "ask_skip_tags_on_launch", "ask_job_type_on_launch",
        "ask_verbosity_on_launch", "ask_inventory_on_launch", "ask_credential_on_launch",
        "ask_execution_environment_on_launch", "ask_labels_on_launch", "ask_forks_on_launch",
        "ask_job_slice_count_on_launch", "ask_timeout_on_launch", "ask_instance_groups_on_launch",
        "survey_enabled", "become_enabled", "diff_mode", "allow_simultaneous", "custom_virtualenv",
        "job_slice_count", "webhook_service", "webhook_credential", "prevent_instance_group_fallback",
    },
}
# Objects the file may reference without defining: every AWX install has the organization Default.
EXTERNAL = [{"name": "Default", "type": "organization"}]
# awx.main.constants.SURVEY_TYPE_MAPPING: question type -> accepted type of its default.
SURVEY_TYPES = {
    "text": str, "textarea": str, "password": str, "multiplechoice": str, "multiselect": str,
    "integer": int, "float": (float, int),
}
TEMPLATES = {
    "virtfleet: compliance audit (check mode)": "playbooks/audit.yml",
    "virtfleet: remediate": "playbooks/remediate.yml",
    "virtfleet: detach devices": "playbooks/detach.yml",
    "virtfleet: rolling upgrade": "playbooks/rolling_upgrade.yml",
}


@pytest.fixture(scope="module")
def export():
    with EXPORT.open() as f:
        return json.load(f)


@pytest.fixture(scope="module")
def templates(export):
    return {t["name"]: t for t in export["job_templates"]}


def _assets(export):
    """(resource key, asset) for every object awxkit creates, nested related objects included."""
    for key, assets in export.items():
        for asset in assets:
            yield key, asset
            for rel, items in asset.get("related", {}).items():
                if isinstance(items, list):
                    for item in items:
                        if isinstance(item, dict) and "natural_key" in item:
                            yield rel, item


def _references(value):
    """Every natural-key reference (a dict with a `type`) inside a value, nested keys included."""
    if isinstance(value, dict):
        if "type" in value:
            yield value
        for v in value.values():
            yield from _references(v)


def _code_lines(path):
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))


@pytest.fixture(scope="module")
def ansible_sources():
    """Code (comments dropped) of every playbook, task file, role file and template."""
    files = [p for d in ("playbooks", "roles") for p in (ROOT / d).rglob("*")
             if p.is_file() and p.suffix in (".yml", ".yaml", ".j2")]
    return {p.relative_to(ROOT).as_posix(): _code_lines(p) for p in files}


@pytest.fixture(scope="module")
def role_options():
    """variable -> (role, option spec) from every role's meta/argument_specs.yml (entry point main)."""
    options = {}
    for spec_file in sorted((ROOT / "roles").glob("*/meta/argument_specs.yml")):
        spec = yaml.safe_load(spec_file.read_text()) or {}
        main = (spec.get("argument_specs") or {}).get("main") or {}
        for name, option in (main.get("options") or {}).items():
            options[name] = (spec_file.parts[-3], option)
    return options


def test_layout_is_what_awx_import_reads(export):
    assert set(export) <= EXPORTABLE
    assert {"projects", "inventory", "execution_environments", "job_templates"} <= set(export)
    for key, asset in _assets(export):
        nk_type, nk_fields = NATURAL[key]
        nk = asset["natural_key"]
        assert nk["type"] == nk_type, (key, nk)
        assert set(nk) == set(nk_fields) | {"type"}, (key, nk)
        for field in nk_fields:
            if isinstance(nk[field], dict):  # a foreign key: the same reference as the field itself
                assert nk[field] == asset.get(field, nk[field]), (key, field)
            else:
                assert nk[field] == asset[field], (key, field)


def test_only_fields_awx_accepts(export):
    for key, asset in _assets(export):
        unknown = set(asset) - POST_FIELDS[key] - {"natural_key", "related"}
        assert not unknown, f"{key} {asset['name']}: AWX ignores {sorted(unknown)}"


def test_every_reference_resolves(export):
    defined = [asset["natural_key"] for key, asset in _assets(export)] + EXTERNAL
    for key, asset in _assets(export):
        for field, value in asset.items():
            if field in ("natural_key", "related"):
                continue
            for ref in _references(value):
                assert ref in defined, f"{key} {asset['name']}.{field} -> {ref} is defined nowhere"


def test_choice_fields(export):
    for ee in export["execution_environments"]:
        assert ee["pull"] in ("", "always", "missing", "never")
        assert re.fullmatch(r"[\w.-]+(:\d+)?(/[\w.-]+)+:[\w.-]+", ee["image"]), ee["image"]
    for project in export["projects"]:
        assert project["scm_type"] == "git" and project["scm_url"].endswith(".git")
    for t in export["job_templates"]:
        assert t["job_type"] in ("run", "check")
        assert 0 <= t["verbosity"] <= 5
        assert t["webhook_service"] in ("", "github", "gitlab", "bitbucket_dc")
        assert isinstance(yaml.safe_load(t["extra_vars"]) or {}, dict)


def test_ee_image_holds_no_collection_version(export):
    """The project installs the collection from its own checkout (collections/requirements.yml), so the
    EE only carries the runtime: its image is the latest build (scripts/build-ee.sh tags it), pulled always."""
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    (ee,) = export["execution_environments"]
    assert ee["image"] == "quay.io/virtfleet/virtfleet-ee:latest" and ee["pull"] == "always"
    assert version not in EXPORT.read_text()


def test_the_four_templates(templates):
    assert {name: t["playbook"] for name, t in templates.items()} == TEMPLATES
    audit = templates["virtfleet: compliance audit (check mode)"]
    assert audit["job_type"] == "check" and audit["ask_limit_on_launch"]
    assert templates["virtfleet: remediate"]["job_type"] == "run"
    for t in templates.values():
        assert t["survey_enabled"] and t["related"]["survey_spec"]["spec"], t["name"]
        assert t["execution_environment"] == {"name": "virtfleet-ee", "type": "execution_environment"}


@pytest.mark.parametrize("playbook", sorted(set(TEMPLATES.values())))
def test_playbook_exists_and_is_a_playbook(playbook):
    # AWX offers a project file as a playbook only when it is YAML with plays in it.
    path = ROOT / playbook
    assert path.is_file(), f"{playbook} does not exist"
    plays = yaml.safe_load(path.read_text())
    assert isinstance(plays, list) and all("hosts" in p or "import_playbook" in p for p in plays)


def _validate_survey(spec):
    """AWX 24.6.1's JobTemplateSurveySpec._validate_spec_data, as assertions."""
    for field in ("name", "description"):
        assert isinstance(spec.get(field), str), field
    assert isinstance(spec.get("spec"), list) and spec["spec"], "'spec' doesn't contain any items"
    seen = set()
    for q in spec["spec"]:
        for field in ("type", "question_name", "variable"):
            assert isinstance(q.get(field), str), (q, field)
        assert isinstance(q.get("required"), bool), q
        assert q["variable"] not in seen, f"variable {q['variable']} duplicated"
        seen.add(q["variable"])
        assert q["type"] in SURVEY_TYPES, q
        if q.get("default", "") != "":
            assert isinstance(q["default"], SURVEY_TYPES[q["type"]]), q
        for key in ("min", "max"):
            assert q.get(key) is None or isinstance(q[key], int), (q, key)
        if q["type"] in ("multiplechoice", "multiselect"):
            assert q.get("choices"), f"{q['variable']} must specify choices"
            defaults = q.get("default", "").splitlines()
            if q["type"] == "multiplechoice":
                assert len(defaults) <= 1
            assert all(d in q["choices"] for d in defaults), q


def _default_ok(q):
    """AWX passes a survey default to the job only when it passes its own question's validation."""
    d = q["default"]
    if q["type"] in ("text", "textarea"):
        return q.get("min") in ("", None) or q["min"] <= len(d) <= q.get("max", len(d))
    if q["type"] == "integer":
        return q["min"] <= d <= q["max"]
    if q["type"] == "multiplechoice":
        return d in q["choices"]
    return True


def test_surveys_pass_awx_validation(templates):
    for t in templates.values():
        survey = t["related"]["survey_spec"]
        _validate_survey(survey)
        for q in survey["spec"]:
            assert re.fullmatch(r"[a-z_][a-z0-9_]*", q["variable"]), q["variable"]
            assert not q["variable"].startswith(("awx_", "tower_")), "reserved for AWX's own variables"
            assert q["type"] != "password", "nothing secret belongs in these surveys"
            if "default" in q:
                assert _default_ok(q), (t["name"], q["variable"])


def test_survey_variables_are_read_by_the_playbooks(templates, ansible_sources):
    unused = []
    for t in templates.values():
        for q in t["related"]["survey_spec"]["spec"]:
            pattern = re.compile(rf"\b{q['variable']}\b")
            if not any(pattern.search(code) for code in ansible_sources.values()):
                unused.append(f"{t['name']}: {q['variable']}")
    assert not unused, f"survey variables no playbook or role reads: {unused}"


def test_survey_questions_match_the_role_options(templates, role_options):
    """A survey answer that overrides a role option must be one the role accepts, of its type."""
    compared = 0
    for t in templates.values():
        for q in t["related"]["survey_spec"]["spec"]:
            if q["variable"] not in role_options:
                continue
            role, option = role_options[q["variable"]]
            where = f"{t['name']} / {q['variable']} vs role {role}"
            compared += 1
            if q["type"] == "multiselect":
                assert option["type"] == "list", where
                assert set(q["choices"]) == set(option["choices"]), where
                assert q["default"].splitlines() == option["default"], where
            elif q["type"] == "multiplechoice":
                assert option["type"] == "str", where
                assert set(q["choices"]) == set(option["choices"]), where
                assert q["default"] == option["default"], where
            elif q["type"] == "integer":
                assert option["type"] == "int", where
                if "default" in option:
                    assert q["default"] == option["default"], where
            else:
                assert option["type"] in ("str", "path", "list", "raw"), where
    assert compared, "no survey question overrides a role option: is roles/*/meta/argument_specs.yml there?"


def test_natural_keys_are_awxkits():
    """The NATURAL table above is awxkit's own (run where awxkit is installed)."""
    pages = pytest.importorskip("awxkit.api.pages")
    from awxkit.api.pages.api import EXPORTABLE_RESOURCES

    assert set(EXPORTABLE_RESOURCES) == EXPORTABLE
    classes = {"organizations": "Organization", "execution_environments": "ExecutionEnvironment",
               "projects": "Project", "inventory": "Inventory", "job_templates": "JobTemplate",
               "groups": "Group"}
    for key, cls in classes.items():
        assert tuple(getattr(pages, cls).NATURAL_KEY) == NATURAL[key][1], key
