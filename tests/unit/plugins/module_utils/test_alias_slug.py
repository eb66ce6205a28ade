"""_alias.slug / derive / derived_aliases: every derived alias is a valid libvirt user alias,
deterministic, and tells devices apart (tables plus Hypothesis properties)."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import example, given, strategies as st
from lxml import etree

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _alias, _domxml, _select
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import InvalidRequest

# Independent copy of libvirt's rule (domain_conf.c: prefix "ua-", then only these characters).
USER_ALIAS = re.compile(r"ua-[A-Za-z0-9_-]+")
TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def libvirt_keeps(alias):
    return USER_ALIAS.fullmatch(alias) is not None


def h8(value):
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]


# --- slug tables -------------------------------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    ("5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11", "5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11"),   # UUID as is
    ("WD-WMC4N0E7C7PY", "WD-WMC4N0E7C7PY"),                                             # serial as is
    ("0x5000c500a1b2c3d4", "0x5000c500a1b2c3d4"),                                       # WWN as is
    ("org.qemu.guest_agent.0", "org-qemu-guest_agent-0"),                                # dots
    ("52:54:00:6B:3c:58", "52-54-00-6B-3c-58"),                                          # colons (generic slug)
    ("DATA 02.b", "DATA-02-b"),                                                          # space and dot
    ("a  ..//b", "a-b"),                                                                 # runs collapse to one -
    ("..leading.and.trailing..", "leading-and-trailing"),                               # no - at either end
    ("", "x"), ("...", "x"), ("Ünïcødé", "n-c-d"), ("日本語", "x"),                           # nothing left -> x
    ("tab\there", "tab-here"), ("new\nline", "new-line"),
    (42, "42"),
])
def test_slug_tokens(value, expected):
    assert _alias.slug(value) == expected
    assert TOKEN.fullmatch(_alias.slug(value))


@pytest.mark.parametrize("path,base", [
    ("/var/lib/libvirt/images/db01.qcow2", "db01-qcow2"),
    ("/dev/mapper/vg0-db01_log", "vg0-db01_log"),
    ("/srv/share/", "share"),                 # trailing slash: last real component
    ("rbd:vms/db01-data", "db01-data"),       # network source as the identity reports it
    ("default/scratch vol.img", "scratch-vol-img"),
    ("/", "x"),
])
def test_slug_paths_use_basename_plus_hash_of_whole_value(path, base):
    assert _alias.slug(path, path_like=True) == "%s-%s" % (base, h8(path))


def test_same_basename_in_two_directories_differs():
    a = _alias.slug("/var/lib/libvirt/images/data/disk.img", path_like=True)
    b = _alias.slug("/srv/backup/disk.img", path_like=True)
    assert a != b and a.startswith("disk-img-") and b.startswith("disk-img-")


def test_path_like_without_slash_is_a_plain_token():
    # e.g. an interface source network name: no directory, no hash
    assert _alias.slug("default", path_like=True) == "default"


def test_long_values_are_cut_to_48_with_hash():
    exact = "a" * 48
    assert _alias.slug(exact) == exact
    long_value = "b" * 49
    got = _alias.slug(long_value)
    assert got == "b" * 39 + "-" + h8(long_value) and len(got) == 48
    # two long values with the same first 39 characters still differ
    assert _alias.slug("c" * 39 + "-one" * 5) != _alias.slug("c" * 39 + "-two" * 5)
    # a long path basename: cut, and the hash is of the whole path
    path = "/images/" + "d" * 60 + ".qcow2"
    got = _alias.slug(path, path_like=True)
    assert got == "d" * 39 + "-" + h8(path) and len(got) == 48
    # the cut never leaves a '-' before the hash's '-'
    assert _alias.slug("e" * 38 + "." + "f" * 20) == "e" * 38 + "-" + h8("e" * 38 + "." + "f" * 20)


# --- is_valid / validate_alias -------------------------------------------------------------------------

@pytest.mark.parametrize("alias,ok", [
    ("ua-disk-1", True), ("ua-x", True), ("ua-A_b-9", True), ("ua--", True),
    ("ua-", False), ("UA-bad", False), ("ua-a.b", False), ("ua-a b", False), ("ua-a:b", False),
    ("ua_x", False), ("virtio-disk0", False), ("net0", False), ("", False), (None, False),
    ("ua-é", False), (" ua-x", False), ("ua-x ", False),
])
def test_is_valid(alias, ok):
    assert _alias.is_valid(alias) is ok


@pytest.mark.parametrize("alias", ["ua-x\n", "ua-disk-data01\n"])
def test_trailing_newline_is_not_a_valid_alias(alias):
    assert not libvirt_keeps(alias)
    assert _alias.is_valid(alias) is False


def test_validate_alias_refuses_trailing_newline():
    with pytest.raises(InvalidRequest):
        _alias.validate_alias("ua-x\n", "aliases[0] (domain db01)")


@given(st.text(alphabet=st.characters(blacklist_characters="\n"), max_size=30)
       | st.text(alphabet="ua-_.:/ AZaz09", max_size=12).map(lambda s: "ua-" + s))
@example("ua-ok")
@example("ua-")
@example("ua-a.b")
def test_is_valid_agrees_with_libvirts_rule(alias):
    assert _alias.is_valid(alias) is libvirt_keeps(alias)


@pytest.mark.parametrize("alias", ["UA-bad", "ua-a.b", "disk0", "ua-", "ua-a b"])
def test_validate_alias_names_problem_and_fix(alias):
    with pytest.raises(InvalidRequest) as err:
        _alias.validate_alias(alias, "aliases[3] (domain db01)")
    msg = err.value.msg
    assert msg.startswith("aliases[3] (domain db01): alias %r is not a valid libvirt user alias" % alias)
    assert "must start with 'ua-'" in msg and "letters, digits, '_' and '-'" in msg
    assert "Example: ua-disk-data01" in msg


def test_validate_alias_accepts_valid():
    assert _alias.validate_alias("ua-vol-5d3c1a0e", "x") is None


# --- derive on arbitrary identities (Hypothesis) ----------------------------------------------------

# anything lxml can carry in text and attributes: unicode, spaces, dots, colons, slashes
XML_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=80).filter(
    lambda s: s.strip() != "")
ID_TEXT = XML_TEXT | st.sampled_from(["/var/lib/libvirt/images/a b.img", "52:54:00:AA:bb:01", "a.b:c/d e",
                                      "x" * 200, "/" * 3, "ünï/cødé", "C:\\disk.img", "..", "-"])


def _el(xml):
    root = etree.fromstring("<domain><devices>%s</devices></domain>" % xml)
    return root


def _set(root, path, attr, value):
    node = root.find(path)
    if attr is None:
        node.text = value
    else:
        node.set(attr, value)
    return root


# device builders: (template XML, where the random identity goes)
BUILDERS = {
    "disk-serial": ("<disk type='file' device='disk'><source file='/i/a.img'/><target dev='vda'/>"
                    "<serial>s</serial></disk>", "devices/disk/serial", None),
    "disk-wwn": ("<disk type='block' device='lun'><target dev='sda'/><wwn>w</wwn></disk>", "devices/disk/wwn", None),
    "disk-file": ("<disk type='file' device='disk'><source file='f'/><target dev='vda'/></disk>",
                  "devices/disk/source", "file"),
    "disk-network": ("<disk type='network' device='disk'><source protocol='rbd' name='n'/><target dev='vda'/></disk>",
                     "devices/disk/source", "name"),
    "disk-target": ("<disk type='file' device='cdrom'><target dev='t'/></disk>", "devices/disk/target", "dev"),
    "interface-id": ("<interface type='bridge'><mac address='52:54:00:00:00:01'/><virtualport type='openvswitch'>"
                     "<parameters interfaceid='i'/></virtualport></interface>",
                     "devices/interface/virtualport/parameters", "interfaceid"),
    "interface-mac": ("<interface type='network'><mac address='m'/><source network='default'/></interface>",
                      "devices/interface/mac", "address"),
    "interface-source": ("<interface type='direct'><source dev='d'/></interface>", "devices/interface/source", "dev"),
    "hostdev-pci": ("<hostdev mode='subsystem' type='pci'><source><address domain='0x0000' bus='b' slot='0x00' "
                    "function='0x0'/></source></hostdev>", "devices/hostdev/source/address", "bus"),
    "hostdev-usb": ("<hostdev mode='subsystem' type='usb'><source><vendor id='v'/><product id='0x1'/></source>"
                    "</hostdev>", "devices/hostdev/source/vendor", "id"),
    "hostdev-scsi": ("<hostdev mode='subsystem' type='scsi'><source><adapter name='a'/><address bus='0' target='0' "
                     "unit='0'/></source></hostdev>", "devices/hostdev/source/adapter", "name"),
    "hostdev-mdev": ("<hostdev mode='subsystem' type='mdev'><source><address uuid='u'/></source></hostdev>",
                     "devices/hostdev/source/address", "uuid"),
    "filesystem": ("<filesystem type='mount'><source dir='/s'/><target dir='t'/></filesystem>",
                   "devices/filesystem/target", "dir"),
    "redirdev": ("<redirdev bus='b' type='spicevmc'/>", "devices/redirdev", "bus"),
    "rng": ("<rng model='virtio'><backend model='random'>r</backend></rng>", "devices/rng/backend", None),
    "channel": ("<channel type='unix'><target type='virtio' name='n'/></channel>", "devices/channel/target", "name"),
    "controller": ("<controller type='t' index='0'/>", "devices/controller", "type"),
    "controller-index": ("<controller type='scsi' index='i'/>", "devices/controller", "index"),
    "watchdog": ("<watchdog model='m'/>", "devices/watchdog", "model"),
    "shmem": ("<shmem name='n'/>", "devices/shmem", "name"),
    "input": ("<input type='t' bus='usb'/>", "devices/input", "type"),
    "input-bus": ("<input type='tablet' bus='b'/>", "devices/input", "bus"),
}


def _derive_one(builder, value):
    template, path, attr = BUILDERS[builder]
    root = _set(_el(template), path, attr, value)
    (entry,) = _select.entries(root)
    return _alias.derive(entry[1], entry[2]), entry


# libvirt refuses a MAC that is not six ':'-separated hex pairs (virMacAddrParse), so that is all a MAC can be
MAC = st.from_regex(r"\A[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}\Z")


@given(data=st.data(), builder=st.sampled_from(sorted(BUILDERS)))
def test_every_derived_alias_is_valid_and_deterministic(data, builder):
    value = data.draw(MAC if builder == "interface-mac" else ID_TEXT, label="value")
    (alias, key), entry = _derive_one(builder, value)
    if builder == "controller" and value == "pci":
        assert alias is None      # PCI controllers are never aliased
        return
    assert alias is not None and key is not None
    assert libvirt_keeps(alias), alias
    prefix = _alias.KIND_PREFIX[entry[1].tag]
    assert alias.startswith("ua-%s-" % prefix)
    # deterministic: a fresh parse of the same XML derives the same alias
    assert _derive_one(builder, value)[0] == (alias, key)


@given(st.lists(st.tuples(st.sampled_from(["serial", "file", "target"]), ID_TEXT), min_size=1, max_size=8))
def test_derived_aliases_of_a_domain_are_valid_unique_and_stable(idents):
    devs = []
    for i, (kind, value) in enumerate(idents):
        if kind == "serial":
            devs.append("<disk type='file' device='disk'><target dev='vd%d'/><serial>x</serial></disk>" % i)
        elif kind == "file":
            devs.append("<disk type='file' device='disk'><source file='x'/><target dev='vd%d'/></disk>" % i)
        else:
            devs.append("<disk type='file' device='cdrom'><target dev='x'/></disk>")
    root = _el("".join(devs))
    for el, (kind, value) in zip(root.iterfind("devices/disk"), idents):
        if kind == "serial":
            el.find("serial").text = value
        elif kind == "file":
            el.find("source").set("file", value)
        else:
            el.find("target").set("dev", value)
    entries = _select.entries(root)
    derived = _alias.derived_aliases(entries)
    aliases = [derived[p][0] for p, _e, _i in entries]
    assert all(libvirt_keeps(a) for a in aliases)
    assert len(set(aliases)) == len(aliases)
    # again on a re-parse: same map
    assert _alias.derived_aliases(_select.entries(_domxml.parse(etree.tostring(root)))) == derived


def test_mac_basis_is_lowercase_without_colons():
    (alias, key), _e = _derive_one("interface-mac", "52:54:00:6B:3C:58")
    assert (alias, key) == ("ua-net-5254006b3c58", "mac")


def test_interface_source_and_ordinal_fallbacks():
    (alias, key), _e = _derive_one("interface-source", "/run/vhost/sock0")
    assert (alias, key) == ("ua-net-sock0-%s" % h8("/run/vhost/sock0"), "source")
    root = _el("<interface type='user'/><interface type='user'/>")
    got = [_alias.derive(e[1], e[2]) for e in _select.entries(root)]
    assert got == [("ua-net-1", "ordinal"), ("ua-net-2", "ordinal")]


def test_disk_precedence_serial_then_wwn_then_source_then_target():
    root = _el("<disk type='file' device='disk'><source file='/i/a.img'/><target dev='vda'/><wwn>5000c500a1b2c3d4</wwn>"
               "<serial>S1</serial></disk>")
    (entry,) = _select.entries(root)
    assert _alias.derive(entry[1], entry[2]) == ("ua-disk-S1", "serial")
    entry[1].remove(entry[1].find("serial"))
    entry = _select.entries(root)[0]
    assert _alias.derive(entry[1], entry[2]) == ("ua-disk-5000c500a1b2c3d4", "wwn")
    entry[1].remove(entry[1].find("wwn"))
    entry = _select.entries(root)[0]
    assert _alias.derive(entry[1], entry[2]) == ("ua-disk-a-img-%s" % h8("/i/a.img"), "source")
    entry[1].remove(entry[1].find("source"))
    entry = _select.entries(root)[0]
    assert _alias.derive(entry[1], entry[2]) == ("ua-disk-vda", "target")


def test_non_aliasable_devices_derive_nothing():
    root = _el("<controller type='pci' index='0' model='pcie-root'/><serial type='pty'/><video/>"
               "<memballoon model='virtio'/>")
    for _p, el, ident in _select.entries(root):
        assert _alias.derive(el, ident) == (None, None)


def test_disambiguate_skips_taken_and_records():
    taken = {"ua-net-1", "ua-net-1-2"}
    assert _alias.disambiguate("ua-net-1", taken) == "ua-net-1-3"
    assert _alias.disambiguate("ua-net-1", taken) == "ua-net-1-4"
    assert _alias.disambiguate("ua-net-9", taken) == "ua-net-9"
    assert {"ua-net-1-3", "ua-net-1-4", "ua-net-9"} <= taken


@pytest.mark.parametrize("mac", ["52:54:00:6b:3c:5;", "52 54 00 6b 3c 58"])
def test_malformed_mac_still_derives_a_valid_alias(mac):
    (alias, key), _e = _derive_one("interface-mac", mac)
    assert key == "mac" and libvirt_keeps(alias), alias
