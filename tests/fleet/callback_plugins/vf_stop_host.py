"""Test-only callback: make a host unreachable in the middle of a playbook run.

Enabled by tests/fleet (ANSIBLE_CALLBACKS_ENABLED=vf_stop_host, ANSIBLE_CALLBACK_PLUGINS). When
the task named by VF_STOP_AFTER_TASK has finished on the host VF_STOP_HOST, it runs the shell
command VF_STOP_COMMAND (``scripts/fleet.sh stop-host N``) once, before Ansible starts the next
task, and appends a line to VF_STOP_LOG so the test can check that it happened when it should.
"""

from __future__ import annotations

import os
import subprocess
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: vf_stop_host
type: aggregate
short_description: Test only - stop a fleet host after a named task
description:
  - Runs E(VF_STOP_COMMAND) once when the task E(VF_STOP_AFTER_TASK) has a result for E(VF_STOP_HOST).
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "vf_stop_host"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._host = os.environ.get("VF_STOP_HOST")
        self._task = os.environ.get("VF_STOP_AFTER_TASK")
        self._command = os.environ.get("VF_STOP_COMMAND")
        self._log = os.environ.get("VF_STOP_LOG")
        self._done = False

    def _maybe_stop(self, result):
        if self._done or not (self._host and self._task and self._command):
            return
        if result._host.get_name() != self._host or not result._task.get_name().endswith(self._task):
            return
        self._done = True
        proc = subprocess.run(self._command, shell=True, capture_output=True, text=True, check=False)
        if self._log:
            with open(self._log, "a", encoding="utf-8") as handle:
                handle.write("%.3f stopped %s after %r: rc=%d %s%s\n" % (
                    time.time(), self._host, result._task.get_name(), proc.returncode, proc.stdout, proc.stderr))

    def v2_runner_on_ok(self, result):
        self._maybe_stop(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._maybe_stop(result)
