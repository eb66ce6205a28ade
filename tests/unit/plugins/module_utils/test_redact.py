"""_redact: every class of secret in libvirt domain XML is replaced, everything else is kept.

One test per class (docs/secrets.md), with XML in the shapes libvirt 9.0 formats
(src/conf/domain_conf.c, src/qemu/qemu_domain.c) or accepts (docs/formatdomain.rst). Each
checks three things: the value is gone from redact_xml's output, the document is otherwise
identical (same elements, attributes, order, text), and secret_values finds the value.
"""

from __future__ import annotations

import ast
import os
import re

import pytest
from hypothesis import given, strategies as st
from lxml import etree

from ansible_collections.virtfleet.libvirt.plugins.module_utils._redact import (
    REDACTED, redact_tree, redact_uri, redact_xml, scrub, secret_name, secret_values, shown,
)

QEMU = "http://libvirt.org/schemas/domain/qemu/1.0"
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "..", "..", "..", "plugins", "module_utils", "_redact.py")


def domain(body, ns=""):
    return ("<domain type='kvm'%s>\n  <name>vm1</name>\n  <uuid>5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a00</uuid>\n"
            "%s\n</domain>" % (ns, body))


QNS = " xmlns:qemu='%s'" % QEMU


def _parser():
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, strip_cdata=False)


def structure(xml):
    """Every node with its attribute names in order (values left out)."""
    root = etree.fromstring(xml.encode(), _parser())
    out = []
    for el in root.iter():
        tag = el.tag if isinstance(el.tag, str) else "#%s" % el.tag.__name__
        out.append((tag, tuple(el.attrib.keys()) if isinstance(el.tag, str) else ()))
    return out


def assert_redacted(xml, secrets):
    """The secrets are gone, secret_values finds them, and the output is the input with exactly
    those values replaced by REDACTED."""
    out = redact_xml(xml)
    for s in secrets:
        assert s not in out, (s, out)
    found = secret_values(xml)
    assert set(secrets) <= found, (set(secrets) - found)
    expected = xml
    for s in sorted(secrets, key=len, reverse=True):
        expected = expected.replace(s, REDACTED)
    assert out == etree.tostring(etree.fromstring(expected.encode(), _parser()), encoding="unicode")
    assert structure(out) == structure(xml)
    assert redact_xml(out) == out  # idempotent
    return out


def assert_untouched(xml):
    out = redact_xml(xml)
    assert out == etree.tostring(etree.fromstring(xml.encode(), _parser()), encoding="unicode")
    assert secret_values(xml) == set()
    return out


# --- what VIR_DOMAIN_XML_SECURE reveals --------------------------------------------------------

def test_vnc_password_virDomainGraphicsAuthDefFormatAttr():
    xml = domain("""  <devices>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' keymap='de' passwd='Vnc-s3cr3t' passwdValidTo='2030-01-01T00:00:00' connected='keep'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
  </devices>""")
    out = assert_redacted(xml, ["Vnc-s3cr3t"])
    g = etree.fromstring(out).find("devices/graphics")
    assert g.get("passwd") == REDACTED
    assert (g.get("passwdValidTo"), g.get("keymap"), g.get("connected")) == ("2030-01-01T00:00:00", "de", "keep")


def test_spice_password():
    xml = domain("""  <devices>
    <graphics type='spice' autoport='yes' passwd='Sp1ce-pw'>
      <listen type='address'/>
      <channel name='main' mode='secure'/>
      <image compression='off'/>
    </graphics>
  </devices>""")
    assert_redacted(xml, ["Sp1ce-pw"])


def test_graphics_password_of_one_character_and_flag_like_values_are_redacted_too():
    xml = domain("<devices><graphics type='vnc' passwd='x'/><graphics type='spice' passwd='on'/></devices>")
    out = redact_xml(xml)
    assert [g.get("passwd") for g in etree.fromstring(out).iter("graphics")] == [REDACTED, REDACTED]
    assert secret_values(xml) == {"x", "on"}


