"""facts_diff: what the rolling upgrade compares before and after a host upgrade."""

from __future__ import annotations

import copy

from ansible_collections.virtfleet.libvirt.plugins.filter.facts_diff import FilterModule, facts_diff

BEFORE = {"domains": [
    {"name": "web01", "uuid": "u1", "machine": "pc-q35-7.2", "domain_type": "kvm", "arch": "x86_64", "devices": [
        {"kind": "disk", "target": "vda", "address": "0000:04:00.0", "alias": "ua-disk-a", "mac": None,
         "bus": "virtio", "source": "/img/a.qcow2", "model": None, "path": "/domain/devices/disk[1]"},
        {"kind": "interface", "target": None, "address": "0000:01:00.0", "alias": None, "mac": "52:54:00:00:00:01",
         "bus": None, "source": "default", "model": "virtio", "path": "/domain/devices/interface"},
    ]},
    {"name": "db01", "uuid": "u2", "machine": "pc-i440fx-7.2", "domain_type": "kvm", "arch": "x86_64", "devices": []},
]}


def test_unchanged_facts_give_no_differences_even_with_live_side_changes():
    after = copy.deepcopy(BEFORE)
    after["domains"][0]["devices"][0]["live_alias"] = "virtio-disk0"   # live side is not compared
    after["domains"].reverse()                                         # order of domains does not matter
    assert facts_diff(BEFORE, after) == []
    assert facts_diff(BEFORE["domains"], after["domains"]) == []


def test_machine_type_and_address_changes_are_named():
    after = copy.deepcopy(BEFORE)
    after["domains"][0]["machine"] = "pc-q35-8.0"
    after["domains"][0]["devices"][1]["address"] = "0000:02:00.0"
    assert facts_diff(BEFORE, after) == [
        "web01: machine pc-q35-7.2 -> pc-q35-8.0",
        "web01: device 1 (interface 52:54:00:00:00:01) address 0000:01:00.0 -> 0000:02:00.0",
    ]


def test_device_order_alias_mac_and_domain_set_changes():
    after = copy.deepcopy(BEFORE)
    devs = after["domains"][0]["devices"]
    devs.reverse()
    after["domains"].pop()            # db01 gone
    after["domains"].append({"name": "new01", "uuid": "u3", "devices": []})
    diff = facts_diff(BEFORE, after)
    assert "db01: domain disappeared" in diff and "new01: domain appeared" in diff
    assert any(line.startswith("web01: device 0 (disk vda) kind disk -> interface") for line in diff)
    short = copy.deepcopy(BEFORE)
    short["domains"][0]["devices"].pop()
    assert "web01: 2 devices -> 1" in facts_diff(BEFORE, short)


def test_registered_as_a_filter():
    assert FilterModule().filters()["facts_diff"] is facts_diff


# --- graphics, leases, USB redirection filters (virt_domain_info lists them too), audio backends ----------

GFX = {"kind": "graphics", "path": "/domain/devices/graphics", "target": None, "address": None, "alias": None,
       "mac": None, "bus": None, "source": None, "model": None,
       "type": "vnc", "port": "-1", "tls_port": None, "autoport": "yes", "listen": "127.0.0.1"}
LEASE = {"kind": "lease", "path": "/domain/devices/lease", "alias": None, "target": None, "lockspace": "somearea",
         "key": "somekey", "target_path": "/some/lease/path", "offset": "1024"}
FILTER = {"kind": "redirfilter", "path": "/domain/devices/redirfilter", "alias": None, "target": None, "usbdev": [
    {"class": "0x08", "vendor": "0x1234", "product": "0xbeef", "version": "2.0", "allow": "yes"},
    {"class": None, "vendor": None, "product": None, "version": None, "allow": "no"}]}


def _with_more():
    before = copy.deepcopy(BEFORE)
    before["domains"][0]["devices"] += copy.deepcopy([GFX, LEASE, FILTER])
    before["domains"][0]["audio"] = [{"id": "1", "type": "spice", "path": "/domain/devices/audio"}]
    return before


def _changed(**changes):
    before = _with_more()
    after = copy.deepcopy(before)
    devs = {d["kind"]: d for d in after["domains"][0]["devices"]}
    for kind_key, value in changes.items():
        kind, key = kind_key.split("__")
        devs[kind][key] = value
    return facts_diff(before, after)


def test_more_kinds_unchanged_give_no_differences():
    before = _with_more()
    assert facts_diff(before, copy.deepcopy(before)) == []


def test_graphics_changes_are_named():
    assert _changed(graphics__listen="0.0.0.0") == [
        "web01: device 2 (graphics vnc) listen 127.0.0.1 -> 0.0.0.0"]
    assert _changed(graphics__type="spice", graphics__port="5901", graphics__tls_port="5902",
                    graphics__autoport="no") == [
        "web01: device 2 (graphics vnc) type vnc -> spice",
        "web01: device 2 (graphics vnc) port -1 -> 5901",
        "web01: device 2 (graphics vnc) tls_port None -> 5902",
        "web01: device 2 (graphics vnc) autoport yes -> no",
    ]


