"""virt_domain_info and virt_policy (check mode, then for real, then check mode again) on every
generation, each run by Ansible with that host's own Python against that host's own daemon.

Every host gets the same domains (``gs-*``, TCG, no OS): a disk with ``io='native'`` and libvirt's
default cache (the disk_io rule fires), devices without aliases (the aliases rule fires), both,
a compliant one, and two running ones (their fixes wait for a cold boot). The outcome must be
the same on every generation; what differs between generations is in docs/generations.md.
"""

from __future__ import annotations

import collections
import json
import os

import pytest

from genlib import EXPECTED, HOSTS

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = "/var/lib/libvirt/images"
BACKUPS = "/var/lib/virtfleet-backups"

NATIVE_DEFAULT = " io='native'"            # libvirt's default cache: writeback in QEMU, so the rule fires
NATIVE_NONE = " cache='none' io='native'"
THREADS = " cache='writeback' io='threads'"

# name: (machine, disk driver attributes, with aliases, running)
DOMAINS = {
    "gs-native": ("q35", NATIVE_DEFAULT, True, False),
    "gs-noalias": ("pc", THREADS, False, False),
    "gs-both": ("q35", NATIVE_DEFAULT, False, False),
    "gs-clean": ("q35", NATIVE_NONE, True, False),
    "gs-run-noalias": ("q35", THREADS, False, True),
    "gs-run-native": ("pc", NATIVE_DEFAULT, True, True),
}

# What every generation must report (and, measured, does: libvirt 7.0, 9.0 and 11.3 alike):
# domain -> (audit status, enforce status, re-audit status), and the rule of every audit finding.
# gs-run-native runs with io='threads' (its legacy io='native' is only in the config), so the fix
# of its config leaves nothing pending; gs-run-noalias's new aliases wait for a cold boot.
WANT_STATUS = {
    "gs-native": ("drift", "fixed", "compliant"),
    "gs-noalias": ("drift", "fixed", "compliant"),
    "gs-both": ("drift", "fixed", "compliant"),
    "gs-clean": ("compliant", "compliant", "compliant"),
    "gs-run-noalias": ("drift", "fixed", "pending"),
    "gs-run-native": ("drift", "fixed", "compliant"),
}
WANT_CHECKS = {
    "gs-native": ["disk_io"],
    "gs-noalias": ["aliases", "aliases"],
    "gs-both": ["disk_io", "aliases", "aliases"],
    "gs-clean": [],
    "gs-run-noalias": ["aliases", "aliases"],
    "gs-run-native": ["disk_io"],
}


def domain_xml(name, machine, driver, aliases):
    disk_alias = "<alias name='ua-%s-disk'/>" % name if aliases else ""
    nic_alias = "<alias name='ua-%s-nic'/>" % name if aliases else ""
    return (
        "<domain type='qemu'><name>%(name)s</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='%(machine)s'>hvm</type></os>"
        "<devices><disk type='file' device='disk'><driver name='qemu' type='raw'%(driver)s/>"
        "<source file='%(images)s/%(name)s.img'/><target dev='vda' bus='virtio'/>%(disk_alias)s</disk>"
        "<interface type='user'><model type='virtio'/>%(nic_alias)s</interface></devices></domain>"
        % dict(name=name, machine=machine, driver=driver, images=IMAGES, disk_alias=disk_alias, nic_alias=nic_alias))


