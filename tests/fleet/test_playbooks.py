"""The playbooks end to end against the three-hypervisor fleet (tests/fleet/conftest.py).

audit.yml (check mode, JSON/JUnit/HTML report, nothing changed), remediate.yml (then a clean
audit, legacy domains start, idempotent re-run, zero findings after a cold boot of the running
domains), rolling_upgrade.yml (batch by batch with a real daemon restart per host; stops at the
first batch when the upgrade changes a domain's machine type or a device address), a host
unreachable before the run and one lost mid-run (a callback stops its sshd once the checks role
has validated its arguments there, right before the role's one virt_policy call), every host
unreachable or failing (the report is still written), a host Python without libvirt-python (the
fix is named), audit.yml with --limit, and detach.yml. Substitute task files
for the rolling upgrade are in tests/fleet/tasks/.

The tests run in file order and share the fleet: the audit/unreachable/detach tests start from the
seeded fleet, the remediation tests reseed and remediate it (module fixture ``remediation``), the
rolling upgrade runs on the remediated fleet, and the module reseeds the fleet when it is done.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PLAYBOOKS = os.path.join(ROOT, "playbooks")
AUDIT = os.path.join(PLAYBOOKS, "audit.yml")
REMEDIATE = os.path.join(PLAYBOOKS, "remediate.yml")
DETACH = os.path.join(PLAYBOOKS, "detach.yml")
ROLLING = os.path.join(PLAYBOOKS, "rolling_upgrade.yml")
TASKS = os.path.join(HERE, "tasks")
UPGRADE_NOOP = os.path.join(TASKS, "upgrade_noop.yml")
UPGRADE_TAMPER = os.path.join(TASKS, "upgrade_tamper.yml")
RESTART = os.path.join(TASKS, "restart_session_libvirt.yml")

IO_RULE = "io-native-needs-direct-cache"
# Finding statuses (report schema 1.1) and those that fail the report's gate, worst first.
STATUSES = ("failed", "unknown", "conflict", "not_attempted", "blocked", "drift", "vanished", "pending", "skipped",
            "fixed")
GATING = ("failed", "unknown", "conflict", "not_attempted", "drift")


def _validation_task(role):
    """The name Ansible gives a role's argument validation task: its argument spec's short_description."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "roles", role, "meta", "argument_specs.yml")
    with open(path, encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    return "Validating arguments against arg spec 'main' - %s" % spec["argument_specs"]["main"]["short_description"]


# The checks role (roles/checks/tasks/main.yml): its argument validation, then ONE virt_policy call per host.
CHECKS_VALIDATION = _validation_task("checks")
POLICY_TASK = "Run every enabled check on every selected domain (one call, one define per changed domain)"
ALIAS_RULE = "alias-missing"
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)"
                   r"\s+rescued=(\d+)\s+ignored=(\d+)", re.M)
RECAP_KEYS = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")
# A task result line of a host: "ok: [hv1]", "changed: [hv1 -> localhost]", "included: ... for hv1", ...
HOST_LINE = re.compile(r"^(?:ok|changed|fatal|failed|skipping|included|FAILED - RETRYING): .*?\b(hv\d)\b", re.M)
TAMPERED = "db-01"


# --- helpers ----------------------------------------------------------------------------------

def recap(result):
    """PLAY RECAP of an ansible-playbook run: {host: {ok: n, changed: n, ...}}."""
    text = result.stdout.split("PLAY RECAP", 1)[-1] if "PLAY RECAP" in result.stdout else ""
    return {m[0]: dict(zip(RECAP_KEYS, map(int, m[1:]))) for m in RECAP.findall(text)}


def load_report(report_dir, name):
    """(json data, JUnit root element, html text) of <report_dir>/<name>.json|.xml|.html."""
    paths = {ext: os.path.join(str(report_dir), "%s.%s" % (name, ext)) for ext in ("json", "xml", "html")}
    for path in paths.values():
        assert os.path.isfile(path), "report file missing: %s" % path
    with open(paths["json"], encoding="utf-8") as handle:
        data = json.load(handle)
    junit = ET.parse(paths["xml"]).getroot()
    with open(paths["html"], encoding="utf-8") as handle:
        html = handle.read()
    return data, junit, html


def hosts_of(report):
    return {h["name"]: h for h in report["hosts"]}


def all_findings(report):
    """[(host, domain, finding)] of the whole report."""
    return [(h["name"], d["name"], f) for h in report["hosts"] for d in h["domains"] for f in d["findings"]]


def running(fleet):
    return {(d.host, d.name) for d in fleet.domains if d.state == "running"}


def snapshot(fleet, hosts=None):
    """Inactive (with secrets) and, for running domains, live XML of every domain of ``hosts``."""
    out = {}
    for host in hosts or fleet.hosts:
        for name in fleet.list_domains(host):
            out[(host, name, "inactive")] = fleet.dumpxml(host, name)
            if fleet.virsh(host, "domstate", name).strip() == "running":
                out[(host, name, "live")] = fleet.dumpxml(host, name, inactive=False)
    return out


