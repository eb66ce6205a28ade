"""virt_policy's findings_format json: the findings as one JSON text, masked as the list would be."""

from __future__ import annotations

import copy
import json

from ansible.module_utils.common.parameters import remove_values

from ansible_collections.virtfleet.libvirt.plugins.module_utils._module import encode_findings

FINDINGS = [
    {"check": "disk_io", "rule": "cache-policy", "status": "drift", "pending_restart": False,
     "domain": "web01", "device": {"kind": "disk", "path": "/domain/devices/disk[1]", "target": "vda"},
     "current": {"cache": "writeback", "io": "threads", "cache_set": False, "io_set": True},
     "desired": {"cache": "none", "io": "threads", "cache_set": True, "io_set": True},
     "message": "vda: cache default (writeback) -> none as requested"},
    {"check": "aliases", "rule": "alias-missing", "status": "drift", "pending_restart": True,
     "domain": "web01", "device": {"kind": "interface", "path": "/domain/devices/interface[1]", "mac": "52:54:00:6b:3c:58"},
     "current": {"alias": None}, "desired": {"alias": "ua-net-Pa55-wörd", "basis": "mac"},
     "message": "interface 52:54:00:6b:3c:58 has no user alias; ua-net-Pa55-wörd \"quoted\" \\ ☃"},
]


def result():
    return {"changed": True, "findings": copy.deepcopy(FINDINGS), "domains": [{"name": "web01"}]}


def test_the_text_holds_the_same_findings_and_nothing_else_changes():
    out = result()
    assert encode_findings(out, set()) == "json"
    assert "findings" not in out and out["domains"] == [{"name": "web01"}] and out["changed"] is True
    assert json.loads(out["findings_json"]) == FINDINGS
    assert "ö" in out["findings_json"] and "\n" not in out["findings_json"]  # text as it is, compact


def test_a_no_log_value_is_masked_as_exit_json_masks_the_list():
    out = result()
    assert encode_findings(out, {"Pa55"}) == "json"
    assert "Pa55" not in out["findings_json"]
    assert json.loads(out["findings_json"]) == remove_values(FINDINGS, {"Pa55"})
    # exit_json's own masking of the text then finds nothing to change
    assert remove_values(out["findings_json"], {"Pa55"}) == out["findings_json"]


def test_a_no_log_value_that_is_a_key_keeps_the_findings_a_list():
    # exit_json would mask "check" inside the text's keys and break the document; a list keeps its keys
    for secret in ("check", "cache_set", '"'):
        out = result()
        assert encode_findings(out, {secret}) == "list", secret
        assert "findings_json" not in out
        assert out["findings"] == remove_values(FINDINGS, {secret})
        assert [sorted(f) for f in out["findings"]] == [sorted(f) for f in FINDINGS]


def test_a_value_json_would_escape_is_masked_before_it_is_encoded():
    # in the text 'a"b' would read 'a\\"b', which exit_json's masking (it looks for 'a"b') would miss
    out = {"findings": [dict(FINDINGS[0], message='password a"b leaked')]}
    assert encode_findings(out, {'a"b'}) == "json"
    assert 'a\\"b' not in out["findings_json"]
    assert json.loads(out["findings_json"])[0]["message"] == "password ******** leaked"


def test_text_that_json_escapes_into_a_no_log_value_keeps_the_list():
    # a newline in a message is '\\n' in the text: a no_log value '\\n' would be cut out of it there
    out = {"findings": [dict(FINDINGS[0], message="two\nlines")]}
    assert encode_findings(out, {"\\n"}) == "list"
    assert out["findings"][0]["message"] == "two\nlines"
