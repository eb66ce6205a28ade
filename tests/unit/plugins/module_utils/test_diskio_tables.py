"""desired_driver / effective_flags / describe tables, validate_request and check_host_support."""

from __future__ import annotations

import itertools

import pytest

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _diskio
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import InvalidRequest, UnsupportedByHost

from ansible_collections.virtfleet.libvirt.tests.unit._support import CACHE_MODES, CACHE_TABLE, DIRECT, IO_MODES

CURRENT_CACHE = (None,) + CACHE_MODES      # None: no cache= in the XML
CURRENT_IO = (None,) + IO_MODES            # None: no io= in the XML
WANT_CACHE = ("keep",) + CACHE_MODES
WANT_IO = ("keep",) + IO_MODES


def _valid_request(want_io, want_cache):
    return not (want_io == "native" and want_cache not in ("keep",) + DIRECT)


# --- effective_flags / describe ------------------------------------------------------------

@pytest.mark.parametrize("cache", CACHE_MODES)
def test_effective_flags_table(cache):
    writeback, direct, no_flush = CACHE_TABLE[cache]
    assert _diskio.effective_flags(cache) == {"writeback": writeback, "direct": direct, "no_flush": no_flush}


def test_effective_flags_default_is_writeback():
    assert _diskio.effective_flags(None) == {"writeback": True, "direct": False, "no_flush": False}


@pytest.mark.parametrize("cache,io", list(itertools.product(CURRENT_CACHE, CURRENT_IO)))
def test_describe(cache, io):
    got = _diskio.describe(cache, io)
    eff_cache, eff_io = cache or "writeback", io or "threads"
    writeback, direct, no_flush = CACHE_TABLE[eff_cache]
    assert got == {"cache": eff_cache, "io": eff_io, "cache_set": cache is not None, "io_set": io is not None,
                   "writeback": writeback, "direct": direct, "no_flush": no_flush}


# --- desired_driver: the whole table ----------------------------------------------------------

@pytest.mark.parametrize("cache,io,want_cache,want_io",
                         list(itertools.product(CURRENT_CACHE, CURRENT_IO, WANT_CACHE, WANT_IO)))
def test_desired_driver_table(cache, io, want_cache, want_io):
    if not _valid_request(want_io, want_cache):
        with pytest.raises(InvalidRequest):
            _diskio.validate_request(want_io, want_cache)
        return
    _diskio.validate_request(want_io, want_cache)
    new_cache, new_io, reasons = _diskio.desired_driver(cache, io, want_cache, want_io)
    rules = [r for r, _m in reasons]
    eff_cache, eff_io = new_cache or "writeback", new_io or "threads"

    # Invariant: the result is never io=native with a non-direct cache.
    assert not (eff_io == "native" and eff_cache not in DIRECT)
    # Flags follow the table for the resulting mode.
    assert _diskio.describe(new_cache, new_io)["direct"] == CACHE_TABLE[eff_cache][1]

    # cache: the request is always valid on its own, so it is always applied; otherwise untouched.
    if want_cache == "keep" or (cache or "writeback") == want_cache:
        assert new_cache == cache
        assert _diskio.RULE_CACHE not in rules
    else:
        assert new_cache == want_cache
        assert rules.count(_diskio.RULE_CACHE) == 1

    # io: applied whenever valid with the resulting cache; otherwise reported, never forced.
    old_eff_io = io or "threads"
    if want_io == "keep" or old_eff_io == want_io:
        assert _diskio.RULE_IO not in rules and _diskio.RULE_NATIVE_NA not in rules
        if old_eff_io == "native" and eff_cache not in DIRECT:
            assert new_io == "threads" and _diskio.RULE_NATIVE in rules
        else:
            assert new_io == io and _diskio.RULE_NATIVE not in rules
    elif want_io == "native" and eff_cache not in DIRECT:
        assert rules == [r for r in rules if r in (_diskio.RULE_CACHE, _diskio.RULE_NATIVE_NA, _diskio.RULE_NATIVE)]
        assert _diskio.RULE_NATIVE_NA in rules
        assert _diskio.RULE_IO not in rules
        # io stays as it was unless it was an invalid native (then threads)
        assert new_io == ("threads" if old_eff_io == "native" else io)
    else:
        assert new_io == want_io
        assert rules.count(_diskio.RULE_IO) == 1
        assert _diskio.RULE_NATIVE not in rules

    # Nothing to do means nothing reported, and vice versa.
    assert bool(reasons) == ((new_cache, new_io) != (cache, io) or _diskio.RULE_NATIVE_NA in rules)
    # Every rule at most once, messages non-empty.
    assert len(rules) == len(set(rules))
    assert all(m for _r, m in reasons)