def daemon_pids(fleet, hosts=None):
    return {h: fleet.ssh(h, "cat ~/.cache/libvirt/libvirtd.pid").stdout.strip() for h in hosts or fleet.hosts}


def backups(fleet, host):
    return fleet.ssh(host, "ls -A %s 2>/dev/null || true" % fleet.backup_dir(host)).stdout.split()


def assert_summary_consistent(report):
    """The summary counts are the sums of the host summaries and of the findings themselves."""
    summary, hosts = report["summary"], report["hosts"]
    findings = [f for _h, _d, f in all_findings(report)]
    domains = [d for h in hosts for d in h["domains"]]
    assert summary["hosts"]["total"] == len(hosts)
    assert sum(summary["hosts"][s] for s in ("ok", "failed", "unreachable")) == len(hosts)
    for status in ("ok", "failed", "unreachable"):
        assert summary["hosts"][status] == sum(1 for h in hosts if h["status"] == status), status
    assert summary["unreachable_hosts"] == [h["name"] for h in hosts if h["status"] == "unreachable"]
    assert summary["failed_hosts"] == [h["name"] for h in hosts if h["status"] == "failed"]
    assert summary["domains"]["total"] == len(domains)
    assert summary["domains"]["with_findings"] == sum(1 for d in domains if d["findings"])
    assert summary["domains"]["compliant"] == sum(1 for d in domains if not d["findings"])
    assert summary["domains"]["pending_restart"] == sum(1 for d in domains if d["pending_restart"])
    assert summary["findings"]["total"] == len(findings) == sum(h["summary"]["findings"] for h in hosts)
    assert sum(summary["findings"]["by_status"].values()) == len(findings)
    assert sum(summary["findings"]["by_rule"].values()) == len(findings)
    assert sum(summary["findings"]["by_check"].values()) == len(findings)
    for status, count in summary["findings"]["by_status"].items():
        assert count == sum(1 for f in findings if f["status"] == status), status
    for rule, count in summary["findings"]["by_rule"].items():
        assert count == sum(1 for f in findings if f["rule"] == rule), rule
    assert summary["pending_restart"] == sum(1 for f in findings if f["pending_restart"])
    for host in hosts:
        mine = [f for d in host["domains"] for f in d["findings"]]
        assert host["summary"]["domains"] == len(host["domains"]), host["name"]
        assert host["summary"]["findings"] == len(mine), host["name"]
        assert host["summary"]["pending_restart"] == sum(1 for f in mine if f["pending_restart"]), host["name"]
    assert sorted(summary["findings"]["by_status"]) == sorted(STATUSES)
    gating = sum(summary["findings"]["by_status"][s] for s in GATING)
    assert summary["passed"] == (not gating and not summary["unreachable_hosts"] and not summary["failed_hosts"])


def junit_suites(root):
    assert root.tag == "testsuites", root.tag
    return {suite.get("name"): suite for suite in root.findall("testsuite")}


def assert_junit_consistent(root):
    """The counters of <testsuites> and every <testsuite> match their <testcase> children."""
    totals = dict(tests=0, failures=0, errors=0)
    for suite in root.findall("testsuite"):
        cases = suite.findall("testcase")
        counted = dict(tests=len(cases), failures=sum(1 for c in cases if c.find("failure") is not None),
                       errors=sum(1 for c in cases if c.find("error") is not None))
        for key, value in counted.items():
            assert int(suite.get(key)) == value, (suite.get("name"), key)
            totals[key] += value
    for key, value in totals.items():
        assert int(root.get(key)) == value, key


# --- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def _reseed_when_done(fleet):
    """The other fleet tests expect the seeded fleet: leave it so."""
    yield
    fleet.reseed()


@pytest.fixture(scope="module")
def remediation(fleet, tmp_path_factory):
    """The seeded fleet remediated: remediate.yml, audit.yml --check, and remediate.yml twice more.

    Runs once; the results are asserted by the remediation tests. Leaves the fleet converged
    (whatever the first run left to do, the second did), which the rolling upgrade relies on.
    """
    fleet.reseed()
    base = tmp_path_factory.mktemp("remediation")
    runs = SimpleNamespace(dirs={})

    def play(key, playbook, check=False):
        runs.dirs[key] = str(base / key)
        return fleet.playbook(playbook, check=check, extra_vars={"virtfleet_report_dir": runs.dirs[key]})

    runs.first = play("first", REMEDIATE)
    runs.audit = play("audit", AUDIT, check=True)
    runs.second = play("second", REMEDIATE)
    runs.third = play("third", REMEDIATE)
    return runs


# --- 1. audit --check ---------------------------------------------------------------------------

