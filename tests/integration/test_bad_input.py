"""Bad input fails with a message that names the problem and the fix, and changes NOTHING:
every test domain's definition is unchanged and no backup is written."""

from __future__ import annotations

import os
import uuid

import pytest

from _itlib import Disk, drivers

VICTIM_DISKS = [Disk("vda", "virtio", "none", "native"), Disk("sda", "scsi", "none", "native")]


@pytest.fixture(scope="module")
def victims(domains):
    """Two domains a real run with io: threads would change."""
    return [domains.define(VICTIM_DISKS, suffix="victim"), domains.define(VICTIM_DISKS, suffix="victim")]


@pytest.fixture
def unchanged(lab, victims, backup_dir):
    """Asserts after the test that no test domain changed and no backup was written."""
    before = lab.snapshot()
    assert set(victims) <= set(before)
    yield
    assert lab.snapshot() == before, "a failing task changed a domain definition"
    assert not os.path.exists(backup_dir) or os.listdir(backup_dir) == [], "a failing task wrote a backup"


def assert_clean_failure(res, *needles):
    assert res.failed and res.rc == 1, res.stdout
    assert res.result.get("changed") is not True
    for needle in needles:
        assert needle in res.msg, "%r not in %r" % (needle, res.msg)
    assert "Traceback" not in res.stdout + res.stderr


def test_unknown_domain_among_valid_ones(victims, run, backup_dir, unchanged):
    missing = "vf-it-missing-%s" % uuid.uuid4().hex[:8]
    res = run(domains=[victims[0], missing, victims[1]], io="threads", backup_dir=backup_dir)
    assert_clean_failure(res, "Domain(s) not found", missing, "Fix the 'domains' option")
    assert victims[0] not in res.msg.split("Known domains")[0]


@pytest.mark.parametrize("check", [True, False], ids=["check", "real"])
def test_io_uring_refused_on_too_old_host(tmp_path, victims, run, backup_dir, unchanged, check):
    """libvirt's test driver reports hypervisor TEST 0.0.2: not a QEMU >= 5.0 for io_uring."""
    image = tmp_path / "old.img"
    image.write_bytes(b"")
    node = tmp_path / "node.xml"
    node.write_text(
        "<node><domain type='test'><name>old-host-vm</name><memory>65536</memory>"
        "<os><type>hvm</type></os><devices><disk type='file' device='disk'>"
        "<driver name='qemu' type='raw' cache='none' io='native'/><source file='%s'/>"
        "<target dev='vda' bus='virtio'/></disk></devices></domain></node>" % image)
    node_text = node.read_text()
    res = run(check=check, uri="test://%s" % node, domains=["old-host-vm"], io="io_uring", backup_dir=backup_dir)
    assert_clean_failure(res, "io=io_uring needs libvirt >= 6.3.0 and QEMU >= 5.0.0",
                         "TEST 0.0.2", "use io: threads")
    assert res.result["hypervisor"] == "TEST" and res.result["hypervisor_version"] == "0.0.2"
    assert node.read_text() == node_text


def test_io_uring_accepted_on_this_host(lab, domains, run, backup_dir):
    """The lab host (libvirt 9.0, QEMU 7.2) supports io_uring: defined and started with it."""
    name = domains.define([Disk("vda", "virtio", "none", "native"), Disk("sda", "scsi", None, None)],
                          suffix="uring")
    res = run(domains=[name], io="io_uring", backup_dir=backup_dir)
    assert not res.failed, res.stdout
    assert res.result["host"]["hypervisor"] == "QEMU"
    assert sorted((f["device"]["target"], f["rule"], f["status"]) for f in res.result["findings"]) == [
        ("sda", "io-policy", "fixed"), ("vda", "io-policy", "fixed")]
    assert drivers(lab.inactive_xml(name)) == {"vda": ("none", "io_uring"), "sda": (None, "io_uring")}
    lab.dom(name).create()
    assert drivers(lab.live_xml(name)) == {"vda": ("none", "io_uring"), "sda": (None, "io_uring")}


@pytest.mark.parametrize("options, needles", [
    ({"io": "bogus"}, ["value of io must be one of: keep, threads, native, io_uring", "got: bogus"]),
    ({"cache": "bogus"}, ["value of cache must be one of: keep, ", "none", "writeback", "writethrough",
                          "directsync", "unsafe", "got: bogus"]),
    ({"io": "native", "cache": "writeback"}, ["io=native cannot be combined with cache=writeback",
                                              "Use cache: none, or io: threads"]),
], ids=["io-bogus", "cache-bogus", "native-with-writeback"])
def test_invalid_option_values(victims, run, backup_dir, unchanged, options, needles):
    res = run(domains=victims, backup_dir=backup_dir, **options)
    assert_clean_failure(res, *needles)


def test_daemon_down(victims, run, backup_dir, unchanged):
    socket = "/run/nonexistent/libvirt-sock"
    res = run(uri="qemu:///system?socket=%s" % socket, domains=victims, io="threads", backup_dir=backup_dir)
    assert_clean_failure(res, "Cannot connect to libvirt", socket, "daemon is running", "libvirtd -d")


@pytest.mark.parametrize("kind", ["relative", "below-a-file", "in-proc"])
def test_unusable_backup_dir_fails_before_any_change(tmp_path, victims, run, unchanged, kind):
    if kind == "relative":
        target, needles = "relative/backups", ["backup_dir must be an absolute path", "relative/backups"]
    elif kind == "below-a-file":
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        target = str(blocker / "backups")
        needles = ["Cannot use backup_dir %s" % target, "point backup_dir at a writable absolute directory"]
    else:
        target = "/proc/virtfleet-backups"
        needles = ["Cannot use backup_dir %s" % target, "point backup_dir at a writable absolute directory"]
    res = run(domains=victims, io="threads", backup_dir=target)
    assert_clean_failure(res, "Nothing was changed", *needles)
    assert not res.findings(status="fixed")
    assert all(f.startswith("args-") for f in os.listdir(tmp_path / "work")), "a relative backup_dir was created"
