"""_select: selector validation, match and find (alias first, then the derived-alias fallback), and pairing of the
persistent definition's devices with the running domain's (pair_live)."""

from __future__ import annotations

import ast

import pytest
from hypothesis import given, strategies as st

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _alias, _detach, _domxml, _info, _plan, _select
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import InvalidRequest
from ansible_collections.virtfleet.libvirt.plugins.module_utils._plan import DomainState

from ansible_collections.virtfleet.libvirt.tests.unit._support import read_golden

H = _select.hash8

DOMAIN = """<domain type='kvm'>
  <name>db01</name>
  <devices>
    <disk type='file' device='disk'>
      <source file='/var/lib/libvirt/images/db01.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <alias name='ua-disk-root'/>
    </disk>
    <disk type='file' device='disk'>
      <source file='/var/lib/libvirt/images/data.img'/>
      <target dev='vdb' bus='virtio'/>
      <serial>5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11</serial>
    </disk>
    <disk type='block' device='lun'>
      <source dev='/dev/sdx'/>
      <target dev='sda' bus='scsi'/>
      <wwn>5000c500a1b2c3d4</wwn>
    </disk>
    <disk type='file' device='cdrom'>
      <target dev='sdb' bus='sata'/>
    </disk>
    <interface type='bridge'>
      <mac address='52:54:00:aa:bb:01'/>
      <source bridge='br-int'/>
      <virtualport type='openvswitch'>
        <parameters interfaceid='09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f'/>
      </virtualport>
    </interface>
    <interface type='network'>
      <mac address='52:54:00:6b:3c:58'/>
      <source network='default'/>
      <target dev='vnet7'/>
    </interface>
    <interface type='network'>
      <mac address='52:54:00:12:34:56'/>
      <source network='storage'/>
    </interface>
    <interface type='network'>
      <mac address='52:54:00:12:34:56'/>
      <source network='backup'/>
    </interface>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source>
        <address domain='0x0000' bus='0x3b' slot='0x00' function='0x1'/>
      </source>
    </hostdev>
    <hostdev mode='subsystem' type='usb' managed='yes'>
      <source>
        <vendor id='0x0781'/>
        <product id='0x5581'/>
      </source>
    </hostdev>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
    </rng>
  </devices>
</domain>
"""


@pytest.fixture(scope="module")
def devs():
    entries = _select.entries(_domxml.parse(DOMAIN), kinds=_alias.DEFAULT_TYPES)
    return entries


@pytest.fixture(scope="module")
def derived(devs):
    # _select.match takes a sequence of fallback maps; one tier here
    return (_select.derived_aliases(devs),)


def paths(found):
    return [e[0] for e in found]


# --- selectors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("selector,expected", [
    ({"alias": "ua-disk-root"}, ("alias", "ua-disk-root")),
    ({"serial": "S1"}, ("serial", "S1")),
    ({"mac": "52:54:00:6B:3C:58"}, ("mac", "52:54:00:6B:3C:58")),
    ({"target": "vda"}, ("target", "vda")),
    ({"source": "default"}, ("source", "default")),
    ({"target": 5}, ("target", "5")),
    ({"alias": "ua-x", "serial": None, "mac": ""}, ("alias", "ua-x")),   # unset keys (Ansible's None) ignored
])
def test_validate_selector_accepts_exactly_one_key(selector, expected):
    assert _select.validate_selector(selector) == expected


@pytest.mark.parametrize("selector", [
    {}, {"alias": None}, {"alias": ""},                                  # zero keys
    {"alias": "ua-x", "serial": "S1"}, {"target": "vda", "mac": "52:54:00:00:00:01"},   # two keys
    {"name": "vda"}, {"alias": "ua-x", "path": "/domain/devices/disk[1]"},    # unknown key
])
def test_validate_selector_refuses(selector):
    with pytest.raises(InvalidRequest) as err:
        _select.validate_selector(selector)
    msg = err.value.msg
    assert msg.startswith("A device selector needs exactly one of alias, serial, mac, target, source; got %r."
                          % selector)
    assert "{alias: ua-disk-1}" in msg      # shows how to write one


