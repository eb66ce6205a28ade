# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet compliance report of the virtfleet.libvirt ``audit``/``remediate`` roles (controller side).

``fleet_report`` merges every host's ``virtfleet_audit_result`` fact into one report (the data of
docs/report-schema.md); ``fleet_report_junit`` and ``fleet_report_html`` render that report.
Pure Python: the role ``virtfleet.libvirt.report`` writes the files, the unit tests call these
functions directly. Documentation: the ``.yml`` files beside this one.
"""

from __future__ import annotations

import base64
import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime, timezone

from jinja2 import Environment

from ansible.errors import AnsibleFilterError

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _redact, _vocab

SCHEMA_VERSION = "1.1"
# The vocabulary is the engine's (module_utils/_vocab.py), never re-declared here.
CHECKS = _vocab.CHECKS
# Finding statuses, worst first; ``compliant`` is a domain without findings.
STATUSES = _vocab.WORST_FIRST
GATING = _vocab.GATING  # statuses that fail a gate (report_fail_on_drift)
DOMAIN_STATUSES = STATUSES + (_vocab.COMPLIANT,)
HOST_STATUSES = ("ok", "failed", "unreachable")
FINDING_KEYS = ("check", "rule", "status", "pending_restart", "device", "current", "desired", "message")
UNREACHABLE_ERROR = ("no virtfleet_audit_status: the host was unreachable, or the audit/remediate role did not "
                     "run on it or stopped before publishing its result (see the play output for this host)")
# XML 1.0 forbids these characters even escaped; they are replaced in the JUnit file.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


# --- merge --------------------------------------------------------------------------------------

def _plain(value):
    """Plain JSON-able Python (dict/list/str/int/float/bool/None) from whatever Ansible passes."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return str(value)


def redact_uri(uri):
    """The URI without a password in its user part (the engine's own redaction, _redact.redact_uri)."""
    return _redact.redact_uri(uri)


def _host_vars(hostvars, host):
    """The host's variables, without templating them when Ansible allows it (HostVars.raw_get).

    The report reads only what modules and set_fact stored (never a template), and templating a
    module result of thousands of findings on access would cost seconds.
    """
    raw_get = getattr(hostvars, "raw_get", None)
    if raw_get is not None:
        data = raw_get(host)
        return data if isinstance(data, Mapping) else None
    return hostvars[host] if host in hostvars else None


def _audit_result(hostvars, host):
    """The host's audit: ``virtfleet_audit_status`` over ``virtfleet_audit_result``; None without either.

    The checks role registers the module's result as ``virtfleet_audit_result`` (findings, domains,
    summary) and publishes how the run went as ``virtfleet_audit_status`` (host, uri, mode,
    check_mode, status, error, checks). A single ``virtfleet_audit_result`` holding every key (the
    shape before 0.2.0, or one written by hand) is read as it is.
    """
    try:
        if host not in hostvars:
            return None
        host_vars = _host_vars(hostvars, host)
        if host_vars is None:
            return None
        result = host_vars.get("virtfleet_audit_result")
        status = host_vars.get("virtfleet_audit_status")
    except KeyError:
        return None
    if status is None:
        return None if result is None else _plain(result)
    merged = _plain(result) if isinstance(result, Mapping) else {}
    merged.update(_plain(status) if isinstance(status, Mapping) else
                  {"status": "failed", "error": "virtfleet_audit_status is not a mapping: %r" % (status,)})
    return merged


def _counts(keys, values):
    out = {k: 0 for k in keys}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out


def _domain_status(findings):
    present = {f["status"] for f in findings}
    for status in STATUSES:
        if status in present:
            return status
    return "fixed" if findings else "compliant"


