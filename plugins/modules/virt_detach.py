#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: virt_detach
short_description: Detach devices from a libvirt domain, waiting for libvirt's device-removed event
version_added: 0.1.0
description:
  - Detaches devices from the persistent definition first - synchronously, once, never retried - then from
    the running domain.
  - "The live detach is event-driven: the waiter for C(VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED) and
    C(DEVICE_REMOVAL_FAILED) is registered before the request (a SCSI unplug announces itself before the
    call returns), the request prefers C(virDomainDetachDeviceAlias), and the module waits for the event
    up to O(timeout). On a timeout it re-reads the live XML: a device that is gone counts as removed;
    one still present is asked again, up to O(attempts) times. It never sleeps blindly and never re-sends a
    request while one is known to be pending."
  - QEMU's C(already in the process of unplug) answer means the earlier request is still pending, not a
    failure. A C(DEVICE_REMOVAL_FAILED) event is final and not retried.
  - Devices of one call are detached concurrently, so eight devices take about as long as the slowest one.
  - A device that is in neither definition is C(absent) and C(changed=false) - a selector that matches
    nothing on a domain that never had the device is not an error.
  - If a device is missing from the persistent definition but still attached live, the live detach still
    happens.
  - A failure says exactly what state each device is in, for example removed from the persistent definition
    but still attached live after N attempts over T seconds (gone at the next cold boot), and what to do.
  - The event loop runs only while the module runs; it is registered before the connection opens and shut
    down with it.
  - "A lost connection (libvirtd killed or restarted, socket closed) is reported as one: the task fails with
    RV(connection_lost=true) and a message saying, per device, what is known - C(removed) (done and verified by
    re-reading the definition), C(unknown) (requested; the answer or the device-removed event was lost) or
    C(not-attempted) - and C(changed=true) when a definition was or may have been changed. A connection close
    wakes the live wait at once instead of letting it run to O(timeout). Nothing is retried on a lost
    connection: run the same task again once the daemon is back; it finishes the detach or reports the device
    as C(absent)."
author:
  - virtfleet contributors (@virtfleet)