@pytest.mark.parametrize("selector", ["vda", ["alias", "ua-x"], None, 3])
def test_validate_selector_refuses_non_dict(selector):
    with pytest.raises(InvalidRequest) as err:
        _select.validate_selector(selector)
    assert err.value.msg == ("A device selector must be a dict with exactly one of alias, serial, mac, target, source, "
                             "got %r." % (selector,))


def test_describe_selector():
    assert _select.describe_selector({"mac": "52:54:00:00:00:01"}) == "mac=52:54:00:00:00:01"
    with pytest.raises(InvalidRequest):
        _select.describe_selector({})


# --- match -------------------------------------------------------------------------------------------

def test_alias_direct(devs, derived):
    found, key = _select.match(devs, {"alias": "ua-disk-root"}, derived)
    assert (paths(found), key) == (["/domain/devices/disk[1]"], "alias")


@pytest.mark.parametrize("alias,path,basis", [
    ("ua-disk-5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11", "/domain/devices/disk[2]", "serial"),
    ("ua-disk-5000c500a1b2c3d4", "/domain/devices/disk[3]", "wwn"),
    ("ua-disk-sdb", "/domain/devices/disk[4]", "target"),
    ("ua-net-09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f", "/domain/devices/interface[1]", "interfaceid"),
    ("ua-net-5254006b3c58", "/domain/devices/interface[2]", "mac"),
    ("ua-net-525400123456", "/domain/devices/interface[3]", "mac"),
    ("ua-net-525400123456-2", "/domain/devices/interface[4]", "mac"),     # the disambiguated one too
    ("ua-hostdev-0000-3b-00-1", "/domain/devices/hostdev[1]", "source"),
    ("ua-hostdev-usb-0x0781-0x5581", "/domain/devices/hostdev[2]", "source"),
    ("ua-rng-urandom-%s-1" % H("/dev/urandom"), "/domain/devices/rng", "source"),
])
def test_alias_falls_back_to_derived_alias_naming_the_basis(devs, derived, alias, path, basis):
    found, key = _select.match(devs, {"alias": alias}, derived)
    assert (paths(found), key) == ([path], basis)


def test_alias_fallback_by_source_path(devs, derived):
    alias = "ua-disk-data-img-%s" % H("/var/lib/libvirt/images/data.img")
    # disk[2] has a serial, so its derived alias is the serial one; the source one matches nothing
    assert _select.match(devs, {"alias": alias}, derived) == ([], None)
    no_serial = _select.entries(_domxml.parse(DOMAIN.replace("<serial>5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11</serial>",
                                                             "")), kinds=("disk",))
    found, key = _select.match(no_serial, {"alias": alias}, (_select.derived_aliases(no_serial),))
    assert (paths(found), key) == (["/domain/devices/disk[2]"], "source")


def test_carried_alias_wins_over_a_derived_one(devs, derived):
    # disk[1] carries ua-disk-root; if another device's derived alias were ua-disk-root, the carrier still wins
    fake = dict(derived[0])
    fake["/domain/devices/disk[2]"] = ("ua-disk-root", "serial")
    found, key = _select.match(devs, {"alias": "ua-disk-root"}, (fake,))
    assert (paths(found), key) == (["/domain/devices/disk[1]"], "alias")


def test_no_fallback_without_derived_map_or_for_other_keys(devs, derived):
    assert _select.match(devs, {"alias": "ua-disk-sdb"}) == ([], None)
    assert _select.match(devs, {"alias": "ua-disk-sdb"}, ({},)) == ([], None)
    assert _select.match(devs, {"serial": "ua-disk-sdb"}, derived) == ([], None)


