"""virt_detach on domains with no guest OS (SeaBIOS halts): every path that needs no guest.

- SCSI (virtio-scsi) and USB unplugs are completed by QEMU itself: DEVICE_REMOVED arrives at once.
- A virtio-blk PCI disk on a q35 (pc-q35-7.2, ACPI hotplug) domain is NEVER released without a
  guest OS: that is the real timeout fixture.
- Stopped domains, live-only devices, check mode, idempotent reruns and bad input.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import libvirt
import pytest

from _detach_lib import (
    attach,
    detach_domain_xml,
    disk_aliases,
    disk_xml,
    has_alias,
    inactive_xml,
    live_xml,
    make_image,
    new_name,
    reconnecting,
    run_detach_module,
)
from _itlib import image_dir, macs

SHARED_MAC = "52:54:00:7f:0d:01"


@dataclass
class Doms:
    plain: str     # running, NO alias anywhere, SCSI disks with serials
    stuck: str     # running, virtio-blk disk that no guest will ever release
    stopped: str   # defined, not running; aliased disks, a shared source, two NICs with one MAC
    running: str   # running, aliased SCSI disks
    transient: str  # running, no persistent definition


def _define(lab, domains, suffix, disks, start, transient=False, **xml_options):
    """Define (and start) a domain, or start a transient one; ``disks`` is [(target, bus, alias,
    serial, image basename)]."""
    name = new_name(suffix)
    domains.names.append(name)  # the ``domains`` fixture destroys/undefines it and deletes its images
    xmls = [disk_xml(make_image(name, image), target, bus, alias, serial, shareable=image == "shared.img")
            for target, bus, alias, serial, image in disks]
    xml = detach_domain_xml(name, lab.domain_type, xmls, root_ports=8, **xml_options)

    def define(conn):
        if transient:
            conn.createXML(xml, 0)
            return
        dom = conn.defineXML(xml)
        if start:
            dom.create()
    reconnecting(lab, define)
    lab.owned.add(name)
    return name


@pytest.fixture(scope="module")
def doms(lab, domains):
    plain = _define(lab, domains, "plain", [("sda", "scsi", None, "SER-PLAIN-A", "sda.img"),
                                            ("sdb", "scsi", None, "SER-PLAIN-B", "sdb.img"),
                                            ("sdc", "scsi", None, "SER-PLAIN-C", "sdc.img"),
                                            ("sdd", "scsi", None, "SER-PLAIN-D", "sdd.img")], start=True)
    stuck = _define(lab, domains, "stuck", [("vdb", "virtio", "ua-stuck-vdb", None, "vdb.img"),
                                            ("vdc", "virtio", "ua-stuck-vdc", None, "vdc.img")], start=True)
    stopped = _define(lab, domains, "stopped", [("sda", "scsi", "ua-stop-a", None, "sda.img"),
                                                ("sdb", "scsi", "ua-stop-b", None, "shared.img"),
                                                ("sdc", "scsi", "ua-stop-c", None, "shared.img"),
                                                ("sdd", "scsi", "ua-stop-d", None, "sdd.img")],
                      start=False, macs=(SHARED_MAC, SHARED_MAC))
    running = _define(lab, domains, "running", [("sda", "scsi", "ua-run-a", None, "sda.img"),
                                                ("sdb", "scsi", "ua-run-b", None, "sdb.img"),
                                                ("sdc", "scsi", "ua-run-c", None, "sdc.img"),
                                                ("sdd", "scsi", "ua-run-d", None, "sdd.img"),
                                                ("sde", "scsi", "ua-run-e", None, "sde.img")], start=True)
    transient = _define(lab, domains, "transient", [("sda", "scsi", "ua-tr-a", None, "sda.img"),
                                                    ("sdb", "scsi", None, "SER-TR-B", "sdb.img")],
                        start=True, transient=True)
    assert all(a is None for a in disk_aliases(inactive_xml(lab, plain)).values())
    assert macs(inactive_xml(lab, stopped)) == [SHARED_MAC, SHARED_MAC]
    return Doms(plain, stuck, stopped, running, transient)


@pytest.fixture
def detach(lab, tmp_path, backup_dir):
    def _run(check=False, **args):
        args.setdefault("uri", lab.uri)
        args.setdefault("backup_dir", backup_dir)
        return run_detach_module(args, str(tmp_path / "work"), check=check)
    return _run


def both_xml(lab, name):
    live = live_xml(lab, name) if reconnecting(lab, lambda c: c.lookupByName(name).isActive()) else None
    return live, inactive_xml(lab, name)


def assert_ok(res, changed):
    assert not res.failed, res.describe()
    assert res.result["changed"] is changed, res.describe()
    assert "Traceback" not in res.stdout + res.stderr


# --- success paths ------------------------------------------------------------------------------

@pytest.mark.parametrize("selector, target", [({"serial": "SER-PLAIN-B"}, "sdb"),
                                              ({"alias": "ua-disk-SER-PLAIN-C"}, "sdc")],
                         ids=["serial", "alias-falls-back-to-serial"])
def test_scsi_disk_by_serial_on_domain_without_aliases(lab, doms, detach, selector, target):
    res = detach(domain=doms.plain, devices=[selector])

    assert_ok(res, True)
    (dev,) = res.devices
    assert dev["matched_by"] == "serial"
    assert (dev["persistent"], dev["live"], dev["attempts"]) == ("removed", "removed", 1)
    assert dev["event"] == "DEVICE_REMOVED event"
    assert dev["alias"] == dev["live_alias"] and not dev["live_alias"].startswith("ua-")  # libvirt's own alias
    live, inactive = both_xml(lab, doms.plain)
    assert target not in disk_aliases(live) and target not in disk_aliases(inactive)
    assert "sda" in disk_aliases(live) and "sda" in disk_aliases(inactive)  # only the selected disk went


def test_live_automatic_alias_pairs_back_to_the_persistent_device(lab, doms, detach):
    """libvirt's automatic alias (scsi0-0-0-3) exists only in the live XML; the device it names is
    also in the persistent definition (same target), and leaves both."""
    live_alias = disk_aliases(live_xml(lab, doms.plain))["sdd"]
    assert live_alias and not live_alias.startswith("ua-")

    res = detach(domain=doms.plain, devices=[{"alias": live_alias}])

    assert_ok(res, True)
    (dev,) = res.devices
    assert (dev["persistent"], dev["live"], dev["attempts"]) == ("removed", "removed", 1), res.describe()
    assert dev["matched_by"] == "alias" and dev["live_alias"] == live_alias
    assert dev["event"] == "DEVICE_REMOVED event"
    live, inactive = both_xml(lab, doms.plain)
    assert "sdd" not in disk_aliases(live) and "sdd" not in disk_aliases(inactive)


def test_timeout_virtio_disk_never_released_without_guest(lab, doms, detach):
    """pc-q35-7.2 without a guest OS: the unplug request is accepted and never completed."""
    res = detach(domain=doms.stuck, devices=[{"alias": "ua-stuck-vdb"}], timeout=1, attempts=2)

    assert res.failed and res.rc == 1, res.describe()
    assert res.result["changed"] is True  # the persistent definition did change
    (dev,) = res.devices
    assert (dev["persistent"], dev["live"], dev["attempts"]) == ("removed", "failed", 2), res.describe()
    assert dev["event"] is None and dev["method"] == "alias"
    msg = res.msg
    for needle in ("ua-stuck-vdb", "removed from the persistent definition but still attached to the running "
                   "domain after 2 attempt(s) over", "gone at the next cold boot of %s" % doms.stuck,
                   "What to do", "timeout/attempts", res.result["backup"]):
        assert needle in msg, "%r not in %r" % (needle, msg)
    seconds = float(msg.split("attempt(s) over ")[1].split(" s")[0])
    assert seconds >= 2.0 and seconds == pytest.approx(dev["seconds"], abs=0.2), msg  # 2 attempts x 1 s
    live, inactive = both_xml(lab, doms.stuck)
    assert disk_aliases(live).get("vdb") == "ua-stuck-vdb", "the device should still be attached live"
    assert "vdb" not in disk_aliases(inactive)
    assert "vdc" in disk_aliases(live) and "vdc" in disk_aliases(inactive)
    assert "Traceback" not in res.stdout + res.stderr

    # Rerun: gone from the persistent definition, still live -> the live detach happens (and fails) again.
    again = detach(domain=doms.stuck, devices=[{"alias": "ua-stuck-vdb"}], timeout=1, attempts=1)
    assert again.failed, again.describe()
    (dev,) = again.devices
    assert (dev["persistent"], dev["live"], dev["attempts"]) == ("absent", "failed", 1), again.describe()
    assert "not in the persistent definition and still attached" in again.msg, again.msg
    assert again.result["changed"] is False
    assert again.result["backup"] is None


def test_stopped_domain_persistent_only_then_idempotent(lab, doms, detach, backup_dir):
    res = detach(domain=doms.stopped, devices=[{"alias": "ua-stop-a"}])

    assert_ok(res, True)
    assert res.result["active"] is False
    (dev,) = res.devices
    assert (dev["persistent"], dev["live"], dev["attempts"]) == ("removed", "skipped", 0)
    assert dev["event"] is None
    assert "sda" not in disk_aliases(inactive_xml(lab, doms.stopped))
    assert os.path.dirname(res.result["backup"]) == backup_dir and os.path.isfile(res.result["backup"])

    again = detach(domain=doms.stopped, devices=[{"alias": "ua-stop-a"}])
    assert_ok(again, False)
    assert (again.devices[0]["persistent"], again.devices[0]["live"]) == ("absent", "skipped")
    assert again.result["backup"] is None


def test_live_only_device_then_idempotent(lab, doms, detach):
    """Hot-plugged with AFFECT_LIVE only: not in the persistent definition, detached live."""
    source = make_image(doms.running, "liveonly.img")
    attach(lab, doms.running, disk_xml(source, "sdx", "scsi", "ua-live-only"), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    live, inactive = both_xml(lab, doms.running)
    assert has_alias(live, "ua-live-only") and not has_alias(inactive, "ua-live-only")

    res = detach(domain=doms.running, devices=[{"alias": "ua-live-only"}])

    assert_ok(res, True)
    (dev,) = res.devices
    assert (dev["persistent"], dev["live"], dev["attempts"]) == ("absent", "removed", 1), res.describe()
    assert dev["event"] == "DEVICE_REMOVED event"
    assert res.result["backup"] is None  # the persistent definition was not touched
    live_after, inactive_after = both_xml(lab, doms.running)
    assert not has_alias(live_after, "ua-live-only")
    assert inactive_after == inactive

    again = detach(domain=doms.running, devices=[{"alias": "ua-live-only"}])
    assert_ok(again, False)
    assert (again.devices[0]["persistent"], again.devices[0]["live"]) == ("absent", "absent")


def test_live_false_on_running_domain_touches_only_the_definition(lab, doms, detach):
    res = detach(domain=doms.running, devices=[{"target": "sdc"}], live=False)

    assert_ok(res, True)
    (dev,) = res.devices
    assert (dev["persistent"], dev["live"], dev["attempts"]) == ("removed", "skipped", 0)
    live, inactive = both_xml(lab, doms.running)
    assert disk_aliases(live).get("sdc") == "ua-run-c"
    assert "sdc" not in disk_aliases(inactive)


def test_persistent_false_on_running_domain_touches_only_the_running_domain(lab, doms, detach):
    res = detach(domain=doms.running, devices=[{"alias": "ua-run-d"}], persistent=False)

    assert_ok(res, True)
    (dev,) = res.devices
    assert (dev["persistent"], dev["live"], dev["attempts"]) == ("skipped", "removed", 1), res.describe()
    assert dev["event"] == "DEVICE_REMOVED event"
    assert res.result["backup"] is None
    live, inactive = both_xml(lab, doms.running)
    assert "sdd" not in disk_aliases(live)
    assert disk_aliases(inactive).get("sdd") == "ua-run-d"

    again = detach(domain=doms.running, devices=[{"alias": "ua-run-d"}], persistent=False)
    assert_ok(again, False)
    assert (again.devices[0]["persistent"], again.devices[0]["live"]) == ("skipped", "absent")


@pytest.mark.parametrize("selector", [{"alias": "ua-tr-a"}, {"serial": "SER-TR-B"}], ids=["alias", "serial"])
def test_transient_domain_live_only(lab, doms, detach, selector):
    """A transient domain has no persistent definition: 'skipped' there, removed live, no backup."""
    res = detach(domain=doms.transient, devices=[selector])

    assert_ok(res, True)
    (dev,) = res.devices
    assert (dev["persistent"], dev["live"], dev["attempts"]) == ("skipped", "removed", 1), res.describe()
    assert dev["event"] == "DEVICE_REMOVED event"
    assert res.result["backup"] is None
    target = "sda" if "alias" in selector else "sdb"
    assert target not in disk_aliases(live_xml(lab, doms.transient))

    again = detach(domain=doms.transient, devices=[selector])
    assert_ok(again, False)
    assert (again.devices[0]["persistent"], again.devices[0]["live"]) == ("skipped", "absent")


@pytest.mark.parametrize("which", ["running", "stopped"])
def test_check_mode_reports_and_changes_nothing(lab, doms, detach, backup_dir, which):
    name = getattr(doms, which)
    selector = {"alias": "ua-run-b"} if which == "running" else {"alias": "ua-stop-d"}
    before = both_xml(lab, name)

    res = detach(check=True, domain=name, devices=[selector, {"alias": "ua-not-there"}])

    assert_ok(res, True)
    first, second = res.devices
    assert first["persistent"] == "removed"
    assert first["live"] == ("removed" if which == "running" else "skipped")
    assert first["attempts"] == 0 and first["event"] is None
    assert (second["persistent"], second["live"], second["matched_by"]) == (
        "absent", "absent" if which == "running" else "skipped", None)
    assert res.result["backup"] is None and not os.path.exists(backup_dir)
    assert both_xml(lab, name) == before


# --- bad input: a clear failure and nothing changed ----------------------------------------------

@pytest.fixture
def unchanged(lab, doms, backup_dir):
    names = [doms.plain, doms.stuck, doms.stopped, doms.running, doms.transient]
    before = {n: both_xml(lab, n) for n in names}
    yield
    assert {n: both_xml(lab, n) for n in names} == before, "a failing call changed a domain"
    assert not os.path.exists(backup_dir), "a failing call wrote a backup"


def assert_clean_failure(res, *needles):
    assert res.failed and res.rc == 1, res.describe()
    assert res.result.get("changed") is False, res.describe()
    for needle in needles:
        assert needle in res.msg, "%r not in %r" % (needle, res.msg)
    assert "Traceback" not in res.stdout + res.stderr


def test_unknown_domain(detach, unchanged):
    missing = "vf-it-missing-%s" % uuid.uuid4().hex[:8]
    res = detach(domain=missing, devices=[{"alias": "ua-x"}])
    assert_clean_failure(res, "not found", missing)


def test_unknown_domain_message_names_the_domain_option(detach, unchanged):
    missing = "vf-it-missing-%s" % uuid.uuid4().hex[:8]
    res = detach(domain=missing, devices=[{"alias": "ua-x"}])
    assert_clean_failure(res, missing)
    assert "'domains'" not in res.msg and "leave it empty" not in res.msg, res.msg


@pytest.mark.parametrize("which", ["running", "stopped", "plain"])
def test_selector_matching_nothing_is_absent_not_an_error(lab, doms, detach, backup_dir, unchanged, which):
    name = getattr(doms, which)
    res = detach(domain=name, devices=[{"alias": "ua-never-there"}, {"serial": "NO-SUCH-SERIAL"},
                                       {"mac": "52:54:00:00:00:99"}])
    assert_ok(res, False)
    live = "skipped" if which == "stopped" else "absent"
    assert [(d["persistent"], d["live"], d["matched_by"], d["attempts"]) for d in res.devices] == \
        [("absent", live, None, 0)] * 3


@pytest.mark.parametrize("key", ["source", "mac"])
def test_selector_matching_several_devices(doms, detach, unchanged, key):
    """Two disks share one image (sdb, sdc); two NICs share one MAC. The valid first selector
    must not be detached either: the whole call fails before anything changes."""
    value = os.path.join(image_dir(doms.stopped), "shared.img") if key == "source" else SHARED_MAC
    res = detach(domain=doms.stopped, devices=[{"alias": "ua-stop-d"}, {key: value}])
    assert_clean_failure(res, "devices[1] (%s=%s) matches 2 devices" % (key, value), "exactly one")


@pytest.mark.parametrize("second", ["target", "live-alias"])
def test_two_selectors_for_one_device(lab, doms, detach, unchanged, second):
    """Also when one selector names the device by libvirt's automatic alias of the running domain."""
    name = doms.plain
    other = {"target": "sda"} if second == "target" else {"alias": disk_aliases(live_xml(lab, name))["sda"]}
    res = detach(domain=name, devices=[{"serial": "SER-PLAIN-A"}, other])
    assert_clean_failure(res, "select the same device", "list it once")


