#!/usr/bin/env python
"""The engine's own work vs the bare libvirt floor, and how it scales (10 / 100 / 1,000 / 5,000 domains).

On the lab daemon, N inactive ``vfbench-<tag>-NNNNN`` domains on which BOTH rules fire (2 disks
with io='threads' and no cache vs a policy of cache=none; 3 devices without an alias: 5 findings
and one define's worth of edits per domain, see _fleetlib.py). At each size, in ONE process,
interleaved rounds (the order rotates every round) of:

  - floor-2x: open + listAllDomains + 2 x XMLDesc (inactive SECURE, live SECURE) per domain + lxml
    parse + close (the baseline of the issue);
  - floor-1x: the same with one XMLDesc per domain (what an inactive domain needs: for information);
  - engine: what the virt_policy module runs without Ansible: Adapter(uri), versions, rules.build,
    Engine(adapter, rules, check_mode=True).run(exclude=<only this fleet>), close.

It prints per size the medians, the ratio engine / floor-2x (target <= 1.5x), the per-domain cost
(linear growth = a flat per-domain cost; wall and this process's CPU time, which the load of
other processes on the machine disturbs less), the peak RSS one engine run adds in a fresh process
over its RSS just before the run (VmHWM after resetting it through /proc/self/clear_refs) and the size of the result as JSON (what
the module prints). Domains are added between sizes, so at each size only N benchmark domains exist
(plus whatever other engineers have defined; they are listed by both sides but never read).

    .venv/bin/python benchmarks/engine_scale.py [--sizes 10,100,1000,5000] [--rounds 5]
        [--by-name 1000] [--profile 1000]

- ``--by-name N``: at size N also select the fleet by name (``domains:`` a list of N names) instead
  of by ``exclude`` globs, to show what name selection costs.
- ``--profile N``: at size N, one more engine run under cProfile; prints the top 25 by cumulative
  and by own time.
Takes about 2 minutes with the defaults (defining 5,000 domains takes ~10 s, undefining ~3 s).
Nothing asserts on time.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _fleetlib as F  # noqa: E402


def engine_once(uri, fleet, names=None):
    """(seconds, result, CPU seconds of this process) of one check-mode engine run."""
    gc.collect()
    cpu = time.process_time()
    seconds, result = F.timed(F.run_engine, uri, names=names, exclude=None if names else fleet.exclude)
    cpu = time.process_time() - cpu
    if result["connection_lost"]:
        raise F.Interrupted(result.get("connection_error"))
    return seconds, result, cpu


def child_rss(uri, prefix):
    """In a fresh process: RSS after imports and before the run, and the peak RSS (VmHWM) of one run."""
    exclude = F.only_prefix(prefix)
    F.run_engine(uri, exclude=exclude + ["*"])   # imports, connection, the rules: everything but the domains
    gc.collect()
    F.reset_peak()
    before, _now = F.rss_kib()
    result = F.run_engine(uri, exclude=exclude)
    _now, peak = F.rss_kib()
    print(json.dumps({"before": before, "peak": peak, "domains": len(result["domains"]),
                      "lost": result["connection_lost"]}))


def measure_rss(uri, fleet):
    for _attempt in range(3):
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child-rss", fleet.prefix, "--uri", uri],
                              capture_output=True, text=True, check=False)
        try:
            got = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            print("  (RSS child failed: %s)" % proc.stderr[-500:], flush=True)
            continue
        if not got["lost"] and got["domains"] == len(fleet.names):
            return got["peak"] - got["before"], got["peak"]
    return float("nan"), float("nan")


def measure_size(uri, fleet, size, rounds, by_name=False):
    kinds = ["floor2", "floor1", "engine"] + (["by_name"] if by_name else [])
    times = {k: [] for k in kinds}
    cpu, result = [], None
    for rnd in range(rounds):
        order = kinds[rnd % len(kinds):] + kinds[:rnd % len(kinds)]
        for kind in order:
            if kind == "floor2":
                sec, count = F.retry(F.timed, fleet, F.floor, uri, fleet.prefix, 2)
                assert count == size, (count, size)
            elif kind == "floor1":
                sec, count = F.retry(F.timed, fleet, F.floor, uri, fleet.prefix, 1)
            elif kind == "engine":
                sec, result, cpu_s = F.retry(engine_once, fleet, uri, fleet)
                cpu.append(cpu_s)
                check(result, size)
            else:
                sec, res, _cpu = F.retry(engine_once, fleet, uri, fleet, names=fleet.names)
                check(res, size)
            times[kind].append(sec)
    med = {k: F.median(v) for k, v in times.items()}
    grew, peak = measure_rss(uri, fleet)
    return med, times, (F.median(cpu), grew, peak), result


def check(result, size):
    summary = result["summary"]
    if summary["domains_selected"] != size or summary["by_domain_status"]["drift"] != size:
        raise SystemExit("unexpected engine result at %d domains: %s" % (size, summary))


def profile(uri, fleet, top=25):
    prof = cProfile.Profile()
    prof.enable()
    F.run_engine(uri, exclude=fleet.exclude)
    prof.disable()
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).strip_dirs().sort_stats(key).print_stats(top)
        print("\n--- cProfile, engine at %d domains, sorted by %s ---" % (len(fleet.names), key))
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default="10,100,1000,5000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--by-name", type=int, default=1000, help="size at which to also select by names (0: never)")
    parser.add_argument("--profile", type=int, default=0, help="size at which to profile the engine (0: never)")
    parser.add_argument("--uri", default=None)
    parser.add_argument("--child-rss", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    uri = args.uri or F.lab_env()["LIBVIRT_URI"]
    if args.child_rss:
        child_rss(uri, args.child_rss)
        return 0
    sizes = sorted(int(s) for s in args.sizes.split(","))
    rows, notes = [], []
    with F.Fleet(uri) as fleet:
        print("fleet %s* on %s" % (fleet.prefix, uri), flush=True)
        for size in sizes:
            took = fleet.grow(size)
            print("defined %d domains (%.1f s); measuring %d rounds ..." % (size, took, args.rounds), flush=True)
            rounds = args.rounds if size <= 1000 else max(3, args.rounds - 2)
            med, times, (cpu, grew, peak), result = measure_size(uri, fleet, size, rounds,
                                                                 by_name=(size == args.by_name))
            size_json = len(json.dumps(result))
            rows.append([size, rounds, "%.3f" % med["floor2"], "%.3f" % med["floor1"], "%.3f" % med["engine"],
                         "%.2fx" % (med["engine"] / med["floor2"]), "%.2fx" % (med["engine"] / med["floor1"]),
                         "%.0f" % (med["floor2"] / size * 1e6), "%.0f" % (med["engine"] / size * 1e6),
                         "%.0f" % (cpu / size * 1e6),
                         "%.1f" % (grew / 1024.0), "%.2f" % (grew / size), "%.1f" % (peak / 1024.0),
                         "%.2f" % (size_json / 1e6), len(result["findings"])])
            print("  size %d: floor-2x %s, floor-1x %s, engine %s" % (
                size, ["%.3f" % t for t in times["floor2"]], ["%.3f" % t for t in times["floor1"]],
                ["%.3f" % t for t in times["engine"]]), flush=True)
            if "by_name" in med:
                notes.append("at %d domains, selected by a list of %d names (domains:) instead of exclude globs: "
                             "engine median %.3f s = %.2fx floor-2x (exclude globs: %.3f s); runs %s"
                             % (size, size, med["by_name"], med["by_name"] / med["floor2"], med["engine"],
                                ["%.3f" % t for t in times["by_name"]]))
            if size == args.profile:
                profile(uri, fleet)
        print("undefining %d domains ..." % len(fleet.names), flush=True)
    print("\n$ %s" % " ".join([os.path.relpath(sys.executable, F.ROOT)] + sys.argv))
    print("engine = Engine(Adapter, [disk_io cache=none, aliases], check_mode=True).run() in-process; "
          "medians of interleaved rounds; both rules fire on every domain")
    print(F.table(rows, ["domains", "rounds", "floor-2x s", "floor-1x s", "engine s", "engine/floor-2x",
                         "engine/floor-1x", "floor µs/dom", "engine µs/dom", "engine CPU µs/dom", "engine +RSS MiB", "KiB/dom",
                         "peak RSS MiB", "result MB (JSON)", "findings"]))
    for note in notes:
        print(note)
    for col, what in ((8, "wall"), (9, "CPU of this process")):
        per_dom = [float(r[col]) for r in rows]
        if len(per_dom) > 1:
            print("per-domain engine cost (%s) at %s domains: %s µs; %d -> %d domains: %.2fx per domain (%s)" % (
                what, "/".join(map(str, sizes)), " / ".join("%.0f" % v for v in per_dom), sizes[-2], sizes[-1],
                per_dom[-1] / per_dom[-2], "linear or better" if per_dom[-1] <= 1.25 * per_dom[-2]
                else "grows faster than linear"))
    print("RSS: peak RSS of a fresh process over its RSS just before the run (VmHWM, clear_refs); "
          "KiB/dom = that increment per domain")
    return 0


if __name__ == "__main__":
    sys.exit(main())