HTTP_DISK = """  <devices>
    <disk type='network' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source protocol='http' name='url_path' query='foo=bar&amp;baz=flurb'>
        <host name='hostname' port='80'/>
        <cookies>
          <cookie name='test'>C00kie-value</cookie>
          <cookie name='session'>$ess10n=AbC;</cookie>
        </cookies>
        <readahead size='65536'/>
        <timeout seconds='6'/>
      </source>
      <target dev='hde' bus='ide' tray='open'/>
      <readonly/>
    </disk>
  </devices>"""


def test_http_disk_cookies_virDomainDiskSourceFormatNetworkCookies():
    out = assert_redacted(domain(HTTP_DISK), ["C00kie-value", "$ess10n=AbC;"])
    root = etree.fromstring(out)
    assert [c.get("name") for c in root.iter("cookie")] == ["test", "session"]
    assert root.find("devices/disk/source").get("query") == "foo=bar&baz=flurb"  # not secret-like


def test_https_cookies_in_backing_store_and_mirror():
    # virDomainDiskSourceFormat formats backing stores and block-copy mirrors too (live XML);
    # the backing chain's cookies come from a json: backing name (storage_source_backingstore.c)
    xml = domain("""  <devices>
    <disk type='network' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source protocol='https' name='top.qcow2'>
        <host name='h1' port='443'/>
        <ssl verify='no'/>
        <cookies><cookie name='a'>TopCookie1</cookie></cookies>
      </source>
      <backingStore type='network' index='1'>
        <format type='raw'/>
        <source protocol='https' name='base.img'>
          <host name='h2' port='443'/>
          <cookies><cookie name='b'>BackingCookie2</cookie></cookies>
        </source>
        <backingStore/>
      </backingStore>
      <mirror type='network' job='copy'>
        <format type='raw'/>
        <source protocol='https' name='copy.img'><host name='h3'/><cookies><cookie name='c'>MirrorCookie3</cookie></cookies></source>
      </mirror>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>""")
    assert_redacted(xml, ["TopCookie1", "BackingCookie2", "MirrorCookie3"])


# --- secrets users put elsewhere ----------------------------------------------------------------

def test_qemu_commandline_secret_object_password_and_rbd_key():
    xml = domain("""  <qemu:commandline>
    <qemu:arg value='-object'/>
    <qemu:arg value='secret,id=sec0,data=c2VjcmV0LWRhdGE=,format=base64'/>
    <qemu:arg value='-spice'/>
    <qemu:arg value='port=5930,password=Hunter2,,x,disable-ticketing=off'/>
    <qemu:arg value='-vnc'/>
    <qemu:arg value=':1,password=on'/>
    <qemu:arg value='-drive'/>
    <qemu:arg value='file=rbd:pool/img:id=admin:key=AQBRbdKeyZZ==:auth_supported=cephx,if=none,id=d1'/>
    <qemu:arg value='-object'/>
    <qemu:arg value='{"qom-type":"secret","id":"sec1","data":"JsonData1","format":"raw"}'/>
    <qemu:arg value='-drive'/>
    <qemu:arg value='driver=iscsi,transport=tcp,portal=10.0.0.1,target=iqn.x:t,lun=0,user=bob,password-secret=sec0'/>
    <qemu:arg value='--password'/>
    <qemu:arg value='Positional-pw'/>
  </qemu:commandline>""", QNS)
    out = assert_redacted(xml, ["c2VjcmV0LWRhdGE=", "Hunter2,,x", "AQBRbdKeyZZ==", "JsonData1", "Positional-pw"])
    args = [a.get("value") for a in etree.fromstring(out).iter("{%s}arg" % QEMU)]
    assert args[1] == "secret,id=sec0,data=%s,format=base64" % REDACTED
    assert args[3] == "port=5930,password=%s,disable-ticketing=off" % REDACTED
    assert args[5] == ":1,password=on"  # a switch, not a secret
    assert args[7] == "file=rbd:pool/img:id=admin:key=%s:auth_supported=cephx,if=none,id=d1" % REDACTED
    assert args[11].endswith("user=bob,password-secret=sec0")  # a reference to a secret object