def seed(gen, host):
    """The gs-* domains on ``host``, from scratch. libvirt refuses io='native' with the default
    cache at define and at start on every generation (docs/generations.md), so those are legacy
    definitions: defined (and started) with io='threads', io='native' written back into the file
    libvirt keeps in /etc/libvirt/qemu/, then libvirtd restarted, which loads it as it is."""
    virsh = "virsh -q -c qemu:///system"
    script = ["set -e",
              "for d in $(%s list --all --name | grep '^gs-' || true); do"
              " %s destroy $d >/dev/null 2>&1 || true; %s undefine $d >/dev/null; done" % (virsh, virsh, virsh),
              "rm -rf %s && mkdir -p %s" % (BACKUPS, IMAGES)]
    legacy = []
    for name, (machine, driver, aliases, running) in DOMAINS.items():
        if driver == NATIVE_DEFAULT:
            legacy.append(name)
            driver = " io='threads'"
        script.append("truncate -s 16M %s/%s.img" % (IMAGES, name))
        script.append("%s define /dev/stdin >/dev/null <<'XML'\n%s\nXML" % (virsh, domain_xml(name, machine, driver, aliases)))
        if running:
            script.append("%s start %s >/dev/null" % (virsh, name))
    for name in legacy:
        script.append("sed -i \"s/io='threads'/io='native'/\" /etc/libvirt/qemu/%s.xml" % name)
    gen.ssh(host, "\n".join(script))
    if legacy:
        res = gen.sh("restart-libvirt", host, timeout=120)
        assert res.ok, str(res)
    for name in legacy:  # loaded as written: what an upgraded host carries
        assert "io='native'" in gen.virsh(host, "dumpxml", "--inactive", name), (host, name)


@pytest.fixture(scope="module")
def smoke(gen, tmp_path_factory):
    for host in HOSTS:
        seed(gen, host)
    out = tmp_path_factory.mktemp("smoke")
    res = gen.playbook(os.path.join(HERE, "smoke.yml"), env={"GEN_SMOKE_OUT": str(out)})
    results = {}
    for host in HOSTS:
        path = out / ("%s.json" % host)
        results[host] = json.loads(path.read_text()) if path.exists() else None
    return res, results


def by_domain(result):
    return {d["name"]: d for d in result["domains"]}


def test_playbook_ran_on_every_host(smoke):
    res, results = smoke
    assert res.ok, str(res)
    assert all(results.values()), results.keys()


@pytest.mark.parametrize("host", HOSTS)
def test_modules_ran_with_the_hosts_python(smoke, host):
    facts = smoke[1][host]["facts"]
    assert facts["ansible_python"]["executable"] == "/usr/bin/python3", facts["ansible_python"]
    assert facts["ansible_python_version"].startswith(EXPECTED[host]["python"] + "."), facts["ansible_python_version"]
    assert facts["ansible_distribution_major_version"] == EXPECTED[host]["debian"], facts


@pytest.mark.parametrize("host", HOSTS)
def test_module_sees_the_hosts_daemon(smoke, versions, host):
    reported = smoke[1][host]["audit"]["host"]
    assert str(reported.get("libvirt_version", reported)).find(versions[host]["libvirt"]) >= 0, reported


@pytest.mark.parametrize("host", HOSTS)
def test_domain_info(smoke, host):
    info = smoke[1][host]["info"]
    assert not info.get("failed"), info
    assert not info.get("changed"), info
    text = json.dumps(info)
    for name in DOMAINS:
        assert name in text, name


@pytest.mark.parametrize("host", HOSTS)
def test_policy_same_outcome_on_every_generation(smoke, host):
    result = smoke[1][host]
    for key in ("audit", "enforce", "reaudit"):
        assert not result[key].get("failed"), result[key]
    audit, enforce, reaudit = (by_domain(result[k]) for k in ("audit", "enforce", "reaudit"))
    got = {name: (audit[name]["status"], enforce[name]["status"], reaudit[name]["status"]) for name in DOMAINS}
    assert got == WANT_STATUS
    checks = collections.defaultdict(list)
    for finding in result["audit"]["findings"]:
        checks[finding["domain"]].append(finding["check"])
    assert {name: sorted(checks.get(name, [])) for name in DOMAINS} == {k: sorted(v) for k, v in WANT_CHECKS.items()}
    assert result["audit"]["changed"] and result["enforce"]["changed"]
    assert {f["status"] for f in result["audit"]["findings"]} == {"drift"}


@pytest.mark.parametrize("host", HOSTS)
def test_definitions_after_enforce(gen, smoke, host):
    """What the real run wrote, read back with the host's own virsh."""
    for name, (_machine, driver, aliases, _running) in DOMAINS.items():
        xml = gen.virsh(host, "dumpxml", "--inactive", name)
        assert "<alias name='ua-" in xml, (host, name, xml)
        assert "io='native'" not in xml or "cache='none'" in xml or "cache='directsync'" in xml, (host, name, xml)
