#!/usr/bin/env python
"""The report role at fleet scale: 10 / 100 / 1,000 simulated hosts x 100 domains x 3 findings.

Each size is an inventory of N hosts ``hv-NNNNN`` (``ansible_connection: local``, never
contacted) whose ``virtfleet_audit_result`` (the virt_policy result the checks role registers:
findings of the real compact shape of module_utils/_plan.py ``finding()``, ``domains`` with
UUIDs, summary) and ``virtfleet_audit_status`` (what the checks role publishes) come from a vars
plugin this script writes. The plugin builds every host's variables once, in the controller's
main process, on its first call, so they are resident before the report task forks, as
registered results are after a real audit play. (Host_vars JSON files would be the other way;
ansible-core 2.19 tags every string of such a file, 0.145 s per host: 145 s at 1,000 hosts
before the report reads anything, a cost of the simulation, not of the report. A real audit
play's own cost at 1,000 hosts is not measured here.)

Per size, in the same run and interleaved (``--rounds``, medians):

- ``report``: ``ansible-playbook report.yml``: a localhost play running the role
  ``virtfleet.libvirt.report`` over the N hosts, writing JSON, JUnit and HTML;
- ``baseline``: ``ansible-playbook baseline.yml``: the same inventory and vars plugin, a localhost
  play whose one ``debug`` task reads ``virtfleet_audit_status.status`` of every host through
  ``hostvars`` (so the data is built and the host variables looked up in both).

Printed: wall time; CPU time (user + system of ansible-playbook and its workers: the machine is
shared, and CPU moves less than wall time under load); peak memory of the controller, all its processes together, sampled every
50 ms from /proc: the sum of PSS (each page shared by the forked worker counted once) and, for
reference, the sum of RSS (shared pages counted in every process); sizes of the first page, the
host pages (count, largest, total), the JSON and the JUnit; then the time a headless Chromium
takes to open the first page and the largest host page (driver.get to the load event, and
the page's own navigation timing), once per size. Nothing asserts on time.

    make venv collection
    scripts/ensure-apt.sh chromium chromium-driver     # the browser part (skipped without them)
    .venv/bin/python benchmarks/report_scale.py [--sizes 10,100,1000] [--domains 100] [--findings 3]
        [--rounds 1] [--no-browser] [--keep DIR]

Takes ~2.5 minutes with the defaults on an idle 2-core machine (1,000 hosts is most of it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
ANSIBLE_PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# The vars plugin: synthetic results of the real shape, built once per process on the first call.
VARS_PLUGIN = r'''
import os
import random
import uuid

from ansible.plugins.vars import BaseVarsPlugin

_FLEET = {}
N, DOMAINS, FINDINGS = (int(os.environ[k]) for k in ("VF_BENCH_HOSTS", "VF_BENCH_DOMAINS", "VF_BENCH_FINDINGS"))
STATUSES = ("drift",) * 6 + ("pending", "skipped", "failed", "fixed")


def _findings(name, i, rnd, count):
    mac = "52:54:00:%02x:%02x:%02x" % (rnd.getrandbits(8), i // 256, i % 256)
    source = "/var/lib/libvirt/images/%s-vda.qcow2" % name
    out = [
        {"domain": name, "device": {"kind": "disk", "target": "vda", "bus": "virtio", "source": source,
                                    "path": "/domain/devices/disk[1]"},
         "rule": "cache-policy", "current": {"cache": "writeback", "io": "threads", "cache_set": False, "io_set": True},
         "desired": {"cache": "none", "io": "threads", "cache_set": True, "io_set": True},
         "status": rnd.choice(STATUSES), "pending_restart": i % 4 == 0,
         "message": "vda: cache=writeback (the default) but the policy asks cache=none", "check": "disk_io"},
        {"domain": name, "device": {"kind": "disk", "target": "vda", "bus": "virtio", "source": source,
                                    "path": "/domain/devices/disk[1]"},
         "rule": "alias-missing", "current": {"alias": None},
         "desired": {"alias": "ua-disk-%s-vda-qcow2" % name, "basis": "source"}, "status": rnd.choice(STATUSES),
         "pending_restart": False, "check": "aliases",
         "message": "disk vda has no user alias; ua-disk-%s-vda-qcow2 (from its source)" % name},
        {"domain": name, "device": {"kind": "interface", "target": "vnet%d" % i, "mac": mac,
                                    "path": "/domain/devices/interface[1]"},
         "rule": "alias-missing", "current": {"alias": None},
         "desired": {"alias": "ua-net-%s" % mac.replace(":", ""), "basis": "mac"}, "status": rnd.choice(STATUSES),
         "pending_restart": i % 4 == 0, "check": "aliases",
         "message": "interface vnet%d has no user alias; ua-net-%s (from its mac)" % (i, mac.replace(":", ""))},
    ]
    return [dict(out[k % 3], rule=out[k % 3]["rule"] if k < 3 else "rule-%d" % k) for k in range(count)]


def host_vars(host):
    rnd = random.Random(host)
    findings, domains = [], []
    for i in range(DOMAINS):
        name = "vm-%s-%04d" % (host, i)
        mine = _findings(name, i, rnd, FINDINGS)
        findings.extend(mine)
        domains.append({"name": name, "uuid": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                        "active": i % 4 == 0, "persistent": True, "status": "drift" if mine else "compliant",
                        "changed": bool(mine), "findings": len(mine)})
    by_status = {}
    for f in findings:
        by_status[f["status"]] = by_status.get(f["status"], 0) + 1
    summary = {"domains_selected": DOMAINS, "domains_changed": DOMAINS, "findings": len(findings),
               "by_status": by_status, "by_rule": {}, "pending_restart": sum(f["pending_restart"] for f in findings)}
    result = {"changed": False, "failed": False, "findings": findings, "domains": domains, "summary": summary,
              "rules": ["disk_io", "aliases"], "connection_lost": False,
              "host": {"uri": "qemu:///system", "libvirt": "9.0.0", "hypervisor": "QEMU 7.2.0"}}
    status = {"host": host, "uri": "qemu+ssh://root@%s/system" % host, "mode": "audit", "check_mode": True,
              "status": "ok", "error": None,
              "checks": {c: {"changed": False, "failed": False, "unreachable": False, "msg": None, "summary": summary}
                         for c in ("disk_io", "aliases")}}
    return {"virtfleet_audit_result": result, "virtfleet_audit_status": status}


class VarsModule(BaseVarsPlugin):
    REQUIRES_ENABLED = False

    def get_vars(self, loader, path, entities, cache=True):
        if not _FLEET:
            for n in range(N):
                _FLEET["hv-%05d" % n] = host_vars("hv-%05d" % n)
        out = {}
        for entity in entities:
            if not hasattr(entity, "hosts") and entity.name in _FLEET:
                out.update(_FLEET[entity.name])
        return out
'''

REPORT = """- name: Fleet report
  hosts: localhost
  gather_facts: false
  roles:
    - role: virtfleet.libvirt.report
      report_hosts: "{{ groups['hypervisors'] }}"
      report_dir: "%s"