@pytest.mark.parametrize("args, needle", [
    ({"timeout": 0}, "timeout=0 is out of range: use 1 to 600"),
    ({"timeout": 601}, "timeout=601 is out of range: use 1 to 600"),
    ({"attempts": 0}, "attempts=0 is out of range: use 1 to 50"),
    ({"attempts": 51}, "attempts=51 is out of range: use 1 to 50"),
], ids=["timeout-0", "timeout-601", "attempts-0", "attempts-51"])
def test_numbers_out_of_range(doms, detach, unchanged, args, needle):
    res = detach(domain=doms.running, devices=[{"alias": "ua-run-a"}], **args)
    assert_clean_failure(res, needle)


@pytest.mark.parametrize("selector", [{}, {"alias": "ua-run-a", "target": "sda"}, {"wwn": "x"}],
                         ids=["empty", "two-keys", "unknown-key"])
def test_malformed_selector(doms, detach, unchanged, selector):
    res = detach(domain=doms.running, devices=[selector])
    assert_clean_failure(res, "needs exactly one of alias, serial, mac, target, source")


def test_daemon_down(doms, detach, unchanged):
    uri = "qemu:///system?socket=/run/nonexistent/sock"
    res = detach(uri=uri, domain=doms.running, devices=[{"alias": "ua-run-a"}])
    assert_clean_failure(res, "Cannot connect to libvirt at %r" % uri, "/run/nonexistent/sock")


# --- the event loop inside one process -------------------------------------------------------------
def test_closing_one_adapter_keeps_events_for_another(lab, doms, backup_dir):
    from ansible_collections.virtfleet.libvirt.plugins.module_utils._adapter import DetachAdapter
    from ansible_collections.virtfleet.libvirt.plugins.module_utils._detach import run_detach

    in_use = DetachAdapter(lab.conn_uri)
    try:
        DetachAdapter(lab.conn_uri).close()  # someone else in the process is done with theirs
        result = run_detach(in_use, doms.running, [{"alias": "ua-run-e"}], timeout=2, attempts=1,
                            backup_dir=backup_dir)
    finally:
        in_use.close()
    (dev,) = result["devices"]
    assert dev["live"] == "removed", dev
    # actual: "gone from the live XML (no event seen)" after the whole 2 s timeout
    assert dev["event"] == "DEVICE_REMOVED event", dev
