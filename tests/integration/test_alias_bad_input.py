"""virt_device_alias: bad input fails with a message naming the problem and the fix, and changes
NOTHING - every real run below would alias the alias-less domain if the module changed anything
before validating the whole request."""

from __future__ import annotations

import os
import uuid

import pytest

from _alias_lib import Nic, RDisk, alias_map, define_rich, mac_alias, run_named

SERIAL = "vf-ser-%s" % uuid.uuid4().hex[:12]
MAC = "52:54:00:a3:00:01"
KEPT = "ua-keep-vda"


@pytest.fixture(scope="module")
def victims(lab, domains):
    """bare: alias-less, two NICs sharing a MAC. aliased: a disk already carries ua-keep-vda."""
    bare = define_rich(lab, domains, "alias-bare", [RDisk("vda", "virtio", serial=SERIAL), RDisk("sda", "scsi")],
                       [Nic(MAC), Nic(MAC)])
    aliased = define_rich(lab, domains, "alias-kept",
                          [RDisk("vda", "virtio", serial="kept-1", alias=KEPT), RDisk("sda", "scsi")],
                          [Nic("52:54:00:a3:00:02")], rng=False, channel=False)
    assert alias_map(lab.inactive_xml(aliased))[0] == KEPT
    return {"bare": bare, "aliased": aliased}


@pytest.fixture
def work(tmp_path):
    return {"dir": str(tmp_path / "work"), "backups": str(tmp_path / "backups")}


@pytest.fixture
def unchanged(lab, victims, work):
    before = {name: lab.inactive_xml(name) for name in victims.values()}
    yield
    assert {name: lab.inactive_xml(name) for name in victims.values()} == before, \
        "a failing task changed a domain definition"
    assert not os.path.exists(work["backups"]) or os.listdir(work["backups"]) == [], "a failing task wrote a backup"


def run(lab, work, uri=None, **args):
    args["uri"] = uri or lab.uri
    args.setdefault("backup_dir", work["backups"])
    return run_named("virt_device_alias", args, work["dir"])


def assert_clean_failure(res, *needles):
    assert res.failed and res.rc == 1, res.stdout
    assert res.result.get("changed") is not True
    for needle in needles:
        assert needle in res.msg, "%r not in %r" % (needle, res.msg)
    assert "Traceback" not in res.stdout + res.stderr


def both(victims):
    return [victims["bare"], victims["aliased"]]


def test_unknown_domain(lab, work, victims, unchanged):
    missing = "vf-it-missing-%s" % uuid.uuid4().hex[:8]
    res = run(lab, work, domains=[victims["bare"], missing])
    assert_clean_failure(res, "Domain(s) not found", missing, "Fix the 'domains' option")


def test_assignment_for_unselected_domain(lab, work, victims, unchanged):
    res = run(lab, work, domains=[victims["bare"]],
              aliases=[{"domain": victims["aliased"], "match": {"target": "sda"}, "alias": "ua-x"}])
    assert_clean_failure(res, "aliases[0]", victims["aliased"], "is not among the selected domains",
                         "Add it to 'domains'")


@pytest.mark.parametrize("bad", ["ua-bad.alias", "UA-x", "foo", "ua-has space", "ua-a:b", ""])
def test_invalid_alias(lab, work, victims, unchanged, bad):
    res = run(lab, work, domains=both(victims),
              aliases=[{"domain": victims["bare"], "match": {"serial": SERIAL}, "alias": bad}])
    assert_clean_failure(res, "aliases[0]", "is not a valid libvirt user alias", "must start with 'ua-'",
                         "letters, digits, '_' and '-'")
    assert repr(bad) in res.msg


@pytest.mark.parametrize("selector", [{}, {"serial": SERIAL, "target": "vda"}, {"name": "vda"}],
                         ids=["empty", "two-keys", "unknown-key"])
def test_malformed_match(lab, work, victims, unchanged, selector):
    res = run(lab, work, domains=both(victims),
              aliases=[{"domain": victims["bare"], "match": selector, "alias": "ua-x"}])
    assert_clean_failure(res, "exactly one of alias, serial, mac, target, source", "{alias: ua-disk-1}")