def test_audit_check_reports_the_seeded_violations_and_changes_nothing(fleet, tmp_path):
    fleet.reseed()
    before = snapshot(fleet)
    backups_before = {h: backups(fleet, h) for h in fleet.hosts}

    res = fleet.playbook(AUDIT, check=True, extra_vars={"virtfleet_report_dir": str(tmp_path)})

    assert res.rc == 0, res
    counts = recap(res)
    for host in fleet.hosts:
        assert counts[host]["changed"] == 0 and counts[host]["failed"] == 0 and counts[host]["unreachable"] == 0, res

    # The checks role makes one virt_policy call per host, for every check, and no other module call.
    sections = task_sections(res)
    checks_tasks = [title for title in sections if title.startswith("virtfleet.libvirt.checks : ")]
    assert checks_tasks == ["virtfleet.libvirt.checks : " + name for name in (
        CHECKS_VALIDATION, POLICY_TASK, "Publish how the checks went on this host as virtfleet_audit_status",
        "Fail this host when it could not be checked (its result is published first)")], checks_tasks
    policy = sections["virtfleet.libvirt.checks : " + POLICY_TASK]
    assert sorted(re.findall(r"^ok: \[(hv\d)\]", policy, re.M)) == list(fleet.hosts), res
    assert res.stdout.count("TASK [virtfleet.libvirt.checks : " + POLICY_TASK + "]") == 1, res

    report, junit, html = load_report(tmp_path, "compliance")
    hosts = hosts_of(report)
    assert list(hosts) == list(fleet.hosts)
    assert report["summary"]["check_mode"] is True and report["summary"]["modes"] == ["audit"]
    for host in fleet.hosts:
        assert hosts[host]["status"] == "ok", hosts[host]
        assert hosts[host]["check_mode"] is True
        assert sorted(d["name"] for d in hosts[host]["domains"]) == sorted(d.name for d in fleet.domains_of(host))
        # every domain with its UUID, from the one call (not only those a finding names)
        assert all(re.fullmatch(r"[0-9a-f-]{36}", d["uuid"] or "") for d in hosts[host]["domains"]), hosts[host]
        # one entry per enabled check, all from the same call: same summary, every domain looked at
        checks = hosts[host]["checks"]
        assert sorted(checks) == ["aliases", "disk_io"], checks
        for name, check in checks.items():
            assert check["changed"] is False and check["failed"] is False and check["msg"] is None, (name, check)
            assert check["domains"] == len(fleet.domains_of(host)), (name, check)
            assert check["summary"] == checks["aliases"]["summary"], checks
        assert checks["aliases"]["summary"]["domains_selected"] == len(fleet.domains_of(host)), checks
        # check mode: domains_changed counts the domains that would be changed (those with drift)
        assert checks["aliases"]["summary"]["domains_changed"] == sum(
            1 for d in hosts[host]["domains"] if any(f["status"] == "drift" for f in d["findings"])), checks
        assert checks["aliases"]["summary"]["findings"] == hosts[host]["summary"]["findings"], checks

    found = all_findings(report)
    assert found and all(f["status"] == "drift" for _h, _d, f in found)
    # alias-missing on every domain of every host
    alias_domains = {(h, d) for h, d, f in found if f["rule"] == ALIAS_RULE and f["check"] == "aliases"}
    assert alias_domains == {(d.host, d.name) for d in fleet.domains}
    # io=native with a cached disk: only the legacy domains (hv1, hv2), on their cached disks vda and sda
    io = [(h, d, f["device"]["target"]) for h, d, f in found if f["rule"] == IO_RULE]
    legacy = {(d.host, d.name) for d in fleet.domains if d.legacy}
    assert {(h, d) for h, d, _t in io} == legacy == {("hv1", "legacy-01"), ("hv2", "legacy-02")}
    assert sorted(t for _h, _d, t in io) == ["sda", "sda", "vda", "vda"]
    assert {f["check"] for _h, _d, f in found if f["rule"] == IO_RULE} == {"disk_io"}
    # only findings on running domains wait for a cold boot
    for host, dom, finding in found:
        assert finding["pending_restart"] == ((host, dom) in running(fleet)), (host, dom, finding)
    assert_summary_consistent(report)
    assert report["summary"]["passed"] is False
    assert report["summary"]["findings"]["by_rule"][IO_RULE] == 4

    suites = junit_suites(junit)
    assert list(suites) == list(fleet.hosts)
    assert int(junit.get("failures")) > 0 and int(junit.get("errors")) == 0
    assert_junit_consistent(junit)
    for host in fleet.hosts:
        assert int(suites[host].get("failures")) > 0, host
    io_cases = [c for s in suites.values() for c in s.findall("testcase")
                if c.get("name") == "disk_io:" + IO_RULE]
    assert sorted(c.get("classname") for c in io_cases) == ["hv1.legacy-01", "hv2.legacy-02"]
    assert all(c.find("failure") is not None for c in io_cases)

    assert html.lstrip().lower().startswith("<!doctype html")
    for dom in fleet.domains:
        assert dom.name in html, dom
    assert IO_RULE in html

    assert snapshot(fleet) == before, "audit.yml --check changed a domain definition"
    assert {h: backups(fleet, h) for h in fleet.hosts} == backups_before


