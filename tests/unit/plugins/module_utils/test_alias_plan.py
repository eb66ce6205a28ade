"""_alias.plan_domain / resolve_explicit: collisions, legacy aliases, replace, explicit assignments,
running and transient domains; and the module's own request checks (validate_assignments, check_domains)."""

from __future__ import annotations

import pytest
from lxml import etree

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _alias, _plan, _rules
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import InvalidRequest
from ansible_collections.virtfleet.libvirt.plugins.module_utils._plan import DomainState

from ansible_collections.virtfleet.libvirt.tests.unit._support import check_golden, read_golden

MISSING, INVALID, DUPLICATE, MISMATCH, LIVE = (_alias.RULE_MISSING, _alias.RULE_INVALID, _alias.RULE_DUPLICATE,
                                               _alias.RULE_MISMATCH, _alias.RULE_LIVE)
UUID = "0b6f1c2e-3a4d-4e5f-8a9b-1c2d3e4f5a6b"


# --- tiny libvirt-style domains ---------------------------------------------------------------------------

def disk(target, source=None, serial=None, alias=None, slot=None):
    lines = ["    <disk type='file' device='%s'>" % ("disk" if source else "cdrom"),
             "      <driver name='qemu' type='raw'/>"]
    if source:
        lines.append("      <source file='%s'/>" % source)
    lines.append("      <target dev='%s' bus='%s'/>" % (target, "virtio" if target.startswith("vd") else "sata"))
    if serial:
        lines.append("      <serial>%s</serial>" % serial)
    if alias:
        lines.append("      <alias name='%s'/>" % alias)
    if slot is not None:
        lines.append("      <address type='pci' domain='0x0000' bus='0x%02x' slot='0x00' function='0x0'/>" % slot)
    lines.append("    </disk>")
    return "\n".join(lines)


def nic(mac, network="default", alias=None):
    lines = ["    <interface type='network'>", "      <mac address='%s'/>" % mac,
             "      <source network='%s'/>" % network, "      <model type='virtio'/>"]
    if alias:
        lines.append("      <alias name='%s'/>" % alias)
    lines += ["    </interface>"]
    return "\n".join(lines)


def dom(*devices):
    return "\n".join(["<domain type='kvm'>", "  <name>db01</name>", "  <uuid>%s</uuid>" % UUID, "  <devices>"]
                     + list(devices) + ["  </devices>", "</domain>", ""])


def state(xml, live=None, persistent=True, name="db01", uuid=UUID):
    return DomainState(name=name, uuid=uuid, active=live is not None, persistent=persistent, inactive_xml=xml,
                       live_xml=live, state="running" if live is not None else "shut off")


def plan(xml, live=None, types=_alias.DEFAULT_TYPES, assignments=(), replace=False, persistent=True):
    return _alias.plan_domain(state(xml, live, persistent), types, assignments, replace)


def fix(xml, changes):
    return _plan.apply_edits(xml, _plan.domain_edits(changes))


def aliases(xml):
    root = etree.fromstring(xml.encode())
    return [(el.tag, el.find("alias").get("name") if el.find("alias") is not None else None)
            for el in root.find("devices") if isinstance(el.tag, str)]


def summary(changes):
    return [(c.device["path"].rsplit("/", 1)[1], c.rule, c.current["alias"], c.desired["alias"], c.status,
             bool(c.edits)) for c in changes]


M = "52:54:00:12:34:56"
NET = "ua-net-525400123456"


# --- 3. collisions -----------------------------------------------------------------------------------

def test_derived_colliding_with_another_devices_alias_gets_suffix_2():
    xml = dom(disk("vda", "/i/a.img", alias="ua-disk-sdb"), disk("sdb"))
    changes = plan(xml)
    assert summary(changes) == [("disk[2]", MISSING, None, "ua-disk-sdb-2", "", True)]
    assert changes[0].desired == {"alias": "ua-disk-sdb-2", "basis": "target"}
    assert aliases(fix(xml, changes)) == [("disk", "ua-disk-sdb"), ("disk", "ua-disk-sdb-2")]


def test_three_way_collision_in_document_order():
    xml = dom(nic(M, "a"), nic(M, "b"), nic(M, "c"))
    out = fix(xml, plan(xml))
    assert aliases(out) == [("interface", NET), ("interface", NET + "-2"), ("interface", NET + "-3")]
    # document order decides, not the network name: swap the XML order, the first one still gets the base
    xml2 = dom(nic(M, "c"), nic(M, "a"), nic(M, "b"))
    out2 = fix(xml2, plan(xml2))
    assert aliases(out2) == [("interface", NET), ("interface", NET + "-2"), ("interface", NET + "-3")]
    assert "network=\"c\"" in out2.split(NET + '"')[0]


