"""_verify: libvirt-aware comparison of what was sent with what libvirt kept."""

from __future__ import annotations

import pytest

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _domxml, _redact, _verify
from ansible_collections.virtfleet.libvirt.plugins.module_utils._plan import Edit

DOM = """<domain type='kvm'>
  <name>a</name>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native'/>
      <source file='/img/a.img'/>
      <target dev='vda' bus='virtio'/>
      <alias name='ua-disk-a'/>
    </disk>
    <controller type='usb' index='0' model='ich9-ehci1'/>
    <controller type='usb' index='0' model='ich9-uhci1'><master startport='0'/></controller>
    <controller type='pci' index='0' model='pcie-root'/>
    <console type='pty'><target type='virtio' port='0'/></console>
    <graphics type='vnc' port='-1' autoport='yes' passwd='Vnc-s3cr3t'/>
  </devices>
</domain>"""


def cmp(a, b):
    return _verify.compare(_domxml.parse(a), _domxml.parse(b), shown=_redact.shown)


def losses(a, b):
    return [d for d in cmp(a, b) if not d["normalisation"]]


@pytest.mark.parametrize("variant", [
    DOM.replace("\n    ", "\n"),                                               # whitespace
    DOM.replace("<driver name='qemu' type='raw' cache='none' io='native'/>",
                '<driver io="native" cache="none" type="raw" name="qemu"/>'),  # attribute order, quoting
    DOM.replace("<devices>", "<devices><!-- c -->"),                           # comments
])
def test_formatting_is_no_difference(variant):
    assert cmp(DOM, variant) == []


def test_usb_companions_are_paired_by_type_index_and_model_not_position():
    ehci = "<controller type='usb' index='0' model='ich9-ehci1'/>"
    uhci = "<controller type='usb' index='0' model='ich9-uhci1'><master startport='0'/></controller>"
    swapped = DOM.replace(ehci + "\n    " + uhci, uhci + "\n    " + ehci)
    assert swapped != DOM and cmp(DOM, swapped) == []


def test_a_dropped_alias_names_the_element_and_an_xpath_that_selects_it():
    (d,) = cmp(DOM, DOM.replace("\n      <alias name='ua-disk-a'/>", ""))
    assert d["kind"] == "dropped" and d["normalisation"] is False
    assert _verify.describe(d).startswith("disk vda alias=ua-disk-a: element <alias> dropped")
    (el,) = _domxml.parse(DOM).getroottree().xpath(d["path"])
    assert el.tag == "alias"


def test_a_dropped_alias_on_a_usb_controller_names_that_controller():
    sent = DOM.replace("<controller type='usb' index='0' model='ich9-ehci1'/>",
                       "<controller type='usb' index='0' model='ich9-ehci1'><alias name='ua-ctl-usb-0'/></controller>")
    (d,) = losses(sent, DOM)
    assert d["element"] == "controller type=usb index=0 model=ich9-ehci1 alias=ua-ctl-usb-0"


def test_changed_dropped_and_added_attributes():
    new = DOM.replace(" io='native'", " discard='unmap'").replace("cache='none'", "cache='writeback'")
    got = {(d["what"], d["kind"], d["normalisation"]) for d in cmp(DOM, new)}
    assert got == {("attribute io", "dropped", False), ("attribute cache", "changed", False),
                   ("attribute discard", "added", True)}


def test_values_libvirt_assigns_itself_are_normalisation():
    new = DOM.replace("<target type='virtio' port='0'/>", "<target type='virtio' port='1'/>")
    (d,) = cmp(DOM, new)
    assert d["normalisation"] is True and d["element"].startswith("console")


def test_an_element_libvirt_adds_is_normalisation_one_it_drops_is_a_loss():
    added = DOM.replace("</devices>", "  <memballoon model='virtio'/>\n  </devices>")
    assert [d["kind"] for d in cmp(DOM, added)] == ["added"] and losses(DOM, added) == []
    assert [d["kind"] for d in losses(added, DOM)] == ["dropped"]


def test_secrets_are_never_shown_in_differences():
    new = DOM.replace("Vnc-s3cr3t", "Other-s3cr3t")
    text = " ".join(_verify.describe(d) for d in cmp(DOM, new))
    assert "graphics" in text and "s3cr3t" not in text


def test_missing_edits_finds_an_alias_libvirt_did_not_keep():
    sent = _domxml.parse(DOM)
    edits = (Edit("/domain/devices/disk", "alias", (("name", "ua-disk-a"),)),
             Edit("/domain/devices/disk", "driver", (("io", "native"),)))
    assert _verify.missing_edits(edits, sent, _domxml.parse(DOM)) == []
    after = _domxml.parse(DOM.replace("\n      <alias name='ua-disk-a'/>", ""))
    ((edit, why),) = _verify.missing_edits(edits, sent, after)
    assert edit.child == "alias" and "ua-disk-a" in why


def test_drop_edits_removes_only_the_added_child():
    sent = _domxml.parse(DOM)
    _verify.drop_edits(sent, [Edit("/domain/devices/disk", "alias", (("name", "ua-disk-a"),))])
    assert sent.find("devices/disk/alias") is None and sent.find("devices/disk/driver") is not None
    assert cmp(_domxml.to_string(sent), DOM.replace("\n      <alias name='ua-disk-a'/>", "")) == []
