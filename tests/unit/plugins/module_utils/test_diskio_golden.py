"""Golden XML in/out for every rule of _diskio.plan_domain + _plan.apply_edits.

Each case is tests/unit/golden/<case>-in.xml (plus <case>-live.xml for a running domain)
and the exact expected output <case>-out.xml. REGEN_GOLDEN=1 rewrites the -out files from
the current code; review them by eye before committing.
"""

from __future__ import annotations

import pytest
from lxml import etree

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _diskio, _plan
from ansible_collections.virtfleet.libvirt.plugins.module_utils._plan import DomainState

from ansible_collections.virtfleet.libvirt.tests.unit._support import changed_lines, check_golden, driver_attrs, golden_path, lxml_normalized, read_golden

import os

N, C, IO, NA, LIVE = (_diskio.RULE_NATIVE, _diskio.RULE_CACHE, _diskio.RULE_IO, _diskio.RULE_NATIVE_NA,
                      _diskio.RULE_LIVE)
IONA, CNA = _diskio.RULE_IO_NA, _diskio.RULE_CACHE_NA
S = _plan.SKIPPED

# case: request, domain state (input: another case's -in.xml), expected findings as (target, rule, preset status, edited attrs or None,
# pending_restart), and the expected <driver> attributes of every disk after the edits (only disks
# that change are listed; every other disk must keep its exact attributes).
CASES = {
    "native-writeback": dict(
        io="keep", cache="keep",
        findings=[("vda", N, "", {"io": "threads"}, False)],
        drivers={"vda": {"name": "qemu", "type": "qcow2", "cache": "writeback", "io": "threads", "discard": "unmap"}},
        messages={"vda": ["io=native with cache=writeback is invalid", "moved to io=threads"]},
    ),
    "native-default-cache": dict(
        io="keep", cache="keep",
        findings=[("vda", N, "", {"io": "threads"}, False)],
        # no cache= is QEMU's writeback: io moves to threads, cache stays unset
        drivers={"vda": {"name": "qemu", "type": "raw", "io": "threads"}},
        messages={"vda": ["default (writeback)", "moved to io=threads"]},
    ),
    "native-none-unchanged": dict(io="keep", cache="keep", findings=[], drivers={}),
    "native-directsync-unchanged": dict(io="keep", cache="keep", findings=[], drivers={}),
    "cache-none-mixed": dict(
        io="keep", cache="none",
        findings=[
            ("vda", C, "", {"cache": "none"}, False),           # native stays: none is direct
            ("vdb", C, "", {"name": "qemu", "cache": "none"}, False),  # <driver> created
            ("sda", C, "", {"cache": "none"}, False),           # lun counts, cdrom sdb does not
        ],
        drivers={"vda": {"name": "qemu", "type": "qcow2", "cache": "none", "io": "native", "discard": "unmap"},
                 "vdb": {"name": "qemu", "cache": "none"},
                 "sda": {"name": "qemu", "type": "raw", "cache": "none"}},
        messages={"vda": ["cache writeback -> none"], "vdb": ["cache default (writeback) -> none"]},
    ),
    "cache-writeback-breaks-native": dict(
        io="keep", cache="writeback",
        findings=[
            ("vda", C, "", {"cache": "writeback"}, False),
            ("vda", N, "", {"io": "threads"}, False),
            ("vdb", C, "", {"cache": "writeback"}, False),
        ],
        drivers={"vda": {"name": "qemu", "type": "qcow2", "cache": "writeback", "io": "threads"},
                 "vdb": {"name": "qemu", "type": "qcow2", "cache": "writeback"}},
        messages={"vda": ["cache change to writeback makes io=native invalid", "moved to io=threads"]},
    ),
    "io-native-on-cached": dict(
        io="native", cache="keep",
        findings=[
            ("vda", NA, _plan.SKIPPED, None, False),            # reported, never edited
            ("vdb", IO, "", {"io": "native"}, False),
        ],
        drivers={"vdb": {"name": "qemu", "type": "qcow2", "cache": "none", "io": "native"}},
        messages={"vda": ["io=native requested but cache=writeback is not a direct mode", "cache: none"]},
    ),
    "io-threads": dict(
        io="threads", cache="keep",
        findings=[("vda", IO, "", {"io": "threads"}, False), ("vdc", IO, "", {"io": "threads"}, False)],
        drivers={"vda": {"name": "qemu", "type": "qcow2", "cache": "none", "io": "threads"},
                 "vdc": {"name": "qemu", "type": "qcow2", "cache": "writeback", "io": "threads"}},
    ),
    "io-uring": dict(
        io="io_uring", cache="keep",
        findings=[("vda", IO, "", {"io": "io_uring"}, False), ("vdb", IO, "", {"io": "io_uring"}, False),
                  ("vdc", IO, "", {"io": "io_uring"}, False)],
        drivers={"vda": {"name": "qemu", "type": "qcow2", "cache": "none", "io": "io_uring"},
                 "vdb": {"name": "qemu", "type": "qcow2", "cache": "writeback", "io": "io_uring"},
                 "vdc": {"name": "qemu", "type": "qcow2", "cache": "unsafe", "io": "io_uring"}},
        messages={"vdc": ["io default (threads) -> io_uring"]},
    ),
    # cdrom and floppy: requests (cache none) never apply, but the native rule does, because
    # libvirt refuses to start a domain with io=native on a cached cdrom too; a non-qemu driver
    # and a vhost-user disk are never touched.
    "ignored-devices": dict(
        io="threads", cache="none",
        findings=[("sda", N, "", {"io": "threads"}, False), ("fda", N, "", {"io": "threads"}, False)],
        drivers={"sda": {"name": "qemu", "type": "raw", "cache": "writeback", "io": "threads", "discard": "unmap"},
                 "fda": {"name": "qemu", "type": "raw", "cache": "unsafe", "io": "threads"}},
    ),
    "transient": dict(
        io="keep", cache="keep", persistent=False, active=True, live="transient-in.xml",
        findings=[("vda", N, _plan.SKIPPED, None, False)],
        drivers={},
        messages={"vda": ["transient domain"]},
    ),
    "running": dict(
        io="keep", cache="keep", active=True,
        findings=[("vda", N, "", {"io": "threads"}, True)],
        drivers={"vda": {"name": "qemu", "type": "qcow2", "cache": "writeback", "io": "threads", "discard": "unmap"}},
    ),
    # One disk of every type. io applies to file, block and pool volumes (vdj); network (nbd, rbd,
    # iscsi, https, gluster), nvme, dir, a mode='direct' iSCSI volume and vhostvdpa get
    # io-not-applicable (skipped, nothing written) but still take the cache request; vhostuser is
    # never touched. gluster vdg already matches.
    "diskio-network": dict(
        io="native", cache="none",
        findings=[
            ("vda", C, "", {"cache": "none"}, False), ("vda", IO, "", {"io": "native"}, False),
            ("vdb", C, "", {"name": "qemu", "cache": "none"}, False), ("vdb", IO, "", {"name": "qemu", "io": "native"}, False),
            ("vdc", C, "", {"cache": "none"}, False), ("vdc", IONA, S, None, False),
            ("vdd", IONA, S, None, False),
            ("vde", C, "", {"cache": "none"}, False), ("vde", IONA, S, None, False),
            ("vdf", C, "", {"cache": "none"}, False), ("vdf", IONA, S, None, False),
            ("vdh", IONA, S, None, False),
            ("vdi", C, "", {"cache": "none"}, False), ("vdi", IONA, S, None, False),
            ("vdj", C, "", {"cache": "none"}, False), ("vdj", IO, "", {"io": "native"}, False),
            ("vdk", IONA, S, None, False),
            ("vdl", IONA, S, None, False),
        ],
        drivers={"vda": {"name": "qemu", "type": "qcow2", "cache": "none", "io": "native"},
                 "vdb": {"name": "qemu", "cache": "none", "io": "native"},
                 "vdc": {"name": "qemu", "type": "raw", "cache": "none"},
                 "vde": {"name": "qemu", "type": "raw", "cache": "none"},
                 "vdf": {"name": "qemu", "type": "raw", "cache": "none"},
                 "vdi": {"name": "qemu", "type": "fat", "cache": "none"},
                 "vdj": {"name": "qemu", "type": "qcow2", "cache": "none", "io": "native"}},
        messages={"vdc": ["io=native requested, but io has no effect here", "protocol nbd", "no aio option",
                          "Nothing changed, io stays unset (threads)"],
                  "vdd": ["protocol rbd", "io stays threads"], "vde": ["protocol iscsi"], "vdf": ["protocol https"],
                  "vdh": ["nvme disk", "VFIO"], "vdi": ["dir disk", "vvfat"], "vdk": ["mode='direct'", "libiscsi"],
                  "vdl": ["vhostvdpa disk", "virtio-blk-vhost-vdpa"]},
    ),
    # Same domain, cache writeback + io_uring: vhostvdpa refuses a cached mode (cache-not-applicable),
    # gluster's io=native becomes invalid with writeback and moves to threads although QEMU ignores it.
    "diskio-network-writeback": dict(
        input="diskio-network", io="io_uring", cache="writeback",
        findings=[
            ("vda", IO, "", {"io": "io_uring"}, False),
            ("vdb", IO, "", {"name": "qemu", "io": "io_uring"}, False),
            ("vdc", IONA, S, None, False),
            ("vdd", C, "", {"cache": "writeback"}, False), ("vdd", IONA, S, None, False),
            ("vde", IONA, S, None, False),
            ("vdf", IONA, S, None, False),
            ("vdg", C, "", {"cache": "writeback"}, False), ("vdg", N, "", {"io": "threads"}, False),
            ("vdh", C, "", {"cache": "writeback"}, False), ("vdh", IONA, S, None, False),
            ("vdi", IONA, S, None, False),
            ("vdj", IO, "", {"io": "io_uring"}, False),
            ("vdk", C, "", {"cache": "writeback"}, False), ("vdk", IONA, S, None, False),
            ("vdl", CNA, S, None, False), ("vdl", IONA, S, None, False),
        ],
        drivers={"vda": {"name": "qemu", "type": "qcow2", "cache": "writeback", "io": "io_uring"},
                 "vdb": {"name": "qemu", "io": "io_uring"},
                 "vdd": {"name": "qemu", "type": "raw", "cache": "writeback", "io": "threads"},
                 "vdg": {"name": "qemu", "type": "qcow2", "cache": "writeback", "io": "threads"},
                 "vdh": {"name": "qemu", "type": "raw", "cache": "writeback"},
                 "vdj": {"name": "qemu", "type": "qcow2", "cache": "writeback", "io": "io_uring"},
                 "vdk": {"name": "qemu", "type": "raw", "cache": "writeback"}},
        messages={"vdg": ["cache change to writeback makes io=native invalid", "QEMU ignores io on this disk",
                          "every disk type", "moved to io=threads"],
                  "vdl": ["cache=writeback requested, but libvirt accepts only cache none or directsync",
                          "nothing changed, cache stays none"]},
    ),
    # Legacy definitions: io=native on cached nbd, dir and http-cdrom disks. libvirt refuses to start
    # them whatever the disk type, so the native rule still fixes them; the io=threads request
    # changes the file disk and is not applicable on rbd.
    "diskio-network-native-writeback": dict(
        io="threads", cache="keep",
        findings=[
            ("vda", IO, "", {"io": "threads"}, False),
            ("vdb", N, "", {"io": "threads"}, False),
            ("vdc", N, "", {"io": "threads"}, False),
            ("vdd", IONA, S, None, False),
            ("sda", N, "", {"io": "threads"}, False),
        ],
        drivers={"vda": {"name": "qemu", "type": "qcow2", "cache": "none", "io": "threads"},
                 "vdb": {"name": "qemu", "type": "raw", "cache": "writeback", "io": "threads"},
                 "vdc": {"name": "qemu", "type": "fat", "io": "threads"},
                 "sda": {"name": "qemu", "type": "raw", "cache": "unsafe", "io": "threads"}},
        messages={"vdb": ["io=native with cache=writeback is invalid (libvirt refuses to start the domain)",
                          "QEMU ignores io on this disk", "moved to io=threads"],
                  "vdc": ["cache=default (writeback)"], "vdd": ["io=threads requested", "io stays io_uring"]},
    ),
    "live-differs": dict(
        io="keep", cache="keep", active=True,
        findings=[("vda", LIVE, _plan.PENDING, None, True)],
        drivers={},
        messages={"vda": ["running domain still uses cache=writeback io=native", "cold boot"]},
    ),
}


