"""Golden XML for _alias.plan_domain + _plan.apply_edits: alias derivation of every device type.

Each case is tests/unit/golden/alias-<case>-in.xml (q35 domains as libvirt formats them, with PCI
addresses) and the exact expected output alias-<case>[-<variant>]-out.xml. REGEN_GOLDEN=1 rewrites
the -out files from the current code; review them by eye before committing.

Besides the byte-exact comparison every case states independently (hand-written here, with the
SHA-256 computed by this file, not by the code under test) which alias each device must end up with,
so a regenerated golden cannot silently bless a wrong derivation.
"""

from __future__ import annotations

import hashlib
import re

import pytest
from lxml import etree

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _alias, _plan
from ansible_collections.virtfleet.libvirt.plugins.module_utils._plan import DomainState

from ansible_collections.virtfleet.libvirt.tests.unit._support import changed_lines, check_golden, lxml_normalized, read_golden

ALL_TYPES = ("disk", "interface", "hostdev", "filesystem", "redirdev", "rng", "channel", "controller",
             "watchdog", "shmem", "input", "vsock")
DEFAULT_TYPES = ("disk", "interface", "hostdev", "filesystem", "redirdev", "rng", "channel")
USER_ALIAS = re.compile(r"^ua-[A-Za-z0-9_-]+\Z")
# libvirt writes <alias> after <boot> and before these (virDomainDeviceInfoFormat)
AFTER_ALIAS = ("master", "acpi", "rom", "address")
PCI_CONTROLLERS = [None] * 13   # pcie-root and 12 pcie-root-ports in every fixture
TAIL = [None] * 5               # serial, console, graphics, video, memballoon: not aliasable types


def h8(value):
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]


