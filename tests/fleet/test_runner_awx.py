"""The AWX job templates (awx/job_templates.json), launched on the fleet the way AWX launches them.

AWX runs a job through ansible-runner: a private data dir with a copy of the project in
``project/``, the survey answers merged into the extra vars (template extra_vars -> valid survey
defaults -> answers, each validated against its question), ``--check``/``--limit``/``-v`` from the
job type and prompts, and it reads the job's outcome back from runner's artifacts: ``status``,
``rc``, the job events, and ``artifact_data`` of the ``playbook_on_stats`` event (set_stats), which
AWX shows as the job's Artifacts. These tests do the same and assert on those artifacts.
"""

from __future__ import annotations

import copy
import json
import shlex
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import ansible_runner
import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = {t["name"]: t for t in json.loads((ROOT / "awx" / "job_templates.json").read_text())["job_templates"]}
AUDIT = "virtfleet: compliance audit (check mode)"
REMEDIATE = "virtfleet: remediate"
DETACH = "virtfleet: detach devices"
ROLLING = "virtfleet: rolling upgrade"
# What AWX's project sync leaves out of the job's copy does not matter; what is ours to skip is
# the developer state in the work tree (the .build symlink farm points back at the repo).
PROJECT_IGNORE = shutil.ignore_patterns(".git", ".venv", ".build", ".hypothesis", ".pytest_cache", "__pycache__",
                                        "reports", "output", "*.qcow2", "*.img", "*.tar.gz")


class LaunchRefused(AssertionError):
    """AWX would answer the launch with 400 (a prompt the template does not allow, a bad answer)."""


def _question_errors(q, data):
    """AWX's SurveyJobTemplateMixin._survey_element_validation for one question."""
    var = q["variable"]
    if var not in data:
        return ["'%s' value missing" % var] if q["required"] else []
    value = data[var]
    if q["type"] in ("text", "textarea", "password"):
        if not isinstance(value, str):
            return ["%s expected to be a string" % var]
        if q.get("min") not in ("", None) and len(value) < q["min"]:
            return ["%s too short" % var]
        if q.get("max") not in ("", None) and len(value) > q["max"]:
            return ["%s too long" % var]
    elif q["type"] == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return ["%s expected to be an integer" % var]
        if q.get("min") not in ("", None) and value < q["min"] or q.get("max") not in ("", None) and value > q["max"]:
            return ["%s out of range" % var]
    elif q["type"] == "multiselect":
        if not isinstance(value, list):
            return ["'%s' value is expected to be a list." % var]
        return ["%s: %s not a choice" % (var, v) for v in value if v not in q["choices"]]
    elif q["type"] == "multiplechoice" and value not in q["choices"]:
        return ["%s: %s not a choice" % (var, value)]
    return []


def ui_answers(template, answers):
    """What the AWX UI's survey step sends: every default prefilled (a multiselect's as a list),
    overridden by what the user typed. Optional questions without a default stay out."""
    sent = {}
    for q in template["related"]["survey_spec"]["spec"]:
        if q.get("default") not in (None, ""):
            sent[q["variable"]] = q["default"].splitlines() if q["type"] == "multiselect" else q["default"]
    sent.update(answers)
    return sent


def awx_extra_vars(template, answers, job_id):
    """The extra vars AWX hands the job (Job Template extra_vars -> survey defaults -> answers)."""
    import yaml

    spec = template["related"]["survey_spec"]["spec"]
    extra = yaml.safe_load(template["extra_vars"]) or {}
    for q in spec:  # _update_unified_job_kwargs: a default that fails its own validation is dropped
        if q.get("default") is not None and not _question_errors(q, {q["variable"]: q["default"]}):
            extra[q["variable"]] = q["default"]
    errors = [e for q in spec for e in _question_errors(q, answers)]
    unknown = set(answers) - {q["variable"] for q in spec}
    if unknown and not template["ask_variables_on_launch"]:
        errors.append("Variables %s are not allowed on launch" % sorted(unknown))
    if errors:
        raise LaunchRefused(errors)
    extra.update(answers)
    for prefix in ("awx", "tower"):  # AWX's own job variables (JOB_VARIABLE_PREFIXES)
        extra.update({
            f"{prefix}_job_id": job_id, f"{prefix}_job_launch_type": "manual",
            f"{prefix}_job_template_id": 7, f"{prefix}_job_template_name": template["name"],
            f"{prefix}_user_id": 1, f"{prefix}_user_name": "admin", f"{prefix}_inventory_id": 2,
            f"{prefix}_inventory_name": "hypervisors", f"{prefix}_project_revision": "0" * 40,
            f"{prefix}_project_scm_branch": "main", f"{prefix}_execution_node": "localhost",
        })
    return extra


