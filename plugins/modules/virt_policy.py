#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: virt_policy
short_description: Audit or enforce every virtfleet rule on every domain of a host in one call
version_added: 0.2.0
description:
  - Runs every requested rule (O(rules.disk_io), O(rules.aliases), O(rules.upgrade_readiness),
    O(rules.machine_type)) over every selected domain of one host in one call. Each domain is read once; all
    its rules' changes are applied together in one backup, one define and one verification, so a host with
    1,000 domains that all need both fixes sees exactly 1,000 defines.
  - Rule order is the engine's business - a legacy C(io='native') + writeback domain is refused by libvirt on any
    redefine until its io is fixed, and here the alias change travels in the same define as the io fix.
  - M(virtfleet.libvirt.virt_disk_io_policy) and M(virtfleet.libvirt.virt_device_alias) are the single-rule entry
    points over the same engine; their options are the suboptions of O(rules.disk_io) and O(rules.aliases).
  - "Per domain, for real: the definition read is backed up (0600, fsynced); it is re-read immediately before the
    define - a definition someone else changed meanwhile is left alone and reported as V(conflict) with what
    changed, one someone undefined as V(vanished) (never defined again); after the define it is re-read and
    verified. libvirt's own normalisation (controllers it re-sorts, defaults it fills in) is not a failure; an
    alias libvirt drops on one device is that device's V(skipped) finding; any other loss restores the backup,
    but only while the definition is still the one this run wrote."
  - A domain with changes whose definition libvirt on this host refuses at every define (a VNC password longer
    than 8 characters on libvirt >= 8.0) is V(blocked) in check mode and in a real run alike - nothing is sent,
    and the message says what to fix.
  - A lost connection to libvirt stops the run on that host and returns everything known - per domain V(fixed),
    V(unknown) (define sent, outcome unknown) or V(not_attempted). A rerun converges.
  - Real runs hold a per-URI host lock, so two virtfleet runs against one daemon wait for each other
    (O(lock_timeout)); check mode takes no lock and changes nothing.
author:
  - virtfleet contributors (@virtfleet)
extends_documentation_fragment:
  - virtfleet.libvirt.fleet
  - virtfleet.libvirt.fleet.backup
