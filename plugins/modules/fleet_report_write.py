#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_report_write
short_description: Merge the fleet's audit results and write the JSON, JUnit and HTML reports (controller)
version_added: 0.2.0
description:
  - An action that runs on the controller only. It reads C(virtfleet_audit_status) and C(virtfleet_audit_result) of every host in
    O(hosts) from C(hostvars) (untemplated), merges them (the C(virtfleet.libvirt.fleet_report) filter's report, docs/report-schema.md) and
    writes C(<dir>/<name>.json), C(.xml) (JUnit) and C(.html) atomically, one host at a time (the merged report is never
    whole in memory).
  - Beyond O(html_inline_limit) rows the HTML is C(<name>.html), the fleet summary with a table of every host, and a page
    per host in C(<dir>/<name>-hosts/); that directory is replaced as a whole on every run, and removed by a run that fits
    on one page.
  - The merged report is never stored as a variable; the task returns its summary and the paths, so a report of
    thousands of domains costs no templating. Used by the C(virtfleet.libvirt.report) role.
  - Reports are written under C(--check) too and never count as a change.
author:
  - virtfleet contributors (@virtfleet)
options:
  hosts:
    description: Names of the hypervisors to report on; a host without a result is reported as unreachable.
    type: list
    elements: str
    required: true
  dir:
    description: Absolute directory on the controller; created when missing.
    type: path
    required: true
  name:
    description: File name stem of the reports.
    type: str
    default: compliance
  formats:
    description: Which reports to write.
    type: list
    elements: str
    choices: [json, junit, html]
    default: [json, junit, html]
  title:
    description: Title of the report.
    type: str
  html_template_dir:
    description:
      - Directory searched before the collection's C(roles/report/templates/) for the HTML templates, file by file
        (C(report.html.j2), C(host.html.j2), C(_layout.html.j2), C(_macros.html.j2), C(report.css), C(report.js)).
      - The CSS and JavaScript are inlined and allowed by the pages' Content-Security-Policy by their SHA-256.
    type: path
  html_inline_limit:
    description:
      - Rows (findings, compliant domains, notes of failed and unreachable hosts) up to which the HTML report is one page.
        Beyond it each host gets its own page. V(0) always writes a page per host.
    type: int
    default: 5000
  host_results:
    description:
      - Also keep each host's results as C(<dir>/hosts/<host>.json) (C(status) - C(virtfleet_audit_status) - and
        C(result) - C(virtfleet_audit_result)), directory mode 0750, files 0640, written before the reports;
        a host with neither is kept as unreachable. What C(playbooks/merge_reports.yml) merges after a sliced run.
    type: bool
    default: false
  stats:
    description:
      - Hand the report's summary to AWX/AAP as C(ansible.builtin.set_stats) would (aggregated, not per host),
        as C(virtfleet_report) with C(title), C(generated_at), C(passed), C(reasons), C(hosts), C(unreachable_hosts),
        C(failed_hosts), C(domains), C(findings), C(pending_restart) and C(files) (the paths).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Writes the reports (they are artifacts on the controller, not changes to the fleet).
  action:
    support: full
    description: Runs on the controller as an action plugin.
seealso:
  - name: Report schema
    description: docs/report-schema.md in the collection.
    link: https://github.com/virtfleet/libvirt/blob/main/docs/report-schema.md
"""

EXAMPLES = r"""
- name: Write the fleet report
  virtfleet.libvirt.fleet_report_write:
    hosts: "{{ groups['hypervisors'] }}"
    dir: /srv/reports
  register: report
"""

RETURN = r"""
summary:
  description: The report's summary (docs/report-schema.md), e.g. C(passed), C(reasons), C(hosts), C(findings).
  returned: always
  type: dict
paths:
  description:
    - Written file per format (C(json), C(junit), C(html)), and C(html_hosts), the directory of the host pages, when the
      HTML report has a page per host.
  returned: always
  type: dict
title:
  description: The report's title.
  returned: always
  type: str
generated_at:
  description: When the report was generated (UTC, ISO 8601).
  returned: always
  type: str
"""