def _host_entry(host, result):
    if result is None:
        return {"name": host, "status": "unreachable", "error": UNREACHABLE_ERROR, "uri": None, "mode": None,
                "check_mode": None, "checks": {},
                "summary": {"domains": 0, "domains_with_findings": 0, "findings": 0,
                            "by_status": _counts(STATUSES, []), "pending_restart": 0},
                "domains": []}
    if not isinstance(result, dict):
        result = {"status": "failed", "error": "virtfleet_audit_result is not a mapping: %r" % (result,)}
    checks_in = result.get("checks") if isinstance(result.get("checks"), dict) else {}
    checks, domain_names, errors = {}, [], []
    for name, check in checks_in.items():
        check = check if isinstance(check, dict) else {}
        names = [str(d) for d in check.get("domains") or [] if d is not None]
        domain_names.extend((n, name) for n in names)
        checks[name] = {"changed": bool(check.get("changed")), "failed": bool(check.get("failed")),
                        "msg": check.get("msg"),
                        "domains": len(names) if "domains" in check else len(result.get("domains") or []),
                        "summary": check.get("summary") if isinstance(check.get("summary"), dict) else {}}
        if check.get("failed"):
            errors.append("%s: %s" % (name, check.get("msg") or "failed"))

    status = result.get("status")
    if status not in HOST_STATUSES or (errors and status == "ok"):
        status = "failed"
    error = result.get("error")
    if status == "unreachable" and not error:
        error = "the host became unreachable during the run"
    if status == "failed" and not error:
        error = "; ".join(errors) or "the audit result has no valid status (%r)" % (result.get("status"),)

    domains = {}  # name -> entry, in first-seen order; sorted by name at the end

    def domain(name, uuid=None):
        entry = domains.setdefault(name, {"name": name, "uuid": None, "status": "compliant",
                                          "pending_restart": False, "checks": [], "findings": []})
        if uuid and not entry["uuid"]:
            entry["uuid"] = uuid
        return entry

    # virt_policy (one call for every check) returns each selected domain once, with its UUID.
    for raw in result.get("domains") or []:
        if isinstance(raw, dict) and raw.get("name"):
            entry = domain(str(raw["name"]), raw.get("uuid"))
            for name in checks:
                if name not in entry["checks"]:
                    entry["checks"].append(name)
    for name, check in domain_names:
        entry = domain(name)
        if check not in entry["checks"]:
            entry["checks"].append(check)
    for raw in result.get("findings") or []:
        if not isinstance(raw, dict):
            continue
        finding = {key: raw.get(key) for key in FINDING_KEYS}
        finding["status"] = str(finding["status"] or "failed")
        finding["pending_restart"] = bool(finding["pending_restart"])
        finding["check"] = str(finding["check"] or "unknown")
        finding["rule"] = str(finding["rule"] or "unknown")
        for key in ("device", "current", "desired"):
            if not isinstance(finding[key], dict):
                finding[key] = {}
        entry = domain(str(raw.get("domain") or raw.get("uuid") or "(unknown domain)"), raw.get("uuid"))
        entry["findings"].append(finding)
        if finding["check"] not in entry["checks"]:
            entry["checks"].append(finding["check"])
    for entry in domains.values():
        entry["status"] = _domain_status(entry["findings"])
        entry["pending_restart"] = any(f["pending_restart"] for f in entry["findings"])
        entry["checks"].sort(key=lambda c: (CHECKS.index(c) if c in CHECKS else len(CHECKS), c))
    ordered = [domains[name] for name in sorted(domains)]
    findings = [f for d in ordered for f in d["findings"]]
    return {
        "name": host,
        "status": status,
        "error": error if status != "ok" else None,
        "uri": redact_uri(result.get("uri")),
        "mode": result.get("mode"),
        "check_mode": result.get("check_mode"),
        "checks": checks,
        "summary": {
            "domains": len(ordered),
            "domains_with_findings": sum(1 for d in ordered if d["findings"]),
            "findings": len(findings),
            "by_status": _counts(STATUSES, [f["status"] for f in findings]),
            "pending_restart": sum(1 for f in findings if f["pending_restart"]),
        },
        "domains": ordered,
    }


