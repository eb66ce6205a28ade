"""The engine's safety sequence, run as written, over a fake adapter that only offers libvirt's primitives.

The fake is an in-memory libvirt: domains by UUID, ``define`` stores what it is given (after
``normalise``, which plays libvirt's part), and hooks let a test act as another tool at a
precise moment (between the engine's read and its define, after its define) or break the
connection. Nothing of the engine's sequence is copied into the fake.
"""

from __future__ import annotations

import os
import threading
import re

import pytest
from lxml import etree

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _engine, _rules
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import (
    ConnectionLost, DefineFailed, DomainNotFound, DomainVanished, InvalidRequest,
)
from ansible_collections.virtfleet.libvirt.plugins.module_utils._plan import DomainState

SECRET = "Vnc-s3cr3t"


def dom_xml(name, io="native", cache="writeback", extra="", memory=1048576, usb=""):
    return """<domain type='kvm'>
  <name>%s</name>
  <uuid>%s</uuid>
  <memory unit='KiB'>%d</memory>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='%s' io='%s'/>
      <source file='/img/%s.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <serial>S-%s</serial>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>%s%s
    <graphics type='vnc' port='-1' autoport='yes' passwd='%s'/>
  </devices>
</domain>
""" % (name, uuid_of(name), memory, cache, io, name, name, usb, extra, SECRET)


def uuid_of(name):
    return "00000000-0000-4000-8000-%012x" % (sum(map(ord, name)) * 1000 + len(name))


def _uuid_in(xml):
    return re.search(r"<uuid>([^<]+)</uuid>", xml).group(1)


def _name_in(xml):
    return re.search(r"<name>([^<]+)</name>", xml).group(1)


class FakeLibvirt:
    """In-memory libvirt with the adapter's primitives: select, name_of, uuid_of, read, reread, definition, define."""

    def __init__(self, *xmls):
        self.defs = {}
        for xml in xmls:
            self.defs[_uuid_in(xml)] = xml
        self.defines = []          # every XML given to define, in order
        self.reads = []
        self.normalise = None      # libvirt's part on define: xml -> xml
        self.refuse = set()        # names whose define libvirt refuses
        self.on_define = []        # hooks(fake, xml) run inside define, before storing (another tool, a crash)
        self.after_define = []     # hooks(fake, xml) run after storing
        self.on_reread = []        # hooks(fake, uuid) run at every reread, before reading
        self.alive = True

    def _check(self):
        if not self.alive:
            raise ConnectionLost("connection lost (fake)")

    def select(self, names=None, exclude=None):
        self._check()
        by_name = {_name_in(x): u for u, x in self.defs.items()}
        if names:
            missing = [n for n in names if n not in by_name]
            if missing:
                raise DomainNotFound("Domain(s) not found: %s" % ", ".join(missing), missing=missing)
            chosen = [by_name[n] for n in dict.fromkeys(names)]
        else:
            chosen = [by_name[n] for n in sorted(by_name)]
        return [u for u in chosen if _name_in(self.defs[u]) not in (exclude or ())]

    def name_of(self, handle):
        return _name_in(self.defs[handle])

    @staticmethod
    def uuid_of(handle):
        return handle

    def read(self, handle):
        self._check()
        self.reads.append(handle)
        if handle not in self.defs:
            raise DomainVanished("no domain with uuid %s" % handle)
        xml = self.defs[handle]
        return DomainState(name=_name_in(xml), uuid=handle, active=False, persistent=True, inactive_xml=xml)

    def reread(self, uuid):
        for hook in self.on_reread:
            hook(self, uuid)
        return self.read(uuid)

    def definition(self, uuid):
        # The guard's read: the same hooks as a reread (another tool acts before either).
        return self.reread(uuid).inactive_xml

    def define(self, xml):
        self._check()
        self.defines.append(xml)
        for hook in self.on_define:
            hook(self, xml)
        if _name_in(xml) in self.refuse:
            raise DefineFailed("unsupported configuration: refused (fake)")
        self.defs[_uuid_in(xml)] = self.normalise(xml) if self.normalise else xml
        for hook in self.after_define:
            hook(self, xml)


class Lock:
    def __init__(self):
        self.taken = 0

    def __call__(self):
        lock = self

        class _Ctx:
            waited = 0.0

            def __enter__(self):
                lock.taken += 1
                return self

            def __exit__(self, *_a):
                return False
        return _Ctx()


BOTH = {"disk_io": {"io": "keep", "cache": "keep"}, "aliases": {}}