def test_collision_skips_every_alias_already_in_use():
    xml = dom(nic(M, "a"), disk("vda", "/i/a.img", alias=NET + "-2"), nic(M, "b"), nic(M, "c"))
    out = fix(xml, plan(xml))
    assert aliases(out) == [("interface", NET), ("disk", NET + "-2"), ("interface", NET + "-3"),
                            ("interface", NET + "-4")]


def test_existing_base_alias_on_a_later_device_keeps_it():
    xml = dom(nic(M, "a"), nic(M, "b", alias=NET))
    out = fix(xml, plan(xml))
    assert aliases(out) == [("interface", NET + "-2"), ("interface", NET)]


@pytest.mark.parametrize("replace", [False, True])
def test_rerun_on_output_is_stable(replace):
    xml = dom(disk("vda", "/i/a.img", alias="ua-disk-sdb"), disk("vdb", "/j/a.img", alias="ua-disk-sdb"),
              disk("sdb"), disk("vdc", "/k/c.img", alias="UA-bad"), nic(M, "a"), nic(M, "b"), nic(M, "c", alias="x"))
    out = fix(xml, plan(xml, replace=replace))
    assert plan(out, replace=replace) == []
    assert plan(out, replace=False) == []
    again = fix(out, plan(out, replace=replace))
    assert again == out
    got = [a for _t, a in aliases(out)]
    assert len(set(got)) == len(got) and all(_alias.is_valid(a) for a in got)


def test_duplicate_existing_alias_flags_the_later_device():
    xml = dom(disk("vda", "/i/a.img", alias="ua-disk-root"), disk("vdb", "/i/b.img", alias="ua-disk-root"))
    changes = plan(xml)
    (c,) = changes
    assert c.rule == DUPLICATE and c.device["path"] == "/domain/devices/disk[2]"
    assert c.current == {"alias": "ua-disk-root"} and c.desired["basis"] == "source"
    assert "repeats alias ua-disk-root of an earlier device" in c.message
    assert aliases(fix(xml, changes))[0] == ("disk", "ua-disk-root")


@pytest.mark.parametrize("bad", ["UA-bad", "ua-a.b", "ua-", "virtio-disk0", "ua-a b"])
def test_invalid_existing_alias_is_replaced_in_place(bad):
    xml = dom(disk("vda", "/i/a.img", serial="S1", alias=bad))
    (c,) = plan(xml)
    assert (c.rule, c.current, c.desired) == (INVALID, {"alias": bad}, {"alias": "ua-disk-S1", "basis": "serial"})
    assert "which libvirt ignores" in c.message and repr(bad) in c.message
    out = fix(xml, [c])
    assert out.count("<alias ") == 1 and '<alias name="ua-disk-S1"/>' in out


def test_replace_false_keeps_a_foreign_valid_alias_true_realiases_it():
    xml = dom(disk("vda", "/i/a.img", serial="S1", alias="ua-data"))
    assert plan(xml) == []
    (c,) = plan(xml, replace=True)
    assert (c.rule, c.current["alias"], c.desired, c.status) == (MISMATCH, "ua-data",
                                                                 {"alias": "ua-disk-S1", "basis": "serial"}, "")
    assert c.actionable and "replace: true" in c.message
    assert aliases(fix(xml, [c])) == [("disk", "ua-disk-S1")]


def test_replace_true_frees_the_foreign_alias_for_its_rightful_owner():
    xml = dom(disk("vda", "/i/a.img", alias="ua-disk-sdb"), disk("sdb"))
    out = fix(xml, plan(xml, replace=True))
    assert aliases(out) == [("disk", "ua-disk-a-img-" + _alias._hash8("/i/a.img")), ("disk", "ua-disk-sdb")]


def test_explicit_mismatch_without_replace_is_skipped_with_replace_edited():
    xml = dom(disk("vda", "/i/a.img", serial="S1", alias="ua-data"))
    assign = [(0, {"serial": "S1"}, "ua-vol-1")]
    (c,) = plan(xml, assignments=assign)
    assert (c.rule, c.status, c.edits, c.pending_restart) == (MISMATCH, _plan.SKIPPED, (), False)
    assert c.desired == {"alias": "ua-vol-1", "basis": "aliases"}
    assert "set replace: true to re-alias it" in c.message
    (c,) = plan(xml, assignments=assign, replace=True)
    assert (c.rule, c.status) == (MISMATCH, "") and c.actionable
    assert aliases(fix(xml, [c])) == [("disk", "ua-vol-1")]


