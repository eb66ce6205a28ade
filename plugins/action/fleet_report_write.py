# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of virtfleet.libvirt.fleet_report_write (documentation: plugins/modules/fleet_report_write.py).

Runs on the controller only: merges every host's ``virtfleet_audit_result`` with the
``fleet_report`` filter's code and writes the JSON, JUnit and HTML files itself, atomically. The
merged report never becomes an Ansible variable (at 1,000 domains it is several MB, and a fact of
that size costs seconds of templating and copying per task); the task returns only the summary
and the paths.
"""

from __future__ import annotations

import json
import os
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.virtfleet.libvirt.plugins.filter.fleet_report import build_report, html_text, junit_text

FORMATS = {"json": ".json", "junit": ".xml", "html": ".html"}


def _write(path, text):
    """Write ``text`` to ``path`` atomically (a temporary file in the same directory, then rename)."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("hosts", "dir", "name", "formats", "title"))

    ARGSPEC = dict(
        hosts=dict(type="list", elements="str", required=True),
        dir=dict(type="path", required=True),
        name=dict(type="str", default="compliance"),
        formats=dict(type="list", elements="str", default=list(FORMATS), choices=list(FORMATS)),
        title=dict(type="str"),
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
        report = build_report(hosts, task_vars["hostvars"], title=args.get("title"))
        directory = os.path.realpath(str(directory))
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            paths = {}
            for fmt in formats:
                path = os.path.join(directory, str(name) + FORMATS[fmt])
                if fmt == "json":
                    # Compact (json's C encoder; indent would take the slow pure-Python path): `jq .` reads it.
                    text = json.dumps(report, separators=(",", ":"), ensure_ascii=False) + "\n"
                elif fmt == "junit":
                    text = junit_text(report)
                else:
                    text = html_text(report)
                _write(path, text)
                paths[fmt] = path
        except OSError as exc:
            raise AnsibleActionFail("Cannot write the report to %s: %s. Point report_dir at a directory the "
                                    "controller user may write." % (directory, exc))
        # Reports are artifacts on the controller, written under --check too: never a change to the fleet.
        result.update(changed=False, title=report["title"], generated_at=report["generated_at"],
                      summary=report["summary"], paths=paths)
        return result