def run(fake, tmp_path, requested=None, check_mode=False, lock=None, **kw):
    rules = _rules.build(requested or BOTH)
    domains = kw.pop("domains", None)
    return _engine.Engine(fake, rules, check_mode=check_mode, backup_dir=str(tmp_path / "backups"),
                          lock=lock, **kw).run(domains)


def statuses(result):
    return {d["name"]: d["status"] for d in result["domains"]}


def backups(tmp_path):
    d = tmp_path / "backups"
    return sorted(os.listdir(d)) if d.exists() else []


# --- composition: one read, one backup, one define per domain for every rule ----------------------------

def test_check_mode_reports_every_rule_and_touches_nothing(tmp_path):
    fake, lock = FakeLibvirt(dom_xml("a"), dom_xml("b")), Lock()
    result = run(fake, tmp_path, check_mode=True, lock=lock)
    assert fake.defines == [] and backups(tmp_path) == [] and lock.taken == 0
    assert statuses(result) == {"a": "drift", "b": "drift"}
    by_check = sorted({(f["domain"], f["check"], f["status"]) for f in result["findings"]})
    assert by_check == [("a", "aliases", "drift"), ("a", "disk_io", "drift"), ("b", "aliases", "drift"),
                        ("b", "disk_io", "drift")]
    assert result["changed"] is True and result["summary"]["domains_changed"] == 2  # would be changed


def test_real_run_one_define_and_one_backup_per_domain_with_every_rule(tmp_path):
    fake, lock = FakeLibvirt(dom_xml("a"), dom_xml("b")), Lock()
    result = run(fake, tmp_path, lock=lock)
    assert len(fake.defines) == 2 and len(backups(tmp_path)) == 2 and lock.taken == 1
    for xml in fake.defines:  # both rules' changes in the one define
        assert "io='threads'" in xml.replace('"', "'") and "<alias name=" in xml
    assert statuses(result) == {"a": "fixed", "b": "fixed"}
    assert {f["status"] for f in result["findings"]} == {"fixed"}
    assert result["summary"]["domains_changed"] == 2 and result["changed"] is True
    again = run(fake, tmp_path, lock=lock)
    assert len(fake.defines) == 2 and again["changed"] is False
    assert statuses(again) == {"a": "compliant", "b": "compliant"}


def test_check_mode_predicts_exactly_what_the_real_run_fixes(tmp_path):
    fake = FakeLibvirt(dom_xml("a"), dom_xml("b", io="threads"))
    check = run(fake, tmp_path, check_mode=True)
    real = run(fake, tmp_path)

    def key(r):
        return sorted((f["domain"], f["rule"], f["device"]["path"]) for f in r["findings"])
    assert key(check) == key(real)


# --- the re-read guard: other tools' changes are never lost --------------------------------------------

def test_a_change_made_between_read_and_define_is_a_conflict_and_is_kept(tmp_path):
    fake = FakeLibvirt(dom_xml("a"), dom_xml("b"))
    other = dom_xml("a", memory=2097152)

    def other_tool(f, uuid):
        if uuid == uuid_of("a") and not f.defines:
            f.defs[uuid] = other     # virsh define with more memory, after our read
    fake.on_reread.append(other_tool)
    result = run(fake, tmp_path)
    assert fake.defs[uuid_of("a")] == other                      # the other tool's change stands
    assert [_name_in(x) for x in fake.defines] == ["b"]          # a was never defined, b was
    assert statuses(result) == {"a": "conflict", "b": "fixed"}
    a = next(d for d in result["domains"] if d["name"] == "a")
    assert "someone else changed the definition" in a["error"]
    assert "<memory>: text changed '1048576' -> '2097152'" in a["error"]
    assert {f["status"] for f in result["findings"] if f["domain"] == "a"} == {"conflict"}
    assert "conflict" in _engine.failure_message(result)


def test_a_domain_undefined_between_read_and_define_is_never_defined_again(tmp_path):
    fake = FakeLibvirt(dom_xml("a"))
    fake.on_reread.append(lambda f, uuid: f.defs.pop(uuid, None))
    result = run(fake, tmp_path)
    assert fake.defines == [] and uuid_of("a") not in fake.defs
    assert statuses(result) == {"a": "vanished"}
    assert "not defined again" in result["findings"][0]["message"]


# --- verification that knows libvirt ---------------------------------------------------------------------

USB = """
    <controller type='usb' index='0' model='ich9-ehci1'><address type='pci' domain='0x0000' bus='0x00' slot='0x1d' function='0x7'/></controller>
    <controller type='usb' index='0' model='ich9-uhci1'><master startport='0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x1d' function='0x0'/></controller>"""


