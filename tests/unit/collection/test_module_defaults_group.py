"""module_defaults by the collection's action group, and passwords in `uri` masked in every result.

meta/runtime.yml puts every module that talks to libvirt into the group `libvirt`, so one
`module_defaults: {group/virtfleet.libvirt.libvirt: {uri: ...}}` sets the connection of all of them.
The playbook below gives no task a `uri`: each module reaches libvirt's test driver only through the
group default. The default carries a password (`test://user:secret@/default`, which the test driver
accepts and ignores), and no result, no -vvv output and no error message may show it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

pytest.importorskip("libvirt")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")  # made by tests/conftest.py
SECRET = "s3cr3t-Pw"
GROUP_MODULES = {"virt_policy", "virt_disk_io_policy", "virt_device_alias", "virt_detach", "virt_domain_info",
                 "virt_capabilities"}

PLAYBOOK = """
- name: Every libvirt module of the collection, connected only through the group's module_defaults
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/virtfleet.libvirt.libvirt:
      uri: "{{ md_uri }}"
  tasks:
    - name: Facts
      virtfleet.libvirt.virt_domain_info: {}
      register: r_info
    - name: Every rule in one call
      virtfleet.libvirt.virt_policy:
        backup_dir: "{{ md_dir }}/backups"
        rules: {disk_io: {io: threads, cache: none}, aliases: {}}
      check_mode: true
      register: r_policy
    - name: Disk io policy
      virtfleet.libvirt.virt_disk_io_policy: {backup_dir: "{{ md_dir }}/backups", io: threads, cache: none}
      check_mode: true
      register: r_io
    - name: Aliases
      virtfleet.libvirt.virt_device_alias: {backup_dir: "{{ md_dir }}/backups"}
      check_mode: true
      register: r_alias
    - name: Detach (check mode)
      virtfleet.libvirt.virt_detach:
        backup_dir: "{{ md_dir }}/backups"
        domain: test
        devices: [{target: hda}]
      check_mode: true
      register: r_detach
    - name: Capability snapshot
      virtfleet.libvirt.virt_capabilities: {}
      register: r_caps
    - name: A connection that fails, with the password in its URI
      virtfleet.libvirt.virt_domain_info:
        uri: "test://user:{{ md_secret }}@/{{ md_dir }}/no-such-node.xml"
      register: r_failed
      ignore_errors: true
    - name: Keep every result
      ansible.builtin.copy:
        dest: "{{ md_dir }}/results.json"
        content: >-
          {{ {'virt_domain_info': r_info, 'virt_policy': r_policy, 'virt_disk_io_policy': r_io,
              'virt_device_alias': r_alias, 'virt_detach': r_detach, 'virt_capabilities': r_caps,
              'failed': r_failed} | to_json }}
        mode: "0600"
"""


def test_group_module_defaults_reach_every_module_and_the_password_never_shows(tmp_path):
    runtime = yaml.safe_load(open(os.path.join(ROOT, "meta", "runtime.yml"), encoding="utf-8"))
    assert set(runtime["action_groups"]["libvirt"]) == GROUP_MODULES

    (tmp_path / "play.yml").write_text(PLAYBOOK, encoding="utf-8")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_STDOUT_CALLBACK="default")
    uri = "test://user:%s@/default" % SECRET
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-vvv", "-i", "localhost,",
           "-c", "local", str(tmp_path / "play.yml"),
           "-e", json.dumps({"ansible_python_interpreter": sys.executable, "md_uri": uri,
                             "md_dir": str(tmp_path), "md_secret": SECRET})]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output

    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    for name in GROUP_MODULES:
        assert not results[name].get("failed"), (name, results[name].get("msg"))
    # Each module connected through the group default: the test driver's one domain, `test`.
    assert [d["name"] for d in results["virt_domain_info"]["domains"]] == ["test"]
    assert results["virt_detach"]["domain"] == "test"
    for name in ("virt_domain_info", "virt_policy", "virt_disk_io_policy", "virt_device_alias"):
        assert results[name]["host"]["uri"] == "test://user:********@/default", name
        assert results[name]["host"]["hypervisor"] == "TEST", name
    assert results["virt_policy"]["domains"] and results["virt_disk_io_policy"]["findings"]
    assert results["virt_capabilities"]["snapshot"]["uri"] == "test://user:********@/default"
    assert results["virt_capabilities"]["snapshot"]["versions"]["hypervisor"] == "TEST"

    assert results["failed"]["failed"] and results["failed"]["msg"]
    # Nowhere: not in a result (ok or failed), not in -vvv output (invocation, module args).
    assert SECRET not in json.dumps(results)
    assert SECRET not in output
    assert "user:********@" in output
