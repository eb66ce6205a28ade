"""Where the generations differ, and where they do not (docs/generations.md has the table and what
to do about each row).

probe.py runs on each host with that host's python3 and libvirt bindings (it defines, starts and
undefines ``probe-*`` domains there) and reports what libvirt accepts, refuses or changes. Each
expectation below was measured on Debian 11.11 / 12.15 / 13.8; a failure means a generation
behaves differently from what the documentation says.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil

import pytest

from genlib import HOSTS, ROOT

HERE = os.path.dirname(os.path.abspath(__file__))
OLD = {"bullseye"}
NATIVE_REFUSED = {
    "bullseye": "code 67: unsupported configuration: native I/O needs either no disk cache or directsync cache mode, "
                "QEMU will fallback to aio=threads",
    "bookworm": "code 67: unsupported configuration: io='native' needs either no disk cache or directsync cache mode",
    "trixie": "code 67: unsupported configuration: io='native' needs either no disk cache or directsync cache mode",
}
EXPANDS = {"bullseye": ("pc-q35-5.2", "pc-i440fx-5.2"), "bookworm": ("pc-q35-7.2", "pc-i440fx-7.2"),
           "trixie": ("pc-q35-10.0", "pc-i440fx-10.0")}
UNSUPPORTED = "code 67: unsupported configuration: Emulator '/usr/bin/qemu-system-x86_64' does not support machine type '%s'"
# machine type -> the hosts whose QEMU offers it (define refuses it everywhere else)
MACHINES = {
    "pc-1.0": {"bullseye"},
    "pc-i440fx-1.4": {"bullseye", "bookworm"},
    "pc-i440fx-2.3": {"bullseye", "bookworm"},
    "pc-i440fx-2.4": {"bullseye", "bookworm", "trixie"},
    "pc-q35-5.2": {"bullseye", "bookworm", "trixie"},
    "pc-q35-7.2": {"bookworm", "trixie"},
    "pc-q35-10.0": {"trixie"},
}
SCHEMA_REFUSED = ("code 92: XML document failed to validate against schema: Unable to validate doc against "
                  "/usr/share/libvirt/schemas/domain.rng")
DROPPED = {"define": "dropped silently", "define_validate": SCHEMA_REFUSED}
KEPT = {"define": "kept", "define_validate": "kept"}
NEWER = {
    "bullseye": {"disk discard_no_unref": DROPPED, "disk driver queue_size": DROPPED, "disk throttlefilters": DROPPED,
                 "interface backend passt": DROPPED},
    "bookworm": {"disk discard_no_unref": DROPPED, "disk driver queue_size": KEPT, "disk throttlefilters": DROPPED,
                 "interface backend passt": {
                     "define": "code 27: XML error: Invalid value for attribute 'type' in element 'backend': 'passt'.",
                     "define_validate": "code 27: XML error: Invalid value for attribute 'type' in element 'backend': "
                                        "'passt'."}},
    "trixie": {"disk discard_no_unref": KEPT, "disk driver queue_size": KEPT, "disk throttlefilters": KEPT,
               "interface backend passt": KEPT},
}


@pytest.fixture(scope="module")
def probes(gen):
    """probe.py on every host; also kept in .build/gen/probe/<host>.json for docs/generations.md."""
    out_dir = os.path.join(ROOT, ".build", "gen", "probe")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(HERE, "probe.py"), encoding="utf-8") as handle:
        probe = handle.read()

    def one(host):
        src = os.path.join(gen.tree(host), "tmp", "virtfleet-src")
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(os.path.join(ROOT, "plugins"), os.path.join(src, "plugins"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        return gen.ssh(host, "python3 - /tmp/virtfleet-src", check=False, input_text=probe)

    with concurrent.futures.ThreadPoolExecutor(len(HOSTS)) as pool:  # ~20 s a host, mostly QEMU exits
        runs = dict(zip(HOSTS, pool.map(one, HOSTS)))
    results = {}
    for host, res in runs.items():
        assert res.ok, "probe.py on %s: %s" % (host, res)
        results[host] = json.loads(res.stdout)
        with open(os.path.join(out_dir, host + ".json"), "w", encoding="utf-8") as handle:
            json.dump(results[host], handle, indent=1, sort_keys=True)
    return results


def count_py():
    return sum(f.endswith(".py") for _b, _d, files in os.walk(os.path.join(ROOT, "plugins")) for f in files
               if "__pycache__" not in _b)


@pytest.mark.parametrize("host", HOSTS)
def test_collection_code_compiles_and_its_libvirt_api_exists(probes, host):
    p = probes[host]
    assert p["syntax_errors"] == {} and p["compiled"] == count_py(), p["syntax_errors"]
    assert p["missing_constants"] == [] and p["missing_methods"] == [], p


@pytest.mark.parametrize("host", HOSTS)
def test_io_cache(probes, host):
    io = probes[host]["io"]
    for combo in ("native+writeback", "native+default"):
        assert io[combo] == {"define": NATIVE_REFUSED[host], "start": None}, (combo, io[combo])
    for combo in ("native+none", "io_uring+writeback", "threads+writeback"):
        assert io[combo] == {"define": "ok", "start": "started"}, (combo, io[combo])


@pytest.mark.parametrize("host", HOSTS)
def test_vnc_password_length(probes, host):
    p = probes[host]
    assert p["vnc_password_8"] == "ok"
    if host in OLD:
        assert p["vnc_password_11"] == "kept"
    else:
        assert p["vnc_password_11"] == ("code 67: unsupported configuration: VNC password is 11 characters long, "
                                        "only 8 permitted")


@pytest.mark.parametrize("host", HOSTS)
def test_validate_and_unknown_xml(probes, host):
    p = probes[host]
    assert p["unknown_element"]["plain"] == "ok"
    assert p["unknown_element"]["validate"].startswith(SCHEMA_REFUSED), p["unknown_element"]
    assert p["newer_features"] == NEWER[host]


@pytest.mark.parametrize("host", HOSTS)
def test_aliases_alike(probes, host):
    p = probes[host]
    assert p["aliases"] == {"UA-upper": "dropped", "foo-bar": "dropped", "ua-": "kept", "ua-a.b": "dropped",
                            "ua-ok_1-2": "kept"}
    assert p["duplicate_alias"] == "code 67: unsupported configuration: non unique alias detected: ua-dup"


@pytest.mark.parametrize("host", HOSTS)
def test_machine_types(probes, host):
    p = probes[host]
    assert (p["expands_q35"], p["expands_pc"]) == EXPANDS[host]
    assert p["domcaps_default_machine"] == EXPANDS[host][1]
    for machine, offered_on in MACHINES.items():
        want = "ok" if host in offered_on else UNSUPPORTED % machine
        assert p["define_machine"][machine] == want, machine
        assert (machine in p["machines"]) == (host in offered_on), machine
    deprecated = set(p["machines_deprecated"])
    if host == "bullseye":
        assert deprecated == set()
    elif host == "bookworm":
        assert deprecated == {"pc-i440fx-1.4", "pc-i440fx-1.5", "pc-i440fx-1.6", "pc-i440fx-1.7"}
    else:  # QEMU 10.0 deprecates every versioned pc/q35 type up to 7.0 (its removal window)
        assert "pc-q35-7.0" in deprecated and "pc-i440fx-2.4" in deprecated and "pc-q35-7.1" not in deprecated
        assert all(m.startswith(("pc-q35-", "pc-i440fx-")) for m in deprecated)


@pytest.mark.parametrize("host", HOSTS)
def test_spice_and_qxl_need_a_module_package_on_trixie(probes, host):
    """Debian 13 moved SPICE into qemu-system-modules-spice (a Recommends): installed without
    recommends, a domain with <graphics type='spice'> or <video model='qxl'> does not start there."""
    enums = probes[host]["domcaps_enums"]
    present = "spice" in enums["graphics/type"] and "qxl" in enums["video/modelType"]
    assert present == (host != "trixie"), (enums["graphics/type"], enums["video/modelType"])


@pytest.mark.parametrize("host", HOSTS)
def test_hot_unplug_without_guest_alike(probes, host):
    p = probes[host]
    assert p["unplug_scsi_no_guest"].startswith("removed after"), p["unplug_scsi_no_guest"]
    assert p["unplug_virtio_blk_no_guest_q35"] == "still present after 3 s"