def test_qemu_env_secret_names_and_normal_variables():
    xml = domain("""  <qemu:commandline>
    <qemu:env name='LANG' value='C'/>
    <qemu:env name='PWD' value='/var/lib/libvirt'/>
    <qemu:env name='SSH_AUTH_SOCK' value='/run/ssh.sock'/>
    <qemu:env name='DB_PASSWORD' value='EnvPw1'/>
    <qemu:env name='API_TOKEN' value='EnvTok2'/>
    <qemu:env name='AWS_SECRET_ACCESS_KEY' value='EnvKey3'/>
    <qemu:env name='SPICE_PASSWD' value='EnvPw4'/>
    <qemu:env name='https_proxy' value='http://proxyuser:ProxyPw5@proxy:3128/'/>
  </qemu:commandline>""", QNS)
    out = assert_redacted(xml, ["EnvPw1", "EnvTok2", "EnvKey3", "EnvPw4", "ProxyPw5"])
    env = {e.get("name"): e.get("value") for e in etree.fromstring(out).iter("{%s}env" % QEMU)}
    assert env["LANG"] == "C" and env["PWD"] == "/var/lib/libvirt" and env["SSH_AUTH_SOCK"] == "/run/ssh.sock"
    assert env["https_proxy"] == "http://proxyuser:%s@proxy:3128/" % REDACTED


def test_qemu_override_property_with_secret_name():
    xml = domain("""  <qemu:override>
    <qemu:device alias='ua-net0'>
      <qemu:frontend>
        <qemu:property name='x-secret-token' type='string' value='PropTok1'/>
        <qemu:property name='romfile' type='string' value='/usr/share/ipxe.rom'/>
      </qemu:frontend>
    </qemu:device>
  </qemu:override>
  <qemu:deprecation behavior='omit'/>""", QNS)
    assert_redacted(xml, ["PropTok1"])


def test_bhyve_and_xen_commandline_args():
    xml = domain("""  <bhyve:commandline xmlns:bhyve='http://libvirt.org/schemas/domain/bhyve/1.0'>
    <bhyve:arg value='-s 3,virtio-net,tap0'/>
    <bhyve:arg value='-o vnc.password=BhyvePw1'/>
  </bhyve:commandline>
  <xen:commandline xmlns:xen='http://libvirt.org/schemas/domain/xen/1.0'>
    <xen:arg value='-vnc'/>
    <xen:arg value=':0,password=XenPw2'/>
  </xen:commandline>""")
    assert_redacted(xml, ["BhyvePw1", "XenPw2"])


META = """  <metadata>
    <app:config xmlns:app='urn:example:app' owner='ops' api_key='AttrKey1'>
      <app:password>ElemPw2</app:password>
      <app:setting name='db_password' value='PairPw3'/>
      <app:setting name='color' value='blue'/>
      <app:entry key='token'>PairTok4</app:entry>
      <app:note>connect with password=InlinePw5 or Authorization: Bearer BearerTok6</app:note>
      <app:json>{"user": "svc", "secret": "JsonSec7", "port": 5432}</app:json>
      <app:dsn>postgres://svc:DsnPw8@db.example:5432/app</app:dsn>
    </app:config>
    <fleet:owner xmlns:fleet='https://virtfleet.example/xmlns/owner/1'>
      <fleet:team id='web'>frontend</fleet:team>
    </fleet:owner>
  </metadata>"""


def test_metadata_credentials():
    out = assert_redacted(domain(META), ["AttrKey1", "ElemPw2", "PairPw3", "PairTok4", "InlinePw5",
                                         "BearerTok6", "JsonSec7", "DsnPw8"])
    root = etree.fromstring(out)
    assert root.find(".//{urn:example:app}setting[@name='color']").get("value") == "blue"
    assert root.find(".//{https://virtfleet.example/xmlns/owner/1}team").text == "frontend"
    assert "Authorization: Bearer %s" % REDACTED in out


