#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: virt_device_alias
short_description: Give every device of libvirt domains a stable user alias (ua-...)
version_added: 0.1.0
description:
  - Makes every device of the chosen O(device_types) of every selected domain of a host carry a stable
    libvirt user alias C(<alias name='ua-...'/>), in one call per host. libvirt uses the alias in device
    events and in C(virDomainDetachDeviceAlias), so devices can be found and detached reliably.
  - Existing domains are migrated; aliases a device already carries (valid and unique) are kept.
  - "libvirt (>= 3.9) keeps a user alias only if it starts with C(ua-) and has only C([A-Za-z0-9_-]); it
    silently drops any other and refuses duplicates. These rules are checked before anything is defined,
    and the definition is re-read afterwards: an alias that did not stick restores the backup and fails."
  - "Derivation, most stable identity first: disk C(ua-disk-) + serial, WWN, source, target; interface
    C(ua-net-) + virtualport interfaceid, MAC (without colons), source; hostdev C(ua-hostdev-) + source
    address (PCI C(0000-03-00-0), USB vendor:product, SCSI, mdev UUID); filesystem C(ua-fs-) + target dir;
    redirdev C(ua-redir-) + bus and position; rng C(ua-rng-) + backend and position; channel
    C(ua-channel-) + target name; controller C(ua-ctl-) + type and index (never PCI controllers);
    watchdog C(ua-watchdog-) + model; shmem C(ua-shmem-) + name; input C(ua-input-) + type, bus and position;
    vsock C(ua-vsock-) + position."
  - Paths become their last component plus the first 8 hex digits of the SHA-256 of the whole value
    (C(/var/lib/libvirt/images/db.qcow2) gives C(ua-disk-db-qcow2-1a2b3c4d)); other characters outside
    C([A-Za-z0-9_-]) become C(-); values over 48 characters are cut and get the same hash suffix.
  - Two devices that derive the same alias (two interfaces sharing a MAC on different networks) are told
    apart in document order, deterministically, never randomly - the first keeps the alias, the next get
    C(-2), C(-3), ..., skipping aliases already in use in the domain.
  - Changes go to the persistent definition. A running domain keeps its old live aliases until its next cold
    boot; its findings say C(pending_restart), and later runs report them as rule C(live-differs), status
    C(pending), without changing anything.
author:
  - virtfleet contributors (@virtfleet)
extends_documentation_fragment:
  - virtfleet.libvirt.fleet
  - virtfleet.libvirt.fleet.backup
options:
  device_types:
    description:
      - Device types to alias. The default is every hot-pluggable type with a stable identity.
    type: list
    elements: str
    choices: [disk, interface, hostdev, filesystem, redirdev, rng, channel, controller, watchdog, shmem, input, vsock]
    default: [disk, interface, hostdev, filesystem, redirdev, rng, channel]
  aliases:
    description:
      - Explicit assignments, for ids that come from an outside inventory (volume or port UUIDs).
      - Checked before anything changes - the alias must be valid, the domain must be selected, O(aliases[].match)
        must select exactly one device of O(device_types), and no alias may be requested twice in a domain
        or be carried by another device that keeps it.
    type: list
    elements: dict
    default: []
    suboptions:
      domain:
        description: Domain name or UUID; it must be among the selected domains.
        type: str
        required: true
      match:
        description:
          - Device selector with exactly one of C(alias), C(serial), C(mac), C(target), C(source).
          - A C(alias) that no device carries falls back to the device whose derived alias it is.
        type: dict
        required: true
      alias:
        description: The alias to give the device, e.g. C(ua-vol-5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11).
        type: str
        required: true
  replace:
    description:
      - Whether a device that already carries a different valid C(ua-) alias is re-aliased.
      - V(false) keeps such aliases; a different alias requested in O(aliases) is reported with rule
        C(alias-mismatch) and status C(skipped).
      - V(true) re-aliases them to the requested alias, or to the derived one.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports every device that would get an alias (status V(drift)) and changes nothing.
  diff_mode:
    support: full
    description: Shows the inactive XML before and after per changed domain, with secrets redacted.
seealso:
  - module: virtfleet.libvirt.virt_domain_info
  - name: libvirt device aliases
    description: The C(alias) element and its C(ua-) rule.
    link: https://libvirt.org/formatdomain.html#devices