@pytest.mark.parametrize("cache", [None, "writeback", "writethrough", "unsafe"])
def test_native_on_cached_disk_moves_to_threads(cache):
    new_cache, new_io, reasons = _diskio.desired_driver(cache, "native", "keep", "keep")
    assert (new_cache, new_io) == (cache, "threads")
    assert [r for r, _m in reasons] == [_diskio.RULE_NATIVE]
    assert "moved to io=threads" in reasons[0][1]


@pytest.mark.parametrize("cache", ["none", "directsync"])
def test_native_on_direct_disk_is_left_alone(cache):
    assert _diskio.desired_driver(cache, "native", "keep", "keep") == (cache, "native", [])


def test_cache_change_that_breaks_native_says_so():
    new_cache, new_io, reasons = _diskio.desired_driver("none", "native", "writeback", "keep")
    assert (new_cache, new_io) == ("writeback", "threads")
    assert [r for r, _m in reasons] == [_diskio.RULE_CACHE, _diskio.RULE_NATIVE]
    assert "cache change to writeback makes io=native invalid" in reasons[1][1]


def test_message_does_not_blame_cache_change_for_preexisting_invalid_native():
    # cache='writeback' io='native' was already invalid; the request writeback -> unsafe does not cause it.
    _c, _i, reasons = _diskio.desired_driver("writeback", "native", "unsafe", "keep")
    native = [m for r, m in reasons if r == _diskio.RULE_NATIVE][0]
    assert "cache change to unsafe makes io=native invalid" not in native


def test_io_native_request_with_cache_request_none_applies_both():
    assert _diskio.desired_driver("writeback", "threads", "none", "native")[:2] == ("none", "native")


def test_io_native_request_on_cached_disk_is_not_applicable():
    new_cache, new_io, reasons = _diskio.desired_driver("writeback", None, "keep", "native")
    assert (new_cache, new_io) == ("writeback", None)
    assert [r for r, _m in reasons] == [_diskio.RULE_NATIVE_NA]
    assert "cache: none" in reasons[0][1]


def test_default_values_match_requests_without_change():
    # no cache= is writeback, no io= is threads: requesting those is a no-op, nothing is written
    assert _diskio.desired_driver(None, None, "writeback", "threads") == (None, None, [])


# --- validate_request ------------------------------------------------------------------------

@pytest.mark.parametrize("io,cache,fragment", [
    ("aio", "keep", "io='aio' is not one of keep, threads, native, io_uring"),
    ("NATIVE", "keep", "io='NATIVE'"),
    ("", "keep", "io=''"),
    (None, "keep", "io=None"),
    ("keep", "default", "cache='default' is not one of keep, none, writeback, writethrough, directsync, unsafe"),
    ("keep", "None", "cache='None'"),
    ("keep", None, "cache=None"),
])
def test_validate_request_invalid_choices(io, cache, fragment):
    with pytest.raises(InvalidRequest) as err:
        _diskio.validate_request(io, cache)
    assert fragment in err.value.msg


@pytest.mark.parametrize("cache", ["writeback", "writethrough", "unsafe"])
def test_validate_request_refuses_native_with_cached_mode(cache):
    with pytest.raises(InvalidRequest) as err:
        _diskio.validate_request("native", cache)
    assert "io=native cannot be combined with cache=%s" % cache in err.value.msg
    assert "cache: none" in err.value.msg