def _plural(count, word):
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def build_report(hosts, hostvars, title=None, generated_at=None):
    """The merged report (docs/report-schema.md) of ``hosts``, read from ``hostvars``."""
    if isinstance(hosts, (str, bytes)) or not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError("fleet_report: the input must be a list of host names, got %s" % type(hosts).__name__)
    if not isinstance(hostvars, Mapping):
        raise AnsibleFilterError("fleet_report: hostvars must be a mapping (pass hostvars), got %s"
                                 % type(hostvars).__name__)
    names = list(dict.fromkeys(str(h) for h in hosts))
    host_entries = [_host_entry(name, _audit_result(hostvars, name)) for name in names]
    domains = [d for h in host_entries for d in h["domains"]]
    findings = [f for d in domains for f in d["findings"]]
    by_host_status = _counts(HOST_STATUSES, [h["status"] for h in host_entries])
    by_status = _counts(STATUSES, [f["status"] for f in findings])
    rules = _counts((), [f["rule"] for f in findings])
    unreachable = [h["name"] for h in host_entries if h["status"] == "unreachable"]
    failed_hosts = [h["name"] for h in host_entries if h["status"] == "failed"]

    reasons = ["%s with status %s" % (_plural(by_status[s], "finding"), s) for s in GATING if by_status[s]]
    if unreachable:
        reasons.append("%s unreachable: %s" % (_plural(len(unreachable), "host"), ", ".join(unreachable)))
    if failed_hosts:
        reasons.append("%s failed: %s" % (_plural(len(failed_hosts), "host"), ", ".join(failed_hosts)))
    if generated_at is None:
        generated_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    modes = sorted({str(h["mode"]) for h in host_entries if h["mode"]})
    check_modes = {h["check_mode"] for h in host_entries if h["check_mode"] is not None}
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": str(generated_at),
        "title": str(title) if title else "Fleet compliance report",
        "summary": {
            "passed": not reasons,
            "reasons": reasons,
            "modes": modes,
            "check_mode": check_modes.pop() if len(check_modes) == 1 else None,
            "hosts": dict(total=len(host_entries), **by_host_status),
            "unreachable_hosts": unreachable,
            "failed_hosts": failed_hosts,
            "domains": {"total": len(domains), "with_findings": sum(1 for d in domains if d["findings"]),
                        "compliant": sum(1 for d in domains if not d["findings"]),
                        "pending_restart": sum(1 for d in domains if d["pending_restart"])},
            "findings": {
                "total": len(findings),
                "by_status": by_status,
                "by_rule": {rule: rules[rule] for rule in sorted(rules)},
                "by_check": _counts(CHECKS, [f["check"] for f in findings]),
            },
            "pending_restart": sum(1 for f in findings if f["pending_restart"]),
        },
        "hosts": host_entries,
    }


def _check_report(report, name):
    if not isinstance(report, Mapping) or "hosts" not in report or "summary" not in report:
        raise AnsibleFilterError("%s: the input must be the output of virtfleet.libvirt.fleet_report" % name)
    return _plain(report)


# --- presentation helpers (shared by JUnit and HTML) --------------------------------------------

def _fmt(value):
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


device_label = _vocab.device_label


def change_text(current, desired):
    """('cache=writeback io=native', 'io=threads'): the settings that differ, now and wanted."""
    keys = [k for k in desired if k in current and current.get(k) != desired.get(k)]
    # Derived flags (cache.writeback, direct, ...) only when no setting itself differs.
    keys = [k for k in keys if not isinstance(desired.get(k), bool)] or keys
    extra = [k for k in desired if k not in current]
    if not keys:
        keys = [k for k in current if not isinstance(current[k], bool)][:3]
        now = " ".join("%s=%s" % (k, _fmt(current[k])) for k in keys)
        return now, ""
    now = " ".join("%s=%s" % (k, _fmt(current.get(k))) for k in keys)
    want = " ".join(["%s=%s" % (k, _fmt(desired.get(k))) for k in keys] +
                    ["(%s: %s)" % (k, _fmt(desired.get(k))) for k in extra])
    return now, want


def _finding_line(host, domain, finding):
    now, want = change_text(finding["current"], finding["desired"])
    change = "%s -> %s" % (now, want) if want else now
    return "[%s] %s %s %s: %s%s (%s) %s" % (
        finding["status"], host, domain, device_label(finding["device"]), finding["check"] + ":" + finding["rule"],
        " [pending restart]" if finding["pending_restart"] else "", change, finding.get("message") or "")


# --- JUnit --------------------------------------------------------------------------------------

def _x(text):
    return _XML_INVALID.sub("\ufffd", _fmt(text))


def _case_maker(suite, counts):
    def case(classname, name):
        counts["tests"] += 1
        return ET.SubElement(suite, "testcase", classname=_x(classname), name=_x(name), time="0")
    return case


def render_junit(report):
    """JUnit XML: a suite per host, a case per domain and check:rule, errors for hosts without result."""
    return junit_text(_check_report(report, "fleet_report_junit"))


