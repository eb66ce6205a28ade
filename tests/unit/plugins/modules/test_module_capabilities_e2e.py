"""virt_capabilities and the readiness rules of virt_policy end to end, run as Ansible runs them.

On libvirt's test driver (no daemon): it has capabilities but no domain capabilities and no
QEMU, which is also what a host without a usable emulator looks like. The readiness target is a
real snapshot of the Debian 13 generation host (tests/unit/plugins/module_utils/data/snapshots).
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.virtfleet.libvirt.tests.unit._support import run_module, write_node

libvirt = pytest.importorskip("libvirt")

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils", "data", "snapshots")

NODE = """<node>
  <domain type='test'>
    <name>old01</name>
    <uuid>6e1f4c2a-0d6b-4b8e-9f1a-2c3d4e5f6a7b</uuid>
    <memory>131072</memory>
    <os><type arch='x86_64' machine='pc-i440fx-2.0'>hvm</type></os>
    <devices>
      <graphics type='spice' autoport='yes'/>
    </devices>
  </domain>
</node>
"""


def trixie():
    with open(os.path.join(DATA, "trixie.json"), encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture(name="uri")
def _uri(tmp_path_factory):
    return write_node(tmp_path_factory, NODE)


def test_the_snapshot_is_returned_and_written_atomically(uri, tmp_path):
    dest = tmp_path / "out" / "snap.json"
    dest.parent.mkdir()
    result = run_module("virt_capabilities", tmp_path, uri=uri, dest=str(dest))
    assert result["changed"] is False and result["dest"] == str(dest)
    snap = result["snapshot"]
    assert snap["virtfleet_snapshot"] == 1 and snap["versions"]["libvirt"].count(".") == 2
    assert snap["versions"]["hypervisor"] == "TEST" and "qemu" not in snap["versions"]
    assert {g["arch"] for g in snap["guests"]} >= {"i686"}
    assert snap["domain_capabilities"] == []   # the test driver has none: nothing is made up
    assert json.loads(dest.read_text()) == snap
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o644
    assert [p.name for p in dest.parent.iterdir()] == ["snap.json"]   # no temp file left


def test_a_missing_directory_fails_naming_it_and_writes_nothing(uri, tmp_path):
    dest = tmp_path / "nowhere" / "snap.json"
    result = run_module("virt_capabilities", tmp_path, uri=uri, dest=str(dest))
    assert result["failed"] and "does not exist" in result["msg"] and str(dest.parent) in result["msg"]
    assert not dest.parent.exists()


def test_readiness_against_a_snapshot_blocks_and_changes_nothing(uri, tmp_path):
    for check_mode in (True, False):
        result = run_module("virt_policy", tmp_path, check_mode=check_mode, uri=uri,
                            rules={"upgrade_readiness": {"target": trixie()}, "machine_type": {"target": trixie()}})
        assert not result.get("failed"), result
        assert result["changed"] is False and result["summary"]["domains_changed"] == 0
        old = result["domains"][0]
        assert old["status"] == "blocked"
        readiness = old["readiness"]
        assert readiness["starts"] is False and readiness["target"].startswith("trixie libvirt 11.3.0")
        # a test-driver domain, a machine type QEMU 10.0 dropped, SPICE without the spice modules
        assert sorted(r["code"] for r in readiness["reasons"]) == [
            "device_model_not_offered", "machine_type_not_offered", "virt_type_not_offered"]
        assert {f["status"] for f in result["findings"]} == {"blocked"}
        assert result["rules"] == ["upgrade_readiness", "machine_type"]


def test_readiness_against_the_host_itself_reads_it_live(uri, tmp_path):
    result = run_module("virt_policy", tmp_path, check_mode=True, uri=uri, rules={"upgrade_readiness": {}})
    readiness = result["domains"][0]["readiness"]
    # the test driver's own capabilities: an i686 'test' guest only, so an x86_64 domain is named as such
    host = result["host"]
    assert readiness["target"].endswith("libvirt %s TEST %s" % (host["libvirt_version"], host["hypervisor_version"]))
    assert [r["code"] for r in readiness["reasons"]] == ["arch_not_offered"]
    assert "x86_64" in readiness["reasons"][0]["message"] and "i686" in readiness["reasons"][0]["message"]


def test_a_bad_target_fails_before_connecting(tmp_path):
    result = run_module("virt_policy", tmp_path, check_mode=True, uri="qemu:///nonexistent-socket-virtfleet",
                        rules={"upgrade_readiness": {"target": {"something": 1}}})
    assert result["failed"] and "not a virtfleet capability snapshot" in result["msg"]
    assert "Cannot connect" not in result["msg"]
