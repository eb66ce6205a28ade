"""virt_device_alias on a real libvirtd: check mode, fix, idempotence, daemon restart, structure kept,
and explicit assignments with replace: false/true.

The main domain is defined only, never started: its Open vSwitch port has no bridge here
(starting it fails with "Cannot get interface MTU on 'br-vf-it': No such device").
"""

from __future__ import annotations

import os
import stat
import uuid

import pytest

from _alias_lib import (CHANNEL_ALIAS, RNG_ALIAS, Nic, RDisk, alias_map, define_rich, device_aliases,
                        file_alias, image_path, mac_alias, run_named, without_aliases)
from _itlib import addresses, device_order, machine, macs

MODULE = "virt_device_alias"
SERIAL = "vf-ser-%s" % uuid.uuid4().hex[:12]
SHARED_MAC = "52:54:00:a1:00:01"     # two NICs on different backends share it
OVS_MAC = "52:54:00:a1:00:02"
IFACE_ID = str(uuid.uuid4())


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    base = tmp_path_factory.mktemp("alias-lifecycle")
    return {"dir": str(base / "work"), "backups": str(base / "backups")}


@pytest.fixture(scope="module")
def main(lab, domains):
    name = define_rich(lab, domains, "alias-main",
                       [RDisk("vda", "virtio", serial=SERIAL), RDisk("sda", "scsi")],
                       [Nic(SHARED_MAC), Nic(SHARED_MAC), Nic(OVS_MAC, kind="ovs", interfaceid=IFACE_ID)])
    assert not lab.dom(name).isActive()
    before = lab.inactive_xml(name)
    assert list(alias_map(before)) == [None] * 7, "fixture must start alias-less"
    return {"name": name, "before": before}


def expected_aliases(name):
    """(tag, identity) -> alias, derived from the documented rules, independently of the module."""
    return {
        ("disk", "vda"): "ua-disk-%s" % SERIAL,
        ("disk", "sda"): file_alias(image_path(name, "sda")),
        ("interface", SHARED_MAC): [mac_alias(SHARED_MAC), mac_alias(SHARED_MAC, 2)],
        ("interface", "%s/%s" % (OVS_MAC, IFACE_ID)): "ua-net-%s" % IFACE_ID,
        ("rng", "/dev/urandom"): RNG_ALIAS,
        ("channel", "org.qemu.guest_agent.0"): CHANNEL_ALIAS,
    }


def expected_in_order(xml_text, name):
    exp = expected_aliases(name)
    out, nth = [], {}
    for tag, ident, _alias in device_aliases(xml_text):
        want = exp[(tag, ident)]
        if isinstance(want, list):
            nth[ident] = nth.get(ident, 0) + 1
            want = want[nth[ident] - 1]
        out.append(want)
    return out


def run(lab, work, check=False, diff=False, **args):
    args.setdefault("uri", lab.uri)
    args.setdefault("backup_dir", work["backups"])
    return run_named(MODULE, args, work["dir"], check=check, diff=diff)


# --- check mode -> fix -> second run -> daemon restart (chained module fixtures) ---------------------

@pytest.fixture(scope="module")
def checked(lab, work, main):
    res = run(lab, work, check=True, diff=True, domains=[main["name"]])
    return res, lab.inactive_xml(main["name"])


@pytest.fixture(scope="module")
def fixed(lab, work, main, checked):
    res = run(lab, work, domains=[main["name"]])
    return res, lab.inactive_xml(main["name"])


