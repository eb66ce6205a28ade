"""AWX runs the project's own collection, never another copy baked into the execution environment.

The project (this repository) carries collections/requirements.yml, which installs the collection
from the checkout itself (`name: .`, type dir). This test does what AWX does, with the real tools:
1. the project update: `ansible-galaxy collection install -r collections/requirements.yml
   --collections-path <cache>/requirements_collections`, run in the project checkout (AWX's
   project_update.yml: chdir to the checkout, the collections path set to the cache);
2. the job: ansible_runner.run() on a private data dir with the project, the playbook
   playbooks/audit.yml in check mode, and the collections path AWX gives jobs: the project's
   requirements_collections first, then the EE's collections.
The "EE" here holds an older virtfleet.libvirt whose audit role fails at once. The job must run the
checkout's roles (the sample fleet on libvirt's test driver, the report written); without the
project's requirements, the same job runs the EE's copy and fails, which shows the test can tell.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("libvirt")
ansible_runner = pytest.importorskip("ansible_runner")

ROOT = Path(__file__).resolve().parents[3]
STALE = """---
- name: The execution environment's copy of the collection ran
  ansible.builtin.fail:
    msg: STALE-EE-COPY-RAN
"""


def _copy_checkout(dest):
    """The files git would clone (tracked, plus untracked files .gitignore does not ignore)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name, follow_symlinks=False)


@pytest.fixture(scope="module")
def awx(tmp_path_factory):
    base = tmp_path_factory.mktemp("awx")
    project = base / "checkout"
    project.mkdir(parents=True)
    _copy_checkout(project)
    # The EE: an older copy of the collection, in the place EEs install collections to.
    ee_collections = base / "ee" / "collections"
    stale = ee_collections / "ansible_collections" / "virtfleet" / "libvirt"
    shutil.copytree(project, stale, ignore=shutil.ignore_patterns("collections"))
    (stale / "roles" / "audit" / "tasks" / "main.yml").write_text(STALE, encoding="utf-8")
    # 1. The project update, as AWX runs it.
    requirements = base / "cache" / "requirements_collections"
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(requirements), ANSIBLE_FORCE_COLOR="false")
    # The test run's PYTHONPATH holds the repository as a collection (scripts/run-pytest.sh); Ansible
    # scans sys.path for collections too, and an AWX job has no such path.
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(galaxy), "collection", "install", "-r", "collections/requirements.yml",
                           "--collections-path", str(requirements)],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (requirements / "ansible_collections" / "virtfleet" / "libvirt" / "roles" / "audit").is_dir()
    return {"base": base, "project": project, "requirements": requirements, "ee": ee_collections}


def _job(awx, name, with_requirements):
    """An AWX job of the compliance audit template: ansible-runner on its own private data dir, holding
    a copy of the project and of the project update's collections (AWX copies both for every job)."""
    pdd = awx["base"] / name
    shutil.copytree(awx["project"], pdd / "project", symlinks=True)
    paths = [str(awx["ee"])]
    if with_requirements:
        shutil.copytree(awx["requirements"], pdd / "requirements_collections", symlinks=True)
        paths.insert(0, str(pdd / "requirements_collections"))  # the project's first, as AWX orders them
    collections_path = os.pathsep.join(paths)
    reports = awx["base"] / ("reports-" + name)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("PYTHONPATH", raising=False)  # see the project update above
        mp.setenv("PATH", "%s%s%s" % (Path(sys.executable).parent, os.pathsep, os.environ.get("PATH", "")))
        result = _run(pdd, awx, name, reports, collections_path)
    return result, result.stdout.read(), reports


def _run(pdd, awx, name, reports, collections_path):
    return ansible_runner.run(
        private_data_dir=str(pdd), project_dir=str(pdd / "project"), playbook="playbooks/audit.yml",
        inventory=str(pdd / "project" / "playbooks" / "inventory" / "sample_fleet.yml"), cmdline="--check",
        extravars={"virtfleet_report_dir": str(reports)}, ident=name, quiet=True,
        envvars={"ANSIBLE_COLLECTIONS_PATH": collections_path, "ANSIBLE_NOCOLOR": "1"})


def test_the_job_runs_the_checkouts_collection(awx):
    result, stdout, reports = _job(awx, "project", True)
    assert (result.status, result.rc) == ("successful", 0), stdout
    assert "STALE-EE-COPY-RAN" not in stdout
    report = json.loads((reports / "compliance.json").read_text(encoding="utf-8"))
    assert [h["status"] for h in report["hosts"]] == ["ok", "ok", "ok"]
    stats = [e for e in result.events if e["event"] == "playbook_on_stats"]
    assert stats and stats[0]["event_data"]["artifact_data"]["virtfleet_report"]["hosts"]["total"] == 3


def test_without_the_project_requirements_the_ee_copy_would_run(awx):
    result, stdout, unused_reports = _job(awx, "ee-only", False)
    assert result.status == "failed" and "STALE-EE-COPY-RAN" in stdout