def test_lease_and_redirfilter_changes_are_named():
    assert _changed(lease__lockspace="other", lease__key="k2", lease__target_path="/other", lease__offset="0") == [
        "web01: device 3 (lease /some/lease/path) lockspace somearea -> other",
        "web01: device 3 (lease /some/lease/path) key somekey -> k2",
        "web01: device 3 (lease /some/lease/path) target_path /some/lease/path -> /other",
        "web01: device 3 (lease /some/lease/path) offset 1024 -> 0",
    ]
    rules = copy.deepcopy(FILTER["usbdev"])
    rules[1]["allow"] = "yes"
    assert _changed(redirfilter__usbdev=rules) == [
        "web01: device 4 (redirfilter /domain/devices/redirfilter) usbdev "
        "[class=0x08 vendor=0x1234 product=0xbeef version=2.0 allow=yes, allow=no] -> "
        "[class=0x08 vendor=0x1234 product=0xbeef version=2.0 allow=yes, allow=yes]"]


def test_a_graphics_device_that_appears_is_counted_and_named():
    before = copy.deepcopy(BEFORE)
    after = copy.deepcopy(BEFORE)
    after["domains"][0]["devices"][1:1] = [copy.deepcopy(GFX)]
    diff = facts_diff(before, after)
    assert diff[0] == "web01: 2 devices -> 3"
    assert "web01: device 1 (interface 52:54:00:00:00:01) kind interface -> graphics" in diff


def test_audio_backends_are_compared_by_id():
    before = _with_more()
    after = copy.deepcopy(before)
    after["domains"][0]["audio"] = [{"id": "2", "type": "none", "path": "/domain/devices/audio[1]"},
                                    {"id": "1", "type": "none", "path": "/domain/devices/audio[2]"}]
    assert facts_diff(before, after) == ["web01: audio 1 type spice -> none", "web01: audio 2 (none) appeared"]
    after["domains"][0]["audio"] = []
    assert facts_diff(before, after) == ["web01: audio 1 (spice) disappeared"]
    # facts without the key compare as none
    plain = copy.deepcopy(BEFORE)
    assert facts_diff(plain, copy.deepcopy(plain)) == []


def test_the_backend_libvirt_7_2_writes_into_an_old_definition_is_not_a_change():
    # the real Debian 11 -> 12 upgrade: libvirt 9.0 adds <audio id='1' type='none'/> to every headless or
    # VNC domain 7.0 defined, and type spice to a SPICE one: what QEMU had before, now written down
    plain = copy.deepcopy(BEFORE)
    added = copy.deepcopy(BEFORE)
    added["domains"][1]["audio"] = [{"id": "1", "type": "none", "path": "/domain/devices/audio"}]
    assert facts_diff(plain, added) == []
    vnc = _with_more()
    vnc["domains"][0].pop("audio", None)
    vnc_after = copy.deepcopy(vnc)
    vnc_after["domains"][0]["audio"] = [{"id": "1", "type": "none", "path": "/domain/devices/audio"}]
    assert facts_diff(vnc, vnc_after) == []
    # a backend other than the implicit one, a second one, or one beside an existing backend is a change
    other = copy.deepcopy(added)
    other["domains"][1]["audio"][0]["type"] = "pulseaudio"
    assert facts_diff(plain, other) == ["db01: audio 1 (pulseaudio) appeared"]
    spice = copy.deepcopy(BEFORE)
    spice["domains"][1]["devices"] = [dict(GFX, type="spice")]
    spice_after = copy.deepcopy(spice)
    spice_after["domains"][1]["audio"] = [{"id": "1", "type": "none", "path": "/domain/devices/audio"}]
    assert facts_diff(spice, spice_after) == ["db01: audio 1 (none) appeared"]
    spice_after["domains"][1]["audio"][0]["type"] = "spice"
    assert facts_diff(spice, spice_after) == []
    two = copy.deepcopy(added)
    two["domains"][1]["audio"].append({"id": "2", "type": "none", "path": "/domain/devices/audio[2]"})
    assert sorted(facts_diff(plain, two)) == ["db01: audio 1 (none) appeared", "db01: audio 2 (none) appeared"]


def test_facts_of_virt_domain_info_round_trip():
    # the facts _info returns for a domain with every kind compare clean with themselves, and a changed
    # listen address in the definition is seen
    from ansible_collections.virtfleet.libvirt.plugins.module_utils import _info
    from ansible_collections.virtfleet.libvirt.plugins.module_utils._plan import DomainState

    xml = ("<domain type='kvm'><name>web01</name><devices>"
           "<lease><lockspace>a</lockspace><key>k</key><target path='/l'/></lease>"
           "<graphics type='vnc' port='-1' autoport='yes'><listen type='address' address='127.0.0.1'/></graphics>"
           "<audio id='1' type='none'/><redirfilter><usbdev allow='yes'/></redirfilter></devices></domain>")
    moved = (xml.replace("127.0.0.1", "0.0.0.0").replace("<usbdev allow='yes'/>", "<usbdev allow='no'/>")
             .replace("type='none'", "type='spice'"))
    before = [_info.domain_facts(DomainState("web01", "u1", False, True, xml))]
    after = [_info.domain_facts(DomainState("web01", "u1", False, True, moved))]
    assert facts_diff(before, before) == []
    assert facts_diff(before, after) == [
        "web01: device 1 (graphics vnc) listen 127.0.0.1 -> 0.0.0.0",
        "web01: device 2 (redirfilter /domain/devices/redirfilter) usbdev [allow=yes] -> [allow=no]",
        "web01: audio 1 type none -> spice",
    ]