@pytest.mark.parametrize("io,cache", [(i, c) for i in WANT_IO for c in WANT_CACHE if _valid_request(i, c)])
def test_validate_request_accepts_valid(io, cache):
    assert _diskio.validate_request(io, cache) is None


# --- check_host_support ----------------------------------------------------------------------

@pytest.mark.parametrize("lib,hv_type,hv", [
    ((6, 2, 0), "QEMU", (5, 0, 0)),
    ((6, 3, 0), "QEMU", (4, 2, 0)),
    ((6, 2, 99), "QEMU", (4, 2, 1)),
    ((9, 0, 0), "TEST", (0, 0, 2)),
    ((9, 0, 0), "Xen", (4, 17, 0)),
    ((9, 0, 0), "LXC", (9, 0, 0)),      # new enough numbers, but not QEMU
    ((9, 0, 0), "VBOX", (7, 0, 12)),
])
def test_io_uring_refused_on_old_or_non_qemu_host(lib, hv_type, hv):
    with pytest.raises(UnsupportedByHost) as err:
        _diskio.check_host_support("io_uring", lib, hv_type, hv)
    msg = err.value.msg
    lib_s, hv_s = ".".join(map(str, lib)), ".".join(map(str, hv))
    assert "libvirt %s" % lib_s in msg
    assert "%s %s" % (hv_type, hv_s) in msg
    assert "6.3.0" in msg and "5.0.0" in msg
    assert err.value.details == {"libvirt_version": lib_s, "hypervisor": hv_type, "hypervisor_version": hv_s}


@pytest.mark.parametrize("lib,hv", [((6, 3, 0), (5, 0, 0)), ((9, 0, 0), (7, 2, 0)), ((10, 0, 0), (5, 0, 1))])
def test_io_uring_accepted_on_new_enough_qemu_host(lib, hv):
    assert _diskio.check_host_support("io_uring", lib, "QEMU", hv) is None


@pytest.mark.parametrize("io", ["keep", "threads", "native"])
def test_other_io_modes_need_nothing_from_the_host(io):
    assert _diskio.check_host_support(io, (1, 0, 0), "TEST", (0, 0, 2)) is None


# --- io applicability per disk type (docs/disk-io.md, tests/integration/test_diskio_applicability.py) ---

def _disk_el(xml):
    from lxml import etree
    return etree.fromstring(xml)


# Every network protocol libvirt 9.0 knows (virStorageNetProtocol); none of QEMU's drivers for
# them has an aio option.
NETWORK_PROTOCOLS = ("nbd", "rbd", "sheepdog", "gluster", "iscsi", "http", "https", "ftp", "ftps", "tftp",
                     "ssh", "vxhs", "nfs")


@pytest.mark.parametrize("xml", [
    "<disk type='file' device='disk'><source file='/i.img'/></disk>",
    "<disk device='disk'><source file='/i.img'/></disk>",                       # no type= means file
    "<disk type='block' device='disk'><source dev='/dev/loop0'/></disk>",
    "<disk type='block' device='lun'><source dev='/dev/sdb'/></disk>",
    "<disk type='file' device='cdrom'><source file='/dev/cdrom'/></disk>",      # host_cdrom has aio
    "<disk type='volume' device='disk'><source pool='default' volume='v.qcow2'/></disk>",
    "<disk type='volume' device='disk'><source pool='iscsi' volume='unit:0:0:1' mode='host'/></disk>",
    "<disk type='futuretype' device='disk'/>",                                  # unknown: as before
])
def test_io_applies_to_file_block_and_pool_volumes(xml):
    assert _diskio.io_not_applicable(_disk_el(xml)) is None


@pytest.mark.parametrize("protocol", NETWORK_PROTOCOLS)
def test_io_not_applicable_on_every_network_protocol(protocol):
    el = _disk_el("<disk type='network' device='disk'><source protocol='%s' name='x'/></disk>" % protocol)
    why = _diskio.io_not_applicable(el)
    assert "protocol %s" % protocol in why and "no aio option" in why