def _state(case):
    spec = CASES[case]
    live = None
    if spec.get("active"):
        live_file = spec.get("live") or case + "-live.xml"
        live = read_golden(live_file)
    return DomainState(name="web01", uuid="5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11",
                       active=bool(spec.get("active")), persistent=spec.get("persistent", True),
                       inactive_xml=read_golden(spec.get("input", case) + "-in.xml"), live_xml=live)


def _edited_attrs(change):
    if not change.edits:
        return None
    attrs = {}
    for edit in change.edits:
        assert edit.child == "driver"
        attrs.update(dict(edit.attrs))
    return attrs


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_findings(case):
    spec = CASES[case]
    changes = _diskio.plan_domain(_state(case), want_io=spec["io"], want_cache=spec["cache"])
    got = [(c.device["target"], c.rule, c.status, _edited_attrs(c), c.pending_restart) for c in changes]
    assert got == spec["findings"]
    for change in changes:
        assert change.domain == "web01"
        assert change.message.startswith(change.device["target"] + ": ")
        # report-only findings never carry edits; actionable ones always do
        assert bool(change.edits) == (change.status == "")
    for target, fragments in spec.get("messages", {}).items():
        text = " | ".join(c.message for c in changes if c.device["target"] == target)
        for fragment in fragments:
            assert fragment in text, (target, fragment, text)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_output(case):
    spec = CASES[case]
    state = _state(case)
    changes = _diskio.plan_domain(state, want_io=spec["io"], want_cache=spec["cache"])
    out = _plan.apply_edits(state.inactive_xml, _plan.domain_edits(changes))
    check_golden(case + "-out.xml", out)

    if not spec["drivers"]:
        # nothing to do: the text is returned untouched, byte for byte
        assert out == state.inactive_xml
        return

    # Every disk not listed keeps its <driver> exactly; listed ones get exactly the planned attrs.
    before, after = driver_attrs(state.inactive_xml), driver_attrs(out)
    assert list(before) == list(after)
    for target in before:
        assert after[target] == spec["drivers"].get(target, before[target]), target

    # Minimal edit: against what lxml writes for the untouched input, only <driver> lines differ,
    # one per edited disk (added, or replaced).
    removed, added = changed_lines(lxml_normalized(state.inactive_xml), out)
    assert all(line.strip().startswith("<driver ") for line in removed + added), (removed, added)
    assert len(added) == len(spec["drivers"])
    created = [t for t in spec["drivers"] if before[t] is None]
    assert len(removed) == len(spec["drivers"]) - len(created)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_converges(case):
    """Re-planning the patched output (same live state) yields nothing actionable."""
    spec = CASES[case]
    state = _state(case)
    changes = _diskio.plan_domain(state, want_io=spec["io"], want_cache=spec["cache"])
    out = _plan.apply_edits(state.inactive_xml, _plan.domain_edits(changes))
    again = _diskio.plan_domain(
        DomainState(state.name, state.uuid, state.active, state.persistent, out, state.live_xml),
        want_io=spec["io"], want_cache=spec["cache"])
    assert [c for c in again if c.actionable] == []
    # a fixed running domain keeps reporting what waits for the cold boot
    if case == "running":
        assert [(c.device["target"], c.rule, c.status, c.pending_restart) for c in again] == [
            ("vda", LIVE, _plan.PENDING, True)]