@pytest.mark.parametrize("selector,expected", [
    ({"serial": "5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11"}, ["/domain/devices/disk[2]"]),
    ({"serial": "5D3C1A0E-8C1F-4B43-9A57-0D0C6F7B2A11"}, []),                 # serials are case-sensitive
    ({"mac": "52:54:00:6B:3C:58"}, ["/domain/devices/interface[2]"]),        # MACs are not
    ({"mac": "52:54:00:12:34:56"}, ["/domain/devices/interface[3]", "/domain/devices/interface[4]"]),
    ({"target": "vdb"}, ["/domain/devices/disk[2]"]),
    ({"target": "vnet7"}, ["/domain/devices/interface[2]"]),                 # interface target dev
    ({"source": "/var/lib/libvirt/images/db01.qcow2"}, ["/domain/devices/disk[1]"]),
    ({"source": "/dev/sdx"}, ["/domain/devices/disk[3]"]),
    ({"source": "storage"}, ["/domain/devices/interface[3]"]),               # network name
    ({"source": "br-int"}, ["/domain/devices/interface[1]"]),                # bridge
    ({"source": "0000:3b:00.1"}, ["/domain/devices/hostdev[1]"]),            # host PCI address
    ({"source": "usb:0x0781:0x5581"}, ["/domain/devices/hostdev[2]"]),
    ({"source": "/dev/urandom"}, []),                                        # rng backend is not a source
    ({"target": "vdz"}, []),
])
def test_direct_keys(devs, derived, selector, expected):
    found, key = _select.match(devs, selector, derived)
    assert paths(found) == expected
    assert key == (next(iter(selector)) if expected else None)


def test_match_validates_the_selector(devs):
    with pytest.raises(InvalidRequest):
        _select.match(devs, {"alias": "ua-x", "target": "vda"})


def test_entries_filters_kinds_in_document_order():
    root = _domxml.parse(DOMAIN)
    assert [e[2]["kind"] for e in _select.entries(root, kinds=("rng", "hostdev"))] == ["hostdev", "hostdev", "rng"]
    assert len(_select.entries(root)) == 11


# --- pair_live -----------------------------------------------------------------------------------------

PERSISTENT = """<domain type='kvm'><name>p</name><devices>
  <disk type='file' device='disk'><source file='/a.img'/><target dev='vda' bus='virtio'/></disk>
  <disk type='file' device='disk'><source file='/b.img'/><target dev='sda' bus='scsi'/></disk>
  <interface type='network'><mac address='52:54:00:12:34:56'/><source network='storage'/></interface>
  <interface type='network'><mac address='52:54:00:aa:aa:aa'/><source network='default'/></interface>
  <interface type='network'><mac address='52:54:00:12:34:56'/><source network='backup'/></interface>
  <hostdev mode='subsystem' type='pci'>
    <source><address domain='0x0000' bus='0x3b' slot='0x00' function='0x1'/></source></hostdev>
  <hostdev mode='subsystem' type='pci'>
    <source><address domain='0x0000' bus='0x3c' slot='0x00' function='0x0'/></source></hostdev>
  <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  <rng model='virtio'><backend model='random'>/dev/random</backend></rng>
  <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
</devices></domain>"""