def _swap_usb(xml):
    root = etree.fromstring(xml.encode())
    ctls = root.findall("devices/controller")
    ctls[0].addprevious(ctls[1])   # libvirt's unstable sort of controllers sharing type and index
    return etree.tostring(root, encoding="unicode")


def test_libvirts_own_reordering_of_usb_companions_is_not_a_failure(tmp_path):
    fake = FakeLibvirt(dom_xml("a", usb=USB))
    fake.normalise = _swap_usb
    result = run(fake, tmp_path, {"disk_io": {}, "aliases": {"device_types": ["disk", "controller"]}})
    assert statuses(result) == {"a": "fixed"}, result["domains"]
    assert len(fake.defines) == 1


def test_an_alias_libvirt_drops_on_one_device_skips_that_device_only(tmp_path):
    # (a device libvirt keeps no alias on; the planner knows model='none', this plays an unknown one)
    usb = "\n    <controller type='usb' index='0' model='piix3-uhci'/>"
    fake = FakeLibvirt(dom_xml("a", usb=usb))

    def drop_usb_alias(xml):
        root = etree.fromstring(xml.encode())
        for ctl in root.findall("devices/controller"):
            for alias in ctl.findall("alias"):
                ctl.remove(alias)
        return etree.tostring(root, encoding="unicode")
    fake.normalise = drop_usb_alias
    result = run(fake, tmp_path, {"aliases": {"device_types": ["disk", "controller"]}})
    assert statuses(result) == {"a": "fixed"}
    by_kind = {f["device"]["kind"]: f for f in result["findings"]}
    assert by_kind["disk"]["status"] == "fixed"
    assert by_kind["controller"]["status"] == "skipped"
    assert "libvirt does not keep an alias on this device" in by_kind["controller"]["message"]


def test_a_real_loss_restores_the_backup_and_verifies_the_restore(tmp_path):
    original = dom_xml("a")
    fake = FakeLibvirt(original)
    # libvirt loses an element, but only from the patched definition (so the restore can succeed)
    fake.normalise = lambda xml: xml.replace("<serial>S-a</serial>", "") if "<alias" in xml else xml
    result = run(fake, tmp_path)
    (d,) = result["domains"]
    assert d["status"] == "failed" and d["changed"] is False
    assert "disk vda alias=ua-disk-S-a: element <serial> dropped (was " in d["error"]
    assert "restored and verified" in d["error"] and d["backup"] in d["error"]
    assert fake.defines[-1] == original   # the restore wrote our read back...
    assert len(fake.defines) == 2


def test_a_restore_never_writes_over_a_change_it_did_not_make(tmp_path):
    fake = FakeLibvirt(dom_xml("a"))
    fake.normalise = lambda xml: xml.replace("<serial>S-a</serial>", "")   # a loss: restore wanted
    theirs = dom_xml("a", memory=4194304).replace("<serial>S-a</serial>", "")

    def someone_else(f, _xml):
        f.defs[uuid_of("a")] = theirs   # ...but another tool redefines right after our define
    fake.after_define.append(someone_else)
    result = run(fake, tmp_path)
    (d,) = result["domains"]
    assert len(fake.defines) == 1 and fake.defs[uuid_of("a")] == theirs
    assert d["status"] == "failed"
    assert "left as it is" in d["error"] and d["backup"] in d["error"]
    assert os.path.basename(d["backup"]) in backups(tmp_path)


def test_a_restore_checks_the_definition_is_still_ours_just_before_it_writes(tmp_path):
    fake = FakeLibvirt(dom_xml("a"))
    fake.normalise = lambda xml: xml.replace("<serial>S-a</serial>", "") if "<alias" in xml else xml
    theirs = dom_xml("a", memory=4194304)
    rereads = []

    def someone_else(f, uuid):
        rereads.append(uuid)
        if len(rereads) == 3:          # guard, verify, then the restore's own check: another tool got there first
            f.defs[uuid] = theirs
    fake.on_reread.append(someone_else)
    result = run(fake, tmp_path)
    (d,) = result["domains"]
    assert len(fake.defines) == 1 and fake.defs[uuid_of("a")] == theirs
    assert "changed again by someone else" in d["error"] and d["backup"] in d["error"]


def test_a_refused_define_changes_nothing_and_names_the_backup(tmp_path):
    fake = FakeLibvirt(dom_xml("a"), dom_xml("b"))
    fake.refuse.add("a")
    result = run(fake, tmp_path)
    assert statuses(result) == {"a": "failed", "b": "fixed"}
    a = result["domains"][0]
    assert "Nothing was changed" in a["error"] and a["backup"] in a["error"]


