"""The mixed-generation fleet (helpers of tests/generations; the fixtures are in conftest.py).

``scripts/generations.sh up`` builds them (cold: a few minutes, see docs/generations.md): host
``bullseye`` / ``bookworm`` / ``trixie`` is the chroot ``/var/lib/virtfleet-gen/<codename>`` with
that release's libvirtd, QEMU, Python, python3-libvirt and python3-lxml, behind its own sshd on
``127.0.0.1:2231N`` (root, key ``.build/gen/id_ed25519``); ``tests/generations/inventory.yml``.

- ``gen`` (session) runs ``scripts/generations.sh status``; when a host is not up, EVERY test
  fails and says to run ``scripts/generations.sh up`` (this suite never skips, and it does not
  start a cold build behind your back).
- ``EXPECTED`` is what each host must be: the Debian release and the upstream majors of libvirt,
  QEMU and Python that release ships.
- Domains of these tests are named ``gs-*`` (smoke) and ``probe-*`` (probe.py); both are removed
  before they are defined again, so reruns on a kept fleet start clean.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GEN_SH = os.path.join(ROOT, "scripts", "generations.sh")
INVENTORY = os.path.join(HERE, "inventory.yml")
KEY = os.path.join(ROOT, ".build", "gen", "id_ed25519")
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
STATE = os.environ.get("VIRTFLEET_GEN_STATE", "/var/lib/virtfleet-gen")
URI = "qemu:///system"
PORT_BASE = 22300
SETUP = "sudo scripts/generations.sh up   (or: make generations; cold about 3 min, then 1-2 s)"

# What each generation must be: Debian major, and the upstream major.minor its packages carry.
EXPECTED = {
    "bullseye": {"debian": "11", "libvirt": "7.0", "qemu": "5.2", "python": "3.9"},
    "bookworm": {"debian": "12", "libvirt": "9.0", "qemu": "7.2", "python": "3.11"},
    "trixie": {"debian": "13", "libvirt": "11.3", "qemu": "10.0", "python": "3.13"},
}
HOSTS = tuple(EXPECTED)
SSH_OPTS = ("-i", KEY, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5")


@dataclass
class Result:
    cmd: list
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self):
        return self.rc == 0

    def __str__(self):
        return "$ %s\nrc=%d\n--- stdout\n%s\n--- stderr\n%s" % (
            " ".join(shlex.quote(str(c)) for c in self.cmd), self.rc, self.stdout[-20000:], self.stderr[-20000:])


def run(cmd, timeout=300, env=None, input_text=None):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, input=input_text,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        return Result(list(cmd), -1, str(exc.stdout or ""), str(exc.stderr or "") + "\n(timed out after %s s)" % timeout)
    return Result(list(cmd), proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Generations:
    hosts: tuple = HOSTS
    inventory: str = INVENTORY
    uri: str = URI
    bin_dir: str = os.path.dirname(sys.executable)
    control_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="vf-gen-ssh-"))

    def tree(self, host):
        return os.path.join(STATE, host)

    def port(self, host):
        return PORT_BASE + int(EXPECTED[host]["debian"])

    @property
    def env(self):
        env = dict(os.environ)
        env.update(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_NOCOLOR="1",
                   ANSIBLE_FORCE_COLOR="0", ANSIBLE_DEPRECATION_WARNINGS="False", ANSIBLE_RETRY_FILES_ENABLED="False",
                   ANSIBLE_PYTHON_INTERPRETER="auto_silent")
        env.pop("ANSIBLE_PYTHON_INTERPRETER")  # the inventory says /usr/bin/python3 per host
        env["PATH"] = self.bin_dir + os.pathsep + env.get("PATH", "")
        return env

    def sh(self, *args, timeout=900):
        return run(["bash", GEN_SH, *args], timeout)

    def ssh(self, host, cmd, check=True, timeout=300, input_text=None):
        """Run the shell command ``cmd`` on ``host`` (inside its tree, as root, over its sshd)."""
        opts = [*SSH_OPTS, "-o", "ControlMaster=auto", "-o", "ControlPersist=60",
                "-o", "ControlPath=%s/%%C" % self.control_dir, "-p", str(self.port(host)), "root@127.0.0.1"]
        res = run(["ssh", *opts, cmd], timeout, input_text=input_text)
        if check and not res.ok:
            pytest.fail("on %s: %s" % (host, res), pytrace=False)
        return res

    def virsh(self, host, *args, check=True):
        return self.ssh(host, "virsh -q -c %s %s" % (URI, " ".join(shlex.quote(a) for a in args)), check=check).stdout

    def dpkg_version(self, host, package):
        """The version dpkg records in the host's own tree (read from the outside, not over SSH)."""
        res = run(["dpkg-query", "--admindir=%s/var/lib/dpkg" % self.tree(host), "-W", "-f=${Version}", package], 30)
        assert res.ok and res.stdout, "dpkg-query of %s in %s: %s" % (package, self.tree(host), res)
        return res.stdout

    def playbook(self, path, *args, env=None, timeout=900):
        res = run([os.path.join(self.bin_dir, "ansible-playbook"), "-i", self.inventory, path, *args], timeout,
                  env={**self.env, **(env or {})})
        return res

    def close(self):
        for host in self.hosts:
            run(["ssh", *SSH_OPTS, "-o", "ControlPath=%s/%%C" % self.control_dir, "-O", "exit",
                 "-p", str(self.port(host)), "root@127.0.0.1"], 30)