# case -> (input, device_types, replace, expected (tag, alias) of every device in document order,
#          expected (tag, rule, basis) of every finding)
CASES = {
    "disks": dict(
        src="disks", types=DEFAULT_TYPES,
        aliases=[
            ("disk", "ua-disk-WD-WMC4N0E7C7PY"),                                       # serial
            ("disk", "ua-disk-disk-img-" + h8("/var/lib/libvirt/images/data/disk.img")),  # source file
            ("disk", "ua-disk-disk-img-" + h8("/srv/backup/disk.img")),                # same basename, other dir
            ("disk", "ua-disk-db01-data-" + h8("rbd:vms/db01-data")),                  # network source
            ("disk", "ua-disk-db01-scratch-qcow2-" + h8("default/db01-scratch.qcow2")),  # pool volume
            ("disk", "ua-disk-swap"),                                                  # kept
            ("disk", "ua-disk-5000c500a1b2c3d4"),                                      # wwn
            ("disk", "ua-disk-vg0-db01_log-" + h8("/dev/mapper/vg0-db01_log")),        # block dev
            ("disk", "ua-disk-sdc"),                                                   # empty cdrom: target
            ("controller", None),                                                      # usb: not in types
        ] + [("controller", None)] * 13 + [("controller", None), ("controller", None)] + [(None, None)] * 5,
        findings=[("disk", "alias-missing", "serial"), ("disk", "alias-missing", "source"),
                  ("disk", "alias-missing", "source"), ("disk", "alias-missing", "source"),
                  ("disk", "alias-missing", "source"), ("disk", "alias-missing", "wwn"),
                  ("disk", "alias-missing", "source"), ("disk", "alias-missing", "target")],
    ),
    "interfaces": dict(
        src="interfaces", types=DEFAULT_TYPES,
        aliases=[("disk", "ua-disk-root"), ("controller", None)] + [("controller", None)] * 13
        + [("controller", None),
           ("interface", "ua-net-09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f"),   # virtualport interfaceid wins over MAC
           ("interface", "ua-net-5254006b3c58"),                           # MAC without colons
           ("interface", "ua-net-525400123456"),                           # shared MAC, network storage
           ("interface", "ua-net-525400123456-2"),                         # shared MAC, network backup
           ("interface", "ua-net-525400aabb02")] + [(None, None)] * 5,
        findings=[("interface", "alias-missing", "interfaceid")] + [("interface", "alias-missing", "mac")] * 4,
    ),
    "hostdevs": dict(
        src="hostdevs", types=DEFAULT_TYPES,
        aliases=[("disk", "ua-disk-root"), ("controller", None)] + [("controller", None)] * 13
        + [("controller", None), ("controller", None),
           ("hostdev", "ua-hostdev-0000-3b-00-1"),                          # PCI host address
           ("hostdev", "ua-hostdev-usb-0x0781-0x5581"),                     # USB vendor:product
           ("hostdev", "ua-hostdev-scsi_host0-address-bus-0-target-0-unit-0"),  # SCSI adapter + address
           ("hostdev", "ua-hostdev-mdev-c2177883-f1bb-47f0-914d-32a22e3a8804")] + [(None, None)] * 5,
        findings=[("hostdev", "alias-missing", "source")] * 4,
    ),
    "misc": dict(
        src="misc", types=ALL_TYPES,
        aliases=[("disk", "ua-disk-root"), ("controller", "ua-ctl-usb-0")] + [("controller", None)] * 13
        + [("controller", None),                                            # pcie-to-pci-bridge
           ("controller", "ua-ctl-scsi-0"), ("controller", "ua-ctl-sata-0"),
           ("controller", "ua-ctl-virtio-serial-0"),
           ("filesystem", "ua-fs-hostshare"),                               # target dir (mount tag)
           ("interface", "ua-net-uplink"),                                  # kept
           ("channel", "ua-channel-org-qemu-guest_agent-0"), ("channel", "ua-channel-com-redhat-spice-0"),
           ("input", "ua-input-tablet-usb-1"), ("input", "ua-input-mouse-ps2-1"),
           ("input", "ua-input-keyboard-ps2-1"),
           ("redirdev", "ua-redir-usb-1"), ("redirdev", "ua-redir-usb-2"),
           ("watchdog", "ua-watchdog-i6300esb"),
           ("rng", "ua-rng-urandom-%s-1" % h8("/dev/urandom")),
           ("shmem", "ua-shmem-my_shmem0"),
           ("vsock", "ua-vsock-1")] + [(None, None)] * 5,
        findings=[("controller", "alias-missing", "index")] * 4 + [("filesystem", "alias-missing", "target")]
        + [("channel", "alias-missing", "target")] * 2 + [("input", "alias-missing", "ordinal")] * 3
        + [("redirdev", "alias-missing", "ordinal")] * 2
        + [("watchdog", "alias-missing", "model"), ("rng", "alias-missing", "source"),
           ("shmem", "alias-missing", "name"), ("vsock", "alias-missing", "ordinal")],
    ),
    # the same domain with the default device_types: controllers, inputs, watchdog, shmem, vsock untouched
    "misc-default": dict(
        src="misc", types=DEFAULT_TYPES,
        aliases=[("disk", "ua-disk-root"), ("controller", None)] + [("controller", None)] * 13
        + [("controller", None)] * 4
        + [("filesystem", "ua-fs-hostshare"), ("interface", "ua-net-uplink"),
           ("channel", "ua-channel-org-qemu-guest_agent-0"), ("channel", "ua-channel-com-redhat-spice-0"),
           ("input", None), ("input", None), ("input", None),
           ("redirdev", "ua-redir-usb-1"), ("redirdev", "ua-redir-usb-2"),
           ("watchdog", None), ("rng", "ua-rng-urandom-%s-1" % h8("/dev/urandom")),
           ("shmem", None), ("vsock", None)] + [(None, None)] * 5,
        findings=[("filesystem", "alias-missing", "target")] + [("channel", "alias-missing", "target")] * 2
        + [("redirdev", "alias-missing", "ordinal")] * 2 + [("rng", "alias-missing", "source")],
    ),
    # legacy XML (backups, older tools): a duplicate, two invalid aliases, a foreign valid alias that is
    # some other device's derived alias, and one on an interface
    "legacy": dict(
        src="legacy", types=DEFAULT_TYPES, replace=False,
        aliases=[("disk", "ua-disk-root"),
                 ("disk", "ua-disk-legacy01-data-qcow2-" + h8("/var/lib/libvirt/images/legacy01-data.qcow2")),
                 ("disk", "ua-disk-DATA-02-b"),
                 ("disk", "ua-disk-legacy01-tmp-raw-" + h8("/var/lib/libvirt/images/legacy01-tmp.raw")),
                 ("disk", "ua-disk-sda"),        # foreign, kept without replace
                 ("disk", "ua-disk-sda-2"),      # the cdrom: its derived alias is taken
                 ("controller", None)] + [("controller", None)] * 13
        + [("controller", None), ("interface", "ua-net0"), ("interface", "ua-net-525400000011")] + [(None, None)] * 5,
        findings=[("disk", "alias-duplicate", "source"), ("disk", "alias-invalid", "serial"),
                  ("disk", "alias-invalid", "source"), ("disk", "alias-missing", "target"),
                  ("interface", "alias-missing", "mac")],
    ),
    "legacy-replace": dict(
        src="legacy", types=DEFAULT_TYPES, replace=True,
        aliases=[("disk", "ua-disk-legacy01-qcow2-" + h8("/var/lib/libvirt/images/legacy01.qcow2")),
                 ("disk", "ua-disk-legacy01-data-qcow2-" + h8("/var/lib/libvirt/images/legacy01-data.qcow2")),
                 ("disk", "ua-disk-DATA-02-b"),
                 ("disk", "ua-disk-legacy01-tmp-raw-" + h8("/var/lib/libvirt/images/legacy01-tmp.raw")),
                 ("disk", "ua-disk-legacy01-logs-qcow2-" + h8("/var/lib/libvirt/images/legacy01-logs.qcow2")),
                 ("disk", "ua-disk-sda"),        # free again once vde is re-aliased
                 ("controller", None)] + [("controller", None)] * 13
        + [("controller", None), ("interface", "ua-net-525400000010"), ("interface", "ua-net-525400000011")]
        + [(None, None)] * 5,
        findings=[("disk", "alias-mismatch", "source"), ("disk", "alias-duplicate", "source"),
                  ("disk", "alias-invalid", "serial"), ("disk", "alias-invalid", "source"),
                  ("disk", "alias-mismatch", "source"), ("disk", "alias-missing", "target"),
                  ("interface", "alias-mismatch", "mac"), ("interface", "alias-missing", "mac")],
    ),
}