# as the running domain shows it: other order, automatic aliases, hot-plugged extras, one device gone
LIVE = """<domain type='kvm' id='3'><name>p</name><devices>
  <disk type='file' device='disk'><source file='/b.img'/><target dev='sda' bus='scsi'/>
    <alias name='scsi0-0-0-0'/></disk>
  <disk type='file' device='disk'><source file='/hot.img'/><target dev='vdb' bus='virtio'/>
    <alias name='virtio-disk1'/></disk>
  <disk type='file' device='disk'><source file='/a.img'/><target dev='vda' bus='virtio'/>
    <alias name='virtio-disk0'/></disk>
  <interface type='network'><mac address='52:54:00:12:34:56'/><source network='storage'/>
    <alias name='net0'/></interface>
  <interface type='network'><mac address='52:54:00:12:34:56'/><source network='backup'/><alias name='net2'/></interface>
  <interface type='network'><mac address='52:54:00:12:34:56'/><source network='hot'/><alias name='net3'/></interface>
  <interface type='network'><mac address='52:54:00:bb:bb:bb'/><source network='hot'/><alias name='net4'/></interface>
  <hostdev mode='subsystem' type='pci'>
    <source><address domain='0x0000' bus='0x3c' slot='0x00' function='0x0'/></source><alias name='hostdev1'/></hostdev>
  <hostdev mode='subsystem' type='pci'>
    <source><address domain='0x0000' bus='0x3b' slot='0x00' function='0x1'/></source><alias name='hostdev0'/></hostdev>
  <rng model='virtio'><backend model='random'>/dev/urandom</backend><alias name='rng0'/></rng>
  <rng model='virtio'><backend model='random'>/dev/random</backend><alias name='rng1'/></rng>
  <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/><alias name='channel0'/></channel>
</devices></domain>"""


@pytest.fixture(scope="module")
def paired():
    persistent = _select.entries(_domxml.parse(PERSISTENT))
    live = _select.entries(_domxml.parse(LIVE))
    return _select.pair_live(persistent, live)


def _live_alias(paired_map, path):
    entry = paired_map[path]
    return None if entry is None else entry[2]["alias"]


def test_disks_pair_by_target_whatever_the_order(paired):
    pmap, _only = paired
    assert _live_alias(pmap, "/domain/devices/disk[1]") == "virtio-disk0"
    assert _live_alias(pmap, "/domain/devices/disk[2]") == "scsi0-0-0-0"


def test_interfaces_sharing_a_mac_pair_nth_with_nth(paired):
    pmap, _only = paired
    assert _live_alias(pmap, "/domain/devices/interface[1]") == "net0"     # 1st 52:54:00:12:34:56
    assert _live_alias(pmap, "/domain/devices/interface[3]") == "net2"     # 2nd 52:54:00:12:34:56
    assert pmap["/domain/devices/interface[2]"] is None                    # unplugged live, still persistent


def test_mac_pairing_is_case_insensitive():
    persistent = _select.entries(_domxml.parse(PERSISTENT.replace("52:54:00:aa:aa:aa", "52:54:00:AA:AA:AA")))
    live = _select.entries(_domxml.parse(LIVE.replace("52:54:00:bb:bb:bb", "52:54:00:aa:aa:aa")))
    pmap, _only = _select.pair_live(persistent, live)
    assert _live_alias(pmap, "/domain/devices/interface[2]") == "net4"


def test_hostdevs_pair_by_source(paired):
    pmap, _only = paired
    assert _live_alias(pmap, "/domain/devices/hostdev[1]") == "hostdev0"
    assert _live_alias(pmap, "/domain/devices/hostdev[2]") == "hostdev1"


def test_other_devices_pair_by_ordinal(paired):
    pmap, _only = paired
    assert _live_alias(pmap, "/domain/devices/rng[1]") == "rng0"
    assert _live_alias(pmap, "/domain/devices/rng[2]") == "rng1"
    assert _live_alias(pmap, "/domain/devices/channel") == "channel0"


def test_live_only_devices_are_reported(paired):
    _pmap, only = paired
    assert [(e[2]["kind"], e[2]["alias"]) for e in only] == [
        ("disk", "virtio-disk1"),            # hot-plugged without --config
        ("interface", "net3"),               # a 3rd NIC with the shared MAC
        ("interface", "net4"),               # a NIC with a MAC the definition does not have
    ]


def test_every_persistent_device_is_in_the_map(paired):
    pmap, _only = paired
    assert sorted(pmap) == sorted(e[0] for e in _select.entries(_domxml.parse(PERSISTENT)))


