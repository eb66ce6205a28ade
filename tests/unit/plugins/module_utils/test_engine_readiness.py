"""The engine with the readiness rules and the host's define blockers, over the fake libvirt of test_engine.

A VNC password longer than 8 characters: libvirt 9.0 and 11.3 refuse every define of such a
definition (measured, docs/generations.md row 1), so check mode must say ``blocked`` - what the
real run will do - and the real run must not send the define that cannot succeed.
"""

from __future__ import annotations

import json
import os

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _engine, _rules
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import DefineFailed
from ansible_collections.virtfleet.libvirt.tests.unit.plugins.module_utils.test_engine import (
    BOTH, FakeLibvirt, dom_xml, statuses,
)

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "snapshots")
LONG = "Vnc-s3cr3t"   # the 10-character password of test_engine.dom_xml
LIBVIRT_9 = {"libvirt": (9, 0, 0), "hypervisor": "QEMU", "hypervisor_version": (7, 2, 0)}
LIBVIRT_7 = {"libvirt": (7, 0, 0), "hypervisor": "QEMU", "hypervisor_version": (5, 2, 0)}


def engine(fake, tmp_path, requested=None, host=None, check_mode=False):
    requested = requested or BOTH
    return _engine.Engine(fake, _rules.build(requested, host=host), check_mode=check_mode,
                          backup_dir=str(tmp_path / "backups"), blockers=_rules.define_blockers(host))


def test_check_mode_says_blocked_where_the_real_run_cannot_define(tmp_path):
    fake = FakeLibvirt(dom_xml("a"), dom_xml("b").replace(LONG, "short"))
    checked = engine(fake, tmp_path, host=LIBVIRT_9, check_mode=True).run()
    real = engine(fake, tmp_path, host=LIBVIRT_9).run()
    assert statuses(checked) == {"a": "blocked", "b": "drift"}
    assert statuses(real) == {"a": "blocked", "b": "fixed"}
    assert [f["status"] for f in checked["findings"] if f["domain"] == "a"] == \
        [f["status"] for f in real["findings"] if f["domain"] == "a"]
    a = real["domains"][0]
    assert "10" in a["error"] and "at most 8" in a["error"] and LONG not in json.dumps(real)
    # the define that cannot succeed is never sent; b's is
    assert len(fake.defines) == 1 and "<name>b</name>" in fake.defines[0]
    assert not real["changed"] or real["domains"][1]["changed"]
    assert a["changed"] is False


def test_libvirt_7_still_takes_the_long_password(tmp_path):
    fake = FakeLibvirt(dom_xml("a"))
    assert statuses(engine(fake, tmp_path, host=LIBVIRT_7).run()) == {"a": "fixed"}
    assert LONG in fake.defs[list(fake.defs)[0]]


def test_a_compliant_domain_with_a_long_password_is_not_blocked(tmp_path):
    # Nothing to define: nothing is refused (the readiness rule reports it for a 9.0+ target).
    fake = FakeLibvirt(dom_xml("a", io="threads", cache="none"))
    result = engine(fake, tmp_path, requested={"disk_io": {}}, host=LIBVIRT_9).run()
    assert statuses(result) == {"a": "compliant"}


def test_a_refused_vnc_password_gets_the_remedy_in_the_failure(tmp_path):
    fake = FakeLibvirt(dom_xml("a"))

    def refuse(_fake, _xml):
        raise DefineFailed("unsupported configuration: VNC password is 10 characters long, only 8 permitted",
                           libvirt_code=67)
    fake.on_define.append(refuse)
    result = engine(fake, tmp_path, host=None).run()   # no host versions: no pre-check, libvirt refuses
    a = result["domains"][0]
    assert a["status"] == "failed"
    assert "only 8 permitted" in a["error"] and "Shorten it to at most 8 characters" in a["error"]


def _snapshot(host):
    with open(os.path.join(DATA, host + ".json"), encoding="utf-8") as fh:
        return json.load(fh)


def test_readiness_runs_in_a_real_run_without_defining_anything(tmp_path):
    fake = FakeLibvirt(dom_xml("a", io="threads", cache="none").replace(
        "<memory", "<os><type arch='x86_64' machine='pc-i440fx-2.0'>hvm</type></os><memory").replace(
        "type='kvm'", "type='qemu'"))
    before = dict(fake.defs)
    result = engine(fake, tmp_path, requested={"upgrade_readiness": {"target": _snapshot("trixie")},
                                               "machine_type": {"target": _snapshot("trixie")}}).run()
    assert fake.defines == [] and fake.defs == before
    assert statuses(result) == {"a": "blocked"}
    assert result["changed"] is False
    readiness = result["domains"][0]["readiness"]
    assert readiness["starts"] is False
    # the long VNC password (10) and the machine type pc-i440fx-2.0 that QEMU 10.0 dropped
    assert sorted(r["code"] for r in readiness["reasons"]) == ["machine_type_not_offered", "vnc_password_too_long"]
    assert {f["check"] for f in result["findings"]} == {"upgrade_readiness", "machine_type"}
    assert result["summary"]["by_status"]["blocked"] == 3


def test_machine_type_groups_see_every_domain_before_planning(tmp_path):
    def machine(name, m):
        return dom_xml(name, io="threads", cache="none").replace(
            "<memory", "<os><type arch='x86_64' machine='%s'>hvm</type></os><memory" % m)
    fake = FakeLibvirt(machine("a", "pc-q35-5.2"), machine("b", "pc-q35-7.2"), machine("c", "pc-q35-7.2"))
    result = engine(fake, tmp_path, requested={"machine_type": {"target": _snapshot("bookworm")}}).run()
    assert statuses(result) == {"a": "skipped", "b": "compliant", "c": "compliant"}
    assert [f["rule"] for f in result["findings"]] == ["machine-type-differs"]


def test_only_the_qemu_driver_refuses_the_long_password(tmp_path):
    # The check is the QEMU driver's own validation; libvirt's test driver (and others) take the password.
    fake = FakeLibvirt(dom_xml("a"))
    host = dict(LIBVIRT_9, hypervisor="Test")
    assert statuses(engine(fake, tmp_path, host=host).run()) == {"a": "fixed"}
