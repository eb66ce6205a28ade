#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: virt_capabilities
short_description: A capability snapshot of a libvirt host - what its libvirt and QEMU offer a domain
version_added: 0.3.0
description:
  - Read-only; always returns C(changed=false) (also when it writes O(dest)).
  - Reads C(virConnectGetCapabilities) and C(virConnectGetDomainCapabilities) and returns them as a small,
    versioned snapshot (schema in docs/capability-snapshot.md) - the libvirt and QEMU versions, per
    emulator and architecture the machine types with the aliases (C(pc), C(q35) and the machine type they
    stand for) and the deprecated ones, and per architecture, virt type and machine family (libvirt's
    default machine and the machine every alias stands for) the device models, buses, graphics and video
    types, CPU modes and models, firmware, memory backing and features.
  - The snapshot is what the C(upgrade_readiness) and C(machine_type) rules of M(virtfleet.libvirt.virt_policy)
    compare domains with (O(virtfleet.libvirt.virt_policy#module:rules.upgrade_readiness.target)), so the
    domains of one host can be checked against another host, or against the same host after a package
    upgrade, without touching it.
  - Keep it as a file on the controller (C(ansible.builtin.copy) with C(content="{{ snap.snapshot | to_json }}")
    delegated to localhost) and read it back with C(lookup('file', path) | from_json). It holds no secrets
    and no domain data - only what the host's libvirt and QEMU offer.
author:
  - virtfleet contributors (@virtfleet)
requirements:
  - libvirt-python (C(python3-libvirt)) for the Python interpreter Ansible uses on the host
  - lxml (C(python3-lxml))
options:
  uri:
    description: libvirt connection URI of the host, for example V(qemu:///system) or V(qemu+ssh://root@hv1/system).
    type: str
    default: qemu:///system
  dest:
    description:
      - Also write the snapshot as JSON to this path on the managed host (mode 0644, written to a temporary file
        in the same directory and renamed, so a reader never sees half a file). The directory must exist.
    type: path
  name:
    description:
      - The name the snapshot carries as C(host) (and readiness messages name as the target), for example
        V({{ inventory_hostname }}). Default - the host name libvirt reports.
    type: str
  arches:
    description:
      - Architectures to take domain capabilities for (for example V(x86_64)). Empty takes every architecture
        the host's QEMU offers; machine types are listed for every architecture either way.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode (O(dest) is written in check mode too - it changes nothing on the host's libvirt).
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
seealso:
  - module: virtfleet.libvirt.virt_policy
  - name: Capability snapshot schema
    description: Every key of the snapshot (docs/capability-snapshot.md in the collection).
    link: https://github.com/virtfleet/libvirt/blob/main/docs/capability-snapshot.md
"""

EXAMPLES = r"""
- name: Take the capability snapshot of an upgraded canary host
  virtfleet.libvirt.virt_capabilities:
    name: "{{ inventory_hostname }}"
  register: snap

- name: Keep it on the controller
  ansible.builtin.copy:
    content: "{{ snap.snapshot | to_json }}"
    dest: "snapshots/{{ inventory_hostname }}.json"
    mode: "0644"
  delegate_to: localhost

- name: Check every domain of the other hosts against it (changes nothing)
  virtfleet.libvirt.virt_policy:
    rules:
      upgrade_readiness:
        target: "{{ lookup('ansible.builtin.file', 'snapshots/canary.json') | from_json }}"
  check_mode: true
  register: readiness
"""

RETURN = r"""
changed:
  description: Always V(false).
  returned: always
  type: bool
snapshot:
  description:
    - The capability snapshot (docs/capability-snapshot.md). C(virtfleet_snapshot) is the schema version (1).
  returned: always
  type: dict
  contains:
    virtfleet_snapshot:
      description: Schema version of the snapshot.
      type: int
      sample: 1
    taken_at:
      description: When it was taken (UTC, ISO 8601).
      type: str
    host:
      description: O(name), or the host name libvirt reports.
      type: str
    uri:
      description: The URI it was taken through (password masked).
      type: str
    versions:
      description: C(libvirt), C(hypervisor) and C(qemu) versions as strings.
      type: dict
    host_arch:
      description: The host's CPU architecture.
      type: str
    guests:
      description: Per (os type, arch, emulator) - domain types, machine types, aliases, deprecated machine types, max CPUs per machine type.
      type: list
      elements: dict
    domain_capabilities:
      description: Per (emulator, arch, machine, virt type) - vcpu_max, os, cpu, memory_backing, devices and features with their enums.
      type: list
      elements: dict
    helpers:
      description:
        - Whether the helper programs libvirt runs for some devices are installed (C(passt), C(swtpm)); domain
          capabilities list those backends either way. Only when O(uri) is a local V(qemu:///...) daemon.
      type: dict
      returned: when O(uri) is local
dest:
  description: The path the snapshot was written to.
  returned: when O(dest) is set
  type: str
"""

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _capabilities, _redact
from ansible_collections.virtfleet.libvirt.plugins.module_utils._adapter import DEFAULT_URI, Adapter
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import InvalidRequest, VirtFleetError
from ansible_collections.virtfleet.libvirt.plugins.module_utils._module import require_libraries


def write_snapshot(dest, snapshot):
    """Write the snapshot as JSON to ``dest`` atomically (temp file in the same directory, fsync, rename)."""
    directory = os.path.dirname(os.path.abspath(dest)) or "."
    if not os.path.isdir(directory):
        raise InvalidRequest("dest=%s: the directory %s does not exist; create it first (ansible.builtin.file "
                             "state=directory) or choose another path." % (dest, directory))
    if os.path.isdir(dest):
        raise InvalidRequest("dest=%s is a directory; give a file path such as %s/capabilities.json." % (dest, dest))
    fd, tmp = tempfile.mkstemp(prefix=".virtfleet-snapshot-", dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(snapshot, fh, indent=1, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, dest)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise InvalidRequest("Cannot write the snapshot to %s: %s. Check the path and its permissions." % (dest, exc))


def main():
    module = AnsibleModule(argument_spec=dict(
        uri=dict(type="str", default=DEFAULT_URI),
        dest=dict(type="path"),
        arches=dict(type="list", elements="str", default=[]),
        name=dict(type="str"),
    ), supports_check_mode=True)
    require_libraries(module)
    params = module.params
    try:
        adapter = Adapter(params["uri"])
        try:
            # Helper programs (passt, swtpm) are looked for on this machine only when the daemon is local.
            helpers = _capabilities.find_helpers() if params["uri"].startswith("qemu:///") else None
            snapshot = _capabilities.take(adapter, arches=params["arches"] or None, uri=_redact.redact_uri(params["uri"]),
                                          name=params["name"], helpers=helpers)
        finally:
            adapter.close()
        result = {"changed": False, "snapshot": snapshot}
        if params["dest"]:
            write_snapshot(params["dest"], snapshot)
            result["dest"] = params["dest"]
    except VirtFleetError as exc:
        module.fail_json(msg=exc.msg, changed=False, **exc.details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