@dataclass
class Job:
    runner: object
    private_data_dir: Path
    extra_vars: dict

    @property
    def artifacts(self):
        return Path(self.runner.config.artifact_dir)

    @property
    def project(self):
        return self.private_data_dir / "project"

    @property
    def status(self):
        return (self.artifacts / "status").read_text().strip()

    @property
    def rc(self):
        return int((self.artifacts / "rc").read_text().strip())

    @property
    def command(self):
        return json.loads((self.artifacts / "command").read_text())["command"]

    @property
    def events(self):
        return list(self.runner.events)

    def of(self, kind):
        return [e for e in self.events if e["event"] == kind]

    @property
    def artifact_data(self):
        """What AWX stores as the job's artifacts: set_stats data of the playbook_on_stats event."""
        (stats,) = self.of("playbook_on_stats")
        return stats["event_data"]["artifact_data"]

    def task_results(self, task):
        return {e["event_data"]["host"]: e["event_data"]["res"]
                for e in self.of("runner_on_ok") + self.of("runner_on_failed")
                if e["event_data"].get("task") == task}

    def __str__(self):
        failed = [(e["event_data"].get("host"), e["event_data"].get("task"), e["event_data"].get("res", {}).get("msg"))
                  for e in self.of("runner_on_failed") + self.of("runner_on_unreachable")]
        stdout = (self.artifacts / "stdout").read_text()
        return "status=%s rc=%s failed=%s\ncommand: %s\n--- stdout (tail)\n%s" % (
            self.status, self.rc, failed, " ".join(self.command), stdout[-6000:])


def launch(fleet, tmp_path, name, answers=None, *, job_type=None, limit=None, job_id=101, project_files=None):
    """Launch job template ``name`` as AWX does; refuses prompts the template does not allow."""
    template = copy.deepcopy(TEMPLATES[name])
    if job_type is not None and not template["ask_job_type_on_launch"]:
        raise LaunchRefused("job_type is not prompted on launch")
    if limit is not None and not template["ask_limit_on_launch"]:
        raise LaunchRefused("limit is not prompted on launch")
    extra_vars = awx_extra_vars(template, ui_answers(template, answers or {}), job_id)

    private_data_dir = tmp_path / ("awx_%d" % job_id)
    shutil.copytree(ROOT, private_data_dir / "project", ignore=PROJECT_IGNORE, symlinks=True)
    for rel, text in (project_files or {}).items():  # files an operator keeps in their own project
        (private_data_dir / "project" / rel).write_text(text)

    args = []  # awx.main.tasks.jobs.RunJob.build_args
    if (job_type or template["job_type"]) == "check":
        args.append("--check")
    if limit or template["limit"]:
        args += ["--limit", limit or template["limit"]]
    if template["verbosity"]:
        args.append("-" + "v" * template["verbosity"])
    if template["become_enabled"]:
        args.append("--become")
    if template["diff_mode"]:
        args.append("--diff")
    if template["forks"]:
        args.append("--forks=%d" % template["forks"])

    runner = ansible_runner.run(
        private_data_dir=str(private_data_dir), ident=str(job_id), playbook=template["playbook"],
        inventory=fleet.inventory, extravars=extra_vars, cmdline=" ".join(shlex.quote(a) for a in args),
        envvars=fleet.env, quiet=True, timeout=900,
    )
    return Job(runner, private_data_dir, extra_vars)


def inactive_xml(fleet):
    return {(h, d): fleet.dumpxml(h, d) for h in fleet.hosts for d in fleet.list_domains(h)}


