"""`make demo` runs the product: the audit and report roles on the bundled sample fleet.

The test runs `make demo` itself (the Makefile's DEMO_CMD: playbooks/demo.yml, which imports
playbooks/audit.yml, on playbooks/inventory/sample_fleet.yml through libvirt's test driver, no daemon)
with the reports sent to a temporary directory, and checks what a newcomer gets: a JSON report that
validates against roles/report/files/report.schema.json, a JUnit file and an HTML page, and a
summary with one line per domain on the terminal.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import jsonschema
import pytest

pytest.importorskip("libvirt")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir))
SCHEMA_PATH = os.path.join(ROOT, "roles", "report", "files", "report.schema.json")
SAMPLE_HOSTS = ["hv-ams-01", "hv-ams-02", "hv-fra-01"]


def test_make_demo_writes_the_schema_valid_report_and_a_summary(tmp_path):
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    out = tmp_path / "reports"
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    # The venv running the tests is the Makefile's .venv, or (ansible-test units on a copy) the one its
    # Python lives in; `-o` keeps make from reinstalling it.
    venv = os.path.dirname(os.path.dirname(sys.executable))
    proc = subprocess.run(["make", "--no-print-directory", "-C", ROOT, "-o", os.path.join(venv, ".requirements.stamp"),
                           "demo", "VENV=%s" % venv, "DEMO_ARGS=-e virtfleet_report_dir=%s" % out],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert sorted(os.listdir(out)) == ["compliance.html", "compliance.json", "compliance.xml"]

    report = json.loads((out / "compliance.json").read_text(encoding="utf-8"))
    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        jsonschema.Draft202012Validator(json.load(handle)).validate(report)
    assert [h["name"] for h in report["hosts"]] == SAMPLE_HOSTS
    assert all(h["status"] == "ok" for h in report["hosts"])
    summary = report["summary"]
    assert summary["check_mode"] is True and summary["modes"] == ["audit"]
    # Both checks ran (aliases and disk io), and the sample fleet has drift and compliant domains.
    assert set(summary["findings"]["by_check"]) == {"aliases", "disk_io"}
    assert summary["findings"]["total"] > 0 and summary["domains"]["compliant"] > 0

    suites = ET.parse(str(out / "compliance.xml")).getroot()
    assert suites.tag == "testsuites" and int(suites.get("tests")) > 0
    html = (out / "compliance.html").read_text(encoding="utf-8")
    assert "<html" in html and "hv-fra-01" in html

    # The terminal: the report role's summary and one line per domain from the JSON.
    assert "Fleet compliance report: FAIL" in output
    for host in report["hosts"]:
        for domain in host["domains"]:
            assert any(host["name"] in line and domain["name"] in line and domain["status"] in line
                       for line in output.splitlines()), domain["name"]
    assert "%s/compliance.json" % out in output