def _state(spec, xml=None):
    return DomainState(name="vm01", uuid="7c1b4d1e-4a55-4e0f-9a0e-3f2b1c0d9e01", active=False, persistent=True,
                       inactive_xml=xml if xml is not None else read_golden("alias-%s-in.xml" % spec["src"]))


def _plan_case(case, xml=None):
    spec = CASES[case]
    state = _state(spec, xml)
    changes = _alias.plan_domain(state, spec["types"], replace=spec.get("replace", False))
    return state, changes, _plan.apply_edits(state.inactive_xml, _plan.domain_edits(changes))


def _device_aliases(xml_text):
    root = etree.fromstring(xml_text.encode("utf-8"))
    out = []
    for el in root.find("devices"):
        if not isinstance(el.tag, str) or el.tag == "emulator":
            continue
        tag = el.tag if el.tag in ALL_TYPES else None
        alias = el.find("alias")
        out.append((tag, alias.get("name") if alias is not None else None))
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_output(case):
    _state_, _changes, out = _plan_case(case)
    check_golden("alias-%s-out.xml" % case, out)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_device_gets_the_documented_alias(case):
    _state_, _changes, out = _plan_case(case)
    assert _device_aliases(out) == CASES[case]["aliases"]
    aliases = [a for _t, a in _device_aliases(out) if a is not None]
    assert len(aliases) == len(set(aliases)), "libvirt refuses duplicate aliases"
    assert all(USER_ALIAS.match(a) for a in aliases)


@pytest.mark.parametrize("case", sorted(CASES))
def test_findings_rule_and_basis(case):
    _state_, changes, _out = _plan_case(case)
    assert [(c.device["kind"], c.rule, c.desired["basis"]) for c in changes] == CASES[case]["findings"]
    for change in changes:
        assert change.actionable and change.status == "" and not change.pending_restart
        (edit,) = change.edits
        assert edit.child == "alias" and edit.device == change.device["path"]
        assert dict(edit.attrs) == {"name": change.desired["alias"]}
        assert change.current == {"alias": change.device["alias"]}
        assert change.desired["alias"] in change.message and change.desired["basis"] in change.message


@pytest.mark.parametrize("case", sorted(CASES))
def test_alias_inserted_where_libvirt_writes_it(case):
    """Before <master>/<acpi>/<rom>/<address>, after everything else (<boot> included), indented like
    its siblings; nothing but <alias> lines change."""
    state, changes, out = _plan_case(case)
    root = etree.fromstring(out.encode("utf-8"))
    for el in root.find("devices"):
        alias = el.find("alias") if isinstance(el.tag, str) else None
        if alias is None:
            continue
        kids = [k.tag for k in el if isinstance(k.tag, str)]
        pos = kids.index("alias")
        assert all(t not in AFTER_ALIAS for t in kids[:pos]), (el.tag, kids)
        assert all(t in AFTER_ALIAS for t in kids[pos + 1:]), (el.tag, kids)
    removed, added = changed_lines(lxml_normalized(state.inactive_xml), out)
    edited_in_place = [c for c in changes if c.current["alias"] is not None]
    alias_added = [line for line in added if line.startswith("      <alias ")]
    alias_removed = [line for line in removed if line.startswith("      <alias ")]
    assert len(alias_added) == len(changes) and len(alias_removed) == len(edited_in_place)
    for line in alias_added:
        assert re.match(r'^      <alias name="ua-[A-Za-z0-9_-]+"/>$', line), line
    # a device without children (<input type='mouse' bus='ps2'/>) is opened up: that and nothing else
    empty = [line for line in removed if line not in alias_removed]
    assert all(re.match(r'^    <(\w+) [^>]*/>$', line) for line in empty), empty
    reopened = [line for line in added if line not in alias_added]
    assert sorted(reopened) == sorted([line[:-2] + ">" for line in empty]
                                      + ["    </%s>" % re.match(r"^    <(\w+)", line).group(1) for line in empty])


