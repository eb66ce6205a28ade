"""Realistic virtfleet_audit_result facts of a small fleet, shared by the report tests (no tests here).

The shapes follow what the audit/remediate roles set (see roles/report/meta/argument_specs.yml) and
the modules' RETURN (findings copied from real virt_device_alias/virt_disk_io_policy runs on the
sample fleet, then given the statuses a fleet shows over time):

- hv-ams-01: check-mode audit, findings of both checks: drift, pending (a running domain waits for
  its cold boot) and skipped;
- hv-ams-02: compliant (three domains, no finding);
- hv-fra-01: remediation where disk_io failed on one domain (status failed) and aliases were fixed;
- hv-par-01: no result at all (unreachable).

tests/integration/test_report_browser.py loads this file by path for its realistic report.
"""

from __future__ import annotations

import copy

HOSTS = ["hv-ams-01", "hv-ams-02", "hv-fra-01", "hv-par-01"]
UNREACHABLE = "hv-par-01"

_DISK_KEYS = ("cache", "io", "cache_set", "io_set", "writeback", "direct", "no_flush")


def _disk(cache, io, cache_set=True, io_set=True):
    flags = {"none": (True, True, False), "writeback": (True, False, False), "writethrough": (False, False, False),
             "directsync": (False, True, False), "unsafe": (True, False, True)}[cache]
    return dict(zip(_DISK_KEYS, (cache, io, cache_set, io_set) + flags))


def _device(kind, target=None, bus=None, alias=None, source=None, serial=None, mac=None, path=None):
    return {"kind": kind, "target": target, "bus": bus, "alias": alias, "source": source, "serial": serial,
            "mac": mac, "path": path}


def _finding(host, check, domain, uuid, device, rule, current, desired, status, pending_restart, message):
    return {"domain": domain, "uuid": uuid, "device": device, "rule": rule, "current": current, "desired": desired,
            "status": status, "pending_restart": pending_restart, "message": message, "check": check, "host": host}


def _summary(findings, domains_selected):
    statuses = ("drift", "fixed", "failed", "pending", "skipped")
    by_rule = {}
    for f in findings:
        by_rule[f["rule"]] = by_rule.get(f["rule"], 0) + 1
    return {"domains_selected": domains_selected,
            "domains_changed": len({f["domain"] for f in findings if f["status"] in ("drift", "fixed")}),
            "findings": len(findings),
            "by_status": {s: sum(1 for f in findings if f["status"] == s) for s in statuses},
            "by_rule": by_rule,
            "pending_restart": sum(1 for f in findings if f["pending_restart"])}


def _result(host, mode, check_mode, checks, status="ok", error=None):
    findings = [f for c in checks.values() for f in c.pop("_findings")]
    return {"host": host, "uri": "qemu:///system", "mode": mode, "check_mode": check_mode, "status": status,
            "error": error, "checks": checks, "findings": findings}


def _check(findings, domains, failed=False, msg=None, changed=None):
    return {"changed": bool(findings) if changed is None else changed, "failed": failed, "msg": msg,
            "summary": _summary(findings, len(domains)), "domains": list(domains), "_findings": findings}


DB_UUID = "7212cdcf-2267-4d74-8465-cb04872cc314"
WEB_UUID = "5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11"
BUILD_UUID = "f45c09fb-48c8-40aa-a4c4-33b9fa8094da"
CI_UUID = "0b6f2f1e-51c4-4a55-b0a7-6a1f0c9e3d27"


