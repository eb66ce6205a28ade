#!/usr/bin/env python
"""How much does detaching devices concurrently buy? Eight disks one by one vs eight in one call.

On the real lab daemon (scripts/lab.sh) and a real guest (scripts/build-guest.sh, booted here),
in ONE process, each round:
  - sequential (the baseline): hot-plug 8 virtio-blk disks, then detach them with 8 separate
    single-device detaches (``run_detach`` in-process, or 8 module runs with ``--via module``);
  - one call: hot-plug 8 disks again, then detach all 8 with one call.
Each detach waits for libvirt's DEVICE_REMOVED event; hot-plug and the wait for the guest to see
the disks are outside the measured time. The order alternates between rounds. It prints every
round and the medians, e.g. "8 sequential: 1.23 s, 8 in one call: 0.21 s, ratio 5.9x".

    .venv/bin/python benchmarks/detach_concurrency.py [--rounds 5] [--via inprocess|module]

It is a measurement, not a test: nothing asserts on times. It exits 1 if a detach did not end
with a DEVICE_REMOVED event. The guest domain and its files are removed at the end, also on
failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
sys.path[:0] = [os.path.join(ROOT, "tests", "integration"), COLLECTIONS]

_LINK = os.path.join(COLLECTIONS, "ansible_collections", "virtfleet", "libvirt")
if not os.path.exists(_LINK):  # what `make collection` / tests/conftest.py do
    os.makedirs(os.path.dirname(_LINK), exist_ok=True)
    os.symlink(ROOT, _LINK)

import libvirt  # noqa: E402

from _detach_lib import (  # noqa: E402
    Console,
    build_guest,
    detach_domain_xml,
    disk_aliases,
    disk_xml,
    make_image,
    new_name,
    run_detach_module,
)
from _itlib import image_dir  # noqa: E402
from ansible_collections.virtfleet.libvirt.plugins.module_utils._adapter import DetachAdapter  # noqa: E402
from ansible_collections.virtfleet.libvirt.plugins.module_utils._detach import run_detach  # noqa: E402
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import VirtFleetError  # noqa: E402

N = 8
LAB_ENV = "/run/virtfleet-lab.env"


def lab_env():
    env = {"LIBVIRT_URI": "qemu:///system", "LIBVIRT_DOMAIN_TYPE": "qemu"}
    if os.path.exists(LAB_ENV):
        with open(LAB_ENV, encoding="utf-8") as handle:
            env.update(line.strip().split("=", 1) for line in handle if "=" in line)
    return env


class Bench:
    def __init__(self, uri, domain_type, via, workdir):
        self.uri, self.domain_type, self.via, self.workdir = uri, domain_type, via, workdir
        self.conn = None
        self.name = new_name("bench")
        self.console = Console(os.path.join(image_dir(self.name), "console.log"))
        self.count = 0
        self.adapter = None
        self.problems = []

    def connect(self):
        """(Re)open the connection and the adapter: other people's tests may restart libvirtd."""
        for old in (self.conn, self.adapter):
            try:
                if old is not None:
                    old.close()
            except (libvirt.libvirtError, VirtFleetError):
                pass
        self.conn = libvirt.open(self.uri)
        self.adapter = DetachAdapter(self.uri) if self.via == "inprocess" else None

    def reset(self):
        """After an interrupted round: detach leftover benchmark disks, wait until the guest has none."""
        self.connect()
        dom = self.conn.lookupByName(self.name)
        for flags, xml in ((libvirt.VIR_DOMAIN_AFFECT_LIVE, dom.XMLDesc(0)),
                           (libvirt.VIR_DOMAIN_AFFECT_CONFIG, dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))):
            for alias in set(disk_aliases(xml).values()):
                if alias and alias.startswith("ua-bench-"):
                    dom.detachDeviceAlias(alias, flags)
        self.console.wait(lambda c: c.serials() == set(), "no disks")

    def boot(self):
        self.connect()
        kernel = build_guest()
        os.makedirs(image_dir(self.name), exist_ok=True)
        xml = detach_domain_xml(self.name, self.domain_type, guest=kernel, console=self.console.path,
                                memory_mib=128, root_ports=16, scsi=False)
        started = time.monotonic()
        self.conn.defineXML(xml).create()
        self.console.wait_ready()
        print("guest %s booted in %.1f s" % (self.name, time.monotonic() - started), flush=True)

    def hotplug(self):
        dom = self.conn.lookupByName(self.name)
        aliases, serials = [], []
        for _disk in range(N):
            self.count += 1
            target = "vd" + chr(ord("b") + (self.count - 1) % 24)  # vdb..vdy, free again after each round
            alias, serial = "ua-bench-%d" % self.count, "BENCH-%d" % self.count
            dom.attachDeviceFlags(disk_xml(make_image(self.name, "%s.img" % alias), target, "virtio", alias, serial),
                                  libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG)
            aliases.append(alias)
            serials.append(serial)
        self.console.wait_serials(present=serials)
        return aliases, serials

    def detach(self, aliases):
        """One detach call for ``aliases``; returns its per-device results."""
        selectors = [{"alias": a} for a in aliases]
        if self.via == "module":
            res = run_detach_module({"uri": self.uri, "domain": self.name, "devices": selectors,
                                     "backup_dir": os.path.join(self.workdir, "backups")}, self.workdir)
            if res.failed:
                self.problems.append(res.msg)
            return res.devices
        result = run_detach(self.adapter, self.name, selectors, backup_dir=os.path.join(self.workdir, "backups"))
        return result["devices"]

    def measure(self, sequential):
        aliases, serials = self.hotplug()
        started = time.monotonic()
        if sequential:
            devices = [dev for alias in aliases for dev in self.detach([alias])]
        else:
            devices = self.detach(aliases)
        elapsed = time.monotonic() - started
        bad = [d for d in devices if (d.get("live"), d.get("event")) != ("removed", "DEVICE_REMOVED event")]
        if len(devices) != N or bad:
            self.problems.append("%s: %d devices, not removed by event: %s"
                                 % ("sequential" if sequential else "one call", len(devices), bad))
        self.console.wait_serials(absent=serials)  # the guest is back to no disks before the next round
        return elapsed, [d.get("seconds") for d in devices]

    def close(self):
        try:
            self.connect()  # a fresh connection even if the daemon was restarted meanwhile
            dom = self.conn.lookupByName(self.name)
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                print("cleanup of %s: %s" % (self.name, exc), file=sys.stderr)
        shutil.rmtree(image_dir(self.name), ignore_errors=True)
        if self.adapter is not None:
            self.adapter.close()
        self.conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--via", choices=("inprocess", "module"), default="inprocess",
                        help="run_detach in this process (default), or one module process per detach call")
    parser.add_argument("--uri", default=None, help="default: LIBVIRT_URI of %s" % LAB_ENV)
    args = parser.parse_args()
    env = lab_env()
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    workdir = tempfile.mkdtemp(prefix="vf-bench-")
    bench = Bench(args.uri or env["LIBVIRT_URI"], env["LIBVIRT_DOMAIN_TYPE"], args.via, workdir)
    seq, par = [], []
    try:
        bench.boot()
        for rnd in range(1, args.rounds + 1):
            order = (True, False) if rnd % 2 else (False, True)
            times = {}
            for sequential in order:
                for retry in range(3):
                    try:
                        times[sequential] = bench.measure(sequential)
                        break
                    except (libvirt.libvirtError, VirtFleetError) as exc:
                        # typically "Broken pipe" / "client socket is closed": libvirtd was restarted
                        print("round %d interrupted (%s); reconnecting and measuring again"
                              % (rnd, getattr(exc, "msg", exc)), flush=True)
                        if retry == 2:
                            raise
                        bench.reset()
            seq.append(times[True][0])
            par.append(times[False][0])
            print("round %d: 8 sequential %.3f s (per device %s), 8 in one call %.3f s (per device %s)"
                  % (rnd, times[True][0], times[True][1], times[False][0], times[False][1]), flush=True)
    finally:
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)
    s, p = statistics.median(seq), statistics.median(par)
    print("via %s, median of %d rounds: 8 sequential: %.2f s, 8 in one call: %.2f s, ratio %.1fx"
          % (args.via, args.rounds, s, p, s / p))
    if bench.problems:
        print("PROBLEMS:\n  " + "\n  ".join(bench.problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
