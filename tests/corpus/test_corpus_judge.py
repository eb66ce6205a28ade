"""The judge itself: it must catch loss and unreported edits (no daemon; milliseconds).

If these pass, a module that drops an element, changes an attribute it did not report, or reports a
change that did not stick makes ``test_module`` fail.
"""

from __future__ import annotations

import pytest

import _corpuslib as cl

BEFORE = """<domain type='qemu'>
  <name>vfcorpus-x-judge</name>
  <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='http' name='test.img'>
        <host name='example.org' port='80'/>
        <cookies><cookie name='test'>testcookievalue</cookie></cookies>
      </source>
      <target dev='vda' bus='virtio'/>
    </disk>
    <controller type='usb' index='0' model='ich9-ehci1'/>
    <controller type='usb' index='0' model='ich9-uhci1'/>
    <console type='pty'><target type='virtio' port='1'/></console>
    <graphics type='vnc' port='-1' passwd='S3cr3t-p'/>
  </devices>
</domain>
"""

FIXED = [
    {"device": {"path": "/domain/devices/disk[1]"}, "rule": "cache-policy", "status": "fixed",
     "desired": {"cache": "none", "io": "native", "cache_set": True, "io_set": True}},
    {"device": {"path": "/domain/devices/disk[1]"}, "rule": "io-policy", "status": "fixed",
     "desired": {"cache": "none", "io": "native", "cache_set": True, "io_set": True}},
    {"device": {"path": "/domain/devices/disk[1]"}, "rule": "alias-missing", "status": "fixed",
     "desired": {"alias": "ua-disk-x"}},
]


def _edit(xml, fn):
    root = cl.etree.fromstring(xml.encode())
    fn(root)
    return cl.etree.tostring(root, encoding="unicode")


def test_identical_documents_have_no_delta():
    assert cl.diff(BEFORE, BEFORE) == []


def test_reported_changes_applied_are_exactly_the_delta():
    after = cl.apply_reported(BEFORE, FIXED)
    kinds = sorted(d.klass for d in cl.diff(BEFORE, after))
    assert kinds == ["added /domain/devices/disk[network]/alias",
                     "attr-added /domain/devices/disk[network]/driver/@cache",
                     "attr-added /domain/devices/disk[network]/driver/@io"]
    assert cl.reported_present(after, FIXED) == []


@pytest.mark.parametrize("mutation, klass", [
    (lambda r: r.find("devices").remove(r.find("devices/graphics")), "removed /domain/devices/graphics[vnc]"),
    (lambda r: r.find("devices/console/target").set("port", "0"),
     "attr-changed /domain/devices/console[pty]/target[virtio]/@port"),
    (lambda r: r.find("devices/disk/source/cookies/cookie").__setattr__("text", "x"),
     "text-changed /domain/devices/disk[network]/source/cookies/cookie"),
    (lambda r: r.find("devices").append(r.find("devices/controller")),
     "reorder /domain/devices/{controller[usb]}"),
])
def test_loss_and_unreported_edits_are_caught(mutation, klass):
    """What a broken module could leave: the twin (reported edits) differs from it."""
    twin = cl.apply_reported(BEFORE, FIXED)
    broken = _edit(twin, mutation)
    assert klass in {d.klass for d in cl.diff(twin, broken)}


def test_reported_but_missing_change_is_caught():
    after = _edit(cl.apply_reported(BEFORE, FIXED), lambda r: r.find("devices/disk").remove(r.find("devices/disk/alias")))
    assert any("alias ua-disk-x" in p for p in cl.reported_present(after, FIXED))
    after = _edit(cl.apply_reported(BEFORE, FIXED), lambda r: r.find("devices/disk/driver").set("io", "threads"))
    assert any("io=native" in p for p in cl.reported_present(after, FIXED))


def test_unknown_rule_is_a_judge_error():
    with pytest.raises(cl.JudgeError):
        cl.apply_reported(BEFORE, [{"device": {"path": "/domain/devices/disk[1]"}, "rule": "new-rule",
                                    "status": "fixed", "desired": {}}])


def test_secrets_are_found_in_diff_and_output():
    secrets = {s.klass: s.value for s in cl.secrets_of(BEFORE)}
    assert secrets == {"cookie": "testcookievalue", "graphics-passwd": "S3cr3t-p"}
    result = {"changed": True, "findings": [{"message": "vda"}], "diff": [{"before": BEFORE, "after": "x"}]}
    assert cl.found_in("testcookievalue", result) == "diff"
    assert cl.found_in("S3cr3t-p", {"msg": "refused: passwd=S3cr3t-p"}) == "output"
    redacted = BEFORE.replace("testcookievalue", "********").replace("S3cr3t-p", "********")
    assert cl.found_in("testcookievalue", {"diff": [{"before": redacted}]}) is None
    # short values count only as whole values, not inside words
    assert cl.found_in("ns", {"findings": [{"message": "findings"}]}) is None
    assert cl.found_in("ns", {"diff": [{"before": "<domain><env value='ns'/></domain>"}]}) == "diff"
    env = "<domain xmlns:qemu='%s'><qemu:commandline><qemu:env name='DB_PASSWORD' value='pw1'/>" \
          "<qemu:env name='NS' value='ns'/></qemu:commandline></domain>" % cl.QEMU_NS
    assert [(s.klass, s.value) for s in cl.secrets_of(env)] == [("qemu-env", "pw1")]
    assert [(s.klass, s.value) for s in cl.secret_refs(env)] == [("qemu-env-plain", "ns")]


def test_sample_is_deterministic_and_diverse(tmp_path):
    names = ["disk-a.xml", "disk-b.xml", "disk-c.xml", "usb-a.xml", "net-a.xml", "ppc-x.xml"]
    for n in names:
        arch = "ppc64" if n.startswith("ppc") else "x86_64"
        (tmp_path / n).write_text("<domain><os><type arch='%s'>hvm</type></os></domain>" % arch)
    first = cl.select(str(tmp_path), 3)
    assert first == cl.select(str(tmp_path), 3)
    assert {cl.family(f) for f in first} == {"disk", "usb", "net"}
    assert "ppc-x.xml" not in cl.select(str(tmp_path), 10)
    assert cl.select(str(tmp_path), "all") == sorted(names)
