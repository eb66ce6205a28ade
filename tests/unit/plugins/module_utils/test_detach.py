"""_detach (resolve, detach_live, run_detach) with a scriptable fake adapter, plus the detach part of
_adapter (DetachAdapter.detach/live_xml, Waiter, DeviceEvents) with fake libvirt objects.

Facts these tests encode (docs/detach.md, lab notes "attach and detach" / "Time until DEVICE_REMOVED"):
- the waiter is registered before the request: a SCSI unplug's DEVICE_REMOVED can arrive before the
  detach call returns;
- DEVICE_REMOVAL_FAILED is final, never retried;
- "already in the process of unplug" (code 1) means the earlier request is still pending;
- detachDeviceAlias misses give code 1 "no device found with alias", detachDeviceFlags misses code 99;
- the persistent definition goes first, synchronously, once; only ua- aliases exist there.

No test sleeps for real unless a waiter is deliberately blocked on a (short) real event; timeouts
advance a fake clock instead.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import pytest
from lxml import etree

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _detach
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import (
    ConnectionLost,
    DetachFailed,
    DeviceMissing,
    DomainNotFound,
    InvalidRequest,
    LibvirtCallFailed,
    UnplugPending,
)
from ansible_collections.virtfleet.libvirt.plugins.module_utils._plan import DomainState

libvirt = pytest.importorskip("libvirt")

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _adapter  # noqa: E402  (needs libvirt)

UUID = "0b6f1c2e-3a4d-4e5f-8a9b-1c2d3e4f5a6b"
PENDING_MSG = ("internal error: unable to execute QEMU command 'device_del': Device %s is already in the "
               "process of unplug")


# --- domain XML ----------------------------------------------------------------------------------

def disk(target, serial=None, alias=None, live_alias=None, bus="virtio", source=None, in_pers=True, in_live=True):
    return dict(id=target, kind="disk", target=target, serial=serial, alias=alias, live_alias=live_alias, bus=bus,
                source=source or "/var/lib/libvirt/images/db01-%s.raw" % target, in_pers=in_pers, in_live=in_live)


def nic(mac, alias=None, live_alias=None, network="default", in_pers=True, in_live=True, ident=None):
    return dict(id=ident or mac, kind="interface", mac=mac, alias=alias, live_alias=live_alias, network=network,
                in_pers=in_pers, in_live=in_live)


def _auto_aliases(devices):
    """libvirt's automatic aliases for the running domain (kept for ua- aliases, as libvirt does)."""
    n_net = 0
    for dev in devices:
        if dev["live_alias"] is None:
            if dev.get("alias"):
                dev["live_alias"] = dev["alias"]
            elif dev["kind"] == "disk" and dev["bus"] == "virtio":
                dev["live_alias"] = "virtio-disk%d" % (ord(dev["target"][-1]) - ord("a"))
            elif dev["kind"] == "disk":
                dev["live_alias"] = "scsi0-0-0-%d" % (ord(dev["target"][-1]) - ord("a"))
            else:
                dev["live_alias"] = "net%d" % n_net
        if dev["kind"] == "interface":
            n_net += 1


def device_xml(dev, slot, live):
    alias = dev["live_alias"] if live else dev["alias"]
    alias_line = ["      <alias name='%s'/>" % alias] if alias else []
    if dev["kind"] == "disk":
        address = ("      <address type='pci' domain='0x0000' bus='0x%02x' slot='0x00' function='0x0'/>" % slot
                   if dev["bus"] == "virtio" else
                   "      <address type='drive' controller='0' bus='0' target='0' unit='%d'/>" % slot)
        return (["    <disk type='file' device='disk'>",
                 "      <driver name='qemu' type='raw'/>",
                 "      <source file='%s'/>" % dev["source"],
                 "      <target dev='%s' bus='%s'/>" % (dev["target"], dev["bus"])]
                + (["      <serial>%s</serial>" % dev["serial"]] if dev["serial"] else [])
                + alias_line + [address, "    </disk>"])
    return (["    <interface type='network'>",
             "      <mac address='%s'/>" % dev["mac"],
             "      <source network='%s'/>" % dev["network"],
             "      <model type='virtio'/>"]
            + alias_line
            + ["      <address type='pci' domain='0x0000' bus='0x%02x' slot='0x00' function='0x0'/>" % slot,
               "    </interface>"])


def domain_xml(name, devices, live):
    out = ["<domain type='kvm'%s>" % (" id='7'" if live else ""), "  <name>%s</name>" % name,
           "  <uuid>%s</uuid>" % UUID, "  <memory unit='KiB'>131072</memory>",
           "  <os>", "    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>", "  </os>",
           "  <features><acpi/></features>", "  <devices>",
           "    <controller type='pci' index='0' model='pcie-root'>%s</controller>"
           % ("<alias name='pcie.0'/>" if live else "")]
    for slot, dev in enumerate(devices, start=2):
        out += device_xml(dev, slot, live)
    out += ["  </devices>", "</domain>", ""]
    return "\n".join(out)


def standard_devices():
    return [
        disk("vda", serial="root01", alias="ua-disk-root01"),
        disk("vdb", serial="data01", alias="ua-disk-data01"),
        disk("vdc", serial="data02"),                           # no user alias: live virtio-disk2
        disk("sda", bus="scsi", alias="ua-disk-scsi01"),
        nic("52:54:00:6b:3c:58", alias="ua-net-5254006b3c58"),
        nic("52:54:00:6b:3c:59"),                               # no user alias: live net1
    ]


# --- fakes ---------------------------------------------------------------------------------------

class Clock:
    """Monotonic clock; ``advance`` moves it (the fake waiters' timeouts). ``real`` follows time.monotonic."""

    def __init__(self, real=False):
        self.real = real
        self.offset = 0.0 if real else 1000.0
        self.lock = threading.Lock()

    def __call__(self):
        with self.lock:
            return (time.monotonic() if self.real else 0.0) + self.offset

    def advance(self, seconds):
        with self.lock:
            self.offset += seconds


class FakeDom:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "FakeDom(%s)" % self.name


class FakeWaiter:
    def __init__(self, fake, alias):
        self.fake, self.alias = fake, alias
        self.outcome = None
        self.event = threading.Event()
        self.waits = 0

    def set(self, outcome):
        if self.outcome is None:
            self.outcome = outcome
        self.event.set()

    def wait(self, timeout):
        self.waits += 1
        self.fake.log("wait", self.alias, timeout)
        if self.fake.on_wait is not None:
            self.fake.on_wait(self, self.waits)
        if self.outcome is None and self.fake.wait_cap:
            self.event.wait(self.fake.wait_cap)   # real wait only where a test delivers events from threads
        if self.outcome is None:
            self.fake.clock.advance(timeout)     # the timeout elapsed (on the fake clock)
        self.fake.log("wait-return", self.alias, self.outcome)
        return self.outcome


class FakeEvents:
    """Like DeviceEvents: an event for an alias without a registered waiter is lost."""

    def __init__(self, fake):
        self.fake = fake
        self.waiters = {}
        self.lock = threading.Lock()
        self.closed = False

    def expect(self, alias):
        self.fake.log("expect", alias)
        with self.lock:
            return self.waiters.setdefault(alias, FakeWaiter(self.fake, alias))

    def dispatch(self, alias, outcome):
        with self.lock:
            waiter = None if self.closed else self.waiters.get(alias)
        self.fake.log("event" if waiter else "event-lost", alias, outcome)
        if waiter is not None:
            waiter.set(outcome)

    def close(self):
        self.fake.log("close")
        with self.lock:
            self.closed = True

    def connection_closed(self):
        """Like DeviceEvents.connection_closed (the adapter's close callback): every waiter wakes, "lost"."""
        self.fake.log("connection-closed")
        with self.lock:
            waiters = list(self.waiters.values())
        for waiter in waiters:
            waiter.set("lost")


