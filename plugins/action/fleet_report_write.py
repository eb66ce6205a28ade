# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of virtfleet.libvirt.fleet_report_write (documentation: plugins/modules/fleet_report_write.py).

Runs on the controller only: checks its arguments, then plugin_utils/_report_files.py merges every
host's audit and writes the JSON, JUnit and HTML files, one host at a time, each atomically. The
merged report never becomes an Ansible variable, nor is it ever whole in memory (at 1,000 hosts
x 300 findings it would be hundreds of MB); the task returns only the summary and the paths.
"""

from __future__ import annotations

import os

from jinja2 import TemplateError

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.virtfleet.libvirt.plugins.plugin_utils import _report_files, _report_html, _report_merge

FORMATS = _report_files.SUFFIXES
STATS_KEYS = ("passed", "reasons", "hosts", "unreachable_hosts", "failed_hosts", "domains", "findings", "pending_restart")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("hosts", "dir", "name", "formats", "title", "html_template_dir", "html_inline_limit",
                             "host_results", "stats"))

    ARGSPEC = dict(
        hosts=dict(type="list", elements="str", required=True),
        dir=dict(type="path", required=True),
        name=dict(type="str", default="compliance"),
        formats=dict(type="list", elements="str", default=list(FORMATS), choices=list(FORMATS)),
        title=dict(type="str"),
        html_template_dir=dict(type="path"),
        html_inline_limit=dict(type="int", default=_report_html.DEFAULT_INLINE_LIMIT),
        host_results=dict(type="bool", default=False),
        stats=dict(type="bool", default=False),
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
            except (_report_html.TemplateDirError, TemplateError, OSError) as exc:  # syntax error, missing file
                raise AnsibleActionFail("report_html_template_dir: %s" % exc) from None
        directory = os.path.realpath(str(directory))
        if args.get("host_results"):
            try:
                _report_files.write_host_results(hosts, task_vars["hostvars"], directory)
            except _report_merge.ReportInputError as exc:
                raise AnsibleActionFail(str(exc)) from None
            except OSError as exc:
                raise AnsibleActionFail("Cannot keep the hosts' results in %s/hosts: %s. Point virtfleet_partial_dir "
                                        "at a directory the controller user may write." % (directory, exc))
        try:
            head, paths = _report_files.write_reports(hosts, task_vars["hostvars"], directory, str(name), formats,
                                                      title=args.get("title"), renderer=renderer, inline_limit=limit)
        except _report_merge.ReportInputError as exc:
            raise AnsibleActionFail(str(exc)) from None
        except TemplateError as exc:   # a user's template that compiles but fails on this report
            raise AnsibleActionFail("report_html_template_dir: a template failed: %s: %s" % (type(exc).__name__, exc))
        except OSError as exc:
            raise AnsibleActionFail("Cannot write the report to %s: %s. Point report_dir at a directory the "
                                    "controller user may write." % (directory, exc))
        # Reports are artifacts on the controller, written under --check too: never a change to the fleet.
        result.update(changed=False, title=head["title"], generated_at=head["generated_at"],
                      summary=head["summary"], paths=paths)
        if args.get("stats"):
            # What set_stats would hand to AWX/AAP (aggregate, not per host): the strategy reads it from any result.
            summary = head["summary"]
            result["ansible_stats"] = {"data": {"virtfleet_report": dict(
                {k: summary[k] for k in STATS_KEYS}, title=head["title"], generated_at=head["generated_at"],
                files=paths)}, "per_host": False, "aggregate": True}
        return result