def junit_text(report):
    """:func:`render_junit` of a report that :func:`build_report` returned (plain data, not checked again)."""
    root = ET.Element("testsuites", name=_x(report.get("title")))
    totals = dict(tests=0, failures=0, errors=0, skipped=0)
    for host in report["hosts"]:
        suite = ET.SubElement(root, "testsuite", name=_x(host["name"]), hostname=_x(host["name"]),
                              timestamp=_x(report.get("generated_at")), time="0")
        props = ET.SubElement(suite, "properties")
        for key in ("status", "uri", "mode", "check_mode"):
            value = host.get(key)
            ET.SubElement(props, "property", name=key,
                          value=_x(str(value).lower() if isinstance(value, bool) else ("" if value is None else value)))
        counts = dict(tests=0, failures=0, errors=0, skipped=0)
        case = _case_maker(suite, counts)

        if host["status"] in ("unreachable", "failed"):
            element = ET.SubElement(case(host["name"], "host:%s" % host["status"]), "error", type=host["status"],
                                    message=_x("%s: %s" % (host["status"], host.get("error"))))
            element.text = _x(host.get("error"))
            counts["errors"] += 1
        for dom in host["domains"]:
            classname = "%s.%s" % (host["name"], dom["name"])
            groups = {}
            for finding in dom["findings"]:
                groups.setdefault((finding["check"], finding["rule"]), []).append(finding)
            for check in dom["checks"]:
                if not any(c == check for c, _r in groups):
                    case(classname, "%s:compliant" % check)
            for (check, rule), items in groups.items():
                testcase = case(classname, "%s:%s" % (check, rule))
                statuses = [f["status"] for f in items]
                text = "\n".join(_x(_finding_line(host["name"], dom["name"], f)) for f in items)
                gating = [s for s in STATUSES if s in statuses and s in GATING]
                waiting = [s for s in STATUSES if s in statuses and s in ("pending", "skipped", "vanished")]
                if gating:
                    element = ET.SubElement(testcase, "failure", type=gating[0], message=_x(
                        "%s: %s" % (_plural(len(items), "finding"), ", ".join(sorted(set(statuses))))))
                    element.text = text
                    counts["failures"] += 1
                elif waiting:
                    ET.SubElement(testcase, "skipped", message=_x(
                        "%s: %s" % (", ".join(sorted(set(statuses))), "; ".join(f.get("message") or "" for f in items))))
                    counts["skipped"] += 1
                else:
                    ET.SubElement(testcase, "system-out").text = text
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --- HTML ---------------------------------------------------------------------------------------