def test_explicit_alias_on_alias_less_device_and_derived_ones_avoid_it():
    xml = dom(disk("vda", "/i/a.img"), disk("sdb"))
    changes = plan(xml, assignments=[(0, {"target": "vda"}, "ua-disk-sdb")])
    assert summary(changes) == [("disk[1]", MISSING, None, "ua-disk-sdb", "", True),
                                ("disk[2]", MISSING, None, "ua-disk-sdb-2", "", True)]
    assert changes[0].desired["basis"] == "aliases"


def test_explicit_swap_of_two_aliases():
    xml = dom(disk("vda", "/i/a.img", alias="ua-a"), disk("vdb", "/i/b.img", alias="ua-b"))
    assign = [(0, {"target": "vda"}, "ua-b"), (1, {"target": "vdb"}, "ua-a")]
    assert [c.status for c in plan(xml, assignments=assign)] == [_plan.SKIPPED, _plan.SKIPPED]
    out = fix(xml, plan(xml, assignments=assign, replace=True))
    assert aliases(out) == [("disk", "ua-b"), ("disk", "ua-a")]


def test_explicit_alias_already_carried_by_the_device_is_a_no_op():
    xml = dom(disk("vda", "/i/a.img", alias="ua-vol-1"))
    assert plan(xml, assignments=[(0, {"alias": "ua-vol-1"}, "ua-vol-1")]) == []


def test_skipped_explicit_device_keeps_its_alias_reserved():
    xml = dom(disk("vda", "/i/a.img", alias="ua-disk-sdb"), disk("sdb"))
    changes = plan(xml, assignments=[(0, {"target": "vda"}, "ua-vol-1")])
    out = fix(xml, changes)
    got = [a for _t, a in aliases(out)]
    assert got == ["ua-disk-sdb", "ua-disk-sdb-2"], got   # actual: ['ua-disk-sdb', 'ua-disk-sdb']


def test_explicit_confirmation_of_current_alias_with_legacy_duplicate():
    xml = dom(disk("vda", "/i/a.img", alias="ua-x"), disk("vdb", "/i/b.img", alias="ua-x"))
    without = plan(xml)
    assert [(c.device["path"], c.rule) for c in without] == [("/domain/devices/disk[2]", DUPLICATE)]
    with_request = plan(xml, assignments=[(0, {"target": "vda"}, "ua-x")])
    assert [(c.device["path"], c.rule) for c in with_request] == [("/domain/devices/disk[2]", DUPLICATE)]


OUT_OF_SCOPE = [
    # (device carrying the alias, device_types) - the holder is not among the planned devices
    ("    <interface type='network'>\n      <mac address='52:54:00:00:00:09'/>\n      <source network='default'/>\n"
     "      <alias name='ua-x'/>\n    </interface>", ("disk",)),
    ("    <controller type='pci' index='1' model='pcie-root-port'>\n      <alias name='ua-x'/>\n    </controller>",
     _alias.DEFAULT_TYPES),
    ("    <serial type='pty'>\n      <alias name='ua-x'/>\n    </serial>", _alias.SUPPORTED_TYPES),
]


@pytest.mark.parametrize("holder,types", OUT_OF_SCOPE, ids=["interface-not-in-types", "pci-controller", "serial"])
def test_explicit_alias_carried_by_a_device_outside_device_types_is_refused(holder, types):
    xml = dom(disk("vda", "/i/a.img"), holder)
    with pytest.raises(InvalidRequest, match="already carries it"):
        plan(xml, types=types, assignments=[(0, {"target": "vda"}, "ua-x")])


def test_derived_alias_avoids_aliases_of_devices_outside_device_types():
    xml = dom(disk("vda", "/i/a.img", serial="S1"),
              "    <controller type='pci' index='1' model='pcie-root-port'>\n      <alias name='ua-disk-S1'/>\n"
              "    </controller>")
    out = fix(xml, plan(xml))
    got = [a for _t, a in aliases(out) if a]
    assert len(set(got)) == len(got), got


# --- 4. explicit assignments are validated before anything changes --------------------------------------

