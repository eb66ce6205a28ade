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
- A lost connection (daemon killed or restarted mid-run) is reported as such, never as "nothing to
  do": each device says what is known (``removed`` = done and verified by re-reading the definition,
  ``unknown`` = requested but the answer or the event was lost, ``not-attempted``), the backup and
  ``changed`` are kept, and a rerun once the daemon is back converges (it finishes the detach or
  finds the device gone). Nothing is retried on a lost connection.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _domxml, _select
from ansible_collections.virtfleet.libvirt.plugins.module_utils._backup import write_backup
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import (
    ConnectionLost,
    DetachFailed,
    DeviceMissing,
    InvalidRequest,
    LibvirtCallFailed,
    UnplugPending,
)

REMOVED, ABSENT, SKIPPED, FAILED = "removed", "absent", "skipped", "failed"
PENDING = "pending"  # internal: planned, not yet run
# After a lost connection: the request was sent (or was being sent) but its outcome is unknown /
# the step was planned but never ran.
UNKNOWN, NOT_ATTEMPTED = "unknown", "not-attempted"
LOST_EVENT = "connection lost"
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


def _set_persistent(target, entry, key=None):
    path, el, ident = entry
    target.persistent_path, target.persistent_alias = path, ident.get("alias")
    target.persistent_xml, target.kind = _domxml.element_string(el), el.tag
    target.matched_by = target.matched_by or key


def _set_live(target, entry, key=None):
    path, el, ident = entry
    target.live_path, target.live_alias, target.live_xml = path, ident.get("alias"), _domxml.element_string(el)
    target.kind = target.kind or el.tag
    target.matched_by = target.matched_by or key


def _one(found, where, what):
    if len(found) > 1:
        raise InvalidRequest("%s matches %d devices of %s (%s); use a selector that matches exactly one, e.g. its "
                             "alias or target." % (where, len(found), what, ", ".join(f[0] for f in found)))
    return found[0] if found else None


def resolve(state, selectors):
    """Resolve every selector on both definitions; several matches, or two selectors naming the
    same device, are errors (before anything changes); no match at all is ``absent``.

    The persistent definition is searched first and the device's live counterpart paired to it;
    a selector only the live domain answers (e.g. libvirt's automatic alias) is paired back to
    the persistent device, so the same device is never reported absent from a definition it is in.
    """
    pers = _select.entries(state.inactive_root()) if state.persistent else []
    live = _select.entries(state.live_root()) if state.active and state.live_xml else []
    paired, _live_only = _select.pair_live(pers, live) if live else ({}, [])
    by_live = {other[0]: entry for entry in pers for other in [paired.get(entry[0])] if other is not None}
    targets, claimed = [], {}
    for index, selector in enumerate(selectors):
        where = "devices[%d] (%s)" % (index, _select.describe_selector(selector))
        target = Target(index=index, selector=dict(selector))
        found, key = _select.find(pers, selector)
        entry = _one(found, where, state.name)
        if entry is not None:
            _set_persistent(target, entry, key)
            if paired.get(entry[0]) is not None:
                _set_live(target, paired[entry[0]])
        elif live:
            found, key = _select.find(live, selector)
            entry = _one(found, where, "the running " + state.name)
            if entry is not None:
                _set_live(target, entry, key)
                if entry[0] in by_live:
                    _set_persistent(target, by_live[entry[0]])
        keys = [k for k in (("persistent", target.persistent_path), ("live", target.live_path)) if k[1]]
        for k in keys:
            if k in claimed:
                raise InvalidRequest("%s and devices[%d] select the same device; list it once." % (where, claimed[k]))
        claimed.update((k, index) for k in keys)
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
    done, note, tried = None, None, 0

    def record(**extra):
        target.result.update(attempts=tried, seconds=round(clock() - start, 3), started=round(start - t0, 3),
                             finished=round(clock() - t0, 3), **extra)

    for tried in range(1, attempts + 1):
        try:
            target.result["method"] = adapter.detach(dom, target.live_alias, target.live_xml, live=True)
        except ConnectionLost:
            record(live=UNKNOWN, event=LOST_EVENT)   # the request may have reached the daemon
            raise
        except UnplugPending:
            note = "QEMU reported the unplug of an earlier request still in progress"
        except DeviceMissing:
            # Gone before our first request: someone else removed it; after one of ours: ours did.
            done, note = (ABSENT if tried == 1 else REMOVED), "libvirt: device not found"
            break
        except LibvirtCallFailed as exc:
            record(live=FAILED, event=None)
            raise DetachFailed("the live detach request failed on attempt %d: %s" % (tried, exc.msg))
        outcome = waiter.wait(timeout) if waiter is not None else None
        if outcome == "lost":
            # The close callback woke the waiter: the event can no longer arrive on this connection.
            record(live=UNKNOWN, event=LOST_EVENT)
            raise ConnectionLost("the connection closed while waiting for DEVICE_REMOVED (attempt %d)" % tried)
        if outcome == "failed":
            record(live=FAILED, event="removal-failed")
            raise DetachFailed(
                "the guest refused to release %s (DEVICE_REMOVAL_FAILED after attempt %d); not retried: fix the "
                "cause inside the guest, then run again" % (target.live_alias, tried))
        if outcome == "removed":
            done, note = REMOVED, "DEVICE_REMOVED event"
            break
        # No event within the timeout: ask libvirt whether the device is still there.
        try:
            still = _still_live(adapter, dom, target)
        except ConnectionLost:
            record(live=UNKNOWN, event=LOST_EVENT)
            raise
        if not still:
            done, note = REMOVED, "gone from the live XML (no event seen)"
            break
    if done is None:
        record(live=FAILED, event=None)
        raise DetachFailed("still attached to the running domain after %d attempt(s) over %.1f s (%s)"
                           % (tried, clock() - start, note or "no DEVICE_REMOVED event"))
    record(live=done, event=note)
    return target.result