_CSS = """
:root{--bg:#f6f7f9;--card:#fff;--ink:#1d2330;--sub:#5b6475;--line:#dde1e8;--accent:#2456c8;
--failed:#b42318;--failed-bg:#fde8e6;--drift:#9a5b00;--drift-bg:#fff1d6;--pending:#1d5fb3;--pending-bg:#e3eefc;
--skipped:#5b6475;--skipped-bg:#eceff3;--fixed:#1e7a3c;--fixed-bg:#e2f4e8;--unreachable:#7a1fa2;--unreachable-bg:#f3e5f8}
@media (prefers-color-scheme:dark){:root{--bg:#12151b;--card:#1b2029;--ink:#e6e9ef;--sub:#9aa3b2;--line:#2c3340;
--accent:#7aa2ff;--failed:#ff8a80;--failed-bg:#3a1d1b;--drift:#ffc46b;--drift-bg:#3a2d14;--pending:#8ab8ff;
--pending-bg:#18283f;--skipped:#b0b8c6;--skipped-bg:#262c36;--fixed:#7ddc9a;--fixed-bg:#173020;
--unreachable:#d7a1f0;--unreachable-bg:#30193a}}
*{box-sizing:border-box}[hidden]{display:none!important}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;background:var(--bg);color:var(--ink)}
main{max-width:1280px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:22px;margin:0 0 2px}h2{font-size:17px;margin:0}
.sub,.meta{color:var(--sub)}.meta{font-size:13px}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
.verdict{margin:14px 0;padding:10px 14px;border-radius:8px;font-weight:600;border:1px solid}
.verdict.pass{background:var(--fixed-bg);color:var(--fixed);border-color:var(--fixed)}
.verdict.fail{background:var(--failed-bg);color:var(--failed);border-color:var(--failed)}
.verdict ul{margin:4px 0 0;padding-left:20px;font-weight:400}
.cards{display:grid;grid-template-columns:repeat(6,minmax(0,1fr));gap:10px;margin:12px 0}
@media (max-width:900px){.cards{grid-template-columns:repeat(3,minmax(0,1fr))}}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px;border-top:4px solid var(--line)}
.card .n{font-size:26px;font-weight:700;line-height:1.1}.card .l{color:var(--sub);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .d{font-size:12px;color:var(--sub);margin-top:2px}
.card.failed{border-top-color:var(--failed)}.card.failed .n{color:var(--failed)}
.card.drift{border-top-color:var(--drift)}.card.drift .n{color:var(--drift)}
.card.pending{border-top-color:var(--pending)}.card.pending .n{color:var(--pending)}
.card.skipped{border-top-color:var(--skipped)}.card.fixed{border-top-color:var(--fixed)}.card.fixed .n{color:var(--fixed)}
.card.unreachable{border-top-color:var(--unreachable)}.card.unreachable .n{color:var(--unreachable)}
.panel{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px;margin:12px 0}
.chips{display:flex;flex-wrap:wrap;gap:6px;margin-top:6px}
.chip{border:1px solid var(--line);background:var(--bg);color:var(--ink);border-radius:999px;padding:2px 10px;font:inherit;font-size:12.5px;cursor:pointer}
.chip:hover{border-color:var(--accent)}.chip b{margin-left:4px}
table{border-collapse:collapse;width:100%}table.findings{table-layout:fixed}
table.findings td{overflow-wrap:anywhere}
.w-check{width:7%}.w-rule{width:15%}.w-dev{width:20%}.w-chg{width:22%}.w-st{width:10%}.w-msg{width:26%}a{color:var(--accent)}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--sub);font-weight:600;text-transform:uppercase;letter-spacing:.03em}
.badge{display:inline-block;border-radius:4px;padding:1px 7px;font-size:12px;font-weight:600;white-space:nowrap}
.st-failed{background:var(--failed-bg);color:var(--failed)}.st-drift{background:var(--drift-bg);color:var(--drift)}
.st-pending{background:var(--pending-bg);color:var(--pending)}.st-skipped{background:var(--skipped-bg);color:var(--skipped)}
.st-fixed,.st-compliant,.st-ok{background:var(--fixed-bg);color:var(--fixed)}
.st-unreachable{background:var(--unreachable-bg);color:var(--unreachable)}.st-audit-failed{background:var(--failed-bg);color:var(--failed)}
.restart{font-size:11.5px;color:var(--pending);white-space:nowrap}
.filters{position:sticky;top:0;z-index:2;display:flex;flex-wrap:wrap;gap:8px;align-items:center;background:var(--bg);
padding:10px 0;border-bottom:1px solid var(--line)}
.filters label{font-size:12px;color:var(--sub);display:flex;flex-direction:column;gap:2px}
.filters select,.filters input{font:inherit;padding:5px 8px;border:1px solid var(--line);border-radius:6px;
background:var(--card);color:var(--ink);min-width:140px}
.filters input{min-width:260px}
.filters button{font:inherit;padding:5px 12px;border-radius:6px;border:1px solid var(--line);background:var(--card);
color:var(--ink);cursor:pointer;align-self:flex-end}
#f-count{margin-left:auto;align-self:flex-end;color:var(--sub);font-size:13px}
.host{background:var(--card);border:1px solid var(--line);border-radius:8px;margin:14px 0;padding:12px 14px}
.host>header{display:flex;flex-wrap:wrap;gap:8px;align-items:baseline}
.host.unreachable{border-left:6px solid var(--unreachable)}.host.failed{border-left:6px solid var(--failed)}
.note{margin:10px 0 4px;padding:8px 12px;border-radius:6px}
.note.unreachable{background:var(--unreachable-bg);color:var(--unreachable)}.note.audit-failed{background:var(--failed-bg);color:var(--failed)}
details.domain{border-top:1px solid var(--line);margin-top:8px;padding-top:6px}
details.domain>summary{cursor:pointer;display:flex;gap:8px;align-items:baseline;flex-wrap:wrap;padding:2px 0}
details.domain>summary .name{font-weight:600}
.compliant-domain{border-top:1px solid var(--line);margin-top:8px;padding:6px 0 2px;display:flex;gap:8px;align-items:baseline;flex-wrap:wrap}
.dev small,.msg small{display:block;color:var(--sub)}
td.chg .arrow{color:var(--sub);margin:0 4px}
#f-none{padding:24px;text-align:center;color:var(--sub)}
footer{margin-top:28px;color:var(--sub);font-size:12px}
@media print{.filters{display:none}.host{break-inside:avoid}}
"""

