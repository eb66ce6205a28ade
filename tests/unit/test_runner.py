"""_runner.run_policy with a fake adapter: one code path for check mode and real runs."""

from __future__ import annotations

import fnmatch
import os
import re
import stat

import pytest

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _backup, _diskio, _plan
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import (
    DefineFailed, DomainNotFound, InvalidRequest, VerificationFailed,
)
from ansible_collections.virtfleet.libvirt.plugins.module_utils._plan import DomainState
from ansible_collections.virtfleet.libvirt.plugins.module_utils._runner import failure_message, run_policy, verify


def dom_xml(name, disks, passwd="Vnc-s3cr3t"):
    """A small libvirt-formatted domain; ``disks`` are (target, cache, io) with None = unset."""
    out = ["<domain type='kvm'>", "  <name>%s</name>" % name,
           "  <uuid>%s</uuid>" % uuid_of(name), "  <devices>"]
    for i, (target, cache, io) in enumerate(disks):
        attrs = "".join(" %s='%s'" % (k, v) for k, v in (("cache", cache), ("io", io)) if v)
        out += ["    <disk type='file' device='disk'>",
                "      <driver name='qemu' type='qcow2'%s discard='unmap'/>" % attrs,
                "      <source file='/img/%s-%s.qcow2'/>" % (name, target),
                "      <target dev='%s' bus='virtio'/>" % target,
                "      <address type='pci' domain='0x0000' bus='0x%02x' slot='0x00' function='0x0'/>" % (i + 4),
                "    </disk>"]
    out += ["    <graphics type='vnc' port='-1' autoport='yes' passwd='%s'/>" % passwd, "  </devices>",
            "</domain>", ""]
    return "\n".join(out)


def uuid_of(name):
    return "00000000-0000-4000-8000-%012x" % (sum(map(ord, name)) * 1000 + len(name))


class FakeAdapter:
    """In-memory stand-in for _adapter.Adapter with the same select/read/apply/reread contract.

    ``transform(name, xml)`` plays libvirt's part on define (e.g. dropping an attribute);
    ``fail_define`` names domains whose define libvirt refuses.
    """

    def __init__(self, domains):
        # name -> dict(active, persistent, inactive, live)
        self.doms = {name: dict(spec) for name, spec in domains.items()}
        self.calls = []
        self.fail_define = set()
        self.transform = None
        self.live_follows = False   # True: the running domain picks the new definition up at once

    def select(self, names=None, exclude=None):
        self.calls.append(("select", tuple(names or ()), tuple(exclude or ())))
        if names:
            missing = [n for n in names if n not in self.doms]
            if missing:
                raise DomainNotFound("Domain(s) not found: %s" % ", ".join(missing), missing=missing)
            chosen = list(dict.fromkeys(names))
        else:
            chosen = sorted(self.doms)
        return [n for n in chosen if not any(fnmatch.fnmatchcase(n, p) for p in exclude or ())]

    def read(self, name):
        self.calls.append(("read", name))
        d = self.doms[name]
        return DomainState(name=name, uuid=uuid_of(name), active=d.get("active", False),
                           persistent=d.get("persistent", True), inactive_xml=d["inactive"],
                           live_xml=d.get("live") if d.get("active") else None)

    def reread(self, state):
        return self.read(state.name)

    def apply(self, state, patched_xml, verify_cb, backup_dir=None):
        self.calls.append(("apply", state.name))
        backup = _backup.write_backup(backup_dir, state.name, state.uuid, state.inactive_xml)
        if state.name in self.fail_define:
            raise DefineFailed("libvirt refused the patched definition of %s: unsupported configuration. "
                               "Nothing was changed." % state.name, libvirt_code=67, backup=backup)
        stored = self.transform(state.name, patched_xml) if self.transform else patched_xml
        self.doms[state.name]["inactive"] = stored
        if self.live_follows and self.doms[state.name].get("active"):
            self.doms[state.name]["live"] = stored
        new_state = self.reread(state)
        problems = verify_cb(new_state)
        if problems:
            self.doms[state.name]["inactive"] = state.inactive_xml
            raise VerificationFailed("After redefining %s, libvirt's definition differs from the plan: %s. "
                                     "The previous definition was restored." % (state.name, "; ".join(problems)),
                                     problems=problems, backup=backup)
        return backup, new_state

    def applied(self):
        return [c[1] for c in self.calls if c[0] == "apply"]


