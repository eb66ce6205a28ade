"""The report filters (plugins/filter/fleet_report.py): merge, JSON schema, JUnit and HTML."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import jsonschema
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.virtfleet.libvirt.plugins.filter import fleet_report as fr
from ansible_collections.virtfleet.libvirt.tests.unit.plugins.filter.test_report_fixtures import HOSTS, UNREACHABLE, all_findings, fleet_hostvars

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir, os.pardir))
SCHEMA_PATH = os.path.join(ROOT, "roles", "report", "files", "report.schema.json")
NOW = "2026-11-22T04:00:00Z"
HOSTILE = '<script>alert("pwned")</script> & <b>bold</b> \'quoted\''


@pytest.fixture(scope="module")
def schema():
    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        loaded = json.load(handle)
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def validate(report, schema):
    jsonschema.Draft202012Validator(schema).validate(json.loads(json.dumps(report)))


def build(hostvars=None, hosts=None, **kwargs):
    kwargs.setdefault("generated_at", NOW)
    return fr.build_report(list(HOSTS if hosts is None else hosts), fleet_hostvars() if hostvars is None else hostvars,
                           **kwargs)


def host(report, name):
    return next(h for h in report["hosts"] if h["name"] == name)


def key(host_name, domain, finding):
    return (host_name, domain, finding["check"], finding["rule"], finding["device"]["path"], finding["status"])


def report_keys(report):
    return sorted(key(h["name"], d["name"], f) for h in report["hosts"] for d in h["domains"] for f in d["findings"])


# --- merge --------------------------------------------------------------------------------------

def test_merge_summary_counts_every_host_domain_and_finding():
    report = build()
    assert list(report) == ["schema_version", "generated_at", "title", "summary", "hosts"]
    assert report["schema_version"] == "1.2" and report["generated_at"] == NOW
    s = report["summary"]
    assert s["hosts"] == {"total": 4, "ok": 2, "failed": 1, "unreachable": 1}
    assert s["unreachable_hosts"] == ["hv-par-01"] and s["failed_hosts"] == ["hv-fra-01"]
    assert s["domains"] == {"total": 9, "with_findings": 4, "compliant": 5, "pending_restart": 2}
    assert s["findings"]["total"] == 10
    assert s["findings"]["by_status"] == {"failed": 1, "drift": 5, "pending": 2, "skipped": 1, "fixed": 1,
                                          "unknown": 0, "conflict": 0, "not_attempted": 0, "vanished": 0,
                                          "blocked": 0}
    assert s["findings"]["by_check"] == {"aliases": 4, "disk_io": 6}
    assert s["findings"]["by_rule"] == {"alias-mismatch": 1, "alias-missing": 2, "cache-policy": 1,
                                        "io-native-needs-direct-cache": 3, "io-native-not-applicable": 1,
                                        "live-differs": 2}
    assert s["pending_restart"] == 5
    assert s["passed"] is False
    assert s["reasons"] == ["1 finding with status failed", "5 findings with status drift",
                            "1 host unreachable: hv-par-01", "1 host failed: hv-fra-01"]
    assert s["modes"] == ["audit", "remediate"] and s["check_mode"] is None


def test_every_input_finding_appears_once_under_its_host_and_domain():
    hostvars = fleet_hostvars()
    expected = sorted(key(f["host"], f["domain"], f) for f in all_findings(hostvars))
    assert report_keys(build(hostvars)) == expected
    report = build(hostvars)
    finding = host(report, "hv-ams-01")["domains"][1]["findings"][0]
    assert set(finding) == set(fr.FINDING_KEYS)  # host/domain/uuid live on the parents


def test_hosts_keep_report_hosts_order_and_domains_are_sorted():
    report = build(hosts=["hv-par-01", "hv-ams-02", "hv-ams-01", "hv-fra-01", "hv-ams-02"])
    assert [h["name"] for h in report["hosts"]] == ["hv-par-01", "hv-ams-02", "hv-ams-01", "hv-fra-01"]
    ams01 = host(report, "hv-ams-01")
    assert [d["name"] for d in ams01["domains"]] == ["build-ams-01", "db-ams-01", "mon-ams-01", "web-ams-01"]
    by_name = {d["name"]: d for d in ams01["domains"]}
    assert by_name["db-ams-01"]["status"] == "drift" and by_name["db-ams-01"]["pending_restart"] is True
    assert by_name["db-ams-01"]["uuid"] == "7212cdcf-2267-4d74-8465-cb04872cc314"
    assert by_name["web-ams-01"]["status"] == "pending"  # pending + skipped: pending is worse
    assert by_name["mon-ams-01"] == {"name": "mon-ams-01", "uuid": None, "status": "compliant",
                                     "pending_restart": False, "checks": ["aliases", "disk_io"], "findings": []}
    assert host(report, "hv-fra-01")["domains"][0]["status"] == "failed"


def test_unreachable_host_is_reported_never_missing():
    report = build()
    par = host(report, UNREACHABLE)
    assert par["status"] == "unreachable" and par["domains"] == [] and par["checks"] == {}
    assert "unreachable" in par["error"] and par["summary"]["findings"] == 0
    # A host that is not even in the inventory is unreachable too.
    report = build(hosts=["hv-ams-02", "hv-new-99"])
    assert host(report, "hv-new-99")["status"] == "unreachable"
    assert report["summary"]["passed"] is False
    assert report["summary"]["reasons"] == ["1 host unreachable: hv-new-99"]


def test_host_lost_mid_run_is_unreachable_with_its_reason_and_partial_findings(schema):
    # The checks role records a host that stopped answering after some checks ran (the playbooks
    # ignore unreachable hosts in the fleet play): status unreachable, the ssh error, and the
    # findings of the checks that did run.
    hostvars = fleet_hostvars()
    result = hostvars["hv-ams-01"]["virtfleet_audit_result"]
    findings_before = len(result["findings"])
    assert findings_before > 0
    result.update(status="unreachable", error="unreachable: Failed to connect to the host via ssh: Connection refused")
    report = build(hostvars)
    ams01 = host(report, "hv-ams-01")
    assert ams01["status"] == "unreachable"
    assert ams01["error"] == "unreachable: Failed to connect to the host via ssh: Connection refused"
    assert ams01["summary"]["findings"] == findings_before and ams01["mode"] == result["mode"]
    assert report["summary"]["unreachable_hosts"] == ["hv-ams-01", UNREACHABLE]
    assert "2 hosts unreachable: hv-ams-01, %s" % UNREACHABLE in report["summary"]["reasons"]
    validate(report, schema)
    # Without a reason the report still says why.
    del result["error"]
    assert "unreachable" in host(build(hostvars), "hv-ams-01")["error"]


def test_failed_host_keeps_its_findings_and_error():
    fra = host(build(), "hv-fra-01")
    assert fra["status"] == "failed" and fra["error"].startswith("disk_io: ci-fra-01:")
    assert fra["checks"]["disk_io"]["failed"] is True and fra["checks"]["aliases"]["failed"] is False
    assert fra["summary"]["by_status"]["failed"] == 1 and fra["summary"]["by_status"]["fixed"] == 1
    assert fra["mode"] == "remediate" and fra["check_mode"] is False


def test_a_failed_check_fails_the_host_even_if_status_says_ok():
    hostvars = fleet_hostvars()
    result = hostvars["hv-ams-02"]["virtfleet_audit_result"]
    result["checks"]["aliases"].update(failed=True, msg="libvirt: internal error")
    ams02 = host(build(hostvars), "hv-ams-02")
    assert ams02["status"] == "failed" and ams02["error"] == "aliases: libvirt: internal error"


@pytest.mark.parametrize("value", ["garbage", ["a"], {"status": "weird"}, {}])
def test_malformed_result_is_a_failed_host_not_a_crash(value, schema):
    hostvars = fleet_hostvars()
    hostvars["hv-ams-02"]["virtfleet_audit_result"] = value
    report = build(hostvars)
    assert host(report, "hv-ams-02")["status"] == "failed" and host(report, "hv-ams-02")["error"]
    validate(report, schema)


def test_compliant_fleet_passes():
    report = build(hosts=["hv-ams-02"], title="Nightly")
    assert report["title"] == "Nightly"
    assert report["summary"]["passed"] is True and report["summary"]["reasons"] == []
    assert report["summary"]["check_mode"] is True and report["summary"]["modes"] == ["audit"]


def test_pending_skipped_and_fixed_do_not_fail_the_gate():
    hostvars = fleet_hostvars()
    result = hostvars["hv-ams-01"]["virtfleet_audit_result"]
    result["findings"] = [f for f in result["findings"] if f["status"] in ("pending", "skipped")]
    report = build(hostvars, hosts=["hv-ams-01", "hv-ams-02"])
    assert report["summary"]["passed"] is True
    assert report["summary"]["findings"]["by_status"]["pending"] == 2


def test_uri_password_is_redacted():
    hostvars = fleet_hostvars()
    hostvars["hv-ams-02"]["virtfleet_audit_result"]["uri"] = "qemu+ssh://root:S3cr3t@hv-ams-02/system"
    report = build(hostvars)
    assert host(report, "hv-ams-02")["uri"] == "qemu+ssh://root:********@hv-ams-02/system"
    assert "S3cr3t" not in json.dumps(report) and "S3cr3t" not in fr.render_html(report)
    assert fr.redact_uri("qemu+ssh://root@hv1/system") == "qemu+ssh://root@hv1/system"
    assert fr.redact_uri(None) is None


def test_only_the_audit_result_is_read_from_hostvars():
    hostvars = fleet_hostvars()
    hostvars["hv-ams-02"]["ansible_password"] = "hunter2-secret"
    report = build(hostvars)
    assert "hunter2" not in json.dumps(report) and "10.20.0.31" not in json.dumps(report)


def test_bad_input_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="list of host names"):
        fr.build_report("hv-ams-01", fleet_hostvars())
    with pytest.raises(AnsibleFilterError, match="hostvars must be a mapping"):
        fr.build_report(["hv-ams-01"], ["not", "a", "mapping"])
    with pytest.raises(AnsibleFilterError, match="output of virtfleet.libvirt.fleet_report"):
        fr.render_junit({"hosts": []})
    with pytest.raises(AnsibleFilterError, match="output of virtfleet.libvirt.fleet_report"):
        fr.render_html("nope")


def test_generated_at_defaults_to_utc_now():
    report = fr.build_report(["hv-ams-02"], fleet_hostvars())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", report["generated_at"])


def test_filters_are_registered():
    assert set(fr.FilterModule().filters()) == {"fleet_report", "fleet_report_junit", "fleet_report_html"}


def test_change_text_shows_what_differs():
    disk_now = {"cache": "writeback", "io": "native", "cache_set": False, "writeback": True, "direct": False}
    disk_want = dict(disk_now, io="threads")
    assert fr.change_text(disk_now, disk_want) == ("io=native", "io=threads")
    assert fr.change_text({"alias": None}, {"alias": "ua-net-1", "basis": "mac"}) == \
        ("alias=none", "alias=ua-net-1 (basis: mac)")
    assert fr.change_text(disk_now, disk_now) == ("cache=writeback io=native", "")
    assert fr.device_label({"kind": "interface", "mac": "52:54:00:00:00:01"}) == "interface 52:54:00:00:00:01"


# --- JSON schema ----------------------------------------------------------------------------------

def test_report_validates_against_the_schema(schema):
    report = build()
    validate(report, schema)
    validate(build(hosts=["hv-par-01"]), schema)
    validate(build(hosts=[]), schema)


def test_schema_rejects_a_broken_report(schema):
    report = build()
    broken = copy.deepcopy(report)
    broken["hosts"][0]["status"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        validate(broken, schema)
    broken = copy.deepcopy(report)
    del broken["summary"]["findings"]["by_status"]["drift"]
    with pytest.raises(jsonschema.ValidationError):
        validate(broken, schema)
    broken = copy.deepcopy(report)
    host(broken, UNREACHABLE)["error"] = None
    with pytest.raises(jsonschema.ValidationError):
        validate(broken, schema)


# --- JUnit --------------------------------------------------------------------------------------

def expected_cases(report):
    """(classname, name) -> outcome, computed independently of the renderer."""
    cases = {}
    for h in report["hosts"]:
        if h["status"] != "ok":
            cases[(h["name"], "host:" + h["status"])] = "error"
        for d in h["domains"]:
            for check in d["checks"]:
                statuses = [f["status"] for f in d["findings"] if f["check"] == check]
                if not statuses:
                    cases[("%s.%s" % (h["name"], d["name"]), check + ":compliant")] = "pass"
            for f in d["findings"]:
                k = ("%s.%s" % (h["name"], d["name"]), "%s:%s" % (f["check"], f["rule"]))
                outcome = ("failure" if f["status"] in ("drift", "failed") else
                           "skipped" if f["status"] in ("pending", "skipped") else "pass")
                rank = ["pass", "skipped", "failure"]
                cases[k] = max(cases.get(k, "pass"), outcome, key=rank.index)
    return cases


def parse_junit(text):
    root = ET.fromstring(text.encode("utf-8"))
    got = {}
    for case in root.iter("testcase"):
        outcome = "pass"
        for tag in ("failure", "skipped", "error"):
            if case.find(tag) is not None:
                outcome = tag
        k = (case.get("classname"), case.get("name"))
        assert k not in got, "duplicate test case %s" % (k,)
        got[k] = outcome
    return root, got


def test_junit_has_one_case_per_host_domain_rule_with_the_right_outcomes():
    report = build()
    text = fr.render_junit(report)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root, got = parse_junit(text)
    assert got == expected_cases(report)
    outcomes = list(got.values())
    assert root.tag == "testsuites" and root.get("name") == "Fleet compliance report"
    assert int(root.get("tests")) == len(got) == 21
    assert int(root.get("failures")) == outcomes.count("failure") == 5
    assert int(root.get("skipped")) == outcomes.count("skipped") == 3
    assert int(root.get("errors")) == outcomes.count("error") == 2
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == HOSTS
    for suite in suites:
        assert int(suite.get("tests")) == len(suite.findall("testcase"))
        assert int(suite.get("failures")) == len(suite.findall("testcase/failure"))
        assert int(suite.get("skipped")) == len(suite.findall("testcase/skipped"))
        assert int(suite.get("errors")) == len(suite.findall("testcase/error"))
    db = got[("hv-ams-01.db-ams-01", "disk_io:io-native-needs-direct-cache")]
    assert db == "failure"
    assert got[("hv-par-01", "host:unreachable")] == "error"
    assert got[("hv-ams-02.web-ams-02", "disk_io:compliant")] == "pass"
    failure = root.find("testsuite/testcase[@name='disk_io:io-native-needs-direct-cache'][@classname="
                        "'hv-ams-01.db-ams-01']/failure")
    assert failure.get("type") == "drift" and "sda" in failure.text and "sdb" in failure.text


def test_junit_escapes_markup_and_drops_invalid_characters():
    hostvars = fleet_hostvars()
    finding = hostvars["hv-ams-01"]["virtfleet_audit_result"]["findings"][0]
    finding["message"] = HOSTILE + " \x00\x1b]0;title\x07"
    finding["domain"] = 'db"<&>'
    hostvars["hv-par-01"]["virtfleet_audit_result"] = None
    text = fr.render_junit(build(hostvars))
    root, got = parse_junit(text)  # well-formed
    assert ("hv-ams-01.db\"<&>", "aliases:alias-missing") in got
    failure = root.find("testsuite/testcase[@name='aliases:alias-missing']/failure")
    assert HOSTILE in failure.text and "\x00" not in failure.text and "\ufffd" in failure.text
    assert "<script>" not in text


# --- HTML ---------------------------------------------------------------------------------------

class Page(HTMLParser):
    """Collects what the tests look at: elements with attributes, texts, scripts, styles."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements, self.text, self.scripts, self.styles, self._in = [], [], [], [], None

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._in = tag

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in == "script":
            self.scripts.append(data)
        elif self._in == "style":
            self.styles.append(data)
        else:
            self.text.append(data)

    def by_class(self, cls):
        return [a for _t, a in self.elements if cls in (a.get("class") or "").split()]