_JS = """
(function () {
  'use strict';
  var byId = function (id) { return document.getElementById(id); };
  var controls = { host: byId('f-host'), status: byId('f-status'), rule: byId('f-rule'), text: byId('f-text') };
  var items = Array.prototype.slice.call(document.querySelectorAll('.item'));
  var boxes = Array.prototype.slice.call(document.querySelectorAll('details.domain, section.host'));
  function apply() {
    var host = controls.host.value, status = controls.status.value, rule = controls.rule.value;
    var words = controls.text.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var shown = 0;
    items.forEach(function (el) {
      var d = el.dataset;
      var ok = (!host || d.host === host) && (!status || d.status === status) && (!rule || d.rule === rule) &&
        words.every(function (w) { return d.text.indexOf(w) !== -1; });
      el.hidden = !ok;
      if (ok) { shown += 1; }
    });
    boxes.forEach(function (box) { box.hidden = !box.querySelector('.item:not([hidden])'); });
    byId('f-count').textContent = 'showing ' + shown + ' of ' + items.length + ' rows';
    byId('f-none').hidden = shown !== 0;
  }
  Object.keys(controls).forEach(function (k) {
    controls[k].addEventListener('input', apply);
    controls[k].addEventListener('change', apply);
  });
  byId('f-clear').addEventListener('click', function () {
    Object.keys(controls).forEach(function (k) { controls[k].value = ''; });
    apply();
  });
  document.addEventListener('click', function (ev) {
    var chip = ev.target.closest('[data-set]');
    if (!chip) { return; }
    controls[chip.dataset.set].value = chip.dataset.value;
    apply();
    byId('filters').scrollIntoView({ block: 'start' });
  });
  document.addEventListener('keydown', function (ev) {
    if (ev.key === '/' && document.activeElement !== controls.text) { ev.preventDefault(); controls.text.focus(); }
    if (ev.key === 'Escape' && document.activeElement === controls.text) { controls.text.value = ''; apply(); }
  });
  apply();
}());
"""


def _csp_hash(text):
    return "'sha256-%s'" % base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


# Only the page's own inline style and script may run; nothing is fetched.
CSP = "default-src 'none'; style-src %s; script-src %s; img-src data:; base-uri 'none'; form-action 'none'" % (
    _csp_hash(_CSS), _csp_hash(_JS))

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="virtfleet.libvirt.report (schema {{ r.schema_version }})">
<link rel="icon" href="data:,">
<title>{{ r.title }}</title>
<style>{{ css | safe }}</style>
</head>
<body>
<main>
{%- set s = r.summary %}
<header>
<h1>{{ r.title }}</h1>
<div class="meta">generated {{ r.generated_at }} · {{ s.hosts.total }} host{{ '' if s.hosts.total == 1 else 's' }}
{%- if s.modes %} · mode {{ s.modes | join(', ') }}{% endif %}
{%- if s.check_mode %} (check mode: nothing was changed){% endif %}</div>
</header>

<div class="verdict {{ 'pass' if s.passed else 'fail' }}" id="verdict">
{%- if s.passed %}PASS: no drift, no failures, every host reported
{%- else %}FAIL<ul>{% for reason in s.reasons %}<li>{{ reason }}</li>{% endfor %}</ul>{% endif %}
</div>

<section class="cards" id="summary" aria-label="Summary">
<div class="card"><div class="l">Hosts</div><div class="n">{{ s.hosts.total }}</div>
<div class="d">{{ s.hosts.ok }} ok · {{ s.hosts.failed }} failed · {{ s.hosts.unreachable }} unreachable</div></div>
<div class="card{{ ' unreachable' if s.hosts.unreachable }}"><div class="l">Unreachable</div><div class="n">{{ s.hosts.unreachable }}</div>
<div class="d">{{ s.unreachable_hosts | join(', ') if s.unreachable_hosts else 'every host reported' }}</div></div>
<div class="card{{ ' failed' if s.hosts.failed }}"><div class="l">Audit failed</div><div class="n">{{ s.hosts.failed }}</div>
<div class="d">{{ s.failed_hosts | join(', ') if s.failed_hosts else 'no host failed' }}</div></div>
<div class="card"><div class="l">Domains</div><div class="n">{{ s.domains.total }}</div>
<div class="d">{{ s.domains.compliant }} compliant · {{ s.domains.with_findings }} with findings</div></div>
<div class="card"><div class="l">Findings</div><div class="n">{{ s.findings.total }}</div>
<div class="d">{% for c, n in s.findings.by_check.items() %}{{ c }} {{ n }}{{ ' · ' if not loop.last }}{% endfor %}</div></div>
<div class="card pending"><div class="l">Restart pending</div><div class="n">{{ s.pending_restart }}</div>
<div class="d">findings on {{ s.domains.pending_restart }} running domain{{ '' if s.domains.pending_restart == 1 else 's' }}</div></div>
{%- for st in statuses %}
<div class="card {{ st }}"><div class="l">{{ st }}</div><div class="n">{{ s.findings.by_status[st] }}</div>
<div class="d">{{ status_help[st] }}</div></div>
{%- endfor %}
<div class="card"><div class="l">Rules</div><div class="n">{{ s.findings.by_rule | length }}</div>
<div class="d">distinct rules with findings</div></div>
</section>

