"""Each option of the audit and remediate roles is stated once: in the checks role.

roles/checks/defaults/main.yml and roles/checks/meta/argument_specs.yml hold every option
(checks_<option>); the audit and remediate roles have no defaults and no option copies and read them
by their own documented names (audit_<option>, remediate_<option>), the host variables virtfleet_*
next. The static test holds defaults and argument specs together; the playbook test resolves the
options through Ansible on libvirt's test driver (test:///default, no daemon) and checks every
documented name, the order, and that text lists ("db-01, web-01", an AWX survey answer) are lists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
COLLECTIONS = ROOT / ".build" / "collections"  # made by tests/conftest.py
ROLES = ROOT / "roles"
SNAPSHOTS = ROOT / "tests" / "unit" / "plugins" / "module_utils" / "data" / "snapshots"
OPTIONS = ["uri", "domains", "exclude", "backup_dir", "enabled", "alias_device_types", "disk_io", "disk_cache",
           "readiness_target", "findings_format"]
# The documented name of each option in the audit and remediate roles (None: the role has no such option).
AUDIT = {"uri": "audit_uri", "domains": "audit_domains", "exclude": "audit_exclude", "backup_dir": None,
         "enabled": "audit_checks", "alias_device_types": "audit_alias_device_types",
         "disk_io": "audit_disk_io", "disk_cache": "audit_disk_cache", "readiness_target": "audit_readiness_target",
         "findings_format": "audit_findings_format"}
REMEDIATE = {k: (v or "audit_backup_dir").replace("audit_", "remediate_") for k, v in AUDIT.items()}


def _spec(role):
    return yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]


def test_the_roles_whose_validation_the_playbooks_skip_have_no_options():
    # playbooks/tasks/fleet_checks.yml includes audit/remediate with rolespec_validate: false; that is
    # right only while they declare nothing (the checks role they import validates every option).
    tasks = yaml.safe_load((ROLES.parent / "playbooks" / "tasks" / "fleet_checks.yml").read_text())
    include = tasks[0]["block"][0]["ansible.builtin.include_role"]
    assert include["rolespec_validate"] is False
    for role in ("audit", "remediate"):
        assert _spec(role)["options"] == {}, role
        assert "ansible.builtin.import_role" in (ROLES / role / "tasks" / "main.yml").read_text()


def test_options_are_stated_once_in_the_checks_role():
    defaults = yaml.safe_load((ROLES / "checks" / "defaults" / "main.yml").read_text())
    options = _spec("checks")["options"]
    assert set(defaults) == set(options) == {"checks_mode", "checks_apply"} | {"checks_" + o for o in OPTIONS}
    for role, names in (("audit", AUDIT), ("remediate", REMEDIATE)):
        assert not (ROLES / role / "defaults").exists(), role
        assert not (ROLES / role / "vars").exists(), role
        assert _spec(role)["options"] == {}, role
        description = " ".join(_spec(role)["description"])
        for name in filter(None, names.values()):
            assert "C(%s)" % name in description, (role, name)  # documented, pointing at the checks role
    # No other role defines an audit_/remediate_/checks_ variable again.
    for defaults_file in ROLES.glob("*/defaults/main.yml"):
        if defaults_file.parts[-3] != "checks":
            names = set(yaml.safe_load(defaults_file.read_text()) or {})
            assert not {n for n in names if n.startswith(("audit_", "remediate_", "checks_"))}, defaults_file


def test_survey_questions_match_the_checks_options():
    """The AWX surveys' audit_*/remediate_* questions have the checks role's choices and defaults."""
    export = json.loads((ROOT / "awx" / "job_templates.json").read_text())
    options = _spec("checks")["options"]
    by_name = {name: "checks_" + opt for names in (AUDIT, REMEDIATE) for opt, name in names.items() if name}
    compared = 0
    for template in export["job_templates"]:
        for q in template["related"]["survey_spec"]["spec"]:
            if q["variable"] not in by_name:
                continue
            option = options[by_name[q["variable"]]]
            compared += 1
            if q["type"] == "multiselect":
                assert option["type"] == "list" and set(q["choices"]) == set(option["choices"]), q["variable"]
                assert q["default"].splitlines() == option["default"], q["variable"]
            elif q["type"] == "multiplechoice":
                assert set(q["choices"]) == set(option["choices"]) and q["default"] == option["default"], q["variable"]
            else:
                assert option["type"] in ("str", "path", "list"), q["variable"]
    assert compared >= 5


# One play per mode, one (local) host per scenario, so the scenarios run side by side (forks).
PLAY = """
- name: "The scenarios in {mode}"
  hosts: {group}
  gather_facts: false
  check_mode: {check}
  tasks:
    - name: Run the scenario's role
      ansible.builtin.include_role:
        name: "virtfleet.libvirt.{{{{ scenario_role }}}}"
    - name: Keep what the one virt_policy call was given and found
      ansible.builtin.copy:
        dest: "{out}/{{{{ inventory_hostname }}}}.json"
        content: >-
          {{{{ {{'status': virtfleet_audit_status, 'rules': virtfleet_audit_result.rules,
                'domains': virtfleet_audit_result.domains | map(attribute='name') | list,
                'entries': virtfleet_audit_result.domains,
                'format': virtfleet_audit_result.findings_format,
                'keys': virtfleet_audit_result.keys() | list,
                'findings': virtfleet_audit_result | virtfleet.libvirt.audit_findings}} | to_json }}}}
        mode: "0600"
      check_mode: false
