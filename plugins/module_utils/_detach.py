# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Event-driven device detach (private; no libvirt import, the adapter is passed in).

Why it works the way it does (measured on libvirt 9.0 / QEMU 7.2, see docs/detach.md):
- A live detach only *asks* the guest to release a PCI device. libvirt announces the outcome with
  VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED (or DEVICE_REMOVAL_FAILED). Re-sending the request while the
  guest is still releasing the device interrupts the unplug (native PCIe hotplug toggles the
  attention button) and a fixed sleep is either too short (pciehp takes ~6.2 s) or wasted time.
  So: register the waiter *before* the request (a SCSI unplug's event arrives before the call
  returns), wait for the event with a timeout, re-read the live XML on timeout (gone = done),
  and only then ask again, up to ``attempts`` times.
- "already in the process of unplug" means the earlier request is still pending, not a failure.
- DEVICE_REMOVAL_FAILED is final (the guest refused); retrying cannot help.
- The persistent definition goes first, synchronously and once: it never waits for the guest.
- Devices of one call are detached concurrently, so N devices take about as long as the slowest.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _alias, _domxml, _select
from ansible_collections.virtfleet.libvirt.plugins.module_utils._backup import write_backup
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import (
    DetachFailed,
    DeviceMissing,
    InvalidRequest,
    LibvirtCallFailed,
    UnplugPending,
)

REMOVED, ABSENT, SKIPPED, FAILED = "removed", "absent", "skipped", "failed"
TIMEOUT_RANGE = (1, 600)
ATTEMPTS_RANGE = (1, 50)
# Native PCIe hot-unplug (pciehp) waits 5 s after the attention button: ~6.2 s measured here.
DEFAULT_TIMEOUT = 15
DEFAULT_ATTEMPTS = 8


@dataclass
class Target:
    """One requested device, resolved on the persistent and on the live definition."""

    index: int
    selector: dict
    matched_by: str = None
    kind: str = None
    persistent_path: str = None
    persistent_alias: str = None
    persistent_xml: str = None
    live_path: str = None
    live_alias: str = None
    live_xml: str = None
    result: dict = field(default_factory=dict)


def validate_numbers(timeout, attempts):
    for name, value, (low, high) in (("timeout", timeout, TIMEOUT_RANGE), ("attempts", attempts, ATTEMPTS_RANGE)):
        if not low <= value <= high:
            raise InvalidRequest("%s=%s is out of range: use %d to %d%s." % (
                name, value, low, high,
                " seconds (native PCIe hot-unplug alone takes ~6 s; 15 is a safe default)" if name == "timeout" else ""))


def _find(devs, selector):
    derived = _alias.derived_aliases([d for d in devs if _alias.derive(d[1], d[2])[0] is not None])
    return _select.match(devs, selector, derived)


def resolve(state, selectors):
    """Resolve every selector on both definitions; several matches, or two selectors naming the
    same device, are errors (before anything changes); no match at all is ``absent``."""
    pers = _select.entries(_domxml.parse(state.inactive_xml)) if state.persistent else []
    live = _select.entries(_domxml.parse(state.live_xml)) if state.active and state.live_xml else []
    paired, _live_only = _select.pair_live(pers, live) if live else ({}, [])
    targets, claimed = [], {}
    for index, selector in enumerate(selectors):
        where = "devices[%d] (%s)" % (index, _select.describe_selector(selector))
        target = Target(index=index, selector=dict(selector))
        found, key = _find(pers, selector)
        live_found = []
        if found:
            if len(found) > 1:
                raise InvalidRequest("%s matches %d devices of %s (%s); use a selector that matches exactly one, e.g. "
                                     "its alias or target." % (where, len(found), state.name, ", ".join(f[0] for f in found)))
            path, el, ident = found[0]
            target.persistent_path, target.persistent_alias, target.persistent_xml = path, ident.get("alias"), _domxml.element_string(el)
            target.kind, target.matched_by = el.tag, key
            other = paired.get(path)
            live_found = [other] if other is not None else []
        elif live:
            live_found, key = _find(live, selector)
            if len(live_found) > 1:
                raise InvalidRequest("%s matches %d devices of the running %s (%s); use a selector that matches "
                                     "exactly one." % (where, len(live_found), state.name,
                                                       ", ".join(f[0] for f in live_found)))
            target.matched_by = key
        if live_found:
            path, el, ident = live_found[0]
            target.live_path, target.live_alias, target.live_xml = path, ident.get("alias"), _domxml.element_string(el)
            target.kind = target.kind or el.tag
        ident_key = target.persistent_path or ("live", target.live_path)
        if (target.persistent_path or target.live_path) and ident_key in claimed:
            raise InvalidRequest("%s and devices[%d] select the same device; list it once." % (where, claimed[ident_key]))
        claimed[ident_key] = index
        targets.append(target)
    return targets