# --- 5. an unreachable host ---------------------------------------------------------------------

def test_unreachable_host_is_reported_as_unreachable(fleet, tmp_path):
    with fleet.unreachable("hv3"):
        res = fleet.playbook(AUDIT, check=True, extra_vars={"virtfleet_report_dir": str(tmp_path)})
    assert res.rc == 4, res  # ansible-playbook: some host unreachable
    counts = recap(res)
    assert counts["hv3"]["unreachable"] == 1, res
    assert counts["hv1"]["failed"] == counts["hv2"]["failed"] == 0, res
    assert "localhost" not in counts, res  # the report runs once on the controller, delegated from hv1

    report, junit, html = load_report(tmp_path, "compliance")
    hosts = hosts_of(report)
    assert list(hosts) == list(fleet.hosts)
    assert hosts["hv3"]["status"] == "unreachable" and hosts["hv3"]["domains"] == [], hosts["hv3"]
    assert hosts["hv3"]["error"]
    for host in ("hv1", "hv2"):
        assert hosts[host]["status"] == "ok", hosts[host]
        assert sorted(d["name"] for d in hosts[host]["domains"]) == sorted(d.name for d in fleet.domains_of(host))
    assert report["summary"]["unreachable_hosts"] == ["hv3"]
    assert report["summary"]["hosts"]["unreachable"] == 1
    assert report["summary"]["passed"] is False
    assert any("unreachable" in reason and "hv3" in reason for reason in report["summary"]["reasons"])
    assert_summary_consistent(report)

    assert re.search(r'<section class="host unreachable"[^>]*data-host="hv3"', html), "hv3 not shown as unreachable"
    assert re.search(r"<b>UNREACHABLE</b>", html)

    suites = junit_suites(junit)
    assert_junit_consistent(junit)
    errors = [(c.get("name"), c.find("error")) for c in suites["hv3"].findall("testcase") if c.find("error") is not None]
    assert len(errors) == 1 and errors[0][1].get("type") == "unreachable", errors
    assert int(suites["hv3"].get("errors")) == 1
    for host in ("hv1", "hv2"):
        assert int(suites[host].get("errors")) == 0, host
        assert suites[host].findall("testcase"), host

    # and the host is back
    assert fleet.list_domains("hv3") == sorted(d.name for d in fleet.domains_of("hv3"))


# --- a host lost mid-run, every host lost, every host failing -----------------------------------

def task_sections(result):
    """{task title: output lines} of an ansible-playbook run (a title may repeat: the last wins)."""
    out = {}
    for chunk in result.stdout.split("\nTASK [")[1:]:
        title, _sep, body = chunk.partition("]")
        out[title] = body
    return out


def test_host_lost_mid_run_is_reported_unreachable_and_the_others_are_audited(fleet, tmp_path):
    log = tmp_path / "stop.log"
    reports = tmp_path / "reports"
    before = snapshot(fleet, ["hv1", "hv2"])
    res = fleet.playbook(AUDIT, check=True, extra_vars={"virtfleet_report_dir": str(reports)},
                         env=fleet.stop_during("hv3", CHECKS_VALIDATION, log))
    # It happened mid-run: the checks role had started on hv3 (its argument validation passed),
    # then hv3's sshd and sessions were stopped, and the role's one module call found it unreachable.
    assert log.exists() and log.read_text().count("stopped hv3") == 1, res
    assert " rc=0 " in log.read_text() and CHECKS_VALIDATION in log.read_text(), log.read_text()
    sections = task_sections(res)
    validated = sections["virtfleet.libvirt.checks : " + CHECKS_VALIDATION]
    assert re.search(r"^ok: \[hv3\]", validated, re.M), res
    policy = sections["virtfleet.libvirt.checks : " + POLICY_TASK]
    assert re.search(r"^fatal: \[hv3\]: UNREACHABLE!", policy, re.M) and "...ignoring" in policy, res
    assert sorted(re.findall(r"^ok: \[(hv\d)\]", policy, re.M)) == ["hv1", "hv2"], res
    assert res.rc == 4, res
    counts = recap(res)
    assert counts["hv3"]["unreachable"] == 1, res
    for host in ("hv1", "hv2"):
        assert counts[host]["failed"] == counts[host]["unreachable"] == 0, res

    report, junit, html = load_report(reports, "compliance")
    hosts = hosts_of(report)
    assert list(hosts) == list(fleet.hosts)
    lost = hosts["hv3"]
    # The role recorded it (mode, uri) with Ansible's own reason, not the "no result" placeholder.
    assert lost["status"] == "unreachable" and lost["mode"] == "audit" and lost["uri"] == fleet.uri, lost
    assert lost["error"].startswith("unreachable: ") and "ssh" in lost["error"], lost["error"]
    assert lost["domains"] == [] and lost["summary"]["findings"] == 0, lost
    for host in ("hv1", "hv2"):
        assert hosts[host]["status"] == "ok", hosts[host]
        assert sorted(d["name"] for d in hosts[host]["domains"]) == sorted(d.name for d in fleet.domains_of(host))
    assert report["summary"]["unreachable_hosts"] == ["hv3"] and report["summary"]["passed"] is False
    assert_summary_consistent(report)
    assert_junit_consistent(junit)
    errors = [c.find("error") for c in junit_suites(junit)["hv3"].findall("testcase") if c.find("error") is not None]
    assert [e.get("type") for e in errors] == ["unreachable"] and "ssh" in errors[0].text
    assert re.search(r'<section class="host unreachable"[^>]*data-host="hv3"', html)
    assert snapshot(fleet, ["hv1", "hv2"]) == before

    fleet.start_host("hv3")
    assert fleet.list_domains("hv3") == sorted(d.name for d in fleet.domains_of("hv3"))


