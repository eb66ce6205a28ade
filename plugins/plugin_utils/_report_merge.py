# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Merge every host's audit into the fleet report (docs/report-schema.md, schema 1.1). Private, pure.

Used by the ``fleet_report`` filter and the ``fleet_report_write`` action. Nothing here renders:
JUnit is ``_report_junit``, HTML ``_report_html``. At fleet scale (1,000 hosts x 100 domains x 3
findings) this is one of the three places the time goes, so the merge copies no more than the
report's own shape: a finding is a new dict of its eight keys, while its ``device``, ``current``
and ``desired`` are the module's own dicts, shared and never mutated (a deep copy of every result
cost 2.3 s per 30,000 findings and doubled the memory).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _redact
from ansible_collections.virtfleet.libvirt.plugins.plugin_utils._report_text import (
    CHECKS, GATING, HOST_STATUSES, STATUSES, counts, domain_status, plural,
)

SCHEMA_VERSION = "1.2"
FINDING_KEYS = ("check", "rule", "status", "pending_restart", "device", "current", "desired", "message")
UNREACHABLE_ERROR = ("no virtfleet_audit_status: the host was unreachable, or the audit/remediate role did not "
                     "run on it or stopped before publishing its result (see the play output for this host)")
_EMPTY = {}


class ReportInputError(ValueError):
    """The input of build_report is not a list of hosts and a hostvars mapping (the filter raises it as its error)."""


def plain(value):
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
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
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


def audit_result(hostvars, host):
    """The host's audit as (result, status): ``virtfleet_audit_result`` and ``virtfleet_audit_status``.

    The checks role registers the module's result as ``virtfleet_audit_result`` (findings, domains,
    summary) and publishes how the run went as ``virtfleet_audit_status`` (host, uri, mode,
    check_mode, status, error, checks). A single ``virtfleet_audit_result`` holding every key (the
    shape before 0.2.0, or one written by hand) is read as it is. (None, None) without either.
    """
    try:
        if host not in hostvars:
            return None, None
        host_vars = _host_vars(hostvars, host)
        if host_vars is None:
            return None, None
        return host_vars.get("virtfleet_audit_result"), host_vars.get("virtfleet_audit_status")
    except KeyError:
        return None, None


def result_findings(result, limit=None):
    """The findings of a virt_policy result, in either of its formats, as a list (ReportInputError if malformed).

    ``findings`` (``findings_format: list``) is returned as it is; ``findings_json`` (``json``, what
    the audit and remediate roles ask for) is decoded: one C-speed ``json.loads`` on the controller
    instead of Ansible handling every value of the result (virt_policy's ``findings_format``).
    ``limit``: the first that many only; of a text only those are decoded.
    """
    if not isinstance(result, Mapping):
        raise ReportInputError("not a virt_policy result (a mapping with findings or findings_json), got %s"
                               % type(result).__name__)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ReportInputError("limit must be a number of findings (0 or more), got %r" % (limit,))
    text = result.get("findings_json")
    if text is None:
        findings = result.get("findings")
        if findings is None:
            return []
        if not isinstance(findings, (list, tuple)):
            raise ReportInputError("findings is not a list but %s" % type(findings).__name__)
        return findings if limit is None else list(findings[:limit])
    if not isinstance(text, str):
        raise ReportInputError("findings_json is not a JSON text but %s" % type(text).__name__)
    text = str(text)  # a plain str of Ansible's tagged one
    try:
        findings = json.loads(text) if limit is None else _first(text, limit)
    except ValueError as exc:
        raise ReportInputError("findings_json is not valid JSON (%s); rerun the audit: the result was cut or "
                               "changed after virt_policy returned it" % exc) from None
    if not isinstance(findings, list):
        raise ReportInputError("findings_json holds %s, not a list of findings" % type(findings).__name__)
    return findings


_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace


def _first(text, limit):
    """The first ``limit`` entries of the JSON array ``text``, decoding no further (ValueError if it is not one)."""
    decode = json.JSONDecoder().raw_decode
    pos = _SPACE.match(text).end()
    if not text.startswith("[", pos):
        return json.loads(text)  # not an array: the caller says what it holds, or the error says why
    out, pos = [], _SPACE.match(text, pos + 1).end()
    if text.startswith("]", pos):
        return out
    while len(out) < limit:
        value, pos = decode(text, pos)
        out.append(value)
        pos = _SPACE.match(text, pos).end()
        if text.startswith("]", pos):
            break
        if not text.startswith(",", pos):
            raise ValueError("expected ',' or ']' at character %d" % pos)
        pos = _SPACE.match(text, pos + 1).end()
    return out


def _unreachable_entry(host):
    return {"name": host, "status": "unreachable", "error": UNREACHABLE_ERROR, "uri": None, "mode": None,
            "check_mode": None, "checks": {},
            "summary": {"domains": 0, "domains_with_findings": 0, "findings": 0,
                        "by_status": counts(STATUSES, ()), "pending_restart": 0},
            "domains": []}


def _get(mapping, key):
    """``mapping[key]`` for the small keys of a result or status (plain copies: they are few and small)."""
    return plain(mapping.get(key)) if isinstance(mapping, Mapping) else None


def host_entry(host, result, status_fact=None):
    """One ``hosts[]`` entry of the report from the host's result and status (see :func:`audit_result`)."""
    if result is None and status_fact is None:
        return _unreachable_entry(host)
    if status_fact is not None and not isinstance(status_fact, Mapping):
        status_fact = {"status": "failed", "error": "virtfleet_audit_status is not a mapping: %r" % (status_fact,)}
    if status_fact is None:
        if not isinstance(result, Mapping):
            result, status_fact = _EMPTY, {"status": "failed",
                                           "error": "virtfleet_audit_result is not a mapping: %r" % (result,)}
        else:
            status_fact = result   # the single-variable shape: status keys and results in one mapping
    elif not isinstance(result, Mapping):
        result = _EMPTY
    try:
        result_list = result_findings(result)
    except ReportInputError as exc:
        result_list = ()
        status_fact = dict(status_fact, status="failed", error="virtfleet_audit_result: %s" % exc)

    def meta(key):
        return _get(status_fact, key) if key in status_fact else _get(result, key)

    checks_in = meta("checks")
    checks_in = checks_in if isinstance(checks_in, dict) else {}
    result_domains = result.get("domains") or ()
    checks, domain_names, errors = {}, [], []
    for name, check in checks_in.items():
        check = check if isinstance(check, dict) else {}
        names = [str(d) for d in check.get("domains") or [] if d is not None]
        domain_names.extend((n, name) for n in names)
        checks[name] = {"changed": bool(check.get("changed")), "failed": bool(check.get("failed")),
                        "msg": check.get("msg"),
                        "domains": len(names) if "domains" in check else len(result_domains),
                        "summary": check.get("summary") if isinstance(check.get("summary"), dict) else {}}
        if check.get("failed"):
            errors.append("%s: %s" % (name, check.get("msg") or "failed"))

    status = meta("status")
    raw_status = status
    if status not in HOST_STATUSES or (errors and status == "ok"):
        status = "failed"
    error = meta("error")
    if status == "unreachable" and not error:
        error = "the host became unreachable during the run"
    if status == "failed" and not error:
        error = "; ".join(errors) or "the audit result has no valid status (%r)" % (raw_status,)

    domains = {}  # name -> entry, in first-seen order; sorted by name at the end
    check_names = list(checks)

    def domain(name, uuid=None):
        entry = domains.get(name)
        if entry is None:
            entry = domains[name] = {"name": name, "uuid": None, "status": "compliant",
                                     "pending_restart": False, "checks": [], "findings": []}
        if uuid and not entry["uuid"]:
            entry["uuid"] = str(uuid)
        return entry

    # virt_policy (one call for every check) returns each selected domain once, with its UUID.
    for raw in result_domains:
        if isinstance(raw, Mapping) and raw.get("name"):
            entry = domain(str(raw["name"]), raw.get("uuid"))
            entry["checks"].extend(c for c in check_names if c not in entry["checks"])
            readiness = raw.get("readiness")
            if isinstance(readiness, Mapping):
                entry["readiness"] = _readiness_entry(readiness)
    for name, check in domain_names:
        entry = domain(name)
        if check not in entry["checks"]:
            entry["checks"].append(check)
    last_name, entry = None, None
    for raw in result_list:
        if not isinstance(raw, Mapping):
            continue
        get = raw.get
        device, current, desired = get("device"), get("current"), get("desired")
        finding = {
            "check": str(get("check") or "unknown"),
            "rule": str(get("rule") or "unknown"),
            "status": str(get("status") or "failed"),
            "pending_restart": bool(get("pending_restart")),
            "device": device if isinstance(device, dict) else {},
            "current": current if isinstance(current, dict) else {},
            "desired": desired if isinstance(desired, dict) else {},
            "message": get("message"),
        }
        name = str(get("domain") or get("uuid") or "(unknown domain)")
        if name != last_name or get("uuid"):   # findings come grouped by domain: one lookup per domain
            entry, last_name = domain(name, get("uuid")), name
        entry["findings"].append(finding)
        if finding["check"] not in entry["checks"]:
            entry["checks"].append(finding["check"])
    order = {c: i for i, c in enumerate(CHECKS)}
    by_status = dict.fromkeys(STATUSES, 0)
    n_findings = n_pending = with_findings = 0
    for entry in domains.values():
        findings = entry["findings"]
        if findings:
            with_findings += 1
            n_findings += len(findings)
            restart = 0
            for f in findings:
                by_status[f["status"]] = by_status.get(f["status"], 0) + 1
                restart += f["pending_restart"]
            n_pending += restart
            entry["pending_restart"] = bool(restart)
            entry["status"] = domain_status(findings)
        if len(entry["checks"]) > 1:
            entry["checks"].sort(key=lambda c: (order.get(c, len(CHECKS)), c))
    ordered = [domains[name] for name in sorted(domains)]
    return {
        "name": host,
        "status": status,
        "error": error if status != "ok" else None,
        "uri": redact_uri(meta("uri")),
        "mode": meta("mode"),
        "check_mode": meta("check_mode"),
        "checks": checks,
        "summary": {
            "domains": len(ordered),
            "domains_with_findings": with_findings,
            "findings": n_findings,
            "by_status": by_status,
            "pending_restart": n_pending,
        },
        "domains": ordered,
    }