options:
  uri:
    description:
      - libvirt connection URI of the host, for example V(qemu:///system).
    type: str
    default: qemu:///system
  domain:
    description: Domain name or UUID.
    type: str
    required: true
  devices:
    description:
      - Devices to detach. Each is a selector with exactly one of C(alias), C(serial), C(mac), C(target),
        C(source), as in M(virtfleet.libvirt.virt_domain_info).
      - Lookup prefers the alias and falls back to the device the alias derives from (see
        M(virtfleet.libvirt.virt_device_alias)), so alias-less domains work. A selector that matches
        several devices, or two selectors naming one device, fail before anything changes.
    type: list
    elements: dict
    required: true
  persistent:
    description: Detach from the persistent definition.
    type: bool
    default: true
  live:
    description:
      - Detach from the running domain. Default - true when the domain runs.
      - Ignored (reported as C(skipped)) when the domain does not run.
    type: bool
  timeout:
    description:
      - Seconds to wait for the device-removed event per attempt, 1 to 600.
      - The default covers native PCIe hot-unplug, which takes about 6 s (pciehp waits 5 s after the
        attention button); ACPI hotplug takes 0.1 to 0.3 s and SCSI well under 0.1 s.
    type: int
    default: 15
  attempts:
    description: Detach requests per device before giving up, 1 to 50.
    type: int
    default: 8
  backup_dir:
    description:
      - Directory on the host where the inactive definition is saved before it is changed (0700; files 0600).
    type: path
    default: /var/lib/virtfleet/backups
requirements:
  - libvirt-python (C(python3-libvirt)) for the Python interpreter Ansible uses on the host
  - lxml (C(python3-lxml))
attributes:
  check_mode:
    support: full
    description: Reports which devices would be detached from which definition, and changes nothing.
  diff_mode:
    support: none
    description: The per-device outcomes are the diff.
seealso:
  - module: virtfleet.libvirt.virt_domain_info
  - module: virtfleet.libvirt.virt_device_alias
  - name: libvirt domain events
    description: VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED and DEVICE_REMOVAL_FAILED.
    link: https://libvirt.org/html/libvirt-libvirt-domain.html#virConnectDomainEventDeviceRemovedCallback
"""

EXAMPLES = r"""
- name: Detach a data volume by its alias (falls back to its serial on alias-less hosts)
  virtfleet.libvirt.virt_detach:
    domain: db01
    devices:
      - alias: ua-disk-5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11

- name: Detach several NICs at once, persistent definition only (domain stays as it runs)
  virtfleet.libvirt.virt_detach:
    domain: web01
    live: false
    devices:
      - mac: "52:54:00:6b:3c:58"
      - mac: "52:54:00:6b:3c:59"

- name: A guest that is slow to release devices
  virtfleet.libvirt.virt_detach:
    domain: legacy01
    devices: [{target: vdb}]
    timeout: 30
    attempts: 4
"""

RETURN = r"""
changed:
  description: Whether a device was (or, in check mode, would be) detached from either definition.
  returned: always
  type: bool
domain:
  description: Domain name.
  returned: success
  type: str
uuid:
  description: Domain UUID.
  returned: success
  type: str
active:
  description: Whether the domain was running.
  returned: success
  type: bool
backup:
  description: Path of the backup of the inactive definition taken before the persistent detach.
  returned: success
  type: str
devices:
  description: One entry per requested device, in request order (also returned on failure).
  returned: always
  type: list
  elements: dict
  contains:
    selector:
      description: The selector as given.
      type: dict
    matched_by:
      description: The key that matched (C(alias), C(serial), C(mac), C(interfaceid), C(target), C(source), ...), V(null) if nothing did.
      type: str
    kind:
      description: Device type (C(disk), C(interface), ...).
      type: str
    alias:
      description: The device's alias (persistent, else live).
      type: str
    live_alias:
      description: The alias of the device in the running domain (libvirt's automatic one until a cold boot).
      type: str
    persistent:
      description:
        - V(removed), V(absent) (not in the persistent definition), V(skipped) or V(failed). In check mode V(removed)
          means would be removed.
        - After a lost connection also V(unknown) (requested, outcome unknown) or V(not-attempted).
      type: str
    live:
      description:
        - V(removed), V(absent), V(skipped) (not running, or O(live=false)) or V(failed).
        - After a lost connection also V(unknown) (requested - see C(attempts) - but the answer or the
          device-removed event was lost) or V(not-attempted).
      type: str
    verified:
      description: V(true) when a re-read of the persistent definition confirmed the device gone from it.
      type: bool
      returned: when the device was removed from the persistent definition
    attempts:
      description: Live detach requests sent.
      type: int
    seconds:
      description: Seconds spent on the live detach of this device.
      type: float
    started:
      description: Seconds from the start of the live phase to this device's first request (shows concurrency).
      type: float
    finished:
      description: Seconds from the start of the live phase to this device's outcome.
      type: float
    event:
      description: How removal was confirmed (C(DEVICE_REMOVED event) or C(gone from the live XML)), or C(removal-failed).
      type: str
    method:
      description: C(alias) (virDomainDetachDeviceAlias) or C(xml) (virDomainDetachDeviceFlags) for the last request.
      type: str
connection_lost:
  description: V(true) when the task failed because the connection to libvirt was lost (rerun it once the daemon is back).
  returned: on that failure
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _detach
from ansible_collections.virtfleet.libvirt.plugins.module_utils._adapter import DEFAULT_URI, DetachAdapter
from ansible_collections.virtfleet.libvirt.plugins.module_utils._backup import DEFAULT_BACKUP_DIR
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import ConnectionLost, VirtFleetError
from ansible_collections.virtfleet.libvirt.plugins.module_utils._module import require_libraries


def argument_spec():
    return dict(
        uri=dict(type="str", default=DEFAULT_URI),
        domain=dict(type="str", required=True),
        devices=dict(type="list", elements="dict", required=True),
        persistent=dict(type="bool", default=True),
        live=dict(type="bool"),
        timeout=dict(type="int", default=_detach.DEFAULT_TIMEOUT),
        attempts=dict(type="int", default=_detach.DEFAULT_ATTEMPTS),
        backup_dir=dict(type="path", default=DEFAULT_BACKUP_DIR),
    )


def run(module, params):
    # Validate what needs no connection first: bad input never opens one.
    _detach.validate_numbers(params["timeout"], params["attempts"])
    adapter = DetachAdapter(params["uri"])
    try:
        return _detach.run_detach(
            adapter, params["domain"], params["devices"], persistent=params["persistent"], live=params["live"],
            timeout=params["timeout"], attempts=params["attempts"], check_mode=module.check_mode,
            backup_dir=params["backup_dir"])
    finally:
        adapter.close()


def not_attempted(selector):
    return {"selector": selector, "persistent": _detach.NOT_ATTEMPTED, "live": _detach.NOT_ATTEMPTED, "attempts": 0}


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_libraries(module)
    try:
        result = run(module, module.params)
    except VirtFleetError as exc:
        details = dict(exc.details)
        if isinstance(exc, ConnectionLost):
            details["connection_lost"] = True
            # Lost before the plan (connecting, selecting, reading): nothing was attempted on any device.
            details.setdefault("devices", [not_attempted(sel) for sel in module.params["devices"]])
        module.fail_json(msg=exc.msg, changed=details.pop("changed", False), **details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