class FakeAdapter:
    """The adapter seam of run_detach, scriptable per device.

    ``script[id]`` lists what the live detach request number k does (the last entry repeats):
      event   - accepted; the device leaves the live XML and DEVICE_REMOVED fires *inside* detach()
      gone    - accepted; the device leaves the live XML, no event
      ok      - accepted; nothing happens (guest never releases it)
      failed  - accepted; DEVICE_REMOVAL_FAILED fires inside detach()
      pending - UnplugPending ("already in the process of unplug")
      missing - DeviceMissing
      error   - LibvirtCallFailed
      hold    - accepted; ``on_live_detach`` decides
      lost    - ConnectionLost from the request itself (the daemon died while it was sent)
      close   - accepted; then the connection closes (the close callback wakes the waiters with "lost")
    Default: ["event"]. ``pscript[id]`` is the persistent detach: ok (default), missing, error, lost, stays
    (libvirt says ok but the device stays in the definition).
    ``lost_on`` names seam calls ("read", "events", "live_xml", "persistent_xml") that raise ConnectionLost.
    """

    def __init__(self, devices, name="db01", active=True, persistent=True, clock=None):
        devices = [dict(d) for d in devices]
        _auto_aliases(devices)
        self.name, self.active, self.persistent = name, active, persistent
        self.pers = [d for d in devices if d["in_pers"]] if persistent else []
        self.live = [dict(d) for d in devices if d["in_live"]] if active else []
        self.clock = clock or Clock()
        self.script, self.pscript = {}, {}
        self.calls = []
        self.lock = threading.RLock()
        self.attempts = Counter()
        self.events_obj = None
        self.wait_cap = 0.0
        self.on_wait = None
        self.on_live_detach = None
        self.persistent_seconds = 0.0
        self.uri = "qemu+unix:///session?socket=/fake/libvirt-sock"
        self.lost_on = set()

    def _maybe_lost(self, call):
        if call in self.lost_on:
            self.log("lost", call)
            raise ConnectionLost("internal error: client socket is closed", libvirt_code=1, uri=self.uri)

    # recording
    def log(self, *entry):
        with self.lock:
            self.calls.append(entry + (threading.get_ident(),))

    def ops(self):
        return [c[:-1] for c in self.calls]

    def detach_calls(self, live=None):
        return [(c[1], c[3]) for c in self.calls if c[0] == "detach" and (live is None or c[3] == live)]

    def index(self, *prefix):
        for i, c in enumerate(self.calls):
            if c[:len(prefix)] == prefix:
                return i
        raise AssertionError("no call %r in %r" % (prefix, self.ops()))

    # XML
    def inactive_xml(self):
        return domain_xml(self.name, self.pers, live=False)

    def live_xml_text(self):
        return domain_xml(self.name, self.live, live=True) if self.active else None

    # the seam
    def select(self, names, exclude, option="domains"):
        self.log("select", tuple(names), exclude)
        if list(names) != [self.name]:
            raise DomainNotFound("Domain(s) not found: %s" % ", ".join(names))
        return [FakeDom(self.name)]

    def read(self, dom):
        self.log("read", dom.name)
        return DomainState(name=self.name, uuid=UUID, active=self.active, persistent=self.persistent,
                           inactive_xml=self.inactive_xml() if self.persistent else self.live_xml_text(),
                           live_xml=self.live_xml_text(), state="running" if self.active else "shut off")

    def events(self, dom):
        self.log("events", dom.name)
        self._maybe_lost("events")
        self.events_obj = FakeEvents(self)
        return self.events_obj

    def live_xml(self, dom):
        self.log("live_xml")
        self._maybe_lost("live_xml")
        return self.live_xml_text()

    def persistent_xml(self, dom):
        self.log("persistent_xml")
        self._maybe_lost("persistent_xml")
        return self.inactive_xml()

    def fire(self, alias, outcome):
        if self.events_obj is None:
            self.log("event-lost", alias, outcome)
        else:
            self.events_obj.dispatch(alias, outcome)

    def _find(self, devs, alias, xml, live):
        if alias and (live or alias.startswith("ua-")):
            key = "live_alias" if live else "alias"
            return next((d for d in devs if d[key] == alias), None)
        el = etree.fromstring(xml)
        target = el.find("target").get("dev") if el.find("target") is not None else None
        mac = el.find("mac").get("address") if el.find("mac") is not None else None
        return next((d for d in devs if (target and d.get("target") == target) or (mac and d.get("mac") == mac)),
                    None)

    def detach(self, dom, alias, device_xml, live):
        self.log("detach", alias, device_xml, live)
        method = "alias" if alias and (live or alias.startswith("ua-")) else "xml"
        with self.lock:
            devs = self.live if live else self.pers
            dev = self._find(devs, alias, device_xml, live)
            if dev is None:
                if method == "alias":
                    raise DeviceMissing("internal error: no device found with alias %s" % alias, libvirt_code=1)
                raise DeviceMissing("device not found: no target device", libvirt_code=99)
            self.attempts[(dev["id"], live)] += 1
            attempt = self.attempts[(dev["id"], live)]
        if not live:
            self.clock.advance(self.persistent_seconds)
            action = self.pscript.get(dev["id"], "ok")
            if action == "missing":
                raise DeviceMissing("device not found: no target device %s" % dev["id"], libvirt_code=99)
            if action == "error":
                raise LibvirtCallFailed("Requested operation is not valid: domain is being modified", libvirt_code=55)
            if action == "lost":
                raise ConnectionLost("internal error: client socket is closed", libvirt_code=1, uri=self.uri)
            if action != "stays":
                with self.lock:
                    self.pers.remove(dev)
            return method
        actions = self.script.get(dev["id"], ["event"])
        action = actions[min(attempt, len(actions)) - 1]
        if action in ("event", "gone", "missing"):
            with self.lock:
                self.live.remove(dev)
        if action == "event":
            self.fire(dev["live_alias"], "removed")
        elif action == "failed":
            self.fire(dev["live_alias"], "failed")
        elif action == "pending":
            raise UnplugPending(PENDING_MSG % dev["live_alias"], libvirt_code=1)
        elif action == "missing":
            raise DeviceMissing("internal error: no device found with alias %s" % dev["live_alias"], libvirt_code=1)
        elif action == "error":
            raise LibvirtCallFailed("internal error: QEMU monitor went away", libvirt_code=1)
        elif action == "lost":
            raise ConnectionLost("End of file while reading data: Input/output error", libvirt_code=38, uri=self.uri)
        elif action == "close":
            self.events_obj.connection_closed()
        elif action == "hold" and self.on_live_detach is not None:
            self.on_live_detach(self, dev, attempt)
        return method

    def remove_live(self, dev_id):
        with self.lock:
            self.live = [d for d in self.live if d["id"] != dev_id]


@pytest.fixture
def backup_dir(tmp_path):
    return str(tmp_path / "backups")


def run(fake, selectors, backup_dir, **kw):
    kw.setdefault("timeout", 5)
    kw.setdefault("attempts", 3)
    return _detach.run_detach(fake, fake.name, selectors, clock=fake.clock, backup_dir=backup_dir, **kw)


def failure(fake, selectors, backup_dir, **kw):
    with pytest.raises(DetachFailed) as info:
        run(fake, selectors, backup_dir, **kw)
    return info.value


def backups(backup_dir):
    return sorted(os.listdir(backup_dir)) if os.path.isdir(backup_dir) else []


# --- self-checks of the fake (so the ordering tests can fail) -----------------------------------

def test_fake_loses_an_event_fired_before_the_waiter_is_registered():
    fake = FakeAdapter(standard_devices())
    events = fake.events(FakeDom("db01"))
    fake.detach(FakeDom("db01"), "ua-disk-data01", None, live=True)   # fires DEVICE_REMOVED now
    waiter = events.expect("ua-disk-data01")
    assert waiter.wait(5) is None
    assert ("event-lost", "ua-disk-data01", "removed") in fake.ops()


def test_fake_xml_pairs_like_libvirt():
    fake = FakeAdapter(standard_devices())
    live = fake.live_xml_text()
    assert "<alias name='virtio-disk2'/>" in live and "<alias name='net1'/>" in live
    assert "virtio-disk2" not in fake.inactive_xml() and "<alias name='ua-disk-data01'/>" in fake.inactive_xml()