def test_created_driver_is_first_child_with_name_qemu():
    out = read_golden("cache-none-mixed-out.xml")
    root = etree.fromstring(out.encode())
    disk = [d for d in root.iterfind("devices/disk") if d.find("target").get("dev") == "vdb"][0]
    first = [k for k in disk if isinstance(k.tag, str)][0]
    assert first.tag == "driver"
    assert dict(first.attrib) == {"name": "qemu", "cache": "none"}
    # and it is indented like its siblings, on its own line
    assert '\n    <disk type="file" device="disk">\n      <driver name="qemu" cache="none"/>\n      <source ' in out


def test_every_golden_file_is_used():
    # alias-* goldens belong to tests/unit/plugins/module_utils/test_alias_golden.py
    names = {n for n in os.listdir(os.path.dirname(golden_path("x"))) if not n.startswith("alias-")}
    used = set()
    for case, spec in CASES.items():
        used |= {spec.get("input", case) + "-in.xml", case + "-out.xml"}
        if spec.get("active"):
            used.add(spec.get("live") or case + "-live.xml")
    assert names == used


def _one_disk_domain(disk_type, source, cache, io):
    return ("<domain type='kvm'><name>web01</name><uuid>u</uuid><devices>"
            "<disk type='%s' device='disk'><driver name='qemu' type='raw' cache='%s' io='%s'/>%s"
            "<target dev='vda' bus='virtio'/></disk></devices></domain>" % (disk_type, cache, io, source))