def test_metadata_cdata_stays_cdata():
    xml = domain("""  <metadata><app:c xmlns:app='urn:x'><![CDATA[token: CdataTok1 <raw>]]></app:c></metadata>""")
    out = redact_xml(xml)
    assert "CdataTok1" not in out and "<![CDATA[token: %s <raw>]]>" % REDACTED in out
    assert secret_values(xml) == {"CdataTok1"}


def test_unnamespaced_metadata_content_from_a_hand_written_file():
    xml = domain("<metadata><creds><password>PlainPw1</password><user>bob</user></creds></metadata>")
    out = assert_redacted(xml, ["PlainPw1"])
    assert "<user>bob</user>" in out


def test_description_title_kernel_cmdline_and_sysinfo():
    xml = domain("""  <title>db, admin password: TitlePw1</title>
  <description>password rotation is done by ops; vault token=DescTok2</description>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <kernel>/boot/vmlinuz</kernel>
    <cmdline>console=ttyS0 inst.rootpw=CmdPw3 inst.repo=http://repo:RepoPw4@mirror/el9</cmdline>
  </os>
  <sysinfo type='smbios'>
    <system><entry name='manufacturer'>Fedora</entry><entry name='serial'>SER-1</entry></system>
    <oemStrings><entry>myappname:some arbitrary data</entry><entry>cloud-init password=OemPw5</entry></oemStrings>
  </sysinfo>
  <sysinfo type='fwcfg'>
    <entry name='opt/com.example/api-token'>FwCfgTok6</entry>
    <entry name='opt/com.coreos/config' file='/var/lib/ignition.ign'/>
  </sysinfo>""")
    out = assert_redacted(xml, ["TitlePw1", "DescTok2", "CmdPw3", "RepoPw4", "OemPw5", "FwCfgTok6"])
    root = etree.fromstring(out)
    assert root.findtext("description").startswith("password rotation is done by ops")
    assert root.find("sysinfo/oemStrings/entry").text == "myappname:some arbitrary data"
    assert root.find("sysinfo/system/entry[@name='serial']").text == "SER-1"


def test_network_source_query_tokens():
    query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&amp;X-Amz-Credential=AKIA/Cred1&amp;X-Amz-Signature=Sig2abc&amp;X-Amz-Expires=300"
    xml = domain("""  <devices>
    <disk type='network' device='cdrom'>
      <source protocol='https' name='bucket/x.iso' query='%s'>
        <host name='s3.example' port='443'/>
      </source>
      <target dev='sda' bus='sata'/>
    </disk>
    <disk type='network' device='cdrom'>
      <source protocol='http' name='iso/y.iso?token=NameTok3&amp;v=2'><host name='h'/></source>
      <target dev='sdb' bus='sata'/>
    </disk>
  </devices>""" % query)
    out = assert_redacted(xml, ["AKIA/Cred1", "Sig2abc", "NameTok3"])
    assert "X-Amz-Expires=300" in out and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in out


def test_comments():
    xml = domain("  <!-- root password=CommentPw1, see wiki -->\n  <devices><!-- token: CommentTok2 --></devices>")
    assert_redacted(xml, ["CommentPw1", "CommentTok2"])


def test_uri_credentials_anywhere():
    xml = domain("""  <qemu:commandline>
    <qemu:arg value='-drive'/>
    <qemu:arg value='file=https://dl:UriPw1@images.example/a.img,format=raw,readonly=on'/>
  </qemu:commandline>
  <devices><interface type='network'><source network='default'/><mac address='52:54:00:aa:bb:cc'/></interface></devices>""",
                 QNS)
    assert_redacted(xml, ["UriPw1"])


def test_password_attribute_on_another_core_element_takes_the_slow_path():
    xml = domain("<devices><input type='passthrough' bus='virtio' password='OddPw1'/></devices>")
    assert_redacted(xml, ["OddPw1"])


