"""Through real ``ansible-playbook``: check mode with --diff, then real, then real again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from _itlib import TARGET, VNC_PASSWORD, Disk, drivers, module_env, parse

PLAYBOOK = """\
- name: Disk I/O policy, three times
  hosts: lab
  gather_facts: false
  vars:
    policy: &policy
      uri: "{{ lab_uri }}"
      domains: ["{{ lab_domain }}"]
      io: threads
      backup_dir: "{{ lab_backup_dir }}"
  tasks:
    - name: Audit (check mode, diff from the command line)
      virtfleet.libvirt.virt_disk_io_policy: *policy
      check_mode: true
      register: r_check

    - name: Fix
      virtfleet.libvirt.virt_disk_io_policy: *policy
      register: r_fix

    - name: Fix again (idempotent)
      virtfleet.libvirt.virt_disk_io_policy: *policy
      register: r_again

    - name: Dump the registered results
      ansible.builtin.copy:
        content: "{{ {'check': r_check, 'fix': r_fix, 'again': r_again} | to_json }}"
        dest: "{{ lab_results }}"
        mode: "0600"
      delegate_to: localhost
      check_mode: false
      diff: false
"""


def ansible_playbook():
    """ansible-playbook of the interpreter running the tests (/tmp/dv, .venv, ...)."""
    candidate = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return candidate if os.path.exists(candidate) else shutil.which("ansible-playbook")


def test_playbook_check_fix_idempotent(lab, domains, tmp_path):
    name = domains.define([Disk("vda", "virtio", "none", "native"), Disk("sda", "scsi", "none", "native")],
                          suffix="play", vnc_passwd=VNC_PASSWORD)
    (tmp_path / "inventory.ini").write_text(
        "[lab]\n%s\n" % TARGET.inventory_line())
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    results = tmp_path / "results.json"
    (tmp_path / "vars.json").write_text(json.dumps({
        "lab_uri": lab.uri, "lab_domain": name, "lab_backup_dir": str(tmp_path / "backups"),
        "lab_results": str(results)}))
    executable = ansible_playbook()
    assert executable, "ansible-playbook not found next to %s nor on PATH" % sys.executable
    env = module_env()
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_HOME=str(tmp_path / "ansible-home"),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), ANSIBLE_RETRY_FILES_ENABLED="0",
               ANSIBLE_STDOUT_CALLBACK="default",
               # whole documents in the printed diff, so the <graphics> line is shown (redacted)
               ANSIBLE_DIFF_CONTEXT="10000")
    for inherited in ("ANSIBLE_CONFIG", "ANSIBLE_CALLBACKS_ENABLED", "ANSIBLE_CHECK_MODE_MARKERS"):
        env.pop(inherited, None)
    proc = subprocess.run(
        [sys.executable, executable, "--diff", "-i", "inventory.ini", "-e", "@vars.json", "play.yml"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output

    got = json.loads(results.read_text())
    assert [got[k]["changed"] for k in ("check", "fix", "again")] == [True, True, False]
    assert {f["status"] for f in got["check"]["findings"]} == {"drift"}
    assert {f["status"] for f in got["fix"]["findings"]} == {"fixed"}
    assert got["again"]["findings"] == []
    assert drivers(lab.inactive_xml(name)) == {"vda": ("none", "threads"), "sda": ("none", "threads")}
    assert parse(lab.inactive_xml(name)).find("devices/graphics").get("passwd") == VNC_PASSWORD

    # --diff printed the redacted XML diff (the driver change), never the password.
    assert "io=\"threads\"" in output and "io=\"native\"" in output, output
    assert "(inactive XML, secrets redacted)" in output
    assert "<graphics type=\"vnc\"" in output and "passwd=\"********\"" in output, output
    assert VNC_PASSWORD not in output
    assert VNC_PASSWORD not in results.read_text()
