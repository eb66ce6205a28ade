"""virt_detach through real ``ansible-playbook``: the event loop (a libvirt event thread started
before the connection opens) must work inside Ansible's module wrapper (AnsiballZ), not only
when the module is run as ``python -m``.

A SCSI disk on a running domain with no OS: QEMU completes the unplug itself, so the
DEVICE_REMOVED event arrives without a guest. Check mode, then real, then again (idempotent).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from _detach_lib import (
    detach_domain_xml,
    disk_aliases,
    disk_xml,
    inactive_xml,
    live_xml,
    make_image,
    new_name,
    reconnecting,
)
from _itlib import TARGET, module_env

PLAYBOOK = """\
- name: virt_detach three times
  hosts: lab
  gather_facts: false
  vars:
    detach: &detach
      uri: "{{ lab_uri }}"
      domain: "{{ lab_domain }}"
      devices:
        - alias: ua-play-b
        - serial: SER-PLAY-C
      timeout: 30
      backup_dir: "{{ lab_backup_dir }}"
  tasks:
    - name: Would detach (check mode)
      virtfleet.libvirt.virt_detach: *detach
      check_mode: true
      register: r_check

    - name: Detach
      virtfleet.libvirt.virt_detach: *detach
      register: r_detach

    - name: Detach again (idempotent)
      virtfleet.libvirt.virt_detach: *detach
      register: r_again

    - name: Dump the registered results
      ansible.builtin.copy:
        content: "{{ {'check': r_check, 'detach': r_detach, 'again': r_again} | to_json }}"
        dest: "{{ lab_results }}"
        mode: "0600"
      check_mode: false
"""


def ansible_playbook():
    candidate = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return candidate if os.path.exists(candidate) else shutil.which("ansible-playbook")


def test_detach_through_ansible_playbook(lab, domains, tmp_path):
    name = new_name("play")
    domains.names.append(name)
    disks = [disk_xml(make_image(name, "%s.img" % t), t, "scsi", alias, serial)
             for t, alias, serial in (("sda", "ua-play-a", None), ("sdb", "ua-play-b", None), ("sdc", None, "SER-PLAY-C"))]
    xml = detach_domain_xml(name, lab.domain_type, disks, root_ports=4)
    reconnecting(lab, lambda conn: conn.defineXML(xml).create())
    lab.owned.add(name)

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
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_KEEP_REMOTE_FILES="0")
    for inherited in ("ANSIBLE_CONFIG", "ANSIBLE_CALLBACKS_ENABLED", "ANSIBLE_CHECK_MODE_MARKERS"):
        env.pop(inherited, None)
    proc = subprocess.run([sys.executable, executable, "-i", "inventory.ini", "-e", "@vars.json", "play.yml"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output

    got = json.loads(results.read_text())
    assert [got[k]["changed"] for k in ("check", "detach", "again")] == [True, True, False], output
    assert [(d["persistent"], d["live"]) for d in got["check"]["devices"]] == [("removed", "removed")] * 2
    assert got["check"]["backup"] is None
    real = got["detach"]["devices"]
    assert [(d["persistent"], d["live"], d["attempts"], d["event"]) for d in real] == \
        [("removed", "removed", 1, "DEVICE_REMOVED event")] * 2, json.dumps(got["detach"], indent=1)
    assert [d["matched_by"] for d in real] == ["alias", "serial"]
    assert max(d["started"] for d in real) < min(d["finished"] for d in real)
    assert [(d["persistent"], d["live"]) for d in got["again"]["devices"]] == [("absent", "absent")] * 2
    assert sorted(disk_aliases(live_xml(lab, name))) == ["sda"]
    assert sorted(disk_aliases(inactive_xml(lab, name))) == ["sda"]
    assert "Traceback" not in output
