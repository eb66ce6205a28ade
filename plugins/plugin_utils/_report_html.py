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

from jinja2 import ChoiceLoader, Environment, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from ansible_collections.virtfleet.libvirt.plugins.plugin_utils._report_text import (
    GATING, STATUSES, change_of, device_label, plural,
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
    "blocked": "would not start on the target",
}
_SLUG_BAD = re.compile(r"[^A-Za-z0-9_.-]")


class TemplateDirError(ValueError):
    """The template directory a user named does not exist."""


def search_text(*parts):
    """What the free-text filter searches: the parts, lower-cased, one line."""
    return " ".join(" ".join(str(p).split()) for p in parts if p not in (None, "")).lower()


def finding_view(host_name, domain, finding):
    """What a finding row shows: (device label, now, wanted, alias, source, serial).

    The free-text filter searches the row's text and its domain's ``data-text`` (report.js), so
    nothing here is repeated in a search attribute.
    """
    device = finding["device"]
    now, want = change_of(finding)
    get = device.get
    return device_label(device), now, want, get("alias"), get("source"), get("serial")


_ROW = ('\n<tr class="item finding" data-host="%(host)s" data-status="%(status)s" data-rule="%(rule)s" '
        'data-check="%(check)s">\n<td>%(check)s</td><td><code>%(rule)s</code></td>\n'
        '<td class="dev"><b>%(device)s</b>%(extra)s</td>\n<td class="chg mono">%(now)s%(want)s</td>\n'
        '<td><span class="badge st-%(status)s">%(status)s</span>%(restart)s</td>\n<td class="msg">%(message)s</td></tr>')
_RESTART = '<br><span class="restart">\u21bb restart pending</span>'


def finding_rows(host_name, domain):
    """The ``<tr>`` of every finding of ``domain`` (the findings table of _macros.html.j2), escaped.

    Built here rather than by a template loop: at thousands of rows the loop was half the time of
    the report. The cells are :func:`finding_view`'s; a template that wants other rows loops over
    ``domain['findings']`` itself with ``view()``.
    """
    host = escape(host_name)
    rows = []
    for f in domain["findings"]:
        label, now, want, alias, source, serial = finding_view(host_name, domain, f)
        extra = "".join((
            "<small>alias %s</small>" % escape(alias) if alias else "",
            '<small class="mono">%s</small>' % escape(source) if source else "",
            "<small>serial %s</small>" % escape(serial) if serial else ""))
        rows.append(_ROW % {
            "host": host, "status": escape(f["status"]), "rule": escape(f["rule"]), "check": escape(f["check"]),
            "device": escape(label), "extra": extra, "now": escape(now),
            "want": '<span class="arrow">\u2192</span>%s' % escape(want) if want else "",
            "restart": _RESTART if f["pending_restart"] else "", "message": escape(f["message"] or "")})
    return Markup("".join(rows))


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


def host_rows(host):
    """Rows the one-page report has for ``host``: findings, compliant domains, a note."""
    s = host["summary"]
    note = 1 if host["status"] != "ok" or not s["domains"] else 0
    return s["findings"] + s["domains"] - s["domains_with_findings"] + note


def row_count(report):
    """Rows the one-page report would have: findings, compliant domains, host notes."""
    return sum(host_rows(h) for h in report["hosts"])


class Slugs:
    """File name per host name (its own page): the name when it is a safe file name, else a safe form + hash."""

    def __init__(self):
        self.taken = set()

    def __call__(self, name):
        slug = _SLUG_BAD.sub("_", name).lstrip(".") or "host"
        if slug != name or slug.lower() in self.taken:
            slug = "%s-%s" % (slug[:80], hashlib.sha256(name.encode("utf-8")).hexdigest()[:10])
        self.taken.add(slug.lower())
        return slug


def host_slugs(hosts):
    slug = Slugs()
    return {name: slug(name) for name in hosts}


def _csp_hash(text):
    return "'sha256-%s'" % base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _host_rank(host):
    """Sort key of the host table: failed and unreachable hosts, then by worst status and most findings."""
    klass = host_class(host)
    order = ("audit-failed", "unreachable") + STATUSES + ("compliant",)
    gating = sum(host["summary"]["by_status"].get(s, 0) for s in GATING)
    return (order.index(klass) if klass in order else len(order), -gating, -host["summary"]["findings"])


class _QuietBytecodeCache(FileSystemBytecodeCache):
    """Jinja's cache of compiled templates, whose failure to write only costs the next run the compile."""

    def dump_bytecode(self, bucket):
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


def _bytecode_cache():
    """The compiled templates are kept between runs (compiling them costs each report about 40 ms).

    Jinja's own cache: a directory of the controller user's in the temporary directory, mode 0700,
    refused when someone else owns it; an entry is keyed by template name and source checksum, so a
    changed template (ours or a ``report_html_template_dir`` one) is compiled again. None (compile
    every run) when that directory cannot be used.
    """
    try:
        return _QuietBytecodeCache()
    except (OSError, RuntimeError):
        return None


