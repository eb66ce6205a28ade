"""_domxml: safe parsing, canonical comparison, differences, redaction, minimal edits."""

from __future__ import annotations

import pytest
from lxml import etree

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _domxml, _plan, _redact, _verify
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import XMLError

from ansible_collections.virtfleet.libvirt.tests.unit._support import read_golden

PASSWD_LINE = "root:x:0:0:"


# --- parse -------------------------------------------------------------------------------------

def _everything(root):
    return _domxml.to_string(root) + "".join(t for t in root.itertext())


def test_parse_does_not_expand_external_entity():
    xml = ('<?xml version="1.0"?>\n<!DOCTYPE domain [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
           '<domain type="kvm"><name>&xxe;</name><description>x&xxe;y</description></domain>')
    root = _domxml.parse(xml)
    assert PASSWD_LINE not in _everything(root)
    assert root.find("name").text is None
    assert _domxml.text(root, "name") is None
    assert PASSWD_LINE not in str(_domxml.canonical(root))


def test_parse_does_not_expand_internal_entity_either():
    root = _domxml.parse('<!DOCTYPE domain [<!ENTITY e "EXPANDED">]><domain><name>&e;</name></domain>')
    assert "EXPANDED" not in "".join(root.itertext())


def test_parse_does_not_load_external_dtd_or_parameter_entities():
    for xml in ('<!DOCTYPE domain SYSTEM "file:///etc/passwd"><domain><name>a</name></domain>',
                '<!DOCTYPE domain [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><domain><name>a</name></domain>'):
        root = _domxml.parse(xml)
        assert PASSWD_LINE not in _everything(root)
        dtd = root.getroottree().docinfo.internalDTD
        assert dtd is None or PASSWD_LINE not in str(dtd)


def test_parse_does_not_expand_billion_laughs():
    lol = ('<!DOCTYPE domain [<!ENTITY a "lollollollollollollollollollol">'
           + "".join('<!ENTITY %s "%s">' % (chr(98 + i), ("&%s;" % chr(97 + i)) * 10) for i in range(8))
           + ']><domain><name>&i;</name></domain>')
    # refused outright (libxml2's amplification limit) or kept unexpanded: never expanded
    try:
        root = _domxml.parse(lol)
    except XMLError as err:
        assert "not well-formed" in err.msg
    else:
        assert len(_domxml.to_string(root)) < 1000


@pytest.mark.parametrize("xml,fragment", [
    ("<node><domain/></node>", "got <node>"),
    ("<network><name>default</name></network>", "got <network>"),
    ("<d:domain xmlns:d='urn:x'/>", "Expected a <domain> document"),
])
def test_parse_rejects_non_domain_root(xml, fragment):
    with pytest.raises(XMLError) as err:
        _domxml.parse(xml)
    assert fragment in err.value.msg


@pytest.mark.parametrize("xml", ["<domain>", "", "<domain></domian>", "not xml"])
def test_parse_rejects_malformed(xml):
    with pytest.raises(XMLError) as err:
        _domxml.parse(xml)
    assert "not well-formed" in err.value.msg


def test_parse_accepts_str_with_encoding_declaration_and_bytes():
    xml = "<?xml version='1.0' encoding='UTF-8'?>\n<domain><title>Caf\u00e9</title></domain>"
    assert _domxml.parse(xml).findtext("title") == "Caf\u00e9"
    assert _domxml.parse(xml.encode("utf-8")).findtext("title") == "Caf\u00e9"


# --- canonical -------------------------------------------------------------------------------

BASE = ("<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
        "<name>a</name><devices><disk type='file' device='disk'><driver name='qemu' cache='none'/>"
        "<target dev='vda' bus='virtio'/></disk><interface type='user'><mac address='52:54:00:00:00:01'/>"
        "</interface></devices><qemu:commandline><qemu:arg value='-S'/></qemu:commandline></domain>")


