#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: virt_disk_io_policy
short_description: Audit and enforce the io= and cache= policy of every disk of libvirt domains
version_added: 0.1.0
description:
  - Checks the C(<driver io= cache=>) of every disk of the qemu driver of every selected domain of one
    host in a single call, and fixes the persistent definitions.
  - O(io) and O(cache) requests apply to C(device='disk') and C(device='lun'); the native rule below
    applies to cdroms and floppies too, because libvirt refuses to start a domain with any such disk.
  - "Always enforced: C(io='native') is only valid with C(cache='none') or C(cache='directsync'). Native
    AIO needs O_DIRECT: with a host page cache QEMU silently falls back to threads, C(-blockdev) rejects
    it and libvirt refuses to start such a domain. Such disks move to C(io='threads')."
  - O(io) and O(cache) request a policy on top. A request is applied only where it is valid; where it
    is not (native on a cached disk), the disk is reported with rule C(io-native-not-applicable).
  - A cache change that makes an existing native disk invalid moves it to threads and says so.
  - "O(io) takes effect only where QEMU opens a local file or block device (disk types C(file), C(block)
    and pool C(volume)s). On network disks of any protocol (nbd, rbd, gluster, iscsi, http, ...), C(nvme),
    C(dir), C(vhostvdpa) and iSCSI volumes with C(mode='direct') QEMU has no aio option (libvirt passes
    C(aio) only to file and host_device nodes), so an O(io) request is not written there: the disk is
    reported with rule C(io-not-applicable) and status C(skipped). The native rule above is still fixed
    on them, because libvirt checks it on every disk type. O(cache) requests still apply (cache.direct
    and cache.no-flush are set on every backend node), except that C(vhostvdpa) disks accept only
    C(none) or C(directsync) (rule C(cache-not-applicable)). vhost-user disks are never touched. See
    docs/disk-io.md in the collection for the measurements."
  - "Every finding reports the effective blockdev cache flags before and after. libvirt cache mode to
    C(cache.writeback)/C(cache.direct)/C(cache.no-flush): writeback on/off/off, none on/on/off,
    writethrough off/off/off, directsync off/on/off, unsafe on/off/on. No C(cache=) means QEMU's
    default (writeback); no C(io=) means threads."
  - In check mode nothing is changed and every deviation is reported with status C(drift).
  - A running domain gets its persistent definition fixed and C(pending_restart=true) while its live
    definition still differs; the module never restarts a domain. A later run reports such disks with
    rule C(live-differs) and status C(pending) and C(changed=false).
  - Transient domains (no persistent definition) are reported with status C(skipped).
author:
  - virtfleet contributors (@virtfleet)
extends_documentation_fragment:
  - virtfleet.libvirt.fleet
  - virtfleet.libvirt.fleet.backup
options:
  io:
    description:
      - I/O mode to enforce on every disk where it is valid.
      - V(keep) enforces only the native/cache rule.
      - V(native) is applied only to disks whose (resulting) cache mode is V(none) or V(directsync).
      - V(io_uring) needs libvirt >= 6.3.0 and QEMU >= 5.0.0 on the host; otherwise the task fails
        before anything is changed and names both versions.
      - A disk whose effective mode already matches (no C(io=) counts as V(threads)) is left alone.
    type: str
    choices: [keep, threads, native, io_uring]
    default: keep
  cache:
    description:
      - Cache mode to enforce on every disk. V(keep) leaves cache modes alone.
      - A disk whose effective mode already matches (no C(cache=) counts as V(writeback)) is left alone.
      - V(io=native) together with a cache mode other than V(none) or V(directsync) is refused.
    type: str
    choices: [keep, none, writeback, writethrough, directsync, unsafe]
    default: keep
attributes:
  check_mode:
    support: full
    description: Reports every deviation with status V(drift) and changes nothing.
  diff_mode:
    support: full
    description: Shows the inactive XML before and after per changed domain, with secrets redacted.
seealso:
  - name: libvirt domain XML, hard drives
    description: The C(driver) element and its C(cache) and C(io) attributes.
    link: https://libvirt.org/formatdomain.html#hard-drives-floppy-disks-cdroms
  - name: QEMU block driver cache modes
    description: How cache modes map to cache.writeback, cache.direct and cache.no-flush.
    link: https://www.qemu.org/docs/master/system/qemu-block-drivers.html
"""

EXAMPLES = r"""
- name: Compliance report of every domain (run with --check)
  virtfleet.libvirt.virt_disk_io_policy:
  check_mode: true
  register: io_audit

- name: Fix io='native' on cached disks (moves them to threads) on every domain of the host
  virtfleet.libvirt.virt_disk_io_policy:
    uri: qemu:///system

- name: Direct I/O with native AIO everywhere except the lab domains
  virtfleet.libvirt.virt_disk_io_policy:
    cache: none
    io: native
    exclude: ["lab-*"]
  register: io_fix

- name: Show what waits for a cold boot
  ansible.builtin.debug:
    msg: "{{ io_fix.findings | selectattr('pending_restart') | map(attribute='message') | list }}"