def report_findings(report):
    """(host, domain, check) of every finding of a report (roles/report/files/report.schema.json)."""
    return [(host["name"], domain["name"], finding["check"])
            for host in report["hosts"] for domain in host.get("domains", []) for finding in domain["findings"]]


def assert_clean(job):
    assert job.status == "successful" and job.rc == 0, str(job)
    assert not job.of("runner_on_failed") and not job.of("runner_on_unreachable"), str(job)


def assert_reports(job, summary, name="compliance"):
    """The three report files named in the set_stats data exist and agree with it."""
    files = summary["files"]
    assert set(files) == {"json", "junit", "html"}, summary
    for path in files.values():
        assert Path(path).is_file(), path
    assert Path(files["json"]).name == f"{name}.json"
    report = json.loads(Path(files["json"]).read_text())
    assert report["summary"]["findings"] == summary["findings"]
    assert report["summary"]["hosts"] == summary["hosts"]
    junit = ET.parse(files["junit"]).getroot()  # what AWX-adjacent CI (Jenkins, GitLab) reads
    assert junit.tag == "testsuites"
    assert [suite.get("name") for suite in junit.iter("testsuite")] == [h["name"] for h in report["hosts"]]
    assert len(list(junit.iter("testcase"))) == int(junit.get("tests")) > 0
    assert "<html" in Path(files["html"]).read_text().lower()
    return report


def test_compliance_audit_check_mode(fleet, tmp_path):
    before = inactive_xml(fleet)
    job = launch(fleet, tmp_path, AUDIT)  # every survey question left at its default

    assert_clean(job)
    assert "--check" in job.command
    assert (job.artifacts / "job_events").is_dir()
    ran_on = {e["event_data"]["host"] for e in job.of("runner_on_ok")} - {"localhost"}
    assert ran_on == set(fleet.hosts)

    summary = job.artifact_data["virtfleet_report"]
    assert summary["hosts"]["total"] == len(fleet.hosts) and summary["hosts"]["ok"] == len(fleet.hosts)
    assert summary["domains"]["total"] == len(fleet.domains)
    assert summary["findings"]["total"] > 0 and summary["passed"] is False  # the fixture has drift
    # Without virtfleet_report_dir the reports land in the job's copy of the project (AWX then
    # deletes the private data dir: docs/awx.md says where to keep them).
    for path in summary["files"].values():
        assert Path(path).parent == (job.project / "reports").resolve()
    report = assert_reports(job, summary)
    assert [h["name"] for h in report["hosts"]] == list(fleet.hosts)
    assert len(report_findings(report)) == summary["findings"]["total"]
    assert inactive_xml(fleet) == before, "a check-mode audit changed a domain definition"


def test_compliance_audit_with_a_limit_reports_the_limited_hosts(fleet, tmp_path):
    """The template prompts for a limit; domains are named per host, so they go with one."""
    job = launch(fleet, tmp_path, AUDIT, {"virtfleet_domains": "web-01,db-01"}, limit="hv1", job_id=102)
    assert_clean(job)
    assert job.command[job.command.index("--limit") + 1] == "hv1"
    summary = job.artifact_data.get("virtfleet_report")
    assert summary, "with a limit no report was written (a play on localhost does not match --limit): %s" % job
    assert summary["hosts"]["total"] == 1
    report = assert_reports(job, summary)
    assert [h["name"] for h in report["hosts"]] == ["hv1"]
    assert {finding[1] for finding in report_findings(report)} == {"web-01", "db-01"}


def test_compliance_audit_survey_answers(fleet, tmp_path):
    """Answers as the AWX UI sends them: strings for text, a list for multiselect, "true" as a string."""
    report_dir = tmp_path / "kept-reports"
    job = launch(fleet, tmp_path, AUDIT, {
        "virtfleet_exclude": "db-*,app-*,legacy-*",
        "audit_checks": ["disk_io"],
        "audit_disk_cache": "none",
        "audit_disk_io": "native",
        "virtfleet_fail_on_drift": "true",
        "virtfleet_report_dir": str(report_dir),
    }, job_id=103)

    # Drift on the selected domains + fail_on_drift: the job fails, after writing the reports.
    assert job.status == "failed" and job.rc != 0, str(job)
    failed = {(e["event_data"]["host"], e["event_data"]["task"]) for e in job.of("runner_on_failed")}
    assert len(failed) == 1 and all("drift" in task.lower() for host, task in failed), str(job)
    summary = job.artifact_data["virtfleet_report"]
    assert summary["passed"] is False
    report = assert_reports(job, summary)
    assert Path(summary["files"]["json"]).parent == report_dir.resolve()
    findings = report_findings(report)
    assert findings and {finding[1] for finding in findings} <= {"web-01", "web-02"}
    assert {finding[2] for finding in findings} == {"disk_io"}