def test_lxc_and_other_foreign_top_level_elements():
    xml = domain("""  <lxc:namespace xmlns:lxc='http://libvirt.org/schemas/domain/lxc/1.0'>
    <lxc:sharenet type='netns' value='red'/>
  </lxc:namespace>
  <vendor:agent xmlns:vendor='urn:vendor'><vendor:auth secret='VendorSec1'/></vendor:agent>""")
    out = assert_redacted(xml, ["VendorSec1"])
    assert "value=\"red\"" in out


# --- what must stay untouched ---------------------------------------------------------------------

def test_references_to_secrets_and_ordinary_values_stay():
    xml = domain("""  <metadata>
    <fleet:owner xmlns:fleet='https://virtfleet.example/xmlns/owner/1'><fleet:ticket>OPS-1234</fleet:ticket></fleet:owner>
  </metadata>
  <description>password rotation is done by ops</description>
  <devices>
    <disk type='file' device='disk'>
      <source file='/var/lib/libvirt/images/data=1,key=2@snap.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <encryption format='luks'><secret type='passphrase' uuid='0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f'/></encryption>
    </disk>
    <disk type='network' device='disk'>
      <auth username='libvirt'><secret type='ceph' usage='client.libvirt secret'/></auth>
      <source protocol='rbd' name='pool/image'><host name='mon1' port='6789'/></source>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <graphics type='vnc' port='-1' autoport='yes' passwdValidTo='2030-01-01T00:00:00' keymap='en-us'/>
    <tpm model='tpm-crb'><backend type='emulator' version='2.0'><encryption secret='6dd3e4a5-1d76-44ce-961f-f119f5aad935'/></backend></tpm>
    <serial type='tcp'><source mode='bind' host='127.0.0.1' service='4555'/><protocol type='telnet'/></serial>
  </devices>
  <seclabel type='dynamic' model='selinux' relabel='yes'/>
  <qemu:commandline>
    <qemu:env name='LANG' value='C'/>
    <qemu:arg value='-global'/>
    <qemu:arg value='ICH9-LPC.disable_s3=1'/>
  </qemu:commandline>""", QNS)
    assert_untouched(xml)


def test_real_golden_domain_only_loses_the_vnc_password():
    with open(os.path.join(HERE, "..", "..", "golden", "cache-none-mixed-in.xml")) as fh:
        xml = fh.read()
    assert_redacted(xml, ["Vnc-s3cr3t"])
    assert secret_values(xml) == {"Vnc-s3cr3t"}


def test_parser_is_safe_and_keeps_comments_and_declaration_free_output():
    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE domain [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
           '<domain type="kvm"><name>&xxe;</name><!-- c --><devices><graphics type="vnc" passwd="P1"/></devices></domain>')
    out = redact_xml(xml)
    assert "root:" not in out and "P1" not in out and "<!-- c -->" in out
    assert redact_xml(xml.encode()) == out


def test_not_well_formed_text_is_scrubbed_not_echoed():
    out = redact_xml("<domain><graphics passwd='Broken1'><cookie name='a'>Broken2</cookie>")
    assert "Broken1" not in out and "Broken2" not in out
    assert secret_values("<domain") == set()
    assert redact_xml(None) is None


def test_redact_tree_in_place_and_secret_values_of_an_element():
    root = etree.fromstring(domain(HTTP_DISK).encode())
    disk = root.find("devices/disk")
    assert secret_values(disk) == {"C00kie-value", "$ess10n=AbC;"}
    assert "C00kie-value" in etree.tostring(disk, encoding="unicode")  # secret_values copies
    assert redact_tree(disk) is disk
    assert "C00kie-value" not in etree.tostring(root, encoding="unicode")
    copy = etree.fromstring(domain("<devices><graphics type='vnc' passwd='T1'/></devices>").encode())
    redact_tree(copy)
    assert copy.find("devices/graphics").get("passwd") == REDACTED


# --- scrub, shown, redact_uri, secret_name -------------------------------------------------------