@pytest.mark.parametrize("xml,fragment", [
    ("<disk type='nvme' device='disk'><source type='pci' namespace='1'/></disk>", "nvme"),
    ("<disk type='dir' device='disk'><source dir='/srv/x'/></disk>", "vvfat"),
    ("<disk type='vhostvdpa' device='disk'><source dev='/dev/vhost-vdpa-0'/></disk>", "virtio-blk-vhost-vdpa"),
    ("<disk type='volume' device='disk'><source pool='iscsi' volume='unit:0:0:1' mode='direct'/></disk>", "libiscsi"),
])
def test_io_not_applicable_on_nvme_dir_vhostvdpa_and_direct_iscsi_volumes(xml, fragment):
    why = _diskio.io_not_applicable(_disk_el(xml))
    assert fragment in why and "no aio option" in why


WHY = "network disk (protocol nbd): no aio option"


@pytest.mark.parametrize("cache,io,want_cache,want_io",
                         [p for p in itertools.product(CURRENT_CACHE, CURRENT_IO, WANT_CACHE, WANT_IO)
                          if _valid_request(p[3], p[2])])
def test_desired_driver_table_where_io_has_no_effect(cache, io, want_cache, want_io):
    new_cache, new_io, reasons = _diskio.desired_driver(cache, io, want_cache, want_io, io_na=WHY)
    rules = [r for r, _m in reasons]
    eff_cache = new_cache or "writeback"
    # cache requests apply exactly as on a file disk
    on_file_disk = _diskio.desired_driver(cache, io, want_cache, "keep")
    assert new_cache == on_file_disk[0]
    assert rules.count(_diskio.RULE_CACHE) == [r for r, _m in on_file_disk[2]].count(_diskio.RULE_CACHE)
    # an io request is never written and never reported as io-policy or io-native-not-applicable
    assert _diskio.RULE_IO not in rules and _diskio.RULE_NATIVE_NA not in rules
    native_fix = (io or "threads") == "native" and eff_cache not in DIRECT
    # ... but the native rule still applies: libvirt validates it on every disk type
    assert (_diskio.RULE_NATIVE in rules) == native_fix
    assert new_io == ("threads" if native_fix else io)
    # not applicable is reported whenever the request differs and nothing else rewrites io
    differs = want_io != "keep" and (io or "threads") != want_io
    assert (_diskio.RULE_IO_NA in rules) == (differs and not native_fix)
    for rule, message in reasons:
        if rule == _diskio.RULE_IO_NA:
            assert WHY in message and "Nothing changed" in message
        if rule == _diskio.RULE_NATIVE:
            assert "QEMU ignores io on this disk" in message and "every disk type" in message
    assert not (new_io == "native" and eff_cache not in DIRECT)
    assert len(rules) == len(set(rules))


@pytest.mark.parametrize("cache,want_cache", list(itertools.product(("none", "directsync"), WANT_CACHE)))
def test_direct_cache_only_disks_take_only_direct_cache_requests(cache, want_cache):
    new_cache, _io, reasons = _diskio.desired_driver(cache, None, want_cache, "keep", io_na=WHY, direct_cache_only=True)
    rules = [r for r, _m in reasons]
    if want_cache == "keep" or want_cache == cache:
        assert (new_cache, rules) == (cache, [])
    elif want_cache in DIRECT:
        assert (new_cache, rules) == (want_cache, [_diskio.RULE_CACHE])
    else:
        assert (new_cache, rules) == (cache, [_diskio.RULE_CACHE_NA])
        assert "only cache none or directsync" in reasons[0][1] and "nothing changed" in reasons[0][1]


def test_report_only_rules_are_never_edited():
    assert set(_diskio.REPORT_ONLY_RULES) == {_diskio.RULE_NATIVE_NA, _diskio.RULE_IO_NA, _diskio.RULE_CACHE_NA}
    assert _diskio.RULE_IO_NA == "io-not-applicable"