@pytest.mark.parametrize("case", sorted(CASES))
def test_rerun_on_output_is_stable(case):
    spec = CASES[case]
    _state_, _changes, out = _plan_case(case)
    again = _alias.plan_domain(_state(spec, out), spec["types"], replace=spec.get("replace", False))
    assert again == []
    # and without replace too: nothing left to do either way
    assert _alias.plan_domain(_state(spec, out), spec["types"]) == []


def test_alias_goes_after_boot_and_before_rom_acpi_master():
    out = read_golden("alias-interfaces-out.xml")
    assert ('<boot order="2"/>\n      <alias name="ua-net-5254006b3c58"/>\n      <rom bar="off"/>\n'
            '      <address type="pci"') in out
    assert '<model type="virtio"/>\n      <alias name="ua-net-525400123456-2"/>\n      <acpi index="4"/>' in out
    disks = read_golden("alias-disks-out.xml")
    assert '<boot order="1"/>\n      <alias name="ua-disk-WD-WMC4N0E7C7PY"/>\n      <address ' in disks
    misc = read_golden("alias-misc-out.xml")
    # a device with no child at all gets one, on its own line, indented like the other devices' children
    assert '<input type="mouse" bus="ps2">\n      <alias name="ua-input-mouse-ps2-1"/>\n    </input>' in misc
    # the only child is the <address>: alias goes first
    assert ('<redirdev bus="usb" type="spicevmc">\n      <alias name="ua-redir-usb-1"/>\n'
            '      <address type="usb" bus="0" port="3"/>\n    </redirdev>') in misc


def test_pci_controllers_are_never_aliased_even_when_asked():
    out = read_golden("alias-misc-out.xml")
    root = etree.fromstring(out.encode("utf-8"))
    pci = [c for c in root.iterfind("devices/controller") if c.get("type") == "pci"]
    assert len(pci) == 14
    assert all(c.find("alias") is None for c in pci)


def test_every_alias_golden_file_is_used():
    import os
    from ansible_collections.virtfleet.libvirt.tests.unit._support import GOLDEN
    names = {n for n in os.listdir(GOLDEN) if n.startswith("alias-")}
    used = set()
    for case, spec in CASES.items():
        used |= {"alias-%s-in.xml" % spec["src"], "alias-%s-out.xml" % case}
    used |= {"alias-running-in.xml", "alias-running-live.xml", "alias-running-out.xml"}  # test_alias_plan.py
    assert names == used


# --- libvirt itself as the oracle for the position and the validity --------------------------------------

@pytest.fixture(scope="module")
def libvirt_conn():
    libvirt = pytest.importorskip("libvirt")
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open("test:///default")
    yield libvirt, conn
    conn.close()


@pytest.mark.parametrize("case", sorted(CASES))
def test_libvirt_keeps_every_alias_where_we_put_it(case, libvirt_conn):
    """Define the output on libvirt's test driver (same XML parser and formatter as the QEMU driver):
    every alias survives (none dropped, no 'non unique alias'), and libvirt writes each <alias> among
    the same siblings as we inserted it."""
    libvirt, conn = libvirt_conn
    _state_, _changes, out = _plan_case(case)
    out = out.replace("<name>", "<name>golden-%s-" % case, 1)
    out = re.sub(r"<uuid>[^<]*</uuid>", "", out, count=1)
    dom = conn.defineXML(out)
    try:
        back = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    finally:
        dom.undefine()
    ours = {a.get("name"): a.getparent() for a in etree.fromstring(out.encode()).iterfind("devices/*/alias")}
    theirs = {a.get("name"): a.getparent() for a in etree.fromstring(back.encode()).iterfind("devices/*/alias")}
    assert sorted(theirs) == sorted(ours)
    for name, el in ours.items():
        def around(dev):
            kids = [k.tag for k in dev if isinstance(k.tag, str)]
            i = kids.index("alias")
            return set(kids[:i]), set(kids[i + 1:])
        before, after = around(el)
        lv_before, lv_after = around(theirs[name])
        # the test driver adds <target dev='testnetN'/> to interfaces; compare only what we have
        assert (before, after) == (lv_before & (before | after), lv_after & (before | after)), name