def _ams01():
    host = "hv-ams-01"
    aliases = [
        _finding(host, "aliases", "db-ams-01", DB_UUID,
                 _device("interface", "vnet3", None, None, "br-storage", mac="52:54:00:6b:3c:58",
                         path="/domain/devices/interface[1]"),
                 "alias-missing", {"alias": None}, {"alias": "ua-net-5254006b3c58", "basis": "mac"}, "drift", True,
                 "interface vnet3 has no user alias; ua-net-5254006b3c58 (from its mac)"),
        _finding(host, "aliases", "build-ams-01", BUILD_UUID,
                 _device("disk", "vda", "virtio", "ua-disk0", "/srv/scratch/build-ams-01-workspace.img",
                         path="/domain/devices/disk[1]"),
                 "alias-mismatch", {"alias": "ua-disk0"},
                 {"alias": "ua-disk-build-ams-01-workspace-img-5a6d44b7", "basis": "source"}, "drift", False,
                 "disk vda has alias ua-disk0; ua-disk-build-ams-01-workspace-img-5a6d44b7 (from its source)"),
        _finding(host, "aliases", "web-ams-01", WEB_UUID,
                 _device("disk", "vda", "virtio", "ua-disk-web-ams-01-root-qcow2-1c2d3e4f",
                         "/var/lib/libvirt/images/web-ams-01-root.qcow2", path="/domain/devices/disk[1]"),
                 "live-differs", {"alias": "virtio-disk0"},
                 {"alias": "ua-disk-web-ams-01-root-qcow2-1c2d3e4f", "basis": "source"}, "pending", True,
                 "disk vda: the definition has alias ua-disk-web-ams-01-root-qcow2-1c2d3e4f, the running domain "
                 "still uses virtio-disk0 until its next cold boot"),
    ]
    disk_io = [
        _finding(host, "disk_io", "db-ams-01", DB_UUID,
                 _device("disk", "sda", "scsi", "ua-pgdata", "/dev/disk/by-id/wwn-0x600508b1001c4d7a9f3e2b1c0d8e7f61",
                         path="/domain/devices/disk[2]"),
                 "io-native-needs-direct-cache", _disk("writeback", "native", cache_set=False),
                 _disk("writeback", "threads", cache_set=False), "drift", True,
                 "sda: io=native with cache=default (writeback) is invalid (QEMU falls back to threads, blockdev and "
                 "libvirt reject it); moved to io=threads"),
        _finding(host, "disk_io", "db-ams-01", DB_UUID,
                 _device("disk", "sdb", "scsi", "ua-pgwal", "rbd:vms-ams/db-ams-01-wal", serial="db-ams-01-wal",
                         path="/domain/devices/disk[3]"),
                 "io-native-needs-direct-cache", _disk("writethrough", "native"), _disk("writethrough", "threads"),
                 "drift", True,
                 "sdb: io=native with cache=writethrough is invalid (QEMU falls back to threads, blockdev and libvirt "
                 "reject it); moved to io=threads"),
        _finding(host, "disk_io", "build-ams-01", BUILD_UUID,
                 _device("disk", "vda", "virtio", "ua-disk0", "/srv/scratch/build-ams-01-workspace.img",
                         path="/domain/devices/disk[1]"),
                 "io-native-needs-direct-cache", _disk("unsafe", "native"), _disk("unsafe", "threads"), "drift", False,
                 "vda: io=native with cache=unsafe is invalid (QEMU falls back to threads, blockdev and libvirt "
                 "reject it); moved to io=threads"),
        _finding(host, "disk_io", "web-ams-01", WEB_UUID,
                 _device("disk", "vda", "virtio", "ua-disk-web-ams-01-root-qcow2-1c2d3e4f",
                         "/var/lib/libvirt/images/web-ams-01-root.qcow2", path="/domain/devices/disk[1]"),
                 "live-differs", _disk("writeback", "native"), _disk("none", "native"), "pending", True,
                 "vda: the definition has cache=none io=native, the running domain still uses cache=writeback "
                 "until its next cold boot"),
        _finding(host, "disk_io", "web-ams-01", WEB_UUID,
                 _device("disk", "sdc", "sata", None, "/var/lib/libvirt/isos/debian-12.iso",
                         path="/domain/devices/disk[2]"),
                 "io-native-not-applicable", _disk("writeback", "native", cache_set=False),
                 _disk("writeback", "native", cache_set=False), "skipped", False,
                 "sdc: read-only cdrom; io=native is not applicable and was left as it is"),
    ]
    return _result(host, "audit", True, {
        "aliases": _check(aliases, ["build-ams-01", "db-ams-01", "mon-ams-01", "web-ams-01"]),
        "disk_io": _check(disk_io, ["build-ams-01", "db-ams-01", "mon-ams-01", "web-ams-01"]),
    })


def _ams02():
    domains = ["cache-ams-02", "mon-ams-02", "web-ams-02"]
    return _result("hv-ams-02", "audit", True, {
        "aliases": _check([], domains), "disk_io": _check([], domains)})


def _fra01():
    host = "hv-fra-01"
    aliases = [
        _finding(host, "aliases", "ci-fra-01", CI_UUID,
                 _device("disk", "vdb", "virtio", None, "/var/lib/libvirt/images/ci-fra-01-cache.qcow2",
                         serial="ci-cache-01", path="/domain/devices/disk[2]"),
                 "alias-missing", {"alias": None}, {"alias": "ua-disk-ci-cache-01", "basis": "serial"}, "fixed",
                 False, "disk vdb had no user alias; set ua-disk-ci-cache-01 (from its serial)"),
    ]
    disk_io = [
        _finding(host, "disk_io", "ci-fra-01", CI_UUID,
                 _device("disk", "vda", "virtio", None, "/var/lib/libvirt/images/ci-fra-01-root.qcow2",
                         path="/domain/devices/disk[1]"),
                 "cache-policy", _disk("writeback", "threads"), _disk("none", "native"), "failed", False,
                 "vda: cache=writeback -> none did not stick (libvirt dropped the change on define); "
                 "the previous definition was restored"),
    ]
    msg = "ci-fra-01: the definition did not verify after define; restored /var/backups/virtfleet/ci-fra-01.xml"
    return _result(host, "remediate", False, {
        "aliases": _check(aliases, ["ci-fra-01", "runner-fra-01"]),
        "disk_io": _check(disk_io, ["ci-fra-01", "runner-fra-01"], failed=True, msg=msg),
    }, status="failed", error="disk_io: " + msg)


def fleet_hostvars():
    """hostvars of the fleet: {host: {'virtfleet_audit_result': ...}}; hv-par-01 has none."""
    out = {"hv-ams-01": {"virtfleet_audit_result": _ams01()},
           "hv-ams-02": {"virtfleet_audit_result": _ams02()},
           "hv-fra-01": {"virtfleet_audit_result": _fra01()},
           "hv-par-01": {"ansible_host": "10.20.0.31"}}
    return copy.deepcopy(out)


def all_findings(hostvars):
    return [f for h in HOSTS for f in (hostvars[h].get("virtfleet_audit_result") or {}).get("findings", [])]