def test_check_mode_reports_every_device_and_changes_nothing(lab, main, work, checked):
    res, after = checked
    assert not res.failed, res.stdout
    assert res.result["changed"] is True
    name = main["name"]
    want = expected_in_order(main["before"], name)
    got = [f["desired"]["alias"] for f in res.result["findings"]]
    assert got == want
    kinds = [(f["device"]["kind"], f["desired"]["basis"]) for f in res.result["findings"]]
    assert kinds == [("disk", "serial"), ("disk", "source"), ("interface", "mac"), ("interface", "mac"),
                     ("interface", "interfaceid"), ("channel", "target"), ("rng", "source")]
    for finding in res.result["findings"]:
        assert finding["rule"] == "alias-missing", finding
        assert finding["status"] == "drift", finding
        assert finding["current"] == {"alias": None}
        assert finding["pending_restart"] is False     # defined only, not running
        assert finding["domain"] == name
        assert finding["desired"]["alias"] in finding["message"]
    assert res.result["summary"]["by_status"]["drift"] == 7
    assert res.result["summary"]["domains_changed"] == 1
    # The same-MAC NICs: first keeps the alias, the second gets -2 (document order).
    nics = [f for f in res.result["findings"] if f["device"].get("mac") == SHARED_MAC]
    assert [f["device"]["path"] for f in nics] == ["/domain/devices/interface[1]", "/domain/devices/interface[2]"]
    # diff: before/after of the inactive XML; the after carries every alias.
    [diff] = res.result["diff"]
    assert all(a in diff["after"] for a in want) and not any(a in diff["before"] for a in want)
    # Nothing changed: byte-identical inactive XML, no backup directory.
    assert after == main["before"]
    assert not os.path.exists(work["backups"])
    # The per-domain report shows the definition as it is (unchanged).
    assert [a["alias"] for a in res.result["domains"][0]["aliases"]] == [None] * 7


def test_real_run_writes_exactly_the_reported_aliases(lab, main, work, checked, fixed):
    res, after = fixed
    assert not res.failed, res.stdout
    assert res.result["changed"] is True
    assert [f["status"] for f in res.result["findings"]] == ["fixed"] * 7
    assert [f["desired"]["alias"] for f in res.result["findings"]] == \
        [f["desired"]["alias"] for f in checked[0].result["findings"]]
    # libvirt's own inactive XML carries exactly those aliases, on the right devices.
    assert alias_map(after) == expected_in_order(main["before"], main["name"])
    assert [a["alias"] for a in res.result["domains"][0]["aliases"]] == alias_map(after)
    # Backup of the previous definition: 0600 in a 0700 directory, content = the old XML.
    entry = res.result["domains"][0]
    assert entry["changed"] is True and entry["error"] is None
    backup = entry["backup"]
    assert backup and os.path.dirname(backup) == work["backups"]
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(work["backups"]).st_mode) == 0o700
    with open(backup, encoding="utf-8") as handle:
        assert handle.read() == main["before"]


def test_fix_keeps_addresses_macs_order_and_machine(main, fixed):
    before, after = main["before"], fixed[1]
    assert addresses(after) == addresses(before)
    assert macs(after) == macs(before) == [SHARED_MAC, SHARED_MAC, OVS_MAC]
    assert device_order(after) == device_order(before)
    assert machine(after) == machine(before) and machine(after).startswith("pc-q35-")
    # The only difference is the <alias> elements.
    assert without_aliases(after) == without_aliases(before)


def test_second_run_changes_nothing(lab, main, work, fixed):
    backups = sorted(os.listdir(work["backups"]))
    res = run(lab, work, domains=[main["name"]])
    assert not res.failed, res.stdout
    assert res.result["changed"] is False
    assert res.result["findings"] == []
    assert res.result["summary"]["findings"] == 0
    assert res.result["domains"][0]["backup"] is None
    assert lab.inactive_xml(main["name"]) == fixed[1]
    assert sorted(os.listdir(work["backups"])) == backups, "an idempotent run wrote a backup"


def test_aliases_survive_a_daemon_restart(lab, main, work, fixed):
    lab.restart()   # scripts/lab.sh restart; the next lab.conn reconnects
    reread = lab.inactive_xml(main["name"])
    assert alias_map(reread) == alias_map(fixed[1])
    assert without_aliases(reread) == without_aliases(fixed[1])
    res = run(lab, work, check=True, domains=[main["name"]])
    assert not res.failed, res.stdout
    assert res.result["changed"] is False and res.result["findings"] == []


# --- explicit assignments ----------------------------------------------------------------------------

VOL_ID = str(uuid.uuid4())
VOL_MAC = "52:54:00:a1:00:03"