@pytest.mark.parametrize("disk_type,source,live_io_matters", [
    ("file", "<source file='/i.img'/>", True),
    ("network", "<source protocol='nbd'><host name='127.0.0.1' port='10809'/></source>", False),
    ("dir", "<source dir='/srv/x'/>", False),
])
def test_running_domain_differing_only_in_io_is_pending_only_where_io_matters(disk_type, source, live_io_matters):
    inactive = _one_disk_domain(disk_type, source, "none", "threads")
    live = _one_disk_domain(disk_type, source, "none", "native")
    changes = _diskio.plan_domain(DomainState("web01", "u", True, True, inactive, live))
    assert [(c.rule, c.status) for c in changes] == ([(LIVE, _plan.PENDING)] if live_io_matters else [])
    # a cache difference is still pending everywhere
    live = _one_disk_domain(disk_type, source, "writeback", "threads")
    changes = _diskio.plan_domain(DomainState("web01", "u", True, True, inactive, live))
    assert [(c.rule, c.status) for c in changes] == [(LIVE, _plan.PENDING)]


def test_io_request_on_running_network_disk_is_skipped_without_pending_restart():
    xml = _one_disk_domain("network", "<source protocol='rbd' name='p/i'/>", "none", "threads")
    changes = _diskio.plan_domain(DomainState("web01", "u", True, True, xml, xml), want_io="native")
    assert [(c.rule, c.status, c.pending_restart, c.edits) for c in changes] == [(IONA, S, False, ())]
    assert "nothing changed" in changes[0].message.lower()
