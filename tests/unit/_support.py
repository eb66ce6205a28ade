"""Shared helpers of the unit tests (imported by the test files; not a test module)."""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys

from lxml import etree

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden")
REPO = os.path.dirname(os.path.dirname(HERE))
COLLECTIONS = os.path.join(REPO, ".build", "collections")

#: REGEN_GOLDEN=1 rewrites tests/unit/golden/*-out.xml from the current code. Review the
#: result by eye (git diff) before committing: a golden is a statement of correct behaviour.
REGEN = os.environ.get("REGEN_GOLDEN", "") not in ("", "0")

# Independent copy of the policy facts (do not import them from the code under test).
CACHE_TABLE = {
    # mode: (writeback, direct, no_flush)
    "writeback": (True, False, False),
    "none": (True, True, False),
    "writethrough": (False, False, False),
    "directsync": (False, True, False),
    "unsafe": (True, False, True),
}
CACHE_MODES = tuple(CACHE_TABLE)
IO_MODES = ("threads", "native", "io_uring")
DIRECT = ("none", "directsync")

DOMAIN_NS = "xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'"


def golden_path(name):
    return os.path.join(GOLDEN, name)


def read_golden(name):
    with open(golden_path(name), encoding="utf-8") as fh:
        return fh.read()


def check_golden(name, actual):
    """Compare ``actual`` text exactly against golden ``name`` (or rewrite it with REGEN_GOLDEN=1)."""
    path = golden_path(name)
    if REGEN or not os.path.exists(path):
        if not REGEN:
            raise AssertionError("golden %s is missing; run with REGEN_GOLDEN=1 and review it" % name)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(actual)
    expected = read_golden(name)
    if actual != expected:
        diff = "".join(difflib.unified_diff(
            expected.splitlines(True), actual.splitlines(True), "golden/" + name, "actual"))
        raise AssertionError("output differs from golden %s:\n%s" % (name, diff))


def lxml_normalized(xml_text):
    """The text lxml itself would write for ``xml_text`` with no edit at all (quote style etc.)."""
    return etree.tostring(etree.fromstring(xml_text.encode("utf-8")), encoding="unicode")


def changed_lines(before, after):
    """(removed lines, added lines) of a line diff, whitespace kept."""
    removed, added = [], []
    for line in difflib.ndiff(before.splitlines(), after.splitlines()):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


def driver_attrs(xml_text):
    """{target dev: dict(driver attrs) or None} of every disk in document order."""
    root = etree.fromstring(xml_text.encode("utf-8"))
    out = {}
    for disk in root.iterfind("devices/disk"):
        drv = disk.find("driver")
        out[disk.find("target").get("dev")] = None if drv is None else dict(drv.attrib)
    return out


def effective(cache, io):
    return (cache or "writeback", io or "threads")


def native_with_cached_disk(xml_text):
    """Targets of qemu disks (any device=, cdroms included) whose XML says io=native with a non-direct cache."""
    root = etree.fromstring(xml_text.encode("utf-8"))
    bad = []
    for disk in root.iterfind("devices/disk"):
        if disk.get("type") == "vhostuser":
            continue
        drv = disk.find("driver")
        if drv is None or drv.get("name") not in (None, "qemu"):
            continue
        if drv.get("io") == "native" and (drv.get("cache") or "writeback") not in DIRECT:
            bad.append(disk.find("target").get("dev") if disk.find("target") is not None else None)
    return bad


_COMMENT = re.compile(r"<!--.*?-->", re.S)


def comments(text):
    return _COMMENT.findall(text)


# --- running a module as Ansible does ------------------------------------------------------------

MODULE_PREFIX = "ansible_collections.virtfleet.libvirt.plugins.modules."


def write_node(tmp_path_factory, node_xml):
    """A libvirt test-driver node file; returns its ``test:///...`` URI. Every open() of that URI
    gets a fresh copy of the file, so each module run starts from the same state."""
    path = tmp_path_factory.mktemp("node") / "node.xml"
    path.write_text(node_xml)
    return "test://" + str(path)


def run_module(module, workdir, check_mode=False, diff=False, **params):
    """Run ``virtfleet.libvirt.<module>`` in a subprocess with an args file, as Ansible does, and
    return its JSON result. Fails the test when it prints no JSON or its exit code disagrees with
    ``failed``."""
    args = dict(params, _ansible_check_mode=check_mode, _ansible_diff=diff)
    args_file = os.path.join(str(workdir), "args.json")
    with open(args_file, "w", encoding="utf-8") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    proc = subprocess.run([sys.executable, "-m", MODULE_PREFIX + module, args_file], cwd=str(workdir), env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("module printed no JSON (rc=%s)\nstdout: %s\nstderr: %s"
                             % (proc.returncode, proc.stdout, proc.stderr))
    assert proc.returncode == (1 if result.get("failed") else 0), proc.stderr
    return result