def test_every_host_unreachable_still_writes_the_report(fleet, tmp_path):
    with fleet.unreachable(*fleet.hosts):
        res = fleet.playbook(AUDIT, check=True, extra_vars={"virtfleet_report_dir": str(tmp_path)})
    assert res.rc == 4, res
    assert "NO MORE HOSTS LEFT" not in res.stdout, res
    counts = recap(res)
    assert all(counts[h]["unreachable"] == 1 for h in fleet.hosts), res
    report, junit, html = load_report(tmp_path, "compliance")
    assert [(h["name"], h["status"]) for h in report["hosts"]] == [(h, "unreachable") for h in fleet.hosts]
    assert all("ssh" in h["error"] for h in report["hosts"]), report["hosts"]
    assert report["summary"]["reasons"] == ["3 hosts unreachable: hv1, hv2, hv3"]
    assert report["summary"]["domains"]["total"] == 0
    assert_summary_consistent(report)
    assert_junit_consistent(junit)
    assert int(junit.get("errors")) == 3
    assert html.count("<b>UNREACHABLE</b>") == 3


@pytest.fixture
def python_without_libvirt(fleet):
    """A real Python on the hosts whose import path lacks libvirt-python and lxml (a venv of
    the hosts' /usr/bin/python3 without system site packages), readable by every host user."""
    if fleet.target.is_gen:
        # Inside the generation's tree, with its own Python. Debian's python3-venv is not
        # installed there, hence --without-pip (the venv module itself is in the stdlib).
        where = "/var/tmp/vf-bare-python-%s" % uuid.uuid4().hex[:8]
        os.makedirs(fleet.host_path(where), mode=0o755)
        python = where + "/venv/bin/python"
        made = fleet.target.in_host(["/usr/bin/python3", "-m", "venv", "--without-pip", where + "/venv"])
        assert made.returncode == 0, made
        probe = fleet.target.in_host([python, "-c", "import libvirt"])
        assert probe.returncode != 0, "the bare venv can import libvirt: %s" % probe
        yield python
        shutil.rmtree(fleet.host_path(where), ignore_errors=True)
        return
    # In a temp dir the host users can reach (/tmp may be private to root; /var/tmp is 1777).
    base = tempfile.gettempdir() if os.stat(tempfile.gettempdir()).st_mode & 0o001 else "/var/tmp"
    where = tempfile.mkdtemp(prefix="vf-bare-python-", dir=base)
    os.chmod(where, 0o755)
    venv = os.path.join(where, "venv")
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", venv], check=True, capture_output=True)
    python = os.path.join(venv, "bin", "python")
    probe = subprocess.run([python, "-c", "import libvirt"], capture_output=True, text=True, check=False)
    assert probe.returncode != 0, "the bare venv can import libvirt: %s" % probe
    yield python
    shutil.rmtree(where, ignore_errors=True)


def test_missing_libvirt_python_fails_every_host_with_the_fix_and_changes_nothing(fleet, tmp_path,
                                                                                  python_without_libvirt):
    before = snapshot(fleet)
    backups_before = {h: backups(fleet, h) for h in fleet.hosts}
    res = fleet.playbook(REMEDIATE, extra_vars={"virtfleet_report_dir": str(tmp_path),
                                                "ansible_python_interpreter": python_without_libvirt})
    assert res.rc == 2, res
    counts = recap(res)
    assert all(counts[h]["failed"] == 1 and counts[h]["changed"] == 0 for h in fleet.hosts), res
    fatal = re.findall(r"^fatal: \[(hv\d)\]: FAILED! => .*", res.stdout, re.M)
    assert sorted(set(fatal)) == list(fleet.hosts), res
    # The checks' one module call failed on every host before it connected to libvirt (missing
    # library), and the role went on to publish that result.
    policy = task_sections(res)["virtfleet.libvirt.checks : " + POLICY_TASK]
    assert sorted(re.findall(r"^fatal: \[(hv\d)\]: FAILED! =>", policy, re.M)) == list(fleet.hosts), res
    assert policy.count("...ignoring") == len(fleet.hosts) and "libvirt-python" in policy, res
    assert not re.search(r"^(ok|changed): \[hv\d\]", policy, re.M), res

    report, _junit, html = load_report(tmp_path, "remediation")
    assert [(h["name"], h["status"]) for h in report["hosts"]] == [(h, "failed") for h in fleet.hosts]
    for host in report["hosts"]:
        error = host["error"]
        assert error.startswith(host["name"] + " cannot run the virtfleet modules:"), error
        assert "libvirt-python" in error and "apt install python3-libvirt python3-lxml" in error, error
        assert python_without_libvirt in error, error  # names the interpreter to fix
        assert host["domains"] == [], host
    assert report["summary"]["failed_hosts"] == list(fleet.hosts)
    assert_summary_consistent(report)
    assert html.count("<b>AUDIT FAILED</b>") == 3
    assert snapshot(fleet) == before
    assert {h: backups(fleet, h) for h in fleet.hosts} == backups_before


