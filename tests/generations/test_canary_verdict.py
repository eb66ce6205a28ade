"""playbooks/tasks/canary_verdict.yml on its own (localhost, no hypervisor): the canary check's
decision from readiness results shaped as virt_policy returns them (docs/upgrade-readiness.md).

- a reason a domain gets only against the upgraded canary stops the rollout, naming host, domain,
  code and message;
- a reason it already has against its own host today (io='native' with writeback: its batch's
  remediation fixes it) is named as not caused by the upgrade and does not stop it;
- a remaining host that could not be checked stops it;
- nothing blocked: the rollout goes on.
"""

from __future__ import annotations

import json
import os

from genlib import ROOT, run

VERDICT = os.path.join(ROOT, "playbooks", "tasks", "canary_verdict.yml")
PLAY = """
- hosts: localhost
  gather_facts: false
  connection: local
  tasks:
    - ansible.builtin.include_tasks: %s
""" % VERDICT
SNAPSHOT = {"snapshot": {"host": "canary", "versions": {"libvirt": "9.0.0", "qemu": "7.2.22"}}}


def reason(code, path, message=None):
    return {"code": code, "device": {"kind": "x", "path": path}, "message": message or "%s at %s: fix it" % (code, path)}


def dom(name, *reasons):
    return {"name": name, "readiness": {"target": "t", "starts": not reasons, "reasons": list(reasons)}}


def result(host, *domains, failed=False):
    if failed:
        return {"rolling_host": host, "failed": True, "msg": "Failed to connect to libvirt"}
    return {"rolling_host": host, "failed": False, "changed": False, "domains": list(domains)}


NATIVE = reason("io_native_needs_direct_cache", "/domain/devices/disk[1]")
PC10 = reason("machine_type_not_offered", "/domain/os", "machine type pc-1.0 is not offered by canary")


def verdict(tmp_path, against, now):
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    extra = {"rolling_remaining": [r["rolling_host"] for r in against], "rolling_snapshot": SNAPSHOT,
             "rolling_snapshot_file": "/tmp/canary.json", "rolling_readiness": {"results": against},
             "rolling_readiness_now": {"results": now}}
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    return run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), str(play), "-e", json.dumps(extra)], 120, env=env)


def test_a_reason_only_the_upgrade_brings_stops_the_rollout(tmp_path):
    res = verdict(tmp_path, [result("hv2", dom("db", PC10), dom("web")), result("hv3", dom("ok"))],
                  [result("hv2", dom("db"), dom("web")), result("hv3", dom("ok"))])
    assert res.rc != 0, res
    assert "hv2: domain db would not start: machine_type_not_offered - machine type pc-1.0 is not offered by canary" in res.stdout, res
    assert "domain web" not in res.stdout and "domain ok" not in res.stdout, res
    assert "Against canary libvirt 9.0.0 qemu 7.2.22 (snapshot /tmp/canary.json)" in res.stdout, res


def test_a_reason_the_domain_already_has_today_does_not_stop_it(tmp_path):
    res = verdict(tmp_path, [result("hv2", dom("legacy", NATIVE), dom("web"))],
                  [result("hv2", dom("legacy", NATIVE), dom("web"))])
    assert res.rc == 0, res
    assert "The upgrade keeps none of the 2 domain(s) on 1 remaining host(s) (hv2) from starting" in res.stdout, res
    assert "Not caused by the upgrade" in res.stdout and "hv2: legacy: io_native_needs_direct_cache" in res.stdout, res


def test_an_old_reason_and_a_new_one_stop_it_for_the_new_one(tmp_path):
    res = verdict(tmp_path, [result("hv2", dom("legacy", NATIVE, PC10))], [result("hv2", dom("legacy", NATIVE))])
    assert res.rc != 0, res
    assert "hv2: domain legacy would not start: machine_type_not_offered - " in res.stdout, res
    assert "would not start: io_native" not in res.stdout, res


def test_a_host_that_could_not_be_checked_stops_it(tmp_path):
    res = verdict(tmp_path, [result("hv2", dom("web")), result("hv3", failed=True)],
                  [result("hv2", dom("web")), result("hv3", failed=True)])
    assert res.rc != 0, res
    assert "hv3: could not be checked, so the rollout cannot know that its domains start: Failed to connect to libvirt" in res.stdout, res
