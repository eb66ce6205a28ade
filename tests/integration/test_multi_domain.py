"""One call over several domains; ``exclude`` globs take domains out of the selection."""

from __future__ import annotations

import uuid

from _itlib import Disk, drivers

DISKS = [Disk("vda", "virtio", "none", "native"), Disk("sda", "scsi", "none", "native")]


def test_three_domains_one_call_exclude_pattern(lab, domains, run, backup_dir):
    tag = uuid.uuid4().hex[:6]
    first = domains.define(DISKS, suffix="%s-web" % tag)
    second = domains.define(DISKS, suffix="%s-db" % tag)
    skipped = domains.define(DISKS, suffix="%s-scratch" % tag)
    skipped_before = lab.inactive_xml(skipped)
    # The first by UUID, the second twice: each domain is selected once.
    first_uuid = lab.dom(first).UUIDString()
    args = dict(domains=[first_uuid, second, skipped, second], exclude=["vf-it-*-%s-scratch" % tag], io="threads",
                backup_dir=backup_dir)

    check = run(check=True, **args)
    assert not check.failed, check.stdout
    # Each domain once, in name order (the documented order), whatever order they were requested in.
    assert [d["name"] for d in check.result["domains"]] == sorted([first, second])
    assert {(f["domain"], f["device"]["target"]) for f in check.result["findings"]} == {
        (first, "vda"), (first, "sda"), (second, "vda"), (second, "sda")}
    assert check.result["summary"]["domains_selected"] == 2
    assert check.result["summary"]["domains_changed"] == 2

    fix = run(**args)
    assert not fix.failed, fix.stdout
    assert {f["domain"] for f in fix.findings(status="fixed")} == {first, second}
    assert all(f["domain"] != skipped for f in fix.result["findings"])
    assert [d["name"] for d in fix.result["domains"] if d["changed"]] == sorted([first, second])
    for name in (first, second):
        assert drivers(lab.inactive_xml(name)) == {"vda": ("none", "threads"), "sda": ("none", "threads")}
    assert lab.inactive_xml(skipped) == skipped_before

    again = run(**args)
    assert not again.failed and again.result["changed"] is False and again.result["findings"] == []
