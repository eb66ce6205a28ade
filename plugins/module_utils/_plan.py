# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plans as plain data (private).

A planner turns a domain's state into a list of :class:`Change`. Everything a module reports
(``changed``, the diff, the findings, the summary) is derived from that list, so check mode and
a real run share one code path up to the single step that applies the patched XML.

Pure logic: imports neither ``libvirt`` nor ``AnsibleModule``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _domxml, _vocab

# Finding statuses live in _vocab (shared with the report filter); re-exported for the planners.
DRIFT, FIXED, FAILED, PENDING, SKIPPED = _vocab.DRIFT, _vocab.FIXED, _vocab.FAILED, _vocab.PENDING, _vocab.SKIPPED
STATUSES = _vocab.STATUSES


@dataclass(frozen=True)
class DomainState:
    """What the adapter read: libvirt's own XML, never a model of it."""

    name: str
    uuid: str
    active: bool
    persistent: bool
    inactive_xml: str           # VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE
    live_xml: str | None = None  # VIR_DOMAIN_XML_SECURE, only while active
    state: str = ""              # libvirt run state: running, paused, shut off, ...
    _parsed: dict = field(default_factory=dict, compare=False, repr=False)

    def inactive_root(self):
        """The parsed inactive XML, parsed once and shared by every planner (read it, never edit it)."""
        if "inactive" not in self._parsed:
            self._parsed["inactive"] = _domxml.parse(self.inactive_xml)
        return self._parsed["inactive"]

    def inactive_devices(self):
        """[(path, element, identity)] of every device of the inactive XML, computed once and shared
        by every planner like :meth:`inactive_root` (read them, never edit them)."""
        if "devices" not in self._parsed:
            self._parsed["devices"] = [(path, el, _domxml.identity(el, path))
                                       for path, el in _domxml.devices(self.inactive_root())]
        return self._parsed["devices"]

    def live_root(self):
        """The parsed live XML (None when the domain is not running); shared and read-only like inactive_root."""
        if self.live_xml is None:
            return None
        if "live" not in self._parsed:
            self._parsed["live"] = _domxml.parse(self.live_xml)
        return self._parsed["live"]


@dataclass(frozen=True)
class Edit:
    """Set (value) or remove (None) attributes on a device element or on one of its children.

    ``device`` is the element's path in the inactive XML as given by ``_domxml.devices``;
    ``child`` is a child tag created if missing ('' means the device element itself).
    """

    device: str
    child: str
    attrs: tuple
    child_first: bool = False
    child_before: tuple = ()


@dataclass(frozen=True)
class Change:
    """One deviation of one device from one rule, and the edits that fix it (if any)."""

    domain: str
    uuid: str
    device: dict
    rule: str
    current: dict
    desired: dict
    message: str
    edits: tuple = ()
    pending_restart: bool = False
    status: str = ""            # preset for report-only changes (PENDING, SKIPPED)
    check: str = ""             # the check (_vocab.CHECKS) whose planner made it

    @property
    def actionable(self):
        return bool(self.edits) and not self.status


def apply_edits(xml_text, edits):
    """Patch libvirt's XML in place with ``edits``; everything else stays semantically identical."""
    if not edits:
        return xml_text
    root = _domxml.parse(xml_text)
    for edit in edits:
        el = _domxml.find_device(root, edit.device)
        if el is None:
            raise _domxml.XMLError("Planned edit targets %s, which is not in the domain XML." % edit.device)
        if edit.child:
            el = _domxml.ensure_child(el, edit.child, first=edit.child_first, before=edit.child_before)
        _domxml.set_attrs(el, edit.attrs)
    return _domxml.to_string(root)


def domain_edits(changes):
    out = []
    for change in changes:
        if change.actionable:
            out.extend(change.edits)
    return tuple(out)


def finding(change, status):
    """The machine-readable finding for a change (the shape every module returns).

    Compact by design (a host can return thousands): the domain by name (its UUID is in the
    result's ``domains``), the device by the identity keys it has (no nulls).
    """
    item = {
        "domain": change.domain,
        "device": {k: v for k, v in change.device.items() if v is not None},
        "rule": change.rule,
        "current": dict(change.current),
        "desired": dict(change.desired),
        "status": change.status or status,
        "pending_restart": change.pending_restart,
        "message": change.message,
    }
    if change.check:
        item["check"] = change.check
    return item


def summarize(findings, domains_selected, domains_changed):
    by_status = Counter(f["status"] for f in findings)
    return {
        "domains_selected": domains_selected,
        "domains_changed": domains_changed,
        "findings": len(findings),
        "by_status": {s: by_status.get(s, 0) for s in STATUSES},
        "by_rule": dict(sorted(Counter(f["rule"] for f in findings).items())),
        "pending_restart": sum(1 for f in findings if f["pending_restart"]),
    }