def test_role_stopping_before_it_publishes_is_reported_failed(fleet, tmp_path):
    # Argument validation runs before any task of the role: the playbook's rescue records why.
    res = fleet.playbook(AUDIT, check=True, limit="hv1,hv2",
                         extra_vars={"virtfleet_report_dir": str(tmp_path), "audit_checks": ["aliases", "bogus"]})
    assert res.rc == 2, res
    report, _junit, _html = load_report(tmp_path, "compliance")
    assert [(h["name"], h["status"]) for h in report["hosts"]] == [("hv1", "failed"), ("hv2", "failed")]
    for host in report["hosts"]:
        assert "audit role failed at" in host["error"] and "bogus" in host["error"], host["error"]


# --- audit with --limit ------------------------------------------------------------------------

def test_audit_with_a_limit_reports_the_limited_hosts(fleet, tmp_path):
    res = fleet.playbook(AUDIT, check=True, limit="hv1", extra_vars={"virtfleet_report_dir": str(tmp_path)})
    assert res.rc == 0, res
    assert os.path.isfile(os.path.join(str(tmp_path), "compliance.json")), "no report written with --limit:\n%s" % res
    report, _junit, _html = load_report(tmp_path, "compliance")
    assert [(h["name"], h["status"]) for h in report["hosts"]] == [("hv1", "ok")]


# --- 6. detach ----------------------------------------------------------------------------------

def _disk_targets(xml):
    return re.findall(r"<target dev='([a-z]+)' bus=", xml)


def _outcomes(result):
    """(persistent, live) per device from the detach role's 'Show the outcome per device' task."""
    shown = result.stdout.split("Show the outcome per device", 1)[-1]
    return re.findall(r'"(removed|absent|skipped|failed)",\s*"(removed|absent|skipped|failed)"', shown)


def test_detach_removes_a_scsi_disk_live_and_persistent_and_is_idempotent(fleet):
    dom = next(d for d in fleet.domains_of("hv1") if d.state == "running")
    if fleet.virsh("hv1", "domstate", dom.name).strip() != "running" or "sda" not in _disk_targets(fleet.dumpxml("hv1", dom.name)):
        fleet.reseed()
    assert "sda" in _disk_targets(fleet.dumpxml("hv1", dom.name, inactive=False))
    request = {"detach_requests": [{"domain": dom.name, "devices": [{"target": "sda"}]}]}
    others = {k: v for k, v in snapshot(fleet).items() if k[:2] != ("hv1", dom.name)}

    first = fleet.playbook(DETACH, limit="hv1", extra_vars=request)
    assert first.rc == 0, first
    assert list(recap(first)) == ["hv1"] and recap(first)["hv1"]["changed"] == 1, first
    assert _outcomes(first) == [("removed", "removed")], first  # (persistent, live)
    live, persistent = fleet.dumpxml("hv1", dom.name, inactive=False), fleet.dumpxml("hv1", dom.name)
    assert "sda" not in _disk_targets(live), live
    assert "sda" not in _disk_targets(persistent), persistent
    assert sorted(_disk_targets(persistent)) == ["sdb", "vda", "vdb"]
    assert fleet.virsh("hv1", "domstate", dom.name).strip() == "running"
    assert any(b.startswith(dom.name + "-") for b in backups(fleet, "hv1")), "no backup of the definition"

    again = fleet.playbook(DETACH, limit="hv1", extra_vars=request)
    assert again.rc == 0, again
    assert recap(again)["hv1"]["changed"] == 0, again
    assert _outcomes(again) == [("absent", "absent")], again
    assert {k: v for k, v in snapshot(fleet).items() if k[:2] != ("hv1", dom.name)} == others


# --- rolling upgrade of the seeded fleet ------------------------------------------------------