def parse_page(text):
    page = Page()
    page.feed(text)
    page.close()
    page.all_text = re.sub(r"\s+", " ", " ".join(page.text))
    return page


def card_values(page_text):
    return dict(re.findall(r'<div class="l">([^<]+)</div><div class="n">(\d+)</div>', page_text))


def test_html_summary_cards_show_the_numbers():
    report = build()
    text = fr.render_html(report)
    cards = card_values(text)
    assert cards == {"Hosts": "4", "Unreachable": "1", "Audit failed": "1", "Domains": "9", "Findings": "10",
                     "Restart pending": "5", "failed": "1", "drift": "5", "pending": "2", "skipped": "1",
                     "fixed": "1", "Rules": "6", "unknown": "0", "conflict": "0", "not_attempted": "0", "vanished": "0",
                     "blocked": "0"}
    page = parse_page(text)
    assert "FAIL" in page.all_text and "1 host unreachable: hv-par-01" in page.all_text
    assert "2 ok · 1 failed · 1 unreachable" in page.all_text
    # The summary comes before the first host section.
    assert text.index('id="summary"') < text.index('id="hosts-table"') < text.index('id="host-1"')


def test_html_lists_every_host_domain_and_finding():
    report = build()
    page = parse_page(fr.render_html(report))
    rows = page.by_class("finding")
    assert len(rows) == report["summary"]["findings"]["total"]
    for h in report["hosts"]:
        assert h["name"] in page.all_text
        for d in h["domains"]:
            assert d["name"] in page.all_text
            for f in d["findings"]:
                assert f["message"] in page.all_text
                assert any(r["data-host"] == h["name"] and r["data-rule"] == f["rule"] and
                           r["data-status"] == f["status"] for r in rows)
    assert len(page.by_class("compliant-domain")) == 5
    sections = [a for t, a in page.elements if t == "section" and "host" in (a.get("class") or "").split()]
    assert [s["data-host"] for s in sections] == HOSTS
    assert "unreachable" in sections[3]["class"]
    note = page.by_class("note")
    assert [(n["data-host"], n["data-status"]) for n in note] == [("hv-fra-01", "audit-failed"),
                                                                  ("hv-par-01", "unreachable")]
    assert "UNREACHABLE" in page.all_text and "AUDIT FAILED" in page.all_text
    options = [a.get("value") for t, a in page.elements if t == "option"]
    assert set(HOSTS) <= set(options) and "live-differs" in options and "unreachable" in options


