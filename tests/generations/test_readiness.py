"""Capability snapshots and upgrade readiness on the three generations, predictions checked by real starts.

1. ``virt_capabilities`` runs on every host (Ansible, that host's Python) and writes its snapshot;
   the snapshot must say what the host is (versions, q35/pc, machine types measured in
   docs/generations.md rows 6-8).
2. Domains ``rd-*`` (TCG, no OS) are defined on bullseye - the oldest, which accepts all of them -
   and ``virt_policy`` with ``upgrade_readiness`` predicts, for each host's snapshot as target,
   whether each would start there.
3. Each prediction is checked: the definition libvirt on bullseye holds (``dumpxml --inactive
   --security-info``) is defined on the target (``--validate``, as the collection defines) and
   started. Predicted start == real start for every (domain, target); a wrong prediction fails with
   both sides. The domains are removed again.
"""

from __future__ import annotations

import concurrent.futures
import json
import shlex
import sys

import pytest

from genlib import COLLECTIONS, EXPECTED, HOSTS

sys.path.insert(0, COLLECTIONS)
from ansible_collections.virtfleet.libvirt.plugins.module_utils import _capabilities, _domxml, _readiness  # noqa: E402

SOURCE = "bullseye"
PREFIX = "rd-"
VNC_LONG = "<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' passwd='elevenchars'/>"
SPICE = ("<graphics type='spice' autoport='yes' listen='127.0.0.1'/>"
         "<video><model type='qxl' ram='65536' vram='65536' vgamem='16384' heads='1'/></video>")
PASST = "<interface type='user'><backend type='passt'/><model type='virtio'/></interface>"

# name: (machine, extra devices); defined on bullseye.
DOMAINS = {
    "rd-q35": ("q35", ""),
    "rd-pc": ("pc", ""),
    "rd-pc10": ("pc-1.0", ""),
    "rd-i440fx20": ("pc-i440fx-2.0", ""),
    "rd-i440fx24": ("pc-i440fx-2.4", ""),
    "rd-spice": ("q35", SPICE),
    "rd-vnclong": ("q35", VNC_LONG),
    "rd-vnc8": ("q35", VNC_LONG.replace("elevenchars", "eightchr")),
}
# What the hosts do (docs/generations.md rows 1, 6-8), stated independently of the rule: the domains
# that do NOT start on each target, with the reason code the rule must give.
WONT_START = {
    "bullseye": {},
    "bookworm": {"rd-pc10": "machine_type_not_offered", "rd-vnclong": "vnc_password_too_long"},
    "trixie": {"rd-pc10": "machine_type_not_offered", "rd-i440fx20": "machine_type_not_offered",
               "rd-spice": "device_model_not_offered", "rd-vnclong": "vnc_password_too_long"},
}
PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - name: snapshot
      virtfleet.libvirt.virt_capabilities:
        name: "{{ inventory_hostname }}"
        dest: /tmp/virtfleet-rd-snapshot.json
      register: snap
    - name: keep it on the controller
      ansible.builtin.copy:
        content: "{{ snap.snapshot | to_json }}"
        dest: "%(out)s/{{ inventory_hostname }}.json"
        mode: "0644"
      delegate_to: localhost
"""
PREDICT = """
- hosts: %(source)s
  gather_facts: false
  tasks:
    - name: readiness against each snapshot
      virtfleet.libvirt.virt_policy:
        domains: %(domains)s
        rules:
          upgrade_readiness:
            target: "{{ lookup('ansible.builtin.file', '%(out)s/' ~ item ~ '.json') | from_json }}"
          machine_type:
            target: "{{ lookup('ansible.builtin.file', '%(out)s/' ~ item ~ '.json') | from_json }}"
      check_mode: true
      loop: %(hosts)s
      register: ready
    - name: the host itself, live (no target)
      virtfleet.libvirt.virt_policy:
        domains: %(domains)s
        rules: {upgrade_readiness: {}}
      register: live
    - name: keep the results
      ansible.builtin.copy:
        content: "{{ {'targets': ready.results, 'live': live} | to_json }}"
        dest: "%(out)s/predictions.json"
        mode: "0644"
      delegate_to: localhost
