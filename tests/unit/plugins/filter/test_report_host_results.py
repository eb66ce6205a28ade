"""_report_files.write_host_results: what a slice keeps for playbooks/merge_reports.yml."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.virtfleet.libvirt.plugins.plugin_utils import _report_files, _report_merge


def test_each_host_kept_with_its_status_and_result(tmp_path):
    status = {"host": "hv1", "status": "ok", "checks": {"aliases": {"changed": False}}}
    result = {"findings": [{"domain": "db", "message": "<x> & \u00e9"}], "domains": [], "summary": {}}
    hostvars = {"hv1": {"virtfleet_audit_status": status, "virtfleet_audit_result": result}, "hv2": {}}
    out = _report_files.write_host_results(["hv1", "hv2"], hostvars, str(tmp_path))
    assert out == str(tmp_path / "hosts")
    assert sorted(os.listdir(out)) == ["hv1.json", "hv2.json"]     # no temporary file left
    assert json.loads((tmp_path / "hosts" / "hv1.json").read_text("utf-8")) == {"status": status, "result": result}
    assert json.loads((tmp_path / "hosts" / "hv2.json").read_text("utf-8")) == {
        "status": {"host": "hv2", "status": "unreachable", "error": _report_files.UNREACHABLE_STATUS, "checks": {}},
        "result": {}}
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(os.path.join(out, "hv1.json")).st_mode) == 0o640


def test_a_host_name_that_is_no_file_name_is_refused(tmp_path):
    with pytest.raises(_report_merge.ReportInputError, match="cannot be a file name"):
        _report_files.write_host_results(["../evil"], {"../evil": {}}, str(tmp_path))
    assert not os.listdir(tmp_path / "hosts")