def _refused(xml, assignments, types=_alias.DEFAULT_TYPES, replace=False):
    with pytest.raises(InvalidRequest) as err:
        plan(xml, types=types, assignments=assignments, replace=replace)
    return err.value.msg


def test_match_selecting_no_device():
    msg = _refused(dom(disk("vda", "/i/a.img")), [(2, {"serial": "NOPE"}, "ua-v")])
    assert msg.startswith("aliases[2] (domain db01, match serial=NOPE) selects no device of the chosen device_types")
    assert "virtfleet.libvirt.virt_domain_info" in msg and "fix the match" in msg


def test_match_of_a_device_outside_device_types_selects_nothing():
    msg = _refused(dom(disk("vda", "/i/a.img"), nic(M)), [(0, {"mac": M}, "ua-v")], types=("disk",))
    assert "selects no device" in msg


def test_match_selecting_several_devices():
    msg = _refused(dom(nic(M, "a"), nic(M, "b")), [(0, {"mac": M.upper()}, "ua-port-1")])
    assert "aliases[0] (domain db01, match mac=%s) selects 2 devices" % M.upper() in msg
    assert "/domain/devices/interface[1], /domain/devices/interface[2]" in msg
    assert "use a selector that matches exactly one" in msg


def test_same_alias_requested_for_two_devices():
    msg = _refused(dom(disk("vda", "/i/a.img"), disk("vdb", "/i/b.img")),
                   [(0, {"target": "vda"}, "ua-v"), (1, {"target": "vdb"}, "ua-v")])
    assert msg.startswith("aliases[1] (domain db01, match target=vdb): alias ua-v is requested for two devices")
    assert "/domain/devices/disk[1] and /domain/devices/disk[2]" in msg and "unique within a domain" in msg


def test_two_different_aliases_for_the_same_device():
    msg = _refused(dom(disk("vda", "/i/a.img", serial="S1")),
                   [(0, {"target": "vda"}, "ua-v1"), (1, {"serial": "S1"}, "ua-v2")])
    assert msg == ("aliases[1] (domain db01, match serial=S1) assigns ua-v2 to /domain/devices/disk, which is "
                   "already assigned ua-v1.")


@pytest.mark.parametrize("replace", [False, True])
def test_alias_already_carried_by_another_device_that_keeps_it(replace):
    # the holder's alias is its derived one, so it keeps it even with replace
    xml = dom(disk("vda", "/i/a.img"), disk("vdb", "/i/b.img", serial="S2", alias="ua-disk-S2"))
    msg = _refused(xml, [(0, {"target": "vda"}, "ua-disk-S2")], replace=replace)
    assert msg == ("aliases: ua-disk-S2 is requested for /domain/devices/disk[1] in domain db01 but "
                   "/domain/devices/disk[2] already carries it; pick another alias, or assign /domain/devices/disk[2] "
                   "a new one in the same task.")


def test_alias_carried_by_a_device_that_is_realiased_is_free():
    xml = dom(disk("vda", "/i/a.img"), disk("vdb", "/i/b.img", serial="S2", alias="ua-old"))
    out = fix(xml, plan(xml, assignments=[(0, {"target": "vda"}, "ua-old")], replace=True))
    assert aliases(out) == [("disk", "ua-old"), ("disk", "ua-disk-S2")]


@pytest.mark.parametrize("selector", [{}, {"alias": "ua-a", "mac": M}, {"name": "vda"}, "vda", None,
                                      {"target": ""}])
def test_bad_selector(selector):
    msg = _refused(dom(disk("vda", "/i/a.img")), [(0, selector, "ua-v")])
    assert "exactly one of alias, serial, mac, target, source" in msg


def test_match_by_derived_alias_fallback():
    xml = dom(disk("vda", "/i/a.img", serial="S1"))
    (c,) = plan(xml, assignments=[(0, {"alias": "ua-disk-S1"}, "ua-vol-1")])
    assert c.desired == {"alias": "ua-vol-1", "basis": "aliases"}


# --- the module's request checks -------------------------------------------------------------------------

def _item(domain, match, alias):
    return {"domain": domain, "match": match, "alias": alias}


def test_validate_assignments_returns_index_domain_selector_alias():
    got = _rules.validate_assignments([_item("db01", {"serial": "S1"}, "ua-v1"),
                                       _item(UUID, {"mac": M}, "ua-p1")])
    assert got == [(0, "db01", {"serial": "S1"}, "ua-v1"), (1, UUID, {"mac": M}, "ua-p1")]


