"""The findings of a virt_policy result in either format: the audit_findings filter and the report merge.

The checks role asks virt_policy for ``findings_format: json`` (the findings as one JSON text,
``findings_json``); the report must be the same as from the list, and a text that is not a list of
findings must fail that host alone, saying so.
"""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.virtfleet.libvirt.plugins.filter import audit_findings as af
from ansible_collections.virtfleet.libvirt.plugins.filter import fleet_report as fr
from ansible_collections.virtfleet.libvirt.tests.unit.plugins.filter.test_report_fixtures import HOSTS, fleet_hostvars

NOW = "2026-12-02T04:00:00Z"


def as_json(hostvars):
    """The same fleet as the checks role leaves it now: every result's findings as one JSON text."""
    for host_vars in hostvars.values():
        result = host_vars.get("virtfleet_audit_result")
        if result and "findings" in result:
            result["findings_json"] = json.dumps(result.pop("findings"), separators=(",", ":"))
            result["findings_format"] = "json"
    return hostvars


def test_the_report_is_the_same_from_either_format():
    listed = fr.build_report(list(HOSTS), fleet_hostvars(), generated_at=NOW)
    texted = fr.build_report(list(HOSTS), as_json(fleet_hostvars()), generated_at=NOW)
    assert listed["summary"]["findings"]["total"] > 5
    assert texted == listed


def test_the_filter_gives_the_list_of_either_format():
    listed = fleet_hostvars()["hv-ams-01"]["virtfleet_audit_result"]
    texted = as_json(fleet_hostvars())["hv-ams-01"]["virtfleet_audit_result"]
    assert "findings" not in texted and isinstance(texted["findings_json"], str)
    assert af.audit_findings(texted) == af.audit_findings(listed) == listed["findings"]
    assert af.audit_findings({"summary": {}}) == []  # a result without findings
    assert af.FilterModule().filters() == {"audit_findings": af.audit_findings}


@pytest.mark.parametrize("result, says", [
    ({"findings_json": "[{\"check\": \"aliases\""}, "findings_json is not valid JSON"),
    ({"findings_json": "{\"check\": \"aliases\"}"}, "findings_json holds dict, not a list"),
    ({"findings_json": 7}, "findings_json is not a JSON text but int"),
    ({"findings": "drift"}, "findings is not a list but str"),
    ("a text", "not a virt_policy result"),
])
def test_the_filter_names_what_is_wrong(result, says):
    with pytest.raises(AnsibleFilterError, match="audit_findings: " + says):
        af.audit_findings(result)


def test_a_cut_findings_text_fails_that_host_alone():
    hostvars = as_json(fleet_hostvars())
    result = hostvars["hv-ams-02"]["virtfleet_audit_result"]
    result["findings_json"] = result["findings_json"][:-40]
    report = fr.build_report(list(HOSTS), hostvars, generated_at=NOW)
    broken = next(h for h in report["hosts"] if h["name"] == "hv-ams-02")
    assert broken["status"] == "failed"
    assert broken["error"].startswith("virtfleet_audit_result: findings_json is not valid JSON")
    assert "rerun the audit" in broken["error"]
    # its domains are still listed (from the result's domains), the other hosts are whole
    others = fr.build_report(["hv-ams-01", "hv-fra-01"], hostvars, generated_at=NOW)
    kept = [h["status"] for h in report["hosts"] if h["name"] in ("hv-ams-01", "hv-fra-01")]
    assert [h["status"] for h in others["hosts"]] == kept
    assert report["summary"]["passed"] is False and "hv-ams-02" in report["summary"]["failed_hosts"]


@pytest.mark.parametrize("indent", [None, 2])
def test_limit_decodes_only_the_first_findings(indent):
    findings = [{"check": "aliases", "domain": "d%03d" % i, "message": "m, ] [ \"%d\"" % i} for i in range(50)]
    text = " \n" + json.dumps(findings, indent=indent) + "\n"
    for limit in (0, 1, 10, 50, 70):
        assert af.audit_findings({"findings_json": text}, limit=limit) == findings[:limit], limit
        assert af.audit_findings({"findings": findings}, limit=limit) == findings[:limit], limit
    assert af.audit_findings({"findings_json": "[]"}, limit=10) == []
    assert af.audit_findings({"findings_json": " [ ] "}, limit=10) == []
    # the text after the tenth finding is not decoded at all
    assert af.audit_findings({"findings_json": text[:text.index('"d010"')]}, limit=10) == findings[:10]


@pytest.mark.parametrize("text, says", [
    ('[{"a": 1} {"b": 2}]', "expected ',' or ']'"),
    ('[{"a": 1}, {"b": ', "findings_json is not valid JSON"),
    ('{"a": 1}', "holds dict"),
])
def test_limit_still_names_a_broken_text(text, says):
    with pytest.raises(AnsibleFilterError, match=says):
        af.audit_findings({"findings_json": text}, limit=5)


@pytest.mark.parametrize("limit", [-1, "10", True, 2.5])
def test_a_bad_limit_is_refused(limit):
    with pytest.raises(AnsibleFilterError, match="limit must be a number of findings"):
        af.audit_findings({"findings": []}, limit=limit)