def test_canonical_ignores_child_order_inside_a_device():
    # libvirt writes a device's children in its own order (<alias> before <address>), so the
    # order of differently named children of one device is not drift; the order of devices is.
    a = BASE
    b = BASE.replace("<driver name='qemu' cache='none'/><target dev='vda' bus='virtio'/>",
                     "<target dev='vda' bus='virtio'/><driver name='qemu' cache='none'/>")
    assert _domxml.canonical(a) == _domxml.canonical(b)
    disk = BASE[BASE.index("<disk "):BASE.index("</disk>") + len("</disk>")]
    nic = BASE[BASE.index("<interface "):BASE.index("</interface>") + len("</interface>")]
    swapped = BASE.replace(disk + nic, nic + disk)
    assert swapped != BASE and _domxml.canonical(swapped) != _domxml.canonical(BASE)


@pytest.mark.parametrize("variant", [
    # whitespace / indentation
    BASE.replace("<name>", "\n  <name>").replace("<devices>", "\n  <devices>\n    "),
    BASE.replace("<name>a</name>", "<name>\n  a  \n</name>"),
    # attribute order and quoting
    BASE.replace("<driver name='qemu' cache='none'/>", '<driver cache="none"  name="qemu" />'),
    BASE.replace("<target dev='vda' bus='virtio'/>", "<target bus='virtio' dev='vda'></target>"),
    # comments anywhere between elements
    BASE.replace("<devices>", "<!-- c1 --><devices><!-- c2 -->").replace("</disk>", "<!-- c3 --></disk>"),
    # namespace prefix names
    BASE.replace("xmlns:qemu=", "xmlns:q=").replace("qemu:commandline", "q:commandline").replace("qemu:arg", "q:arg"),
])
def test_canonical_ignores_formatting(variant):
    assert _domxml.canonical(variant) == _domxml.canonical(BASE)


@pytest.mark.parametrize("variant", [
    BASE.replace("cache='none'", "cache='writeback'"),                      # attribute value
    BASE.replace(" cache='none'", ""),                                    # attribute removed
    BASE.replace("<name>a</name>", "<name>b</name>"),                      # text value
    BASE.replace("<name>a</name><devices>", "<devices>").replace("</devices>", "</devices><name>a</name>"),  # order
    BASE.replace("<mac address='52:54:00:00:00:01'/>",
                 "<ip address='10.0.0.1'/><ip address='10.0.0.2'/>").replace(
        "</interface>", "</interface>").replace("<ip address='10.0.0.1'/><ip address='10.0.0.2'/>",
                                                "<ip address='10.0.0.2'/><ip address='10.0.0.1'/>"),  # same-tag order
    BASE.replace("xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'", "xmlns:qemu='urn:other'"),  # ns URI
    BASE.replace("<qemu:arg value='-S'/>", "<qemu:arg value='-S'/><qemu:arg value='-S'/>"),  # extra child
])
def test_canonical_sees_values_and_order(variant):
    assert _domxml.canonical(variant) != _domxml.canonical(BASE)


def test_canonical_ignores_comment_inside_text_element():
    assert _domxml.canonical("<domain><title><!-- set by ops -->web</title></domain>") == \
        _domxml.canonical("<domain><title>web</title></domain>")


# --- redact ----------------------------------------------------------------------------------

SECRET_XML = """<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>web01</name>
  <description>password rotation is done by ops</description>
  <devices>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw' cache='none'/>
      <auth username='libvirt'>
        <secret type='ceph' uuid='2a5a2f0e-7e5b-4f4e-9e63-3c6f2b0c7c11'/>
      </auth>
      <source protocol='rbd' name='pool/image'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <graphics type='vnc' port='-1' autoport='yes' passwd='Vnc-s3cr3t' passwdValidTo='2030-01-01T00:00:00'/>
    <graphics type='spice' autoport='yes' passwd='Sp1ce-s3cr3t'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-spice'/>
    <qemu:arg value='port=5930,password=Hunter2,disable-ticketing=off'/>
    <qemu:arg value='-vnc'/>
    <qemu:arg value=':1,passwd=Other-pw'/>
  </qemu:commandline>
</domain>
"""