<section class="panel" aria-label="Hosts">
<table id="hosts-table">
<thead><tr><th>Host</th><th>Status</th><th>URI</th><th>Mode</th><th>Domains</th><th>Findings</th><th>Restart pending</th></tr></thead>
<tbody>
{%- for h in r.hosts %}
<tr><td><a href="#host-{{ loop.index }}">{{ h.name }}</a></td>
<td><span class="badge st-{{ host_class(h) }}">{{ host_label(h) }}</span></td>
<td class="mono">{{ h.uri or '–' }}</td>
<td>{{ h.mode or '–' }}{% if h.check_mode %} (check){% endif %}</td>
<td>{{ h.summary.domains }}</td>
<td>{% if h.summary.findings %}{% for st in statuses if h.summary.by_status[st] -%}
<span class="badge st-{{ st }}">{{ h.summary.by_status[st] }} {{ st }}</span> {% endfor %}
{%- elif h.status == 'ok' %}none{% else %}–{% endif %}</td>
<td>{{ h.summary.pending_restart or '' }}</td></tr>
{%- endfor %}
</tbody>
</table>
{%- if s.findings.by_rule %}
<div class="chips" aria-label="Findings by rule"><span class="sub">By rule:</span>
{%- for rule, n in s.findings.by_rule.items() %}
<button type="button" class="chip" data-set="rule" data-value="{{ rule }}">{{ rule }}<b>{{ n }}</b></button>
{%- endfor %}
</div>
{%- endif %}
</section>

<div class="filters" id="filters" role="search">
<label>Host<select id="f-host"><option value="">all hosts</option>
{%- for h in r.hosts %}<option value="{{ h.name }}">{{ h.name }}</option>{% endfor %}</select></label>
<label>Status<select id="f-status"><option value="">all statuses</option>
{%- for st in statuses + ('compliant', 'unreachable', 'audit-failed') %}<option value="{{ st }}">{{ st }}</option>{% endfor %}</select></label>
<label>Rule<select id="f-rule"><option value="">all rules</option>
{%- for rule in s.findings.by_rule %}<option value="{{ rule }}">{{ rule }}</option>{% endfor %}</select></label>
<label>Search<input id="f-text" type="search" placeholder="domain, device, message… (press /)" autocomplete="off"></label>
<button type="button" id="f-clear">Clear</button>
<span id="f-count" aria-live="polite"></span>
</div>
<div id="f-none" hidden>No row matches the filters.</div>

{%- for h in r.hosts %}
<section class="host {{ h.status }}" id="host-{{ loop.index }}" data-host="{{ h.name }}">
<header><h2>{{ h.name }}</h2><span class="badge st-{{ host_class(h) }}">{{ host_label(h) }}</span>
<span class="meta">{% if h.uri %}<span class="mono">{{ h.uri }}</span> · {% endif %}
{%- if h.mode %}mode {{ h.mode }}{{ ' (check mode)' if h.check_mode }} · {% endif %}
{{- plural(h.summary.domains, 'domain') }} · {{ plural(h.summary.findings, 'finding') }}</span>
</header>
{%- if h.status == 'unreachable' %}
<div class="item note unreachable" data-host="{{ h.name }}" data-status="unreachable" data-rule=""
 data-text="{{ search_text(h.name, 'unreachable', h.error) }}">
<b>UNREACHABLE</b>: {{ h.error }}</div>
{%- elif h.status == 'failed' %}
<div class="item note audit-failed" data-host="{{ h.name }}" data-status="audit-failed" data-rule=""
 data-text="{{ search_text(h.name, 'audit failed', h.error) }}">
<b>AUDIT FAILED</b>: {{ h.error }}</div>
{%- endif %}
{%- for d in h.domains %}
{%- if d.findings %}
<details class="domain" open>
<summary><span class="name">{{ d.name }}</span><span class="badge st-{{ d.status }}">{{ d.status }}</span>
{%- if d.pending_restart %}<span class="restart">↻ cold boot pending</span>{% endif %}
<span class="meta mono">{{ d.uuid or '' }}</span>
<span class="meta">{{ plural(d.findings | length, 'finding') }} · checks: {{ d.checks | join(', ') }}</span></summary>
<table class="findings">
<colgroup><col class="w-check"><col class="w-rule"><col class="w-dev"><col class="w-chg"><col class="w-st"><col class="w-msg"></colgroup>
<thead><tr><th>Check</th><th>Rule</th><th>Device</th><th>Now → wanted</th><th>Status</th><th>Message</th></tr></thead>
<tbody>
{%- for f in d['findings'] %}
{%- set v = view(h['name'], d, f) %}
<tr class="item finding" data-host="{{ h['name'] }}" data-status="{{ f['status'] }}" data-rule="{{ f['rule'] }}" data-check="{{ f['check'] }}"
 data-text="{{ v[3] }}">