options:
  rules:
    description:
      - The rules to run, each with its options. A rule that is absent (or null) does not run; give it an empty
        dict to run it with its defaults.
    type: dict
    required: true
    suboptions:
      disk_io:
        description:
          - The disk I/O rule of M(virtfleet.libvirt.virt_disk_io_policy) - C(io='native') only with
            C(cache='none'/'directsync'), optional io and cache policies, effective blockdev flags per disk.
        type: dict
        suboptions:
          io:
            description: Wanted C(io=) of every disk, or V(keep). See M(virtfleet.libvirt.virt_disk_io_policy).
            type: str
            default: keep
            choices: [keep, threads, native, io_uring]
          cache:
            description: Wanted C(cache=) of every disk, or V(keep).
            type: str
            default: keep
            choices: [keep, none, writeback, writethrough, directsync, unsafe]
      aliases:
        description:
          - The alias rule of M(virtfleet.libvirt.virt_device_alias) - every device of O(rules.aliases.device_types)
            carries a stable user alias C(ua-...).
        type: dict
        suboptions:
          device_types:
            description: Device types to alias.
            type: list
            elements: str
            choices: [disk, interface, hostdev, filesystem, redirdev, rng, channel, controller, watchdog, shmem, input, vsock]
            default: [disk, interface, hostdev, filesystem, redirdev, rng, channel]
          aliases:
            description: Explicit assignments (domain, match, alias), as in M(virtfleet.libvirt.virt_device_alias).
            type: list
            elements: dict
            default: []
            suboptions:
              domain:
                description: Domain name or UUID; it must be among the selected domains.
                type: str
                required: true
              match:
                description: Device selector with exactly one of C(alias), C(serial), C(mac), C(target), C(source).
                type: dict
                required: true
              alias:
                description: The alias to give the device.
                type: str
                required: true
          replace:
            description: Whether a device that already carries a different valid C(ua-) alias is re-aliased.
            type: bool
            default: false
      upgrade_readiness:
        description:
          - Report-only (never changes anything, also in a real run) - whether every selected domain will start on
            the target, and if not exactly why (docs/upgrade-readiness.md) - machine type not offered (C(pc)/C(q35)
            resolve to the target's newest), virt type, emulator, device models and buses, graphics and video
            types, CPU mode and model, firmware, features, vCPUs over the machine's limit, a VNC password longer
            than 8 characters on libvirt >= 8.0, C(io='native') without a direct cache mode, XML the target's
            libvirt does not know yet.
          - Each reason is a finding with status V(blocked) and C(check=upgrade_readiness); each domain in
            RV(domains) gets C(readiness) (C(target), C(starts), C(reasons)).
        type: dict
        suboptions:
          target:
            description:
              - A capability snapshot from M(virtfleet.libvirt.virt_capabilities) (its C(snapshot) result, or the
                file it wrote read back with C(lookup('file', path) | from_json)).
              - Omitted or null - the host itself, read live (the situation after a package upgrade, before the
                guests are restarted).
            type: dict
      machine_type:
        description:
          - Report-only machine-type hygiene against the target (same O(rules.machine_type.target) as
            O(rules.upgrade_readiness)) - a machine type the target does not offer (V(blocked)), one its QEMU
            deprecates (V(skipped), with the type to move to), and one that differs from the rest of its family on
            this host (V(skipped); the usual type of the family is the most common one). virtfleet never changes a
            machine type (it changes the guest's virtual hardware).
        type: dict
        suboptions:
          target:
            description: As O(rules.upgrade_readiness.target).
            type: dict
  details:
    description:
      - Whether each entry of RV(domains) also carries the rules' per-domain descriptions (C(disks) with effective
        flags, C(aliases)). Off by default to keep the result small on large hosts - the findings say everything
        that deviates.
    type: bool
    default: false
  findings_format:
    description:
      - How RV(findings) travel back to the controller.
      - V(list) - RV(findings) is a list of mappings, ready for Jinja (C(selectattr), C(map)).
      - V(json) - RV(findings_json) is the same list as one JSON text, and RV(findings) is absent. Ansible handles
        a module result value by value (masking, decoding, copying a registered variable); for 5,000 findings that
        is about 0.6 s as a list and 0.05 s as one text. The audit and remediate roles ask for V(json); read the
        findings of either format with the P(virtfleet.libvirt.audit_findings#filter) filter, or hand the result
        to the report role, which reads both.
      - Masking is the same in both formats - a password inside O(uri) is removed from the findings before they are
        encoded. If it would still occur in the text (it is also the name of a key, or JSON escapes it), the
        findings are returned as V(list) instead; RV(findings_format) says which format the result has.
    type: str
    choices: [list, json]
    default: list
attributes:
  check_mode:
    support: full
    description: Reports every deviation of every rule (status V(drift)) and changes nothing.
  diff_mode:
    support: full
    description: Shows the inactive XML before and after per changed domain, with secrets redacted.
seealso:
  - module: virtfleet.libvirt.virt_disk_io_policy
  - module: virtfleet.libvirt.virt_device_alias
  - name: virtfleet architecture
    description: The engine's safety sequence (docs/architecture.md in the collection).
    link: https://github.com/virtfleet/libvirt/blob/main/docs/architecture.md
"""

EXAMPLES = r"""
- name: Compliance report of every domain (changes nothing)
  virtfleet.libvirt.virt_policy:
    rules:
      disk_io: {}
      aliases: {}
  check_mode: true
  register: policy

- name: Enforce direct I/O and aliases in one define per domain
  virtfleet.libvirt.virt_policy:
    exclude: ["scratch-*"]
    rules:
      disk_io: {cache: none, io: native}
      aliases: {device_types: [disk, interface]}

- name: Will every domain start after this host's packages were upgraded (guests not restarted yet)?
  virtfleet.libvirt.virt_policy:
    rules:
      upgrade_readiness: {}
      machine_type: {}
  check_mode: true
  register: readiness

- name: Domains that would not start, with the reasons
  ansible.builtin.debug:
    msg: "{{ readiness.domains | rejectattr('readiness.starts') | map(attribute='readiness') | list }}"

- name: The same audit of a large host, with the findings as one JSON text (much less work for Ansible)
  virtfleet.libvirt.virt_policy:
    rules:
      disk_io: {}
      aliases: {}
    findings_format: json
  check_mode: true
  register: large

- name: Its first ten findings that are not compliant with the alias rule
  ansible.builtin.debug:
    msg: "{{ (large | virtfleet.libvirt.audit_findings | selectattr('check', 'equalto', 'aliases') | list)[:10] }}"

- name: Domains someone else changed while the run worked (left alone; rerun to plan from their change)
  ansible.builtin.debug:
    msg: "{{ policy.domains | selectattr('status', 'equalto', 'conflict') | map(attribute='name') | list }}"
"""

RETURN = r"""
changed:
  description: Whether any persistent definition was (or, in check mode, would be) changed.
  returned: always
  type: bool
findings:
  description:
    - One entry per deviation (per device and rule), in domain order and, within a domain, in rule order. The
      keys are those of M(virtfleet.libvirt.virt_disk_io_policy) and M(virtfleet.libvirt.virt_device_alias)
      findings, plus C(check) (V(disk_io), V(aliases), V(upgrade_readiness) or V(machine_type)).
    - C(status) is V(drift) (check mode), V(fixed) (changed and verified), V(failed), V(pending) (waits for a cold
      boot), V(skipped) (cannot or need not be fixed here; see C(message)), V(conflict) (someone else changed the
      definition after it was read; nothing changed), V(vanished) (undefined meanwhile; nothing changed),
      V(unknown) (the define was sent when the connection broke), V(not_attempted) or V(blocked) (the domain would
      not start on the readiness target, or libvirt here refuses every define of it; nothing changed).
  returned: when RV(findings_format=list)
  type: list
  elements: dict
findings_json:
  description:
    - RV(findings) as one JSON text (an array of the same mappings), with O(findings_format=json). Decode it with
      P(virtfleet.libvirt.audit_findings#filter) (or C(from_json)).
  returned: when RV(findings_format=json)
  type: str
findings_format:
  description: The format of the findings in this result - V(list) (RV(findings)) or V(json) (RV(findings_json)).
  returned: always
  type: str
  sample: json
domains:
  description: Every selected domain with its outcome.
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
    status:
      description:
        - V(compliant), V(drift), V(fixed), V(pending), V(skipped), V(failed), V(conflict), V(vanished), V(unknown),
          V(not_attempted) or V(blocked).
      type: str
    changed:
      description: Whether its definition was (or would be) changed.
      type: bool
    backup:
      description: Path of the backup of the definition before this run, when one was written.
      type: str
    error:
      description: What went wrong for this domain and what to do; names the backup file where one holds ours.
      type: str
    findings:
      description: Number of findings of this domain.
      type: int
    normalised:
      description: Differences libvirt's own normalisation made on define (never a loss), when there were any.
      type: list
      elements: str
      returned: when libvirt normalised the definition
    disks:
      description: Per-disk effective settings (see M(virtfleet.libvirt.virt_disk_io_policy)).
      type: list
      elements: dict
      returned: when O(details=true) and the disk_io rule ran
    aliases:
      description: Per-device aliases (see M(virtfleet.libvirt.virt_device_alias)).
      type: list
      elements: dict
      returned: when O(details=true) and the aliases rule ran
    readiness:
      description:
        - C(target) (C(<host> libvirt X qemu Y)), C(starts) (bool) and C(reasons) (list of C(code), C(device),
          C(message)) - whether the domain would start on the target.
      type: dict
      returned: when the upgrade_readiness rule ran
summary:
  description:
    - Counts - C(domains_selected), C(domains_changed), C(findings), C(by_status), C(by_rule), C(pending_restart),
      C(by_domain_status).
  returned: always
  type: dict
rules:
  description: The rules that ran, in the order their changes are applied.
  returned: always
  type: list
  elements: str
connection_lost:
  description: Whether the connection to libvirt broke during the run (the run stopped on this host).
  returned: always
  type: bool
connection_error:
  description: What broke, and what to do.
  returned: when RV(connection_lost) is true
  type: str
lock_waited:
  description: Seconds this run waited for another virtfleet run on the same host.
  returned: when it waited
  type: float
host:
  description: The URI (password masked), libvirt and hypervisor versions of the host.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import VirtFleetError
from ansible_collections.virtfleet.libvirt.plugins.module_utils._module import (
    FINDINGS_FORMATS, alias_options, disk_io_options, finish, fleet_argument_spec, readiness_options, require_libraries,
    run_rules,
)


def argument_spec():
    return fleet_argument_spec(
        rules=dict(type="dict", required=True, options=dict(
            disk_io=dict(type="dict", options=disk_io_options()),
            aliases=dict(type="dict", options=alias_options()),
            upgrade_readiness=dict(type="dict", options=readiness_options()),
            machine_type=dict(type="dict", options=readiness_options()),
        )),
        details=dict(type="bool", default=False),
        findings_format=dict(type="str", default="list", choices=list(FINDINGS_FORMATS)),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_libraries(module)
    try:
        result = run_rules(module, module.params["rules"], details=module.params["details"],
                           findings_format=module.params["findings_format"])
    except VirtFleetError as exc:
        module.fail_json(msg=exc.msg, changed=False, **exc.details)
    finish(module, result)


if __name__ == "__main__":
    main()