SCHEMA = ("internal error: Unable to parse RelaxNG schema '/usr/share/libvirt/schemas/domain.rng': Error type "
          "'int' is not exported by type library 'http://www.w3.org/2001/XMLSchema-datatypes'")


def _schema_fails(times):
    """libvirtd failing to load its own schema at the next ``times`` defines (nothing stored)."""
    left = [times]

    def hook(_f, _xml):
        if left[0] > 0:
            left[0] -= 1
            raise DefineFailed(SCHEMA, libvirt_code=1, transient=True)
    return hook


def test_a_define_libvirtd_could_not_validate_is_guarded_and_sent_once_more(tmp_path):
    fake = FakeLibvirt(dom_xml("a"), dom_xml("b"))
    fake.on_define.append(_schema_fails(1))
    guards = []
    fake.on_reread.append(lambda f, uuid: guards.append(uuid))
    result = run(fake, tmp_path, workers=1)
    assert statuses(result) == {"a": "fixed", "b": "fixed"}
    assert [_name_in(x) for x in fake.defines] == ["a", "a", "b"]     # a twice, b once: bounded
    # The guard re-read ran before each of a's two defines (then the verification re-read).
    assert guards[:3] == [uuid_of("a")] * 3 and len(backups(tmp_path)) == 2


def test_a_change_made_before_the_second_attempt_is_still_a_conflict(tmp_path):
    fake = FakeLibvirt(dom_xml("a"))
    other = dom_xml("a", memory=2097152)

    def fail_then_other_tool(f, xml):
        if len(f.defines) == 1:
            f.defs[uuid_of("a")] = other
            raise DefineFailed(SCHEMA, libvirt_code=1, transient=True)
    fake.on_define.append(fail_then_other_tool)
    result = run(fake, tmp_path)
    assert fake.defs[uuid_of("a")] == other and len(fake.defines) == 1
    assert statuses(result) == {"a": "conflict"}


def test_a_schema_that_never_loads_fails_the_domain_after_two_attempts(tmp_path):
    fake = FakeLibvirt(dom_xml("a"), dom_xml("b"))
    fake.on_define.append(_schema_fails(2))
    result = run(fake, tmp_path, workers=1)
    assert statuses(result) == {"a": "failed", "b": "fixed"}
    assert [_name_in(x) for x in fake.defines] == ["a", "a", "b"]
    a = result["domains"][0]
    assert "same after 2 attempts: libvirtd could not load its own schema" in a["error"]
    assert "Nothing was changed" in a["error"]
    assert a["backup"] in a["error"] and fake.defs[uuid_of("a")] == dom_xml("a")


def test_an_ordinary_refusal_is_not_tried_again(tmp_path):
    fake = FakeLibvirt(dom_xml("a"))
    fake.refuse.add("a")
    result = run(fake, tmp_path)
    assert statuses(result) == {"a": "failed"} and len(fake.defines) == 1
    assert "attempts" not in result["domains"][0]["error"]


# --- faults: a lost connection is reported as one, the rest is kept ------------------------------------

def test_connection_lost_at_define_stops_the_host_and_keeps_what_is_known(tmp_path):
    fake = FakeLibvirt(dom_xml("a"), dom_xml("b"), dom_xml("c"))

    def crash_on_b(f, xml):
        if _name_in(xml) == "b":
            f.alive = False
            raise ConnectionLost("End of file while reading data (fake)")
    fake.on_define.append(crash_on_b)
    result = run(fake, tmp_path)
    assert statuses(result) == {"a": "fixed", "b": "unknown", "c": "not_attempted"}
    assert result["connection_lost"] is True
    b = result["domains"][1]
    assert "whether it was applied is unknown" in b["error"] and b["backup"] in b["error"]
    assert len(backups(tmp_path)) == 2   # no backups for domains never attempted
    assert "connection to libvirt was lost" in _engine.failure_message(result)
    fake.alive, fake.on_define = True, []   # the daemon is back
    again = run(fake, tmp_path)          # the rerun converges
    assert set(statuses(again).values()) <= {"fixed", "compliant"}
    assert statuses(run(fake, tmp_path)) == {"a": "compliant", "b": "compliant", "c": "compliant"}


def test_connection_lost_after_an_accepted_define_is_changed_but_unverified(tmp_path):
    fake = FakeLibvirt(dom_xml("a"))

    def crash(f, _xml):
        f.alive = False
    fake.after_define.append(crash)
    result = run(fake, tmp_path)
    (d,) = result["domains"]
    assert d["status"] == "unknown" and d["changed"] is True
    assert "accepted the define" in d["error"]