def test_remediate_dry_run(fleet, tmp_path):
    before = inactive_xml(fleet)
    job = launch(fleet, tmp_path, REMEDIATE, {
        "virtfleet_exclude": "web-*,legacy-*",
        "remediate_checks": ["aliases"],
    }, job_type="check", job_id=104)

    assert_clean(job)
    assert "--check" in job.command
    summary = job.artifact_data["virtfleet_report"]
    report = assert_reports(job, summary, name="remediation")
    assert summary["hosts"]["total"] == len(fleet.hosts)
    findings = report_findings(report)
    assert findings and {finding[1] for finding in findings} <= {"db-01", "db-03", "app-03"}
    assert {finding[2] for finding in findings} == {"aliases"}
    assert inactive_xml(fleet) == before, "a remediate launched as job type check changed a domain"


def test_detach_preview_from_the_survey(fleet, tmp_path):
    before = inactive_xml(fleet)
    job = launch(fleet, tmp_path, DETACH, {
        "virtfleet_hosts": "hv1",
        "detach_domain": "db-01",
        "detach_devices": '[{"target": "vdb"}, {"target": "sda"}]',
        "detach_timeout": 20,
        "detach_attempts": 3,
    }, job_type="check", job_id=105)

    assert_clean(job)
    hosts = {e["event_data"]["host"] for e in job.of("runner_on_ok")}
    assert hosts == {"hv1"}, str(job)
    results = [r for e in job.of("runner_on_ok") for r in e["event_data"]["res"].get("results", [e["event_data"]["res"]])
               if e["event_data"].get("task_action", "").endswith("virt_detach")]
    assert len(results) == 1, str(job)
    assert results[0]["domain"] == "db-01"
    assert [d["persistent"] for d in results[0]["devices"]] == ["removed", "removed"]  # would be, in check mode
    assert inactive_xml(fleet) == before


def test_detach_survey_refuses_what_awx_refuses(fleet, tmp_path):
    with pytest.raises(LaunchRefused):  # integer questions take integers, within min/max
        launch(fleet, tmp_path, DETACH, {"virtfleet_hosts": "hv1", "detach_domain": "db-01",
                                         "detach_devices": "[]", "detach_timeout": 0, "detach_attempts": 3})
    with pytest.raises(LaunchRefused):  # the detach template does not prompt for a limit
        launch(fleet, tmp_path, DETACH, {}, limit="hv1")


NOOP_UPGRADE = """---
- name: Upgrade (this project's own upgrade step; nothing to do in the test fleet)
  ansible.builtin.debug:
    msg: "upgrading {{ inventory_hostname }}"
"""


def test_rolling_upgrade_batches(fleet, tmp_path):
    try:
        job = launch(fleet, tmp_path, ROLLING, {
            "virtfleet_serial": 1,
            "virtfleet_upgrade_tasks": "noop_upgrade.yml",
            "virtfleet_restart_tasks": "noop_upgrade.yml",
        }, job_id=106, project_files={"playbooks/noop_upgrade.yml": NOOP_UPGRADE})

        assert_clean(job)
        # serial 1: one play start per batch, each batch on one host, in inventory order.
        assert len(job.of("playbook_on_play_start")) == len(fleet.hosts), str(job)
        upgraded = [e["event_data"]["host"] for e in job.of("runner_on_ok")
                    if "upgrading" in str(e["event_data"]["res"].get("msg", ""))]
        # the same no-op file stands in for both the upgrade and the restart step: twice per host
        assert upgraded == [h for h in fleet.hosts for _step in ("upgrade", "restart")], str(job)
    finally:
        fleet.reseed()  # the upgrade remediates for real
