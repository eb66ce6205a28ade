"""Hypothesis properties of plan_domain + apply_edits on generated domain XML.

The generator mixes what real definitions contain and what the planner must not touch:
unknown elements, foreign-namespace elements and attributes, comments everywhere, PCI
addresses, MACs, random device order, disks of every kind and drivers with any combination of
cache/io (including absent).
"""

from __future__ import annotations

from hypothesis import given, note, strategies as st
from lxml import etree

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _diskio, _domxml, _plan
from ansible_collections.virtfleet.libvirt.plugins.module_utils._plan import DomainState

from ansible_collections.virtfleet.libvirt.tests.unit._support import CACHE_MODES, IO_MODES, comments, native_with_cached_disk

FOREIGN = "urn:example:foreign"
QEMU = "http://libvirt.org/schemas/domain/qemu/1.0"

safe_text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 .,:_/=+", min_size=0, max_size=12)
attr_value = st.one_of(safe_text, st.sampled_from(["a&amp;b", "&lt;x&gt;", "&quot;q&quot;", "caf\u00e9", "\u2603"]))
hexbyte = st.integers(0, 255).map(lambda i: "%02x" % i)


@st.composite
def comment(draw, counter):
    counter[0] += 1
    return "<!-- c%d %s -->" % (counter[0], draw(safe_text).replace("-", "_"))


@st.composite
def pci_address(draw):
    return "<address type='pci' domain='0x0000' bus='0x%s' slot='0x%02x' function='0x%d'%s/>" % (
        draw(hexbyte), draw(st.integers(0, 31)), draw(st.integers(0, 7)),
        draw(st.sampled_from(["", " multifunction='on'"])))


@st.composite
def driver(draw):
    if draw(st.integers(0, 5)) == 0:
        return None
    attrs = []
    name = draw(st.sampled_from(["qemu", "qemu", "qemu", None, "file", "tap"]))
    if name:
        attrs.append("name='%s'" % name)
    if draw(st.booleans()):
        attrs.append("type='%s'" % draw(st.sampled_from(["raw", "qcow2"])))
    cache = draw(st.sampled_from((None,) + CACHE_MODES))
    io = draw(st.sampled_from((None,) + IO_MODES))
    extra = draw(st.lists(st.sampled_from([
        "discard='unmap'", "detect_zeroes='on'", "f:hint='%s'" % draw(attr_value), "queues='4'"]),
        unique=True, max_size=2))
    parts = [("cache='%s'" % cache) if cache else None, ("io='%s'" % io) if io else None] + extra
    parts = [p for p in parts if p]
    order = draw(st.permutations(parts)) if parts else []
    return "<driver %s/>" % " ".join(attrs + list(order)) if attrs or order else "<driver/>"


@st.composite
def disk(draw, index, counter):
    kind = draw(st.sampled_from(["disk", "disk", "disk", "lun", "cdrom", "floppy"]))
    dtype = draw(st.sampled_from(["file", "block", "network"] if kind != "lun" else ["block"]))
    if kind == "disk" and draw(st.integers(0, 9)) == 0:
        dtype = "vhostuser"
    children = []
    drv = draw(driver())
    src = {"file": "<source file='/img/d%d.qcow2'/>" % index, "block": "<source dev='/dev/sd%d'/>" % index,
           "network": "<source protocol='rbd' name='pool/img%d'/>" % index,
           "vhostuser": "<source type='unix' path='/run/vu%d.sock'/>" % index}[dtype]
    children.append(src)
    children.append("<target dev='vd%s' bus='virtio'/>" % "".join(chr(97 + int(c)) for c in "%03d" % index))
    optional = draw(st.lists(st.sampled_from(["alias", "serial", "address", "foreign", "unknown", "comment",
                                              "readonly", "boot"]), unique=True, max_size=5))
    if "alias" in optional:
        children.append("<alias name='ua-disk%d'/>" % index)
    if "serial" in optional:
        children.append("<serial>S%d&amp;x</serial>" % index)
    if "foreign" in optional:
        children.append("<f:tag f:attr='%s'>%s</f:tag>" % (draw(attr_value), draw(safe_text)))
    if "unknown" in optional:
        children.append("<iotune><total_iops_sec>%d</total_iops_sec></iotune>" % draw(st.integers(0, 9999)))
    if "readonly" in optional:
        children.append("<readonly/>")
    if "boot" in optional:
        children.append("<boot order='%d'/>" % (index + 1))
    if "address" in optional:
        children.append(draw(pci_address()))
    if "comment" in optional:
        children.insert(draw(st.integers(0, len(children))), draw(comment(counter)))
    if drv is not None:
        # libvirt writes <driver> first; hand-written XML may have it anywhere
        children.insert(draw(st.sampled_from([0, 0, 0, len(children)])), drv)
    return "<disk type='%s' device='%s'>" % (dtype, kind), children, "</disk>"