def _readiness_entry(readiness):
    """A domain's ``readiness`` (upgrade_readiness rule) as the report keeps it."""
    reasons = [{"code": str(r.get("code") or "unknown"), "device": dict(r["device"]) if isinstance(r.get("device"), Mapping)
                else {}, "message": str(r.get("message") or "")}
               for r in readiness.get("reasons") or () if isinstance(r, Mapping)]
    target = readiness.get("target")
    return {"target": None if target is None else str(target), "starts": bool(readiness.get("starts")) and not reasons,
            "reasons": reasons}


class Fleet:
    """The fleet-wide part of the report (summary), counted one host entry at a time.

    :func:`build_report` and the streaming writer (_report_files.py) both count with it, so the
    summary is defined once whether the hosts are kept in memory or written as they come.
    """

    def __init__(self, title=None, generated_at=None):
        if generated_at is None:
            generated_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.title = str(title) if title else "Fleet compliance report"
        self.generated_at = str(generated_at)
        self.hosts = 0
        self.by_host_status = dict.fromkeys(HOST_STATUSES, 0)
        self.by_status = dict.fromkeys(STATUSES, 0)
        self.by_check = dict.fromkeys(CHECKS, 0)
        self.rules = {}
        self.unreachable, self.failed = [], []
        self.n_domains = self.with_findings = self.domains_pending = self.n_findings = self.n_pending = 0
        self.modes, self.check_modes = set(), set()

    def add(self, h):
        """Count host entry ``h`` (what :func:`host_entry` returned)."""
        self.hosts += 1
        self.by_host_status[h["status"]] = self.by_host_status.get(h["status"], 0) + 1
        if h["status"] == "unreachable":
            self.unreachable.append(h["name"])
        elif h["status"] == "failed":
            self.failed.append(h["name"])
        if h["mode"]:
            self.modes.add(str(h["mode"]))
        if h["check_mode"] is not None:
            self.check_modes.add(h["check_mode"])
        summary = h["summary"]
        self.n_findings += summary["findings"]
        self.n_pending += summary["pending_restart"]
        for key, value in summary["by_status"].items():
            self.by_status[key] = self.by_status.get(key, 0) + value
        self.n_domains += summary["domains"]
        self.with_findings += summary["domains_with_findings"]
        rules, by_check = self.rules, self.by_check
        for d in h["domains"]:
            if not d["findings"]:
                continue
            self.domains_pending += d["pending_restart"]
            for f in d["findings"]:
                rule, check = f["rule"], f["check"]
                rules[rule] = rules.get(rule, 0) + 1
                by_check[check] = by_check.get(check, 0) + 1

    def summary(self):
        by_status, unreachable, failed_hosts = self.by_status, self.unreachable, self.failed
        reasons = ["%s with status %s" % (plural(by_status[s], "finding"), s) for s in GATING if by_status[s]]
        if unreachable:
            reasons.append("%s unreachable: %s" % (plural(len(unreachable), "host"), ", ".join(unreachable)))
        if failed_hosts:
            reasons.append("%s failed: %s" % (plural(len(failed_hosts), "host"), ", ".join(failed_hosts)))
        check_modes = set(self.check_modes)
        return {
            "passed": not reasons,
            "reasons": reasons,
            "modes": sorted(self.modes),
            "check_mode": check_modes.pop() if len(check_modes) == 1 else None,
            "hosts": dict(total=self.hosts, **self.by_host_status),
            "unreachable_hosts": list(unreachable),
            "failed_hosts": list(failed_hosts),
            "domains": {"total": self.n_domains, "with_findings": self.with_findings,
                        "compliant": self.n_domains - self.with_findings, "pending_restart": self.domains_pending},
            "findings": {
                "total": self.n_findings,
                "by_status": dict(by_status),
                "by_rule": {rule: self.rules[rule] for rule in sorted(self.rules)},
                "by_check": dict(self.by_check),
            },
            "pending_restart": self.n_pending,
        }

    def head(self):
        """The report without ``hosts``: every key before it, in the schema's order."""
        return {"schema_version": SCHEMA_VERSION, "generated_at": self.generated_at, "title": self.title,
                "summary": self.summary()}


