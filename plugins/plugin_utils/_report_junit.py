# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report as JUnit XML (private, pure): a suite per host, a case per domain and check:rule.

Text made one host (one ``<testsuite>``) at a time: at 300,000 findings an ``xml.etree`` tree of
every case held ~1 GB and its text another 114 MB. The totals of ``<testsuites>`` come first in
the file, so the streaming writer (_report_files.py) writes the suites to a scratch file and puts
the header before them at the end; :func:`write_junit` of a report in memory keeps the suites'
texts until the totals are known.
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
_TEXT = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))
_ATTR = _TEXT + (('"', "&quot;"), ("\n", "&#10;"), ("\r", "&#13;"), ("\t", "&#09;"))


def clean(value):
    """The text of ``value`` without the characters XML 1.0 cannot carry."""
    return _XML_INVALID.sub("\ufffd", fmt(value))


def _escape(text, table):
    # str.replace per character is C; str.translate with a dict is a Python call per character.
    for char, entity in table:
        if char in text:
            text = text.replace(char, entity)
    return text


def _attr(value):
    return _escape(clean(value), _ATTR)


def _text(value):
    return _escape(clean(value), _TEXT)


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


def suite(host, generated_at):
    """(the ``<testsuite>`` of ``host`` as text, its counts: tests, failures, errors, skipped)."""
    tally = dict(tests=0, failures=0, errors=0, skipped=0)
    name = _attr(host["name"])
    out = [None, "    <properties>\n"]
    for key in ("status", "uri", "mode", "check_mode"):
        value = host.get(key)
        value = str(value).lower() if isinstance(value, bool) else ("" if value is None else value)
        out.append('      <property name="%s" value="%s" />\n' % (key, _attr(value)))
    out.append("    </properties>\n")
    prefix = len(host["name"]) + 1
    for classname, case_name, outcome, items in _cases(host):
        tally["tests"] += 1
        head = '    <testcase classname="%s" name="%s" time="0"' % (_attr(classname), _attr(case_name))
        if outcome == "error":
            tally["errors"] += 1
            error = host.get("error")
            out.append('%s>\n      <error type="%s" message="%s">%s</error>\n    </testcase>\n' % (
                head, _attr(host["status"]), _attr("%s: %s" % (host["status"], error)), _text(error)))
            continue
        if items is None:
            out.append(head + " />\n")
            continue
        statuses = [f["status"] for f in items]
        if outcome == "skipped":
            tally["skipped"] += 1
            message = "%s: %s" % (", ".join(sorted(set(statuses))), "; ".join(f.get("message") or "" for f in items))
            out.append('%s>\n      <skipped message="%s" />\n    </testcase>\n' % (head, _attr(message)))
            continue
        text = "\n".join(finding_line(host["name"], classname[prefix:], f) for f in items)
        if outcome == "failure":
            tally["failures"] += 1
            gating = next(s for s in STATUSES if s in statuses and s in GATING)
            message = "%s: %s" % (plural(len(items), "finding"), ", ".join(sorted(set(statuses))))
            out.append('%s>\n      <failure type="%s" message="%s">%s</failure>\n    </testcase>\n' % (
                head, _attr(gating), _attr(message), _text(text)))
        else:
            out.append("%s>\n      <system-out>%s</system-out>\n    </testcase>\n" % (head, _text(text)))
    out.append("  </testsuite>\n")
    out[0] = '  <testsuite name="%s" hostname="%s" timestamp="%s" time="0" tests="%d" failures="%d" errors="%d" ' \
        'skipped="%d">\n' % (name, name, _attr(generated_at), tally["tests"], tally["failures"], tally["errors"],
                             tally["skipped"])
    return "".join(out), tally


def header(title, totals):
    """The XML declaration and the ``<testsuites>`` start tag with the totals of every suite."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="%s" tests="%d" failures="%d" errors="%d" '
            'skipped="%d" time="0">\n' % (_attr(title), totals["tests"], totals["failures"], totals["errors"],
                                          totals["skipped"]))


FOOTER = "</testsuites>\n"


def add(totals, tally):
    for key, value in tally.items():
        totals[key] = totals.get(key, 0) + value
    return totals


def write_junit(report, handle):
    """Write the JUnit XML of ``report`` (what _report_merge.build_report returned) to ``handle``."""
    suites, totals = [], {}
    for host in report["hosts"]:
        text, tally = suite(host, report.get("generated_at"))
        suites.append(text)
        add(totals, tally)
    handle.write(header(report.get("title"), dict(dict.fromkeys(("tests", "failures", "errors", "skipped"), 0),
                                                  **totals)))
    for text in suites:
        handle.write(text)
    handle.write(FOOTER)


def junit_text(report):
    """:func:`write_junit` as one string."""
    out = io.StringIO()
    write_junit(report, out)
    return out.getvalue()