"""


def domain_xml(name, machine, extra):
    return ("<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64' machine='%s'>hvm</type></os><devices>%s</devices></domain>" % (name, machine, extra))


def _clean(gen, host):
    gen.ssh(host, "for d in $(virsh -q -c qemu:///system list --all --name | grep '^%s'); do "
                  "virsh -q -c qemu:///system destroy $d >/dev/null 2>&1; "
                  "virsh -q -c qemu:///system undefine $d >/dev/null 2>&1; done; true" % PREFIX)


SENTINEL = "rd-sentinel"


@pytest.fixture(scope="module", name="snapshots")
def _snapshots(gen, tmp_path_factory):
    out = tmp_path_factory.mktemp("snapshots")
    play = out / "snap.yml"
    play.write_text(PLAY % {"out": out})
    # Read-only: a domain of ours on every host is exactly as it was (other helpers' domains come and go).
    before = {}
    for host in HOSTS:
        _clean(gen, host)
        gen.ssh(host, "virsh -q -c qemu:///system define /dev/stdin >/dev/null",
                input_text=domain_xml(SENTINEL, "q35", VNC_LONG.replace("elevenchars", "eightchr")))
        before[host] = gen.virsh(host, "dumpxml", "--inactive", "--security-info", SENTINEL)
    res = gen.playbook(str(play))
    assert res.ok, str(res)
    for host in HOSTS:
        assert gen.virsh(host, "dumpxml", "--inactive", "--security-info", SENTINEL) == before[host], host
        _clean(gen, host)
    return out, {h: json.loads((out / (h + ".json")).read_text()) for h in HOSTS}


def test_each_snapshot_says_what_its_host_is(gen, snapshots, versions):
    _out, snaps = snapshots
    deprecated = {"bullseye": 0, "bookworm": 4, "trixie": 43}
    for host in HOSTS:
        snap = snaps[host]
        assert snap["virtfleet_snapshot"] == 1
        assert snap["versions"]["libvirt"].startswith(EXPECTED[host]["libvirt"] + ".")
        assert snap["versions"]["qemu"].startswith(EXPECTED[host]["qemu"] + ".")
        x86 = [g for g in snap["guests"] if g["arch"] == "x86_64"][0]
        qemu = EXPECTED[host]["qemu"]
        assert {k: x86["aliases"][k] for k in ("pc", "q35")} == {"pc": "pc-i440fx-" + qemu, "q35": "pc-q35-" + qemu}
        assert len(x86["deprecated"]) == deprecated[host]
        assert snap["host"] == host
        # /dev/kvm is bound into the trees (KVM is there; only a nested Linux guest cannot boot on it)
        assert x86["domain_types"] == ["qemu", "kvm"]
        # what virsh on the host lists, the snapshot lists
        listed = gen.virsh(host, "capabilities")
        for name in x86["machines"]:
            assert ">%s</machine>" % name in listed, (host, name)
        # the file written on the host is the same snapshot
        on_host = json.loads(gen.ssh(host, "cat /tmp/virtfleet-rd-snapshot.json").stdout)
        assert on_host == snap
        assert gen.ssh(host, "stat -c %a /tmp/virtfleet-rd-snapshot.json").stdout.strip() == "644"
        graphics = {d["machine"]: d["devices"]["graphics"]["type"] for d in snap["domain_capabilities"]
                    if d["arch"] == "x86_64"}
        assert all(("spice" in types) == (host != "trixie") for types in graphics.values()), (host, graphics)


def test_predictions_match_real_starts_on_every_target(gen, snapshots):
    out, snaps = snapshots
    for host in HOSTS:
        _clean(gen, host)
    try:
        for name, (machine, extra) in DOMAINS.items():
            gen.ssh(SOURCE, "virsh -q -c qemu:///system define /dev/stdin >/dev/null",
                    input_text=domain_xml(name, machine, extra))
        play = out / "predict.yml"
        play.write_text(PREDICT % {"out": out, "source": SOURCE, "domains": json.dumps(sorted(DOMAINS)),
                                   "hosts": json.dumps(list(HOSTS))})
        res = gen.playbook(str(play), "--limit", SOURCE)
        assert res.ok, str(res)
        results = json.loads((out / "predictions.json").read_text())
        # The source itself, live: everything defined there starts there.
        live = {d["name"]: d["readiness"] for d in results["live"]["domains"]}
        assert all(r["starts"] for r in live.values()), live
        # live, the target is named by libvirt's host name (the chroots share the machine's) and versions
        versions = snaps[SOURCE]["versions"]
        assert all(r["target"].endswith(" libvirt %s qemu %s" % (versions["libvirt"], versions["qemu"]))
                   for r in live.values()), live
        predicted = {}
        for item in results["targets"]:
            assert item["changed"] is False or item["summary"]["domains_changed"] == 0
            for d in item["domains"]:
                predicted[(d["name"], item["item"])] = d["readiness"]
        actual, wrong = {}, []
        for target in HOSTS:
            for name in sorted(DOMAINS):
                xml = gen.ssh(SOURCE, "virsh -q -c qemu:///system dumpxml --inactive --security-info %s" % name).stdout
                started = _defines_and_starts(gen, target, name, xml) if target != SOURCE else \
                    _starts(gen, SOURCE, name)
                actual[(name, target)] = started
                want = predicted[(name, target)]
                if want["starts"] != started[0]:
                    wrong.append("%s on %s: predicted %s %s, really %s" % (
                        name, target, want["starts"], [r["code"] for r in want["reasons"]], started))
                if not want["starts"]:
                    assert WONT_START[target].get(name) in [r["code"] for r in want["reasons"]], (name, target, want)
            for name in sorted(DOMAINS):
                assert predicted[(name, target)]["starts"] == (name not in WONT_START[target]), (
                    name, target, predicted[(name, target)])
        assert not wrong, "\n".join(wrong)
        summary = {k: v[0] for k, v in actual.items()}
        print(json.dumps({"%s@%s" % k: v for k, v in sorted(summary.items())}, indent=1))
    finally:
        for host in HOSTS:
            _clean(gen, host)


def _starts(gen, host, name):
    res = gen.ssh(host, "virsh -q -c qemu:///system start %s" % name, check=False)
    gen.ssh(host, "virsh -q -c qemu:///system destroy %s >/dev/null 2>&1; true" % name)
    return (res.ok, res.stderr.strip()[-300:])


def _defines_and_starts(gen, host, name, xml):
    res = gen.ssh(host, "virsh -q -c qemu:///system define --validate /dev/stdin", check=False, input_text=xml)
    if not res.ok:
        return (False, "define: " + res.stderr.strip()[-300:])
    try:
        return _starts(gen, host, name)
    finally:
        gen.ssh(host, "virsh -q -c qemu:///system undefine %s >/dev/null 2>&1; true" % shlex.quote(name))


def _probe_xml(name, machine="q35", devices="", vtype="qemu", extra="", vcpu=1, firmware=None):
    os_open = "<os firmware='%s'>" % firmware if firmware else "<os>"
    return ("<domain type='%s'><name>%s</name><memory unit='MiB'>64</memory><vcpu>%d</vcpu>%s<type arch='x86_64' "
            "machine='%s'>hvm</type></os>%s<devices>%s</devices></domain>" % (
                vtype, name, vcpu, os_open, machine, extra, devices))


SKYLAKE = "<cpu mode='custom' match='exact'%s><model fallback='%s'>Skylake-Client</model></cpu>"
# Definitions each host may refuse at define or start, defined straight on each target. Not here: KVM with
# host-passthrough, which fails on this machine because its KVM is nested (an MSR QEMU cannot set), a fact
# of the machine that no capability reports.
PROBES = {
    "rd-p-hostpass": dict(extra="<cpu mode='host-passthrough'/>"),
    "rd-p-hostmodel": dict(extra="<cpu mode='host-model'/>"),
    "rd-p-maximum": dict(extra="<cpu mode='maximum'/>"),
    "rd-p-sky": dict(extra=SKYLAKE % ("", "allow")),
    "rd-p-sky-forbid": dict(extra=SKYLAKE % ("", "forbid")),
    "rd-p-sky-full": dict(extra=SKYLAKE % (" check='full'", "allow")),
    "rd-p-sky-none": dict(extra=SKYLAKE % (" check='none'", "forbid")),
    "rd-p-nosuchcpu": dict(extra="<cpu mode='custom' match='exact'><model fallback='allow'>NoSuchCPU</model></cpu>"),
    "rd-p-kvm": dict(vtype="kvm"),
    "rd-p-tpm": dict(devices="<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>"),
    "rd-p-vcpu300": dict(machine="pc", vcpu=300),
    "rd-p-ide-q35": dict(devices="<disk type='file' device='cdrom'><target dev='hda' bus='ide'/></disk>"),
    "rd-p-sata-pc": dict(machine="pc", devices="<disk type='file' device='cdrom'><target dev='sda' bus='sata'/></disk>"),
    "rd-p-efi": dict(firmware="efi", extra="<features><acpi/></features>"),
    "rd-p-efi-noacpi": dict(firmware="efi"),
    "rd-p-vmcore": dict(extra="<features><vmcoreinfo state='on'/></features>"),
    "rd-p-passt": dict(devices="<interface type='user'><backend type='passt'/><model type='virtio'/></interface>"),
    "rd-p-qxl": dict(devices="<graphics type='vnc' port='-1'/><video><model type='qxl'/></video>"),
    "rd-p-spicevmc": dict(devices="<redirdev bus='usb' type='spicevmc'/>"),
    "rd-p-memfd": dict(extra="<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>"),
    "rd-p-hyperv": dict(extra="<features><hyperv><relaxed state='on'/><vapic state='on'/></hyperv></features>"),
    "rd-p-ich9": dict(devices="<sound model='ich9'/>"),
}


def _probe_host(gen, host, snapshot):
    """[(name, predicted reason codes, started, why)] of every probe on ``host``."""
    _clean(gen, host)
    target = _capabilities.Target(_capabilities.validate(snapshot))
    rows = []
    for name, kw in sorted(PROBES.items()):
        xml = _probe_xml(name, **kw)
        predicted = [r["code"] for r in _readiness.check_domain(_domxml.parse(xml), target)]
        started, why = _defines_and_starts(gen, host, name, xml)
        rows.append((name, predicted, started, why))
    return rows


def test_predictions_of_definitions_a_host_may_refuse_match_real_defines_and_starts(gen, snapshots):
    _out, snaps = snapshots
    try:
        with concurrent.futures.ThreadPoolExecutor(len(HOSTS)) as pool:   # the hosts are independent
            results = dict(zip(HOSTS, pool.map(lambda h: _probe_host(gen, h, snaps[h]), HOSTS)))
    finally:
        for host in HOSTS:
            _clean(gen, host)
    table = {"%s@%s" % (name, host): (not predicted, started, predicted)
             for host, rows in results.items() for name, predicted, started, _why in rows}
    print(json.dumps(table, indent=1))
    wrong = ["%s on %s: predicted %s, really %s (%s)" % (name, host, predicted or "starts", started, why)
             for host, rows in results.items() for name, predicted, started, why in rows
             if (not predicted) != started]
    assert not wrong, "\n".join(wrong)
    # the table is not one-sided: both outcomes occur on every host
    for host, rows in results.items():
        assert {started for _n, _p, started, _w in rows} == {True, False}, host


VNC_PLAY = """
- hosts: %(host)s
  gather_facts: false
  tasks:
    - name: check mode, then for real, with the host itself as the readiness target
      virtfleet.libvirt.virt_policy:
        domains: [rd-vnclegacy]
        backup_dir: /var/lib/virtfleet-backups-rd
        rules: {aliases: {}, upgrade_readiness: {}}
      check_mode: "{{ item }}"
      loop: [true, false]
      register: runs
    - name: keep the results
      ansible.builtin.copy:
        content: "{{ runs.results | to_json }}"
        dest: "%(out)s/vnc-%(host)s.json"
        mode: "0644"
      delegate_to: localhost
