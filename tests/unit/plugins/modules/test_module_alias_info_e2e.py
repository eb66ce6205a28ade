"""virt_device_alias and virt_domain_info end to end on libvirt's test driver, run as Ansible runs
them (subprocess, args file). ``test:///<file>`` gives every open() a fresh copy of the node file,
and its domains run, so every run starts from the same state and fixes are pending a cold boot."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest

from ansible_collections.virtfleet.libvirt.tests.unit._support import run_module, write_node

libvirt = pytest.importorskip("libvirt")

NODE = """<node>
  <domain type='test'>
    <name>web01</name>
    <uuid>5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11</uuid>
    <memory>131072</memory>
    <os><type>hvm</type></os>
    <devices>
      <disk type='file' device='disk'>
        <source file='/var/lib/libvirt/images/web01-root.img'/>
        <target dev='vda' bus='virtio'/>
        <serial>WEB01-ROOT</serial>
      </disk>
      <disk type='file' device='disk'>
        <source file='/var/lib/libvirt/images/web01-data.img'/>
        <target dev='vdb' bus='virtio'/>
      </disk>
      <interface type='network'>
        <mac address='52:54:00:6b:3c:58'/>
        <source network='default'/>
      </interface>
      <interface type='network'>
        <mac address='52:54:00:12:34:56'/>
        <source network='storage'/>
      </interface>
      <interface type='network'>
        <mac address='52:54:00:12:34:56'/>
        <source network='backup'/>
      </interface>
      <channel type='unix'>
        <target type='virtio' name='org.qemu.guest_agent.0'/>
      </channel>
      <rng model='virtio'>
        <backend model='random'>/dev/urandom</backend>
      </rng>
      <graphics type='vnc' port='-1' autoport='yes' passwd='Vnc-s3cr3t'/>
    </devices>
  </domain>
  <domain type='test'>
    <name>db01</name>
    <uuid>0b6f1c2e-3a4d-4e5f-8a9b-1c2d3e4f5a6b</uuid>
    <memory>131072</memory>
    <os><type>hvm</type></os>
    <devices>
      <disk type='file' device='disk'>
        <source file='/var/lib/libvirt/images/db01.img'/>
        <target dev='vda' bus='virtio'/>
        <alias name='ua-disk-root'/>
      </disk>
      <disk type='file' device='disk'>
        <source file='/srv/db01/data.img'/>
        <target dev='vdb' bus='virtio'/>
      </disk>
      <disk type='file' device='cdrom'>
        <target dev='sdb' bus='sata'/>
        <readonly/>
      </disk>
    </devices>
  </domain>
  <domain type='test'>
    <name>app01</name>
    <uuid>3c9d2b7a-6e5f-4a1b-8c2d-9e0f1a2b3c4d</uuid>
    <memory>131072</memory>
    <os><type>hvm</type></os>
    <devices>
      <disk type='file' device='disk'>
        <source file='/var/lib/libvirt/images/app01.img'/>
        <target dev='vda' bus='virtio'/>
        <alias name='ua-disk-sdb'/>
      </disk>
      <disk type='file' device='cdrom'>
        <target dev='sdb' bus='sata'/>
        <readonly/>
      </disk>
    </devices>
  </domain>
  <domain type='test'>
    <name>tmpl01</name>
    <uuid>7e0b9a54-1111-4c3a-9d2e-5f6a7b8c9d0e</uuid>
    <memory>131072</memory>
    <os><type>hvm</type></os>
    <devices>
      <disk type='file' device='disk'>
        <source file='/var/lib/libvirt/images/tmpl01.img'/>
        <target dev='vda' bus='virtio'/>
      </disk>
    </devices>
  </domain>
