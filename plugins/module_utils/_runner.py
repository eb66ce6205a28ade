# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One code path for every policy module, check mode or not (private).

read every selected domain -> plan every domain (pure) -> [apply: the only side effect]
-> re-read and re-plan -> result derived from the plans.

The adapter is passed in, so this file never imports ``libvirt`` and is unit-tested with a
fake adapter.
"""

from __future__ import annotations

import dataclasses

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _domxml, _plan
from ansible_collections.virtfleet.libvirt.plugins.module_utils._backup import prepare_backup_dir
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import VirtFleetError


def run_policy(adapter, planner, domains=None, exclude=None, check_mode=False, diff_mode=False,
               backup_dir=None, report=None, precheck=None):
    """Audit (check mode) or remediate every selected domain with ``planner(state) -> [Change]``.

    ``report(xml_text)`` optionally describes a domain (e.g. effective disk flags) in the result;
    ``precheck(states)`` may reject the request once every selected domain has been read.
    Returns the module result dict (without ``failed``/``msg``; see :func:`failure_message`).
    """
    states = [adapter.read(dom) for dom in adapter.select(domains, exclude)]
    if precheck is not None:
        precheck(states)  # cross-domain validation of the request, before any planning
    # Plan everything before changing anything: a planner error aborts with nothing changed.
    plans = [(state, planner(state)) for state in states]
    if not check_mode and any(_plan.domain_edits(changes) for _state, changes in plans):
        prepare_backup_dir(backup_dir)

    findings, diffs, per_domain, changed_domains = [], [], [], 0
    for state, changes in plans:
        edits = _plan.domain_edits(changes)
        patched = _plan.apply_edits(state.inactive_xml, edits)
        entry = {"name": state.name, "uuid": state.uuid, "active": state.active,
                 "persistent": state.persistent, "changed": False, "backup": None}
        status, error = _plan.DRIFT, None
        if edits and not check_mode:
            status = _plan.FIXED
            try:
                backup, new_state = adapter.apply(
                    state, patched, lambda new: verify(new, patched, planner), backup_dir=backup_dir)
                entry["backup"] = backup
                # pending_restart is what the running domain shows *now*, after the fix.
                changes = _carry_status(changes, planner(new_state))
            except VirtFleetError as exc:
                status, error = _plan.FAILED, exc
                entry["backup"] = exc.details.get("backup")
        if edits and status != _plan.FAILED:
            entry["changed"] = True
            changed_domains += 1
            if diff_mode:
                diffs.append({
                    "before_header": "%s (inactive XML, secrets redacted)" % state.name,
                    "after_header": "%s (inactive XML, secrets redacted)" % state.name,
                    "before": _domxml.redact(state.inactive_xml),
                    "after": _domxml.redact(patched),
                })
        for change in changes:
            item = _plan.finding(change, status if change.actionable else "")
            if error is not None and change.actionable:
                item["message"] = "%s. FAILED: %s" % (change.message, error.msg)
            findings.append(item)
        if report is not None:
            # The definition as it is after this run: unchanged in check mode and on failure.
            entry.update(report(patched if edits and status == _plan.FIXED else state.inactive_xml))
        entry["findings"] = sum(1 for c in changes)
        entry["error"] = error.msg if error is not None else None
        per_domain.append(entry)

    result = {
        "changed": changed_domains > 0,
        "findings": findings,
        "domains": per_domain,
        "summary": _plan.summarize(findings, len(states), changed_domains),
    }
    if diff_mode:
        result["diff"] = diffs
    return result


def _carry_status(old_changes, new_changes):
    """After a fix, keep the fixed findings but take pending_restart from the re-read state."""
    pending = {c.device.get("path") for c in new_changes if c.pending_restart}
    return [dataclasses.replace(c, pending_restart=c.device.get("path") in pending) if c.actionable else c
            for c in old_changes]


def verify(new_state, patched_xml, planner):
    """Problems with a redefined domain: anything but the planned change, or no convergence."""
    problems = _domxml.differences(patched_xml, new_state.inactive_xml)
    if not problems:
        leftover = [c for c in planner(new_state) if c.actionable]
        problems = ["the plan did not converge: %s" % c.message for c in leftover]
    return problems


def failure_message(result):
    """A summary message when some domains failed, or None."""
    failed = [d for d in result["domains"] if d.get("error")]
    if not failed:
        return None
    return "%d of %d domain(s) could not be fixed: %s" % (
        len(failed), len(result["domains"]), " | ".join("%s: %s" % (d["name"], d["error"]) for d in failed))
