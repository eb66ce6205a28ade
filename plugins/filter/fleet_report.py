# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet compliance report filters of the virtfleet.libvirt ``audit``/``remediate`` roles (controller side).

``fleet_report`` merges every host's ``virtfleet_audit_status``/``virtfleet_audit_result`` into one
report (docs/report-schema.md). The work is in plugin_utils: the merge in ``_report_merge``, JUnit in
``_report_junit``, the HTML pages (from the template files of roles/report/templates/) in
``_report_html``. ``fleet_report_junit`` and ``fleet_report_html`` are thin wrappers over those
renderers for playbooks that render a report themselves; the ``report`` role does not use any
filter (its action ``fleet_report_write`` merges and writes the files, streaming, and writes a page
per host for a large fleet). Documentation: the ``.yml`` files beside this one.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.virtfleet.libvirt.plugins.plugin_utils import _report_html, _report_junit, _report_merge, _report_text

# The names of the 0.2 filter module, for playbooks' and tests' imports.
CHECKS = _report_text.CHECKS
STATUSES = _report_text.STATUSES
GATING = _report_text.GATING
DOMAIN_STATUSES = _report_text.DOMAIN_STATUSES
HOST_STATUSES = _report_text.HOST_STATUSES
change_text = _report_text.change_text
device_label = _report_text.device_label

SCHEMA_VERSION = _report_merge.SCHEMA_VERSION
FINDING_KEYS = _report_merge.FINDING_KEYS
redact_uri = _report_merge.redact_uri
junit_text = _report_junit.junit_text
html_text = _report_html.html_text


def build_report(hosts, hostvars, title=None, generated_at=None):
    """The merged report (docs/report-schema.md) of ``hosts``, read from ``hostvars``."""
    try:
        return _report_merge.build_report(hosts, hostvars, title=title, generated_at=generated_at)
    except _report_merge.ReportInputError as exc:
        raise AnsibleFilterError(str(exc)) from None


def _check_report(report, name):
    if not _report_merge.is_report(report):
        raise AnsibleFilterError("%s: the input must be the output of virtfleet.libvirt.fleet_report" % name)
    return _report_merge.plain(report)


def render_junit(report):
    """JUnit XML: a suite per host, a case per domain and check:rule, errors for hosts without result."""
    return junit_text(_check_report(report, "fleet_report_junit"))


def render_html(report):
    """The one-page HTML report (inline CSS and JS, nothing fetched), from the collection's templates."""
    return html_text(_check_report(report, "fleet_report_html"))


class FilterModule:
    """virtfleet.libvirt report filters."""

    def filters(self):
        return {
            "fleet_report": build_report,
            "fleet_report_junit": render_junit,
            "fleet_report_html": render_html,
        }
