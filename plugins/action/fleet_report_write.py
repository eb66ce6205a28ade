# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of virtfleet.libvirt.fleet_report_write (documentation: plugins/modules/fleet_report_write.py).

Runs on the controller only: merges every host's audit (plugin_utils/_report_merge.py) and writes
the JSON, JUnit (_report_junit.py) and HTML (_report_html.py, from the template files) itself,
each atomically. The merged report never becomes an Ansible variable (at 1,000 hosts it is
hundreds of MB, and a fact of that size costs seconds of templating and copying per task); the
task returns only the summary and the paths. JSON and JUnit are written as streams, one host at
a time, so no file is ever one string in memory.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.virtfleet.libvirt.plugins.plugin_utils import _report_html, _report_junit, _report_merge

FORMATS = {"json": ".json", "junit": ".xml", "html": ".html"}


def _write(path, writer):
    """Write ``path`` atomically: ``writer(handle)`` fills a temporary file in the same directory, then rename."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if isinstance(writer, str):
                handle.write(writer)
            else:
                writer(handle)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _ours(path):
    """Whether ``path`` is a host page directory this action wrote (only .html files in it)."""
    return os.path.isdir(path) and not os.path.islink(path) and all(
        n.endswith(".html") and os.path.isfile(os.path.join(path, n)) for n in os.listdir(path))


def _write_html(renderer, report, directory, name, limit):
    """The HTML pages: ``<name>.html``, and ``<name>-hosts/`` for a fleet over ``limit`` rows.

    The host pages are written into a new directory that then replaces the old one, so a reader
    never sees a mix of two runs and hosts gone from the fleet leave no stale page. A host page
    directory of an earlier run is removed when this run fits on one page.
    """
    final = os.path.join(directory, name + "-hosts")
    staging = []

    def write(path, text):
        if os.path.dirname(path) == final:
            if not staging:
                staging.append(tempfile.mkdtemp(prefix=".%s-hosts." % name, dir=directory))
            path = os.path.join(staging[0], os.path.basename(path))
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(path, 0o644)
        else:
            _write(path, text)

    try:
        # Host pages first, the first page last: it links them, and it replaces the previous one.
        index, host_dir = renderer.write(report, directory, name, inline_limit=limit, write=write)
        if staging:
            os.chmod(staging[0], 0o755)
            old = None
            if os.path.lexists(final):
                if not _ours(final):
                    raise OSError("%s exists and is not a directory of report pages; move it away" % final)
                old = tempfile.mkdtemp(prefix=".%s-hosts.old." % name, dir=directory)
                os.rename(final, os.path.join(old, "pages"))
            os.rename(staging.pop(), final)
            if old:
                shutil.rmtree(old, ignore_errors=True)
        elif host_dir is None and _ours(final):
            shutil.rmtree(final, ignore_errors=True)
    finally:
        for path in staging:
            shutil.rmtree(path, ignore_errors=True)
    return index, host_dir


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("hosts", "dir", "name", "formats", "title", "html_template_dir", "html_inline_limit"))

    ARGSPEC = dict(
        hosts=dict(type="list", elements="str", required=True),
        dir=dict(type="path", required=True),
        name=dict(type="str", default="compliance"),
        formats=dict(type="list", elements="str", default=list(FORMATS), choices=list(FORMATS)),
        title=dict(type="str"),
        html_template_dir=dict(type="path"),
        html_inline_limit=dict(type="int", default=_report_html.DEFAULT_INLINE_LIMIT),
    )

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        title = self._task.args.get("title")
        if title is not None and not isinstance(title, str):   # type=str would turn a list into its repr
            raise AnsibleActionFail("title must be a text (report_title of the report role), got %s: %r"
                                    % (type(title).__name__, title))
        _validation, args = self.validate_argument_spec(argument_spec=self.ARGSPEC)
        hosts = args.get("hosts")
        directory, name = args.get("dir"), args.get("name")
        name = "compliance" if name is None else name
        formats = list(dict.fromkeys(args.get("formats") or list(FORMATS)))
        unknown = [f for f in formats if f not in FORMATS]
        if unknown:
            raise AnsibleActionFail("formats: %s not one of %s" % (", ".join(map(str, unknown)), ", ".join(FORMATS)))
        if not directory or not os.path.isabs(str(directory)):
            raise AnsibleActionFail("dir must be an absolute path on the controller, got %r" % (directory,))
        if not str(name) or "/" in str(name) or str(name) in (".", ".."):
            raise AnsibleActionFail("name must be a file name stem without '/' (report_name of the report role), "
                                    "got %r" % (name,))
        limit = args.get("html_inline_limit")
        if limit is not None and limit < 0:
            raise AnsibleActionFail("html_inline_limit must be 0 or more (report_html_inline_limit), got %r" % limit)
        renderer = None
        if "html" in formats:
            try:   # before anything is written: a wrong template directory or template fails early
                renderer = _report_html.Renderer(args.get("html_template_dir") or None)
            except Exception as exc:  # a template syntax error, a missing file
                raise AnsibleActionFail("report_html_template_dir: %s" % exc) from None
        try:
            report = _report_merge.build_report(hosts, task_vars["hostvars"], title=args.get("title"))
        except _report_merge.ReportInputError as exc:
            raise AnsibleActionFail(str(exc)) from None
        directory = os.path.realpath(str(directory))
        paths, host_dir = {}, None
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            for fmt in formats:
                path = os.path.join(directory, str(name) + FORMATS[fmt])
                if fmt == "json":
                    # Compact (json's C encoder, one host at a time): `jq .` reads it.
                    _write(path, lambda handle: _report_merge.write_json(report, handle))
                elif fmt == "junit":
                    _write(path, lambda handle: _report_junit.write_junit(report, handle))
                else:
                    path, host_dir = _write_html(renderer, report, directory, str(name), limit)
                paths[fmt] = path
            if "html" in formats and host_dir:
                paths["html_hosts"] = host_dir
        except OSError as exc:
            raise AnsibleActionFail("Cannot write the report to %s: %s. Point report_dir at a directory the "
                                    "controller user may write." % (directory, exc))
        # Reports are artifacts on the controller, written under --check too: never a change to the fleet.
        result.update(changed=False, title=report["title"], generated_at=report["generated_at"],
                      summary=report["summary"], paths=paths)
        return result