def detach_live(adapter, dom, events, target, timeout, attempts, clock=time.monotonic, t0=None):
    """The live detach of one device: event-driven, bounded retries. Returns the outcome dict.

    ``events.expect(alias)`` registers the waiter before the first request; the same waiter
    stays registered across attempts, so a late event of an earlier request still counts.
    """
    t0 = clock() if t0 is None else t0
    start = clock()
    waiter = events.expect(target.live_alias) if target.live_alias else None
    done, note, method = None, None, None
    tried = 0
    for tried in range(1, attempts + 1):
        try:
            method = adapter.detach(dom, target.live_alias, target.live_xml, live=True)
        except UnplugPending:
            note = "QEMU reported the unplug of an earlier request still in progress"
        except DeviceMissing:
            done = REMOVED
            break
        outcome = waiter.wait(timeout) if waiter is not None else None
        if outcome == "failed":
            target.result.update(live=FAILED, attempts=tried, seconds=round(clock() - start, 3),
                                 started=round(start - t0, 3), finished=round(clock() - t0, 3), event="removal-failed")
            raise DetachFailed(
                "the guest refused to release %s (DEVICE_REMOVAL_FAILED after attempt %d); not retried: %s"
                % (target.live_alias, tried, "fix the cause inside the guest, then run again"))
        if outcome == "removed":
            done, note = REMOVED, "DEVICE_REMOVED event"
            break
        # No event within the timeout: ask libvirt whether the device is still there.
        if not _still_live(adapter, dom, target):
            done, note = REMOVED, "gone from the live XML (no event seen)"
            break
    target.result.update(attempts=tried, seconds=round(clock() - start, 3), started=round(start - t0, 3),
                         finished=round(clock() - t0, 3), method=method)
    if done is None:
        target.result.update(live=FAILED, event=None)
        raise DetachFailed("still attached to the running domain after %d attempt(s) over %.1f s (%s)"
                           % (tried, clock() - start, note or "no DEVICE_REMOVED event"))
    target.result.update(live=done, event=note)
    return target.result


def _still_live(adapter, dom, target):
    xml = adapter.live_xml(dom)
    if xml is None:
        return False
    live = _select.entries(_domxml.parse(xml))
    if target.live_alias:
        return any(e[2].get("alias") == target.live_alias for e in live)
    found, _key = _find(live, target.selector)
    return bool(found)