@st.composite
def other_device(draw, index, counter):
    what = draw(st.sampled_from(["interface", "controller", "unknown", "foreign", "comment", "graphics"]))
    if what == "interface":
        return ("<interface type='network'>",
                ["<mac address='52:54:00:%s:%s:%s'/>" % (draw(hexbyte), draw(hexbyte), draw(hexbyte)),
                 "<source network='default'/>", "<model type='virtio'/>", draw(pci_address())], "</interface>")
    if what == "controller":
        return ("<controller type='pci' index='%d' model='pcie-root-port'>" % (index + 1),
                ["<model name='pcie-root-port'/>", draw(pci_address())], "</controller>")
    if what == "graphics":
        return ("<graphics type='vnc' port='-1' autoport='yes' passwd='%s'>" % draw(safe_text),
                ["<listen type='address'/>"], "</graphics>")
    if what == "unknown":
        return ("<futuredevice model='x%d'>" % index, ["<param v='%s'/>" % draw(attr_value)], "</futuredevice>")
    if what == "foreign":
        return ("<f:device f:id='%d'>" % index, [], "</f:device>")
    return draw(comment(counter))


@st.composite
def domain_xml(draw):
    counter = [0]
    pretty = draw(st.booleans())
    nl, i1, i2 = ("\n", "  ", "    ") if pretty else ("", "", "")
    items = []
    n = draw(st.integers(1, 9))
    for index in range(n):
        if draw(st.integers(0, 2)):
            items.append(draw(disk(index, counter)))
        else:
            items.append(draw(other_device(index, counter)))
    devs = []
    for item in items:
        if isinstance(item, str):
            devs.append(i2 + item)
        else:
            open_tag, children, close_tag = item
            if not children:
                devs.append(i2 + open_tag[:-1] + "/>")
            else:
                inner = nl.join(i2 + "  " * pretty + c for c in children)
                devs.append(i2 + open_tag + nl + inner + nl + i2 + close_tag)
    machine = draw(st.sampled_from(["pc-q35-7.2", "pc-i440fx-8.0", "q35", "pc-q35-5.2"]))
    head = [
        "<domain type='kvm' xmlns:qemu='%s' xmlns:f='%s' f:owner='%s'>" % (QEMU, FOREIGN, draw(attr_value)),
        i1 + "<name>gen</name>",
        i1 + "<uuid>00000000-0000-4000-8000-000000000001</uuid>",
        i1 + "<metadata><app:info xmlns:app='urn:app'><app:v>%s</app:v></app:info></metadata>" % draw(safe_text),
        i1 + draw(comment(counter)),
        i1 + "<os><type arch='x86_64' machine='%s'>hvm</type></os>" % machine,
        i1 + "<devices>",
    ]
    tail = [i1 + "</devices>", i1 + "<qemu:commandline><qemu:arg value='-S'/></qemu:commandline>",
            i1 + "<f:extension f:x='1'/>", "</domain>"]
    return nl.join(head + devs + tail) + nl


REQUESTS = [(io, cache) for io in ("keep",) + IO_MODES for cache in ("keep",) + CACHE_MODES
            if not (io == "native" and cache not in ("keep", "none", "directsync"))]


def _xml(text):
    return etree.fromstring(text.encode("utf-8"))


def _planned_attrs(edits):
    per_device = {}
    for edit in edits:
        assert edit.child == "driver", edit
        per_device.setdefault(edit.device, {}).update(dict(edit.attrs))
    return per_device


def _strip(root, device, names, drop_if_empty):
    el = root.getroottree().xpath(device)[0]
    drv = el.find("driver")
    if drv is None:
        return
    for name in names:
        drv.attrib.pop(name, None)
    if drop_if_empty:
        assert dict(drv.attrib) == {}, "created <driver> carries unplanned attributes: %r" % dict(drv.attrib)
        el.remove(drv)


def _fingerprint(root):
    devs = root.find("devices")
    order = [(c.tag if isinstance(c.tag, str) else "#comment", c.get("type"), c.get("device")) for c in devs]
    addresses = [dict(a.attrib) for a in root.iter("address")]
    macs = [m.get("address") for m in root.iter("mac")]
    machine = dict(root.find("os/type").attrib)
    return order, addresses, macs, machine


