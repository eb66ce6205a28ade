# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report as HTML pages for people, from the template files of roles/report/templates/ (private).

Two shapes, decided by the number of rows (findings, compliant domains, host notes) against
``inline_limit`` (the report role's ``report_html_inline_limit``):

- inline: one page, ``<name>.html``, with the summary and every host, domain and finding, and
  filters by host, status, rule and free text;
- paged: ``<name>.html`` holds the summary (verdict, cards, findings by rule, hosts worst first,
  filterable by status, rule and text), and each host gets its own page with its domains and
  findings, ``<name>-hosts/<host>.html``, linked from the host table. At 1,000 hosts x 100
  domains x 3 findings the first page is ~0.5 MB where one page of everything was 350 MB.

The CSS and JavaScript are ``report.css`` and ``report.js``, put inline into each page, and its
Content-Security-Policy allows exactly them by their SHA-256, so the pages work from a file://
URL or an artifact store with nothing fetched. A user's ``template_dir`` is searched first, file
by file (copy one file of roles/report/templates/ there and change it; the others stay ours).
Every value is HTML-escaped (Jinja2 autoescape).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from urllib.parse import quote

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

from ansible_collections.virtfleet.libvirt.plugins.plugin_utils._report_text import (
    GATING, STATUSES, change_text, device_label, plural,
)

DEFAULT_TEMPLATE_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                                     os.pardir, "roles", "report", "templates"))
TEMPLATES = ("report.html.j2", "host.html.j2", "_layout.html.j2", "_macros.html.j2", "report.css", "report.js")
DEFAULT_INLINE_LIMIT = 5000

