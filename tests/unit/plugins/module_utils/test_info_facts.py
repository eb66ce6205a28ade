"""_info.domain_facts and _info.lookup: the canonical facts virt_domain_info returns."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _domxml, _info, _select
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import InvalidRequest
from ansible_collections.virtfleet.libvirt.plugins.module_utils._plan import DomainState
from ansible_collections.virtfleet.libvirt.plugins.modules import virt_domain_info

from ansible_collections.virtfleet.libvirt.tests.unit._support import read_golden

H = _select.hash8
NAME, UUID = "web02", "7c1b4d1e-4a55-4e0f-9a0e-3f2b1c0d9e07"


def _doc_return():
    return yaml.safe_load(virt_domain_info.RETURN)


def _c_names(text):
    return re.findall(r"C\((\w+)\)", text)


DOMAIN_KEYS = sorted(_doc_return()["domains"]["contains"])
_DEV_DOC = _doc_return()["domains"]["contains"]["devices"]["description"]
DEVICE_KEYS = _c_names(_DEV_DOC[0])
DISK_KEYS = _c_names(_DEV_DOC[1])
# "Graphics also have C(type), ...": the keys only some kinds have, as documented
_KIND_LINES = {"graphics": "Graphics", "lease": "Leases", "redirfilter": "USB redirection filters",
               "crypto": "Crypto devices"}
KIND_KEYS = {kind: _c_names(next(line for line in _DEV_DOC if line.startswith(label + " also have")).split(";")[0])
             for kind, label in _KIND_LINES.items()}
N_DEVICES = 28   # alias-running-in.xml: 27 attachable devices and the graphics


def running(inactive="alias-running-in.xml", live="alias-running-live.xml"):
    return DomainState(name=NAME, uuid=UUID, active=True, persistent=True, inactive_xml=read_golden(inactive),
                       live_xml=read_golden(live), state="running")


def shut_off(inactive="alias-running-in.xml"):
    return DomainState(name=NAME, uuid=UUID, active=False, persistent=True, inactive_xml=read_golden(inactive),
                       state="shut off")


def by_path(facts):
    return {d["path"]: d for d in facts["devices"]}


# --- documented keys ------------------------------------------------------------------------------------

def test_documented_keys_are_what_the_doc_says():
    # guard for the doc parsing itself
    assert DEVICE_KEYS[:4] == ["kind", "index", "path", "target"] and DEVICE_KEYS[-1] == "live_differs"
    assert DISK_KEYS == ["cache", "io", "cache_set", "io_set", "writeback", "direct", "no_flush", "format"]
    assert KIND_KEYS == {"graphics": ["type", "port", "tls_port", "autoport", "listen"],
                         "lease": ["lockspace", "key", "target_path", "offset"], "redirfilter": ["usbdev"],
                         "crypto": ["type"]}
    assert _c_names(_doc_return()["domains"]["contains"]["audio"]["description"][0]) == ["id", "type", "path"]
    assert {k: list(v) for k, v in _info.KIND_KEYS.items()} == KIND_KEYS


def _expected_keys(dev):
    return set(DEVICE_KEYS) | (set(DISK_KEYS) if dev["kind"] == "disk" else set()) | set(KIND_KEYS.get(dev["kind"], ()))


@pytest.mark.parametrize("state", [running(), shut_off()], ids=["running", "shut-off"])
def test_every_documented_key_for_every_device(state):
    facts = _info.domain_facts(state)
    assert sorted(facts) == DOMAIN_KEYS
    assert len(facts["devices"]) == N_DEVICES
    for dev in facts["devices"] + facts["live_only_devices"]:
        expected = _expected_keys(dev)
        assert set(dev) == expected, (dev["path"], set(dev) ^ expected)


def test_domain_identity_and_machine():
    facts = _info.domain_facts(running())
    assert {k: facts[k] for k in ("name", "uuid", "state", "active", "persistent", "domain_type", "machine", "arch")} \
        == {"name": NAME, "uuid": UUID, "state": "running", "active": True, "persistent": True, "domain_type": "kvm",
            "machine": "pc-q35-7.2", "arch": "x86_64"}
    assert facts["lookup"] == []


def test_machine_and_arch_none_when_absent():
    xml = "<domain type='qemu'><name>x</name><devices/></domain>"
    facts = _info.domain_facts(DomainState("x", UUID, False, True, xml, state="shut off"))
    assert (facts["domain_type"], facts["machine"], facts["arch"], facts["devices"]) == ("qemu", None, None, [])
    xml = "<domain type='kvm'><name>x</name><os><type>hvm</type></os></domain>"
    facts = _info.domain_facts(DomainState("x", UUID, False, True, xml))
    assert (facts["machine"], facts["arch"], facts["devices"]) == (None, None, [])


def test_devices_in_document_order_with_index_and_path():
    facts = _info.domain_facts(shut_off())
    assert [d["index"] for d in facts["devices"]] == list(range(N_DEVICES))
    assert [d["kind"] for d in facts["devices"][:4]] == ["disk", "disk", "controller", "controller"]
    assert facts["devices"][0]["path"] == "/domain/devices/disk[1]"
    root = _domxml.parse(read_golden("alias-running-in.xml"))
    # every child of <devices> but <emulator>, in document order
    children = [el for el in root.find("devices") if isinstance(el.tag, str) and el.tag != "emulator"]
    assert [d["kind"] for d in facts["devices"]] == [el.tag for el in children]
    assert [d["path"] for d in facts["devices"]] == [root.getroottree().getpath(el) for el in children]
    # the attachable ones keep the paths lookup and the alias rule use
    attachable = [d["path"] for d in facts["devices"] if d["kind"] != "graphics"]
    assert attachable == [e[0] for e in _select.entries(root)]


def test_disk_facts():
    devs = by_path(_info.domain_facts(shut_off()))
    vda, sda = devs["/domain/devices/disk[1]"], devs["/domain/devices/disk[2]"]
    assert {k: vda[k] for k in DISK_KEYS} == {"cache": "none", "io": "native", "cache_set": True, "io_set": True,
                                              "writeback": True, "direct": True, "no_flush": False, "format": "qcow2"}
    # nothing set: the effective defaults, and *_set say so
    assert {k: sda[k] for k in DISK_KEYS} == {"cache": "writeback", "io": "threads", "cache_set": False,
                                              "io_set": False, "writeback": True, "direct": False, "no_flush": False,
                                              "format": "raw"}
    assert (vda["target"], vda["bus"], vda["device"], vda["serial"], vda["wwn"], vda["mac"]) == (
        "vda", "virtio", "disk", None, None, None)
    assert vda["source"] == "/var/lib/libvirt/images/web02-root.qcow2"
    assert vda["address"] == "0000:04:00.0"
    assert (sda["serial"], sda["address"]) == ("SCSI-WEB02-1", "drive:controller=0:bus=0:target=0:unit=1")


@pytest.mark.parametrize("cache,flags", [
    ("writethrough", (False, False, False)), ("directsync", (False, True, False)), ("unsafe", (True, False, True)),
    ("writeback", (True, False, False)),
])
def test_disk_cache_flags(cache, flags):
    xml = ("<domain type='kvm'><name>x</name><devices><disk type='file' device='disk'><driver name='qemu' cache='%s'/>"
           "<source file='/a'/><target dev='vda'/></disk></devices></domain>" % cache)
    (dev,) = _info.domain_facts(DomainState("x", UUID, False, True, xml))["devices"]
    assert (dev["cache"], dev["io"], dev["cache_set"], dev["io_set"]) == (cache, "threads", True, False)
    assert (dev["writeback"], dev["direct"], dev["no_flush"]) == flags
    assert dev["format"] is None


def test_other_device_facts():
    devs = by_path(_info.domain_facts(shut_off()))
    nic = devs["/domain/devices/interface"]
    assert (nic["mac"], nic["source"], nic["model"], nic["interfaceid"], nic["target"]) == (
        "52:54:00:5a:01:02", "default", "virtio", None, None)
    hostdev = devs["/domain/devices/hostdev"]
    assert (hostdev["subsystem"], hostdev["source"], hostdev["address"], hostdev["model"]) == (
        "pci", "0000:3b:00.1", "0000:05:00.0", None)
    assert devs["/domain/devices/rng"]["model"] == "virtio"
    assert devs["/domain/devices/controller[1]"]["model"] == "qemu-xhci"
    assert devs["/domain/devices/controller[3]"]["model"] == "pcie-root-port"
    assert devs["/domain/devices/video"]["model"] == "virtio"
    for dev in devs.values():
        if dev["kind"] != "disk":
            assert dev["device"] is None and dev["wwn"] is None
        if dev["kind"] != "hostdev":
            assert dev["subsystem"] is None


def test_shut_off_domain_has_no_live_facts():
    facts = _info.domain_facts(shut_off())
    assert facts["live_only_devices"] == []
    for dev in facts["devices"]:
        assert (dev["live"], dev["live_alias"], dev["live_differs"], dev["persistent"]) == (None, None, [], True)


def test_running_domain_live_aliases_before_the_fix():
    devs = by_path(_info.domain_facts(running()))
    for path, live_alias in [("/domain/devices/disk[1]", "virtio-disk0"), ("/domain/devices/disk[2]", "scsi0-0-0-1"),
                             ("/domain/devices/interface", "net0"), ("/domain/devices/hostdev", "hostdev0"),
                             ("/domain/devices/rng", "rng0"), ("/domain/devices/controller[2]", "pcie.0"),
                             ("/domain/devices/input[1]", "input0")]:
        dev = devs[path]
        assert (dev["alias"], dev["live_alias"], dev["live"], dev["persistent"]) == (None, live_alias, True, True)
        # what only libvirt fills in live (automatic aliases, the tap name vnet3, <source index=...>,
        # <backingStore/>) is not a difference of the definition
        assert dev["live_differs"] == [], (path, dev["live_differs"])
    assert all(d["live"] is True for d in devs.values())
    # graphics are listed too; the port libvirt picked for autoport (5900 live, -1 defined) is no difference
    gfx = devs["/domain/devices/graphics"]
    assert {k: gfx[k] for k in KIND_KEYS["graphics"] + ["live", "live_alias", "live_differs", "alias"]} == {
        "type": "vnc", "port": "-1", "tls_port": None, "autoport": "yes", "listen": "127.0.0.1", "live": True,
        "live_alias": None, "live_differs": [], "alias": None}


def test_fixed_but_not_cold_booted_domain_shows_both_aliases():
    devs = by_path(_info.domain_facts(running(inactive="alias-running-out.xml")))
    vda = devs["/domain/devices/disk[1]"]
    assert vda["alias"] == "ua-disk-web02-root-qcow2-%s" % H("/var/lib/libvirt/images/web02-root.qcow2")
    assert vda["live_alias"] == "virtio-disk0"
    # only the alias differs: live_differs says exactly that, for every device that got one
    for path, live_alias in [("/domain/devices/disk[1]", "virtio-disk0"), ("/domain/devices/disk[2]", "scsi0-0-0-1"),
                             ("/domain/devices/interface", "net0"), ("/domain/devices/hostdev", "hostdev0"),
                             ("/domain/devices/rng", "rng0")]:
        dev = devs[path]
        assert dev["alias"].startswith("ua-") and dev["live_alias"] == live_alias
        assert dev["live_differs"] == ["alias"], (path, dev["live_differs"])
    assert {p for p, d in devs.items() if d["live_differs"]} == {
        "/domain/devices/disk[1]", "/domain/devices/disk[2]", "/domain/devices/interface", "/domain/devices/hostdev",
        "/domain/devices/rng"}


def test_cold_booted_domain_differs_in_nothing():
    out = "alias-running-out.xml"
    devs = by_path(_info.domain_facts(running(inactive=out, live=out)))
    assert all(d["live_differs"] == [] and d["live"] is True for d in devs.values())
    assert all(d["alias"] == d["live_alias"] for d in devs.values())


def test_live_differs_names_each_key():
    xml = ("<domain type='kvm'><name>x</name><devices><disk type='file' device='disk'>"
           "<driver name='qemu' cache='none'/><source file='/a'/><target dev='vda'/><alias name='ua-a'/>"
           "<address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/></disk>"
           "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng></devices></domain>")
    live = (xml.replace("cache='none'", "cache='writeback'").replace("/a'", "/b'").replace("bus='0x04'", "bus='0x05'")
            .replace("<rng model='virtio'>", "<rng model='virtio-transitional'>"))
    facts = _info.domain_facts(DomainState("x", UUID, True, True, xml, live, "running"))
    assert [d["live_differs"] for d in facts["devices"]] == [["address", "source", "cache"], ["model"]]


def test_device_missing_from_the_running_domain_is_absent():
    xml = read_golden("alias-running-in.xml")
    live = read_golden("alias-running-live.xml").replace("<rng model='virtio'>", "<tpm model='tpm-crb'>").replace(
        "</rng>", "</tpm>")
    devs = by_path(_info.domain_facts(DomainState(NAME, UUID, True, True, xml, live, "running")))
    rng = devs["/domain/devices/rng"]
    assert (rng["live"], rng["live_alias"], rng["live_differs"]) == (False, None, ["absent"])


def test_live_only_devices():
    facts = _info.domain_facts(running())
    (hot,) = facts["live_only_devices"]
    assert (hot["kind"], hot["target"], hot["index"], hot["persistent"], hot["live"], hot["alias"], hot["live_alias"],
            hot["source"], hot["path"]) == ("disk", "vdb", None, False, True, None, "virtio-disk1",
                                            "/var/lib/libvirt/images/web02-hot.raw", "/domain/devices/disk[2]")


# --- beyond the attachable kinds: graphics, leases, redirfilters, nvram, crypto, pstore; audio backends ----

SECRET = "Gfx-s3cr3t-9"
MORE = """<domain type='kvm'>
  <name>x</name>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><source file='/a.img'/><target dev='vda' bus='virtio'/></disk>
    <lease>
      <lockspace>somearea</lockspace>
      <key>somekey</key>
      <target path='/some/lease/path' offset='1024'/>
    </lease>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' passwd='%(secret)s' keymap='en-us'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
    <graphics type='spice' port='5903' tlsPort='5904' autoport='no' passwd='%(secret)s'>
      <listen type='network' network='rednet'/>
      <channel name='main' mode='secure'/>
    </graphics>
    <graphics type='vnc' socket='/run/vnc.sock'/>
    <graphics type='egl-headless'/>
    <sound model='ich9'><audio id='1'/></sound>
    <audio id='1' type='spice'/>
    <audio id='2' type='file' path='/tmp/out.wav'/>
    <redirdev bus='usb' type='spicevmc'/>
    <redirfilter>
      <usbdev class='0x08' vendor='0x1234' product='0xBEEF' version='2.0' allow='yes'/>
      <usbdev allow='no'/>
    </redirfilter>
    <nvram><address type='spapr-vio' reg='0x00003000'/></nvram>
    <crypto model='virtio' type='qemu'><backend model='builtin' queues='1'/></crypto>
    <pstore backend='acpi-erst'><path>/var/lib/libvirt/qemu/nvram/x.pstore</path><size unit='KiB'>8</size></pstore>
  </devices>