# --- isolation of bad input ------------------------------------------------------------------------------

def test_a_definition_that_cannot_be_parsed_fails_that_domain_alone(tmp_path):
    fake = FakeLibvirt(dom_xml("a"), dom_xml("b"))
    fake.defs[uuid_of("a")] = dom_xml("a").replace("</devices>", "</devicez>")
    result = run(fake, tmp_path, check_mode=True)
    assert statuses(result) == {"a": "failed", "b": "drift"}
    assert result["domains"][0]["error"].startswith("cannot be audited: Domain XML is not well-formed")


def test_secrets_never_reach_messages_or_diffs(tmp_path):
    fake = FakeLibvirt(dom_xml("a"))
    fake.normalise = lambda xml: xml.replace("<serial>S-a</serial>", "")
    result = run(fake, tmp_path, diff_mode=True)
    assert SECRET not in repr(result)


def test_unknown_rules_and_empty_requests_are_refused():
    with pytest.raises(InvalidRequest, match="Unknown rule"):
        _rules.build({"nope": {}})
    with pytest.raises(InvalidRequest, match="No rule requested"):
        _rules.build({"aliases": None})


def test_a_dropped_alias_does_not_undo_another_rules_fix_of_the_same_device(tmp_path):
    fake = FakeLibvirt(dom_xml("a"))
    fake.normalise = lambda xml: re.sub(r"\s*<alias name=\"[^\"]+\"/>", "", xml)
    result = run(fake, tmp_path)
    (d,) = result["domains"]
    assert d["status"] == "fixed" and d["changed"] is True
    by_check = {f["check"]: f["status"] for f in result["findings"]}
    assert by_check == {"disk_io": "fixed", "aliases": "skipped"}
    assert "io='threads'" in fake.defs[uuid_of("a")].replace('"', "'")


# --- several domains in flight (workers) -----------------------------------------------------------------

def test_parallel_changes_give_the_sequential_result_with_one_define_each(tmp_path):
    names = ["d" + chr(ord("a") + i) for i in range(12)]   # distinct UUIDs (uuid_of sums the letters)
    one, many = FakeLibvirt(*[dom_xml(n) for n in names]), FakeLibvirt(*[dom_xml(n) for n in names])
    seq = run(one, tmp_path / "one", workers=1)
    par = run(many, tmp_path / "many", workers=4)
    assert sorted(_name_in(x) for x in many.defines) == names          # exactly one define per domain
    assert [d["name"] for d in par["domains"]] == names                 # results in name order
    assert [d["name"] for d in seq["domains"]] == names

    def plain(result):   # everything but the backup paths (other directory)
        return ([{k: v for k, v in d.items() if k != "backup"} for d in result["domains"]], result["findings"],
                result["summary"])
    assert plain(par) == plain(seq)
    assert len(backups(tmp_path / "many")) == 12
    assert {_name_in(x): x for x in one.defines} == {_name_in(x): x for x in many.defines}


def test_parallel_connection_loss_starts_nothing_after_it(tmp_path):
    names = ["d" + chr(ord("a") + i) for i in range(20)]
    fake = FakeLibvirt(*[dom_xml(n) for n in names])
    started = threading.Event()

    def crash_on_dd(f, xml):
        if _name_in(xml) == "dd":
            f.alive = False
            started.set()
            raise ConnectionLost("End of file while reading data (fake)")
    fake.on_define.append(crash_on_dd)
    result = run(fake, tmp_path, workers=4)
    assert started.is_set() and result["connection_lost"] is True
    got = statuses(result)
    assert got["dd"] == "unknown"
    # up to 4 were in flight; every domain that had not started when the loss was seen is not_attempted
    assert set(got.values()) <= {"fixed", "unknown", "not_attempted"}
    assert list(got.values()).count("unknown") <= 4
    assert sum(1 for v in got.values() if v == "not_attempted") >= len(names) - 4 - 4
    defined = {_name_in(x) for x in fake.defines}
    assert all(n in defined for n, v in got.items() if v in ("fixed", "unknown"))
    assert not any(n in defined for n, v in got.items() if v == "not_attempted")
    # every backup belongs to a domain that was reached, and is named in its entry
    named = sorted(os.path.basename(d["backup"]) for d in result["domains"] if d["backup"])
    assert backups(tmp_path) == named
    fake.alive, fake.on_define = True, []
    assert set(statuses(run(fake, tmp_path, workers=4)).values()) <= {"fixed", "compliant"}
    assert set(statuses(run(fake, tmp_path, workers=4)).values()) == {"compliant"}