def _still_live(adapter, dom, target):
    xml = adapter.live_xml(dom)
    if xml is None:
        return False
    live = _select.entries(_domxml.parse(xml))
    if target.live_alias:
        return any(e[2].get("alias") == target.live_alias for e in live)
    found, _key = _select.find(live, target.selector)
    return bool(found)


def run_detach(adapter, domain, selectors, persistent=True, live=None, timeout=DEFAULT_TIMEOUT,
               attempts=DEFAULT_ATTEMPTS, check_mode=False, backup_dir=None, clock=time.monotonic):
    """Detach ``selectors`` from one domain: persistent first, then live and concurrently."""
    validate_numbers(timeout, attempts)
    for selector in selectors:
        _select.validate_selector(selector)
    (dom,) = adapter.select([domain], None, option="domain")
    state = adapter.read(dom)
    targets = resolve(state, selectors)
    do_live = state.active if live is None else (live and state.active)

    for target in targets:
        target.result = {
            "selector": target.selector, "matched_by": target.matched_by, "kind": target.kind,
            "alias": target.persistent_alias or target.live_alias, "live_alias": target.live_alias,
            "persistent": _predict(persistent and state.persistent, target.persistent_path),
            "live": _predict(do_live, target.live_path),
            "attempts": 0, "seconds": 0.0, "started": None, "finished": None, "event": None, "method": None,
        }
    result = {"changed": False, "domain": state.name, "uuid": state.uuid, "active": state.active,
              "backup": None, "devices": [t.result for t in targets]}
    planned = [t for t in targets if REMOVED in (t.result["persistent"], t.result["live"])]
    if check_mode or not planned:
        result["changed"] = bool(planned)  # in check mode "removed" means "would be removed"
        return result
    # From here on an outcome says what happened: planned steps are pending until they run.
    for target in planned:
        for side in ("persistent", "live"):
            if target.result[side] == REMOVED:
                target.result[side] = PENDING

    try:
        _detach_persistent(adapter, dom, state, targets, result, backup_dir)
        _verify_persistent(adapter, dom, state, targets, result)
        _detach_all_live(adapter, dom, state, targets, result, timeout, attempts, clock)
    except DetachFailed as exc:
        _settle(targets, result)
        exc.details.update(devices=result["devices"], backup=result["backup"], changed=result["changed"])
        raise
    except ConnectionLost as exc:
        _settle(targets, result, never_ran=NOT_ATTEMPTED)
        raise _lost(adapter, state, targets, result, exc)
    _settle(targets, result)
    return result


def _settle(targets, result, never_ran=SKIPPED):
    """Steps that never ran are ``never_ran``; changed is what (may have) really happened: a
    request whose outcome is unknown may have taken effect."""
    for target in targets:
        for side in ("persistent", "live"):
            if target.result[side] == PENDING:
                target.result[side] = never_ran
    result["changed"] = any(s in (REMOVED, UNKNOWN) for t in targets for s in (t.result["persistent"], t.result["live"]))


