"""The report with the upgrade_readiness check: status ``blocked`` and each domain's readiness verdict.

The host's result has the shape virt_policy returns (findings, domains with ``readiness``) next to
the checks role's virtfleet_audit_status, as the report role receives them.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import jsonschema

from ansible_collections.virtfleet.libvirt.plugins.filter import fleet_report as fr

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir, os.pardir))
SCHEMA_PATH = os.path.join(ROOT, "roles", "report", "files", "report.schema.json")
TARGET = "trixie libvirt 11.3.0 qemu 10.0.13"
REASON = {"code": "machine_type_not_offered",
          "device": {"kind": "os", "path": "/domain/os/type", "machine": "pc-i440fx-2.0"},
          "message": "old01: machine type pc-i440fx-2.0 is not offered by %s: its QEMU dropped this old type" % TARGET}


def hostvars():
    finding = {"domain": "old01", "device": REASON["device"], "rule": REASON["code"], "current": {}, "desired": {},
               "status": "blocked", "pending_restart": False, "message": REASON["message"],
               "check": "upgrade_readiness"}
    result = {"changed": False, "findings": [finding], "summary": {}, "domains": [
        {"name": "new01", "uuid": "11111111-1111-4111-8111-111111111111", "status": "compliant",
         "readiness": {"target": TARGET, "starts": True, "reasons": []}},
        {"name": "old01", "uuid": "22222222-2222-4222-8222-222222222222", "status": "blocked",
         "readiness": {"target": TARGET, "starts": False, "reasons": [REASON]}}]}
    status = {"host": "hv-old-01", "uri": "qemu:///system", "mode": "audit", "check_mode": True, "status": "ok",
              "error": None, "checks": {"upgrade_readiness": {"changed": False, "failed": False, "msg": None,
                                                              "summary": {}}}}
    return {"hv-old-01": {"virtfleet_audit_result": result, "virtfleet_audit_status": status}}


def build():
    return fr.build_report(["hv-old-01"], hostvars(), generated_at="2026-12-02T03:00:00Z")


def test_the_json_carries_blocked_and_the_readiness_of_every_domain():
    report = build()
    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        jsonschema.Draft202012Validator(json.load(handle)).validate(json.loads(json.dumps(report)))
    domains = {d["name"]: d for d in report["hosts"][0]["domains"]}
    assert domains["old01"]["status"] == "blocked"
    assert domains["old01"]["readiness"] == {"target": TARGET, "starts": False, "reasons": [REASON]}
    assert domains["new01"]["status"] == "compliant" and domains["new01"]["readiness"]["starts"] is True
    assert report["summary"]["findings"]["by_status"]["blocked"] == 1
    # blocked fails the gate (report_fail_on_drift)
    assert report["summary"]["passed"] is False


def test_html_and_junit_say_which_domain_would_not_start_and_why():
    report = build()
    html = fr.render_html(report)
    assert "✗ would not start on %s: machine_type_not_offered" % TARGET in html
    assert "✓ starts on %s" % TARGET in html
    suites = ET.fromstring(fr.render_junit(report))
    failures = [tc for tc in suites.iter("testcase") if tc.find("failure") is not None]
    assert [tc.get("name") for tc in failures] == ["upgrade_readiness:machine_type_not_offered"]
    assert "old01" in ET.tostring(failures[0], encoding="unicode")
