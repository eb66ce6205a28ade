# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Words and numbers shared by the report's merge, JUnit and HTML (private, pure).

The vocabulary (statuses, checks, device labels) is the engine's, module_utils/_vocab.py, never
re-declared here.
"""

from __future__ import annotations

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _vocab

CHECKS = _vocab.CHECKS
# Finding statuses, worst first; ``compliant`` is a domain without findings.
STATUSES = _vocab.WORST_FIRST
GATING = _vocab.GATING  # statuses that fail a gate (report_fail_on_drift)
WAITING = ("pending", "skipped", "vanished")  # JUnit: skipped, neither failed nor passed
DOMAIN_STATUSES = STATUSES + (_vocab.COMPLIANT,)
HOST_STATUSES = ("ok", "failed", "unreachable")
_RANK = {s: i for i, s in enumerate(STATUSES)}

device_label = _vocab.device_label


def counts(keys, values):
    out = dict.fromkeys(keys, 0)
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out


def domain_status(findings):
    """The worst status of ``findings`` (STATUSES order); ``compliant`` without any."""
    if not findings:
        return "compliant"
    rank = _RANK
    worst = min(rank.get(f["status"], len(rank)) for f in findings)
    return STATUSES[worst] if worst < len(STATUSES) else "fixed"


def plural(count, word):
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def fmt(value):
    if value is None:
        return "none"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def change_text(current, desired):
    """('cache=writeback io=native', 'io=threads'): the settings that differ, now and wanted."""
    keys = [k for k in desired if k in current and current[k] != desired[k]]
    # Derived flags (cache.writeback, direct, ...) only when no setting itself differs.
    if len(keys) > 1 or (keys and isinstance(desired[keys[0]], bool)):
        keys = [k for k in keys if not isinstance(desired[k], bool)] or keys
    extra = [k for k in desired if k not in current]
    if not keys:
        keys = [k for k in current if not isinstance(current[k], bool)][:3]
        return " ".join("%s=%s" % (k, fmt(current[k])) for k in keys), ""
    now = " ".join("%s=%s" % (k, fmt(current.get(k))) for k in keys)
    want = " ".join(["%s=%s" % (k, fmt(desired.get(k))) for k in keys] +
                    ["(%s: %s)" % (k, fmt(desired.get(k))) for k in extra])
    return now, want


def change_of(finding):
    """change_text of a finding, remembered on it as ``_change`` by the writer (JUnit and HTML both need it)."""
    change = finding.get("_change")
    return change if change is not None else change_text(finding["current"], finding["desired"])


def remember_changes(host):
    """Put each finding's change_text on it (``_change``), once, for the JUnit text and the HTML row.

    Only for a host entry the writer has already written as JSON: the key is not part of the schema.
    """
    for d in host["domains"]:
        for f in d["findings"]:
            f["_change"] = change_text(f["current"], f["desired"])


def finding_line(host, domain, finding):
    """One line of text for a finding (JUnit failure texts)."""
    now, want = change_of(finding)
    change = "%s -> %s" % (now, want) if want else now
    return "[%s] %s %s %s: %s%s (%s) %s" % (
        finding["status"], host, domain, device_label(finding["device"]), finding["check"] + ":" + finding["rule"],
        " [pending restart]" if finding["pending_restart"] else "", change, finding.get("message") or "")
