"""The suite runs against the target it names (VIRTFLEET_TARGET, tests/_target.py): the daemon the
test talks to, the daemon the modules talk to and the Python that runs the modules are that
generation's. On the lab, the libvirt and QEMU are exactly the Debian 12 generation's packages,
which is why the lab stands for libvirt 9.0 / QEMU 7.2 (docs/generations.md)."""

from __future__ import annotations

import os

import pytest

from _itlib import TARGET, run_module
from _target import GEN_STATE

# The packages that decide what libvirt and QEMU do, and the host Python's libraries.
DEBIAN_PACKAGES = ("libvirt0", "libvirt-daemon", "libvirt-daemon-driver-qemu", "qemu-system-x86", "python3",
                   "python3-libvirt", "python3-lxml")


def _major_minor(number):
    """libvirt's packed version (major * 1,000,000 + minor * 1,000 + micro) -> (major, minor)."""
    return number // 1000000, number // 1000 % 1000


def test_the_tests_connection_reaches_the_targets_daemon(lab):
    assert _major_minor(lab.conn.getLibVersion()) == TARGET.expected["libvirt"]
    assert _major_minor(lab.conn.getVersion()) == TARGET.expected["qemu"]


def test_the_module_reaches_the_same_daemon_with_the_targets_python(lab, domains, tmp_path):
    name = domains.define([], suffix="target")
    res = run_module({"uri": lab.uri, "domains": [name]}, str(tmp_path / "work"), module="virt_domain_info")
    assert not res.failed, res.stdout + res.stderr
    assert [d["name"] for d in res.result["domains"]] == [name]
    host = res.result["host"]
    assert tuple(int(x) for x in host["libvirt_version"].split(".")[:2]) == TARGET.expected["libvirt"], host
    assert tuple(int(x) for x in TARGET.python_version().split(".")[:2]) == TARGET.expected["python"]


@pytest.mark.skipif(TARGET.is_gen, reason="the lab's own comparison")
def test_the_lab_has_exactly_the_debian_12_generations_libvirt_and_qemu():
    """Same Debian package versions on the machine and in the bookworm tree: the lab's integration
    and corpus runs are the 9.0 generation's. (The lab's integration modules run with the venv's
    Python 3.11; the fleet suite on the lab uses Debian's python3, python3-libvirt, python3-lxml.)"""
    from _target import Target  # noqa: PLC0415

    bookworm = Target("bookworm")
    if not os.path.isdir(os.path.join(GEN_STATE, "bookworm", "var", "lib", "dpkg")):
        pytest.fail("no bookworm tree to compare with: scripts/generations.sh up bookworm", pytrace=False)
    lab_versions = {p: TARGET.dpkg_version(p) for p in DEBIAN_PACKAGES}
    assert all(lab_versions.values()), lab_versions
    assert lab_versions == {p: bookworm.dpkg_version(p) for p in DEBIAN_PACKAGES}