def test_match_selects_no_device(lab, work, victims, unchanged):
    # The bad assignment is on the second domain: the first (alias-less) one must not be fixed first.
    res = run(lab, work, domains=both(victims),
              aliases=[{"domain": victims["aliased"], "match": {"serial": "no-such-serial"}, "alias": "ua-x"}])
    assert_clean_failure(res, "aliases[0]", "serial=no-such-serial", "selects no device",
                         "virt_domain_info", "fix the match")


def test_match_selects_several_devices(lab, work, victims, unchanged):
    res = run(lab, work, domains=both(victims),
              aliases=[{"domain": victims["bare"], "match": {"mac": MAC}, "alias": "ua-port-1"}])
    assert_clean_failure(res, "aliases[0]", "mac=%s" % MAC, "selects 2 devices", "/domain/devices/interface[1]",
                         "/domain/devices/interface[2]", "matches exactly one")


def test_alias_requested_twice(lab, work, victims, unchanged):
    bare = victims["bare"]
    res = run(lab, work, domains=both(victims),
              aliases=[{"domain": bare, "match": {"target": "vda"}, "alias": "ua-dup"},
                       {"domain": bare, "match": {"target": "sda"}, "alias": "ua-dup"}])
    assert_clean_failure(res, "ua-dup", "requested twice", "aliases[0] and aliases[1]", "unique within a domain")


def test_alias_requested_for_two_devices_via_name_and_uuid(lab, work, victims, unchanged):
    bare = victims["bare"]
    res = run(lab, work, domains=both(victims),
              aliases=[{"domain": bare, "match": {"target": "vda"}, "alias": "ua-dup"},
                       {"domain": lab.dom(bare).UUIDString(), "match": {"target": "sda"}, "alias": "ua-dup"}])
    assert_clean_failure(res, "ua-dup", "requested for two devices", "unique within a domain")


def test_two_aliases_for_one_device(lab, work, victims, unchanged):
    bare = victims["bare"]
    res = run(lab, work, domains=both(victims),
              aliases=[{"domain": bare, "match": {"target": "vda"}, "alias": "ua-one"},
                       {"domain": bare, "match": {"serial": SERIAL}, "alias": "ua-two"}])
    assert_clean_failure(res, "aliases[1]", "ua-two", "already assigned ua-one")


def test_alias_carried_by_another_device(lab, work, victims, unchanged):
    res = run(lab, work, domains=both(victims),
              aliases=[{"domain": victims["aliased"], "match": {"target": "sda"}, "alias": KEPT}])
    assert_clean_failure(res, KEPT, "already carries it", "pick another alias")


def test_derived_alias_of_another_device_is_not_a_conflict(lab, work, victims):
    """Control (check mode): asking for the alias the 2nd same-MAC NIC would derive, for a disk, is fine:
    the NIC then derives the next free one. Keeps the bad-input tests honest about what is 'bad'."""
    res = run_named("virt_device_alias", {"uri": lab.uri, "domains": [victims["bare"]], "backup_dir": work["backups"],
                                          "aliases": [{"domain": victims["bare"], "match": {"target": "sda"},
                                                       "alias": mac_alias(MAC, 2)}]},
                    work["dir"], check=True)
    assert not res.failed, res.stdout
    desired = {f["device"]["path"]: f["desired"]["alias"] for f in res.result["findings"]}
    assert desired["/domain/devices/disk[2]"] == mac_alias(MAC, 2)
    assert desired["/domain/devices/interface[2]"] == mac_alias(MAC, 3)
    assert len(set(desired.values())) == len(desired)


def test_daemon_down(lab, work, victims, unchanged):
    uri = "qemu:///system?socket=/run/nonexistent/sock"
    res = run(lab, work, uri=uri, domains=both(victims))
    assert_clean_failure(res, "Cannot connect to libvirt at %r" % uri, "/run/nonexistent/sock",
                         "daemon is running")


def test_unwritable_backup_dir(lab, work, victims, unchanged, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = run(lab, work, domains=both(victims), backup_dir=str(blocker / "backups"))
    assert_clean_failure(res, "Cannot use backup_dir", "Nothing was changed")
