"""virtfleet.libvirt.as_list: list options typed as text (AWX survey answers) become lists."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.virtfleet.libvirt.plugins.filter.as_list import as_list


@pytest.mark.parametrize("value, expected", [
    ("db-01, web-01", ["db-01", "web-01"]),     # what failed before: ["db-01", " web-01"]
    ("db-01,web-01", ["db-01", "web-01"]),
    ("db-01 web-01", ["db-01", "web-01"]),
    (" db-01 ,\tweb-01\n", ["db-01", "web-01"]),
    ("scratch-*, tmp-?", ["scratch-*", "tmp-?"]),
    ("", []), (" , ", []), (None, []),
    (["db-01", " web-01 ", ""], ["db-01", "web-01"]),
    (("a",), ["a"]),
    (["a name with spaces"], ["a name with spaces"]),  # a list keeps its items whole
    (7, ["7"]),
])
def test_as_list(value, expected):
    assert as_list(value) == expected


@pytest.mark.parametrize("value", [{"a": 1}, True])
def test_as_list_rejects_what_is_no_list(value):
    with pytest.raises(AnsibleFilterError):
        as_list(value)