def test_running_golden_pairs_everything_and_finds_the_hot_plugged_disk():
    persistent = _select.entries(_domxml.parse(read_golden("alias-running-in.xml")))
    live = _select.entries(_domxml.parse(read_golden("alias-running-live.xml")))
    pmap, only = _select.pair_live(persistent, live)
    assert all(v is not None for v in pmap.values())
    assert [(e[2]["target"], e[2]["alias"]) for e in only] == [("vdb", "virtio-disk1")]
    got = {p: v[2]["alias"] for p, v in pmap.items() if v[2]["kind"] in ("disk", "interface", "hostdev", "rng")}
    assert got == {"/domain/devices/disk[1]": "virtio-disk0", "/domain/devices/disk[2]": "scsi0-0-0-1",
                   "/domain/devices/interface": "net0", "/domain/devices/hostdev": "hostdev0",
                   "/domain/devices/rng": "rng0"}


# --- the fallback finds the device virt_device_alias gives (or would give) that alias ---------------------

M2 = "52:54:00:12:34:56"


def _planned(xml):
    """path -> alias each device carries after virt_device_alias (defaults, replace=false)."""
    state = DomainState("x", "u", False, True, xml)
    out = _plan.apply_edits(xml, _plan.domain_edits(_alias.plan_domain(state)))
    return {p: i["alias"] for p, _e, i in _select.entries(_domxml.parse(out), kinds=_alias.DEFAULT_TYPES)}


def _fallback(xml, alias):
    devs = [d for d in _select.entries(_domxml.parse(xml), kinds=_alias.DEFAULT_TYPES)
            if _select.derive(d[1], d[2])[0] is not None]
    found, key = _select.match(devs, {"alias": alias}, (_select.derived_aliases(devs),))
    return paths(found), key


DEVICE = st.one_of(
    st.tuples(st.just("nic"), st.sampled_from(["52:54:00:12:34:56", "52:54:00:aa:bb:cc"]), st.sampled_from(["a", "b"])),
    st.tuples(st.just("disk"), st.sampled_from(["S1", "S2", None]), st.sampled_from(["/i/a.img", "/j/a.img"])),
    st.tuples(st.just("cdrom"), st.sampled_from(["sdb", "sdc"]), st.none()),
)


def _xml(devices, with_alias=()):
    parts = []
    for n, (kind, a, b) in enumerate(devices):
        alias = "<alias name='%s'/>" % with_alias[n] if n < len(with_alias) and with_alias[n] else ""
        if kind == "nic":
            parts.append("<interface type='network'><mac address='%s'/><source network='%s'/>%s</interface>"
                         % (a, b, alias))
        elif kind == "disk":
            serial = "<serial>%s</serial>" % a if a else ""
            parts.append("<disk type='file' device='disk'><source file='%s'/><target dev='vd%s'/>%s%s</disk>"
                         % (b, chr(97 + n), serial, alias))
        else:
            parts.append("<disk type='file' device='cdrom'><target dev='%s'/>%s</disk>" % (a, alias))
    return "<domain type='kvm'><name>x</name><devices>%s</devices></domain>" % "".join(parts)


@given(st.lists(DEVICE, min_size=1, max_size=6))
def test_fallback_of_an_alias_less_domain_finds_the_device_that_will_carry_it(devices):
    xml = _xml(devices)
    for path, alias in _planned(xml).items():
        found, _key = _fallback(xml, alias)
        assert found == [path], (alias, found)


def test_derived_aliases_reserve_aliases_already_carried():
    # the 2nd NIC already carries the MAC alias, so the 1st one will get -2: the fallback agrees
    xml = _xml([("nic", M2, "a"), ("nic", M2, "b")], with_alias=[None, "ua-net-525400123456"])
    assert _planned(xml)["/domain/devices/interface[1]"] == "ua-net-525400123456-2"
    assert _fallback(xml, "ua-net-525400123456-2") == (["/domain/devices/interface[1]"], "mac")
    assert _fallback(xml, "ua-net-525400123456") == (["/domain/devices/interface[2]"], "alias")