@pytest.fixture(scope="module")
def vol(lab, domains):
    return define_rich(lab, domains, "alias-vol", [RDisk("vda", "virtio", serial=VOL_ID), RDisk("sda", "scsi")],
                       [Nic(VOL_MAC)], rng=False, channel=False)


def _vda_alias(lab, name):
    return dict(((t, i), a) for t, i, a in device_aliases(lab.inactive_xml(name)))[("disk", "vda")]


def test_explicit_alias_then_replace_false_then_replace_true(lab, work, vol):
    first = "ua-vol-%s" % VOL_ID
    res = run(lab, work, domains=[vol], aliases=[{"domain": vol, "match": {"serial": VOL_ID}, "alias": first}])
    assert not res.failed, res.stdout
    assert res.result["changed"] is True
    [vda] = [f for f in res.result["findings"] if f["device"].get("target") == "vda"]
    assert (vda["rule"], vda["status"], vda["desired"]) == ("alias-missing", "fixed",
                                                            {"alias": first, "basis": "aliases"})
    # The other devices got their derived aliases in the same run.
    assert alias_map(lab.inactive_xml(vol)) == [first, file_alias(image_path(vol, "sda")), mac_alias(VOL_MAC)]
    settled = lab.inactive_xml(vol)

    # replace: false (default) with a different explicit alias: reported, skipped, nothing changes.
    other = "ua-vol-other-%s" % uuid.uuid4().hex[:8]
    ask = [{"domain": vol, "match": {"serial": VOL_ID}, "alias": other}]
    for check in (True, False):
        res = run(lab, work, check=check, domains=[vol], aliases=ask)
        assert not res.failed, res.stdout
        assert res.result["changed"] is False
        [finding] = res.result["findings"]
        assert finding["rule"] == "alias-mismatch" and finding["status"] == "skipped"
        assert finding["current"] == {"alias": first}
        assert finding["desired"] == {"alias": other, "basis": "aliases"}
        assert "replace: true" in finding["message"]
        assert res.result["domains"][0]["backup"] is None
        assert lab.inactive_xml(vol) == settled

    # replace: true: re-aliased; the other devices keep theirs.
    res = run(lab, work, domains=[vol], aliases=ask, replace=True)
    assert not res.failed, res.stdout
    assert res.result["changed"] is True
    [finding] = res.result["findings"]
    assert (finding["rule"], finding["status"], finding["current"], finding["desired"]["alias"]) == \
        ("alias-mismatch", "fixed", {"alias": first}, other)
    assert alias_map(lab.inactive_xml(vol)) == [other, file_alias(image_path(vol, "sda")), mac_alias(VOL_MAC)]
    assert without_aliases(lab.inactive_xml(vol)) == without_aliases(settled)

    # ...and the same request again is idempotent.
    res = run(lab, work, domains=[vol], aliases=ask, replace=True)
    assert not res.failed and res.result["changed"] is False and res.result["findings"] == [], res.stdout


def test_explicit_alias_by_domain_uuid(lab, work, vol):
    """aliases[].domain may be the UUID as libvirt prints it (lowercase, dashed)."""
    dom_uuid = lab.dom(vol).UUIDString()
    current = _vda_alias(lab, vol)
    res = run(lab, work, check=True, domains=[dom_uuid],
              aliases=[{"domain": dom_uuid, "match": {"target": "vda"}, "alias": current}])
    assert not res.failed, res.stdout
    assert res.result["changed"] is False and res.result["findings"] == []


@pytest.mark.parametrize("form", ["upper", "no-dashes"])
def test_explicit_alias_by_domain_uuid_other_spellings(lab, work, vol, form):
    dom_uuid = lab.dom(vol).UUIDString()
    key = dom_uuid.upper() if form == "upper" else dom_uuid.replace("-", "")
    current = _vda_alias(lab, vol)
    res = run(lab, work, check=True, domains=[key],
              aliases=[{"domain": key, "match": {"target": "vda"}, "alias": current}])
    assert not res.failed, res.msg
    assert res.result["changed"] is False and res.result["findings"] == []
