#!/usr/bin/env python
"""playbooks/audit.yml --check and playbooks/remediate.yml end to end at 1,000 domains, vs their floors.

On the lab daemon, N (default 1,000) inactive ``vfbench-<tag>-NNNNN`` domains on which both rules
fire (_fleetlib.py: 2 disks io='threads' with no cache vs a policy of cache=none, 3 devices without
an alias: 5 findings and one define per domain). The inventory is one host, ``localhost``
(ansible_connection=local, the venv's python, virtfleet_uri, virtfleet_exclude = globs that exclude
every domain not of this fleet), audit_disk_cache/remediate_disk_cache=none. Reports are written
(JSON, JUnit, HTML) to a temporary directory. Interleaved rounds (the order rotates), medians:

audit part
  - ``audit``: ``ansible-playbook -i inv playbooks/audit.yml --check`` (the report play included);
  - ``ping``: ``ansible-playbook -i inv ping.yml`` (one ansible.builtin.ping task, same inventory);
  - ``floor``: in this process, open + listAllDomains + 2 x XMLDesc per domain + lxml parse.
  The baseline is ping + floor (target: audit <= 2x baseline).
  - ``loop``: what a community.libvirt user writes, one module run per domain:
    ``virt: command=get_xml name={{ item }}`` in a loop. community.libvirt is not installed here,
    so a 15-line module does the same (open, lookupByName, XMLDesc, exit_json(get_xml=...));
    run on ``--loop-domains`` (50) domains and extrapolated linearly to N.

remediate part (``--rounds-remediate``, default 3)
  - ``remediate``: reset the fleet (undefine + define the original XML of every domain, not timed),
    then ``ansible-playbook -i inv playbooks/remediate.yml`` (report included). The defines are
    counted twice: by libvirt's own DEFINED lifecycle events for this fleet's domains (any process)
    and by the backup files (one per define); both must be N;
  - ``defines``: reset, then in this process a bare loop of defineXMLFlags(VALIDATE) of the same
    patched XML (what libvirt holds after the first remediation). Target: remediate <= 1.5x defines.

Per-task times come from benchmarks/callback_plugins/vf_timer.py (time between task starts).

    .venv/bin/python benchmarks/audit_playbook.py [--domains 1000] [--rounds 5] [--rounds-remediate 3]
        [--loop-domains 50] [--part audit|remediate|all] [--profile-module]

``--py-spy PATH``: after the rounds, one more audit.yml --check under ``py-spy record --subprocesses``
(PATH: the py-spy binary, e.g. from ``pip install --target /tmp/pyspy py-spy``): prints the
functions with the most samples over ansible-playbook, its workers and the module process, inclusive
and own (where the time of the report tasks and of the module's exit_json goes).
``VF_PYSPY_KEEP=FILE`` keeps py-spy's raw samples there.
``--against REV``: also run audit.yml --check from a checkout of git revision REV (``git archive``
into the work directory, its own collection path), interleaved with the others in every round, and
print ``audit(REV) / audit``: a before/after of a change measured in the same run.
``--profile-module``: also run the virt_policy module once as Ansible would (``python -m`` with an
args file, check mode), report its wall time, stdout size, and its cProfile top functions.
Takes 3-4 minutes with the defaults on an idle 2-core machine. Nothing asserts on time; exit 1
if a run failed or the define counts are not N.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _fleetlib as F  # noqa: E402
import libvirt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
AUDIT = os.path.join(F.ROOT, "playbooks", "audit.yml")
REMEDIATE = os.path.join(F.ROOT, "playbooks", "remediate.yml")

PING_YML = """---
- name: Baseline, one trivial task
  hosts: hypervisors
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""

LOOP_YML = """---
- name: The per-domain loop a community.libvirt user writes (virt command=get_xml), emulated
  hosts: hypervisors
  gather_facts: false
  tasks:
    - name: Get the XML of every domain, one module run each
      vf_get_xml:
        uri: "{{ virtfleet_uri }}"
        name: "{{ item }}"
      loop: "{{ vf_loop_domains }}"
      register: vf_xml
"""

