"""The role virtfleet.libvirt.report run by ansible-playbook on localhost, over a fake fleet.

The fleet is an inventory whose host_vars set virtfleet_audit_result as the audit/remediate roles
would (tests/unit/plugins/filter/test_report_fixtures.py); hv-par-01 has none, as if it had been unreachable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from ansible_collections.virtfleet.libvirt.tests.unit.plugins.filter.test_report_fixtures import HOSTS, fleet_hostvars

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")  # made by tests/conftest.py
SCHEMA_PATH = os.path.join(ROOT, "roles", "report", "files", "report.schema.json")
PLAYBOOK = """
- name: Fleet report
  hosts: localhost
  gather_facts: false
  roles:
    - role: virtfleet.libvirt.report
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """An inventory (group hypervisors) with host_vars, and a playbook that runs the role."""
    base = tmp_path_factory.mktemp("report-role")
    host_vars = base / "inventory" / "host_vars"
    host_vars.mkdir(parents=True)
    hostvars = fleet_hostvars()
    for name in HOSTS:
        (host_vars / ("%s.json" % name)).write_text(json.dumps(hostvars[name]), encoding="utf-8")
    (base / "inventory" / "hosts.yml").write_text(
        "all:\n  children:\n    hypervisors:\n      hosts:\n" + "".join("        %s:\n" % h for h in HOSTS),
        encoding="utf-8")
    (base / "playbooks").mkdir()
    (base / "playbooks" / "report.yml").write_text(PLAYBOOK, encoding="utf-8")
    return base


def play(fleet, *args, **extra_vars):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_SHOW_CUSTOM_STATS="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_RETRY_FILES_ENABLED="0",
               ANSIBLE_STDOUT_CALLBACK="default")
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(fleet / "inventory"),
           str(fleet / "playbooks" / "report.yml"), "-e", json.dumps(extra_vars), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    proc.output = proc.stdout + proc.stderr
    return proc


def test_role_writes_every_format_also_in_check_mode(fleet, tmp_path):
    out = tmp_path / "out" / "nested"
    proc = play(fleet, "--check", report_hosts=HOSTS, report_dir=str(out), report_title="Nightly <audit>")
    assert proc.returncode == 0, proc.output
    assert sorted(os.listdir(out)) == ["compliance.html", "compliance.json", "compliance.xml"]

    report = json.loads((out / "compliance.json").read_text(encoding="utf-8"))
    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        jsonschema.Draft202012Validator(json.load(handle)).validate(report)
    assert list(report)[:4] == ["schema_version", "generated_at", "title", "summary"]
    assert report["title"] == "Nightly <audit>"
    assert [(h["name"], h["status"]) for h in report["hosts"]] == [
        ("hv-ams-01", "ok"), ("hv-ams-02", "ok"), ("hv-fra-01", "failed"), ("hv-par-01", "unreachable")]
    assert report["summary"]["findings"]["total"] == 10 and report["summary"]["passed"] is False

    root = ET.parse(str(out / "compliance.xml")).getroot()
    assert root.get("tests") == "21" and root.get("failures") == "5" and root.get("errors") == "2"

    html = (out / "compliance.html").read_text(encoding="utf-8")
    assert "<title>Nightly &lt;audit&gt;</title>" in html and "hv-par-01" in html

    # The summary printed, the paths, and the stats handed to AWX.
    assert "Hosts:    4 (2 ok, 1 failed, 1 unreachable: hv-par-01)" in proc.stdout
    assert "Findings: 10 (1 failed, 5 drift, 2 pending, 1 skipped, 1 fixed); 5 wait for a cold boot" in proc.stdout
    for name in ("compliance.json", "compliance.xml", "compliance.html"):
        assert str(out.resolve() / name) in proc.stdout
    stats = proc.stdout[proc.stdout.index("CUSTOM STATS"):]
    assert '"virtfleet_report"' in stats and '"unreachable_hosts": [   "hv-par-01"  ]' in stats


def test_fail_on_drift_fails_the_play_after_writing(fleet, tmp_path):
    proc = play(fleet, report_hosts=HOSTS, report_dir=str(tmp_path), report_fail_on_drift=True,
                report_name="gate", report_formats=["json", "junit"])
    assert proc.returncode == 2, proc.output
    assert sorted(os.listdir(tmp_path)) == ["gate.json", "gate.xml"]
    assert "Fleet not compliant: 1 finding with status failed; 5 findings with status drift; " \
           "1 host unreachable: hv-par-01; 1 host failed: hv-fra-01." in proc.stdout
    assert "failed=1" in proc.stdout


