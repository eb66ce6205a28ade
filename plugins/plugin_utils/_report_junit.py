# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report as JUnit XML (private, pure): a suite per host, a case per domain and check:rule.

Written as a stream, one host at a time: at 300,000 findings an ``xml.etree`` tree of every case
held ~1 GB and its text another 114 MB. The totals of ``<testsuites>`` come first in the file, so
they are counted in a first pass that groups the findings without building any text.
docs/report-schema.md ("JUnit file") describes the outcome rules.
"""

from __future__ import annotations

import io
import re

from ansible_collections.virtfleet.libvirt.plugins.plugin_utils._report_text import (
    GATING, STATUSES, WAITING, finding_line, fmt, plural,
)

# XML 1.0 forbids these characters even escaped; they are replaced by U+FFFD.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;",
                       "\t": "&#09;"})


def clean(value):
    """The text of ``value`` without the characters XML 1.0 cannot carry."""
    return _XML_INVALID.sub("\ufffd", fmt(value))


def _attr(value):
    return clean(value).translate(_ATTR)


def _text(value):
    return clean(value).translate(_TEXT)


def _cases(host):
    """(classname, name, outcome, findings) per test case of a host; outcome pass/failure/skipped/error."""
    name = host["name"]
    if host["status"] in ("unreachable", "failed"):
        yield name, "host:%s" % host["status"], "error", None
    for dom in host["domains"]:
        classname = "%s.%s" % (name, dom["name"])
        groups = {}
        for finding in dom["findings"]:
            key = (finding["check"], finding["rule"])
            items = groups.get(key)
            if items is None:
                groups[key] = [finding]
            else:
                items.append(finding)
        seen = {c for c, _r in groups}
        for check in dom["checks"]:
            if check not in seen:
                yield classname, "%s:compliant" % check, "pass", None
        for (check, rule), items in groups.items():
            statuses = {f["status"] for f in items}
            outcome = ("failure" if not statuses.isdisjoint(GATING) else
                       "skipped" if not statuses.isdisjoint(WAITING) else "pass")
            yield classname, "%s:%s" % (check, rule), outcome, items


def _host_counts(host):
    tally = dict(tests=0, failures=0, errors=0, skipped=0)
    key = {"failure": "failures", "error": "errors", "skipped": "skipped"}
    for _c, _n, outcome, _f in _cases(host):
        tally["tests"] += 1
        if outcome in key:
            tally[key[outcome]] += 1
    return tally


def _suite(report, host, tally):
    name = _attr(host["name"])
    out = ['  <testsuite name="%s" hostname="%s" timestamp="%s" time="0" tests="%d" failures="%d" errors="%d" '
           'skipped="%d">\n    <properties>\n' % (name, name, _attr(report.get("generated_at")), tally["tests"],
                                                   tally["failures"], tally["errors"], tally["skipped"])]
    for key in ("status", "uri", "mode", "check_mode"):
        value = host.get(key)
        value = str(value).lower() if isinstance(value, bool) else ("" if value is None else value)
        out.append('      <property name="%s" value="%s" />\n' % (key, _attr(value)))
    out.append("    </properties>\n")
    for classname, case_name, outcome, items in _cases(host):
        head = '    <testcase classname="%s" name="%s" time="0"' % (_attr(classname), _attr(case_name))
        if outcome == "error":
            error = host.get("error")
            out.append('%s>\n      <error type="%s" message="%s">%s</error>\n    </testcase>\n' % (
                head, _attr(host["status"]), _attr("%s: %s" % (host["status"], error)), _text(error)))
            continue
        if items is None:
            out.append(head + " />\n")
            continue
        statuses = [f["status"] for f in items]
        if outcome == "skipped":
            message = "%s: %s" % (", ".join(sorted(set(statuses))), "; ".join(f.get("message") or "" for f in items))
            out.append('%s>\n      <skipped message="%s" />\n    </testcase>\n' % (head, _attr(message)))
            continue
        text = "\n".join(finding_line(host["name"], classname[len(host["name"]) + 1:], f) for f in items)
        if outcome == "failure":
            gating = next(s for s in STATUSES if s in statuses and s in GATING)
            message = "%s: %s" % (plural(len(items), "finding"), ", ".join(sorted(set(statuses))))
            out.append('%s>\n      <failure type="%s" message="%s">%s</failure>\n    </testcase>\n' % (
                head, _attr(gating), _attr(message), _text(text)))
        else:
            out.append("%s>\n      <system-out>%s</system-out>\n    </testcase>\n" % (head, _text(text)))
    out.append("  </testsuite>\n")
    return "".join(out)


def write_junit(report, handle):
    """Write the JUnit XML of ``report`` (what _report_merge.build_report returned) to ``handle``."""
    tallies = [_host_counts(h) for h in report["hosts"]]
    totals = {k: sum(t[k] for t in tallies) for k in ("tests", "failures", "errors", "skipped")}
    handle.write('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="%s" tests="%d" failures="%d" '
                 'errors="%d" skipped="%d" time="0">\n' % (_attr(report.get("title")), totals["tests"],
                                                          totals["failures"], totals["errors"], totals["skipped"]))
    for host, tally in zip(report["hosts"], tallies):
        handle.write(_suite(report, host, tally))
    handle.write("</testsuites>\n")


def junit_text(report):
    """:func:`write_junit` as one string."""
    out = io.StringIO()
    write_junit(report, out)
    return out.getvalue()