"""

BASELINE = """- name: Baseline, the same hosts' variables read by one trivial task
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Count the hosts whose audit status is ok
      ansible.builtin.debug:
        msg: "{{ groups['hypervisors'] | map('extract', hostvars, ['virtfleet_audit_status', 'status'])
                 | select('eq', 'ok') | list | length }} hosts ok"
"""


def _tree(pid):
    """pid and all its descendants (from /proc/*/stat)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry, encoding="ascii", errors="replace") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def _mem_kib(pid):
    """(PSS, RSS) of one process in KiB, from /proc/<pid>/smaps_rollup; (0, 0) when gone."""
    pss = rss = 0
    try:
        with open("/proc/%d/smaps_rollup" % pid, encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


def run_measured(cmd, env):
    """Run ``cmd``; (wall s, peak PSS MiB, peak RSS MiB of the process tree, CPU s of the tree, output).

    CPU is user + system time of ansible-playbook and every process it waited for (its workers),
    from getrusage(RUSAGE_CHILDREN): on a shared machine it moves less than the wall time.
    """
    peak = [0, 0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    done = threading.Event()

    def sample():
        while not done.is_set():
            pss = rss = 0
            for pid in _tree(proc.pid):
                p, r = _mem_kib(pid)
                pss += p
                rss += r
            peak[0], peak[1] = max(peak[0], pss), max(peak[1], rss)
            done.wait(0.05)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    output = proc.communicate()[0]
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    done.set()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit("%s failed (rc %d):\n%s" % (" ".join(cmd), proc.returncode, output[-3000:]))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, peak[0] / 1024.0, peak[1] / 1024.0, cpu, output


def sizes_of(out_dir):
    def size(name):
        path = os.path.join(out_dir, name)
        return os.path.getsize(path) if os.path.exists(path) else 0
    host_dir = os.path.join(out_dir, "compliance-hosts")
    pages = [os.path.join(host_dir, n) for n in os.listdir(host_dir)] if os.path.isdir(host_dir) else []
    page_sizes = [os.path.getsize(p) for p in pages]
    return {"html": size("compliance.html"), "json": size("compliance.json"), "junit": size("compliance.xml"),
            "host_pages": len(pages), "host_max": max(page_sizes) if page_sizes else 0,
            "host_total": sum(page_sizes),
            "largest_page": max(pages, key=os.path.getsize) if pages else None}


def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        print("(selenium is not installed: no browser timings)", flush=True)
        return None
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        print("(chromium/chromedriver missing, scripts/ensure-apt.sh chromium chromium-driver: no browser timings)",
              flush=True)
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="vf-chromium-")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--user-data-dir=%s" % profile):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(120)
    driver.vf_profile = profile
    return driver


def open_time(driver, path):
    """(seconds from driver.get to its return, the page's loadEventEnd - startTime in seconds, rows)."""
    driver.get("about:blank")
    start = time.monotonic()
    driver.get("file://" + path)
    wall = time.monotonic() - start
    nav = driver.execute_script(
        "var e = performance.getEntriesByType('navigation')[0]; return e ? e.loadEventEnd - e.startTime : -1;")
    rows = driver.execute_script("return document.querySelectorAll('.item').length;")
    return wall, nav / 1000.0, rows


def mib(n):
    return "%.1f" % (n / 1048576.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--domains", type=int, default=100)
    parser.add_argument("--findings", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--keep", default=None, help="keep the inventories and reports under this directory")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    work = args.keep or tempfile.mkdtemp(prefix="vf-report-scale-")
    os.makedirs(work, exist_ok=True)
    plugin_dir = os.path.join(work, "vars_plugins")
    os.makedirs(plugin_dir, exist_ok=True)
    with open(os.path.join(plugin_dir, "vf_bench_fleet.py"), "w", encoding="utf-8") as handle:
        handle.write(VARS_PLUGIN)
    load = [os.getloadavg()[0]]
    rows = []
    driver = None if args.no_browser else browser()
    try:
        for n in sizes:
            base = os.path.join(work, "fleet-%d" % n)
            out = os.path.join(base, "reports")
            os.makedirs(base, exist_ok=True)
            with open(os.path.join(base, "hosts.ini"), "w", encoding="utf-8") as handle:
                handle.write("[hypervisors]\n" + "".join("hv-%05d\n" % i for i in range(n)) +
                             "[hypervisors:vars]\nansible_connection=local\n")
            with open(os.path.join(base, "report.yml"), "w", encoding="utf-8") as handle:
                handle.write(REPORT % out)
            with open(os.path.join(base, "baseline.yml"), "w", encoding="utf-8") as handle:
                handle.write(BASELINE)
            env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_VARS_PLUGINS=plugin_dir,
                       ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
                       ANSIBLE_STDOUT_CALLBACK="default", VF_BENCH_HOSTS=str(n),
                       VF_BENCH_DOMAINS=str(args.domains), VF_BENCH_FINDINGS=str(args.findings))
            results = {"report": [], "baseline": []}
            for r in range(args.rounds):
                order = ("report", "baseline") if r % 2 == 0 else ("baseline", "report")
                for which in order:
                    cmd = [ANSIBLE_PLAYBOOK, "-i", os.path.join(base, "hosts.ini"), os.path.join(base, which + ".yml")]
                    wall, pss, rss, cpu, output = run_measured(cmd, env)
                    results[which].append((wall, pss, rss, cpu))
                    if which == "report" and "Findings: %d" % (n * args.domains * args.findings) not in output:
                        raise SystemExit("the report did not count every finding:\n" + output[-3000:])
                    print("  %5d hosts %-8s round %d: %6.2f s (CPU %6.2f s), peak PSS %6.0f MiB (RSS %6.0f MiB)"
                          % (n, which, r + 1, wall, cpu, pss, rss), flush=True)
            med = {k: tuple(statistics.median(x[i] for x in v) for i in range(4)) for k, v in results.items()}
            sizes_now = sizes_of(out)
            opened = host_opened = None
            if driver is not None:
                opened = open_time(driver, os.path.join(out, "compliance.html"))
                if sizes_now["largest_page"]:
                    host_opened = open_time(driver, sizes_now["largest_page"])
            rows.append((n, med, sizes_now, opened, host_opened))
    finally:
        if driver is not None:
            driver.quit()
            shutil.rmtree(driver.vf_profile, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    load.append(os.getloadavg()[0])

    print("\nreport role vs baseline (same inventory, one debug task reading every host's status), %d domains x %d "
          "findings per host, median of %d round(s); load average %.1f -> %.1f"
          % (args.domains, args.findings, args.rounds, load[0], load[1]))
    head = ("hosts", "findings", "report s", "baseline s", "report-baseline s", "report CPU s", "baseline CPU s",
            "report PSS MiB", "baseline PSS MiB",
            "report RSS MiB", "first page MiB", "host pages (max MiB, total MiB)", "JSON MiB", "JUnit MiB",
            "browser: first page s", "largest host page s")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for n, med, sz, opened, host_opened in rows:
        rep, bas = med["report"], med["baseline"]
        print("| " + " | ".join((
            "{:,}".format(n), "{:,}".format(n * args.domains * args.findings), "%.2f" % rep[0], "%.2f" % bas[0],
            "%.2f" % (rep[0] - bas[0]), "%.2f" % rep[3], "%.2f" % bas[3], "%.0f" % rep[1], "%.0f" % bas[1], "%.0f" % rep[2], mib(sz["html"]),
            "%d (%s, %s)" % (sz["host_pages"], mib(sz["host_max"]), mib(sz["host_total"])) if sz["host_pages"] else "-",
            mib(sz["json"]), mib(sz["junit"]),
            "%.2f (load %.2f, %d rows)" % (opened[0], opened[1], opened[2]) if opened else "-",
            "%.2f (%d rows)" % (host_opened[0], host_opened[2]) if host_opened else "-")) + " |")
    print(json.dumps({"rows": [{"hosts": n, "report": med["report"], "baseline": med["baseline"], "sizes": {
        k: v for k, v in sz.items() if k != "largest_page"}, "browser_first_page": opened,
        "browser_host_page": host_opened} for n, med, sz, opened, host_opened in rows]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