"""

EXAMPLES = r"""
- name: Report devices without a stable alias (compliance run)
  virtfleet.libvirt.virt_device_alias:
  check_mode: true

- name: Alias every disk, NIC and host device of every domain on the host
  virtfleet.libvirt.virt_device_alias:
    exclude: ["template-*"]

- name: Tie volumes to their inventory ids
  virtfleet.libvirt.virt_device_alias:
    domains: [db01]
    aliases:
      - domain: db01
        match: {serial: 5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11}
        alias: ua-vol-5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11
      - domain: db01
        match: {mac: "52:54:00:6b:3c:58"}
        alias: ua-port-3f1e0f52
"""

RETURN = r"""
changed:
  description: Whether any persistent definition was (or, in check mode, would be) changed.
  returned: always
  type: bool
findings:
  description: One entry per device whose alias deviates, in domain and device order.
  returned: always
  type: list
  elements: dict
  contains:
    domain:
      description: Domain name (its UUID is in RV(domains)).
      type: str
    device:
      description:
        - C(kind) and C(path) (XPath in the inactive XML) always; C(target), C(bus), C(alias), C(source), C(serial)
          and C(mac) when the device has them (a key without a value is left out).
      type: dict
    rule:
      description: C(alias-missing), C(alias-invalid), C(alias-duplicate), C(alias-mismatch) or C(live-differs).
      type: str
    current:
      description: C(alias) now (the live alias for C(live-differs)).
      type: dict
    desired:
      description: C(alias) wanted and C(basis), the identity it derives from (C(serial), C(mac), ... or C(aliases)).
      type: dict
    status:
      description:
        - V(drift) (check mode), V(fixed) (changed and verified), V(failed), V(pending) (waits for a cold boot),
          V(skipped) (see C(message), e.g. a device libvirt keeps no alias on), V(conflict) (someone else changed
          the definition after it was read; nothing changed), V(vanished) or V(unknown) (the define was sent when
          the connection broke). See M(virtfleet.libvirt.virt_policy) for the whole vocabulary.
      type: str
    check:
      description: The rule group, V(aliases).
      type: str
    pending_restart:
      description: The running domain keeps its old alias until its next cold boot.
      type: bool
    message:
      description: What is wrong and what was (or would be) done.
      type: str
  sample:
    - domain: db01
      device: {kind: interface, source: default, mac: "52:54:00:6b:3c:58", path: "/domain/devices/interface"}
      rule: alias-missing
      current: {alias: null}
      desired: {alias: ua-net-5254006b3c58, basis: mac}
      status: drift
      pending_restart: true
      message: "interface 52:54:00:6b:3c:58 has no user alias; ua-net-5254006b3c58 (from its mac)"
domains:
  description: Every selected domain with its outcome and the aliases of its devices after the run.
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
    changed:
      description: Whether its definition was (or would be) changed.
      type: bool
    backup:
      description: Path of the backup of the previous definition on the host, when it was redefined.
      type: str
    status:
      description:
        - V(compliant), V(drift), V(fixed), V(pending), V(skipped), V(failed), V(conflict), V(vanished), V(unknown)
          or V(not_attempted) (the connection was lost before the run reached it).
      type: str
    error:
      description: Why the change of this domain failed (its definition is unchanged or restored).
      type: str
    aliases:
      description: C(path), C(kind), C(alias) of every device of O(device_types) in the definition as it is after this run.
      type: list
      elements: dict
connection_lost:
  description: Whether the connection to libvirt broke during the run (the run stopped on this host).
  returned: always
  type: bool
summary:
  description: Counts (C(domains_selected), C(domains_changed), C(findings), C(by_status), C(by_rule), C(pending_restart)).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import VirtFleetError
from ansible_collections.virtfleet.libvirt.plugins.module_utils._module import (
    alias_options, finish, fleet_argument_spec, require_libraries, run_rules,
)


def argument_spec():
    return fleet_argument_spec(**alias_options())


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_libraries(module)
    params = module.params
    try:
        result = run_rules(module, {"aliases": {"device_types": params["device_types"], "aliases": params["aliases"],
                                                "replace": params["replace"]}}, details=True)
    except VirtFleetError as exc:
        module.fail_json(msg=exc.msg, changed=False, **exc.details)
    finish(module, result)


if __name__ == "__main__":
    main()
