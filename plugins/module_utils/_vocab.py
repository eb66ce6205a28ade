# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one vocabulary of virtfleet (private, pure): statuses, outcomes, device labels.

The planners and the engine on the managed host, and the report filter and ``facts_diff`` on
the controller, import these names; nothing re-declares them.
"""

from __future__ import annotations

# --- finding statuses (one finding = one deviation of one device from one rule) -------------
DRIFT = "drift"            # check mode: would be fixed
FIXED = "fixed"            # the persistent definition was fixed by this run, and verified
FAILED = "failed"          # a fix was attempted and did not stick (the message says why)
PENDING = "pending"        # persistent definition is right, the running domain is not (cold boot)
SKIPPED = "skipped"        # a deviation this run cannot or will not fix (the message says why)
CONFLICT = "conflict"      # someone else changed the definition after it was read: nothing changed
VANISHED = "vanished"      # the domain was undefined by someone else after it was read: nothing changed
UNKNOWN = "unknown"        # the define was sent but the connection broke: outcome unknown
NOT_ATTEMPTED = "not_attempted"  # the run stopped (lost connection) before it reached this domain
BLOCKED = "blocked"        # the domain would not start (or be defined) on the target; nothing was changed
STATUSES = (DRIFT, FIXED, FAILED, PENDING, SKIPPED, CONFLICT, VANISHED, UNKNOWN, NOT_ATTEMPTED, BLOCKED)

# --- domain outcomes (one per selected domain and run) -------------------------------------
COMPLIANT = "compliant"    # no finding at all
# ...or DRIFT, FIXED, PENDING, SKIPPED, FAILED, CONFLICT, VANISHED, UNKNOWN, NOT_ATTEMPTED, BLOCKED
DOMAIN_OUTCOMES = (COMPLIANT, DRIFT, FIXED, PENDING, SKIPPED, FAILED, CONFLICT, VANISHED, UNKNOWN, NOT_ATTEMPTED,
                   BLOCKED)
# Outcomes that make a module run fail (the other domains' results are still returned).
FAILING_OUTCOMES = (FAILED, CONFLICT, UNKNOWN, NOT_ATTEMPTED)

# Which checks (rule groups) exist; the finding key ``check`` names one of them.
CHECK_DISK_IO = "disk_io"
CHECK_ALIASES = "aliases"
CHECK_READINESS = "upgrade_readiness"
CHECK_MACHINE_TYPE = "machine_type"


def device_label(device):
    """A person's name for a device: ``disk vda``, ``interface 52:54:00:..``, ``graphics vnc``.

    ``device`` is the plain-data identity of a finding or a fact (kind, target, mac, source, alias, path...).
    The same words in module messages, the report and ``facts_diff``.
    """
    if not device:
        return "domain"
    kind = device.get("kind") or "device"
    for key in ("target", "mac", "source", "alias", "target_path", "type", "path"):
        if device.get(key):
            return "%s %s" % (kind, device[key])
    return kind


# Finding statuses worst first, as the report ranks a domain by its worst finding.
WORST_FIRST = (FAILED, UNKNOWN, CONFLICT, NOT_ATTEMPTED, BLOCKED, DRIFT, VANISHED, PENDING, SKIPPED, FIXED)
# Statuses that fail a compliance gate (the report role's report_fail_on_drift).
GATING = (FAILED, UNKNOWN, CONFLICT, NOT_ATTEMPTED, BLOCKED, DRIFT)
# The checks every report counts (by_check); the report-only ones (readiness, machine type) when they ran.
CHECKS = (CHECK_ALIASES, CHECK_DISK_IO)