def test_redact_hides_passwords_and_keeps_everything_else():
    out = _redact.redact_xml(SECRET_XML)
    for secret in ("Vnc-s3cr3t", "Sp1ce-s3cr3t", "Hunter2", "Other-pw"):
        assert secret not in out
    root = etree.fromstring(out.encode())
    graphics = root.findall("devices/graphics")
    assert [g.get("passwd") for g in graphics] == [_redact.REDACTED, _redact.REDACTED]
    args = [a.get("value") for a in root.iter("{http://libvirt.org/schemas/domain/qemu/1.0}arg")]
    assert args == ["-spice", "port=5930,password=%s,disable-ticketing=off" % _redact.REDACTED,
                    "-vnc", ":1,passwd=%s" % _redact.REDACTED]
    # everything but the secret values is unchanged
    restored = out.replace(_redact.REDACTED, "@")
    original = SECRET_XML
    for secret in ("Vnc-s3cr3t", "Sp1ce-s3cr3t", "Hunter2", "Other-pw"):
        original = original.replace(secret, "@")
    assert _domxml.canonical(restored) == _domxml.canonical(original)
    assert graphics[0].get("passwdValidTo") == "2030-01-01T00:00:00"
    assert root.find("devices/disk/auth/secret").get("uuid") == "2a5a2f0e-7e5b-4f4e-9e63-3c6f2b0c7c11"
    assert root.findtext("description") == "password rotation is done by ops"


def test_redact_golden_fixture_only_touches_passwd():
    xml = read_golden("native-writeback-in.xml")
    out = _redact.redact_xml(xml)
    assert "Vnc-s3cr3t" not in out
    (diff,) = _verify.compare(_domxml.parse(xml), _domxml.parse(out), shown=_redact.shown)
    # messages never show a secret, not even the one that differs
    assert diff["element"].startswith("graphics") and diff["what"] == "attribute passwd"
    assert diff["before"] == diff["after"] == "********"


def test_redact_without_secrets_is_semantically_identity():
    xml = read_golden("native-none-unchanged-in.xml").replace(" passwd='Vnc-s3cr3t'", "")
    assert _domxml.canonical(_redact.redact_xml(xml)) == _domxml.canonical(xml)


def test_redact_hides_qemu_secret_object_data():
    xml = ("<domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><qemu:commandline>"
           "<qemu:arg value='-object'/><qemu:arg value='secret,id=vnc0-secret,data=Hunter2'/>"
           "<qemu:arg value='-vnc'/><qemu:arg value=':1,password-secret=vnc0-secret'/>"
           "</qemu:commandline></domain>")
    assert "Hunter2" not in _redact.redact_xml(xml)


# --- ensure_child / set_attrs --------------------------------------------------------------

DISK = """<domain>
  <devices>
    <disk type='file' device='disk'>
      <source file='/a.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'/>
    <interface type='user'>
      <mac address='52:54:00:00:00:01'/>
    </interface>
  </devices>
</domain>"""


def test_ensure_child_first_is_indented_like_siblings():
    root = _domxml.parse(DISK)
    disk = root.find("devices/disk")
    drv = _domxml.ensure_child(disk, "driver", first=True)
    drv.set("name", "qemu")
    assert _domxml.to_string(root) == DISK.replace(
        "    <disk type='file' device='disk'>\n      <source",
        "    <disk type='file' device='disk'>\n      <driver name='qemu'/>\n      <source").replace("'", '"')


def test_ensure_child_last_is_indented_like_siblings():
    root = _domxml.parse(DISK)
    _domxml.ensure_child(root.find("devices/disk"), "boot").set("order", "1")
    assert _domxml.to_string(root) == DISK.replace(
        "      <target dev='vda' bus='virtio'/>\n    </disk>",
        "      <target dev='vda' bus='virtio'/>\n      <boot order='1'/>\n    </disk>").replace("'", '"')


