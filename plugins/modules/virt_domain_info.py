#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: virt_domain_info
short_description: Canonical facts of libvirt domains and their devices, with device lookup
version_added: 0.1.0
description:
  - Read-only; always returns C(changed=false).
  - Returns per selected domain its name, UUID, run state, domain type, machine type, architecture and every
    device in document order with its type, target, bus, address, persistent and live alias, serial, WWN,
    MAC, source, model and, for disks, cache, io and the effective blockdev flags.
  - Every child of the C(devices) element except C(emulator) and C(audio) is listed - besides disks,
    interfaces, host devices and the other attachable devices also graphics (type, ports, autoport, listen
    address; never a password), leases, USB redirection filters, the pSeries NVRAM and, with libvirt
    releases that have them, crypto and pstore devices. Audio backends, which sound and graphics devices
    refer to by id, are listed by id in C(audio).
  - For a running domain each device is paired with its live counterpart (disk target, interface MAC,
    hostdev source, else the n-th device of that type) and C(live_differs) lists what differs (e.g. an
    alias that applies only after a cold boot). Devices hot-plugged without persisting them are in
    C(live_only_devices).
  - These are the facts the rolling-upgrade playbook snapshots before a host upgrade and compares after it
    (machine type, addresses, device order, aliases, MACs), so keys are always present (V(null) when absent).
  - O(lookup) finds devices by selector. A selector is a dict with exactly one of C(alias), C(serial),
    C(mac), C(target), C(source). Lookup prefers the alias - when no device carries the requested alias
    (alias-less XML from older hosts), it falls back to the device whose derived alias it is (see
    M(virtfleet.libvirt.virt_device_alias)), that is by serial, WWN, interfaceid, MAC, host device address
    or source, and C(matched_by) names the key that matched. The persistent definition is searched first,
    then the live one. Only attachable devices are searched (not graphics, audio backends, leases, USB
    redirection filters, NVRAM, crypto or pstore devices).
author:
  - virtfleet contributors (@virtfleet)
extends_documentation_fragment:
  - virtfleet.libvirt.fleet
options:
  lookup:
    description:
      - Device selectors to resolve on every selected domain.
    type: list
    elements: dict
    default: []
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
seealso:
  - module: virtfleet.libvirt.virt_device_alias
"""

EXAMPLES = r"""
- name: Snapshot the canonical facts of every domain before an upgrade
  virtfleet.libvirt.virt_domain_info:
  register: before

- name: Find a volume by its alias, falling back to its serial on alias-less hosts
  virtfleet.libvirt.virt_domain_info:
    domains: [db01]
    lookup:
      - alias: ua-disk-5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11
      - mac: "52:54:00:6b:3c:58"
  register: found

- name: Show which key matched
  ansible.builtin.debug:
    msg: "{{ found.domains[0].lookup | map(attribute='matched_by') | list }}"
"""

RETURN = r"""
changed:
  description: Always V(false).
  returned: always
  type: bool
domains:
  description: One entry per selected domain, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Domain name.
      type: str
    uuid:
      description: Domain UUID.
      type: str
    state:
      description: Run state as virsh says it (V(running), V(shut off), V(paused), ...).
      type: str
    active:
      description: Whether the domain runs.
      type: bool
    persistent:
      description: Whether the domain has a persistent definition.
      type: bool
    domain_type:
      description: C(<domain type=>), e.g. V(kvm) or V(qemu).
      type: str
    machine:
      description: Machine type of the persistent definition, e.g. V(pc-q35-7.2).
      type: str
    arch:
      description: Guest architecture.
      type: str
    devices:
      description:
        - Every device of the persistent definition in document order, with C(kind), C(index), C(path),
          C(target), C(bus), C(address), C(alias), C(live_alias), C(serial), C(wwn), C(mac), C(source),
          C(model), C(interfaceid), C(device) (disk device type), C(subsystem) (hostdev type),
          C(persistent), C(live) (present in the running domain; V(null) when not running) and
          C(live_differs) (keys that differ live).
        - Disks also have C(cache), C(io) (effective values), C(cache_set), C(io_set), C(writeback),
          C(direct), C(no_flush) and C(format).
        - Graphics also have C(type), C(port), C(tls_port), C(autoport) and C(listen) (the listen address,
          V(network:NAME), V(socket:PATH) or V(none); V(null) for the host's default), as libvirt writes them
          (V(-1) is the port of an autoport definition). A graphics password is never returned.
        - Leases also have C(lockspace), C(key), C(target_path) and C(offset).
        - USB redirection filters also have C(usbdev), the filter rules in order, each a dict of the rule's
          class, vendor, product, version and allow attributes (V(null) when absent).
        - Crypto devices also have C(type); their C(model) is the device model. A pstore device's C(model) is
          its backend and its C(source) its path.
      type: list
      elements: dict
    live_only_devices:
      description: Devices of the running domain that are not in its persistent definition (same keys).
      type: list
      elements: dict
    audio:
      description:
        - The audio backends of the persistent definition (C(<audio>) elements, which sound and graphics
          devices refer to by id) in document order, each with C(id), C(type) (e.g. V(none), V(spice),
          V(pulseaudio)) and C(path).
      type: list
      elements: dict
    lookup:
      description:
        - One entry per O(lookup) selector - C(selector), C(matched_by) (the key that matched, V(null) if
          nothing did), C(found_in) (V(persistent) or V(live)), C(count) and C(devices) (C(path), C(kind),
          C(alias), C(target), C(mac), C(serial), C(source)).
      type: list
      elements: dict
host:
  description: libvirt and hypervisor versions of the host.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _info, _select
from ansible_collections.virtfleet.libvirt.plugins.module_utils._adapter import Adapter
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import VirtFleetError
from ansible_collections.virtfleet.libvirt.plugins.module_utils._module import fleet_argument_spec, require_libraries


def argument_spec():
    return fleet_argument_spec(
        backup=False,
        lookup=dict(type="list", elements="dict", default=[]),
    )


def run(params):
    for selector in params["lookup"]:
        _select.validate_selector(selector)
    adapter = Adapter(params["uri"])
    try:
        host = adapter.host_facts()
        states = [adapter.read(dom) for dom in adapter.select(params["domains"], params["exclude"])]
    finally:
        adapter.close()
    return {
        "changed": False,
        "domains": [_info.domain_facts(state, params["lookup"]) for state in states],
        "host": host,
    }


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_libraries(module)
    try:
        result = run(module.params)
    except VirtFleetError as exc:
        module.fail_json(msg=exc.msg, changed=False, **exc.details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