"""

RETURN = r"""
changed:
  description: Whether any persistent definition was (or, in check mode, would be) changed.
  returned: always
  type: bool
findings:
  description: One entry per deviation (per disk and rule), in domain and device order.
  returned: always
  type: list
  elements: dict
  contains:
    domain:
      description: Domain name (its UUID is in RV(domains)).
      type: str
    device:
      description:
        - The disk; C(kind) and C(path) (its XPath in the inactive XML) always, C(target), C(bus), C(alias),
          C(source) and C(serial) when the disk has them (a key without a value is left out).
      type: dict
    rule:
      description:
        - C(io-native-needs-direct-cache), C(cache-policy), C(io-policy), C(io-native-not-applicable),
          C(io-not-applicable), C(cache-not-applicable) or C(live-differs).
      type: str
    current:
      description:
        - C(cache) and C(io) (effective values) and C(cache_set)/C(io_set) (whether the XML sets them). The
          effective blockdev flags of each disk (C(writeback), C(direct), C(no_flush)) are in RV(domains[].disks).
      type: dict
    desired:
      description: The same keys after the fix.
      type: dict
    status:
      description:
        - V(drift) (check mode), V(fixed) (changed and verified), V(failed) (see C(message); the definition is
          unchanged or restored), V(pending) (the definition is right, the running domain waits for a cold boot),
          V(skipped) (cannot or need not be fixed by this run; see C(message)), V(conflict) (someone else changed
          the definition after it was read; nothing changed), V(vanished) (the domain was undefined meanwhile;
          nothing changed), V(unknown) (the define was sent when the connection broke).
      type: str
    check:
      description: The rule group that produced the finding, V(disk_io) or V(aliases).
      type: str
    pending_restart:
      description: The running domain still uses the old setting until its next cold boot.
      type: bool
    message:
      description: What is wrong and what was (or would be) done.
      type: str
  sample:
    - domain: web01
      device: {kind: disk, target: vda, bus: virtio, alias: ua-disk0, source: /var/lib/libvirt/images/web01.qcow2,
               path: "/domain/devices/disk[1]"}
      rule: io-native-needs-direct-cache
      current: {cache: writeback, io: native, cache_set: true, io_set: true}
      desired: {cache: writeback, io: threads, cache_set: true, io_set: true}
      status: drift
      pending_restart: true
      message: "vda: io=native with cache=writeback is invalid (...); moved to io=threads"
domains:
  description: Every selected domain with its outcome and the effective settings of its disks.
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
    active:
      description: Whether the domain was running.
      type: bool
    persistent:
      description: Whether the domain has a persistent definition.
      type: bool
    changed:
      description: Whether its definition was (or would be) changed.
      type: bool
    backup:
      description: Path of the backup of the previous definition on the host, when it was redefined.
      type: str
    status:
      description:
        - The domain's outcome - V(compliant), V(drift), V(fixed), V(pending), V(skipped), V(failed), V(conflict),
          V(vanished), V(unknown) or V(not_attempted) (the connection was lost before the run reached it).
      type: str
    normalised:
      description: Differences libvirt's own normalisation made on define (never a loss), when there were any.
      type: list
      elements: str
      returned: when libvirt normalised the definition
    error:
      description: Why the fix of this domain failed (its definition is unchanged or restored).
      type: str
    findings:
      description: Number of findings of this domain.
      type: int
    disks:
      description:
        - Per disk C(target), C(alias), C(path), effective C(cache), C(io) and blockdev flags of the definition
          as it is after this run (unchanged in check mode; see RV(findings[].desired) for what a fix would set).
      type: list
      elements: dict
connection_lost:
  description: Whether the connection to libvirt broke during the run (the run stopped on this host).
  returned: always
  type: bool
connection_error:
  description: What broke, and what to do.
  returned: when RV(connection_lost) is true
  type: str
rules:
  description: The rule groups that ran, in the order their changes are applied.
  returned: always
  type: list
  elements: str
summary:
  description: Counts for dashboards.
  returned: always
  type: dict
  contains:
    domains_selected:
      description: Number of domains looked at.
      type: int
    domains_changed:
      description: Number of domains whose definition was (or would be) changed.
      type: int
    findings:
      description: Number of findings.
      type: int
    by_status:
      description: Number of findings per status.
      type: dict
    by_rule:
      description: Number of findings per rule.
      type: dict
    pending_restart:
      description: Number of findings waiting for a cold boot.
      type: int
host:
  description: libvirt and hypervisor versions of the host.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import VirtFleetError
from ansible_collections.virtfleet.libvirt.plugins.module_utils._module import (
    disk_io_options, finish, fleet_argument_spec, require_libraries, run_rules,
)


def argument_spec():
    return fleet_argument_spec(**disk_io_options())


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_libraries(module)
    try:
        result = run_rules(module, {"disk_io": {"io": module.params["io"], "cache": module.params["cache"]}},
                           details=True)
    except VirtFleetError as exc:
        module.fail_json(msg=exc.msg, changed=False, **exc.details)
    finish(module, result)


if __name__ == "__main__":
    main()
