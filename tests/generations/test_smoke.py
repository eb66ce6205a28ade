"""virt_domain_info and virt_policy (check mode, then for real, then check mode again) on every
generation, each run by Ansible with that host's own Python against that host's own daemon.

Every host gets the same domains (``gs-*``, TCG, no OS): a disk with ``io='native'`` and libvirt's
default cache (the disk_io rule fires), devices without aliases (the aliases rule fires), both,
a compliant one, and two running ones (their fixes wait for a cold boot). The outcome must be
the same on every generation; what differs between generations is in docs/generations.md.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import shlex

import pytest

from genlib import EXPECTED, HOSTS, ROOT

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = "/var/lib/libvirt/images"
BACKUPS = "/var/lib/virtfleet-backups"

NATIVE_DEFAULT = " io='native'"            # libvirt's default cache: writeback in QEMU, so the rule fires
NATIVE_NONE = " cache='none' io='native'"
THREADS = " cache='writeback' io='threads'"

VNC_LONG = "<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' passwd='elevenchars'/>"

# name: (machine, disk driver attributes, with aliases, running)
DOMAINS = {
    "gs-native": ("q35", NATIVE_DEFAULT, True, False),
    "gs-noalias": ("pc", THREADS, False, False),
    "gs-both": ("q35", NATIVE_DEFAULT, False, False),
    "gs-clean": ("q35", NATIVE_NONE, True, False),
    "gs-run-noalias": ("q35", THREADS, False, True),
    "gs-run-native": ("pc", NATIVE_DEFAULT, True, True),
    "gs-vnc": ("q35", THREADS, False, False),   # + a VNC password of 11 characters (legacy)
}
EXTRA = {"gs-vnc": VNC_LONG}
# Legacy definitions libvirt refuses at define on some generation: what is defined first, and
# what is then written back into /etc/libvirt/qemu/<name>.xml before libvirtd is restarted.
LEGACY = [("type='raw' io='native'", "type='raw' io='threads'"), ("passwd='elevenchars'", "passwd='eightchr'")]

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
    "gs-vnc": ("drift", "fixed", "compliant"),
}
# libvirt 9.0 and later refuse a VNC password longer than 8 characters at every define, so a domain
# that carries one cannot be changed at all until the password is shortened (libvirt 7.0 accepts it).
# The engine knows it (libvirt >= 8.0): such a domain is "blocked" in check mode and in the real run
# alike, no define is sent, and the module does not fail.
WANT_STATUS_BY_HOST = {
    "bookworm": {"gs-vnc": ("blocked", "blocked", "blocked")},
    "trixie": {"gs-vnc": ("blocked", "blocked", "blocked")},
}
WANT_CHECKS = {
    "gs-native": ["disk_io"],
    "gs-noalias": ["aliases", "aliases"],
    "gs-both": ["disk_io", "aliases", "aliases"],
    "gs-clean": [],
    "gs-run-noalias": ["aliases", "aliases"],
    "gs-run-native": ["disk_io"],
    "gs-vnc": ["aliases", "aliases"],
}


def domain_xml(name, machine, driver, aliases, extra=""):
    disk_alias = "<alias name='ua-%s-disk'/>" % name if aliases else ""
    nic_alias = "<alias name='ua-%s-nic'/>" % name if aliases else ""
    return (
        "<domain type='qemu'><name>%(name)s</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='%(machine)s'>hvm</type></os>"
        "<devices><disk type='file' device='disk'><driver name='qemu' type='raw'%(driver)s/>"
        "<source file='%(images)s/%(name)s.img'/><target dev='vda' bus='virtio'/>%(disk_alias)s</disk>"
        "<interface type='user'><model type='virtio'/>%(nic_alias)s</interface>%(extra)s</devices></domain>"
        % dict(name=name, machine=machine, driver=driver, images=IMAGES, disk_alias=disk_alias, nic_alias=nic_alias,
               extra=extra))


DETACH_XML = (
    "<domain type='qemu'><name>gd-detach</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
    "<os><type arch='x86_64' machine='q35'>hvm</type></os><devices>"
    "<controller type='scsi' model='virtio-scsi'><alias name='ua-gd-scsi0'/></controller>"
    "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='%(images)s/gd-sda.img'/>"
    "<target dev='sda' bus='scsi'/><alias name='ua-gd-sda'/></disk>"
    "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='%(images)s/gd-vdb.img'/>"
    "<target dev='vdb' bus='virtio'/><alias name='ua-gd-vdb'/></disk></devices></domain>" % dict(images=IMAGES))


def seed(gen, host):
    """The gs-* domains on ``host``, from scratch. libvirt refuses io='native' with the default
    cache at define and at start on every generation (docs/generations.md), so those are legacy
    definitions: defined (and started) with io='threads', io='native' written back into the file
    libvirt keeps in /etc/libvirt/qemu/, then libvirtd restarted, which loads it as it is."""
    virsh = "virsh -q -c qemu:///system"
    script = ["set -e",
              "for d in $(%s list --all --name | grep -E '^(gs|gd)-' || true); do"
              " %s destroy $d >/dev/null 2>&1 || true; %s undefine $d >/dev/null; done" % (virsh, virsh, virsh),
              "rm -rf %s && mkdir -p %s" % (BACKUPS, IMAGES)]
    legacy = []
    for name, (machine, driver, aliases, running) in DOMAINS.items():
        xml = domain_xml(name, machine, driver, aliases, EXTRA.get(name, ""))
        for bad, good in LEGACY:
            if bad in xml:
                legacy.append((name, bad, good))
                xml = xml.replace(bad, good)
        script.append("truncate -s 16M %s/%s.img" % (IMAGES, name))
        script.append("%s define /dev/stdin >/dev/null <<'XML'\n%s\nXML" % (virsh, xml))
        if running:
            script.append("%s start %s >/dev/null" % (virsh, name))
    for name, bad, good in legacy:
        script.append("python3 -c 'import sys; p, b, g = sys.argv[1:]; t = open(p).read(); assert g in t, p; "
                      "open(p, \"w\").write(t.replace(g, b))' /etc/libvirt/qemu/%s.xml %s %s"
                      % (name, shlex.quote(bad), shlex.quote(good)))
    script.append("truncate -s 16M %s/gd-sda.img %s/gd-vdb.img" % (IMAGES, IMAGES))
    script.append("%s define /dev/stdin >/dev/null <<'XML'\n%s\nXML" % (virsh, DETACH_XML))
    script.append("%s start gd-detach >/dev/null" % virsh)
    gen.ssh(host, "\n".join(script))
    if legacy:
        res = gen.sh("restart-libvirt", host, timeout=120)
        assert res.ok, str(res)
    for name, bad, _good in legacy:  # loaded as written: what an upgraded host carries
        assert bad in gen.virsh(host, "dumpxml", "--inactive", "--security-info", name), (host, name, bad)


@pytest.fixture(scope="module")
def smoke(gen, tmp_path_factory):
    for host in HOSTS:
        seed(gen, host)
    out = tmp_path_factory.mktemp("smoke")
    res = gen.playbook(os.path.join(HERE, "smoke.yml"), env={"GEN_SMOKE_OUT": str(out)})
    results = {}
    for host in HOSTS:
        path, detach = out / ("%s.json" % host), out / ("%s-detach.json" % host)
        results[host] = json.loads(path.read_text()) if path.exists() else None
        if results[host] is not None and detach.exists():
            results[host].update(json.loads(detach.read_text()))
    yield res, results
    # No TCG guest left running (10 idle ones cost about half a core here); definitions stay for a look.
    stop = ("for d in $(virsh -q -c qemu:///system list --name | grep -E '^(gs|gd)-' || true); do"
            " virsh -q -c qemu:///system destroy $d >/dev/null & done; wait")
    with concurrent.futures.ThreadPoolExecutor(len(HOSTS)) as pool:
        list(pool.map(lambda host: gen.ssh(host, stop, check=False), HOSTS))


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
    for key in ("audit", "reaudit"):
        assert not result[key].get("failed"), result[key]
    expect_failure = any(v[1] == "failed" for v in WANT_STATUS_BY_HOST.get(host, {}).values())
    assert bool(result["enforce"].get("failed")) == expect_failure, result["enforce"].get("msg")
    audit, enforce, reaudit = (by_domain(result[k]) for k in ("audit", "enforce", "reaudit"))
    got = {name: (audit[name]["status"], enforce[name]["status"], reaudit[name]["status"]) for name in DOMAINS}
    assert got == {**WANT_STATUS, **WANT_STATUS_BY_HOST.get(host, {})}
    checks = collections.defaultdict(list)
    for finding in result["audit"]["findings"]:
        checks[finding["domain"]].append(finding["check"])
    assert {name: sorted(checks.get(name, [])) for name in DOMAINS} == {k: sorted(v) for k, v in WANT_CHECKS.items()}
    assert result["audit"]["changed"] and result["enforce"]["changed"]
    want = {"drift"} | {v[0] for v in WANT_STATUS_BY_HOST.get(host, {}).values()}
    assert {f["status"] for f in result["audit"]["findings"]} == want


@pytest.mark.parametrize("host", HOSTS)
def test_vnc_password_refusal_is_reported(smoke, host):
    """Where libvirt would refuse the define (>= 8.0), nothing is sent: blocked, with the fix; nothing changed."""
    enforce = by_domain(smoke[1][host]["enforce"])["gs-vnc"]
    if host == "bullseye":
        assert enforce["status"] == "fixed", enforce
    else:
        assert enforce["status"] == "blocked" and not enforce["changed"], enforce
        findings = [f for f in smoke[1][host]["enforce"]["findings"] if f["domain"] == "gs-vnc"]
        assert findings and all(f["status"] == "blocked" for f in findings), findings
        assert "Shorten it to at most 8 characters" in json.dumps(findings), findings


@pytest.mark.parametrize("host", HOSTS)
def test_detach(smoke, host):
    """A SCSI disk hot-unplugs without a guest on every generation; a virtio-blk disk of a q35 domain
    without a guest never goes (ACPI hotplug on pc-q35-7.2/10.0, native PCIe on pc-q35-5.2 alike)."""
    scsi, blk = smoke[1][host]["detach_scsi"], smoke[1][host]["detach_blk"]
    assert not scsi.get("failed") and scsi["changed"], scsi
    assert blk.get("failed"), blk
    assert "ua-gd-sda" not in json.dumps(smoke[1][host]["detach_after"]), smoke[1][host]["detach_after"]


@pytest.mark.parametrize("host", HOSTS)
def test_definitions_after_enforce(gen, smoke, host):
    """What the real run wrote, read back with the host's own virsh."""
    for name in DOMAINS:
        if WANT_STATUS_BY_HOST.get(host, {}).get(name, ("", "fixed"))[1] in ("failed", "blocked"):
            continue
        xml = gen.virsh(host, "dumpxml", "--inactive", name)
        assert "<alias name='ua-" in xml, (host, name, xml)
        assert "io='native'" not in xml or "cache='none'" in xml or "cache='directsync'" in xml, (host, name, xml)


def test_audit_playbook_on_every_generation(gen, smoke, tmp_path):
    """The product's playbooks/audit.yml (audit + report roles) over the three generations, after
    the enforce above: every host is checked; only gs-vnc is left, blocked where libvirt would refuse the fix."""
    res = gen.playbook(os.path.join(ROOT, "playbooks", "audit.yml"), "--check", "-e", "virtfleet_hosts=generations",
                       "-e", "report_dir=%s" % tmp_path)
    assert res.ok, str(res)
    report = json.loads((tmp_path / "compliance.json").read_text())
    assert report["summary"]["hosts"] == {"total": 3, "ok": 3, "failed": 0, "unreachable": 0}, report["summary"]
    # (the running gs-run-noalias's 2 aliases are pending a cold boot on every host)
    left = {h["name"]: {k: v for k, v in h["summary"]["by_status"].items() if v} for h in report["hosts"]}
    assert left == {"bullseye": {"pending": 2}, "bookworm": {"blocked": 2, "pending": 2},
                    "trixie": {"blocked": 2, "pending": 2}}, left