@pytest.mark.parametrize("alias", ["UA-x", "ua-a.b", "vol-1", "ua-"])
def test_validate_assignments_invalid_alias(alias):
    with pytest.raises(InvalidRequest) as err:
        _rules.validate_assignments([_item("db01", {"serial": "S1"}, "ua-ok"),
                                     _item("db01", {"serial": "S2"}, alias)])
    assert err.value.msg.startswith("aliases[1] (domain db01): alias %r is not a valid libvirt user alias" % alias)
    assert "Example: ua-disk-data01" in err.value.msg


def test_validate_assignments_duplicate_alias_in_one_domain():
    with pytest.raises(InvalidRequest) as err:
        _rules.validate_assignments([_item("db01", {"serial": "S1"}, "ua-v"),
                                     _item("web01", {"serial": "S1"}, "ua-v"),   # other domain: fine
                                     _item("db01", {"serial": "S2"}, "ua-v")])
    assert err.value.msg == ("aliases[2] (domain db01): alias ua-v is requested twice for domain db01 (aliases[0] "
                             "and aliases[2]); aliases must be unique within a domain.")


def test_validate_assignments_bad_selector():
    with pytest.raises(InvalidRequest, match="exactly one of alias, serial, mac, target, source"):
        _rules.validate_assignments([_item("db01", {"serial": "S1", "target": "vda"}, "ua-v")])


def _alias_rule(assignments):
    return _rules.build({"aliases": {"aliases": assignments}})[0]


def test_check_domains_refuses_a_domain_that_is_not_selected():
    rule = _alias_rule([_item("db01", {"target": "vda"}, "ua-v"), _item("tmpl01", {"target": "vda"}, "ua-w")])
    with pytest.raises(InvalidRequest) as err:
        rule.precheck([("web01", "u1"), ("db01", UUID)])
    assert err.value.msg == ("aliases[1]: domain tmpl01 is not among the selected domains (db01, web01). Add it to "
                             "'domains', remove it from 'exclude', or fix the name.")
    with pytest.raises(InvalidRequest, match=r"not among the selected domains \(none\)"):
        rule.precheck([])


def test_check_domains_accepts_names_and_uuids():
    rule = _alias_rule([_item("db01", {"target": "vda"}, "ua-v"), _item(UUID, {"target": "vdb"}, "ua-w")])
    assert rule.precheck([("db01", UUID)]) is None
    assert _rules.names_domain(UUID.upper(), "db01", UUID) and _rules.names_domain(UUID.replace("-", ""), "x", UUID)
    assert not _rules.names_domain(UUID, "db01", "7e0b9a54-1111-4c3a-9d2e-5f6a7b8c9d0e")


# --- 7. running and transient domains ---------------------------------------------------------------------

RUN_IN, RUN_LIVE = "alias-running-in.xml", "alias-running-live.xml"
RUNNING_FINDINGS = [
    ("disk[1]", "virtio-disk0",
     "ua-disk-web02-root-qcow2-%s" % _alias._hash8("/var/lib/libvirt/images/web02-root.qcow2"), "source"),
    ("disk[2]", "scsi0-0-0-1", "ua-disk-SCSI-WEB02-1", "serial"),
    ("interface", "net0", "ua-net-5254005a0102", "mac"),
    ("hostdev", "hostdev0", "ua-hostdev-0000-3b-00-1", "source"),
    ("rng", "rng0", "ua-rng-urandom-%s-1" % _alias._hash8("/dev/urandom"), "source"),
]


def test_running_domain_fix_is_pending_restart():
    xml, live = read_golden(RUN_IN), read_golden(RUN_LIVE)
    changes = plan(xml, live)
    assert [(c.device["path"].rsplit("/", 1)[1], c.desired["alias"], c.desired["basis"]) for c in changes] == [
        (p, a, b) for p, _l, a, b in RUNNING_FINDINGS]
    for c in changes:
        assert (c.rule, c.status, c.pending_restart, c.actionable) == (MISSING, "", True, True)
    out = fix(xml, changes)
    check_golden("alias-running-out.xml", out)


