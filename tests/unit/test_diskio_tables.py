"""desired_driver / effective_flags / describe tables, validate_request and check_host_support."""

from __future__ import annotations

import itertools

import pytest

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _diskio
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import InvalidRequest, UnsupportedByHost

from _support import CACHE_MODES, CACHE_TABLE, DIRECT, IO_MODES

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