# --- 1. DEVICE_REMOVAL_FAILED is final ---------------------------------------------------------

def test_removal_failed_is_fatal_and_not_retried(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.script["vdb"] = ["failed"]
    exc = failure(fake, [{"alias": "ua-disk-data01"}, {"target": "vdc"}], backup_dir, attempts=5)
    assert fake.detach_calls(live=True).count(("ua-disk-data01", True)) == 1
    dev, other = exc.details["devices"]
    assert dev["live"] == "failed"
    assert dev["event"] == "removal-failed"
    assert dev["attempts"] == 1
    assert dev["persistent"] == "removed"
    assert other["live"] == "removed" and other["event"] == "DEVICE_REMOVED event"
    assert "refused" in exc.msg and "not retried" in exc.msg
    assert "1 of 2 device(s) of db01" in exc.msg
    assert exc.details["changed"] is True
    assert exc.details["backup"] and os.path.isfile(exc.details["backup"])
    # no extra wait after the failure event either
    assert [c for c in fake.ops() if c[:2] == ("wait", "ua-disk-data01")] == [("wait", "ua-disk-data01", 5)]


def test_removal_failed_reports_the_method_of_the_request(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.script["vdb"] = ["failed"]
    exc = failure(fake, [{"alias": "ua-disk-data01"}], backup_dir)
    assert exc.details["devices"][0]["method"] == "alias"


# --- 2. waiter before request; an event inside detach() is not lost ----------------------------

def test_waiter_is_registered_before_the_live_request_and_an_early_event_counts(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.script["sda"] = ["event"]     # SCSI: DEVICE_REMOVED arrives before detachDeviceAlias returns
    result = run(fake, [{"alias": "ua-disk-scsi01"}], backup_dir)
    live_detach = [i for i, c in enumerate(fake.calls) if c[0] == "detach" and c[3] is True]
    assert fake.index("expect", "ua-disk-scsi01") < live_detach[0]
    assert ("event", "ua-disk-scsi01", "removed") in fake.ops()
    assert not [c for c in fake.ops() if c[0] == "event-lost"]
    (dev,) = result["devices"]
    assert dev["live"] == "removed" and dev["event"] == "DEVICE_REMOVED event"
    assert dev["attempts"] == 1 and dev["method"] == "alias"
    assert "live_xml" not in [c[0] for c in fake.ops()]    # the event was enough
    assert fake.ops()[-1] == ("close",)


def test_one_waiter_per_device_across_attempts_and_a_late_event_counts(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.script["vdb"] = ["ok"]

    def late(waiter, nth):
        if nth == 2:   # the first request's event arrives while waiting after the second request
            fake.remove_live("vdb")
            fake.fire(waiter.alias, "removed")

    fake.on_wait = late
    (dev,) = run(fake, [{"target": "vdb"}], backup_dir, attempts=5)["devices"]
    assert dev["live"] == "removed" and dev["event"] == "DEVICE_REMOVED event" and dev["attempts"] == 2
    assert [c for c in fake.ops() if c[0] == "expect"] == [("expect", "ua-disk-data01")]
    # timeout, then the live XML is re-read, then the request is sent again
    seq = [c[0] for c in fake.ops() if c[0] in ("detach", "wait", "live_xml")]
    assert seq == ["detach", "detach", "wait", "live_xml", "detach", "wait"]


# --- 3. persistent first, once ------------------------------------------------------------------

def test_all_persistent_detaches_precede_every_live_one(backup_dir):
    fake = FakeAdapter(standard_devices())
    sel = [{"target": "vdb"}, {"serial": "data02"}, {"mac": "52:54:00:6B:3C:59"}]
    result = run(fake, sel, backup_dir)
    config = [i for i, c in enumerate(fake.calls) if c[0] == "detach" and c[3] is False]
    live = [i for i, c in enumerate(fake.calls) if c[0] == "detach" and c[3] is True]
    assert len(config) == 3 and len(live) == 3
    assert max(config) < min(live)
    assert max(config) < fake.index("events", "db01")
    # persistent: ua- alias by alias, alias-less devices by their XML from the inactive definition
    assert fake.detach_calls(live=False) == [("ua-disk-data01", False), (None, False), (None, False)]
    assert [d["method"] for d in result["devices"]] == ["alias", "alias", "alias"]    # live: by live alias
    assert sorted(fake.detach_calls(live=True)) == [("net1", True), ("ua-disk-data01", True), ("virtio-disk2", True)]
    assert all(d["persistent"] == "removed" and d["live"] == "removed" for d in result["devices"])
    assert result["changed"] is True
    # the backup is the inactive definition read before anything changed
    assert backups(backup_dir) == [os.path.basename(result["backup"])]
    with open(result["backup"], encoding="utf-8") as fh:
        saved = fh.read()
    assert "<target dev='vdb' bus='virtio'/>" in saved and "<mac address='52:54:00:6b:3c:59'/>" in saved
    assert oct(os.stat(result["backup"]).st_mode & 0o777) == "0o600"


def test_persistent_xml_request_carries_the_inactive_device_xml(backup_dir):
    fake = FakeAdapter(standard_devices())
    run(fake, [{"target": "vdc"}], backup_dir)
    (xml,) = [c[2] for c in fake.calls if c[0] == "detach" and c[3] is False]
    el = etree.fromstring(xml)
    assert el.tag == "disk" and el.find("target").get("dev") == "vdc" and el.find("alias") is None
    (live_call,) = [c for c in fake.calls if c[0] == "detach" and c[3] is True]
    assert live_call[1] == "virtio-disk2"


def test_persistent_failure_is_fatal_not_retried_and_nothing_live_happens(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.pscript["vdb"] = "error"
    exc = failure(fake, [{"target": "vdb"}], backup_dir, attempts=8)
    assert fake.detach_calls() == [("ua-disk-data01", False)]
    assert "events" not in [c[0] for c in fake.ops()]
    assert exc.details["devices"][0]["persistent"] == "failed"
    assert "Nothing was detached from the running domain" in exc.msg
    assert "domain is being modified" in exc.msg
    backup = exc.details["backup"]
    assert backup and backup in exc.msg and os.path.isfile(backup)
    assert exc.details["changed"] is False


def test_persistent_failure_reports_untouched_devices_as_untouched(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.pscript["vdb"] = "error"
    exc = failure(fake, [{"target": "vdb"}, {"target": "vdc"}], backup_dir)
    assert fake.detach_calls() == [("ua-disk-data01", False)]        # vdc was never touched
    first, second = exc.details["devices"]
    assert second["persistent"] != "removed"
    assert first["live"] != "removed" and second["live"] != "removed"
    assert exc.details["changed"] is False


def test_persistent_failure_after_a_success_reports_live_not_removed(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.pscript["vdc"] = "error"
    exc = failure(fake, [{"target": "vdb"}, {"target": "vdc"}], backup_dir)
    first, second = exc.details["devices"]
    assert first["persistent"] == "removed" and second["persistent"] == "failed"
    assert exc.details["changed"] is True
    assert not fake.detach_calls(live=True)
    assert first["live"] != "removed"


def test_persistent_device_missing_while_live_still_detaches_live(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.pscript["vdb"] = "missing"        # someone removed it from the config a moment ago
    result = run(fake, [{"target": "vdb"}], backup_dir)
    (dev,) = result["devices"]
    assert dev["persistent"] == "absent"
    assert dev["live"] == "removed" and dev["event"] == "DEVICE_REMOVED event"
    assert fake.detach_calls() == [("ua-disk-data01", False), ("ua-disk-data01", True)]
    assert result["changed"] is True


def test_persistent_device_missing_on_stopped_domain_is_not_a_change(backup_dir):
    fake = FakeAdapter(standard_devices(), active=False)
    fake.pscript["vdb"] = "missing"
    result = run(fake, [{"target": "vdb"}], backup_dir)
    assert result["devices"][0]["persistent"] == "absent" and result["devices"][0]["live"] == "skipped"
    assert result["changed"] is False


# --- 4. timeouts and retries ----------------------------------------------------------------------

def test_never_released_is_retried_exactly_attempts_times_then_fails(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.script["vdb"] = ["ok"]
    exc = failure(fake, [{"target": "vdb"}], backup_dir, timeout=5, attempts=3)
    assert fake.detach_calls(live=True) == [("ua-disk-data01", True)] * 3
    assert [c for c in fake.ops() if c[0] == "wait"] == [("wait", "ua-disk-data01", 5)] * 3
    assert [c[0] for c in fake.ops()].count("live_xml") == 3
    (dev,) = exc.details["devices"]
    assert dev["live"] == "failed" and dev["attempts"] == 3 and dev["seconds"] == 15.0
    assert dev["persistent"] == "removed" and dev["event"] is None
    msg = exc.msg
    assert "3 attempt(s)" in msg and "15.0 s" in msg
    assert "removed from the persistent definition but still attached" in msg
    assert "cold boot" in msg
    assert "What to do" in msg and "raise timeout/attempts" in msg and "shut the domain down" in msg
    assert exc.details["backup"] in msg
    assert exc.details["changed"] is True


def test_single_attempt_fails_after_one_timeout(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.script["vdc"] = ["ok"]
    exc = failure(fake, [{"target": "vdc"}], backup_dir, timeout=1, attempts=1)
    assert fake.detach_calls(live=True) == [("virtio-disk2", True)]
    assert "1 attempt(s) over 1.0 s" in exc.msg


def test_gone_from_live_xml_without_event_counts_as_removed(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.script["vdb"] = ["ok", "gone"]
    (dev,) = run(fake, [{"target": "vdb"}], backup_dir, attempts=5, timeout=5)["devices"]
    assert dev["live"] == "removed"
    assert dev["event"] == "gone from the live XML (no event seen)"
    assert dev["attempts"] == 2
    assert dev["seconds"] == 10.0
    assert len(fake.detach_calls(live=True)) == 2


def test_unplug_pending_is_pending_not_failure(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.script["vdb"] = ["ok", "pending", "pending", "event"]
    (dev,) = run(fake, [{"target": "vdb"}], backup_dir, attempts=4)["devices"]
    assert dev["live"] == "removed" and dev["event"] == "DEVICE_REMOVED event" and dev["attempts"] == 4
    # every pending answer was followed by a wait for the event, not an immediate re-send
    seq = [c[0] for c in fake.ops() if c[0] in ("detach", "wait")]
    assert seq == ["detach"] + ["detach", "wait"] * 4


def test_unplug_pending_until_the_end_names_the_pending_unplug(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.script["vdb"] = ["pending"]
    exc = failure(fake, [{"target": "vdb"}], backup_dir, attempts=3, timeout=2)
    assert len(fake.detach_calls(live=True)) == 3
    assert "3 attempt(s) over 6.0 s" in exc.msg
    assert "still in progress" in exc.msg
    assert exc.details["devices"][0]["attempts"] == 3


def test_device_missing_on_a_retry_means_removed(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.script["vdb"] = ["ok", "missing"]
    (dev,) = run(fake, [{"target": "vdb"}], backup_dir, attempts=5)["devices"]
    assert dev["live"] == "removed" and dev["attempts"] == 2


def test_live_libvirt_error_is_reported_per_device(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.script["vdb"] = ["error"]
    exc = failure(fake, [{"target": "vdb"}, {"target": "vdc"}], backup_dir)
    first, second = exc.details["devices"]
    assert first["live"] == "failed" and second["live"] == "removed"
    assert "QEMU monitor went away" in exc.msg and "1 of 2 device(s)" in exc.msg


def test_live_libvirt_error_counts_the_request(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.script["vdb"] = ["error"]
    exc = failure(fake, [{"target": "vdb"}], backup_dir)
    assert exc.details["devices"][0]["attempts"] == 1


def test_timeout_of_a_transient_domain_does_not_promise_a_cold_boot(backup_dir):
    fake = FakeAdapter(standard_devices(), persistent=False)
    fake.script["vdb"] = ["ok"]
    exc = failure(fake, [{"target": "vdb"}], backup_dir, attempts=2)
    assert fake.detach_calls(live=False) == []
    assert exc.details["devices"][0]["persistent"] == "skipped"
    assert "persistent definition not touched" in exc.msg and "cold boot" not in exc.msg


# --- 5. DetachAdapter.detach: alias preferred, ua- only for the persistent definition ------------

def lverr(code, msg):
    exc = libvirt.libvirtError.__new__(libvirt.libvirtError)
    Exception.__init__(exc, msg)
    exc.err = (code, 10, msg, 2, None, None, None, 0, 0)
    return exc


class LibvirtDom:
    def __init__(self, raise_with=None, active=True):
        self.calls = []
        self.raise_with = raise_with
        self.active = active

    def detachDeviceAlias(self, alias, flags):  # noqa: N802 (libvirt's name)
        self.calls.append(("detachDeviceAlias", alias, flags))
        if self.raise_with is not None:
            raise self.raise_with

    def detachDeviceFlags(self, xml, flags):  # noqa: N802
        self.calls.append(("detachDeviceFlags", xml, flags))
        if self.raise_with is not None:
            raise self.raise_with

    def isActive(self):  # noqa: N802
        return self.active

    def XMLDesc(self, flags):  # noqa: N802
        self.calls.append(("XMLDesc", flags))
        if self.raise_with is not None:
            raise self.raise_with
        return "<domain/>"

    def name(self):
        return "db01"


@pytest.fixture
def real_adapter():
    return _adapter.DetachAdapter.__new__(_adapter.DetachAdapter)   # no connection, no event loop


XML = "<disk type='file' device='disk'><target dev='vdb' bus='virtio'/></disk>"


@pytest.mark.parametrize("alias, live, call, method", [
    ("virtio-disk1", True, ("detachDeviceAlias", "virtio-disk1", libvirt.VIR_DOMAIN_AFFECT_LIVE), "alias"),
    ("ua-disk-data01", True, ("detachDeviceAlias", "ua-disk-data01", libvirt.VIR_DOMAIN_AFFECT_LIVE), "alias"),
    ("ua-disk-data01", False, ("detachDeviceAlias", "ua-disk-data01", libvirt.VIR_DOMAIN_AFFECT_CONFIG), "alias"),
    # automatic aliases exist only in the running domain: the config is detached by XML
    ("virtio-disk1", False, ("detachDeviceFlags", XML, libvirt.VIR_DOMAIN_AFFECT_CONFIG), "xml"),
    (None, True, ("detachDeviceFlags", XML, libvirt.VIR_DOMAIN_AFFECT_LIVE), "xml"),
    (None, False, ("detachDeviceFlags", XML, libvirt.VIR_DOMAIN_AFFECT_CONFIG), "xml"),
    ("", True, ("detachDeviceFlags", XML, libvirt.VIR_DOMAIN_AFFECT_LIVE), "xml"),
])
def test_detach_adapter_prefers_alias(real_adapter, alias, live, call, method):
    dom = LibvirtDom()
    assert real_adapter.detach(dom, alias, XML, live=live) == method
    assert dom.calls == [call]


@pytest.mark.parametrize("code, text, expected", [
    (99, "device not found: no target device sdb", DeviceMissing),
    (99, "device not found: disk vdb not found", DeviceMissing),
    (1, "internal error: no device found with alias ua-disk-data01", DeviceMissing),
    (1, PENDING_MSG % "ua-disk-data01", UnplugPending),
    (1, "internal error: unable to execute QEMU command 'device_del': Bus 'pci.3' does not support hotplugging",
     LibvirtCallFailed),
    (55, "Requested operation is not valid: domain is not running", LibvirtCallFailed),
])
def test_detach_adapter_maps_libvirt_errors(real_adapter, code, text, expected):
    dom = LibvirtDom(raise_with=lverr(code, text))
    with pytest.raises(LibvirtCallFailed) as info:
        real_adapter.detach(dom, "ua-disk-data01", XML, live=True)
    assert info.value.__class__ is expected   # exactly, not a subclass
    assert info.value.details["libvirt_code"] == code
    assert text in info.value.msg


def test_detach_adapter_live_xml(real_adapter):
    dom = LibvirtDom()
    assert real_adapter.live_xml(dom) == "<domain/>"
    assert dom.calls == [("XMLDesc", libvirt.VIR_DOMAIN_XML_SECURE)]
    assert real_adapter.live_xml(LibvirtDom(active=False)) is None
    with pytest.raises(LibvirtCallFailed, match="Cannot read the live XML of db01"):
        real_adapter.live_xml(LibvirtDom(raise_with=lverr(42, "Domain not found")))


def test_detach_adapter_events_use_its_connection(real_adapter):
    conn = FakeConn()
    real_adapter.conn = conn
    events = real_adapter.events("dom")
    assert isinstance(events, _adapter.DeviceEvents)
    assert _eids(conn) == sorted([REMOVED_ID, FAILED_ID])
    assert {v[0] for v in conn.callbacks.values()} == {"dom"}


# --- 6. absent, skipped, check mode -----------------------------------------------------------

def seam_calls(fake):
    """Calls that may change something (reads, including the persistent re-read, left out)."""
    return [c[0] for c in fake.ops() if c[0] not in ("select", "read", "persistent_xml")]


def test_already_absent_is_no_change_and_touches_nothing(backup_dir):
    fake = FakeAdapter(standard_devices())
    result = run(fake, [{"target": "vdz"}, {"alias": "ua-disk-gone"}], backup_dir)
    assert result["changed"] is False and result["backup"] is None
    for dev in result["devices"]:
        assert dev["persistent"] == "absent" and dev["live"] == "absent"
        assert dev["matched_by"] is None and dev["attempts"] == 0
    assert seam_calls(fake) == []
    assert backups(backup_dir) == [] and not os.path.exists(backup_dir)


def test_stopped_domain_live_is_skipped(backup_dir):
    fake = FakeAdapter(standard_devices(), active=False)
    result = run(fake, [{"target": "vdb"}], backup_dir)
    (dev,) = result["devices"]
    assert dev["persistent"] == "removed" and dev["live"] == "skipped"
    assert result["active"] is False and result["changed"] is True
    assert seam_calls(fake) == ["detach"] and fake.detach_calls() == [("ua-disk-data01", False)]


def test_stopped_domain_live_true_is_still_skipped(backup_dir):
    fake = FakeAdapter(standard_devices(), active=False)
    (dev,) = run(fake, [{"target": "vdb"}], backup_dir, live=True)["devices"]
    assert dev["live"] == "skipped"
    assert fake.detach_calls(live=True) == []


def test_live_false_skips_the_running_domain(backup_dir):
    fake = FakeAdapter(standard_devices())
    result = run(fake, [{"target": "vdb"}], backup_dir, live=False)
    (dev,) = result["devices"]
    assert dev["persistent"] == "removed" and dev["live"] == "skipped"
    assert seam_calls(fake) == ["detach"] and fake.detach_calls() == [("ua-disk-data01", False)]


def test_persistent_false_skips_the_definition_and_writes_no_backup(backup_dir):
    fake = FakeAdapter(standard_devices())
    result = run(fake, [{"target": "vdb"}], backup_dir, persistent=False)
    (dev,) = result["devices"]
    assert dev["persistent"] == "skipped" and dev["live"] == "removed"
    assert fake.detach_calls() == [("ua-disk-data01", True)]
    assert result["backup"] is None and backups(backup_dir) == []


def test_nothing_to_do_anywhere_is_no_change(backup_dir):
    fake = FakeAdapter(standard_devices(), active=False)
    result = run(fake, [{"target": "vdb"}], backup_dir, persistent=False)
    assert result["changed"] is False
    assert result["devices"][0]["persistent"] == "skipped" and result["devices"][0]["live"] == "skipped"
    assert seam_calls(fake) == []


def test_check_mode_predicts_and_changes_nothing(backup_dir):
    fake = FakeAdapter(standard_devices() + [disk("vde", in_pers=False)])
    sel = [{"target": "vdb"}, {"target": "vde"}, {"target": "vdz"}]
    result = run(fake, sel, backup_dir, check_mode=True)
    assert result["changed"] is True and result["backup"] is None
    assert [(d["persistent"], d["live"]) for d in result["devices"]] == [
        ("removed", "removed"), ("absent", "removed"), ("absent", "absent")]
    assert all(d["attempts"] == 0 and d["event"] is None and d["method"] is None for d in result["devices"])
    assert seam_calls(fake) == [] and backups(backup_dir) == []


def test_check_mode_with_nothing_to_detach_is_unchanged(backup_dir):
    fake = FakeAdapter(standard_devices())
    result = run(fake, [{"target": "vdz"}], backup_dir, check_mode=True)
    assert result["changed"] is False


def test_result_keys_are_the_documented_ones(backup_dir):
    import yaml

    from ansible_collections.virtfleet.libvirt.plugins.modules import virt_detach

    ret = yaml.safe_load(virt_detach.RETURN)
    documented = set(ret["devices"]["contains"])
    fake = FakeAdapter(standard_devices())
    result = run(fake, [{"target": "vdb"}], backup_dir)
    assert set(result) - {"changed"} <= set(ret)
    assert set(result["devices"][0]) == documented


# --- 7. selectors ---------------------------------------------------------------------------------

def test_alias_falls_back_to_serial_on_an_alias_less_domain(backup_dir):
    devices = [disk("vda", serial="root01"), disk("vdb", serial="data01"), nic("52:54:00:6b:3c:58")]
    fake = FakeAdapter(devices)
    result = run(fake, [{"alias": "ua-disk-data01"}], backup_dir)
    (dev,) = result["devices"]
    assert dev["matched_by"] == "serial" and dev["kind"] == "disk"
    assert dev["alias"] == "virtio-disk1" and dev["live_alias"] == "virtio-disk1"
    assert dev["persistent"] == "removed" and dev["live"] == "removed"
    # the derived alias is not carried by libvirt: the config goes by XML, live by libvirt's alias
    assert fake.detach_calls() == [(None, False), ("virtio-disk1", True)]
    assert dev["method"] == "alias"


def test_alias_fallback_to_mac_for_an_interface(backup_dir):
    fake = FakeAdapter([disk("vda"), nic("52:54:00:6b:3c:58"), nic("52:54:00:6b:3c:59")])
    (dev,) = run(fake, [{"alias": "ua-net-5254006b3c59"}], backup_dir)["devices"]
    assert dev["matched_by"] == "mac" and dev["live_alias"] == "net1"
    assert fake.detach_calls() == [(None, False), ("net1", True)]


def test_selector_matching_several_devices_fails_before_any_call(backup_dir):
    fake = FakeAdapter(standard_devices())
    with pytest.raises(InvalidRequest, match=r"devices\[1\] \(source=default\) matches 2 devices of db01"):
        run(fake, [{"target": "vdb"}, {"source": "default"}], backup_dir)
    assert seam_calls(fake) == [] and backups(backup_dir) == []


def test_selector_matching_several_live_only_devices_fails(backup_dir):
    fake = FakeAdapter([disk("vda"), nic("52:54:00:00:00:01", in_pers=False), nic("52:54:00:00:00:02", in_pers=False)])
    with pytest.raises(InvalidRequest, match="matches 2 devices of the running db01"):
        run(fake, [{"source": "default"}], backup_dir)
    assert seam_calls(fake) == []


def test_two_selectors_naming_one_device_fail(backup_dir):
    fake = FakeAdapter(standard_devices())
    with pytest.raises(InvalidRequest, match=r"devices\[1\] \(serial=data01\) and devices\[0\] select the same"):
        run(fake, [{"target": "vdb"}, {"serial": "data01"}], backup_dir)
    assert seam_calls(fake) == []


def test_two_selectors_naming_one_live_only_device_fail(backup_dir):
    fake = FakeAdapter(standard_devices() + [disk("vde", in_pers=False)])
    with pytest.raises(InvalidRequest, match="select the same device"):
        run(fake, [{"target": "vde"}, {"alias": "virtio-disk4"}], backup_dir)
    assert seam_calls(fake) == []


def test_persistent_and_live_alias_selectors_naming_one_device_fail(backup_dir):
    fake = FakeAdapter(standard_devices())
    with pytest.raises(InvalidRequest, match="select the same device"):
        run(fake, [{"target": "vdc"}, {"alias": "virtio-disk2"}], backup_dir)
    assert seam_calls(fake) == []


def test_hot_plugged_device_only_live(backup_dir):
    fake = FakeAdapter(standard_devices() + [disk("vde", serial="hot01", in_pers=False)])
    result = run(fake, [{"serial": "hot01"}], backup_dir)
    (dev,) = result["devices"]
    assert dev["persistent"] == "absent" and dev["live"] == "removed" and dev["matched_by"] == "serial"
    assert fake.detach_calls() == [("virtio-disk4", True)]
    assert result["backup"] is None and backups(backup_dir) == []
    assert result["changed"] is True


def test_user_alias_in_config_while_running_domain_keeps_its_automatic_alias(backup_dir):
    # virt_device_alias set ua-disk-x; the running domain calls it virtio-disk1 until a cold boot
    fake = FakeAdapter([disk("vda", serial="root01"), disk("vdb", alias="ua-disk-x", live_alias="virtio-disk1")])
    result = run(fake, [{"alias": "ua-disk-x"}], backup_dir)
    (dev,) = result["devices"]
    assert dev["matched_by"] == "alias" and dev["alias"] == "ua-disk-x" and dev["live_alias"] == "virtio-disk1"
    assert fake.detach_calls() == [("ua-disk-x", False), ("virtio-disk1", True)]
    assert ("expect", "virtio-disk1") in fake.ops()
    assert dev["live"] == "removed" and dev["event"] == "DEVICE_REMOVED event"


def test_live_alias_selector_detaches_the_running_device(backup_dir):
    fake = FakeAdapter(standard_devices())
    (dev,) = run(fake, [{"alias": "virtio-disk2"}], backup_dir)["devices"]
    assert dev["live"] == "removed" and dev["matched_by"] == "alias" and dev["live_alias"] == "virtio-disk2"
    assert fake.detach_calls(live=True) == [("virtio-disk2", True)]


def test_live_alias_selector_does_not_call_a_persistent_device_absent(backup_dir):
    fake = FakeAdapter(standard_devices())
    (dev,) = run(fake, [{"alias": "virtio-disk2"}], backup_dir)["devices"]
    assert "<target dev='vdc'" not in fake.inactive_xml() or dev["persistent"] != "absent"


def test_invalid_selector_and_numbers_fail_before_any_call(backup_dir):
    fake = FakeAdapter(standard_devices())
    with pytest.raises(InvalidRequest, match="exactly one of"):
        run(fake, [{"target": "vdb", "serial": "data01"}], backup_dir)
    with pytest.raises(InvalidRequest, match="exactly one of"):
        run(fake, [{"name": "vdb"}], backup_dir)
    with pytest.raises(InvalidRequest, match="must be a dict"):
        run(fake, ["vdb"], backup_dir)
    with pytest.raises(InvalidRequest, match="attempts=0"):
        run(fake, [{"target": "vdb"}], backup_dir, attempts=0)
    assert fake.calls == []


def test_unknown_domain(backup_dir):
    fake = FakeAdapter(standard_devices())
    with pytest.raises(DomainNotFound):
        _detach.run_detach(fake, "nope", [{"target": "vdb"}], backup_dir=backup_dir, clock=fake.clock)


# --- 8. concurrency -----------------------------------------------------------------------------

def test_live_detaches_overlap_and_report_started_finished(backup_dir):
    fake = FakeAdapter(standard_devices(), clock=Clock(real=True))
    ids = ["vdb", "vdc", "sda", "52:54:00:6b:3c:59"]
    for dev_id in ids:
        fake.script[dev_id] = ["hold"]
    fake.wait_cap = 3.0      # real seconds; only reached if the detaches do not overlap
    seen = set()

    def release_when_all_asked(fk, dev, attempt):
        with fk.lock:
            seen.add(dev["id"])
            everyone = seen == set(ids)
        if everyone:   # the slowest device's request releases every device
            for d_id in ids:
                alias = next(d["live_alias"] for d in fk.live if d["id"] == d_id)
                fk.remove_live(d_id)
                fk.fire(alias, "removed")

    fake.on_live_detach = release_when_all_asked
    t = time.monotonic()
    result = run(fake, [{"target": "vdb"}, {"target": "vdc"}, {"target": "sda"}, {"mac": "52:54:00:6b:3c:59"}],
                 backup_dir, timeout=5, attempts=1)
    assert time.monotonic() - t < 2.0
    live = [i for i, c in enumerate(fake.calls) if c[0] == "detach" and c[3] is True]
    returns = [i for i, c in enumerate(fake.calls) if c[0] == "wait-return"]
    assert len(live) == 4 and len(returns) == 4
    assert max(live) < min(returns)          # every request went out before any wait returned
    assert len({fake.calls[i][-1] for i in live}) == 4      # from four threads
    devs = result["devices"]
    assert all(d["live"] == "removed" and d["event"] == "DEVICE_REMOVED event" for d in devs)
    assert all(isinstance(d["started"], float) and isinstance(d["finished"], float) for d in devs)
    assert all(d["started"] <= d["finished"] for d in devs)
    assert max(d["started"] for d in devs) <= min(d["finished"] for d in devs)


def test_one_slow_device_does_not_hold_the_others_requests(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.script["vdb"] = ["ok"]          # never released
    exc = failure(fake, [{"target": "vdb"}, {"target": "vdc"}, {"target": "sda"}], backup_dir, attempts=2)
    devs = exc.details["devices"]
    assert [d["live"] for d in devs] == ["failed", "removed", "removed"]
    assert "1 of 3 device(s) of db01" in exc.msg
    assert exc.details["changed"] is True
    assert fake.ops()[-1] == ("close",)


def test_events_are_closed_even_when_a_worker_raises_unexpectedly(backup_dir):
    fake = FakeAdapter(standard_devices())

    def boom(dom):
        raise RuntimeError("bug in the adapter")

    fake.live_xml = boom
    fake.script["vdb"] = ["ok"]
    with pytest.raises(RuntimeError):
        run(fake, [{"target": "vdb"}], backup_dir)
    assert fake.events_obj.closed


def test_started_is_measured_from_the_live_phase(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.persistent_seconds = 2.0        # each persistent detach takes 2 s on the fake clock
    (dev,) = run(fake, [{"target": "vdb"}], backup_dir)["devices"]
    assert dev["started"] == 0.0


# --- 9. validate_numbers ---------------------------------------------------------------------------

@pytest.mark.parametrize("timeout, ok", [(0, False), (1, True), (600, True), (601, False), (-5, False)])
def test_timeout_range(timeout, ok):
    if ok:
        assert _detach.validate_numbers(timeout, 8) is None
    else:
        with pytest.raises(InvalidRequest) as info:
            _detach.validate_numbers(timeout, 8)
        assert "timeout=%d is out of range: use 1 to 600 seconds" % timeout in info.value.msg


@pytest.mark.parametrize("attempts, ok", [(0, False), (1, True), (50, True), (51, False)])
def test_attempts_range(attempts, ok):
    if ok:
        assert _detach.validate_numbers(15, attempts) is None
    else:
        with pytest.raises(InvalidRequest) as info:
            _detach.validate_numbers(15, attempts)
        assert info.value.msg == "attempts=%d is out of range: use 1 to 50." % attempts


def test_defaults_are_in_range():
    _detach.validate_numbers(_detach.DEFAULT_TIMEOUT, _detach.DEFAULT_ATTEMPTS)
    assert _detach.DEFAULT_TIMEOUT >= 10     # native PCIe hot-unplug takes ~6.2 s


def test_module_validates_numbers_before_connecting(monkeypatch):
    from ansible_collections.virtfleet.libvirt.plugins.modules import virt_detach

    def no_connection(*_a, **_k):
        raise AssertionError("connected before validating")

    monkeypatch.setattr(virt_detach, "DetachAdapter", no_connection)
    params = dict(uri="qemu:///system", domain="db01", devices=[{"target": "vdb"}], persistent=True, live=None,
                  timeout=601, attempts=8, backup_dir="/tmp/x")
    with pytest.raises(InvalidRequest, match="timeout=601"):
        virt_detach.run(None, params)


# --- 10. Waiter and DeviceEvents ------------------------------------------------------------------

class FakeConn:
    def __init__(self, fail_deregister=False):
        self.callbacks = {}
        self.next_id = 0
        self.deregistered = []
        self.fail_deregister = fail_deregister

    def domainEventRegisterAny(self, dom, event_id, cb, opaque):  # noqa: N802
        self.next_id += 1
        self.callbacks[self.next_id] = (dom, event_id, cb, opaque)
        return self.next_id

    def domainEventDeregisterAny(self, cb_id):  # noqa: N802
        self.deregistered.append(cb_id)
        if self.fail_deregister:
            raise lverr(1, "internal error: client socket is closed")
        del self.callbacks[cb_id]

    def fire(self, event_id, alias, dom="dom"):
        for _dom, eid, cb, opaque in list(self.callbacks.values()):
            if eid == event_id:
                cb(self, dom, alias, opaque)


def _eids(conn):
    return sorted(v[1] for v in conn.callbacks.values())


REMOVED_ID = libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED
FAILED_ID = libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED


def test_device_events_register_both_callbacks_for_the_domain():
    conn = FakeConn()
    _adapter.DeviceEvents(conn, "dom")
    assert _eids(conn) == sorted([REMOVED_ID, FAILED_ID])
    assert {v[0] for v in conn.callbacks.values()} == {"dom"}


def test_events_for_other_aliases_are_ignored():
    conn = FakeConn()
    events = _adapter.DeviceEvents(conn, "dom")
    waiter = events.expect("ua-disk-data01")
    conn.fire(REMOVED_ID, "ua-disk-other")
    conn.fire(FAILED_ID, "virtio-disk1")
    assert waiter.wait(0.01) is None and waiter.outcome is None
    conn.fire(REMOVED_ID, "ua-disk-data01")
    assert waiter.wait(5) == "removed"


def test_removal_failed_event_reaches_the_waiter():
    conn = FakeConn()
    events = _adapter.DeviceEvents(conn, "dom")
    waiter = events.expect("ua-dimm0")
    conn.fire(FAILED_ID, "ua-dimm0")
    assert waiter.wait(5) == "failed"


@pytest.mark.parametrize("first, second, outcome", [
    (REMOVED_ID, FAILED_ID, "removed"),
    (FAILED_ID, REMOVED_ID, "failed"),
    (REMOVED_ID, REMOVED_ID, "removed"),
])
def test_first_outcome_wins(first, second, outcome):
    conn = FakeConn()
    events = _adapter.DeviceEvents(conn, "dom")
    waiter = events.expect("a")
    conn.fire(first, "a")
    conn.fire(second, "a")
    assert waiter.wait(5) == outcome


def test_event_before_wait_returns_at_once_and_expect_is_idempotent():
    conn = FakeConn()
    events = _adapter.DeviceEvents(conn, "dom")
    waiter = events.expect("a")
    assert events.expect("a") is waiter
    conn.fire(REMOVED_ID, "a")
    t = time.monotonic()
    assert waiter.wait(30) == "removed"
    assert time.monotonic() - t < 0.5


def test_event_without_waiter_is_dropped():
    conn = FakeConn()
    events = _adapter.DeviceEvents(conn, "dom")
    conn.fire(REMOVED_ID, "a")      # nobody expects it yet
    assert events.expect("a").wait(0.01) is None


def test_waiter_times_out_with_none():
    waiter = _adapter.Waiter("a")
    t = time.monotonic()
    assert waiter.wait(0.02) is None
    assert 0.015 <= time.monotonic() - t < 0.5


def test_waiter_wakes_a_blocked_wait_from_another_thread():
    waiter = _adapter.Waiter("a")
    timer = threading.Timer(0.02, waiter.set, args=("removed",))
    timer.start()
    t = time.monotonic()
    assert waiter.wait(5) == "removed"
    assert time.monotonic() - t < 1.0
    timer.join()


def test_close_deregisters_every_callback():
    conn = FakeConn()
    events = _adapter.DeviceEvents(conn, "dom")
    ids = sorted(conn.callbacks)
    waiter = events.expect("a")
    events.close()
    assert sorted(conn.deregistered) == ids and conn.callbacks == {}
    conn.fire(REMOVED_ID, "a")
    assert waiter.outcome is None


def test_close_tolerates_a_closed_connection():
    conn = FakeConn(fail_deregister=True)
    events = _adapter.DeviceEvents(conn, "dom")
    events.close()
    assert len(conn.deregistered) == 2


# --- 11. a lost connection: reported as such, partial results kept, rerun converges ---------------

def lost(fake, selectors, backup_dir, **kw):
    with pytest.raises(ConnectionLost) as info:
        run(fake, selectors, backup_dir, **kw)
    return info.value


def states(exc_or_result):
    devices = exc_or_result.details["devices"] if hasattr(exc_or_result, "details") else exc_or_result["devices"]
    return [(d["persistent"], d["live"]) for d in devices]


@pytest.mark.parametrize("action", ["close", "lost"])
def test_connection_lost_during_the_live_phase_keeps_the_persistent_result(backup_dir, action):
    """The bug seen on a real host: the daemon restarted during the live wait and the module said
    changed=false, devices=[]. Now: persistent removed (verified), live requested with outcome unknown."""
    fake = FakeAdapter(standard_devices())
    fake.script["vdb"] = [action]
    exc = lost(fake, [{"alias": "ua-disk-data01"}], backup_dir, timeout=15)
    (dev,) = exc.details["devices"]
    assert (dev["persistent"], dev["live"]) == ("removed", "unknown")
    assert dev["verified"] is True
    assert dev["event"] == "connection lost" and dev["attempts"] == 1
    assert exc.details["changed"] is True and exc.details["connection_lost"] is True
    assert exc.details["backup"] and os.path.isfile(exc.details["backup"])
    assert exc.details["domain"] == "db01" and exc.details["uri"] == fake.uri
    assert "connection to libvirt at %s was lost" % fake.uri in exc.msg
    assert "removed from the persistent definition (verified)" in exc.msg
    assert "live detach requested (attempt 1), outcome unknown" in exc.msg
    assert "run the same task again" in exc.msg
    # never retried on a lost connection
    assert fake.detach_calls(live=True) == [("ua-disk-data01", True)]


def test_close_callback_ends_the_wait_before_the_timeout(backup_dir):
    """The waiter is woken by the close: the wait does not run to its timeout (fake clock untouched)."""
    fake = FakeAdapter(standard_devices())
    fake.script["vdb"] = ["close"]
    exc = lost(fake, [{"target": "vdb"}], backup_dir, timeout=600)
    assert exc.details["devices"][0]["seconds"] == 0.0
    assert ("wait-return", "ua-disk-data01", "lost") in fake.ops()
    assert "live_xml" not in [c[0] for c in fake.ops()]     # no re-read on a dead connection


def test_connection_lost_on_the_re_read_after_a_timeout(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.script["vdb"] = ["ok"]
    fake.lost_on.add("live_xml")
    exc = lost(fake, [{"target": "vdb"}], backup_dir, timeout=5, attempts=3)
    assert states(exc) == [("removed", "unknown")]
    assert exc.details["devices"][0]["attempts"] == 1
    assert len(fake.detach_calls(live=True)) == 1


def test_connection_lost_during_the_persistent_phase(backup_dir):
    """First device done, second requested (unknown), third and every live step not attempted."""
    fake = FakeAdapter(standard_devices())
    fake.pscript["vdc"] = "lost"
    exc = lost(fake, [{"target": "vdb"}, {"target": "vdc"}, {"target": "sda"}], backup_dir)
    assert states(exc) == [("removed", "not-attempted"), ("unknown", "not-attempted"),
                           ("not-attempted", "not-attempted")]
    assert exc.details["changed"] is True
    assert not fake.detach_calls(live=True) and "events" not in [c[0] for c in fake.ops()]
    assert "persistent detach requested, outcome unknown" in exc.msg
    assert "live detach not attempted" in exc.msg


def test_connection_lost_on_the_first_persistent_request_may_have_changed_it(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.pscript["vdb"] = "lost"
    exc = lost(fake, [{"target": "vdb"}], backup_dir)
    assert states(exc) == [("unknown", "not-attempted")]
    assert exc.details["changed"] is True       # the daemon may have applied it


def test_connection_lost_while_verifying_the_persistent_definition(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.lost_on.add("persistent_xml")
    exc = lost(fake, [{"target": "vdb"}], backup_dir)
    (dev,) = exc.details["devices"]
    assert (dev["persistent"], dev["live"]) == ("removed", "not-attempted")
    assert "verified" not in dev
    assert "(verified)" not in exc.msg and "removed from the persistent definition" in exc.msg


def test_connection_lost_registering_events_attempts_no_live_detach(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.lost_on.add("events")
    exc = lost(fake, [{"target": "vdb"}, {"target": "vdc"}], backup_dir)
    assert states(exc) == [("removed", "not-attempted")] * 2
    assert not fake.detach_calls(live=True)


def test_connection_lost_for_one_device_keeps_the_others_outcomes(backup_dir):
    """Concurrent devices: one done by its event, one failed by removal-failed, one unknown."""
    fake = FakeAdapter(standard_devices())
    fake.script.update(vdb=["event"], vdc=["failed"], sda=["lost"])
    exc = lost(fake, [{"target": "vdb"}, {"target": "vdc"}, {"target": "sda"}], backup_dir)
    assert states(exc) == [("removed", "removed"), ("removed", "failed"), ("removed", "unknown")]
    assert exc.details["connection_lost"] is True


def test_persistent_detach_that_libvirt_accepted_but_did_not_apply_fails_before_live(backup_dir):
    fake = FakeAdapter(standard_devices())
    fake.pscript["vdb"] = "stays"
    exc = failure(fake, [{"target": "vdb"}], backup_dir)
    (dev,) = exc.details["devices"]
    assert dev["persistent"] == "failed" and dev["verified"] is False
    assert "still has it" in exc.msg
    assert not fake.detach_calls(live=True)


def test_a_successful_run_marks_the_persistent_detach_verified(backup_dir):
    fake = FakeAdapter(standard_devices())
    (dev,) = run(fake, [{"target": "vdc"}], backup_dir)["devices"]   # no ua- alias: verified by selector
    assert dev["verified"] is True and dev["live"] == "removed"


@pytest.mark.parametrize("after", ["gone", "pending"])
def test_rerun_after_a_lost_connection_converges(backup_dir, after):
    """Second run on the daemon that is back: the persistent side is absent now; the live side is
    either gone (libvirt re-syncs the devices on reconnect) or still being unplugged."""
    fake = FakeAdapter(standard_devices())
    fake.script["vdb"] = ["close"]
    lost(fake, [{"alias": "ua-disk-data01"}], backup_dir)
    if after == "gone":
        fake.remove_live("vdb")
    else:
        fake.script["vdb"] = ["close", "pending", "event"]
    again = run(fake, [{"alias": "ua-disk-data01"}], backup_dir)
    (dev,) = again["devices"]
    if after == "gone":
        assert (dev["persistent"], dev["live"]) == ("absent", "absent") and again["changed"] is False
    else:
        assert (dev["persistent"], dev["live"], dev["event"]) == ("absent", "removed", "DEVICE_REMOVED event")
        assert again["changed"] is True


def test_module_reports_a_connection_lost_before_the_plan(monkeypatch):
    """Lost while selecting/reading: every device is not-attempted, changed false, connection_lost."""
    from ansible_collections.virtfleet.libvirt.plugins.modules import virt_detach
    assert virt_detach.not_attempted({"alias": "ua-x"}) == {
        "selector": {"alias": "ua-x"}, "persistent": "not-attempted", "live": "not-attempted", "attempts": 0}


# --- 12. the adapter side of a lost connection ----------------------------------------------------

class AliveConn(FakeConn):
    def __init__(self, alive=True):
        super().__init__()
        self.alive = alive

    def isAlive(self):  # noqa: N802
        if self.alive is None:
            raise lverr(1, "internal error: client socket is closed")
        return 1 if self.alive else 0


@pytest.mark.parametrize("code, text, alive, expected", [
    (1, "internal error: client socket is closed", True, True),
    (38, "Cannot recv data: Connection reset by peer", True, True),               # VIR_ERR_SYSTEM_ERROR
    (1, "End of file while reading data: Input/output error", True, True),
    (libvirt.VIR_ERR_RPC, "rpc error", True, True),
    (libvirt.VIR_ERR_NO_CONNECT, "no connection driver", True, True),
    (55, "Requested operation is not valid: domain is not running", False, True),  # isAlive() false
    (55, "Requested operation is not valid: domain is not running", None, True),   # isAlive() fails
    (55, "Requested operation is not valid: domain is not running", True, False),
    (1, PENDING_MSG % "ua-disk-data01", True, False),
])
def test_lost_classification(real_adapter, code, text, alive, expected):
    real_adapter.conn = AliveConn(alive)
    assert real_adapter.lost(lverr(code, text)) is expected


@pytest.mark.parametrize("code, text", [(1, "internal error: client socket is closed"),
                                        (38, "End of file while reading data: Input/output error")])
def test_detach_adapter_raises_connection_lost(real_adapter, code, text):
    real_adapter.conn = AliveConn(False)
    real_adapter.uri = "qemu:///session"
    dom = LibvirtDom(raise_with=lverr(code, text))
    with pytest.raises(ConnectionLost) as info:
        real_adapter.detach(dom, "ua-disk-data01", XML, live=True)
    assert "The live detach request: the connection to libvirt at qemu:///session was lost" in info.value.msg
    with pytest.raises(ConnectionLost, match="Cannot read the live XML"):
        real_adapter.live_xml(dom)
    with pytest.raises(ConnectionLost, match="Cannot re-read the persistent definition"):
        real_adapter.persistent_xml(dom)


def test_pending_is_not_lost_even_on_a_dead_connection(real_adapter):
    real_adapter.conn = AliveConn(False)
    with pytest.raises(UnplugPending):
        real_adapter.detach(LibvirtDom(raise_with=lverr(1, PENDING_MSG % "ua-x")), "ua-x", XML, live=True)


def test_device_events_connection_closed_wakes_a_blocked_waiter():
    events = _adapter.DeviceEvents(FakeConn(), "dom")
    waiter = events.expect("ua-disk-data01")
    got = []
    thread = threading.Thread(target=lambda: got.append(waiter.wait(30)))
    thread.start()
    t0 = time.monotonic()
    events.connection_closed("end of file")
    thread.join(5)
    assert got == ["lost"] and time.monotonic() - t0 < 5
    # a waiter registered after the close is lost at once; an outcome seen before the close wins
    assert events.expect("ua-other").wait(30) == "lost"


def test_removed_before_the_close_stays_removed():
    conn = FakeConn()
    events = _adapter.DeviceEvents(conn, "dom")
    waiter = events.expect("ua-disk-data01")
    conn.fire(REMOVED_ID, "ua-disk-data01")
    events.connection_closed()
    assert waiter.wait(0) == "removed"


def test_close_callback_of_the_adapter_wakes_every_device_events(real_adapter):
    real_adapter.conn = AliveConn(True)
    first, second = real_adapter.events("dom"), real_adapter.events("dom")
    w1, w2 = first.expect("ua-a"), second.expect("ua-b")
    real_adapter._on_close(real_adapter.conn, 1, None)      # VIR_CONNECT_CLOSE_REASON_EOF
    assert (w1.wait(0), w2.wait(0)) == ("lost", "lost")
    assert real_adapter.lost() is True
    # events registered after the close: lost at once
    assert real_adapter.events("dom").expect("ua-c").wait(0) == "lost"
