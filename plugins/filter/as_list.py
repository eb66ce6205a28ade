# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""as_list: a list option given as text the way people type lists ("db-01, web-01") becomes a list."""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

# AWX hands a survey text answer to the playbook as one string, and Ansible's own list conversion
# (check_type_list) splits a string at commas only: "db-01, web-01" became ["db-01", " web-01"] and the
# domain " web-01" was then missing. Commas and any whitespace separate items here.
_SEPARATORS = re.compile(r"[,\s]+")


def as_list(value):
    """A list stays a list (items as text, empty ones dropped); text is split at commas and whitespace."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items = [to_text(item).strip() for item in value]
        return [item for item in items if item]
    if isinstance(value, (str, bytes)):
        return [item for item in _SEPARATORS.split(to_text(value).strip()) if item]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [to_text(value)]
    raise AnsibleFilterError("as_list expects a list or a text of comma- or space-separated items, got %s"
                             % type(value).__name__)


class FilterModule:
    def filters(self):
        return {"as_list": as_list}