def planner(io="keep", cache="keep"):
    return lambda state: _diskio.plan_domain(state, want_io=io, want_cache=cache)


def report(xml):
    return {"disks": _diskio.disk_report(xml)}


def fleet():
    return FakeAdapter({
        "alpha": dict(inactive=dom_xml("alpha", [("vda", "writeback", "native"), ("vdb", "unsafe", "native"),
                                                 ("vdc", "none", "native")])),
        "bravo": dict(inactive=dom_xml("bravo", [("vda", "none", "threads"), ("vdb", None, "native")])),
        "charlie": dict(inactive=dom_xml("charlie", [("vda", "directsync", "native"), ("vdb", None, None)])),
    })


BAD = [("alpha", "vda"), ("alpha", "vdb"), ("bravo", "vdb")]


def _where(findings):
    return [(f["domain"], f["device"]["target"]) for f in findings]


# --- check mode ------------------------------------------------------------------------------

def test_check_mode_reports_every_deviation_and_changes_nothing(tmp_path):
    fake = fleet()
    before = {n: d["inactive"] for n, d in fake.doms.items()}
    backup_dir = str(tmp_path / "never-created")
    result = run_policy(fake, planner(), check_mode=True, diff_mode=True, backup_dir=backup_dir, report=report)

    assert fake.applied() == []
    assert {n: d["inactive"] for n, d in fake.doms.items()} == before
    assert not os.path.exists(backup_dir)
    assert _where(result["findings"]) == BAD
    assert {f["status"] for f in result["findings"]} == {_plan.DRIFT}
    assert {f["rule"] for f in result["findings"]} == {_diskio.RULE_NATIVE}
    assert result["changed"] is True
    assert result["summary"]["by_status"] == {"drift": 3, "fixed": 0, "failed": 0, "pending": 0, "skipped": 0}
    assert result["summary"]["domains_selected"] == 3 and result["summary"]["domains_changed"] == 2
    assert [(d["name"], d["changed"], d["findings"], d["backup"]) for d in result["domains"]] == [
        ("alpha", True, 2, None), ("bravo", True, 1, None), ("charlie", False, 0, None)]
    # domains[].disks is the definition as it is after the run: unchanged in check mode ...
    assert [d["io"] for d in result["domains"][0]["disks"]] == ["native", "native", "native"]
    # ... while findings[].desired says what the fix would set
    assert [f["desired"]["io"] for f in result["findings"]] == ["threads", "threads", "threads"]
    assert len(result["diff"]) == 2


def test_check_mode_diff_redacts_passwords_and_shows_the_fix():
    result = run_policy(fleet(), planner(), check_mode=True, diff_mode=True)
    diff = result["diff"][0]
    assert diff["before_header"].startswith("alpha")
    for side in ("before", "after"):
        assert "Vnc-s3cr3t" not in diff[side]
        assert 'passwd="********"' in diff[side]
    assert diff["before"].count('io="native"') == 3 and diff["after"].count('io="native"') == 1
    assert diff["after"].count('io="threads"') == 2


def test_no_diff_key_without_diff_mode():
    assert "diff" not in run_policy(fleet(), planner(), check_mode=True)


def test_check_mode_keeps_preset_statuses():
    fake = FakeAdapter({
        "tmp": dict(inactive=dom_xml("tmp", [("vda", "writeback", "native")]), active=True, persistent=False,
                    live=dom_xml("tmp", [("vda", "writeback", "native")])),
        "run": dict(inactive=dom_xml("run", [("vda", "writeback", "threads")]), active=True,
                    live=dom_xml("run", [("vda", "writeback", "native")])),
    })
    result = run_policy(fake, planner(), check_mode=True)
    assert [(f["domain"], f["rule"], f["status"], f["pending_restart"]) for f in result["findings"]] == [
        ("run", _diskio.RULE_LIVE, _plan.PENDING, True), ("tmp", _diskio.RULE_NATIVE, _plan.SKIPPED, False)]
    assert result["changed"] is False
    assert result["summary"]["pending_restart"] == 1


# --- real runs -------------------------------------------------------------------------------