def _lost(adapter, state, targets, result, exc):
    """The ConnectionLost the module reports: what is known per device, how to converge."""
    uri = getattr(adapter, "uri", None) or exc.details.get("uri")
    parts = []
    for target in targets:
        pers, live = target.result["persistent"], target.result["live"]
        words = {
            REMOVED: "removed from the persistent definition (verified)" if target.result.get("verified")
            else "removed from the persistent definition",
            ABSENT: "not in the persistent definition",
            SKIPPED: "persistent definition not touched",
            UNKNOWN: "persistent detach requested, outcome unknown",
            NOT_ATTEMPTED: "persistent detach not attempted",
            FAILED: "persistent detach failed",
        }.get(pers, pers)
        live_words = {
            REMOVED: "removed from the running domain",
            ABSENT: "not attached to the running domain",
            SKIPPED: "running domain not touched",
            UNKNOWN: "live detach requested (attempt %d), outcome unknown" % target.result["attempts"],
            NOT_ATTEMPTED: "live detach not attempted",
            FAILED: "live detach failed",
        }.get(live, live)
        parts.append("%s: %s; %s." % (_describe(target), words, live_words))
    msg = ("The connection to libvirt%s was lost while detaching from %s (%s). What is known: %s Nothing was "
           "retried. What to do: once the daemon answers again, run the same task again; it finishes the detach "
           "or reports the device as already gone (absent).%s"
           % (" at %s" % uri if uri else "", state.name, exc.msg, " ".join(parts),
              " Backup of the previous definition: %s." % result["backup"] if result["backup"] else ""))
    details = dict(exc.details)
    details.update(devices=result["devices"], backup=result["backup"], changed=result["changed"],
                   connection_lost=True, domain=state.name, uuid=state.uuid, active=state.active)
    if uri:
        details["uri"] = uri
    lost = ConnectionLost(msg, **details)
    lost.__cause__ = exc
    return lost


def _detach_persistent(adapter, dom, state, targets, result, backup_dir):
    """The persistent definition: synchronous, once per device, never retried."""
    todo = [t for t in targets if t.result["persistent"] == PENDING]
    if not todo:
        return
    result["backup"] = write_backup(backup_dir, state.name, state.uuid, state.inactive_xml)
    for target in todo:
        try:
            adapter.detach(dom, target.persistent_alias, target.persistent_xml, live=False)
        except ConnectionLost:
            target.result["persistent"] = UNKNOWN   # the daemon may have applied it before the socket closed
            raise
        except DeviceMissing:
            # Fine while a live detach is still due (someone removed it a moment ago).
            target.result["persistent"] = ABSENT
            continue
        except LibvirtCallFailed as exc:
            target.result["persistent"] = FAILED
            done = [t for t in todo if t.result["persistent"] == REMOVED]
            raise DetachFailed(
                "Detaching %s from the persistent definition of %s failed: %s. Nothing was detached from the "
                "running domain%s; the definition before the attempt is saved at %s."
                % (_describe(target), state.name, exc.msg,
                   "; already removed from the persistent definition: %s" % ", ".join(_describe(t) for t in done)
                   if done else "", result["backup"]))
        target.result["persistent"] = REMOVED


def _verify_persistent(adapter, dom, state, targets, result):
    """Re-read the persistent definition: a device reported removed must be gone from it.

    Marks ``verified``; a device libvirt accepted the detach of but still lists fails the run
    before anything is detached live."""
    done = [t for t in targets if t.result["persistent"] == REMOVED]
    reader = getattr(adapter, "persistent_xml", None)
    if not done or reader is None:
        return
    xml = reader(dom)
    entries = _select.entries(_domxml.parse(xml))
    still = []
    for target in done:
        if target.persistent_alias:
            found = any(e[2].get("alias") == target.persistent_alias for e in entries)
        else:
            found = bool(_select.find(entries, target.selector)[0])
        target.result["verified"] = not found
        if found:
            target.result["persistent"] = FAILED
            still.append(target)
    if still:
        raise DetachFailed(
            "libvirt accepted the persistent detach of %s but the re-read definition of %s still has %s. Nothing "
            "was detached from the running domain; the definition before the attempt is saved at %s."
            % (", ".join(_describe(t) for t in still), state.name, "it" if len(still) == 1 else "them",
               result["backup"]))


def _detach_all_live(adapter, dom, state, targets, result, timeout, attempts, clock):
    """The running domain: every device at once, each waiting for its own event."""
    todo = [t for t in targets if t.result["live"] == PENDING]
    if not todo:
        return
    failures, lost = [], []
    events = adapter.events(dom)
    t0 = clock()
    try:
        with ThreadPoolExecutor(max_workers=len(todo)) as pool:
            futures = [(t, pool.submit(detach_live, adapter, dom, events, t, timeout, attempts, clock, t0))
                       for t in todo]
            for target, future in futures:
                try:
                    future.result()
                except DetachFailed as exc:
                    target.result["live"] = FAILED
                    failures.append((target, exc))
                except ConnectionLost as exc:
                    if target.result["live"] == PENDING:
                        target.result["live"] = UNKNOWN
                    lost.append(exc)
    finally:
        events.close()
    if lost:
        # Every device's outcome is kept (removed, failed, unknown); the lost connection is the story.
        raise lost[0]
    if failures:
        raise DetachFailed(_failure_message(state, failures, result))


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
