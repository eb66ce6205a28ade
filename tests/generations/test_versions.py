"""The generation fleet is what it says: each host runs its own release's libvirt, QEMU and Python.

``scripts/generations.sh versions`` measures over SSH, with each host's own tools; here those
numbers are held against dpkg's records in each tree (read from the outside) and against the
release each host is meant to be (conftest.EXPECTED).
"""

from __future__ import annotations

import os
import re

import pytest

from genlib import EXPECTED, HOSTS


def upstream(debian_version):
    """'1:7.2+dfsg-7+deb12u18+b3' -> '7.2'; '11.3.0-3+deb13u3' -> '11.3.0'."""
    text = debian_version.split(":", 1)[-1]
    return re.split(r"[-+~]", text, maxsplit=1)[0]


def test_one_line_per_host(gen):
    res = gen.sh("versions", timeout=120)
    assert res.ok, str(res)
    lines = res.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(HOSTS), res.stdout
    for line in lines:
        for key in ("qemu:///system", "ssh=root@127.0.0.1:", "libvirt=", "qemu=", "python="):
            assert key in line, line


@pytest.mark.parametrize("host", HOSTS)
def test_versions_match_the_release(versions, host):
    row, want = versions[host], EXPECTED[host]
    assert row["debian"].split(".")[0] == want["debian"], row
    assert row["libvirt"].startswith(want["libvirt"] + "."), row
    assert row["qemu"].startswith(want["qemu"] + "."), row
    assert row["python"].startswith(want["python"] + "."), row
    assert row["uri"] == "qemu:///system" and row["ssh"] == "root@127.0.0.1:%d" % (22300 + int(want["debian"]))


@pytest.mark.parametrize("host", HOSTS)
def test_versions_match_dpkg_of_the_tree(gen, versions, host):
    row = versions[host]
    libvirt = upstream(gen.dpkg_version(host, "libvirt-daemon"))
    assert row["libvirt"] == libvirt and row["libvirt_library"] == libvirt, (row, libvirt)
    assert row["bindings"] == upstream(gen.dpkg_version(host, "python3-libvirt")), row
    qemu_deb = gen.dpkg_version(host, "qemu-system-x86")
    # QEMU's banner names the Debian version it was built as: "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-...)".
    assert "Debian %s" % qemu_deb.split("+b")[0] in row["qemu_banner"] or qemu_deb in row["qemu_banner"], (row, qemu_deb)
    assert row["qemu_running"] == row["qemu"], row  # libvirt's view of the hypervisor is the same binary
    python_pkg = "python%s" % EXPECTED[host]["python"]
    assert row["python"] == upstream(gen.dpkg_version(host, python_pkg)).split("~")[0], row
    assert row["python_executable"] == "/usr/bin/python3", row
    assert row["lxml"] == upstream(gen.dpkg_version(host, "python3-lxml"))[: len(row["lxml"])], row


@pytest.mark.parametrize("host", HOSTS)
def test_daemon_is_the_trees_own(gen, host):
    """The socket the host's python3 talks to is the tree's, and the daemon behind it runs in the tree."""
    out = gen.ssh(host, 'echo "$(cat /run/libvirtd.pid)"; test -S /run/libvirt/libvirt-sock && echo sock').stdout.split()
    assert out[1:] == ["sock"], out
    assert os.readlink("/proc/%s/root" % out[0]) == gen.tree(host), "libvirtd %s does not run in %s" % (out[0], gen.tree(host))
