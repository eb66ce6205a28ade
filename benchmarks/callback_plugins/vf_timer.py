"""Benchmark-only callback: when each task starts, for benchmarks/audit_playbook.py.

Enabled by the benchmark (ANSIBLE_CALLBACKS_ENABLED=vf_timer, ANSIBLE_CALLBACK_PLUGINS). Writes
to E(VF_TIMER_OUT) a JSON list of [event, name, unix time]: the playbook start, every task start
and the end (stats). A task's duration is the next event's time minus its own; the time before
the playbook start (E(VF_TIMER_T0), set by the benchmark when it starts ansible-playbook) is
Python + Ansible start-up, inventory and playbook parsing.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: vf_timer
type: aggregate
short_description: Benchmark only - timestamps of every task start
description:
  - Writes [event, name, time] of the playbook start, every task start and the end to E(VF_TIMER_OUT).
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "vf_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._out = os.environ.get("VF_TIMER_OUT")
        self._events = [["t0", "launch", float(os.environ.get("VF_TIMER_T0") or time.time())]]

    def v2_playbook_on_start(self, playbook):
        self._events.append(["start", "playbook", time.time()])

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._events.append(["task", task.get_name(), time.time()])

    def v2_playbook_on_stats(self, stats):
        self._events.append(["end", "stats", time.time()])
        if self._out:
            with open(self._out, "w", encoding="utf-8") as handle:
                json.dump(self._events, handle)