<td>{{ f['check'] }}</td><td><code>{{ f['rule'] }}</code></td>
<td class="dev"><b>{{ v[0] }}</b>
{%- if v[4] %}<small>alias {{ v[4] }}</small>{% endif %}
{%- if v[5] %}<small class="mono">{{ v[5] }}</small>{% endif %}</td>
<td class="chg mono">{{ v[1] }}{% if v[2] %}<span class="arrow">→</span>{{ v[2] }}{% endif %}</td>
<td><span class="badge st-{{ f['status'] }}">{{ f['status'] }}</span>{% if f['pending_restart'] %}<br><span class="restart">↻ restart pending</span>{% endif %}</td>
<td class="msg">{{ f['message'] or '' }}</td></tr>
{%- endfor %}
</tbody>
</table>
</details>
{%- else %}
<div class="item compliant-domain" data-host="{{ h.name }}" data-status="compliant" data-rule=""
 data-text="{{ search_text(h.name, d.name, d.uuid, 'compliant', *d.checks) }}">
<span class="badge st-compliant">✓ compliant</span><span class="name">{{ d.name }}</span>
<span class="meta">checks: {{ d.checks | join(', ') or 'none' }}</span></div>
{%- endif %}
{%- endfor %}
{%- if h.status == 'ok' and not h.domains %}
<div class="item compliant-domain" data-host="{{ h.name }}" data-status="compliant" data-rule="" data-text="{{ search_text(h.name, 'no domains') }}">
<span class="meta">no domains selected on this host</span></div>
{%- endif %}
</section>
{%- endfor %}

<footer>virtfleet.libvirt report · schema {{ r.schema_version }} · the JSON and JUnit files beside this page hold the same data.</footer>
</main>
<script>{{ js | safe }}</script>
</body>
</html>
"""

_STATUS_HELP = {
    "failed": "a fix did not stick",
    "drift": "deviates (check mode)",
    "pending": "fixed, awaits cold boot",
    "skipped": "cannot be fixed here",
    "fixed": "fixed by this run",
    "unknown": "define sent, connection lost",
    "conflict": "changed by another tool meanwhile",
    "not_attempted": "run stopped before it",
    "vanished": "undefined meanwhile",
}


def _search_text(*parts):
    """What the free-text filter searches: the parts, lower-cased, one line."""
    return " ".join(" ".join(str(p).split()) for p in parts if p not in (None, "")).lower()


def _finding_view(host_name, domain, finding):
    """What a finding row of the page shows: (device label, now, wanted, search text, alias, source)."""
    device = finding["device"]
    now, want = change_text(finding["current"], finding["desired"])
    label = device_label(device)
    text = _search_text(host_name, domain["name"], domain["uuid"], finding["check"], finding["rule"], finding["status"],
                        label, device.get("source"), device.get("alias"), device.get("serial"), now, want,
                        finding["message"])
    return label, now, want, text, device.get("alias"), device.get("source")


def _host_class(host):
    if host["status"] != "ok":
        return "unreachable" if host["status"] == "unreachable" else "audit-failed"
    return _domain_status([f for d in host["domains"] for f in d["findings"]])


def _host_label(host):
    if host["status"] == "unreachable":
        return "unreachable"
    if host["status"] == "failed":
        return "audit failed"
    return "%d finding%s" % (host["summary"]["findings"], "" if host["summary"]["findings"] == 1 else "s") \
        if host["summary"]["findings"] else "compliant"


_ENV = Environment(autoescape=True, keep_trailing_newline=True)
_PAGE = _ENV.from_string(_TEMPLATE)


def render_html(report):
    """A self-contained HTML page (inline CSS and JS, nothing fetched) for people."""
    return html_text(_check_report(report, "fleet_report_html"))


def html_text(report):
    """:func:`render_html` of a report that :func:`build_report` returned (plain data, not checked again)."""
    return _PAGE.render(r=report, csp=CSP, css=_CSS, js=_JS, statuses=STATUSES, status_help=_STATUS_HELP,
                        view=_finding_view, device_label=device_label, host_class=_host_class,
                        host_label=_host_label, plural=_plural, search_text=_search_text)


class FilterModule:
    """virtfleet.libvirt report filters."""

    def filters(self):
        return {
            "fleet_report": build_report,
            "fleet_report_junit": render_junit,
            "fleet_report_html": render_html,
        }