"""
DEFAULTS = {o: _spec("checks")["options"]["checks_" + o]["default"] for o in OPTIONS}


def _scenarios(tmp):
    """name -> (role, role variables, host variables, check mode), all run by one ansible-playbook."""
    runs = {"defaults": ("audit", {}, {}, True)}
    for role, names, other in (("audit", AUDIT, REMEDIATE), ("remediate", REMEDIATE, AUDIT)):
        # Each option under the role's documented name, with a value other than its default; the other
        # role's name for exclude would select nothing, and is not read.
        runs[role + "-all"] = (role, {names["uri"]: "test:///default", names["domains"]: ["test"],
                                      names["enabled"]: ["disk_io", "aliases"], names["disk_io"]: "threads",
                                      names["disk_cache"]: "none", names["alias_device_types"]: ["interface"],
                                      names["findings_format"]: "list", other["exclude"]: ["te*"]}, {}, True)
        runs[role + "-exclude"] = (role, {names["exclude"]: ["te*"], names["enabled"]: ["aliases"]}, {}, True)
    # A real remediation (test:///default is in memory: nothing outlives the connection) backs up.
    fix = {"remediate_checks": "disk_io", "remediate_disk_cache": "none"}
    runs["backup"] = ("remediate", dict(fix, remediate_backup_dir=str(tmp / "backups")), {}, False)
    runs["host-backup"] = ("remediate", fix, {"virtfleet_backup_dir": str(tmp / "host-backups")}, False)
    # AWX survey text: commas and/or spaces.
    runs["text1"] = ("audit", {}, {"virtfleet_exclude": "x-*  te*,y-*"}, True)
    runs["text2"] = ("remediate", {"remediate_checks": "aliases, disk_io"}, {"virtfleet_domains": " test ,"}, True)
    # The role's name wins over the host variable, checks_<option> over both.
    runs["order1"] = ("audit", {"audit_exclude": "x-*"}, {"virtfleet_exclude": "te*"}, True)
    runs["order2"] = ("audit", {"audit_exclude": "x-*", "checks_exclude": ["te*"]}, {}, True)
    # The report-only checks: against a snapshot file on the controller, and against the host itself.
    runs["readiness-file"] = ("audit", {"audit_checks": ["upgrade_readiness", "machine_type"],
                                        "audit_readiness_target": str(tmp / "trixie.json")}, {}, True)
    runs["readiness-live"] = ("remediate", {"remediate_checks": "upgrade_readiness"}, {}, False)
    return runs


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    pytest.importorskip("libvirt")
    tmp = tmp_path_factory.mktemp("role-options")
    (tmp / "trixie.json").write_text((SNAPSHOTS / "trixie.json").read_text())
    groups = {"check_mode": {}, "real_run": {}}
    for name, (role, role_vars, host_vars, check) in _scenarios(tmp).items():
        # The role's variables are host variables here (one play for all scenarios); they keep the
        # order under test: checks_* over <role>_* over virtfleet_*, all of one precedence level.
        groups["check_mode" if check else "real_run"][name] = dict(host_vars, scenario_role=role, **role_vars)
    inventory = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                                  "virtfleet_uri": "test:///default"},
                         "children": {g: {"hosts": hosts} for g, hosts in groups.items()}}}
    (tmp / "inventory.json").write_text(json.dumps(inventory), encoding="utf-8")
    (tmp / "play.yml").write_text("".join(
        PLAY.format(mode=g.replace("_", " "), group=g, check=str(g == "check_mode").lower(), out=tmp)
        for g in groups), encoding="utf-8")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1", ANSIBLE_FORKS="12",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_RETRY_FILES_ENABLED="0")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp / "inventory.json"),
                           str(tmp / "play.yml")], capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = {"tmp": tmp}
    for name in _scenarios(tmp):
        out[name] = json.loads((tmp / (name + ".json")).read_text())
        assert out[name]["status"]["status"] == "ok", (name, out[name]["status"])
    return out


def _kinds(result, check):
    return {f["device"]["kind"] for f in result["findings"] if f["check"] == check}


def test_defaults_are_the_documented_ones(results):
    result = results["defaults"]
    assert list(result["status"]["checks"]) == DEFAULTS["enabled"] and result["rules"] == ["disk_io", "aliases"]
    assert result["domains"] == ["test"]  # test:///default has one domain
    assert _kinds(result, "aliases") <= set(DEFAULTS["alias_device_types"])
    # the findings come as one JSON text by default, read back by the audit_findings filter
    assert DEFAULTS["findings_format"] == "json" and result["format"] == "json"
    assert "findings_json" in result["keys"] and "findings" not in result["keys"] and result["findings"]


@pytest.mark.parametrize("role", ["audit", "remediate"])
def test_every_documented_name_reaches_the_call(results, role):
    result = results[role + "-all"]
    assert result["status"]["uri"] == "test:///default" and result["status"]["mode"] == role
    assert result["domains"] == ["test"]  # selected by name; the other role's exclude is not read
    assert list(result["status"]["checks"]) == ["disk_io", "aliases"]
    assert {f["desired"]["cache"] for f in result["findings"] if f["check"] == "disk_io"} == {"none"}
    assert _kinds(result, "aliases") == {"interface"}
    assert result["format"] == "list" and "findings" in result["keys"] and "findings_json" not in result["keys"]
    assert results[role + "-exclude"]["domains"] == [] and results[role + "-exclude"]["rules"] == ["aliases"]


def test_remediate_backs_up_into_its_backup_dir(results):
    assert results["backup"]["status"]["check_mode"] is False and results["backup"]["rules"] == ["disk_io"]
    assert list((results["tmp"] / "backups").iterdir()), "no backup in remediate_backup_dir"
    assert list((results["tmp"] / "host-backups").iterdir()), "no backup in virtfleet_backup_dir"


def test_text_lists_and_order(results):
    assert results["text1"]["domains"] == []
    assert results["text2"]["domains"] == ["test"]
    assert list(results["text2"]["status"]["checks"]) == ["aliases", "disk_io"]
    assert results["order1"]["domains"] == ["test"]
    assert results["order2"]["domains"] == []


def test_the_readiness_checks_take_a_snapshot_file_or_the_host_itself(results):
    from_file = results["readiness-file"]
    assert from_file["rules"] == ["upgrade_readiness", "machine_type"]
    readiness = from_file["entries"][0]["readiness"]
    assert readiness["target"] == "trixie libvirt 11.3.0 qemu 10.0.13" and readiness["starts"] is False
    assert {f["check"] for f in from_file["findings"]} == {"upgrade_readiness"}
    assert {f["status"] for f in from_file["findings"]} == {"blocked"}
    # live, in a real remediate run: the test driver's own capabilities, and nothing is changed
    live = results["readiness-live"]
    assert live["rules"] == ["upgrade_readiness"] and live["status"]["check_mode"] is False
    assert " TEST " in live["entries"][0]["readiness"]["target"]
    assert live["entries"][0]["changed"] is False