def host_names(hosts, hostvars):
    """``hosts`` without duplicates, as text, after checking both inputs (ReportInputError)."""
    if isinstance(hosts, (str, bytes)) or not isinstance(hosts, (list, tuple)):
        raise ReportInputError("fleet_report: the input must be a list of host names, got %s" % type(hosts).__name__)
    if not isinstance(hostvars, Mapping):
        raise ReportInputError("fleet_report: hostvars must be a mapping (pass hostvars), got %s"
                               % type(hostvars).__name__)
    return list(dict.fromkeys(str(h) for h in hosts))


def iter_hosts(hosts, hostvars):
    """The host entries of ``hosts``, one at a time (read from ``hostvars`` as they are needed)."""
    for name in host_names(hosts, hostvars):
        yield host_entry(name, *audit_result(hostvars, name))


def build_report(hosts, hostvars, title=None, generated_at=None):
    """The merged report (docs/report-schema.md) of ``hosts``, read from ``hostvars``."""
    entries = list(iter_hosts(hosts, hostvars))
    fleet = Fleet(title, generated_at)
    for entry in entries:
        fleet.add(entry)
    report = fleet.head()
    report["hosts"] = entries
    return report


def is_report(report):
    return isinstance(report, Mapping) and "hosts" in report and "summary" in report


def write_json(report, handle):
    """The report as compact JSON on ``handle``, one host at a time.

    json's C encoder runs only for ``dumps`` without indent (``dump`` takes the pure-Python path),
    so each host is dumped to a string and written, and the whole document is never one string
    (175 MB at 300,000 findings). ``jq .`` pretty-prints it.
    """
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    head = {k: v for k, v in report.items() if k != "hosts"}
    text = dumps(head)
    handle.write(text[:-1] + ',"hosts":[')
    for i, host in enumerate(report["hosts"]):
        if i:
            handle.write(",")
        handle.write(dumps(host))
    handle.write("]" + text[-1] + "\n")
