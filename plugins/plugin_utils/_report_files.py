# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write the report files of a fleet, one host at a time (private; the fleet_report_write action).

Each host is merged (_report_merge.host_entry), counted into the fleet summary, written to the
JSON and JUnit scratch files and, for a fleet beyond the inline limit, to its own HTML page, and
then dropped: memory holds one host's entry, the small per-host rows of the fleet page, and the
hosts kept while the fleet still fits on one page. The summary comes first in the JSON file and
the totals first in the JUnit file, so both are assembled at the end: the head, then the scratch
file copied behind it. Every file is published atomically (a temporary file in the same
directory, then rename); the host pages are written into a new directory that then replaces the
old one, so a reader never sees two runs mixed and hosts gone from the fleet leave no page behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from ansible_collections.virtfleet.libvirt.plugins.plugin_utils import (
    _report_html, _report_junit, _report_merge, _report_text,
)

SUFFIXES = {"json": ".json", "junit": ".xml", "html": ".html"}


def _publish(tmp, path, mode=0o644):
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _scratch(directory, name):
    fd, path = tempfile.mkstemp(prefix=".%s." % name, dir=directory)
    return os.fdopen(fd, "w+", encoding="utf-8"), path


UNREACHABLE_STATUS = "no result (the host was unreachable)"


def write_host_results(hosts, hostvars, directory):
    """Keep each host's results as ``<directory>/hosts/<host>.json`` for playbooks/merge_reports.yml.

    ``{"status": virtfleet_audit_status, "result": virtfleet_audit_result}`` per host (a host with
    neither is kept as unreachable), directory 0750, files 0640, each published atomically. Returns
    the directory. OSError when one cannot be written.
    """
    out = os.path.join(directory, "hosts")
    os.makedirs(out, mode=0o750, exist_ok=True)
    for host in _report_merge.host_names(hosts, hostvars):
        if "/" in host or host in (".", ".."):
            raise _report_merge.ReportInputError("host name %r cannot be a file name under %s" % (host, out))
        result, status = _report_merge.audit_result(hostvars, host)
        status = _report_merge.plain(status) if status is not None else {
            "host": host, "status": "unreachable", "error": UNREACHABLE_STATUS, "checks": {}}
        handle, tmp = _scratch(out, host + ".json")
        try:
            with handle:
                json.dump({"status": status, "result": _report_merge.plain(result) if result is not None else {}},
                          handle, separators=(",", ":"), ensure_ascii=False)
            _publish(tmp, os.path.join(out, host + ".json"), 0o640)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return out


def _ours(path):
    """Whether ``path`` is a host page directory of ours (a real directory holding only .html files)."""
    return os.path.isdir(path) and not os.path.islink(path) and all(
        n.endswith(".html") and os.path.isfile(os.path.join(path, n)) for n in os.listdir(path))


class _HostDir:
    """The ``<name>-hosts/`` directory of this run, made beside the old one and swapped in by :meth:`publish`."""

    def __init__(self, directory, name):
        self.directory, self.name = directory, name
        self.final = os.path.join(directory, name + "-hosts")
        self.staging = None

    def write(self, filename, text):
        if self.staging is None:
            self.staging = tempfile.mkdtemp(prefix=".%s-hosts." % self.name, dir=self.directory)
        path = os.path.join(self.staging, filename)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(path, 0o644)

    def publish(self):
        """Swap the new pages in (or remove an old directory when this run has none); the path or None."""
        if self.staging is None:
            if _ours(self.final):
                shutil.rmtree(self.final, ignore_errors=True)
            return None
        if os.path.lexists(self.final) and not _ours(self.final):
            raise OSError("%s exists and is not a directory of report pages; move it away" % self.final)
        os.chmod(self.staging, 0o755)
        old = None
        if os.path.lexists(self.final):
            old = tempfile.mkdtemp(prefix=".%s-hosts.old." % self.name, dir=self.directory)
            os.rename(self.final, os.path.join(old, "pages"))
        os.rename(self.staging, self.final)
        self.staging = None
        if old:
            shutil.rmtree(old, ignore_errors=True)
        return self.final

    def discard(self):
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None