"""


@pytest.mark.parametrize("host", ["bookworm"])
def test_a_long_vnc_password_is_blocked_in_both_modes_and_nothing_is_sent(gen, tmp_path, host):
    """libvirt >= 9.0 refuses every define of it (docs/generations.md row 1): check mode says what the real run
    does, and the real run sends no define. The definition exists only as a file loaded at daemon start."""
    name = "rd-vnclegacy"
    xml = domain_xml(name, "q35", VNC_LONG.replace("elevenchars", "eightchr") +
                     "<interface type='user'><model type='virtio'/></interface>")
    _clean(gen, host)
    try:
        gen.ssh(host, "virsh -q -c qemu:///system define /dev/stdin >/dev/null && sed -i "
                      "\"s/passwd='eightchr'/passwd='elevenchars'/\" /etc/libvirt/qemu/%s.xml" % name, input_text=xml)
        res = gen.sh("restart-libvirt", host, timeout=120)
        assert res.ok, str(res)
        before = gen.virsh(host, "dumpxml", "--inactive", "--security-info", name)
        assert "passwd='elevenchars'" in before
        play = tmp_path / "vnc.yml"
        play.write_text(VNC_PLAY % {"host": host, "out": tmp_path})
        res = gen.playbook(str(play), "--limit", host)
        assert res.ok, str(res)
        checked, real = json.loads((tmp_path / ("vnc-%s.json" % host)).read_text())
        for run in (checked, real):
            dom = run["domains"][0]
            assert dom["status"] == "blocked" and dom["changed"] is False and dom["backup"] is None, dom
            assert "at most 8 characters" in dom["error"] and "elevenchars" not in json.dumps(run)
            assert [r["code"] for r in dom["readiness"]["reasons"]] == ["vnc_password_too_long"]
        assert [(f["rule"], f["status"]) for f in checked["findings"]] == \
            [(f["rule"], f["status"]) for f in real["findings"]]
        assert gen.virsh(host, "dumpxml", "--inactive", "--security-info", name) == before   # nothing was sent
        # and the prediction "does not start" is what libvirt does
        started = gen.ssh(host, "virsh -q -c qemu:///system start %s" % name, check=False)
        assert not started.ok and "only 8 permitted" in started.stderr, str(started)
    finally:
        _clean(gen, host)
