"""playbooks/rolling_upgrade.yml on the mixed fleet, with a REAL upgrade of the canary from Debian 11 to 12.

The fleet (inventory_rollout.yml): the canary is the ``upgrade`` host of scripts/generations.sh -
a fresh Debian 11 tree (libvirt 7.0, QEMU 5.2, Python 3.9) unpacked from the bullseye cache by
``scripts/generations.sh reset upgrade`` - which the playbook's upgrade step (rollout_upgrade.yml)
takes to Debian 12 by ``apt-get dist-upgrade`` from Debian's archive and whose daemons its restart
step (rollout_restart.yml) restarts. The remaining batches are the shared Debian 11 and 12 hosts,
looked at only through this test's domains (``vf-mx-r*``; they are not upgraded).

1. **The rollout stops at the canary check.** ``vf-mx-r11-pc10`` on bullseye has machine type
   ``pc-1.0``, which QEMU 7.2 no longer offers. After the canary is upgraded, its snapshot is kept
   on the controller, every domain of bullseye and bookworm is checked against it, and the play
   fails naming bullseye, the domain and ``machine_type_not_offered``; neither remaining host was
   touched (definitions byte for byte the same, no task ran as them, no batch after the canary).
   The canary is Debian 12 now; the domains defined on it under 11 survived, unchanged.
2. **The rollout completes.** The operator moves the domain to ``pc-i440fx-5.2`` (offered by both
   QEMUs) and runs the playbook again: the check passes and both remaining batches go through.
   Then every domain of the canary really starts on its new QEMU (TCG) and is destroyed again.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time

import pytest

from genlib import HERE, ROOT, run

INVENTORY = os.path.join(HERE, "inventory_rollout.yml")
PLAYBOOK = os.path.join(ROOT, "playbooks", "rolling_upgrade.yml")
UPGRADE_TASKS = os.path.join(HERE, "rollout_upgrade.yml")
RESTART_TASKS = os.path.join(HERE, "rollout_restart.yml")
CANARY = "upgrade"
REMAINING = ("bullseye", "bookworm")
CANARY_PORT = 22321

# host -> {name: machine}; TCG, no OS, no disk (a start needs none).
DOMAINS = {
    CANARY: {"vf-mx-c-q35": "q35", "vf-mx-c-pc": "pc", "vf-mx-c-i440fx20": "pc-i440fx-2.0"},
    "bullseye": {"vf-mx-r11-ok": "q35", "vf-mx-r11-pc10": "pc-1.0"},
    "bookworm": {"vf-mx-r12-ok": "q35"},
}
BLOCKED = ("bullseye", "vf-mx-r11-pc10")
FIXED_MACHINE = "pc-i440fx-5.2"   # offered by QEMU 5.2 and 7.2


def domain_xml(name, machine):
    return ("<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64' machine='%s'>hvm</type></os><devices/></domain>" % (name, machine))


def recap(res):
    """{host: {ok, changed, failed, ...}} from the PLAY RECAP of an ansible-playbook run."""
    out = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", res.stdout, re.M):
        out[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return out


class Rollout:
    """The canary fleet (gen's helpers for the shared hosts, ssh to the canary's port)."""

    def __init__(self, gen, tmp):
        self.gen, self.tmp = gen, tmp
        self.snapshots = os.path.join(tmp, "reports")
        os.makedirs(self.snapshots, exist_ok=True)

    def ssh(self, host, cmd, check=True):
        # The shared hosts' libvirtd is restarted now and then by other suites (restart-libvirt): a
        # command that could not connect is retried for up to 30 s.
        for _attempt in range(30):
            res = self._ssh(host, cmd)
            if res.ok or "failed to connect to the hypervisor" not in res.stderr:
                break
            time.sleep(1)
        if check and not res.ok:
            pytest.fail("on %s: %s" % (host, res), pytrace=False)
        return res

    def _ssh(self, host, cmd):
        if host != CANARY:
            return self.gen.ssh(host, cmd, check=False)
        opts = ["-i", os.path.join(ROOT, ".build", "gen", "id_ed25519"), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=5", "-p", str(CANARY_PORT), "root@127.0.0.1"]
        return run(["ssh", *opts, cmd], 300)

    def virsh(self, host, *args, check=True):
        return self.ssh(host, "virsh -q -c qemu:///system %s" % " ".join(shlex.quote(a) for a in args), check).stdout

    def define(self, host, name, machine):
        self.ssh(host, "virsh -q -c qemu:///system define --validate /dev/stdin <<'EOF'\n%s\nEOF" % domain_xml(name, machine))

    def remove(self, host, name):
        self.virsh(host, "destroy", name, check=False)
        self.virsh(host, "undefine", name, check=False)

    def dumpxml(self, host, name):
        return self.virsh(host, "dumpxml", "--inactive", "--security-info", name)

    def versions(self, host):
        res = self.gen.sh("versions", "--json", host, timeout=120)
        assert res.ok, str(res)
        return json.loads(res.stdout)

    def playbook(self):
        extra = {"virtfleet_serial": 1, "virtfleet_upgrade_tasks": UPGRADE_TASKS, "virtfleet_restart_tasks": RESTART_TASKS,
                 "virtfleet_hosts": "rollout", "virtfleet_report_dir": self.snapshots}
        res = run([os.path.join(self.gen.bin_dir, "ansible-playbook"), "-i", INVENTORY, PLAYBOOK,
                   "-e", json.dumps(extra)], 1200, env=self.gen.env)
        return res


@pytest.fixture(scope="module")
def rollout(gen, tmp_path_factory):
    fleet = Rollout(gen, str(tmp_path_factory.mktemp("rollout")))
    reset = gen.sh("reset", CANARY, timeout=600)
    assert reset.ok, str(reset)
    assert fleet.versions(CANARY)["libvirt"] == "7.0.0"
    for host, doms in DOMAINS.items():
        for name, machine in doms.items():
            fleet.remove(host, name)
            fleet.define(host, name, machine)
    # the facts the remaining hosts must still have after a stopped rollout
    fleet.before = {h: {n: fleet.dumpxml(h, n) for n in DOMAINS[h]} for h in REMAINING}
    fleet.canary_before = {n: fleet.dumpxml(CANARY, n) for n in DOMAINS[CANARY]}
    fleet.stopped = fleet.playbook()
    fleet.after_stop = {h: {n: fleet.dumpxml(h, n) for n in DOMAINS[h]} for h in REMAINING}
    fleet.canary_versions = fleet.versions(CANARY)
    fleet.canary_after = {n: fleet.dumpxml(CANARY, n) for n in DOMAINS[CANARY]}
    # the operator's fix: the domain moves to a machine type both QEMUs offer, then the rollout resumes
    host, name = BLOCKED
    fleet.remove(host, name)
    fleet.define(host, name, FIXED_MACHINE)
    fleet.completed = fleet.playbook()
    yield fleet
    for host, doms in DOMAINS.items():
        for name in doms:
            fleet.remove(host, name)
    gen.sh("down", CANARY, timeout=300)


def test_the_rollout_stops_at_the_canary_check_naming_host_domain_and_reason(rollout):
    res = rollout.stopped
    assert res.rc != 0, res
    host, name = BLOCKED
    assert re.search(r"%s: domain %s would not start: machine_type_not_offered - " % (host, name), res.stdout), res
    assert "pc-1.0" in res.stdout, res
    assert "The rollout stops after the canary batch (%s): no further host was touched" % CANARY in res.stdout, res
    # only the blocked domain is named: the others start on QEMU 7.2
    for other in ("vf-mx-r11-ok", "vf-mx-r12-ok"):
        assert "domain %s would not start" % other not in res.stdout, res
    counts = recap(res)
    assert list(counts) == [CANARY], res           # no task ran as a remaining host
    assert counts[CANARY]["failed"] == 1, res
    assert not re.search(r"^(ok|changed|failed|fatal): \[(bullseye|bookworm)\]", res.stdout, re.M), res


def test_a_stopped_rollout_left_the_remaining_hosts_untouched(rollout):
    # (Their libvirtd pids prove nothing here: other suites restart the shared daemons, and this
    # test's restart step leaves them alone anyway. What the playbook did as them is in the recap.)
    assert rollout.after_stop == rollout.before, "a remaining host's definitions changed"
    assert "Pre-flight audit" not in rollout.stopped.stdout.split("Check every domain of every remaining host")[1]


def test_the_canary_was_really_upgraded_and_its_domains_survived(rollout):
    ver = rollout.canary_versions
    assert (ver["debian"].split(".")[0], ver["libvirt"], ver["qemu"][:3], ver["python"][:4]) == ("12", "9.0.0", "7.2", "3.11"), ver
    assert "changed: [%s -> localhost]" % CANARY in rollout.stopped.stdout, rollout.stopped  # the restart step ran
    # libvirt 9.0 writes <audio id='1' type='none'/> into every domain 7.0 defined: its own normalisation
    # (the backend QEMU already had), which facts_diff does not count as a change
    assert "3 domain(s) unchanged on %s\"" % CANARY in rollout.stopped.stdout, rollout.stopped
    assert "<audio id='1' type='none'/>" in rollout.canary_after["vf-mx-c-q35"]
    assert "<audio" not in rollout.canary_before["vf-mx-c-q35"]
    # /etc/libvirt/qemu survived the upgrade: same domains, same machine types (libvirt 9.0 may add defaults)
    for name in DOMAINS[CANARY]:
        before = re.search(r"machine='([^']+)'", rollout.canary_before[name]).group(1)
        after = re.search(r"machine='([^']+)'", rollout.canary_after[name]).group(1)
        assert before == after, (name, before, after)


def test_the_canary_snapshot_is_kept_on_the_controller(rollout):
    path = os.path.join(rollout.snapshots, "canary-%s-capabilities.json" % CANARY)
    with open(path, encoding="utf-8") as fh:
        snap = json.load(fh)
    assert snap["virtfleet_snapshot"] == 1 and snap["versions"]["libvirt"] == "9.0.0", snap.get("versions")
    assert path in rollout.stopped.stdout.replace("\n", " ") or os.path.basename(path) in rollout.stopped.stdout


def test_after_the_fix_the_rollout_completes_every_batch(rollout):
    res = rollout.completed
    assert res.rc == 0, res
    counts = recap(res)
    assert sorted(counts) == sorted((CANARY, *REMAINING)), res
    assert all(c["failed"] == 0 and c["unreachable"] == 0 for c in counts.values()), res
    assert re.search(r"The upgrade keeps none of the 3 domain\(s\) on 2 remaining\s+host\(s\) \(bullseye, bookworm\) from starting",
                     res.stdout), res
    assert res.stdout.count("PLAY [Rolling upgrade of the hypervisors]") == 3, res   # canary + 2 batches
    for host in REMAINING:
        assert "domain(s) unchanged on %s" % host in res.stdout, res


def test_the_upgraded_canary_starts_its_domains(rollout):
    """The prediction for the canary's own domains, checked: QEMU 7.2 starts what 5.2 defined."""
    failed = {}
    for name in DOMAINS[CANARY]:
        started = rollout.ssh(CANARY, "virsh -q -c qemu:///system start %s" % name, check=False)
        try:
            if not started.ok:
                failed[name] = started.stderr.strip()
        finally:
            rollout.virsh(CANARY, "destroy", name, check=False)
    assert failed == {}