def test_scrub_free_text():
    msg = ("XML error: <graphics type='vnc' passwd='Vnc1'/> <cookie name='s'>Cv2</cookie> "
           "<qemu:env name='DB_PASSWORD' value='Ev3'/> <qemu:env name='LANG' value='C'/> "
           "qemu+ssh://root:Up4@hv1/system secret,id=s,data=Dd5== \"api_key\": \"Jk6\"")
    out = scrub(msg)
    for s in ("Vnc1", "Cv2", "Ev3", "Up4", "Dd5==", "Jk6"):
        assert s not in out
    assert "value='C'" in out and "root:%s@hv1" % REDACTED in out


def test_scrub_given_secrets_longest_first_and_short_ones_only_as_words():
    out = scrub("failed: value abcdef then abcd, also ab and cab", secrets={"abcd", "abcdef", "ab"})
    assert out == "failed: value %s then %s, also %s and cab" % (REDACTED, REDACTED, REDACTED)
    assert scrub(None) is None and scrub("nothing here") == "nothing here"


def test_scrub_with_secret_values_of_a_document():
    xml = domain(HTTP_DISK)
    err = "unsupported configuration: cookie value C00kie-value for 'test' ($ess10n=AbC;)"
    out = scrub(err, secret_values(xml))
    assert "C00kie-value" not in out and "$ess10n=AbC;" not in out


def test_shown():
    env = "{%s}env" % QEMU
    arg = "{%s}arg" % QEMU
    assert shown("passwd", "x", "graphics") == REDACTED
    assert shown("passwdValidTo", "2030-01-01T00:00:00", "graphics") == "2030-01-01T00:00:00"
    assert shown("file", "/img/data=1.img", "source") == "/img/data=1.img"
    assert shown("query", "a=1&token=t", "source") == "a=1&token=%s" % REDACTED
    assert shown("", "CookieV", "cookie") == REDACTED
    assert shown("", "CookieV", path="/domain/devices[1]/disk[1]/source[1]/cookies[1]/cookie[1]") == REDACTED
    assert shown("value", "C", env, attrs={"name": "LANG"}) == "C"
    assert shown("value", "tok", env, attrs={"name": "API_TOKEN"}) == REDACTED
    assert shown("value", "unknown", env) == REDACTED  # without the name, assume the worst
    assert shown("value", "secret,id=s,data=abc", path="/domain/{%s}commandline[1]/{%s}arg[2]" % (QEMU, QEMU)) \
        == "secret,id=s,data=%s" % REDACTED
    assert shown("value", "-vnc", arg) == "-vnc"
    assert shown("", "hunter2", "{urn:x}password") == REDACTED
    assert shown("owner", "ops", "{urn:x}config") == "ops"
    assert shown("api_key", "k", "{urn:x}config") == REDACTED
    assert shown("", "a password: x", "description") == "a password: %s" % REDACTED
    assert shown("name", "vm1", "domain") == "vm1"
    assert shown("", "x password=y") == "x password=%s" % REDACTED  # no context: free text
    assert shown("passwd", None) is None


def test_redact_uri():
    assert redact_uri("qemu+ssh://root:S3cr3t@hv1/system") == "qemu+ssh://root:%s@hv1/system" % REDACTED
    assert redact_uri("qemu+ssh://root@hv1/system?keyfile=/root/.ssh/id") == "qemu+ssh://root@hv1/system?keyfile=/root/.ssh/id"
    assert redact_uri("qemu:///system") == "qemu:///system"
    assert redact_uri("https://u:p@ss:w@rd@host/x?token=t&a=1#f") == "https://u:%s@host/x?token=%s&a=1#f" % (REDACTED, REDACTED)
    assert redact_uri(None) is None


@pytest.mark.parametrize("name", ["DB_PASSWORD", "passwd", "api-token", "X-Amz-Signature", "sig", "SSH_KEY",
                                  "client_secret", "{urn:x}apiKey", "app:Passphrase", "rootpw", "psk"])
def test_secret_names(name):
    assert secret_name(name)


