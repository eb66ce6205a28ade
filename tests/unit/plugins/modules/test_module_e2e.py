"""virt_disk_io_policy end to end on libvirt's test driver, run as Ansible runs it (subprocess).

``test:///<file>`` gives every open() a fresh copy of the node file, so each module run sees
the same starting state and nothing outlives the process.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.virtfleet.libvirt.tests.unit._support import run_module as run_module_in
from ansible_collections.virtfleet.libvirt.tests.unit._support import write_node

libvirt = pytest.importorskip("libvirt")

MODULE = "virt_disk_io_policy"

NODE = """<node>
  <domain type='test'>
    <name>web01</name>
    <uuid>5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11</uuid>
    <memory>131072</memory>
    <os><type>hvm</type></os>
    <devices>
      <disk type='file' device='disk'>
        <driver name='qemu' type='raw' cache='writeback' io='native'/>
        <source file='/var/lib/libvirt/images/web01-root.img'/>
        <target dev='vda' bus='virtio'/>
        <alias name='ua-disk-root'/>
      </disk>
      <disk type='file' device='disk'>
        <source file='/var/lib/libvirt/images/web01-data.img'/>
        <target dev='vdb' bus='virtio'/>
      </disk>
      <disk type='file' device='cdrom'>
        <driver name='qemu' type='raw' cache='writeback' io='native'/>
        <source file='/var/lib/libvirt/images/install.iso'/>
        <target dev='hdc' bus='ide'/>
        <readonly/>
      </disk>
      <interface type='network'>
        <mac address='52:54:00:6b:3c:58'/>
        <source network='default'/>
        <alias name='ua-net0'/>
      </interface>
      <graphics type='vnc' port='-1' autoport='yes' passwd='Vnc-s3cr3t'/>
    </devices>
  </domain>
  <domain type='test'>
    <name>db01</name>
    <uuid>0b6f1c2e-3a4d-4e5f-8a9b-1c2d3e4f5a6b</uuid>
    <memory>131072</memory>
    <os><type>hvm</type></os>
    <devices>
      <disk type='file' device='disk'>
        <driver name='qemu' type='raw' cache='none' io='native'/>
        <source file='/var/lib/libvirt/images/db01.img'/>
        <target dev='vda' bus='virtio'/>
      </disk>
      <disk type='file' device='disk'>
        <driver name='qemu' type='raw' cache='unsafe' io='native'/>
        <source file='/var/lib/libvirt/images/db01-scratch.img'/>
        <target dev='vdb' bus='virtio'/>
      </disk>
    </devices>
  </domain>
  <domain type='test'>
    <name>ok01</name>
    <uuid>7e0b9a54-1111-4c3a-9d2e-5f6a7b8c9d0e</uuid>
    <memory>131072</memory>
    <os><type>hvm</type></os>
    <devices>
      <disk type='file' device='disk'>
        <driver name='qemu' type='raw' cache='directsync' io='native'/>
        <source file='/var/lib/libvirt/images/ok01.img'/>
        <target dev='vda' bus='virtio'/>
      </disk>
    </devices>
  </domain>