@given(xml=domain_xml(), request=st.sampled_from(REQUESTS), running=st.booleans())
def test_plan_and_apply_properties(xml, request, running):
    want_io, want_cache = request
    note(xml)
    state = DomainState("gen", "00000000-0000-4000-8000-000000000001", running, True, xml,
                        xml if running else None)
    changes = _diskio.plan_domain(state, want_io=want_io, want_cache=want_cache)
    edits = _plan.domain_edits(changes)
    out = _plan.apply_edits(xml, edits)
    note(out)
    planned = _planned_attrs(edits)

    # (a) semantically, only the planned attributes of the planned <driver> elements changed
    before, after = _xml(xml), _xml(out)
    for device, attrs in planned.items():
        drv = after.getroottree().xpath(device)[0].find("driver")
        for name, value in attrs.items():
            assert drv.get(name) == value
        created = before.getroottree().xpath(device)[0].find("driver") is None
        if created:
            assert attrs.get("name") == "qemu"
            first = [k for k in drv.getparent() if isinstance(k.tag, str)][0]
            assert first is drv, "a created <driver> must be the first child of <disk>"
        _strip(before, device, attrs, drop_if_empty=False)
        _strip(after, device, attrs, drop_if_empty=created)
    assert _domxml.canonical(after) == _domxml.canonical(before)

    # (b) every comment survives, in order
    assert comments(out) == comments(xml)

    # (c) device order, every <address>, <mac> and the machine type are unchanged
    assert _fingerprint(_xml(out)) == _fingerprint(_xml(xml))

    # (d) convergence: re-planning the output finds nothing left to do
    again = _diskio.plan_domain(DomainState(state.name, state.uuid, running, True, out, state.live_xml),
                                want_io=want_io, want_cache=want_cache)
    assert [c.message for c in again if c.actionable] == []
    # report-only findings are stable: the same skipped/pending disks are reported again
    assert sorted((c.device["path"], c.rule) for c in again if c.rule == _diskio.RULE_NATIVE_NA) == \
        sorted((c.device["path"], c.rule) for c in changes if c.rule == _diskio.RULE_NATIVE_NA)

    # (e) never io=native with a non-direct cache on a policy disk
    assert native_with_cached_disk(out) == []

    # every finding's "desired" is what the output now says for that disk
    for change in changes:
        if change.actionable:
            el = _xml(out).getroottree().xpath(change.device["path"])[0]
            got = _diskio.settings(_domxml.attr(el, "driver", "cache"), _domxml.attr(el, "driver", "io"))
            assert got == change.desired
        # A running domain waits for a cold boot, except where only io changes on a disk whose io QEMU
        # ignores (network, nvme, ...): it already runs the way the new definition says.
        el = _xml(xml).getroottree().xpath(change.device["path"])[0]
        io_only = change.current["cache"] == change.desired["cache"]
        same_run = io_only and _diskio.io_not_applicable(el) is not None
        assert change.pending_restart == (running and change.status != _plan.SKIPPED and not same_run)


@given(xml=domain_xml(), request=st.sampled_from(REQUESTS))
def test_transient_domains_are_never_edited(xml, request):
    want_io, want_cache = request
    state = DomainState("gen", "u", True, False, xml, xml)
    changes = _diskio.plan_domain(state, want_io=want_io, want_cache=want_cache)
    assert _plan.domain_edits(changes) == ()
    assert all(c.status == _plan.SKIPPED and not c.pending_restart for c in changes)


@given(xml=domain_xml())
def test_every_invalid_native_disk_is_reported(xml):
    """keep/keep: one io-native-needs-direct-cache finding per offending disk, never only the first."""
    bad = native_with_cached_disk(xml)
    changes = _diskio.plan_domain(DomainState("gen", "u", False, True, xml))
    assert [c.device["target"] for c in changes] == bad
    assert all(c.rule == _diskio.RULE_NATIVE for c in changes)


def test_generator_produces_interesting_documents():
    """Guard the generator itself: it must yield invalid native disks, created drivers and comments."""
    seen = {"bad": 0, "nodriver": 0, "comments": 0, "compact": 0}

    @given(xml=domain_xml())
    def probe(xml):
        seen["bad"] += bool(native_with_cached_disk(xml))
        root = _xml(xml)
        seen["nodriver"] += any(d.find("driver") is None and d.get("device") in ("disk", "lun")
                                for d in root.iter("disk"))
        seen["comments"] += len(comments(xml)) > 1
        seen["compact"] += "\n" not in xml.strip()

    probe()
    assert all(v >= 5 for v in seen.values()), seen
