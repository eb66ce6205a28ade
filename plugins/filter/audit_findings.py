# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""audit_findings: the findings of a virt_policy result (virtfleet_audit_result), whichever format they came in."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.virtfleet.libvirt.plugins.plugin_utils._report_merge import ReportInputError, result_findings


def audit_findings(result, limit=None):
    """``findings`` of a ``findings_format: list`` result, ``findings_json`` decoded of a ``json`` one.

    ``limit``: the first that many (a text is decoded only that far).
    """
    try:
        return result_findings(result, limit)
    except ReportInputError as exc:
        raise AnsibleFilterError("audit_findings: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {"audit_findings": audit_findings}