class Renderer:
    """Renders the report pages from the templates (``template_dir`` first, then the collection's)."""

    def __init__(self, template_dir=None):
        if template_dir and not os.path.isdir(template_dir):
            raise TemplateDirError("report_html_template_dir %s is not a directory; copy the files of %s you want "
                                   "to change into it" % (template_dir, DEFAULT_TEMPLATE_DIR))
        loaders = [FileSystemLoader(template_dir)] if template_dir else []
        loaders.append(FileSystemLoader(DEFAULT_TEMPLATE_DIR))
        env = Environment(loader=ChoiceLoader(loaders), autoescape=True, keep_trailing_newline=True,
                          undefined=StrictUndefined, auto_reload=False, bytecode_cache=_bytecode_cache())
        self.css = env.loader.get_source(env, "report.css")[0]
        self.js = env.loader.get_source(env, "report.js")[0]
        # Only the page's own inline style and script may run; nothing is fetched.
        self.csp = ("default-src 'none'; style-src %s; script-src %s; img-src data:; base-uri 'none'; "
                    "form-action 'none'" % (_csp_hash(self.css), _csp_hash(self.js)))
        env.globals.update(csp=self.csp, css=self.css, js=self.js, statuses=STATUSES, status_help=STATUS_HELP,
                           view=finding_view, finding_rows=finding_rows, device_label=device_label, host_class=host_class,
                           host_label=host_label, plural=plural, search_text=search_text, names=names)
        self.env = env
        self._report = env.get_template("report.html.j2")
        self._host = env.get_template("host.html.j2")

    @staticmethod
    def host_row(h, href):
        """The host table's row of ``h``: the host without its domains, and what the filters match."""
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
        light = {k: v for k, v in h.items() if k != "domains"}
        return {"host": light, "href": href, "statuses": " ".join(sorted(statuses)), "rules": " ".join(sorted(rules)),
                "text": search_text(h["name"], h["uri"], h["mode"], host_label(h), h["error"])}

    def render_index(self, report, rows, rules, inline, limit=DEFAULT_INLINE_LIMIT, n_rows=0):
        """The first page. ``report``: the report, whose ``hosts`` are the full entries (inline) or the
        entries without ``domains`` (paged); ``rows``: :meth:`host_row` per host; ``rules``: :class:`RuleTable`."""
        order = sorted(range(len(rows)), key=lambda i: _host_rank(rows[i]["host"]))
        table = rules.rows()
        rule_statuses = {s for row in table for s, n in row["by_status"].items() if n}
        return self._report.render(r=report, hosts=[rows[i] for i in order], rules=table,
                                   rule_statuses=rule_statuses, inline=inline, limit=limit, rows=n_rows)

    def render_report(self, report, inline=True, host_hrefs=None, limit=DEFAULT_INLINE_LIMIT):
        """The first page of a report in memory; ``inline``: with every host, else linking ``host_hrefs``."""
        hosts = report["hosts"]
        hrefs = ["#host-%d" % (i + 1) for i in range(len(hosts))] if inline else host_hrefs
        rules = RuleTable()
        for h in hosts:
            rules.add(h)
        rows = [self.host_row(h, href) for h, href in zip(hosts, hrefs)]
        if not inline:
            report = dict(report, hosts=[row["host"] for row in rows])
        return self.render_index(report, rows, rules, inline, limit, sum(host_rows(h) for h in hosts))

    def render_host(self, head, host, index_href):
        """The page of one host; ``head``: the report's schema_version, generated_at and title."""
        rules = sorted({f["rule"] for d in host["domains"] for f in d["findings"]})
        return self._host.render(r=head, h=host, index=index_href, host_rules=rules)


class RuleTable:
    """Findings by rule over the fleet, counted one host at a time: rule, checks, total, by_status, hosts."""

    def __init__(self):
        self.rules = {}

    def add(self, h):
        rules = self.rules
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

    def rows(self):
        return [dict({k: v for k, v in self.rules[r].items() if k != "_hosts"}, hosts=len(self.rules[r]["_hosts"]))
                for r in sorted(self.rules)]


class Pages:
    """The HTML pages of a fleet written as its hosts come (the report is never whole in memory).

    Hosts are kept while the fleet fits on one page (``limit`` rows); from the host that makes it
    larger on, each host's page is written with ``write(file name, text)`` as it comes (the kept
    ones first) and only its table row is kept. :meth:`index` then renders the first page.
    """

    def __init__(self, renderer, name, head, limit=DEFAULT_INLINE_LIMIT, write=None):
        self.renderer, self.name, self.head, self.limit, self.write = renderer, name, head, limit, write
        self.kept, self.rows, self.rules, self.n_rows = [], [], RuleTable(), 0
        self.inline = True
        self.slug = Slugs()
        self.back = "../" + quote(name + ".html")

    def add(self, host):
        self.n_rows += host_rows(host)
        self.rules.add(host)
        if self.inline:
            self.kept.append(host)
            if self.limit is None or self.n_rows <= self.limit:
                return
            self.inline = False
            kept, self.kept = self.kept, []
            for h in kept:
                self._page(h)
        else:
            self._page(host)

    def _page(self, host):
        slug = self.slug(host["name"])
        self.write(slug + ".html", self.renderer.render_host(self.head, host, self.back))
        self.rows.append(self.renderer.host_row(host, quote(self.name + "-hosts") + "/" + quote(slug + ".html")))

    def index(self, head):
        """The first page; ``head``: the report without hosts, its summary complete."""
        if self.inline:
            rows = [self.renderer.host_row(h, "#host-%d" % (i + 1)) for i, h in enumerate(self.kept)]
            report = dict(head, hosts=self.kept)
        else:
            rows = self.rows
            report = dict(head, hosts=[row["host"] for row in rows])
        return self.renderer.render_index(report, rows, self.rules, self.inline, self.limit, self.n_rows)


_DEFAULT = []


def default_renderer():
    """The renderer of the collection's own templates (made once per process)."""
    if not _DEFAULT:
        _DEFAULT.append(Renderer())
    return _DEFAULT[0]


def html_text(report):
    """The one-page report (every host inline), from the collection's templates."""
    return default_renderer().render_report(report, inline=True)