def test_fallback_agrees_with_what_virt_device_alias_assigns_when_a_device_keeps_a_foreign_alias():
    xml = _xml([("nic", M2, "a"), ("nic", M2, "b")], with_alias=["ua-uplink", None])
    planned = _planned(xml)
    assert planned == {"/domain/devices/interface[1]": "ua-uplink",
                       "/domain/devices/interface[2]": "ua-net-525400123456"}
    assert _fallback(xml, "ua-net-525400123456") == (["/domain/devices/interface[2]"], "mac")


# --- find: the one lookup (match with both fallback tiers), and who depends on whom ----------------------

def test_find_is_match_with_the_assigned_then_the_derived_alias():
    # the 1st NIC keeps a foreign alias: the alias it derives still finds it (2nd tier), while the
    # alias virt_device_alias gives the 2nd NIC finds the 2nd one (1st tier)
    devs = _select.entries(_domxml.parse(_xml([("nic", M2, "a"), ("nic", M2, "b")], with_alias=["ua-uplink", None])))
    selectors = [{"alias": "ua-uplink"}, {"alias": "ua-net-525400123456"}, {"alias": "ua-net-525400123456-2"},
                 {"mac": M2.upper()}, {"alias": "ua-nope"}]
    assert [(paths(f), k) for f, k in (_select.find(devs, s) for s in selectors)] == [
        (["/domain/devices/interface[1]"], "alias"), (["/domain/devices/interface[2]"], "mac"),
        ([], None), (["/domain/devices/interface[1]", "/domain/devices/interface[2]"], "mac"), ([], None)]
    bases = {p: _select.derive(el, i) for p, el, i in _select.aliasable(devs)}
    assert bases["/domain/devices/interface[1]"] == ("ua-net-525400123456", "mac")
    assert _select.find(devs, {"alias": "ua-net-525400123456"}) == _select.match(
        devs, {"alias": "ua-net-525400123456"}, (_select.derived_aliases(devs), bases))


def test_find_skips_devices_that_derive_no_alias():
    xml = ("<domain type='kvm'><name>x</name><devices><controller type='pci' index='0' model='pcie-root'/>"
           "<controller type='usb' index='0' model='qemu-xhci'/></devices></domain>")
    devs = _select.entries(_domxml.parse(xml))
    assert [e[0] for e in _select.aliasable(devs)] == ["/domain/devices/controller[2]"]
    assert paths(_select.find(devs, {"alias": "ua-ctl-usb-0"})[0]) == ["/domain/devices/controller[2]"]
    assert _select.find(devs, {"alias": "ua-ctl-pci-0"}) == ([], None)


def test_the_planner_reuses_the_lookup_derivation():
    # one derivation: what _alias plans is what _select looks up
    for name in ("is_valid", "slug", "basis", "derive", "disambiguate", "assign", "derived_aliases", "KIND_PREFIX",
                 "ALIAS_RE", "PREFIX", "MAX_SLUG"):
        assert getattr(_alias, name) is getattr(_select, name), name
    assert _alias._hash8 is _select.hash8
    assert not hasattr(_alias, "find")


def _imported_module_utils(module):
    with open(module.__file__, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and "module_utils" in node.module:
            if node.module.endswith("module_utils"):
                names.update(a.name for a in node.names)
            else:
                names.add(node.module.rsplit(".", 1)[1])
    return names


def test_lookup_and_its_users_do_not_depend_on_the_alias_planner():
    assert "_alias" not in _imported_module_utils(_select)
    assert "_alias" not in _imported_module_utils(_info)
    assert "_alias" not in _imported_module_utils(_detach)
    assert "_select" in _imported_module_utils(_alias)