</domain>""" % {"secret": SECRET}


def _more(live=None, xml=MORE):
    if live is None:
        return DomainState("x", UUID, False, True, xml, state="shut off")
    return DomainState("x", UUID, True, True, xml, live, "running")


def test_every_device_kind_is_listed_in_document_order():
    facts = _info.domain_facts(_more())
    assert [d["kind"] for d in facts["devices"]] == [
        "disk", "lease", "graphics", "graphics", "graphics", "graphics", "sound", "redirdev", "redirfilter", "nvram",
        "crypto", "pstore"]
    assert [d["index"] for d in facts["devices"]] == list(range(12))
    assert [d["path"] for d in facts["devices"]][1:4] == [
        "/domain/devices/lease", "/domain/devices/graphics[1]", "/domain/devices/graphics[2]"]
    for dev in facts["devices"]:
        assert set(dev) == _expected_keys(dev), (dev["path"], set(dev) ^ _expected_keys(dev))


def test_graphics_facts_never_the_password():
    facts = _info.domain_facts(_more())
    gfx = [{k: d[k] for k in KIND_KEYS["graphics"]} for d in facts["devices"] if d["kind"] == "graphics"]
    assert gfx == [
        {"type": "vnc", "port": "-1", "tls_port": None, "autoport": "yes", "listen": "127.0.0.1"},
        {"type": "spice", "port": "5903", "tls_port": "5904", "autoport": "no", "listen": "network:rednet"},
        {"type": "vnc", "port": None, "tls_port": None, "autoport": None, "listen": "socket:/run/vnc.sock"},
        {"type": "egl-headless", "port": None, "tls_port": None, "autoport": None, "listen": None},
    ]
    text = json.dumps(facts)
    assert SECRET not in text and "passwd" not in text


@pytest.mark.parametrize("listen,expected", [
    ("<listen type='address' address='::1'/>", "::1"),
    ("<listen type='address'/>", None),                           # the host's default (qemu.conf)
    ("<listen type='socket' socket='/s'/>", "socket:/s"),
    ("<listen type='socket'/>", "socket"),                        # a socket libvirt generates
    ("<listen type='none'/>", "none"),
    ("", "0.0.0.0"),                                              # only the legacy attribute
])
def test_graphics_listen(listen, expected):
    attr = " listen='0.0.0.0'" if not listen else ""
    xml = ("<domain type='kvm'><name>x</name><devices><graphics type='vnc' port='5900'%s>%s</graphics>"
           "</devices></domain>" % (attr, listen))
    (dev,) = _info.domain_facts(_more(xml=xml))["devices"]
    assert dev["listen"] == expected


def test_audio_backends_are_listed_by_id_not_as_devices():
    facts = _info.domain_facts(_more())
    assert facts["audio"] == [{"id": "1", "type": "spice", "path": "/domain/devices/audio[1]"},
                              {"id": "2", "type": "file", "path": "/domain/devices/audio[2]"}]
    assert "audio" not in [d["kind"] for d in facts["devices"] + facts["live_only_devices"]]
    # the persistent definition's: a running domain's live-only backend is not listed
    live = MORE.replace("</devices>", "<audio id='3' type='none'/></devices>")
    facts = _info.domain_facts(_more(live))
    assert [a["id"] for a in facts["audio"]] == ["1", "2"] and facts["live_only_devices"] == []
    assert _info.domain_facts(_more(xml="<domain type='kvm'><name>x</name></domain>"))["audio"] == []


def test_lease_redirfilter_crypto_pstore_nvram_facts():
    devs = by_path(_info.domain_facts(_more()))
    lease = devs["/domain/devices/lease"]
    assert {k: lease[k] for k in KIND_KEYS["lease"]} == {
        "lockspace": "somearea", "key": "somekey", "target_path": "/some/lease/path", "offset": "1024"}
    assert devs["/domain/devices/redirfilter"]["usbdev"] == [
        {"class": "0x08", "vendor": "0x1234", "product": "0xBEEF", "version": "2.0", "allow": "yes"},
        {"class": None, "vendor": None, "product": None, "version": None, "allow": "no"}]
    crypto = devs["/domain/devices/crypto"]
    assert (crypto["model"], crypto["type"]) == ("virtio", "qemu")
    pstore = devs["/domain/devices/pstore"]
    assert (pstore["model"], pstore["source"]) == ("acpi-erst", "/var/lib/libvirt/qemu/nvram/x.pstore")
    assert devs["/domain/devices/nvram"]["address"].startswith("spapr-vio")
    # the sound device and its <audio id='1'/> reference are unchanged
    assert devs["/domain/devices/sound"]["model"] == "ich9"


def test_more_kinds_pair_with_the_running_domain():
    live = (MORE.replace("port='-1' autoport='yes'", "port='5900' autoport='yes'")
            .replace("<listen type='network' network='rednet'/>",
                     "<listen type='network' network='rednet' address='192.168.100.1'/>")
            .replace("<crypto model='virtio' type='qemu'>", "<crypto model='virtio' type='qemu'><alias name='crypto0'/>")
            .replace("<usbdev allow='no'/>", "<usbdev allow='yes'/>"))
    devs = by_path(_info.domain_facts(_more(live)))
    assert all(d["live"] is True for d in devs.values())
    # an autoport port and a network listen's address are filled in live only: no difference
    assert devs["/domain/devices/graphics[1]"]["live_differs"] == []
    assert devs["/domain/devices/graphics[2]"]["live_differs"] == []
    assert devs["/domain/devices/crypto"]["live_alias"] == "crypto0"
    assert devs["/domain/devices/redirfilter"]["live_differs"] == ["usbdev"]
    moved = MORE.replace("<listen type='address' address='127.0.0.1'/>", "<listen type='address' address='0.0.0.0'/>")
    devs = by_path(_info.domain_facts(_more(moved)))
    assert devs["/domain/devices/graphics[1]"]["live_differs"] == ["listen"]
    extra = MORE.replace("</devices>", "<graphics type='dbus'/></devices>")
    (hot,) = _info.domain_facts(_more(extra))["live_only_devices"]
    assert (hot["kind"], hot["type"], hot["persistent"], hot["live"]) == ("graphics", "dbus", False, True)


def test_lookup_stays_on_attachable_devices():
    facts = _info.domain_facts(_more(), [{"source": "/var/lib/libvirt/qemu/nvram/x.pstore"}, {"target": "vda"}])
    assert [(r["count"], r["matched_by"]) for r in facts["lookup"]] == [(0, None), (1, "target")]
    live = MORE.replace("<crypto model='virtio' type='qemu'>", "<crypto model='virtio' type='qemu'><alias name='crypto0'/>")
    (got,) = _info.domain_facts(_more(live), [{"alias": "crypto0"}])["lookup"]
    assert got["count"] == 0


# --- lookup ---------------------------------------------------------------------------------------------

def _lookup(state, selector):
    (result,) = _info.domain_facts(state, [selector])["lookup"]
    return result


def test_lookup_alias_direct():
    got = _lookup(running(inactive="alias-running-out.xml"), {"alias": "ua-disk-SCSI-WEB02-1"})
    assert got == {"selector": {"alias": "ua-disk-SCSI-WEB02-1"}, "matched_by": "alias", "found_in": "persistent",
                   "count": 1,
                   "devices": [{"path": "/domain/devices/disk[2]", "kind": "disk", "alias": "ua-disk-SCSI-WEB02-1",
                                "target": "sda", "mac": None, "serial": "SCSI-WEB02-1",
                                "source": "/var/lib/libvirt/images/web02-scsi.raw"}]}


@pytest.mark.parametrize("alias,path,basis", [
    ("ua-disk-SCSI-WEB02-1", "/domain/devices/disk[2]", "serial"),
    ("ua-disk-web02-root-qcow2-%s" % H("/var/lib/libvirt/images/web02-root.qcow2"), "/domain/devices/disk[1]",
     "source"),
    ("ua-net-5254005a0102", "/domain/devices/interface", "mac"),
    ("ua-hostdev-0000-3b-00-1", "/domain/devices/hostdev", "source"),
])
def test_lookup_alias_falls_back_to_derived_on_alias_less_definition(alias, path, basis):
    for state in (shut_off(), running()):
        got = _lookup(state, {"alias": alias})
        assert (got["matched_by"], got["found_in"], got["count"], [d["path"] for d in got["devices"]]) == (
            basis, "persistent", 1, [path])


def test_lookup_interfaceid_fallback():
    xml = ("<domain type='kvm'><name>x</name><devices><interface type='bridge'><mac address='52:54:00:00:00:01'/>"
           "<virtualport type='openvswitch'><parameters interfaceid='09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f'/>"
           "</virtualport></interface></devices></domain>")
    (got,) = _info.domain_facts(DomainState("x", UUID, False, True, xml),
                                [{"alias": "ua-net-09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f"}])["lookup"]
    assert (got["matched_by"], got["count"]) == ("interfaceid", 1)


@pytest.mark.parametrize("selector,matched_by,path", [
    ({"serial": "SCSI-WEB02-1"}, "serial", "/domain/devices/disk[2]"),
    ({"mac": "52:54:00:5A:01:02"}, "mac", "/domain/devices/interface"),
    ({"target": "vda"}, "target", "/domain/devices/disk[1]"),
    ({"source": "/var/lib/libvirt/images/web02-scsi.raw"}, "source", "/domain/devices/disk[2]"),
    ({"source": "0000:3b:00.1"}, "source", "/domain/devices/hostdev"),
])
def test_lookup_direct_keys_persistent_first(selector, matched_by, path):
    got = _lookup(running(), selector)
    assert (got["matched_by"], got["found_in"], got["count"], got["devices"][0]["path"]) == (
        matched_by, "persistent", 1, path)
    assert got["selector"] == selector


@pytest.mark.parametrize("selector,matched_by", [
    ({"target": "vdb"}, "target"),                       # hot-plugged: only live has it
    ({"alias": "virtio-disk1"}, "alias"),
    ({"alias": "net0"}, "alias"),                        # automatic aliases exist only live
    ({"target": "vnet3"}, "target"),                     # interface target dev, live only
    ({"source": "/var/lib/libvirt/images/web02-hot.raw"}, "source"),
    ({"alias": "ua-disk-web02-hot-raw-%s" % H("/var/lib/libvirt/images/web02-hot.raw")}, "source"),   # live fallback
])
def test_lookup_found_only_live(selector, matched_by):
    got = _lookup(running(), selector)
    assert (got["matched_by"], got["found_in"], got["count"]) == (matched_by, "live", 1)
    # and a shut-off domain has no live definition to look in
    got = _lookup(shut_off(), selector)
    assert (got["matched_by"], got["found_in"], got["count"], got["devices"]) == (None, None, 0, [])


@pytest.mark.parametrize("selector", [{"alias": "ua-nope"}, {"serial": "nope"}, {"mac": "52:54:00:00:00:00"},
                                      {"target": "vdz"}, {"source": "/nope"}])
def test_lookup_no_match(selector):
    got = _lookup(running(), selector)
    assert got == {"selector": selector, "matched_by": None, "found_in": None, "count": 0, "devices": []}


def test_lookup_several_devices_counted():
    xml = ("<domain type='kvm'><name>x</name><devices>"
           "<interface type='network'><mac address='52:54:00:12:34:56'/><source network='a'/></interface>"
           "<interface type='network'><mac address='52:54:00:12:34:56'/><source network='b'/></interface>"
           "</devices></domain>")
    state = DomainState("x", UUID, False, True, xml)
    (by_mac, by_alias2) = _info.domain_facts(state, [{"mac": "52:54:00:12:34:56"},
                                                     {"alias": "ua-net-525400123456-2"}])["lookup"]
    assert (by_mac["count"], by_mac["matched_by"]) == (2, "mac")
    assert [d["path"] for d in by_alias2["devices"]] == ["/domain/devices/interface[2]"]
    assert by_alias2["matched_by"] == "mac"


def test_lookup_results_in_selector_order_and_selector_copied():
    selector = {"target": "vda"}
    facts = _info.domain_facts(running(), [{"target": "sda"}, selector, {"alias": "nope"}])
    assert [r["selector"] for r in facts["lookup"]] == [{"target": "sda"}, {"target": "vda"}, {"alias": "nope"}]
    assert facts["lookup"][1]["selector"] is not selector


@pytest.mark.parametrize("selector", [{}, {"alias": "ua-a", "target": "vda"}, {"bogus": 1}, "vda"])
def test_lookup_invalid_selector(selector):
    with pytest.raises(InvalidRequest):
        _info.domain_facts(running(), [selector])


def test_lookup_function_directly():
    devs = _select.entries(_domxml.parse(read_golden("alias-running-in.xml")))
    assert _info.lookup(devs, [], {"target": "vdb"})["found_in"] is None
    live = _select.entries(_domxml.parse(read_golden("alias-running-live.xml")))
    assert _info.lookup(devs, live, {"target": "vdb"})["found_in"] == "live"
