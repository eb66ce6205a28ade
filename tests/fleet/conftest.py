"""Fleet fixtures: three independent hypervisors on this machine, reached by Ansible over SSH.

``scripts/fleet.sh`` builds them: host N (``hv1``..``hv3``) is the Unix user ``vfhvN`` with its
own session libvirtd (``qemu:///session``) behind its own sshd on ``127.0.0.1:2220N``; the
inventory is ``tests/fleet/inventory.yml`` (``virtfleet_uri``, ``virtfleet_backup_dir`` per host).

- ``fleet`` (session) runs ``fleet.sh up`` and ``fleet.sh seed`` and FAILS every test when either
  fails (the fleet suite never skips). It yields a :class:`Fleet`: paths, the environment for
  ``ansible``/``ansible-playbook``, host control (``stop_host``, ``start_host``, ``unreachable``,
  ``restart_libvirt``, ``reseed``), ``ssh``/``virsh`` on a host as its user, and ``playbook``/
  ``ansible`` runners returning :class:`Result`.
- The seeded domains are in ``tests/fleet/domains/manifest.tsv`` (``fleet.domains``): tests that
  change them call ``fleet.reseed()`` afterwards (about 2-4 s), or use their own domain names.
- Hosts a test stopped are started again at the end of the session, whatever happened.
- ``ssh()`` reuses one SSH master connection per host; ``stop_host`` ends it with the host's
  other sessions.
- Do not run this suite with pytest-xdist: it stops hosts and restarts daemons.

Targets (tests/_target.py): ``VIRTFLEET_TARGET=bullseye|bookworm|trixie`` runs the same suite on
three such hosts built INSIDE that generation's tree (``VIRTFLEET_TARGET=<name> scripts/fleet.sh
up``): that release's session libvirtd, QEMU, Python and sshd, ports 222G1-222G3, inventory
``.build/fleet-<name>/inventory.yml``. ``fleet.target`` says which; ``fleet.host_path(p)`` is a
host path as seen from the controller.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
if os.path.join(ROOT, "tests") not in sys.path:
    sys.path.insert(0, os.path.join(ROOT, "tests"))
from _target import current  # noqa: E402

TARGET = current()
FLEET_SH = os.path.join(ROOT, "scripts", "fleet.sh")
INVENTORY = os.path.join(HERE, "inventory.yml") if not TARGET.is_gen else \
    os.path.join(ROOT, ".build", "fleet-%s" % TARGET.name, "inventory.yml")
MANIFEST = os.path.join(HERE, "domains", "manifest.tsv")
KEY = os.path.join(ROOT, ".build", "fleet", "id_ed25519")
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
HOSTS = ("hv1", "hv2", "hv3")
PORT_BASE = {"lab": 22200, "bullseye": 22210, "bookworm": 22220, "trixie": 22230}[TARGET.name]
URI = "qemu:///session"
SSH_OPTS = ("-i", KEY, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.fspath).startswith(HERE + os.sep):
            item.add_marker(pytest.mark.fleet)


def pytest_configure(config):
    config.addinivalue_line("markers", "fleet: needs the three-hypervisor SSH fleet (started by scripts/fleet.sh)")


def pytest_report_header(config):
    return "virtfleet target: %s" % TARGET


@dataclass
class Result:
    """What a command returned; ``str()`` shows everything, for assertion messages."""

    cmd: list
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self):
        return self.rc == 0

    def __str__(self):
        return "$ %s\nrc=%d\n--- stdout\n%s\n--- stderr\n%s" % (
            " ".join(shlex.quote(str(c)) for c in self.cmd), self.rc, self.stdout, self.stderr)


@dataclass
class Domain:
    host: str
    name: str
    template: str
    how: str     # define | file (legacy: the API refuses it)
    state: str   # running | shutoff (right after seeding)

    @property
    def legacy(self):
        return self.how == "file"


def read_manifest(path=MANIFEST):
    domains = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip() and not line.startswith("#"):
                domains.append(Domain(*line.split()))
    return domains


def host_name(n):
    """1 / '1' / 'hv1' -> 'hv1'."""
    text = str(n)
    name = text if text.startswith("hv") else "hv" + text
    if name not in HOSTS:
        raise ValueError("no fleet host %r (hosts: %s)" % (n, ", ".join(HOSTS)))
    return name


def host_number(n):
    return int(host_name(n)[2:])


def _run(cmd, timeout, env=None, input_text=None):
    env = dict(env or os.environ, VIRTFLEET_TARGET=TARGET.name)   # fleet.sh, and playbooks' localhost tasks
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, input=input_text, check=False)
    except subprocess.TimeoutExpired as exc:
        def _text(data):
            return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")
        return Result(list(cmd), -1, _text(exc.stdout), _text(exc.stderr) + "\n(timed out after %s s)" % timeout)
    return Result(list(cmd), proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Fleet:
    root: str = ROOT
    inventory: str = INVENTORY
    key: str = KEY
    hosts: tuple = HOSTS
    uri: str = URI
    target: object = TARGET
    bin_dir: str = os.path.dirname(sys.executable)
    domains: list = field(default_factory=read_manifest)
    stopped: set = field(default_factory=set)
    # ssh() multiplexes over one master per host (0.25 s -> ~20 ms a command); stop-host kills
    # the master with the host's other sessions, so a stopped host still refuses at once.
    control_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="vf-fleet-ssh-"))

    # --- environment ------------------------------------------------------------------------

    @property
    def env(self):
        """Environment for ansible / ansible-playbook (a fresh copy each time)."""
        env = dict(os.environ)
        env.update(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_FORCE_COLOR="0",
                   ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="False", ANSIBLE_RETRY_FILES_ENABLED="False")
        env["PATH"] = self.bin_dir + os.pathsep + env.get("PATH", "")
        return env

    def host_path(self, path):
        """A path of the hosts (all three share one root) as the controller sees it."""
        return self.target.path(path)

    def user(self, n):
        return "vf" + host_name(n)

    def home(self, n):
        return "/home/" + self.user(n)

    def port(self, n):
        return PORT_BASE + host_number(n)

    def backup_dir(self, n):
        return self.home(n) + "/virtfleet-backups"

    def domains_of(self, n):
        return [d for d in self.domains if d.host == host_name(n)]

    # --- fleet.sh -----------------------------------------------------------------------------

    def sh(self, *args, timeout=600):
        """Run scripts/fleet.sh; fails the test (with its output) when it fails."""
        res = _run(["bash", FLEET_SH, *[str(a) for a in args]], timeout)
        if not res.ok:
            pytest.fail("scripts/fleet.sh %s failed:\n%s" % (" ".join(map(str, args)), res), pytrace=False)
        return res

    def stop_host(self, n):
        """Stop host n's sshd and its sessions: Ansible reports the host UNREACHABLE."""
        self.stopped.add(host_name(n))
        return self.sh("stop-host", host_number(n))

    def start_host(self, n):
        res = self.sh("start-host", host_number(n))
        self.stopped.discard(host_name(n))
        return res

    @contextlib.contextmanager
    def unreachable(self, *hosts):
        """``with fleet.unreachable(2): ...``: the hosts are down inside, back up afterwards."""
        for n in hosts:
            self.stop_host(n)
        try:
            yield
        finally:
            for n in hosts:
                self.start_host(n)

    def stop_during(self, n, after_task, log_path):
        """Environment for :meth:`playbook` that stops host n (like :meth:`stop_host`) as soon as
        the task named ``after_task`` has finished on it, before Ansible starts the next task
        (tests/fleet/callback_plugins/vf_stop_host.py); the callback logs to ``log_path``.
        The host counts as stopped: :meth:`reseed` and the session end start it again."""
        self.stopped.add(host_name(n))
        return {"ANSIBLE_CALLBACK_PLUGINS": os.path.join(HERE, "callback_plugins"),
                "ANSIBLE_CALLBACKS_ENABLED": "vf_stop_host", "VF_STOP_HOST": host_name(n),
                "VF_STOP_AFTER_TASK": after_task, "VF_STOP_LOG": str(log_path),
                "VF_STOP_COMMAND": "bash %s stop-host %d" % (shlex.quote(FLEET_SH), host_number(n))}

    def restart_libvirt(self, n):
        """Restart host n's session libvirtd (it reads ~/.config/libvirt/qemu/*.xml only at start)."""
        return self.sh("restart-libvirt", host_number(n))

    def reseed(self):
        """Every host back to the fixture of manifest.tsv (and every host reachable again)."""
        for name in sorted(self.stopped):
            self.start_host(name)
        return self.sh("seed")

    # --- commands on a host -------------------------------------------------------------------

    def ssh(self, n, cmd, check=True, timeout=120, input_text=None):
        """Run the shell command ``cmd`` on host n as its user (over its sshd)."""
        res = _run(["ssh", *self._ssh_opts(n), cmd], timeout, input_text=input_text)
        if check and not res.ok:
            pytest.fail("on %s: %s" % (host_name(n), res), pytrace=False)
        return res

    def _ssh_opts(self, n):
        return [*SSH_OPTS, "-o", "ControlMaster=auto", "-o", "ControlPersist=60",
                "-o", "ControlPath=%s/%%C" % self.control_dir, "-p", str(self.port(n)), "%s@127.0.0.1" % self.user(n)]

    def close(self):
        """Stop the ssh masters of ssh() and start the hosts a test left stopped."""
        for n in self.hosts:
            _run(["ssh", *self._ssh_opts(n), "-O", "exit"], 30)
        for name in sorted(self.stopped):
            _run(["bash", FLEET_SH, "start-host", str(host_number(name))], 120)
        shutil.rmtree(self.control_dir, ignore_errors=True)

    def virsh(self, n, *args, check=True):
        """``virsh -c qemu:///session ARGS`` on host n; returns stdout."""
        cmd = "LIBVIRT_AUTOSTART=0 virsh -q -c %s %s" % (self.uri, " ".join(shlex.quote(str(a)) for a in args))
        return self.ssh(n, cmd, check=check).stdout

    def dumpxml(self, n, name, inactive=True):
        """The domain XML with secrets (what the modules read)."""
        args = ["dumpxml", "--security-info"] + (["--inactive"] if inactive else []) + [name]
        return self.virsh(n, *args)

    def list_domains(self, n):
        return sorted(self.virsh(n, "list", "--all", "--name").split())

    # --- ansible ------------------------------------------------------------------------------

    def playbook(self, playbook, *args, check=False, diff=False, limit=None, extra_vars=None, env=None, timeout=900):
        """Run ansible-playbook on the fleet inventory.

        ``playbook`` is a path, or YAML text (anything containing a newline), which is written to
        a temporary file first. ``extra_vars`` is a dict passed as JSON with ``-e``; ``env`` adds
        to the environment (:attr:`env`).
        """
        tmp = None
        if "\n" in playbook:
            handle = tempfile.NamedTemporaryFile("w", suffix=".yml", prefix="fleet-play-", delete=False)
            with handle:
                handle.write(playbook)
            tmp = playbook = handle.name
        cmd = [os.path.join(self.bin_dir, "ansible-playbook"), "-i", self.inventory, playbook]
        cmd += self._common(check, diff, limit, extra_vars) + [str(a) for a in args]
        try:
            return _run(cmd, timeout, env=dict(self.env, **(env or {})))
        finally:
            if tmp:
                os.unlink(tmp)

    def ansible(self, pattern, module, module_args=None, *args, check=False, diff=False, extra_vars=None, timeout=600):
        """Ad-hoc ``ansible PATTERN -m MODULE [-a ARGS]`` on the fleet inventory."""
        cmd = [os.path.join(self.bin_dir, "ansible"), "-i", self.inventory, pattern, "-m", module]
        if module_args:
            cmd += ["-a", module_args]
        cmd += self._common(check, diff, None, extra_vars) + [str(a) for a in args]
        return _run(cmd, timeout, env=self.env)

    @staticmethod
    def _common(check, diff, limit, extra_vars):
        out = []
        if check:
            out.append("--check")
        if diff:
            out.append("--diff")
        if limit:
            out += ["--limit", limit]
        if extra_vars:
            out += ["-e", json.dumps(extra_vars)]
        return out


@pytest.fixture(scope="session")
def fleet():
    """The running, seeded fleet. Fails (never skips) when it cannot be built."""
    if os.geteuid() != 0:
        pytest.fail("the fleet tests need root (scripts/fleet.sh creates users and runs one sshd per host)",
                    pytrace=False)
    if not os.path.exists(FLEET_SH):
        pytest.fail("%s is missing" % FLEET_SH, pytrace=False)
    the_fleet = Fleet()
    the_fleet.sh("up")
    the_fleet.sh("seed")
    try:
        yield the_fleet
    finally:
        the_fleet.close()
