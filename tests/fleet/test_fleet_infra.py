"""The fleet itself is real: three independent daemons, SSH-reachable, stoppable, with fixtures
libvirt really holds (a legacy definition that cannot start, alias-less devices, secrets)."""

from __future__ import annotations

import re
import uuid

import pytest

from _target import is_native_io_refusal
STATUS = re.compile(r"^(hv\d) \| (SUCCESS|CHANGED|UNREACHABLE!|FAILED!)", re.M)


def host_status(result):
    return dict(STATUS.findall(result.stdout))


def test_each_host_answers_over_ssh_as_its_own_user(fleet):
    for host in fleet.hosts:
        out = fleet.ssh(host, 'id -un; echo "xdg=${XDG_RUNTIME_DIR:-}"; test -S ~/.cache/libvirt/libvirt-sock && echo sock').stdout
        assert out.split() == [fleet.user(host), "xdg=", "sock"], out
        assert fleet.list_domains(host) == sorted(d.name for d in fleet.domains_of(host))


def test_daemons_are_independent(fleet):
    name = "vf-fleet-probe-%s" % uuid.uuid4().hex[:8]
    xml = "<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory><os><type arch='x86_64' machine='q35'>hvm</type></os></domain>" % name
    define = 'f=$(mktemp "$HOME/vf-probe.XXXXXX") && cat > "$f" && LIBVIRT_AUTOSTART=0 virsh -q -c qemu:///session define "$f"; rc=$?; rm -f "$f"; exit $rc'
    fleet.ssh("hv1", define, input_text=xml)
    try:
        assert name in fleet.list_domains("hv1")
        for other in ("hv2", "hv3"):
            assert name not in fleet.list_domains(other)
            assert fleet.list_domains(other) == sorted(d.name for d in fleet.domains_of(other))
    finally:
        fleet.virsh("hv1", "undefine", name)
    pids = {fleet.ssh(h, "cat ~/.cache/libvirt/libvirtd.pid").stdout.strip() for h in fleet.hosts}
    assert len(pids) == len(fleet.hosts), pids


def test_stop_host_makes_only_that_host_unreachable(fleet):
    before = fleet.ansible("hypervisors", "ansible.builtin.ping")
    assert host_status(before) == {h: "SUCCESS" for h in fleet.hosts}, before
    with fleet.unreachable("hv2"):
        down = fleet.ansible("hypervisors", "ansible.builtin.ping")
        assert down.rc != 0, down
        assert host_status(down) == {"hv1": "SUCCESS", "hv2": "UNREACHABLE!", "hv3": "SUCCESS"}, down
    after = fleet.ansible("hypervisors", "ansible.builtin.ping")
    assert host_status(after) == {h: "SUCCESS" for h in fleet.hosts}, after


def test_modules_run_with_the_hosts_debian_python(fleet):
    facts = fleet.ansible("hypervisors", "ansible.builtin.setup", "gather_subset=!all filter=ansible_python")
    assert host_status(facts) == {h: "SUCCESS" for h in fleet.hosts}, facts
    assert facts.stdout.count('"executable": "/usr/bin/python3"') == len(fleet.hosts), facts
    info = fleet.ansible("hypervisors", "virtfleet.libvirt.virt_domain_info", "uri={{ virtfleet_uri }}")
    assert host_status(info) == {h: "SUCCESS" for h in fleet.hosts}, info


@pytest.mark.parametrize("host", ["hv1", "hv2"])
def test_legacy_domain_is_real_and_cannot_start(fleet, host):
    legacy = [d for d in fleet.domains_of(host) if d.legacy]
    assert legacy, "manifest.tsv has no legacy domain on %s" % host
    name = legacy[0].name
    xml = fleet.dumpxml(host, name)
    assert "cache='writeback' io='native'" in xml
    start = fleet.ssh(host, "LIBVIRT_AUTOSTART=0 virsh -c qemu:///session start %s" % name, check=False)
    # The wording differs between generations (docs/generations.md, row 2): 7.0 "native I/O needs
    # either no disk cache or directsync cache mode", 9.0+ "io='native' needs either ...".
    assert start.rc != 0 and is_native_io_refusal(start.stderr), start
    assert fleet.virsh(host, "domstate", name).strip() == "shut off"


def test_fixture_domains_have_no_user_aliases_and_keep_secrets(fleet):
    for dom in fleet.domains:
        xml = fleet.dumpxml(dom.host, dom.name)
        assert "<alias name='ua-" not in xml, dom
        assert "passwd='pw-" in xml, dom
        assert "52:54:00:0%s:" % dom.host[2:] in xml, dom
        state = fleet.virsh(dom.host, "domstate", dom.name).strip()
        assert state == ("running" if dom.state == "running" else "shut off"), dom
    hv3 = "".join(fleet.dumpxml("hv3", d.name) for d in fleet.domains_of("hv3"))
    assert "io='native'" in hv3 and "cache='writeback'" not in hv3


def test_restart_libvirt_keeps_running_domains(fleet):
    running = [d.name for d in fleet.domains_of("hv3") if d.state == "running"]
    pid = fleet.ssh("hv3", "cat ~/.cache/libvirt/libvirtd.pid").stdout.strip()
    fleet.restart_libvirt("hv3")
    assert fleet.ssh("hv3", "cat ~/.cache/libvirt/libvirtd.pid").stdout.strip() != pid
    for name in running:
        assert fleet.virsh("hv3", "domstate", name).strip() == "running"


def test_fleet_users_cannot_reach_the_system_daemon(fleet):
    res = fleet.ssh("hv1", "LIBVIRT_AUTOSTART=0 virsh -c qemu:///system list --all", check=False)
    assert res.rc != 0, res