def test_real_run_applies_once_per_changed_domain(tmp_path):
    fake = fleet()
    old_alpha = fake.doms["alpha"]["inactive"]
    backup_dir = str(tmp_path / "backups")
    result = run_policy(fake, planner(), backup_dir=backup_dir, report=report)

    assert fake.applied() == ["alpha", "bravo"]
    assert _where(result["findings"]) == BAD
    assert {f["status"] for f in result["findings"]} == {_plan.FIXED}
    assert result["changed"] is True and failure_message(result) is None
    assert [d["changed"] for d in result["domains"]] == [True, True, False]
    # the fake "libvirt" now holds the fixed definitions
    assert _diskio.plan_domain(fake.read("alpha")) == []
    assert _diskio.plan_domain(fake.read("bravo")) == []
    # a 0600 backup of each old definition, in a 0700 directory
    alpha_backup = result["domains"][0]["backup"]
    assert os.path.dirname(alpha_backup) == backup_dir
    assert stat.S_IMODE(os.stat(backup_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(alpha_backup).st_mode) == 0o600
    with open(alpha_backup, encoding="utf-8") as fh:
        assert fh.read() == old_alpha
    assert [d["io"] for d in result["domains"][0]["disks"]] == ["threads", "threads", "native"]


def test_second_run_on_fixed_state_changes_nothing(tmp_path):
    fake = fleet()
    run_policy(fake, planner(), backup_dir=str(tmp_path))
    fake.calls.clear()
    again = run_policy(fake, planner(), backup_dir=str(tmp_path / "unused"), diff_mode=True)
    assert again["changed"] is False
    assert again["findings"] == [] and again["diff"] == []
    assert fake.applied() == []
    assert not os.path.exists(str(tmp_path / "unused"))


def test_running_domain_fixed_reports_pending_restart_then_pending(tmp_path):
    live = dom_xml("run", [("vda", "writeback", "native"), ("vdb", "none", "native")])
    fake = FakeAdapter({"run": dict(inactive=live, active=True, live=live)})
    result = run_policy(fake, planner(), backup_dir=str(tmp_path))
    assert [(f["rule"], f["status"], f["pending_restart"]) for f in result["findings"]] == [
        (_diskio.RULE_NATIVE, _plan.FIXED, True)]
    again = run_policy(fake, planner(), backup_dir=str(tmp_path))
    assert again["changed"] is False
    assert [(f["device"]["target"], f["rule"], f["status"], f["pending_restart"]) for f in again["findings"]] == [
        ("vda", _diskio.RULE_LIVE, _plan.PENDING, True)]


def test_pending_restart_is_taken_from_the_state_after_the_fix(tmp_path):
    live = dom_xml("run", [("vda", "writeback", "native")])
    fake = FakeAdapter({"run": dict(inactive=live, active=True, live=live)})
    assert run_policy(fake, planner(), check_mode=True)["findings"][0]["pending_restart"] is True
    fake.live_follows = True
    result = run_policy(fake, planner(), backup_dir=str(tmp_path))
    assert [(f["status"], f["pending_restart"]) for f in result["findings"]] == [(_plan.FIXED, False)]
    assert result["summary"]["pending_restart"] == 0


def test_define_failure_fails_only_that_domain(tmp_path):
    fake = fleet()
    fake.fail_define.add("bravo")
    old_bravo = fake.doms["bravo"]["inactive"]
    result = run_policy(fake, planner(), backup_dir=str(tmp_path), diff_mode=True, report=report)

    assert fake.applied() == ["alpha", "bravo"]
    by_dom = {}
    for f in result["findings"]:
        by_dom.setdefault(f["domain"], set()).add(f["status"])
    assert by_dom == {"alpha": {_plan.FIXED}, "bravo": {_plan.FAILED}}
    bravo_finding = [f for f in result["findings"] if f["domain"] == "bravo"][0]
    assert "FAILED: libvirt refused the patched definition of bravo" in bravo_finding["message"]
    assert fake.doms["bravo"]["inactive"] == old_bravo
    entry = {d["name"]: d for d in result["domains"]}
    assert entry["bravo"]["changed"] is False and entry["bravo"]["error"].startswith("libvirt refused")
    assert entry["bravo"]["backup"] and os.path.exists(entry["bravo"]["backup"])
    assert [d["io"] for d in entry["bravo"]["disks"]] == ["threads", "native"]   # unchanged definition
    assert entry["alpha"]["changed"] is True and entry["alpha"]["error"] is None
    assert result["changed"] is True and result["summary"]["domains_changed"] == 1
    assert result["summary"]["by_status"]["failed"] == 1 and result["summary"]["by_status"]["fixed"] == 2
    assert [d["before_header"].split()[0] for d in result["diff"]] == ["alpha"]
    msg = failure_message(result)
    assert msg.startswith("1 of 3 domain(s) could not be fixed: bravo: libvirt refused")


def test_planner_exception_aborts_before_any_apply(tmp_path):
    fake = fleet()

    def exploding(state):
        if state.name == "bravo":
            raise RuntimeError("planner bug")
        return _diskio.plan_domain(state)

    with pytest.raises(RuntimeError, match="planner bug"):
        run_policy(fake, exploding, backup_dir=str(tmp_path / "b"))
    assert fake.applied() == []
    assert not os.path.exists(str(tmp_path / "b"))


def test_bad_backup_dir_aborts_before_any_apply_but_not_in_check_mode():
    fake = fleet()
    with pytest.raises(InvalidRequest, match="backup_dir must be an absolute path"):
        run_policy(fake, planner(), backup_dir="relative/dir")
    assert fake.applied() == []
    assert run_policy(fake, planner(), check_mode=True, backup_dir="relative/dir")["changed"] is True


def test_unknown_domain_fails_before_reading(tmp_path):
    fake = fleet()
    with pytest.raises(DomainNotFound):
        run_policy(fake, planner(), domains=["alpha", "zulu"], backup_dir=str(tmp_path))
    assert [c[0] for c in fake.calls] == ["select"]


def test_selection_and_exclude_are_passed_to_the_adapter():
    fake = fleet()
    result = run_policy(fake, planner(), domains=["bravo", "alpha"], exclude=["al*"], check_mode=True)
    assert fake.calls[0] == ("select", ("bravo", "alpha"), ("al*",))
    assert [d["name"] for d in result["domains"]] == ["bravo"]


# --- verification --------------------------------------------------------------------------

def test_unplanned_difference_after_define_fails_and_restores(tmp_path):
    fake = fleet()
    old = {n: d["inactive"] for n, d in fake.doms.items()}
    # the fake "libvirt" silently drops discard= from bravo's disks on define
    fake.transform = lambda name, xml: re.sub(r' discard="unmap"', "", xml) if name == "bravo" else xml
    result = run_policy(fake, planner(), backup_dir=str(tmp_path))
    entry = {d["name"]: d for d in result["domains"]}
    assert "discard" in entry["bravo"]["error"] and "'unmap' -> None" in entry["bravo"]["error"]
    assert fake.doms["bravo"]["inactive"] == old["bravo"]          # restored
    assert {f["status"] for f in result["findings"] if f["domain"] == "bravo"} == {_plan.FAILED}
    assert {f["status"] for f in result["findings"] if f["domain"] == "alpha"} == {_plan.FIXED}
    assert "bravo" in failure_message(result)


def test_verify_flags_unplanned_difference():
    xml = dom_xml("v", [("vda", "writeback", "threads")])
    dropped = xml.replace(" discard='unmap'", "")
    problems = verify(DomainState("v", uuid_of("v"), False, True, dropped), xml, planner())
    assert len(problems) == 1
    assert "disk" in problems[0] and problems[0].endswith("/@discard: 'unmap' -> None")


def test_verify_flags_convergence_failure():
    # libvirt kept exactly what we sent, but the plan still wants to change it: it did not converge
    xml = dom_xml("v", [("vda", "writeback", "native")])
    problems = verify(DomainState("v", uuid_of("v"), False, True, xml), xml, planner())
    assert problems == ["the plan did not converge: vda: io=native with cache=writeback is invalid "
                        "(QEMU falls back to threads, blockdev and libvirt reject it); moved to io=threads"]


def test_verify_accepts_reformatted_but_equal_definition():
    xml = dom_xml("v", [("vda", "writeback", "threads")])
    reformatted = xml.replace("'", '"').replace("\n", "\n  ")
    assert verify(DomainState("v", uuid_of("v"), False, True, reformatted), xml, planner()) == []


def test_failure_message_none_when_all_good():
    assert failure_message({"domains": [{"name": "a", "error": None}]}) is None