</node>
"""


@pytest.fixture(scope="module")
def node_uri(tmp_path_factory):
    return write_node(tmp_path_factory, NODE)


@pytest.fixture
def run_module(tmp_path):
    def run(check_mode=False, diff=False, **params):
        return run_module_in(MODULE, tmp_path, check_mode=check_mode, diff=diff, **params)
    return run


def _lib_version():
    v = libvirt.getVersion()
    return "%d.%d.%d" % (v // 1000000, (v // 1000) % 1000, v % 1000)


def test_check_mode_reports_every_finding(run_module, node_uri, tmp_path):
    backup_dir = str(tmp_path / "bk")
    result = run_module(check_mode=True, diff=True, uri=node_uri, backup_dir=backup_dir)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True
    got = [(f["domain"], f["device"]["target"], f["rule"], f["status"], f["pending_restart"])
           for f in result["findings"]]
    # domains sorted by name; every offending disk of every domain, the cdrom included (libvirt
    # refuses to start a domain with io=native on a cached cdrom as well)
    assert got == [
        ("db01", "vdb", "io-native-needs-direct-cache", "drift", True),
        ("web01", "vda", "io-native-needs-direct-cache", "drift", True),
        ("web01", "hdc", "io-native-needs-direct-cache", "drift", True),
    ]
    web = result["findings"][1]
    assert web["device"]["alias"] == "ua-disk-root"
    assert web["current"] == {"cache": "writeback", "io": "native", "cache_set": True, "io_set": True}
    assert web["desired"]["io"] == "threads" and web["desired"]["cache"] == "writeback"
    assert result["summary"]["domains_selected"] == 3 and result["summary"]["domains_changed"] == 2
    assert result["summary"]["by_status"]["drift"] == 3
    assert result["host"] == {"uri": node_uri, "libvirt_version": _lib_version(), "hypervisor": "TEST",
                              "hypervisor_version": "0.0.2"}
    # diff: before/after per changed domain, secrets redacted
    assert [d["before_header"].split()[0] for d in result["diff"]] == ["db01", "web01"]
    dump = json.dumps(result)
    assert "Vnc-s3cr3t" not in dump
    assert 'passwd="********"' in result["diff"][1]["before"]
    assert not os.path.exists(backup_dir)


def test_check_mode_requests_and_selection(run_module, node_uri):
    result = run_module(check_mode=True, uri=node_uri, cache="none", io="native", domains=["web01", "ok01"],
                        exclude=["ok*"])
    assert not result.get("failed"), result.get("msg")
    assert [d["name"] for d in result["domains"]] == ["web01"]
    got = [(f["device"]["target"], f["rule"], f["desired"]["cache"], f["desired"]["io"]) for f in result["findings"]]
    # requests apply to disk/lun only; the cdrom gets only the always-enforced native rule
    assert got == [("vda", "cache-policy", "none", "native"),
                   ("vdb", "cache-policy", "none", "native"),
                   ("vdb", "io-policy", "none", "native"),
                   ("hdc", "io-native-needs-direct-cache", "writeback", "threads")]


def test_real_run_fixes_definition_with_backup(run_module, node_uri, tmp_path):
    backup_dir = str(tmp_path / "bk")
    result = run_module(uri=node_uri, domains=["web01"], backup_dir=backup_dir)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True
    assert [(f["device"]["target"], f["status"], f["pending_restart"]) for f in result["findings"]] == [
        ("vda", "fixed", True), ("hdc", "fixed", True)]   # test driver domains run: live XML keeps io=native
    (dom,) = result["domains"]
    assert [(d["target"], d["cache"], d["io"]) for d in dom["disks"]] == [
        ("vda", "writeback", "threads"), ("vdb", "writeback", "threads"), ("hdc", "writeback", "threads")]
    # The effective blockdev flags per disk are in the per-disk report (findings carry cache/io only).
    assert [(d["writeback"], d["direct"], d["no_flush"]) for d in dom["disks"]] == [(True, False, False)] * 3
    assert stat.S_IMODE(os.stat(backup_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(dom["backup"]).st_mode) == 0o600
    with open(dom["backup"], encoding="utf-8") as fh:
        saved = fh.read()
    assert "io='native'" in saved and "passwd='Vnc-s3cr3t'" in saved   # SECURE XML, so 0600 matters


def test_unknown_domain_fails_naming_it(run_module, node_uri):
    result = run_module(check_mode=True, uri=node_uri, domains=["web01", "nosuch-vm"])
    assert result["failed"] is True and result["changed"] is False
    assert "nosuch-vm" in result["msg"]
    assert "Known domains: db01, ok01, web01" in result["msg"]
    assert result["missing"] == ["nosuch-vm"]


@pytest.mark.parametrize("parallel", [0, 33, -1])
def test_parallel_out_of_range_fails_before_connecting(run_module, parallel):
    result = run_module(uri="qemu:///nonexistent-never-connected", parallel=parallel, backup_dir="/nonexistent/bk")
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"] == ("parallel=%d: give 1 to 32 (domains changed at once; 1 = one by one)." % parallel)


def test_parallel_real_run_gives_the_sequential_result(run_module, node_uri, tmp_path):
    one = run_module(uri=node_uri, parallel=1, backup_dir=str(tmp_path / "a"))
    many = run_module(uri=node_uri, parallel=8, backup_dir=str(tmp_path / "b"))
    assert not one.get("failed") and not many.get("failed"), (one.get("msg"), many.get("msg"))
    assert [(d["name"], d["status"]) for d in many["domains"]] == [(d["name"], d["status"]) for d in one["domains"]]
    assert many["findings"] == one["findings"]


def test_io_uring_refused_on_test_driver_naming_versions(run_module, node_uri):
    result = run_module(check_mode=True, uri=node_uri, io="io_uring")
    assert result["failed"] is True and result["changed"] is False
    assert "libvirt %s and TEST 0.0.2" % _lib_version() in result["msg"]
    assert "libvirt >= 6.3.0 and QEMU >= 5.0.0" in result["msg"]
    assert result["hypervisor"] == "TEST" and result["hypervisor_version"] == "0.0.2"


def test_unreachable_daemon_says_how_to_start_it(run_module):
    result = run_module(check_mode=True, uri="qemu:///system?socket=/nonexistent/sock")
    assert result["failed"] is True
    msg = result["msg"]
    assert "Cannot connect to libvirt at 'qemu:///system?socket=/nonexistent/sock'" in msg
    assert "systemctl start libvirtd" in msg and "libvirtd -d" in msg
    assert result["uri"] == "qemu:///system?socket=/nonexistent/sock"


@pytest.mark.parametrize("params,fragment", [
    (dict(io="aio"), "value of io must be one of: keep, threads, native, io_uring, got: aio"),
    (dict(cache="default"), "value of cache must be one of: keep, "),
    (dict(cache="default"), "got: default"),
    (dict(io="native", cache="writeback"), "io=native cannot be combined with cache=writeback"),
    (dict(bogus=1), "Unsupported parameters"),
])
def test_bad_values_fail(run_module, node_uri, params, fragment):
    result = run_module(check_mode=True, uri=node_uri, **params)
    assert result["failed"] is True
    assert fragment in result["msg"]


def test_relative_backup_dir_fails_before_changing_anything(run_module, node_uri):
    result = run_module(uri=node_uri, backup_dir="relative/bk")
    assert result["failed"] is True
    assert "backup_dir must be an absolute path" in result["msg"]


def test_a_password_in_the_uri_never_appears_in_the_output(run_module, tmp_path):
    # The connection fails (nothing listens on port 1); the message names the URI, never its password.
    result = run_module(uri="qemu+tcp://root:Uri-s3cr3t@127.0.0.1:1/system", backup_dir=str(tmp_path / "bk"))
    assert result["failed"] is True and "Cannot connect to libvirt" in result["msg"]
    assert "Uri-s3cr3t" not in json.dumps(result)
    assert "root:" in result["msg"] and "127.0.0.1:1/system" in result["msg"]
