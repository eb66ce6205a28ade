"""virt_policy's findings_format, run as Ansible runs it (subprocess) on libvirt's test driver."""

from __future__ import annotations

import json

import pytest

from ansible_collections.virtfleet.libvirt.tests.unit._support import run_module, write_node
from ansible_collections.virtfleet.libvirt.tests.unit.plugins.modules.test_module_e2e import NODE

pytest.importorskip("libvirt")

RULES = {"disk_io": {"cache": "none"}, "aliases": {}}


@pytest.fixture(scope="module")
def node_uri(tmp_path_factory):
    return write_node(tmp_path_factory, NODE)


def test_json_returns_the_findings_of_list_as_one_text(node_uri, tmp_path):
    listed = run_module("virt_policy", tmp_path, check_mode=True, uri=node_uri, rules=RULES)
    texted = run_module("virt_policy", tmp_path, check_mode=True, uri=node_uri, rules=RULES, findings_format="json")
    assert listed["findings_format"] == "list" and "findings_json" not in listed
    assert texted["findings_format"] == "json" and "findings" not in texted
    assert isinstance(texted["findings_json"], str)
    assert len(listed["findings"]) >= 6 and json.loads(texted["findings_json"]) == listed["findings"]
    for key in ("changed", "domains", "summary", "rules", "host"):
        assert texted[key] == listed[key], key
    assert "Vnc-s3cr3t" not in texted["findings_json"]


def test_a_real_run_returns_its_fixed_findings_in_the_text(node_uri, tmp_path):
    result = run_module("virt_policy", tmp_path, uri=node_uri, rules=RULES, findings_format="json",
                        backup_dir=str(tmp_path / "bk"))
    assert not result.get("failed"), result.get("msg")
    findings = json.loads(result["findings_json"])
    assert result["changed"] is True and findings
    assert {f["status"] for f in findings} <= {"fixed", "pending"} and "fixed" in {f["status"] for f in findings}
    assert result["summary"]["findings"] == len(findings)
    assert {d["name"] for d in result["domains"] if d["changed"]} == {f["domain"] for f in findings}


def test_an_unknown_format_is_refused_naming_the_choices(node_uri, tmp_path):
    result = run_module("virt_policy", tmp_path, check_mode=True, uri=node_uri, rules=RULES, findings_format="yaml")
    assert result["failed"] is True and "findings_format" in result["msg"] and "json" in result["msg"]