def test_ensure_child_returns_existing_child_unchanged():
    root = _domxml.parse(DISK)
    disk = root.find("devices/disk")
    assert _domxml.ensure_child(disk, "target", first=True) is disk.find("target")
    assert _domxml.to_string(root) == DISK.replace("'", '"')


def test_ensure_child_of_empty_element_not_last():
    root = _domxml.parse(DISK)
    empty = root.findall("devices/disk")[1]
    _domxml.ensure_child(empty, "driver", first=True).set("name", "qemu")
    assert _domxml.to_string(root) == DISK.replace(
        "    <disk type='file' device='disk'/>\n",
        "    <disk type='file' device='disk'>\n      <driver name='qemu'/>\n    </disk>\n").replace("'", '"')


def test_ensure_child_of_empty_last_element():
    xml = "<domain>\n  <devices>\n    <interface type='user'/>\n  </devices>\n</domain>"
    root = _domxml.parse(xml)
    _domxml.ensure_child(root.find("devices/interface"), "model").set("type", "virtio")
    assert _domxml.to_string(root) == (
        '<domain>\n  <devices>\n    <interface type="user">\n      <model type="virtio"/>\n'
        '    </interface>\n  </devices>\n</domain>')


def test_set_attrs_sets_removes_and_keeps_order():
    root = _domxml.parse("<domain><driver name='qemu' type='raw' cache='writeback' io='native'/></domain>")
    drv = root.find("driver")
    _domxml.set_attrs(drv, (("io", "threads"), ("cache", None), ("discard", "unmap"), ("missing", None)))
    assert list(drv.attrib.items()) == [("name", "qemu"), ("type", "raw"), ("io", "threads"), ("discard", "unmap")]


# --- devices / identity ------------------------------------------------------------------

def test_devices_paths_and_identity_on_golden():
    root = _domxml.parse(read_golden("cache-none-mixed-in.xml"))
    devs = _domxml.devices(root)
    kinds = [el.tag for _p, el in devs]
    assert kinds[:5] == ["disk"] * 5 and "emulator" not in kinds
    paths = [p for p, _el in devs]
    assert paths[:5] == ["/domain/devices/disk[%d]" % i for i in range(1, 6)]
    for path, el in devs:
        assert _domxml.find_device(root, path) is el
    ident = _domxml.identity(devs[0][1], devs[0][0])
    assert ident["target"] == "vda" and ident["serial"] == "WEB01-ROOT" and ident["alias"] == "ua-disk-root"
    assert ident["address"] == "0000:04:00.0" and ident["device"] == "disk"
    nic = [el for _p, el in devs if el.tag == "interface"][0]
    assert _domxml.identity(nic)["mac"] == "52:54:00:6b:3c:58"
    lun = _domxml.identity(devs[3][1])
    assert lun["source"] == "/dev/mapper/mpatha"
    assert lun["address"] == "drive:controller=0:bus=0:target=0:unit=0"


# --- apply_edits keeps everything it does not edit -----------------------------------------

def _native_edit(xml):
    from ansible_collections.virtfleet.libvirt.plugins.module_utils import _diskio
    changes = _diskio.plan_domain(_plan.DomainState("d", "u", False, True, xml))
    return _plan.apply_edits(xml, _plan.domain_edits(changes))


def test_apply_edits_unknown_device_path_fails():
    with pytest.raises(XMLError) as err:
        _plan.apply_edits(DISK, (_plan.Edit("/domain/devices/disk[9]", "driver", (("io", "threads"),)),))
    assert "/domain/devices/disk[9]" in err.value.msg


def test_apply_edits_no_edits_returns_text_untouched():
    xml = "<?xml version='1.0'?>\n<!-- header -->\n" + DISK + "\n"
    assert _plan.apply_edits(xml, ()) is xml
