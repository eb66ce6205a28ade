"""Upgrade readiness and machine-type hygiene over REAL capability snapshots.

The snapshots in data/snapshots/ were taken with virt_capabilities from the three generation hosts
(scripts/generations.sh: Debian 11 libvirt 7.0 / QEMU 5.2, Debian 12 9.0 / 7.2, Debian 13 11.3 / 10.0;
docs/generations.md). The expectations below are what those hosts did when such domains were
defined and started there (docs/generations.md rows 1, 5-8), stated independently of the code.
"""

from __future__ import annotations

import copy
import json
import os

import pytest

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _capabilities, _domxml, _readiness, _rules
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import InvalidRequest
from ansible_collections.virtfleet.libvirt.plugins.module_utils._plan import DomainState

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "snapshots")
HOSTS = ("bullseye", "bookworm", "trixie")


def snapshot(host):
    with open(os.path.join(DATA, host + ".json"), encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture(scope="module", name="targets")
def _targets():
    return {h: _capabilities.Target(_capabilities.validate(snapshot(h))) for h in HOSTS}


def domain(machine="pc-q35-7.2", devices="", vtype="qemu", extra="", name="d1", arch="x86_64"):
    return """<domain type='%s'>
  <name>%s</name>
  <uuid>00000000-0000-4000-8000-000000000001</uuid>
  <memory unit='KiB'>65536</memory>
  <vcpu>1</vcpu>
  <os><type arch='%s' machine='%s'>hvm</type></os>%s
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>%s
  </devices>
</domain>""" % (vtype, name, arch, machine, extra, devices)


def reasons(xml, target):
    return _readiness.check_domain(_domxml.parse(xml), target)


def codes(xml, target):
    return sorted(r["code"] for r in reasons(xml, target))


# --- the snapshots are what was measured on the hosts -----------------------------------------------

def test_the_snapshots_hold_the_measured_versions_and_machine_types():
    expected = {"bullseye": ("7.0.0", "5.2", "pc-q35-5.2", 0), "bookworm": ("9.0.0", "7.2", "pc-q35-7.2", 4),
                "trixie": ("11.3.0", "10.0", "pc-q35-10.0", 43)}
    for host, (libvirt, qemu, q35, deprecated) in expected.items():
        snap = snapshot(host)
        assert snap["virtfleet_snapshot"] == 1
        assert snap["versions"]["libvirt"] == libvirt and snap["versions"]["qemu"].startswith(qemu)
        x86 = [g for g in snap["guests"] if g["arch"] == "x86_64"][0]
        assert x86["aliases"]["q35"] == q35
        assert x86["aliases"]["pc"] == q35.replace("q35", "i440fx")
        assert len(x86["deprecated"]) == deprecated
        # small enough to keep and pass around
        assert len(json.dumps(snap)) < 64 * 1024


def test_a_snapshot_reads_back_from_its_own_json():
    for host in HOSTS:
        snap = snapshot(host)
        assert json.loads(json.dumps(snap)) == snap
        assert _capabilities.validate(copy.deepcopy(snap)) == snap


# --- machine types ------------------------------------------------------------------------------------

def test_pc_1_x_starts_on_debian_11_only(targets):
    xml = domain("pc-1.0")
    assert codes(xml, targets["bullseye"]) == []
    for host, newest in (("bookworm", "pc-i440fx-7.2"), ("trixie", "pc-i440fx-10.0")):
        found = reasons(xml, targets[host])
        assert [r["code"] for r in found] == ["machine_type_not_offered"], host
        assert "pc-1.0" in found[0]["message"] and newest in found[0]["message"], found[0]["message"]
        assert "dropped" in found[0]["message"]


def test_pc_i440fx_2_3_goes_with_debian_13_and_2_4_stays(targets):
    for machine in ("pc-i440fx-1.4", "pc-i440fx-2.3"):
        assert codes(domain(machine), targets["bookworm"]) == []
        assert codes(domain(machine), targets["trixie"]) == ["machine_type_not_offered"]
    assert codes(domain("pc-i440fx-2.4"), targets["trixie"]) == []


def test_a_newer_machine_type_does_not_start_on_an_older_qemu(targets):
    xml = domain("pc-q35-10.0")
    assert codes(xml, targets["trixie"]) == []
    for host, newest in (("bullseye", "pc-q35-5.2"), ("bookworm", "pc-q35-7.2")):
        found = reasons(xml, targets[host])
        assert [r["code"] for r in found] == ["machine_type_not_offered"]
        assert "newer" in found[0]["message"] and newest in found[0]["message"]
    assert codes(domain("pc-q35-7.2"), targets["bullseye"]) == ["machine_type_not_offered"]


def test_the_aliases_resolve_to_the_targets_newest(targets):
    for host in HOSTS:
        assert codes(domain("q35"), targets[host]) == []
        assert codes(domain("pc"), targets[host]) == []
    assert targets["trixie"].resolve("x86_64", "q35") == "pc-q35-10.0"
    assert targets["bullseye"].resolve("x86_64", "pc") == "pc-i440fx-5.2"


def test_kvm_needs_kvm_on_the_target(targets):
    # The generation trees see the machine's /dev/kvm, so libvirt offers kvm there; a host without it offers
    # only qemu (the same snapshot with kvm taken out).
    for host in HOSTS:
        assert codes(domain(vtype="kvm", machine="q35"), targets[host]) == []
        snap = snapshot(host)
        for guest in snap["guests"]:
            guest["domain_types"] = [t for t in guest["domain_types"] if t != "kvm"]
        found = reasons(domain(vtype="kvm", machine="q35"), _capabilities.Target(snap))
        assert [r["code"] for r in found] == ["virt_type_not_offered"], host
        assert "/dev/kvm" in found[0]["message"]


def test_an_unknown_architecture_is_named(targets):
    found = reasons(domain(arch="aarch64", machine="virt"), targets["bookworm"])
    assert [r["code"] for r in found] == ["arch_not_offered"]
    assert "x86_64" in found[0]["message"]


# --- devices from domcapabilities ---------------------------------------------------------------------

SPICE = ("<graphics type='spice' autoport='yes'/>"
         "<video><model type='qxl' ram='65536' vram='65536' vgamem='16384' heads='1'/></video>")


def test_spice_and_qxl_do_not_start_on_debian_13_without_the_spice_modules(targets):
    xml = domain("q35", SPICE)
    assert codes(xml, targets["bullseye"]) == [] and codes(xml, targets["bookworm"]) == []
    found = reasons(xml, targets["trixie"])
    assert sorted((r["device"]["kind"], r["code"]) for r in found) == [
        ("graphics", "device_model_not_offered"), ("video", "device_model_not_offered")]
    assert all("qemu-system-modules-spice" in r["message"] for r in found)


def test_vnc_and_virtio_video_start_everywhere(targets):
    xml = domain("q35", "<graphics type='vnc' port='-1'/><video><model type='virtio'/></video>"
                        "<disk type='file' device='disk'><source file='/x'/><target dev='vda' bus='virtio'/></disk>"
                        "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>")
    for host in HOSTS:
        assert codes(xml, targets[host]) == [], host


def test_a_bus_the_target_does_not_enumerate_is_refused_with_the_offered_ones(targets):
    xml = domain("q35", "<disk type='file' device='disk'><source file='/x'/><target dev='xvda' bus='xen'/></disk>")
    found = reasons(xml, targets["bookworm"])
    assert [r["code"] for r in found] == ["bus_not_offered"]
    assert "virtio" in found[0]["message"] and found[0]["device"]["target"] == "xvda"


def test_a_setting_older_libvirt_does_not_enumerate_is_not_guessed(targets):
    # Debian 11's libvirt 7.0 reports no <tpm> in domcapabilities: nothing is concluded from it.
    xml = domain("q35", "<tpm model='tpm-crb'><backend type='passthrough'/></tpm>")
    assert "tpm" not in snapshot("bullseye")["domain_capabilities"][0]["devices"]
    assert codes(xml, targets["bullseye"]) == []
    xml = domain("q35", "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>")
    # Debian 12 enumerates only the passthrough backend, and swtpm is not installed there.
    assert codes(xml, targets["bookworm"]) == ["device_model_not_offered", "helper_not_installed"]


# --- what libvirt itself refuses ----------------------------------------------------------------------

def test_a_long_vnc_password_is_refused_from_libvirt_9_on(targets):
    xml = domain("q35", "<graphics type='vnc' port='-1' passwd='elevenchars'/>")
    assert codes(xml, targets["bullseye"]) == []
    for host in ("bookworm", "trixie"):
        found = reasons(xml, targets[host])
        assert [r["code"] for r in found] == ["vnc_password_too_long"]
        assert "11" in found[0]["message"] and "elevenchars" not in found[0]["message"]
    assert codes(domain("q35", "<graphics type='vnc' port='-1' passwd='eightchr'/>"), targets["trixie"]) == []


def test_newer_xml_is_named_for_older_targets(targets):
    passt = "<interface type='user'><backend type='passt'/><model type='virtio'/></interface>"
    xml = domain("q35", passt)
    # 11.3 knows passt; the passt program is not installed on the Debian 13 host
    assert codes(xml, targets["trixie"]) == ["helper_not_installed"]
    assert "xml_not_understood" in codes(xml, targets["bookworm"])
    assert "xml_not_understood" in codes(xml, targets["bullseye"])
    queue = domain("q35", "<disk type='file' device='disk'><driver name='qemu' type='raw' queues='1' "
                          "queue_size='256'/><source file='/x'/><target dev='vda' bus='virtio'/></disk>")
    assert codes(queue, targets["bookworm"]) == []
    assert codes(queue, targets["bullseye"]) == ["xml_not_understood"]


def test_xml_newer_libvirt_writes_into_every_definition_is_named_for_older_targets(targets):
    # Found by the confusion matrix: libvirt >= 7.2 adds <audio type='none'/> to every QEMU domain and
    # >= 9.1 an itco watchdog to every q35 one; the older schemas refuse them (code 92 with VALIDATE).
    audio = domain("pc-i440fx-5.2", "<audio id='1' type='none'/>")
    assert codes(audio, targets["bullseye"]) == ["xml_not_understood"]
    assert codes(audio, targets["bookworm"]) == [] and codes(audio, targets["trixie"]) == []
    oss = domain("pc-i440fx-5.2", "<audio id='1' type='oss'/>")
    assert codes(oss, targets["bullseye"]) == []
    itco = domain("pc-q35-5.2", "<watchdog model='itco' action='reset'/>")
    assert codes(itco, targets["bookworm"]) == ["xml_not_understood"]
    assert codes(itco, targets["bullseye"]) == ["xml_not_understood"]
    assert codes(itco, targets["trixie"]) == []
    message = reasons(itco, targets["bookworm"])[0]["message"]
    assert "watchdog model='itco' needs libvirt >= 9.1.0" in message


def test_io_native_with_a_cache_is_refused_everywhere(targets):
    xml = domain("q35", "<disk type='file' device='disk'><driver name='qemu' type='raw' io='native'/>"
                        "<source file='/x'/><target dev='vda' bus='virtio'/></disk>")
    for host in HOSTS:
        assert codes(xml, targets[host]) == ["io_native_needs_direct_cache"]


# --- machine-type hygiene -----------------------------------------------------------------------------

def test_deprecated_machine_types_get_advice_with_the_type_to_move_to(targets):
    found = _readiness.check_machine_type(_domxml.parse(domain("pc-i440fx-2.4")), targets["trixie"], {})
    assert [(c, s) for c, s, _m in found] == [("machine-type-deprecated", "skipped")]
    assert "pc-i440fx-10.0" in found[0][2]
    assert _readiness.check_machine_type(_domxml.parse(domain("pc-i440fx-2.4")), targets["bookworm"], {}) == []
    gone = _readiness.check_machine_type(_domxml.parse(domain("pc-1.0")), targets["trixie"], {})
    assert [(c, s) for c, s, _m in gone] == [("machine-type-not-offered", "blocked")]


def test_a_domain_older_than_the_rest_of_its_family_is_named():
    norms = _readiness.group_norms([("x86_64", "pc-q35-7.2")] * 3 + [("x86_64", "pc-q35-5.2")] +
                                   [("x86_64", "pc-i440fx-7.2")])
    assert norms[("x86_64", "pc-q35")] == ("pc-q35-7.2", 3, 4)
    target = _capabilities.Target(snapshot("bookworm"))
    old = _readiness.check_machine_type(_domxml.parse(domain("pc-q35-5.2")), target, norms)
    assert [c for c, _s, _m in old] == ["machine-type-differs"]
    assert "older" in old[0][2] and "pc-q35-7.2" in old[0][2] and "3 of 4" in old[0][2]
    assert _readiness.check_machine_type(_domxml.parse(domain("pc-q35-7.2")), target, norms) == []
    # a family of one has no "rest"
    assert _readiness.check_machine_type(_domxml.parse(domain("pc-i440fx-7.2")), target, norms) == []


# --- the rules and bad input ----------------------------------------------------------------------------

def state(xml):
    root = _domxml.parse(xml)
    return DomainState(name=root.findtext("name"), uuid=root.findtext("uuid"), active=False, persistent=True,
                       inactive_xml=xml)


def test_the_rule_reports_blocked_findings_and_never_edits():
    rule = _rules.build({"upgrade_readiness": {"target": snapshot("trixie")}})[0]
    st = state(domain("pc-1.0", SPICE))
    found = rule.plan(st)
    assert {c.status for c in found} == {"blocked"} and not any(c.actionable for c in found)
    assert {c.check for c in found} == {"upgrade_readiness"}
    summary = rule.annotate(st)["readiness"]
    assert summary["starts"] is False and summary["target"] == "trixie libvirt 11.3.0 qemu 10.0.13"
    assert sorted(r["code"] for r in summary["reasons"]) == [
        "device_model_not_offered", "device_model_not_offered", "machine_type_not_offered"]


@pytest.mark.parametrize("bad, words", [
    ("text", "expected a capability snapshot"),
    ({"versions": {}}, "no 'virtfleet_snapshot' key"),
    ({"virtfleet_snapshot": 99}, "update the"),
    ({"virtfleet_snapshot": 1, "versions": {"libvirt": "x"}, "guests": [], "domain_capabilities": []},
     "versions.libvirt"),
])
def test_a_bad_target_is_refused_before_anything_is_read(bad, words):
    with pytest.raises(InvalidRequest) as err:
        _rules.build({"upgrade_readiness": {"target": bad}})
    assert words.lower() in err.value.msg.lower()
    assert "rules.upgrade_readiness.target" in err.value.msg and "virt_capabilities" in err.value.msg


# --- measured on the three hosts by tests/generations/test_readiness.py (define + start) ---------------

SKY = "<cpu mode='custom' match='exact'%s><model fallback='%s'>Skylake-Client</model></cpu>"


def test_cpu_modes_and_models_as_tcg_runs_them(targets):
    for host in HOSTS:
        t = targets[host]
        assert codes(domain("q35", extra="<cpu mode='host-passthrough'/>"), t) == ["cpu_mode_not_offered"]
        assert codes(domain("q35", extra="<cpu mode='host-model'/>"), t) == []
        # Skylake is not usable under TCG: it starts unless check='full' compares the result
        assert codes(domain("q35", extra=SKY % ("", "forbid")), t) == []
        assert codes(domain("q35", extra=SKY % (" check='none'", "forbid")), t) == []
        assert codes(domain("q35", extra=SKY % (" check='full'", "allow")), t) == ["cpu_model_not_usable"]
        # a model QEMU does not know fails whatever the fallback
        unknown = "<cpu mode='custom' match='exact'><model fallback='allow'>NoSuchCPU</model></cpu>"
        assert codes(domain("q35", extra=unknown), t) == ["cpu_model_not_offered"]
    # libvirt 7.0 has no 'maximum' mode yet
    assert codes(domain("q35", extra="<cpu mode='maximum'/>"), targets["bullseye"]) == ["cpu_mode_not_offered"]
    assert codes(domain("q35", extra="<cpu mode='maximum'/>"), targets["bookworm"]) == []


def test_efi_needs_a_firmware_and_acpi(targets):
    efi = domain("q35", extra="<features><acpi/></features>").replace("<os>", "<os firmware='efi'>")
    for host in HOSTS:
        # no ovmf in the trees: libvirt's firmware enum is empty
        assert codes(efi, targets[host]) == ["firmware_not_offered"]
        assert "ovmf" in reasons(efi, targets[host])[0]["message"]
    snap = snapshot("bookworm")
    for entry in snap["domain_capabilities"]:
        entry["os"]["firmware"] = ["bios", "efi"]
    with_ovmf = _capabilities.Target(snap)
    assert codes(efi, with_ovmf) == []
    assert codes(domain("q35").replace("<os>", "<os firmware='efi'>"), with_ovmf) == ["firmware_needs_acpi"]


def test_helper_programs_libvirt_runs_must_be_installed(targets):
    # domcapabilities list passt (Debian 13) and swtpm backends whether or not the program is there
    passt = domain("q35", devices="<interface type='user'><backend type='passt'/><model type='virtio'/></interface>")
    assert snapshot("trixie")["helpers"] == {"passt": False, "swtpm": False}
    assert codes(passt, targets["trixie"]) == ["helper_not_installed"]
    assert "install the passt package" in reasons(passt, targets["trixie"])[0]["message"]
    snap = snapshot("trixie")
    snap["helpers"]["passt"] = True
    assert codes(passt, _capabilities.Target(snap)) == []
    del snap["helpers"]   # an older snapshot, or one taken through a remote URI: not known, not guessed
    assert codes(passt, _capabilities.Target(snap)) == []
    tpm = domain("q35", devices="<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>")
    assert codes(tpm, targets["bullseye"]) == ["helper_not_installed"]


def test_spice_character_devices_need_spice_graphics_from_libvirt_9(targets):
    redir = domain("q35", devices="<redirdev bus='usb' type='spicevmc'/>")
    assert codes(redir, targets["bullseye"]) == []
    assert codes(redir, targets["bookworm"]) == ["spice_chardev_without_spice"]
    assert codes(domain("q35", devices="<graphics type='spice'/><redirdev bus='usb' type='spicevmc'/>"),
                 targets["bookworm"]) == []