def test_fail_on_drift_passes_a_compliant_fleet_and_unreachable_fails_it(fleet, tmp_path):
    proc = play(fleet, report_hosts=["hv-ams-02"], report_dir=str(tmp_path), report_fail_on_drift=True,
                report_formats=["html"])
    assert proc.returncode == 0, proc.output
    assert os.listdir(tmp_path) == ["compliance.html"]
    assert "Fleet compliance report: PASS" in proc.stdout

    # hv-par-01 has no result; ghost-01 is not even in the inventory: both unreachable, never missing.
    proc = play(fleet, report_hosts=["hv-ams-02", "hv-par-01", "ghost-01"], report_dir=str(tmp_path / "u"),
                report_fail_on_drift=True, report_formats=["json"])
    assert proc.returncode == 2, proc.output
    report = json.loads((tmp_path / "u" / "compliance.json").read_text(encoding="utf-8"))
    assert [(h["name"], h["status"]) for h in report["hosts"]] == [
        ("hv-ams-02", "ok"), ("hv-par-01", "unreachable"), ("ghost-01", "unreachable")]
    assert "2 hosts unreachable: hv-par-01, ghost-01" in proc.stdout


@pytest.mark.parametrize("extra, message", [
    ({"report_formats": ["pdf"]}, "report_formats"),
    ({"report_name": "../escape"}, "name must be a file name stem without '/' (report_name"),
    ({"report_hosts": "hv-ams-01,hv-ams-02", "report_title": ["not", "a", "string"]}, "report_title"),
])
def test_bad_arguments_fail_before_writing(fleet, tmp_path, extra, message):
    args = dict(report_hosts=HOSTS, report_dir=str(tmp_path / "out"))
    args.update(extra)
    proc = play(fleet, **args)
    assert proc.returncode != 0 and message in proc.output, proc.output
    assert not (tmp_path / "out").exists()


def test_missing_report_hosts_is_refused(fleet, tmp_path):
    proc = play(fleet, report_dir=str(tmp_path / "out"))
    assert proc.returncode != 0 and "report_hosts" in proc.output, proc.output
    assert not (tmp_path / "out").exists()


def test_role_pages_per_host_and_a_user_template_dir(fleet, tmp_path):
    mine = tmp_path / "my-templates"
    mine.mkdir()
    (mine / "report.css").write_text("body{font-family:serif}/* acme-report-style */\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = play(fleet, report_hosts=HOSTS, report_dir=str(out), report_html_template_dir=str(mine),
                report_html_inline_limit=3, report_formats=["html"])
    assert proc.returncode == 0, proc.output
    assert sorted(os.listdir(out)) == ["compliance-hosts", "compliance.html"]
    assert sorted(os.listdir(out / "compliance-hosts")) == sorted("%s.html" % h for h in HOSTS)
    first = (out / "compliance.html").read_text(encoding="utf-8")
    assert "acme-report-style" in first and 'href="compliance-hosts/hv-ams-01.html"' in first
    assert "acme-report-style" in (out / "compliance-hosts" / "hv-ams-01.html").read_text(encoding="utf-8")
    assert "Report html_hosts: %s" % (out.resolve() / "compliance-hosts") in proc.stdout

    # The same fleet under the default limit fits on one page: the host pages of the last run go.
    proc = play(fleet, report_hosts=HOSTS, report_dir=str(out), report_formats=["html"])
    assert proc.returncode == 0, proc.output
    assert os.listdir(out) == ["compliance.html"]
    assert "acme-report-style" not in (out / "compliance.html").read_text(encoding="utf-8")


def test_a_missing_template_dir_fails_before_writing(fleet, tmp_path):
    proc = play(fleet, report_hosts=HOSTS, report_dir=str(tmp_path / "out"),
                report_html_template_dir=str(tmp_path / "nowhere"))
    assert proc.returncode != 0 and "report_html_template_dir" in proc.output and "is not a directory" in proc.output
    assert not (tmp_path / "out").exists()