def test_html_escapes_markup_in_messages_and_names():
    hostvars = fleet_hostvars()
    finding = hostvars["hv-ams-01"]["virtfleet_audit_result"]["findings"][0]
    finding["message"] = HOSTILE
    finding["domain"] = '<img src=x onerror="alert(1)">'
    text = fr.render_html(build(hostvars))
    assert "<script>alert" not in text and "<img src=x" not in text and "<b>bold" not in text
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in text
    page = parse_page(text)
    assert HOSTILE in page.all_text  # shown to the reader as text
    assert len(page.scripts) == 1 and [t for t, _a in page.elements].count("script") == 1
    assert not [t for t, _a in page.elements if t == "img"]


def test_html_is_self_contained_and_its_csp_allows_only_its_own_code():
    text = fr.render_html(build())
    page = parse_page(text)
    for tag, attrs in page.elements:
        for name in ("src", "href", "action", "data", "srcset"):
            value = attrs.get(name)
            assert value is None or value.startswith(("#", "data:")), (tag, name, value)
    csp = next(a["content"] for t, a in page.elements if a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp

    def digest(code):
        return "'sha256-%s'" % base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode()
    assert digest(page.scripts[0]) in csp and digest(page.styles[0]) in csp
    assert not [a for _t, a in page.elements if "style" in a]  # inline style attributes would be blocked
    assert not re.search(r"\son[a-z]+=", text)  # no inline event handlers either


def test_filter_docs_render_with_ansible_doc():
    ansible_doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    names = ["virtfleet.libvirt.fleet_report", "virtfleet.libvirt.fleet_report_junit",
             "virtfleet.libvirt.fleet_report_html"]
    proc = subprocess.run([ansible_doc, "-t", "filter", "--json", *names], capture_output=True, text=True,
                          check=False, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert set(docs) == set(names)
    assert set(docs[names[0]]["doc"]["options"]) == {"_input", "hostvars", "title", "generated_at"}


def test_junit_a_vanished_domain_is_skipped_not_passed():
    from ansible_collections.virtfleet.libvirt.plugins.filter import fleet_report as fr
    hostvars = {"hv1": {"virtfleet_audit_result": {
        "host": "hv1", "status": "ok", "checks": {"aliases": {"summary": {}}},
        "findings": [{"domain": "gone", "uuid": "u1", "check": "aliases", "rule": "alias-missing", "status": "vanished",
                      "pending_restart": False, "device": {"kind": "disk", "target": "vda"}, "current": {},
                      "desired": {}, "message": "disk vda: vanished"}]}}}
    text = fr.render_junit(fr.build_report(["hv1"], hostvars, generated_at="2026-12-01T00:00:00Z"))
    assert '<skipped message="vanished' in text and "<failure" not in text