</node>
"""


def h8(value):
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]


# every alias the default device_types miss, per domain (domains sorted by name), in device order
MISSING = {
    "app01": [("/domain/devices/disk[2]", "ua-disk-sdb-2", "target")],   # vda carries ua-disk-sdb already
    "db01": [("/domain/devices/disk[2]", "ua-disk-data-img-" + h8("/srv/db01/data.img"), "source"),
             ("/domain/devices/disk[3]", "ua-disk-sdb", "target")],
    "tmpl01": [("/domain/devices/disk", "ua-disk-tmpl01-img-" + h8("/var/lib/libvirt/images/tmpl01.img"), "source")],
    "web01": [("/domain/devices/disk[1]", "ua-disk-WEB01-ROOT", "serial"),
              ("/domain/devices/disk[2]", "ua-disk-web01-data-img-" + h8("/var/lib/libvirt/images/web01-data.img"),
               "source"),
              ("/domain/devices/interface[1]", "ua-net-5254006b3c58", "mac"),
              ("/domain/devices/interface[2]", "ua-net-525400123456", "mac"),
              ("/domain/devices/interface[3]", "ua-net-525400123456-2", "mac"),
              ("/domain/devices/channel", "ua-channel-org-qemu-guest_agent-0", "target"),
              ("/domain/devices/rng", "ua-rng-urandom-%s-1" % h8("/dev/urandom"), "source")],
}


@pytest.fixture(scope="module")
def node_uri(tmp_path_factory):
    return write_node(tmp_path_factory, NODE)


@pytest.fixture
def run(tmp_path):
    def run_named(module, check_mode=False, diff=False, **params):
        return run_module(module, tmp_path, check_mode=check_mode, diff=diff, **params)
    return run_named


def _aliases_of(domain_entry):
    return {a["path"]: a["alias"] for a in domain_entry["aliases"]}


# --- virt_device_alias ----------------------------------------------------------------------------------

def test_check_mode_reports_every_missing_alias_and_changes_nothing(run, node_uri, tmp_path):
    backup_dir = str(tmp_path / "bk")
    result = run("virt_device_alias", check_mode=True, diff=True, uri=node_uri, backup_dir=backup_dir)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True
    got = [(f["domain"], f["device"]["path"], f["desired"]["alias"], f["desired"]["basis"]) for f in result["findings"]]
    assert got == [(d, p, a, b) for d in sorted(MISSING) for p, a, b in MISSING[d]]
    for f in result["findings"]:
        assert (f["rule"], f["status"], f["current"], f["pending_restart"]) == ("alias-missing", "drift",
                                                                                {"alias": None}, True)
    assert [d["name"] for d in result["domains"]] == ["app01", "db01", "tmpl01", "web01"]
    for dom in result["domains"]:
        assert dom["changed"] is True and dom["backup"] is None and dom["error"] is None
        # the definition as it is: unchanged
        assert [a for p, a in _aliases_of(dom).items() if p in dict((m[0], m) for m in MISSING[dom["name"]])] == \
            [None] * len(MISSING[dom["name"]])
    assert result["summary"] == {
        "domains_selected": 4, "domains_changed": 4, "findings": 11,
        "by_status": {"drift": 11, "fixed": 0, "failed": 0, "pending": 0, "skipped": 0, "conflict": 0, "vanished": 0,
                      "unknown": 0, "not_attempted": 0, "blocked": 0},
        "by_rule": {"alias-missing": 11}, "pending_restart": 11,
        "by_domain_status": {"compliant": 0, "drift": 4, "fixed": 0, "pending": 0, "skipped": 0, "failed": 0,
                             "conflict": 0, "vanished": 0, "unknown": 0, "not_attempted": 0, "blocked": 0}}
    assert not os.path.exists(backup_dir)
    # the diff shows the <alias> lines, secrets redacted
    web = [d for d in result["diff"] if d["before_header"].startswith("web01 ")][0]
    assert '<alias name="ua-net-525400123456-2"/>' in web["after"] and "ua-net-525400123456-2" not in web["before"]
    assert "Vnc-s3cr3t" not in json.dumps(result)


def test_real_run_fixes_and_reports_aliases(run, node_uri, tmp_path):
    backup_dir = str(tmp_path / "bk")
    result = run("virt_device_alias", uri=node_uri, domains=["web01", "db01"], backup_dir=backup_dir)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True
    assert [(f["domain"], f["device"]["path"], f["desired"]["alias"], f["status"], f["pending_restart"])
            for f in result["findings"]] == [(d, p, a, "fixed", True)
                                             for d in ("db01", "web01") for p, a, _b in MISSING[d]]
    doms = {d["name"]: d for d in result["domains"]}
    assert list(doms) == ["db01", "web01"]
    for name, dom in doms.items():
        aliases = _aliases_of(dom)
        for path, alias, _basis in MISSING[name]:
            assert aliases[path] == alias
        assert all(a is not None and a.startswith("ua-") for a in aliases.values())
        assert dom["changed"] is True and dom["error"] is None
        assert stat.S_IMODE(os.stat(dom["backup"]).st_mode) == 0o600
    assert _aliases_of(doms["db01"])["/domain/devices/disk[1]"] == "ua-disk-root"    # kept
    assert [a["kind"] for a in doms["web01"]["aliases"]] == [
        "disk", "disk", "interface", "interface", "interface", "channel", "rng"]
    with open(doms["web01"]["backup"], encoding="utf-8") as fh:
        saved = fh.read()
    assert "<alias" not in saved and "passwd='Vnc-s3cr3t'" in saved       # the old (SECURE) definition
    assert result["summary"]["by_status"]["fixed"] == 9 and result["summary"]["domains_changed"] == 2


def test_real_run_with_explicit_aliases_and_other_types(run, node_uri, tmp_path):
    result = run("virt_device_alias", uri=node_uri, domains=["web01"], backup_dir=str(tmp_path / "bk"),
                 device_types=["disk"],
                 aliases=[{"domain": "5D3C1A0E-8C1F-4B43-9A57-0D0C6F7B2A11", "match": {"serial": "WEB01-ROOT"},
                           "alias": "ua-vol-root"},
                          {"domain": "web01", "match": {"alias": "ua-disk-web01-data-img-%s"
                                                        % h8("/var/lib/libvirt/images/web01-data.img")},
                           "alias": "ua-vol-data"}])
    assert not result.get("failed"), result.get("msg")
    assert [(f["device"]["target"], f["desired"], f["status"]) for f in result["findings"]] == [
        ("vda", {"alias": "ua-vol-root", "basis": "aliases"}, "fixed"),
        ("vdb", {"alias": "ua-vol-data", "basis": "aliases"}, "fixed")]
    (dom,) = result["domains"]
    assert dom["aliases"] == [{"path": "/domain/devices/disk[1]", "kind": "disk", "alias": "ua-vol-root"},
                              {"path": "/domain/devices/disk[2]", "kind": "disk", "alias": "ua-vol-data"}]


def test_nothing_to_do_is_not_changed(run, node_uri, tmp_path):
    result = run("virt_device_alias", uri=node_uri, domains=["app01"], device_types=["interface"],
                 backup_dir=str(tmp_path / "bk"))
    assert not result.get("failed") and result["changed"] is False and result["findings"] == []
    assert result["domains"][0]["aliases"] == [] and not os.path.exists(str(tmp_path / "bk"))


BAD = [
    (dict(domains=["web01", "nosuch-vm"]), ["nosuch-vm", "Known domains: app01, db01, tmpl01, web01"]),
    (dict(aliases=[{"domain": "web01", "match": {"target": "vdb"}, "alias": "UA-bad"}]),
     ["aliases[0] (domain web01): alias 'UA-bad' is not a valid libvirt user alias"]),
    (dict(aliases=[{"domain": "web01", "match": {"serial": "NOPE"}, "alias": "ua-x"}]),
     ["aliases[0] (domain web01, match serial=NOPE) selects no device of the chosen device_types"]),
    (dict(aliases=[{"domain": "web01", "match": {"mac": "52:54:00:12:34:56"}, "alias": "ua-port-1"}]),
     ["selects 2 devices (/domain/devices/interface[2], /domain/devices/interface[3])"]),
    (dict(aliases=[{"domain": "web01", "match": {"target": "vda"}, "alias": "ua-x"},
                   {"domain": "web01", "match": {"target": "vdb"}, "alias": "ua-x"}]),
     ["alias ua-x is requested twice for domain web01 (aliases[0] and aliases[1])"]),
    (dict(exclude=["tmpl*"], aliases=[{"domain": "tmpl01", "match": {"target": "vda"}, "alias": "ua-x"}]),
     ["aliases[0]: domain tmpl01 is not among the selected domains (app01, db01, web01)"]),
    (dict(domains=["db01"], aliases=[{"domain": "db01", "match": {"target": "vdb"}, "alias": "ua-disk-root"}]),
     ["ua-disk-root is requested for /domain/devices/disk[2] in domain db01 but /domain/devices/disk[1] already "
      "carries it"]),
]


@pytest.mark.parametrize("params,fragments", BAD, ids=[
    "unknown-domain", "invalid-alias", "match-none", "match-several", "duplicate-request", "excluded-domain",
    "alias-carried-by-other"])
def test_bad_input_fails_before_any_change(run, node_uri, tmp_path, params, fragments):
    backup_dir = str(tmp_path / "bk")
    result = run("virt_device_alias", uri=node_uri, backup_dir=backup_dir, **params)
    assert result["failed"] is True and result["changed"] is False
    for fragment in fragments:
        assert fragment in result["msg"]
    assert not os.path.exists(backup_dir)          # nothing was defined: no backup was even needed


def test_alias_with_trailing_newline_fails_before_any_change(run, node_uri, tmp_path):
    backup_dir = str(tmp_path / "bk")
    result = run("virt_device_alias", uri=node_uri, backup_dir=backup_dir, domains=["web01"],
                 aliases=[{"domain": "web01", "match": {"target": "vdb"}, "alias": "ua-x\n"}])
    assert result["failed"] is True
    assert "not a valid libvirt user alias" in result["msg"]
    assert not os.path.exists(backup_dir)


def test_skipped_explicit_alias_does_not_break_the_domain(run, node_uri, tmp_path):
    result = run("virt_device_alias", uri=node_uri, backup_dir=str(tmp_path / "bk"), domains=["app01"],
                 aliases=[{"domain": "app01", "match": {"target": "vda"}, "alias": "ua-vol-1"}])
    assert not result.get("failed"), result.get("msg")
    assert [(f["device"]["target"], f["rule"], f["status"], f["desired"]["alias"]) for f in result["findings"]] == [
        ("vda", "alias-mismatch", "skipped", "ua-vol-1"), ("sdb", "alias-missing", "fixed", "ua-disk-sdb-2")]


def test_replace_true_applies_the_explicit_alias(run, node_uri, tmp_path):
    result = run("virt_device_alias", uri=node_uri, backup_dir=str(tmp_path / "bk"), domains=["app01"], replace=True,
                 aliases=[{"domain": "app01", "match": {"target": "vda"}, "alias": "ua-vol-1"}])
    assert not result.get("failed"), result.get("msg")
    assert [(f["device"]["target"], f["rule"], f["status"], f["desired"]["alias"]) for f in result["findings"]] == [
        ("vda", "alias-mismatch", "fixed", "ua-vol-1"), ("sdb", "alias-missing", "fixed", "ua-disk-sdb")]


# --- virt_domain_info -----------------------------------------------------------------------------------

def test_domain_info_facts_and_lookups(run, node_uri):
    lookups = [{"alias": "ua-disk-root"}, {"alias": "ua-disk-WEB01-ROOT"}, {"mac": "52:54:00:6B:3C:58"},
               {"alias": "ua-net-525400123456-2"}, {"target": "nope"}]
    result = run("virt_domain_info", check_mode=True, uri=node_uri, domains=["web01", "db01"], lookup=lookups)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    assert result["host"]["hypervisor"] == "TEST" and result["host"]["uri"] == node_uri
    assert [d["name"] for d in result["domains"]] == ["db01", "web01"]
    db, web = result["domains"]
    assert {k: web[k] for k in ("uuid", "state", "active", "persistent", "domain_type", "arch")} == {
        "uuid": "5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11", "state": "running", "active": True, "persistent": True,
        "domain_type": "test", "arch": "i686"}
    assert [(d["kind"], d["alias"], d["live"]) for d in db["devices"] if d["kind"] == "disk"] == [
        ("disk", "ua-disk-root", True), ("disk", None, True), ("disk", None, True)]
    vda = db["devices"][0]
    assert (vda["live_alias"], vda["live_differs"], vda["cache"], vda["io"]) == ("ua-disk-root", [], "writeback",
                                                                                 "threads")
    assert db["live_only_devices"] == [] and web["live_only_devices"] == []

    def summary(entry):
        return [(r["matched_by"], r["found_in"], r["count"], [d["path"] for d in r["devices"]])
                for r in entry["lookup"]]
    assert summary(db) == [("alias", "persistent", 1, ["/domain/devices/disk[1]"]), (None, None, 0, []),
                           (None, None, 0, []), (None, None, 0, []), (None, None, 0, [])]
    assert summary(web) == [(None, None, 0, []), ("serial", "persistent", 1, ["/domain/devices/disk[1]"]),
                            ("mac", "persistent", 1, ["/domain/devices/interface[1]"]),
                            ("mac", "persistent", 1, ["/domain/devices/interface[3]"]), (None, None, 0, [])]
    assert [r["selector"] for r in web["lookup"]] == lookups


def test_domain_info_all_domains_sorted_and_not_changed(run, node_uri):
    result = run("virt_domain_info", uri=node_uri, exclude=["tmpl*"])
    assert result["changed"] is False and not result.get("failed")
    assert [d["name"] for d in result["domains"]] == ["app01", "db01", "web01"]
    assert all(d["lookup"] == [] for d in result["domains"])


@pytest.mark.parametrize("params,fragment", [
    (dict(lookup=[{"alias": "ua-x", "target": "vda"}]), "exactly one of alias, serial, mac, target, source"),
    (dict(domains=["nosuch"]), "Known domains: app01, db01, tmpl01, web01"),
])
def test_domain_info_bad_input(run, node_uri, params, fragment):
    result = run("virt_domain_info", uri=node_uri, **params)
    assert result["failed"] is True and result["changed"] is False
    assert fragment in result["msg"]