def test_rolling_upgrade_of_the_seeded_fleet_passes(fleet):
    fleet.reseed()
    res = fleet.playbook(ROLLING, extra_vars={"virtfleet_serial": 1, "virtfleet_upgrade_tasks": UPGRADE_NOOP,
                                              "virtfleet_restart_tasks": RESTART})
    assert res.rc == 0, res
    assert sorted(recap(res)) == list(fleet.hosts), res


# --- 2. remediate -------------------------------------------------------------------------------

def test_remediate_then_audit_has_no_drift_or_failure(remediation):
    first = recap(remediation.first)
    assert remediation.first.rc == 0, remediation.first
    assert all(first[h]["failed"] == 0 for h in ("hv1", "hv2", "hv3")), remediation.first
    report, _junit, _html = load_report(remediation.dirs["audit"], "compliance")
    bad = [(h, d, f["rule"], f["status"]) for h, d, f in all_findings(report) if f["status"] in GATING]
    assert bad == []


def test_after_remediate_only_running_domains_wait_for_a_cold_boot(fleet, remediation):
    assert remediation.audit.rc == 0, remediation.audit
    report, _junit, _html = load_report(remediation.dirs["audit"], "compliance")
    assert_summary_consistent(report)
    found = all_findings(report)
    assert not [f for _h, _d, f in found if f["rule"] == IO_RULE], "io=native findings left after remediation"
    pending = [(h, d, f) for h, d, f in found if f["status"] == "pending"]
    assert pending
    for host, dom, finding in pending:
        assert finding["pending_restart"] is True, (host, dom, finding)
        assert (host, dom) in running(fleet), (host, dom, finding)
    assert {(h, d) for h, d, _f in pending} == running(fleet)
    # the shut-off, non-legacy domains are compliant after one run
    domains = {(h["name"], d["name"]): d for h in report["hosts"] for d in h["domains"]}
    for dom in fleet.domains:
        if dom.state != "running" and not dom.legacy:
            assert domains[(dom.host, dom.name)]["status"] == "compliant", domains[(dom.host, dom.name)]


def test_remediated_legacy_domains_start(fleet, remediation):
    for dom in (d for d in fleet.domains if d.legacy):
        assert "cache='writeback' io='native'" not in fleet.dumpxml(dom.host, dom.name)
        started = fleet.ssh(dom.host, "LIBVIRT_AUTOSTART=0 virsh -c %s start %s" % (fleet.uri, dom.name), check=False)
        try:
            assert started.rc == 0, started
            assert fleet.virsh(dom.host, "domstate", dom.name).strip() == "running"
        finally:
            fleet.virsh(dom.host, "destroy", dom.name, check=False)


def test_second_remediate_run_changes_no_hypervisor(remediation):
    assert remediation.second.rc == 0, remediation.second
    counts = recap(remediation.second)
    assert {h: counts[h]["changed"] for h in ("hv1", "hv2", "hv3")} == {"hv1": 0, "hv2": 0, "hv3": 0}, remediation.second


def test_remediate_converges_and_then_changes_nothing(remediation):
    assert remediation.second.rc == 0, remediation.second
    assert remediation.third.rc == 0, remediation.third
    counts = recap(remediation.third)
    for host in ("hv1", "hv2", "hv3"):
        assert counts[host]["changed"] == 0 and counts[host]["failed"] == 0, remediation.third
    report, _junit, _html = load_report(remediation.dirs["third"], "remediation")
    assert report["summary"]["modes"] == ["remediate"] and report["summary"]["check_mode"] is False
    statuses = {f["status"] for _h, _d, f in all_findings(report)}
    assert statuses <= {"pending"}, statuses
    assert all(f["pending_restart"] for _h, _d, f in all_findings(report))
    assert_summary_consistent(report)


def test_rerun_on_converged_fleet_reports_no_change_for_any_host(remediation):
    counts = recap(remediation.third)
    assert {h: c["changed"] for h, c in counts.items()} == {h: 0 for h in counts}, remediation.third


def test_after_a_cold_boot_of_the_running_domains_the_audit_has_zero_findings(fleet, remediation, tmp_path):
    # What the remediation left pending (the running domains) applies at their next cold boot:
    # destroy + start (a reboot from inside the guest keeps the same QEMU process).
    booted = sorted(running(fleet))
    assert booted
    for host, name in booted:
        fleet.virsh(host, "destroy", name)
        fleet.virsh(host, "start", name)
    res = fleet.playbook(AUDIT, check=True, extra_vars={"virtfleet_report_dir": str(tmp_path)})
    assert res.rc == 0, res
    report, junit, html = load_report(tmp_path, "compliance")
    assert all_findings(report) == [], all_findings(report)
    assert report["summary"]["passed"] is True and report["summary"]["reasons"] == []
    assert report["summary"]["findings"]["total"] == 0
    assert report["summary"]["domains"]["compliant"] == report["summary"]["domains"]["total"] == len(fleet.domains)
    assert [h["status"] for h in report["hosts"]] == ["ok"] * len(fleet.hosts)
    assert int(junit.get("failures")) == int(junit.get("errors")) == 0
    assert "PASS" in html
    for host, name in booted:  # the live domains now carry the aliases
        live = fleet.dumpxml(host, name, inactive=False)
        assert "<alias name='ua-" in live, (host, name)
        assert "io='native'" not in live or "cache='none'" in live or "cache='directsync'" in live, (host, name)