STATUS_HELP = {
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
_SLUG_BAD = re.compile(r"[^A-Za-z0-9_.-]")


class TemplateDirError(ValueError):
    """The template directory a user named does not exist."""


def search_text(*parts):
    """What the free-text filter searches: the parts, lower-cased, one line."""
    return " ".join(" ".join(str(p).split()) for p in parts if p not in (None, "")).lower()


def finding_view(host_name, domain, finding):
    """What a finding row shows: (device label, now, wanted, search text, alias, source)."""
    device = finding["device"]
    now, want = change_text(finding["current"], finding["desired"])
    label = device_label(device)
    get = device.get
    text = " ".join(" ".join(str(p).split()) for p in (
        host_name, domain["name"], domain["uuid"], finding["check"], finding["rule"], finding["status"], label,
        get("source"), get("alias"), get("serial"), now, want, finding["message"]) if p).lower()
    return label, now, want, text, get("alias"), get("source")


def host_class(host):
    """The host's badge class: unreachable, audit-failed, or its worst finding status (compliant)."""
    if host["status"] != "ok":
        return "unreachable" if host["status"] == "unreachable" else "audit-failed"
    by_status = host["summary"]["by_status"]
    for status in STATUSES:
        if by_status.get(status):
            return status
    return "fixed" if host["summary"]["findings"] else "compliant"


def host_label(host):
    if host["status"] == "unreachable":
        return "unreachable"
    if host["status"] == "failed":
        return "audit failed"
    findings = host["summary"]["findings"]
    return plural(findings, "finding") if findings else "compliant"


def names(items, empty, limit=20):
    """A list of names for a summary card, at most ``limit`` of them."""
    if not items:
        return empty
    if len(items) <= limit:
        return ", ".join(items)
    return "%s and %d more (see the host table)" % (", ".join(items[:limit]), len(items) - limit)


def row_count(report):
    """Rows the one-page report would have: findings, compliant domains, host notes."""
    rows = 0
    for h in report["hosts"]:
        s = h["summary"]
        rows += s["findings"] + s["domains"] - s["domains_with_findings"]
        rows += 1 if h["status"] != "ok" or not s["domains"] else 0
    return rows


def host_slugs(hosts):
    """File name per host name (its own page): the name when it is a safe file name, else a safe form + hash."""
    out, taken = {}, set()
    for name in hosts:
        slug = _SLUG_BAD.sub("_", name).lstrip(".") or "host"
        if slug != name or slug.lower() in taken:
            slug = "%s-%s" % (slug[:80], hashlib.sha256(name.encode("utf-8")).hexdigest()[:10])
        taken.add(slug.lower())
        out[name] = slug
    return out


def _csp_hash(text):
    return "'sha256-%s'" % base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _host_rank(host):
    """Sort key of the host table: failed and unreachable hosts, then by worst status and most findings."""
    klass = host_class(host)
    order = ("audit-failed", "unreachable") + STATUSES + ("compliant",)
    gating = sum(host["summary"]["by_status"].get(s, 0) for s in GATING)
    return (order.index(klass) if klass in order else len(order), -gating, -host["summary"]["findings"])


class Renderer:
    """Renders the report pages from the templates (``template_dir`` first, then the collection's)."""

    def __init__(self, template_dir=None):
        if template_dir and not os.path.isdir(template_dir):
            raise TemplateDirError("report_html_template_dir %s is not a directory; copy the files of %s you want "
                                   "to change into it" % (template_dir, DEFAULT_TEMPLATE_DIR))
        loaders = [FileSystemLoader(template_dir)] if template_dir else []
        loaders.append(FileSystemLoader(DEFAULT_TEMPLATE_DIR))
        env = Environment(loader=ChoiceLoader(loaders), autoescape=True, keep_trailing_newline=True,
                          undefined=StrictUndefined, auto_reload=False)
        self.css = env.loader.get_source(env, "report.css")[0]
        self.js = env.loader.get_source(env, "report.js")[0]
        # Only the page's own inline style and script may run; nothing is fetched.
        self.csp = ("default-src 'none'; style-src %s; script-src %s; img-src data:; base-uri 'none'; "
                    "form-action 'none'" % (_csp_hash(self.css), _csp_hash(self.js)))
        env.globals.update(csp=self.csp, css=self.css, js=self.js, statuses=STATUSES, status_help=STATUS_HELP,
                           view=finding_view, device_label=device_label, host_class=host_class,
                           host_label=host_label, plural=plural, search_text=search_text, names=names)
        self.env = env
        self._report = env.get_template("report.html.j2")
        self._host = env.get_template("host.html.j2")

    def _hosts_rows(self, report, hrefs):
        rows = []
        for i, h in enumerate(report["hosts"]):
            statuses, rules = set(), set()
            if h["status"] != "ok":
                statuses.add(host_class(h))
            for d in h["domains"]:
                if not d["findings"]:
                    statuses.add("compliant")
                for f in d["findings"]:
                    statuses.add(f["status"])
                    rules.add(f["rule"])
            if h["status"] == "ok" and not h["domains"]:
                statuses.add("compliant")
            rows.append({"host": h, "href": hrefs[i], "statuses": " ".join(sorted(statuses)),
                         "rules": " ".join(sorted(rules)),
                         "text": search_text(h["name"], h["uri"], h["mode"], host_label(h), h["error"])})
        order = sorted(range(len(rows)), key=lambda i: _host_rank(report["hosts"][i]))
        return [rows[i] for i in order]

    @staticmethod
    def _rules_rows(report):
        rules = {}
        for h in report["hosts"]:
            for d in h["domains"]:
                for f in d["findings"]:
                    row = rules.get(f["rule"])
                    if row is None:
                        row = rules[f["rule"]] = {"rule": f["rule"], "checks": [], "total": 0,
                                                  "by_status": dict.fromkeys(STATUSES, 0), "_hosts": set()}
                    row["total"] += 1
                    row["by_status"][f["status"]] = row["by_status"].get(f["status"], 0) + 1
                    if f["check"] not in row["checks"]:
                        row["checks"].append(f["check"])
                    row["_hosts"].add(h["name"])
        out = []
        for rule in sorted(rules):
            row = rules[rule]
            row["hosts"] = len(row.pop("_hosts"))
            out.append(row)
        return out

    def render_report(self, report, inline=True, host_hrefs=None, limit=DEFAULT_INLINE_LIMIT, rows=None):
        """The first page; ``inline``: with every host section, else linking ``host_hrefs`` (one per host)."""
        hosts = report["hosts"]
        hrefs = ["#host-%d" % (i + 1) for i in range(len(hosts))] if inline else host_hrefs
        rules = self._rules_rows(report)
        rule_statuses = {s for row in rules for s, n in row["by_status"].items() if n}
        return self._report.render(r=report, hosts=self._hosts_rows(report, hrefs), rules=rules,
                                   rule_statuses=rule_statuses, inline=inline, limit=limit,
                                   rows=row_count(report) if rows is None else rows)

    def render_host(self, report, host, index_href):
        """The page of one host of ``report``."""
        rules = sorted({f["rule"] for d in host["domains"] for f in d["findings"]})
        return self._host.render(r=report, h=host, index=index_href, host_rules=rules)

    def write(self, report, directory, name, inline_limit=DEFAULT_INLINE_LIMIT, write=None):
        """Write the pages of ``report`` with ``write(path, text)``; returns (first page, host page dir or None).

        ``write`` defaults to a plain file write; the action passes its atomic writer. The host pages
        go to ``<directory>/<name>-hosts/`` (the caller prepares and publishes that directory).
        """
        write = write or _plain_write
        rows = row_count(report)
        index = os.path.join(directory, name + ".html")
        if inline_limit is None or rows <= inline_limit:
            write(index, self.render_report(report, inline=True, limit=inline_limit, rows=rows))
            return index, None
        host_dir = os.path.join(directory, name + "-hosts")
        slugs = host_slugs([h["name"] for h in report["hosts"]])
        back = "../" + quote(name + ".html")
        hrefs = []
        for h in report["hosts"]:
            slug = slugs[h["name"]]
            write(os.path.join(host_dir, slug + ".html"), self.render_host(report, h, back))
            hrefs.append(quote(name + "-hosts") + "/" + quote(slug + ".html"))
        write(index, self.render_report(report, inline=False, host_hrefs=hrefs, limit=inline_limit, rows=rows))
        return index, host_dir


def _plain_write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


_DEFAULT = []


def default_renderer():
    """The renderer of the collection's own templates (made once per process)."""
    if not _DEFAULT:
        _DEFAULT.append(Renderer())
    return _DEFAULT[0]


def html_text(report):
    """The one-page report (every host inline), from the collection's templates."""
    return default_renderer().render_report(report, inline=True)