@pytest.mark.parametrize("name", ["LANG", "PWD", "keymap", "passwdValidTo", "password-secret", "key-secret",
                                  "keyid", "PASSWORD_FILE", "SSH_AUTH_SOCK", "tls-creds", "monkey", "bypass", "", None])
def test_not_secret_names(name):
    assert not secret_name(name)


def test_module_is_pure():
    tree = ast.parse(open(SOURCE).read())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert names <= {"__future__", "re", "lxml"}, names


# --- properties -----------------------------------------------------------------------------------

secret_text = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=10, max_size=16).map(lambda s: "Zq" + s)
plain = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 ./_-", min_size=0, max_size=12)


@st.composite
def secret_domain(draw):
    """A domain with a random selection of secret classes, ordinary content between them."""
    secrets = []

    def s():
        value = draw(secret_text)
        secrets.append(value)
        return value

    parts = []
    kinds = draw(st.lists(st.sampled_from(["vnc", "spice", "cookie", "arg", "env", "meta", "query", "desc",
                                           "comment", "uri", "plain", "file"]), min_size=1, max_size=8))
    devices, qemu, top = [], [], []
    for kind in kinds:
        if kind == "vnc":
            devices.append("<graphics type='vnc' port='-1' passwd='%s'/>" % s())
        elif kind == "spice":
            devices.append("<graphics type='spice' autoport='yes' passwd='%s'><listen type='address'/></graphics>" % s())
        elif kind == "cookie":
            devices.append("<disk type='network' device='cdrom'><source protocol='https' name='%s'><host name='h'/>"
                           "<cookies><cookie name='c'>%s</cookie></cookies></source><target dev='sda'/></disk>"
                           % (draw(plain).replace(" ", "") or "p", s()))
        elif kind == "arg":
            qemu.append("<qemu:arg value='-object'/><qemu:arg value='secret,id=s%d,data=%s'/>" % (len(qemu), s()))
        elif kind == "env":
            qemu.append("<qemu:env name='%s' value='%s'/>" % (draw(st.sampled_from(["PASSWORD", "X_TOKEN", "API_KEY"])), s()))
        elif kind == "meta":
            top.append("<metadata><m:x xmlns:m='urn:m'><m:secret>%s</m:secret><m:y>%s</m:y></m:x></metadata>" % (s(), draw(plain)))
        elif kind == "query":
            devices.append("<disk type='network'><source protocol='http' name='a' query='v=1&amp;token=%s'/></disk>" % s())
        elif kind == "desc":
            top.append("<description>%s password=%s</description>" % (draw(plain), s()))
        elif kind == "comment":
            top.append("<!-- %s token: %s -->" % (draw(plain).replace("-", "_"), s()))
        elif kind == "uri":
            qemu.append("<qemu:env name='HTTP_PROXY' value='http://u:%s@proxy:3128'/>" % s())
        elif kind == "plain":
            qemu.append("<qemu:env name='LANG' value='%s'/>" % draw(plain))
        else:
            devices.append("<disk type='file'><source file='/img/%s.qcow2'/></disk>" % draw(plain).replace(" ", ""))
    body = "".join(top) + "<devices>%s</devices>" % "".join(devices)
    if qemu:
        body += "<qemu:commandline>%s</qemu:commandline>" % "".join(qemu)
    return domain(body, QNS), secrets


@given(secret_domain())
def test_property_no_secret_survives_and_nothing_else_changes(case):
    xml, secrets = case
    out = assert_redacted(xml, secrets)
    assert secret_values(xml) == set(secrets)
    leak = "; ".join(secrets)
    assert all(s not in scrub("libvirt said: " + leak, secret_values(xml)) for s in secrets)
    assert not re.search(r"Zq[A-Z0-9]{10}", out)


@given(plain, plain)
def test_property_plain_content_is_identity(a, b):
    xml = domain("<description>%s</description><devices><disk type='file'><source file='/i/%s'/></disk></devices>"
                 "<qemu:commandline><qemu:env name='LANG' value='%s'/></qemu:commandline>" % (a, b.replace(" ", ""), a), QNS)
    assert_untouched(xml)