# --- 3. rolling upgrade -------------------------------------------------------------------------

def _host_sequence(result):
    """Hosts in the order their task results appear, consecutive repeats collapsed."""
    seq = []
    for host in HOST_LINE.findall(result.stdout):
        if not seq or seq[-1] != host:
            seq.append(host)
    return seq


def test_rolling_upgrade_processes_every_host_batch_by_batch(fleet, remediation):
    pids = daemon_pids(fleet)
    res = fleet.playbook(ROLLING, extra_vars={"virtfleet_serial": 1, "virtfleet_upgrade_tasks": UPGRADE_NOOP,
                                              "virtfleet_restart_tasks": RESTART})
    assert res.rc == 0, res
    counts = recap(res)
    assert sorted(counts) == list(fleet.hosts), res
    for host in fleet.hosts:
        assert counts[host]["failed"] == 0 and counts[host]["unreachable"] == 0 and counts[host]["ok"] > 0, res
        assert "changed: [%s -> localhost]" % host in res.stdout, res  # its restart ran
        assert "domain(s) unchanged on %s" % host in res.stdout, res
    assert res.stdout.count("PLAY [Rolling upgrade of the hypervisors]") == 3, res  # one play per batch
    assert _host_sequence(res) == ["hv1", "hv2", "hv3"], res
    after = daemon_pids(fleet)
    assert all(after[h] != pids[h] for h in fleet.hosts), (pids, after)  # every daemon really restarted
    for host, name in running(fleet):
        assert fleet.virsh(host, "domstate", name).strip() == "running", (host, name)


# --- 4. the rollout stops at the first batch ----------------------------------------------------

# db-01 on hv1 (manifest line 2): MACs 52:54:00:01:02:01 and :02. The machine case moves it from
# what 'q35' expands to on this host's QEMU (pc-q35-5.2, 7.2 or 10.0: docs/generations.md, row 6)
# to the next older pc-q35 type the same QEMU offers.
TAMPER_CASES = {
    "machine": (r"%s: machine {FROM} -> {TO}" % TAMPERED, "machine='{TO}'"),
    "address": (r"%s: device \d+ \(interface 52:54:00:01:02:01\) address .+ -> " % TAMPERED, None),
}


def _q35_types(fleet, host):
    caps = fleet.virsh(host, "capabilities")
    found = set(re.findall(r">(pc-q35-(\d+)\.(\d+))</machine>", caps))
    return sorted(found, key=lambda m: (int(m[1]), int(m[2])))


@pytest.mark.parametrize("kind", sorted(TAMPER_CASES))
def test_rolling_upgrade_stops_when_the_upgrade_changes_a_domain(fleet, kind):
    message, evidence = TAMPER_CASES[kind]
    before_tamper = fleet.dumpxml("hv1", TAMPERED)
    current = re.search(r"machine='(pc-q35-\d+\.\d+)'", before_tamper).group(1)
    major, minor = fleet.target.expected["qemu"]
    assert current == "pc-q35-%d.%d" % (major, minor), before_tamper   # what 'q35' expanded to here
    types = [m[0] for m in _q35_types(fleet, "hv1")]
    older = types[types.index(current) - 1]
    message = message.replace("{FROM}", re.escape(current)).replace("{TO}", re.escape(older))
    evidence = evidence.replace("{TO}", older) if evidence else None
    untouched = ("hv2", "hv3")
    before, pids = snapshot(fleet, untouched), daemon_pids(fleet, untouched)
    try:
        res = fleet.playbook(ROLLING, extra_vars={"virtfleet_serial": 1, "virtfleet_upgrade_tasks": UPGRADE_TAMPER,
                                                  "virtfleet_restart_tasks": RESTART, "virtfleet_tamper_kind": kind,
                                                  "virtfleet_tamper_from": current, "virtfleet_tamper_to": older})
        assert res.rc != 0, res
        assert re.search(message, res.stdout), res
        assert "The upgrade changed domains on hv1" in res.stdout, res
        counts = recap(res)
        assert list(counts) == ["hv1"] and counts["hv1"]["failed"] == 1, res
        assert not re.search(r"\[hv[23]\b", res.stdout), res
        after_tamper = fleet.dumpxml("hv1", TAMPERED)
        assert after_tamper != before_tamper  # the tamper did happen
        if evidence:
            assert evidence in after_tamper
        assert snapshot(fleet, untouched) == before, "hv2/hv3 were processed"
        assert daemon_pids(fleet, untouched) == pids, "libvirtd of hv2/hv3 was restarted"
    finally:
        fleet.reseed()
