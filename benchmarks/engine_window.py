#!/usr/bin/env python
"""The window between the engine's re-read guard and its define (libvirt has no compare-and-swap).

For every changed domain the engine re-reads the definition, compares it with the one it planned
from, and then defines. A change by another tool that lands inside that window is overwritten (the
verification after the define still sees it when it changes a value we did not set). This measures
the window on the lab daemon, with the real Adapter wrapped so that the guard's inactive
``XMLDesc`` and the following ``defineXMLFlags`` are timestamped (perf_counter_ns):

  - inner: the guard's XMLDesc returned -> defineXMLFlags sent (the engine's own code in between:
    the rest of the re-read, the comparison);
  - outer: the guard's XMLDesc sent -> defineXMLFlags returned (an upper bound: a change that
    libvirt applied outside it is either seen by the guard or lands after our define).

N inactive ``vfbench-`` domains on which both rules fire (see _fleetlib.py) are remediated by
``Engine(WindowAdapter, rules).run()`` in-process (backups in a temporary directory, the host
lock as the module takes it), ``--rounds`` times, the fleet reset (undefine + define the
originals) between rounds. Prints the median, p90, p99 and max of both windows in µs, over every
define of every round, and the define's own round trip for comparison.

    .venv/bin/python benchmarks/engine_window.py [--domains 1000] [--rounds 3] [--parallel 4] [--profile]

``--profile``: one more round (not counted) under cProfile: where a remediation's time goes in
the engine (backup with its fsyncs, re-reads, define, verification), top 25 by own time.

Takes about 1 minute with the defaults. Nothing asserts on time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _fleetlib as F  # noqa: E402
import libvirt  # noqa: E402

from ansible_collections.virtfleet.libvirt.plugins.module_utils._adapter import Adapter  # noqa: E402
from ansible_collections.virtfleet.libvirt.plugins.module_utils._hostlock import HostLock  # noqa: E402

now = time.perf_counter_ns


class _TimedDomain:
    """A virDomain whose inactive XMLDesc records when it was sent and when it returned."""

    def __init__(self, dom, sink):
        self._dom, self._sink = dom, sink

    def XMLDesc(self, flags=0):  # noqa: N802 - libvirt's name
        sent = now()
        text = self._dom.XMLDesc(flags)
        if flags & libvirt.VIR_DOMAIN_XML_INACTIVE:
            self._sink[:] = [sent, now()]
        return text

    def __getattr__(self, name):
        return getattr(self._dom, name)


PARALLEL = [4]   # --parallel


class WindowAdapter(Adapter):
    """The real Adapter; records (guard XMLDesc sent, returned, define sent, define returned) per define."""

    def __init__(self, uri):
        super().__init__(uri)
        self.samples = []
        # Per thread (the engine changes `parallel` domains at once): whether this thread is in the
        # guard, and [sent, returned] of its guard's inactive XMLDesc.
        self._mine = threading.local()

    def definition(self, uuid):
        self._mine.in_guard = True
        try:
            return super().definition(uuid)
        finally:
            self._mine.in_guard = False

    def _handle(self, uuid):
        dom = super()._handle(uuid)
        if getattr(self._mine, "in_guard", False):   # the guard's one XMLDesc, timed
            self._mine.last_read = []
            return _TimedDomain(dom, self._mine.last_read)
        return dom

    def define(self, xml_text, validate=True):
        read, self._mine.last_read = getattr(self._mine, "last_read", None), None
        sent = now()
        try:
            return super().define(xml_text, validate)
        finally:
            if read:   # the re-read guard right before this define
                self.samples.append((read[0], read[1], sent, now()))


def one_round(uri, fleet, backup_dir):
    fleet.reset()   # also after an interrupted attempt
    shutil.rmtree(backup_dir, ignore_errors=True)
    adapter = WindowAdapter(uri)
    sec, result = F.timed(F.run_engine, uri, exclude=fleet.exclude, check_mode=False, adapter=adapter,
                          backup_dir=backup_dir, lock=lambda: HostLock(uri, timeout=300), workers=PARALLEL[0])
    fixed = result["summary"]["by_domain_status"]["fixed"]
    n = len(fleet.names)
    if result["connection_lost"]:
        raise F.Interrupted(result.get("connection_error"))
    if fixed != n or len(adapter.samples) != n:
        raise SystemExit("%d fixed, %d guarded defines, expected %d: %s" % (
            fixed, len(adapter.samples), n, result["summary"]))
    return sec, adapter, fixed


def stats(values_ns):
    us = [v / 1000.0 for v in values_ns]
    return "median %8.1f  p90 %8.1f  p99 %8.1f  max %9.1f" % (F.median(us), F.pct(us, 90), F.pct(us, 99), max(us))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--uri", default=None)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--parallel", type=int, default=4, help="domains in flight (the modules' default: 4)")
    args = parser.parse_args()
    PARALLEL[0] = args.parallel
    uri = args.uri or F.lab_env()["LIBVIRT_URI"]
    workdir = tempfile.mkdtemp(prefix="vfbench-window-")
    samples, seconds = [], []
    load = [os.getloadavg()[0]]
    try:
        with F.Fleet(uri, args.domains) as fleet:
            print("fleet %s* on %s: %d domains" % (fleet.prefix, uri, args.domains), flush=True)
            for rnd in range(args.rounds):
                sec, adapter, fixed = F.retry(one_round, fleet, uri, fleet, os.path.join(workdir, "backups-%d" % rnd))
                samples += adapter.samples
                seconds.append(sec)
                print("round %d: %d domains remediated in %.2f s (%d guarded defines)"
                      % (rnd + 1, fixed, sec, len(adapter.samples)), flush=True)
            if args.profile:
                fleet.reset()
                prof = cProfile.Profile()
                prof.enable()
                sec, _res = F.timed(F.run_engine, uri, exclude=fleet.exclude, check_mode=False,
                                    backup_dir=os.path.join(workdir, "backups-profile"),
                                    lock=lambda: HostLock(uri, timeout=300), workers=PARALLEL[0])
                prof.disable()
                for key in ("tottime", "cumulative"):
                    out = io.StringIO()
                    pstats.Stats(prof, stream=out).strip_dirs().sort_stats(key).print_stats(25)
                    print("--- cProfile, remediation of %d domains in-process (%.2f s), by %s ---"
                          % (args.domains, sec, key))
                    print("\n".join(ln for ln in out.getvalue().splitlines() if ln.strip()))
            print("undefining %d domains ..." % args.domains, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    load.append(os.getloadavg()[0])
    print("\n$ %s" % " ".join([os.path.relpath(sys.executable, F.ROOT)] + sys.argv))
    print("%d guarded defines (%d rounds x %d domains), engine run median %.2f s; load average %.1f -> %.1f"
          % (len(samples), args.rounds, args.domains, F.median(seconds), load[0], load[1]))
    print("inner  (guard XMLDesc returned -> define sent), µs: %s" % stats([d - r for _s, r, d, _e in samples]))
    print("outer  (guard XMLDesc sent -> define returned), µs: %s" % stats([e - s for s, _r, _d, e in samples]))
    print("define round trip alone (for comparison),     µs: %s" % stats([e - d for _s, _r, d, e in samples]))
    print("guard XMLDesc round trip alone,               µs: %s" % stats([r - s for s, r, _d, _e in samples]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