GET_XML_MODULE = '''#!/usr/bin/python
"""community.libvirt.virt command=get_xml, reduced to what it does for one domain."""
from ansible.module_utils.basic import AnsibleModule
import libvirt


def main():
    module = AnsibleModule(argument_spec=dict(name=dict(type="str", required=True),
                                              uri=dict(type="str", default="qemu:///system")))
    conn = libvirt.open(module.params["uri"])
    xml = conn.lookupByName(module.params["name"]).XMLDesc(0)
    conn.close()
    module.exit_json(changed=False, get_xml=xml)


if __name__ == "__main__":
    main()
'''


class Runner:
    def __init__(self, uri, fleet, workdir):
        self.uri, self.fleet, self.workdir = uri, fleet, workdir
        self.reports = os.path.join(workdir, "reports")
        self.inventory = F.write_inventory(
            os.path.join(workdir, "inventory.json"), uri, exclude=fleet.exclude, virtfleet_report_dir=self.reports,
            audit_disk_cache="none", remediate_disk_cache="none",
            vf_loop_domains=[])
        for name, text in (("ping.yml", PING_YML), ("loop.yml", LOOP_YML), ("library/vf_get_xml.py", GET_XML_MODULE)):
            path = os.path.join(workdir, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
        self.runs = 0
        self.problems = []
        self.tasks = {}        # kind -> [ [(task, seconds)], ... ]

    def measure(self, func, *args):
        """``func(*args)``, redone when the shared libvirtd was restarted under it; None (and a problem) when
        it failed three times."""
        try:
            return F.retry(func, self.fleet, *args)
        except (F.Interrupted, libvirt.libvirtError) as exc:
            self.problems.append("%s: %s" % (getattr(func, "__name__", func), exc))
            return None

    def playbook(self, kind, playbook, args=(), extra_env=None):
        self.runs += 1
        timer = os.path.join(self.workdir, "timer-%d.json" % self.runs)
        env = {"ANSIBLE_CALLBACK_PLUGINS": os.path.join(HERE, "callback_plugins"),
               "ANSIBLE_CALLBACKS_ENABLED": "vf_timer", "VF_TIMER_OUT": timer, "VF_TIMER_T0": repr(time.time())}
        env.update(extra_env or {})
        seconds, proc = F.run_playbook(playbook, self.inventory, args, env=env, cwd=self.workdir)
        if proc.returncode != 0:
            raise F.Interrupted("%s: rc %d\n%s\n%s" % (kind, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
        if os.path.exists(timer):
            with open(timer, encoding="utf-8") as handle:
                events = json.load(handle)
            self.tasks.setdefault(kind, []).append(
                [(events[i][1] if events[i][0] != "t0" else "(start-up: python, ansible, inventory, playbook)",
                  events[i + 1][2] - events[i][2]) for i in range(len(events) - 1)])
        return seconds, proc

    def report(self, name):
        with open(os.path.join(self.reports, name + ".json"), encoding="utf-8") as handle:
            return json.load(handle)

    def audit(self, kind="audit", playbook=AUDIT, extra_env=None):
        seconds, _proc = self.playbook(kind, playbook, ["--check"], extra_env)
        rep = self.report("compliance")["summary"]
        n = len(self.fleet.names)
        if rep["domains"]["total"] != n or rep["domains"]["with_findings"] != n:
            raise F.Interrupted("audit report: %s" % rep["domains"])
        return seconds

    def ping(self):
        return self.playbook("ping", os.path.join(self.workdir, "ping.yml"))[0]

    def loop(self, names):
        return self.playbook("loop", os.path.join(self.workdir, "loop.yml"),
                             ["-e", json.dumps({"vf_loop_domains": names})])[0]

    def remediate(self, counter):
        self.reset(counter)
        backups = os.path.join(self.workdir, "backups-%d" % self.runs)
        seconds, _proc = self.playbook("remediate", REMEDIATE, ["-e", json.dumps({"virtfleet_backup_dir": backups})])
        n = len(self.fleet.names)
        events = counter.settle(expected=n)
        files = len([f for f in os.listdir(backups) if not f.startswith(".")]) if os.path.isdir(backups) else 0
        rep = self.report("remediation")["summary"]
        shutil.rmtree(backups, ignore_errors=True)
        if events != n or files != n or rep["findings"]["by_status"].get("fixed") != 5 * n:
            raise F.Interrupted("remediate: %d DEFINED events, %d backups, expected %d each; report %s"
                                % (events, files, n, rep["findings"]))
        return seconds, events, files, rep

    def reset(self, counter):
        """Reset the fleet, wait for the reset's own DEFINED events, then count from 0."""
        counter.reset()
        self.fleet.reset()
        counter.settle(expected=len(self.fleet.names))
        time.sleep(0.3)
        counter.reset()

    def defines(self, patched, counter):
        self.reset(counter)
        started = time.perf_counter()
        conn = F._open(self.uri)
        for xml in patched:
            conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        conn.close()
        seconds = time.perf_counter() - started
        events = counter.settle(expected=len(patched))
        if events != len(patched):
            raise F.Interrupted("bare defines: %d DEFINED events, expected %d" % (events, len(patched)))
        return seconds, events


def task_table(runner, kind, top=30):
    """Median seconds per task over the runs of ``kind`` (tasks matched by position)."""
    runs = runner.tasks.get(kind) or []
    if not runs:
        return ""
    rows = []
    for i, (name, _sec) in enumerate(runs[0]):
        values = [r[i][1] for r in runs if len(r) > i]
        rows.append((F.median(values), name))
    total = sum(s for s, _n in rows)
    rows.sort(reverse=True)
    lines = ["%s: median per task over %d run(s) (sum %.2f s), top %d:" % (kind, len(runs), total, top)]
    lines += ["  %7.3f s  %5.1f%%  %s" % (s, 100 * s / total, n[:110]) for s, n in rows[:top]]
    return "\n".join(lines)


def profile_module(uri, fleet, workdir):
    """virt_policy as Ansible runs it (python -m, args file, check mode): wall time, stdout size, cProfile."""
    path = os.path.join(workdir, "module-args.json")
    module = "ansible_collections.virtfleet.libvirt.plugins.modules.virt_policy"
    env = F.ansible_env()

    def run(findings_format, *python_args):
        """(wall seconds, process) of one module run with ``findings_format`` (``python_args`` before -m)."""
        args = {"ANSIBLE_MODULE_ARGS": {"uri": uri, "exclude": fleet.exclude, "rules": F.POLICY,
                                        "backup_dir": os.path.join(workdir, "unused"), "_ansible_check_mode": True,
                                        "findings_format": findings_format}}
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(args, handle)
        return F.timed(subprocess.run, [sys.executable, *python_args, "-m", module, path], capture_output=True,
                       text=True, env=env, check=False)

    wall, proc = run("list")
    stats = os.path.join(workdir, "module.prof")
    run("list", "-m", "cProfile", "-o", stats)
    lines = ["virt_policy module process, check mode, %d domains: %.3f s wall, stdout %.2f MB (rc %d)"
             % (len(fleet.names), wall, len(proc.stdout) / 1e6, proc.returncode)]
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(stats, stream=out).strip_dirs().sort_stats(key).print_stats(22)
        lines.append("--- cProfile of the module process, by %s ---" % key)
        lines += [ln for ln in out.getvalue().splitlines() if ln.strip()]
    # JSON encode/decode of the result, the two ends of the module's stdout
    result = json.loads(proc.stdout)
    sec_dump, text = F.timed(json.dumps, result)
    sec_load, _loaded = F.timed(json.loads, text)
    lines.append("json.dumps of the result: %.3f s, json.loads: %.3f s (%.2f MB, %d findings)"
                 % (sec_dump, sec_load, len(text) / 1e6, len(result.get("findings", []))))
    # The same run with findings_format json, as the checks role asks for it (findings as one JSON text).
    wall_json, proc_json = run("json")
    lines.append("the same with findings_format json (the checks role's): %.3f s wall, stdout %.2f MB (rc %d)"
                 % (wall_json, len(proc_json.stdout) / 1e6, proc_json.returncode))
    lines += report_side(result, json.loads(proc_json.stdout))
    return "\n".join(lines)


def report_side(result, result_json):
    """The controller-side pieces the playbook runs on the module result, timed one by one in this process.

    ``result`` has the findings as a list, ``result_json`` the same as one JSON text (findings_format json).
    """
    import copy
    import pickle

    from ansible.module_utils.common.parameters import remove_values
    from ansible_collections.virtfleet.libvirt.plugins.filter import fleet_report as fr

    out = ["controller-side pieces on that result, in this process (seconds, median of 3):"]

    def t(label, func, *args):
        secs = []
        for _round in range(3):
            sec, value = F.timed(func, *args)
            secs.append(sec)
        out.append("  %7.3f  %s" % (F.median(secs), label))
        return value

    t("remove_values(result, set()) (AnsibleModule.exit_json, no no_log values at all)", remove_values, result, set())
    t("remove_values of the findings_format json result", remove_values, result_json, set())
    fact = {"host": "localhost", "uri": "qemu:///system", "mode": "audit", "check_mode": True, "status": "ok",
            "error": None, "checks": {}, "summary": result["summary"], "domains": result["domains"],
            "findings": result["findings"]}
    t("pickle round trip of the result (worker -> strategy, once per task result)",
      lambda: pickle.loads(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)))
    t("pickle round trip of the findings_format json result",
      lambda: pickle.loads(pickle.dumps(result_json, protocol=pickle.HIGHEST_PROTOCOL)))
    t("copy.deepcopy of the result (a copy of a fact)", copy.deepcopy, result)
    hostvars = {"localhost": {"virtfleet_audit_result": fact}}
    report = t("fleet_report(hosts, hostvars) (the Merge set_fact's filter)", fr.build_report, ["localhost"], hostvars)
    text = t("to_nice_json(report) (json.dumps indent=2)", lambda: json.dumps(report, indent=2, sort_keys=False))
    t("fleet_report_junit(report)", fr.render_junit, report)
    html = t("fleet_report_html(report)", fr.render_html, report)
    t("pickle round trip of the report", lambda: pickle.loads(pickle.dumps(report, protocol=pickle.HIGHEST_PROTOCOL)))
    out.append("  sizes: report JSON %.2f MB, HTML %.2f MB" % (len(text) / 1e6, len(html) / 1e6))
    return out


def py_spy(binary, runner, top=45):
    """One audit.yml --check under py-spy (every process); the most sampled functions, inclusive and own."""
    out = os.path.join(runner.workdir, "py-spy.txt")
    cmd = [binary, "record", "--subprocesses", "--rate", "200", "--format", "raw", "-o", out, "--",
           F.ANSIBLE_PLAYBOOK, "-i", runner.inventory, AUDIT, "--check"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=F.ansible_env(), cwd=runner.workdir, check=False)
    wall = time.perf_counter() - started
    if not os.path.exists(out):
        return "py-spy failed (rc %d): %s" % (proc.returncode, proc.stderr[-2000:])
    if os.environ.get("VF_PYSPY_KEEP"):   # keep the raw samples (one stack per line) for a closer look
        shutil.copy(out, os.environ["VF_PYSPY_KEEP"])
    inclusive, own, total = {}, {}, 0
    with open(out, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            stack, _sep, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
            total += n
            for name in {_short(f) for f in frames}:
                inclusive[name] = inclusive.get(name, 0) + n
            if frames:
                own[_short(frames[-1])] = own.get(_short(frames[-1]), 0) + n
    rate = 200.0
    lines = ["py-spy over one audit.yml --check (%.1f s wall under py-spy, %d samples = %.1f s of CPU+wait in all "
             "processes, %.0f Hz):" % (wall, total, total / rate, rate)]
    skip = ("<module>", "_run_code", "run_module", "_bootstrap", "_call_with_frames_removed", "exec_module")
    for title, table in (("inclusive", inclusive), ("own", own)):
        lines.append("--- %s samples, top %d (s = samples / rate) ---" % (title, top))
        rows = sorted(((v, k) for k, v in table.items() if not any(x in k for x in skip)), reverse=True)[:top]
        lines += ["  %7.2f s  %s" % (v / rate, k[:150]) for v, k in rows]
    return "\n".join(lines)


def _short(frame):
    """'func (path/to/file.py:123)' -> 'func (file.py)' so that lines of one function add up."""
    name, _sep, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0].rstrip(")")
    parts = path.split("/")
    return "%s (%s)" % (name, "/".join(parts[-2:]))


def checkout(rev, workdir):
    """Revision ``rev`` of this repository under ``workdir`` as a collection: (its audit.yml, its env)."""
    tree = os.path.join(workdir, "rev")
    os.makedirs(tree)
    archive = subprocess.run(["git", "-C", F.ROOT, "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
    collections = os.path.join(tree, ".build", "collections")
    link = os.path.join(collections, "ansible_collections", "virtfleet", "libvirt")
    os.makedirs(os.path.dirname(link))
    os.symlink(tree, link)
    return os.path.join(tree, "playbooks", "audit.yml"), {"ANSIBLE_COLLECTIONS_PATH": collections,
                                                          "PYTHONPATH": collections}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rounds-remediate", type=int, default=3)
    parser.add_argument("--loop-domains", type=int, default=50)
    parser.add_argument("--loop-rounds", type=int, default=3)
    parser.add_argument("--part", choices=("audit", "remediate", "all"), default="all")
    parser.add_argument("--profile-module", action="store_true")
    parser.add_argument("--py-spy", default=None, metavar="PATH")
    parser.add_argument("--uri", default=None)
    parser.add_argument("--against", default=None, metavar="REV")
    args = parser.parse_args()
    uri = args.uri or F.lab_env()["LIBVIRT_URI"]
    workdir = tempfile.mkdtemp(prefix="vfbench-")
    load = [os.getloadavg()[0]]
    res = {k: [] for k in ("audit", "ping", "floor", "loop", "remediate", "defines", "against")}
    counts = []
    notes = []
    try:
        with F.Fleet(uri) as fleet:
            took = fleet.grow(args.domains)
            print("fleet %s* on %s: %d domains defined in %.1f s; work dir %s"
                  % (fleet.prefix, uri, args.domains, took, workdir), flush=True)
            runner = Runner(uri, fleet, workdir)
            loop_names = fleet.names[:args.loop_domains]
            if args.part in ("audit", "all"):
                kinds = ["audit", "ping", "floor"]
                if args.against:
                    against = checkout(args.against, workdir)
                    kinds.insert(1, "against")
                for rnd in range(args.rounds):
                    order = kinds[rnd % len(kinds):] + kinds[:rnd % len(kinds)]
                    if rnd < args.loop_rounds:
                        order.insert(rnd % (len(order) + 1), "loop")
                    for kind in order:
                        if kind == "audit":
                            sec = runner.measure(runner.audit)
                        elif kind == "against":
                            sec = runner.measure(runner.audit, "against", *against)
                        elif kind == "ping":
                            sec = runner.measure(runner.ping)
                        elif kind == "floor":
                            sec = runner.measure(lambda: F.timed(F.floor, uri, fleet.prefix, 2)[0])
                        else:
                            sec = runner.measure(runner.loop, loop_names)
                        if sec is not None:
                            res[kind].append(sec)
                    shown = ", ".join("%s %.2f s" % (k, res[k][-1]) for k in order if len(res[k]) > rnd)
                    print("audit round %d: %s" % (rnd + 1, shown), flush=True)
            if args.part in ("remediate", "all"):
                with F.DefineCounter(uri, fleet.prefix) as counter:
                    sec, events, files, rep = F.retry(runner.remediate, fleet, counter)   # gives the patched XML
                    patched = list(fleet.current_xml().values())
                    print("remediate warm-up: %.2f s, %d DEFINED events, %d backups, domains %s"
                          % (sec, events, files, rep["domains"]), flush=True)
                    for rnd in range(args.rounds_remediate):
                        order = ["remediate", "defines"] if rnd % 2 else ["defines", "remediate"]
                        for kind in order:
                            if kind == "remediate":
                                out = runner.measure(runner.remediate, counter)
                                if out is None:
                                    continue
                                sec, events, files, rep = out
                                counts.append((events, files, rep["domains"].get("with_findings"),
                                               rep["findings"]["by_status"].get("fixed")))
                            else:
                                out = runner.measure(runner.defines, patched, counter)
                                if out is None:
                                    continue
                                sec = out[0]
                            res[kind].append(sec)
                        print("remediate round %d: %s; defines counted (events, backups): %s"
                              % (rnd + 1, ", ".join("%s %.2f s" % (k, res[k][-1]) for k in order if res[k]),
                                 counts[-1][:2] if counts else None), flush=True)
                    fleet.reset()
            if args.profile_module:
                notes.append(profile_module(uri, fleet, workdir))
            if args.py_spy:
                notes.append(py_spy(args.py_spy, runner))
            print("undefining %d domains ..." % len(fleet.names), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    load.append(os.getloadavg()[0])
    n = args.domains
    med = {k: F.median(v) for k, v in res.items()}
    rows = []
    print("\n$ %s" % " ".join([os.path.relpath(sys.executable, F.ROOT)] + sys.argv))
    print("%d inactive domains, 5 findings each (2 cache-policy, 3 alias-missing); load average %.1f -> %.1f "
          "(2 cores)" % (n, load[0], load[1]))
    if res["audit"]:
        base = med["ping"] + med["floor"]
        loop_per = (med["loop"] - med["ping"]) / args.loop_domains if res["loop"] and args.loop_domains else float("nan")
        loop_n = med["ping"] + loop_per * n
        rows += [["audit.yml --check (report included)", "%.2f" % med["audit"], len(res["audit"]), ""],
                 ["  baseline: ping playbook", "%.2f" % med["ping"], len(res["ping"]), ""],
                 ["  baseline: libvirt floor (list + 2 XMLDesc + parse)", "%.3f" % med["floor"], len(res["floor"]), ""],
                 ["  baseline: ping + floor", "%.2f" % base, "", ""],
                 ["audit / (ping + floor)", "", "", "%.2fx (target <= 2x)" % (med["audit"] / base)],
                 ["audit - ping (the collection's share)", "%.2f" % (med["audit"] - med["ping"]), "", ""],
                 ["per-domain loop, %d domains, measured" % args.loop_domains, "%.2f" % med["loop"],
                  len(res["loop"]), "%.0f ms per domain" % (loop_per * 1e3)],
                 ["per-domain loop, %d domains, extrapolated" % n, "%.1f" % loop_n, "", ""],
                 ["loop(%d) / audit" % n, "", "", "%.1fx faster" % (loop_n / med["audit"])]]
        if res["against"]:
            rows += [["audit.yml --check of %s" % args.against, "%.2f" % med["against"], len(res["against"]), ""],
                     ["audit(%s) / audit" % args.against, "", "", "%.2fx" % (med["against"] / med["audit"])],
                     ["collection's share: %s -> this tree" % args.against,
                      "%.2f -> %.2f" % (med["against"] - med["ping"], med["audit"] - med["ping"]), "", ""]]
    if res["remediate"]:
        rows += [["remediate.yml (report included), every rule firing", "%.2f" % med["remediate"],
                  len(res["remediate"]), "defines (events, backups) %s" % sorted({c[:2] for c in counts})],
                 ["  baseline: bare defineXMLFlags(VALIDATE) loop", "%.2f" % med["defines"], len(res["defines"]), ""],
                 ["remediate / defines", "", "", "%.2fx (target <= 1.5x)" % (med["remediate"] / med["defines"])],
                 ["remediate - ping - defines (the rest)", "%.2f" % (med["remediate"] - med.get("ping", 0) - med["defines"]),
                  "", "(ping from the audit part)" if res["ping"] else "(no ping measured)"]]
    print(F.table(rows, ["what", "median s", "runs", "ratio / note"]))
    for kind, values in res.items():
        if values:
            print("  %s runs: %s" % (kind, ", ".join("%.2f" % v for v in values)))
    for kind in ("audit", "against", "remediate", "ping"):
        table = task_table(runner, kind)
        if table:
            print(table)
    for note in notes:
        print(note)
    if runner.problems:
        print("PROBLEMS:\n  " + "\n  ".join(runner.problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