def run_detach(adapter, domain, selectors, persistent=True, live=None, timeout=DEFAULT_TIMEOUT,
               attempts=DEFAULT_ATTEMPTS, check_mode=False, backup_dir=None, clock=time.monotonic):
    """Detach ``selectors`` from one domain: persistent first, then live and concurrently."""
    validate_numbers(timeout, attempts)
    for selector in selectors:
        _select.validate_selector(selector)
    (dom,) = adapter.select([domain], None)
    state = adapter.read(dom)
    targets = resolve(state, selectors)
    do_live = state.active if live is None else (live and state.active)
    t0 = clock()

    for target in targets:
        target.result = {
            "selector": target.selector, "matched_by": target.matched_by, "kind": target.kind,
            "alias": target.persistent_alias or target.live_alias, "live_alias": target.live_alias,
            "persistent": _predict(persistent and state.persistent, target.persistent_path),
            "live": _predict(do_live, target.live_path),
            "attempts": 0, "seconds": 0.0, "event": None, "method": None,
        }
    changed = any(t.result["persistent"] == REMOVED or t.result["live"] == REMOVED for t in targets)
    result = {"changed": changed, "domain": state.name, "uuid": state.uuid, "active": state.active,
              "backup": None, "devices": [t.result for t in targets]}
    if check_mode or not changed:
        return result

    # 1. persistent definition: synchronous, once, never retried
    in_config = [t for t in targets if t.result["persistent"] == REMOVED]
    if in_config:
        result["backup"] = write_backup(backup_dir, state.name, state.uuid, state.inactive_xml)
    for target in in_config:
        try:
            adapter.detach(dom, target.persistent_alias, target.persistent_xml, live=False)
        except DeviceMissing:
            # Fine while a live detach is still due (someone removed it a moment ago).
            target.result["persistent"] = ABSENT
        except LibvirtCallFailed as exc:
            target.result["persistent"] = FAILED
            raise DetachFailed(
                "Detaching %s from the persistent definition of %s failed: %s. Nothing was detached from the "
                "running domain; the definition before the attempt is saved at %s."
                % (_describe(target), state.name, exc.msg, result["backup"]),
                devices=result["devices"], backup=result["backup"],
                changed=any(t.result["persistent"] == REMOVED for t in in_config if t is not target))

    # 2. live domain: every device at once, each waiting for its own event
    in_live = [t for t in targets if t.result["live"] == REMOVED]
    failures = []
    if in_live:
        events = adapter.events(dom)
        try:
            with ThreadPoolExecutor(max_workers=len(in_live)) as pool:
                futures = [(t, pool.submit(detach_live, adapter, dom, events, t, timeout, attempts, clock, t0))
                           for t in in_live]
                for target, future in futures:
                    try:
                        future.result()
                    except (DetachFailed, LibvirtCallFailed) as exc:
                        target.result["live"] = FAILED
                        failures.append((target, exc))
        finally:
            events.close()
    if failures:
        changed = any(REMOVED in (t.result["persistent"], t.result["live"]) for t in targets)
        raise DetachFailed(_failure_message(state, failures, result), devices=result["devices"],
                           backup=result["backup"], changed=changed)
    return result


def _predict(enabled, path):
    if not enabled:
        return SKIPPED
    return REMOVED if path else ABSENT


def _describe(target):
    return "%s (%s)" % (target.live_alias or target.persistent_alias or target.kind or "device",
                        _select.describe_selector(target.selector))


def _failure_message(state, failures, result):
    parts = []
    for target, exc in failures:
        pers = target.result["persistent"]
        where = {
            REMOVED: "removed from the persistent definition but ",
            ABSENT: "not in the persistent definition and ",
            SKIPPED: "persistent definition not touched; ",
        }.get(pers, "")
        # Not in the persistent definition (any more): it cannot come back when the domain restarts.
        gone = (" It will be gone at the next cold boot of %s." % state.name
                if pers in (REMOVED, ABSENT) and state.persistent else "")
        parts.append("%s: %s%s.%s" % (_describe(target), where, getattr(exc, "msg", str(exc)), gone))
    return ("%d of %d device(s) of %s could not be detached from the running domain. %s What to do: make sure the "
            "guest OS runs and handles hot-unplug (ACPI/pciehp; firmware alone never releases a PCI device), "
            "then run again, raise timeout/attempts, or shut the domain down and start it.%s"
            % (len(failures), len(result["devices"]), state.name, " ".join(parts),
               " Backup of the previous definition: %s." % result["backup"] if result["backup"] else ""))
