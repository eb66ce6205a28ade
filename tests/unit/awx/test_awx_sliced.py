"""Job slicing: N slices each write a partial report, one merge step writes the one fleet report.

awx/workflow_sliced_audit.json (an `awx import` file, next to awx/job_templates.json) holds the
sliced audit job template, the merge job template (playbooks/merge_reports.yml) and the workflow
that runs the slices and then, always, the merge. The structural test checks it the way
tests/unit/awx/test_awx_templates.py checks the main file; the functional test runs the sample fleet
(libvirt's test driver) as AWX would slice it (each slice a --limit of its share of the hosts, the
workflow's virtfleet_partial_dir for all), merges, and compares the merged report with the report of
one unsliced run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from ansible_collections.virtfleet.libvirt.tests.unit.awx.test_awx_templates import POST_FIELDS, _validate_survey

ROOT = Path(__file__).resolve().parents[3]
COLLECTIONS = ROOT / ".build" / "collections"
SLICED = json.loads((ROOT / "awx" / "workflow_sliced_audit.json").read_text())
MAIN = json.loads((ROOT / "awx" / "job_templates.json").read_text())
SCHEMA = json.loads((ROOT / "roles" / "report" / "files" / "report.schema.json").read_text())
WORKFLOW_POST_FIELDS = {
    "name", "description", "extra_vars", "organization", "survey_enabled", "allow_simultaneous",
    "ask_variables_on_launch", "inventory", "limit", "scm_branch", "ask_inventory_on_launch",
    "ask_scm_branch_on_launch", "ask_limit_on_launch", "webhook_service", "webhook_credential",
    "ask_labels_on_launch", "ask_skip_tags_on_launch", "ask_tags_on_launch", "job_tags", "skip_tags",
}
NODE_POST_FIELDS = {
    "extra_data", "inventory", "scm_branch", "job_type", "job_tags", "skip_tags", "limit", "diff_mode",
    "verbosity", "unified_job_template", "all_parents_must_converge", "identifier", "forks", "job_slice_count",
    "timeout", "execution_environment",
}


def _key(nk):
    return json.dumps(nk, sort_keys=True)


def test_the_import_file_resolves_and_passes_awx_validation():
    assert set(SLICED) == {"job_templates", "workflow_job_templates"}
    # Every reference resolves to an object of this file or of awx/job_templates.json (imported first).
    known = {_key(a["natural_key"]) for f in (MAIN, SLICED) for key in f for a in f[key] if "natural_key" in a}
    known.add(_key({"name": "Default", "type": "organization"}))
    templates = {t["name"]: t for t in SLICED["job_templates"]}
    for t in templates.values():
        assert set(t) - {"related", "natural_key"} <= POST_FIELDS["job_templates"], t["name"]
        for field in ("inventory", "project", "organization", "execution_environment"):
            assert _key(t[field]) in known, (t["name"], field)
        assert (ROOT / t["playbook"]).is_file()
        if t["survey_enabled"]:
            _validate_survey(t["related"]["survey_spec"])
    sliced = templates["virtfleet: compliance audit (sliced)"]
    merge = templates["virtfleet: merge sliced reports"]
    assert sliced["playbook"] == "playbooks/audit.yml" and sliced["job_type"] == "check"
    assert sliced["job_slice_count"] > 1 and merge["job_slice_count"] == 1
    assert merge["playbook"] == "playbooks/merge_reports.yml"

    (workflow,) = SLICED["workflow_job_templates"]
    assert set(workflow) - {"related", "natural_key"} <= WORKFLOW_POST_FIELDS
    assert not workflow["allow_simultaneous"]  # two runs would share virtfleet_partial_dir
    _validate_survey(workflow["related"]["survey_spec"])
    nodes = {n["identifier"]: n for n in workflow["related"]["workflow_nodes"]}
    for node in nodes.values():
        assert set(node) - {"related", "natural_key"} <= NODE_POST_FIELDS
        assert node["natural_key"]["workflow_job_template"] == workflow["natural_key"]
        assert _key(node["unified_job_template"]) in known
    assert nodes["slices"]["unified_job_template"]["name"] == sliced["name"]
    assert nodes["merge"]["unified_job_template"]["name"] == merge["name"]
    # The merge runs after the slices whatever they did, so failed or unreachable hosts are reported too.
    (always,) = nodes["slices"]["related"]["always_nodes"]
    assert always["identifier"] == "merge"
    assert "virtfleet_partial_dir:" in workflow["extra_vars"]


def _play(playbook, *args):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1",
               ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCALHOST_WARNING="0")
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), str(ROOT / "playbooks" / playbook), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_slices_then_merge_give_the_report_of_one_run(tmp_path):
    pytest.importorskip("libvirt")
    inventory = ["-i", str(ROOT / "playbooks" / "inventory" / "sample_fleet.yml")]
    partial, merged, whole = tmp_path / "partial", tmp_path / "merged", tmp_path / "whole"
    # AWX gives slice i of N the hosts i, i+N, ... of the inventory.
    for number, hosts in enumerate(["hv-ams-01,hv-fra-01", "hv-ams-02"], start=1):
        _play("audit.yml", *inventory, "--check", "--limit", hosts, "-e",
              json.dumps({"virtfleet_partial_dir": str(partial), "virtfleet_report_name": "slice-%d" % number}))
        assert json.loads((partial / ("slice-%d.json" % number)).read_text())["summary"]["hosts"]["total"] == len(
            hosts.split(","))
    assert sorted(p.name for p in (partial / "hosts").iterdir()) == ["hv-ams-01.json", "hv-ams-02.json",
                                                                     "hv-fra-01.json"]
    _play("merge_reports.yml", "-e", json.dumps({"virtfleet_partial_dir": str(partial),
                                                 "virtfleet_report_dir": str(merged)}))
    assert sorted(os.listdir(merged)) == ["compliance.html", "compliance.json", "compliance.xml"]
    assert not (partial / "hosts").exists()  # merged and removed: the next sliced run starts empty
    _play("audit.yml", *inventory, "--check", "-e", json.dumps({"virtfleet_report_dir": str(whole)}))

    report = json.loads((merged / "compliance.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    expected = json.loads((whole / "compliance.json").read_text())
    assert report["summary"] == expected["summary"]
    by_name = {h["name"]: h for h in expected["hosts"]}
    assert sorted(by_name) == sorted(h["name"] for h in report["hosts"])
    for host in report["hosts"]:
        assert host == by_name[host["name"]]


def test_a_failed_merge_never_removes_the_partial_results_even_beside_an_old_report(tmp_path):
    pytest.importorskip("libvirt")
    partial, merged = tmp_path / "partial", tmp_path / "merged"
    _play("audit.yml", "-i", str(ROOT / "playbooks" / "inventory" / "sample_fleet.yml"), "--check", "--limit",
          "hv-ams-01", "-e", json.dumps({"virtfleet_partial_dir": str(partial)}))
    kept = sorted(p.name for p in (partial / "hosts").iterdir())
    assert kept == ["hv-ams-01.json"]
    merged.mkdir()
    (merged / "compliance.json").write_text('{"old": "report of an earlier merge"}\n')   # left from before
    # this merge fails before the report role writes anything (an unknown format, given as an extra var)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(ROOT / "playbooks" / "merge_reports.yml"),
                           "-e", json.dumps({"virtfleet_partial_dir": str(partial), "virtfleet_report_dir": str(merged),
                                             "report_formats": ["pdf"]})],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode != 0, proc.stdout
    assert "report_formats" in proc.stdout + proc.stderr
    assert sorted(p.name for p in (partial / "hosts").iterdir()) == kept            # nothing lost
    assert (merged / "compliance.json").read_text() == '{"old": "report of an earlier merge"}\n'
