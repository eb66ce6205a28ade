"""The report's files as the fleet_report_write action writes them (plugin_utils/_report_files.py).

Rendering from the template files of roles/report/templates/, a user's template directory, the
page per host beyond the inline limit (links both ways, every finding there, compliant domains
with their UUIDs), the streamed JSON and JUnit equal to those of the report in memory, a
synthetic fleet far beyond the limit, and what happens to the host pages of an earlier run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import xml.etree.ElementTree as ET
from urllib.parse import unquote

import pytest

from ansible_collections.virtfleet.libvirt.plugins.plugin_utils import (
    _report_files, _report_html, _report_junit, _report_merge,
)
from ansible_collections.virtfleet.libvirt.tests.unit.plugins.filter.test_report_filter import NOW, parse_page
from ansible_collections.virtfleet.libvirt.tests.unit.plugins.filter.test_report_fixtures import HOSTS, fleet_hostvars

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir, os.pardir))
TEMPLATES = os.path.join(ROOT, "roles", "report", "templates")
FORMATS = ["json", "junit", "html"]


def digest(code):
    return "'sha256-%s'" % base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode()


def write(tmp_path, hostvars=None, hosts=None, **kwargs):
    kwargs.setdefault("generated_at", NOW)
    return _report_files.write_reports(list(HOSTS if hosts is None else hosts),
                                       fleet_hostvars() if hostvars is None else hostvars,
                                       str(tmp_path), "compliance", kwargs.pop("formats", FORMATS), **kwargs)


def synthetic_fleet(hosts, domains, findings):
    """hostvars of the shape the checks role leaves (virtfleet_audit_result + virtfleet_audit_status)."""
    out = {}
    for h in range(hosts):
        name = "hv-%03d" % h
        result = {"findings": [], "domains": []}
        for d in range(domains):
            dom = "vm-%03d-%03d" % (h, d)
            result["domains"].append({"name": dom, "uuid": "00000000-0000-4000-8000-%012d" % (h * 1000 + d)})
            for f in range(findings if d % 5 else 0):   # every fifth domain is compliant
                result["findings"].append({
                    "domain": dom, "check": "disk_io" if f % 2 else "aliases",
                    "rule": "cache-policy" if f % 2 else "alias-missing",
                    "status": ("drift", "pending", "failed")[(h + d + f) % 3], "pending_restart": f == 1,
                    "device": {"kind": "disk", "target": "vd%s" % "abc"[f % 3], "path": "/domain/devices/disk[%d]" % f},
                    "current": {"cache": "writeback"}, "desired": {"cache": "none"},
                    "message": "finding %d of %s" % (f, dom)})
        status = {"host": name, "uri": "qemu:///system", "mode": "audit", "check_mode": True, "status": "ok",
                  "error": None, "checks": {"aliases": {"failed": False}, "disk_io": {"failed": False}}}
        out[name] = {"virtfleet_audit_result": result, "virtfleet_audit_status": status}
    return out


# --- templates ----------------------------------------------------------------------------------

def test_pages_inline_the_template_files_and_their_csp_hashes(tmp_path):
    _head, paths = write(tmp_path)
    text = open(paths["html"], encoding="utf-8").read()
    page = parse_page(text)
    with open(os.path.join(TEMPLATES, "report.css"), encoding="utf-8") as handle:
        css = handle.read()
    with open(os.path.join(TEMPLATES, "report.js"), encoding="utf-8") as handle:
        js = handle.read()
    assert page.styles == [css] and page.scripts == [js]
    csp = next(a["content"] for t, a in page.elements if a.get("http-equiv") == "Content-Security-Policy")
    assert digest(css) in csp and digest(js) in csp and "default-src 'none'" in csp
    assert "_report_html" not in text and "<style>" in text


def test_a_user_template_dir_overrides_file_by_file(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.css").write_text("body{background:#123456}/* my-house-style */\n", encoding="utf-8")
    (mine / "_layout.html.j2").write_text(
        (open(os.path.join(TEMPLATES, "_layout.html.j2"), encoding="utf-8").read()
         .replace("<main>", '<main><p class="banner">ACME internal</p>')), encoding="utf-8")
    renderer = _report_html.Renderer(str(mine))
    _head, paths = write(tmp_path / "out", renderer=renderer)
    text = open(paths["html"], encoding="utf-8").read()
    page = parse_page(text)
    assert page.styles == ["body{background:#123456}/* my-house-style */\n"]
    csp = next(a["content"] for t, a in page.elements if a.get("http-equiv") == "Content-Security-Policy")
    assert digest(page.styles[0]) in renderer.csp and csp == renderer.csp
    assert "ACME internal" in page.all_text
    assert len(page.by_class("finding")) == 10   # report.html.j2 and _macros.html.j2 are still ours
    with pytest.raises(_report_html.TemplateDirError, match="not a directory"):
        _report_html.Renderer(str(tmp_path / "missing"))


# --- one page, or a page per host ---------------------------------------------------------------

def test_a_small_fleet_is_one_page_with_every_finding(tmp_path):
    head, paths = write(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["compliance.html", "compliance.json", "compliance.xml"]
    assert "html_hosts" not in paths and head["summary"]["findings"]["total"] == 10
    page = parse_page(open(paths["html"], encoding="utf-8").read())
    assert len(page.by_class("finding")) == 10 and len(page.by_class("compliant-domain")) == 5
    assert [a["href"] for t, a in page.elements if t == "a"] == ["#host-%d" % i for i in (3, 4, 1, 2)]
    assert not page.by_class("more")


def test_beyond_the_limit_each_host_has_its_page_linked_both_ways(tmp_path):
    head, paths = write(tmp_path, inline_limit=5)
    assert paths["html_hosts"] == str(tmp_path / "compliance-hosts")
    assert sorted(os.listdir(paths["html_hosts"])) == sorted("%s.html" % h for h in HOSTS)
    index_text = open(paths["html"], encoding="utf-8").read()
    index = parse_page(index_text)
    assert not index.by_class("finding") and index.by_class("more")
    assert "17 rows" in index.all_text and "report_html_inline_limit 5" in index.all_text
    rows = index.by_class("host-row")
    # Worst first: the failed host, the unreachable one, then by findings.
    assert [r["data-host"] for r in rows] == ["hv-fra-01", "hv-par-01", "hv-ams-01", "hv-ams-02"]
    assert rows[2]["data-status"] == "compliant drift pending skipped" and "live-differs" in rows[2]["data-rule"].split()
    assert rows[3]["data-status"] == "compliant"
    links = [a["href"] for t, a in index.elements if t == "a"]
    assert links == ["compliance-hosts/%s.html" % h for h in ("hv-fra-01", "hv-par-01", "hv-ams-01", "hv-ams-02")]
    report = _report_merge.build_report(HOSTS, fleet_hostvars(), generated_at=NOW)
    for link, name in zip(links, ("hv-fra-01", "hv-par-01", "hv-ams-01", "hv-ams-02")):
        path = tmp_path / unquote(link)
        text = path.read_text(encoding="utf-8")
        page = parse_page(text)
        back = [a["href"] for t, a in page.elements if t == "a"]
        assert back == ["../compliance.html"] and (path.parent / back[0]).resolve() == tmp_path / "compliance.html"
        host = next(h for h in report["hosts"] if h["name"] == name)
        assert len(page.by_class("finding")) == host["summary"]["findings"]
        for d in host["domains"]:
            assert d["name"] in page.all_text
            for f in d["findings"]:
                assert f["message"] in page.all_text
        assert [s["data-host"] for t, s in page.elements if t == "section" and "data-host" in s] == [name]
        assert not [a for _t, a in page.elements if a.get("id") == "f-host"]   # one host: no host filter
        assert "<title>%s · Fleet compliance report</title>" % name in text
    assert "UNREACHABLE" in (tmp_path / "compliance-hosts" / "hv-par-01.html").read_text(encoding="utf-8")
    assert head["summary"] == report["summary"]


def test_compliant_domains_are_listed_with_their_uuids(tmp_path):
    hostvars = synthetic_fleet(2, 10, 2)
    for limit in (None, 0):
        out = tmp_path / str(limit)
        _head, paths = write(out, hostvars=hostvars, hosts=list(hostvars), inline_limit=limit)
        pages = [paths["html"]] if limit is None else [os.path.join(paths["html_hosts"], n)
                                                       for n in sorted(os.listdir(paths["html_hosts"]))]
        text = "".join(open(p, encoding="utf-8").read() for p in pages)
        page = parse_page(text)
        compliant = page.by_class("compliant-domain")
        assert len(compliant) == 4   # domains 0 and 5 of both hosts
        for h, d in ((0, 0), (0, 5), (1, 0), (1, 5)):
            assert re.search(r"vm-%03d-%03d</span>\s*<span class=\"uuid mono\">00000000-0000-4000-8000-%012d</span>"
                             % (h, d, h * 1000 + d), text)


def test_streamed_json_and_junit_equal_the_report_in_memory(tmp_path, schema=None):
    hostvars = fleet_hostvars()
    head, paths = write(tmp_path, hostvars=hostvars, title="Nightly")
    report = _report_merge.build_report(HOSTS, hostvars, title="Nightly", generated_at=NOW)
    with open(paths["json"], encoding="utf-8") as handle:
        assert json.load(handle) == json.loads(json.dumps(report))
    with open(paths["junit"], encoding="utf-8") as handle:
        assert handle.read() == _report_junit.junit_text(report)
    assert head == {k: v for k, v in report.items() if k != "hosts"}
    assert list(json.load(open(paths["json"], encoding="utf-8"))) == ["schema_version", "generated_at", "title",
                                                                      "summary", "hosts"]


def test_a_big_fleet_has_a_small_first_page_and_every_finding_in_json_junit_and_host_pages(tmp_path):
    hostvars = synthetic_fleet(60, 40, 3)   # 60 x 32 x 3 = 5,760 findings + 480 compliant domains > 5,000
    head, paths = write(tmp_path, hostvars=hostvars, hosts=list(hostvars))
    total = 60 * 32 * 3
    assert head["summary"]["findings"]["total"] == total and head["summary"]["domains"]["compliant"] == 480
    assert len(os.listdir(paths["html_hosts"])) == 60
    first = open(paths["html"], encoding="utf-8").read()
    assert len(first) < 200_000
    page = parse_page(first)
    assert len(page.by_class("host-row")) == 60 and not page.by_class("finding")
    assert "%d rows" % (total + 480) in page.all_text
    rules = {r["data-value"] for r in page.by_class("chip")}
    assert rules == {"alias-missing", "cache-policy"}
    in_pages = sum(len(parse_page(open(os.path.join(paths["html_hosts"], n), encoding="utf-8").read())
                       .by_class("finding")) for n in os.listdir(paths["html_hosts"]))
    assert in_pages == total
    report = json.load(open(paths["json"], encoding="utf-8"))
    assert sum(len(d["findings"]) for h in report["hosts"] for d in h["domains"]) == total
    root = ET.parse(paths["junit"]).getroot()
    assert int(root.get("tests")) == len(root.findall("testsuite/testcase")) == 60 * (32 * 2 + 8 * 2)


# --- the host page directory between runs -------------------------------------------------------

def test_host_pages_of_an_earlier_run_are_replaced_or_removed(tmp_path):
    write(tmp_path, inline_limit=0)
    stale = tmp_path / "compliance-hosts" / "hv-gone-99.html"
    stale.write_text("old", encoding="utf-8")
    _head, paths = write(tmp_path, hosts=HOSTS[:2], inline_limit=0)
    assert sorted(os.listdir(paths["html_hosts"])) == ["hv-ams-01.html", "hv-ams-02.html"]
    _head, paths = write(tmp_path, inline_limit=None)     # fits on one page: the directory goes
    assert "html_hosts" not in paths and not (tmp_path / "compliance-hosts").exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]   # no scratch file left behind


def test_a_foreign_directory_in_the_way_is_never_deleted(tmp_path):
    foreign = tmp_path / "compliance-hosts"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(OSError, match="not a directory of report pages"):
        write(tmp_path, inline_limit=0)
    assert (foreign / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert sorted(n for n in os.listdir(tmp_path) if not n.startswith(".")) == ["compliance-hosts"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_host_page_names_are_safe_and_distinct():
    slugs = _report_html.host_slugs(["hv-01", "hv/01", "..", "hv 01", "HV-01", "ok_name.example.com"])
    assert slugs["hv-01"] == "hv-01" and slugs["ok_name.example.com"] == "ok_name.example.com"
    assert len(set(s.lower() for s in slugs.values())) == len(slugs)
    for name, slug in slugs.items():
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", slug) and slug not in (".", ".."), (name, slug)