def test_running_domain_already_aliased_reports_live_differs_pending():
    out, live = read_golden("alias-running-out.xml"), read_golden(RUN_LIVE)
    changes = plan(out, live)
    assert [(c.device["path"].rsplit("/", 1)[1], c.current["alias"], c.desired["alias"], c.desired["basis"])
            for c in changes] == RUNNING_FINDINGS
    for c in changes:
        assert (c.rule, c.status, c.pending_restart, c.edits, c.actionable) == (LIVE, _plan.PENDING, True, (), False)
        assert "the running domain still calls it %s" % c.current["alias"] in c.message
        assert "cold boot" in c.message and "a reboot inside the guest is not enough" in c.message
    assert _plan.domain_edits(changes) == ()


def test_after_cold_boot_nothing_is_left():
    out = read_golden("alias-running-out.xml")
    assert plan(out, out) == []


def test_running_domain_with_live_alias_already_right_is_not_pending():
    xml = dom(disk("vda", "/i/a.img", serial="S1"), disk("vdb", "/i/b.img", serial="S2"))
    live = dom(disk("vda", "/i/a.img", serial="S1", alias="ua-disk-S1"), disk("vdb", "/i/b.img", serial="S2"))
    changes = plan(xml, live)
    assert [(c.device["target"], c.pending_restart) for c in changes] == [("vda", False), ("vdb", True)]


def test_live_only_hot_plugged_device_is_not_planned():
    xml, live = read_golden(RUN_IN), read_golden(RUN_LIVE)
    assert "vdb" not in [c.device["target"] for c in plan(xml, live)]


def test_transient_domain_is_reported_skipped_never_edited():
    live = read_golden(RUN_LIVE)
    changes = plan(live, live, persistent=False)
    assert len(changes) == 6           # the five devices plus the hot-plugged disk: all in the one definition
    for c in changes:
        assert (c.status, c.edits, c.pending_restart, c.actionable) == (_plan.SKIPPED, (), False, False)
        assert c.message.endswith("; transient domain (no persistent definition): fix it where it is defined")
    # automatic aliases are not user aliases
    assert {c.rule for c in changes} == {INVALID}


def _cold_booted_live(xml_text):
    """The live XML of ``xml_text`` after a cold boot: user aliases kept, libvirt names the PCI controllers."""
    root = etree.fromstring(xml_text.encode())
    for ctl in root.iterfind("devices/controller"):
        if ctl.get("type") == "pci" and ctl.find("alias") is None:
            alias = etree.SubElement(ctl, "alias")
            alias.set("name", "pcie.0" if ctl.get("index") == "0" else "pci.%s" % ctl.get("index"))
    return etree.tostring(root, encoding="unicode")


def test_cold_booted_domain_with_default_types_is_clean():
    out = read_golden("alias-running-out.xml")
    assert plan(out, _cold_booted_live(out)) == []


def test_cold_booted_domain_with_controllers_is_clean():
    types = _alias.DEFAULT_TYPES + ("controller",)
    xml = read_golden(RUN_IN)
    out = fix(xml, plan(xml, types=types))
    assert plan(out, types=types) == []
    assert [(c.device["kind"], c.rule) for c in plan(out, _cold_booted_live(out), types=types)] == []


@pytest.mark.parametrize("spelling", [UUID.upper(), UUID.replace("-", ""), UUID.replace("-", "").upper()])
def test_assignment_domain_by_any_uuid_spelling(spelling):
    rule = _alias_rule([_item(spelling, {"target": "vda"}, "ua-v")])
    assert rule.precheck([("db01", UUID)]) is None
    assert [c.desired["alias"] for c in rule.plan(state(dom(disk("vda", "/i/a.img")), name="db01"))] == ["ua-v"]


def test_assignment_domain_names_are_exact():
    for other in ("DB01", "db0", "db01 "):
        rule = _alias_rule([_item(other, {"target": "vda"}, "ua-v")])
        with pytest.raises(InvalidRequest, match="is not among the selected domains"):
            rule.precheck([("db01", UUID)])
        assert [c.desired["alias"] for c in rule.plan(state(dom(disk("vda", "/i/a.img")), name="db01"))] != ["ua-v"]


def test_a_usb_controller_with_model_none_gets_no_alias():
    # <controller type='usb' model='none'/> says "no USB controller": libvirt drops an alias on it silently,
    # so planning one would fail (or re-plan) on every run.
    xml = dom("    <controller type='usb' index='0' model='none'/>",
              "    <controller type='usb' index='1' model='qemu-xhci'/>")
    got = [(c.device["path"], c.desired["alias"]) for c in plan(xml, types=("controller",))]
    assert got == [("/domain/devices/controller[2]", "ua-ctl-usb-1")]