def write_reports(hosts, hostvars, directory, name, formats, title=None, generated_at=None, renderer=None,
                  inline_limit=_report_html.DEFAULT_INLINE_LIMIT):
    """Merge ``hosts`` from ``hostvars`` and write ``formats`` to ``directory``; (report head, paths).

    The head is the report without ``hosts`` (schema_version, generated_at, title, summary).
    ``paths`` maps each format to its file and, when host pages were written, ``html_hosts`` to
    their directory. ReportInputError for bad input, OSError when a file cannot be written (no
    file of this run is left behind then, and the previous files stay).
    """
    names = _report_merge.host_names(hosts, hostvars)
    fleet = _report_merge.Fleet(title, generated_at)
    page_head = {"schema_version": _report_merge.SCHEMA_VERSION, "generated_at": fleet.generated_at,
                 "title": fleet.title}
    os.makedirs(directory, mode=0o755, exist_ok=True)
    scratch, pages, host_dir, unpublished = {}, None, None, []
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    try:
        for fmt in formats:
            if fmt in ("json", "junit"):
                scratch[fmt] = _scratch(directory, name + SUFFIXES[fmt])
        if "html" in formats:
            host_dir = _HostDir(directory, name)
            pages = _report_html.Pages(renderer or _report_html.default_renderer(), name, page_head,
                                       inline_limit, host_dir.write)
        json_out = scratch["json"][0] if "json" in scratch else None
        junit_out = scratch["junit"][0] if "junit" in scratch else None
        for i, host_name in enumerate(names):
            entry = _report_merge.host_entry(host_name, *_report_merge.audit_result(hostvars, host_name))
            fleet.add(entry)
            if json_out is not None:
                if i:
                    json_out.write(",")
                json_out.write(dumps(entry))
            if junit_out is not None and pages is not None:
                _report_text.remember_changes(entry)   # after the JSON: "_change" is not in the schema
            if junit_out is not None:
                text, tally = _report_junit.suite(entry, fleet.generated_at)
                junit_out.write(text)
                _report_junit.add(totals, tally)
            if pages is not None:
                pages.add(entry)
            del entry
        head = fleet.head()
        paths, ready = {}, []
        for fmt in formats:
            path = os.path.join(directory, name + SUFFIXES[fmt])
            handle, tmp = _scratch(directory, name + SUFFIXES[fmt])
            unpublished.append(tmp)
            with handle:
                if fmt == "html":
                    handle.write(pages.index(head))
                else:
                    body, body_path = scratch.pop(fmt)
                    if fmt == "json":
                        text = dumps(head)
                        handle.write(text[:-1] + ',"hosts":[')
                        tail = "]}\n"
                    else:
                        handle.write(_report_junit.header(fleet.title, totals))
                        tail = _report_junit.FOOTER
                    body.flush()
                    body.seek(0)
                    shutil.copyfileobj(body, handle, 1 << 20)
                    handle.write(tail)
                    body.close()
                    os.unlink(body_path)
            ready.append((tmp, path))
            paths[fmt] = path
        # Everything is written: the host pages go in first (the step that can still refuse, when a
        # directory not ours is in the way), then the files, the first page among them.
        if host_dir is not None:
            pages_dir = host_dir.publish()
            if pages_dir:
                paths["html_hosts"] = pages_dir
        for tmp, path in ready:
            _publish(tmp, path)
        order = {fmt: i for i, fmt in enumerate(list(formats) + ["html_hosts"])}
        return head, dict(sorted(paths.items(), key=lambda kv: order[kv[0]]))
    finally:
        for handle, path in scratch.values():
            handle.close()
            if os.path.exists(path):
                os.unlink(path)
        if host_dir is not None:
            host_dir.discard()
        for path in unpublished:
            if os.path.exists(path):
                os.unlink(path)
