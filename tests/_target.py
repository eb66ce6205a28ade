"""Which libvirt the suites that talk to libvirt run against: ``VIRTFLEET_TARGET``.

One suite, many daemons. ``VIRTFLEET_TARGET`` (default ``lab``) selects:

- ``lab``: the machine's own libvirtd (``scripts/lab.sh``, ``qemu:///system``, Debian 12:
  libvirt 9.0, QEMU 7.2); modules run with the test's own interpreter, as the suites always did.
- ``bullseye`` / ``bookworm`` / ``trixie``: a hypervisor of the mixed-generation fleet
  (``scripts/generations.sh``, docs/generations.md): the chroot ``/var/lib/virtfleet-gen/<name>``
  with that release's libvirtd, QEMU, Python, python3-libvirt and python3-lxml.

For a generation target:

- the test's own connection goes to that daemon's socket (``system_uri``:
  ``qemu+unix:///system?socket=<tree>/run/libvirt/libvirt-sock``); the modules, which run inside
  the tree, use ``qemu:///system`` (``module_uri``), which there is the same daemon;
- files both sides must see (disk images, the guest kernel, console logs, module work and backup
  directories: pytest's ``tmp_path``) live in the SHARED directory ``shared``
  (``/var/lib/virtfleet-target/<name>``), bind-mounted into the tree at the same path, so a path
  means the same file to the test, to the module and to QEMU. Other files of the host (its
  ``/etc/libvirt/qemu``) are reached from outside through ``path()`` (the tree prefix);
- modules run with the host's ``/usr/bin/python3`` inside the tree (``python_argv``). What Ansible's
  AnsiballZ wrapper would ship with them, ``ansible.module_utils`` of the controller's ansible-core
  and the collection's ``plugins/``, is copied into ``<shared>/pylib`` at the start of each
  session (``prepare``), nothing else: the host's own libvirt bindings and lxml are used;
- restarting "the" libvirtd restarts that host's (``generations.sh restart-libvirt``).

Suites call ``current()`` once and ``prepare()`` it in a session fixture; ``pytest_configure``
below points pytest's ``--basetemp`` into the shared directory (per suite) for generation targets.
No pytest fixtures here.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GEN_SH = os.path.join(ROOT, "scripts", "generations.sh")
LAB_SH = os.path.join(ROOT, "scripts", "lab.sh")
GEN_STATE = os.environ.get("VIRTFLEET_GEN_STATE", "/var/lib/virtfleet-gen")
SHARED_BASE = "/var/lib/virtfleet-target"
GEN_KEY = os.path.join(ROOT, ".build", "gen", "id_ed25519")
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GEN_SETUP = "scripts/generations.sh up   (or: make generations; cold about 3 min, then 1-2 s)"

# What each target is: the Debian release and the upstream major.minor its packages carry
# (the lab is the machine itself, Debian 12). Measured: docs/generations.md.
TARGETS = {
    "lab": {"debian": 12, "libvirt": (9, 0), "qemu": (7, 2), "python": (3, 11)},
    "bullseye": {"debian": 11, "libvirt": (7, 0), "qemu": (5, 2), "python": (3, 9)},
    "bookworm": {"debian": 12, "libvirt": (9, 0), "qemu": (7, 2), "python": (3, 11)},
    "trixie": {"debian": 13, "libvirt": (11, 3), "qemu": (10, 0), "python": (3, 13)},
}
GENERATIONS = ("bullseye", "bookworm", "trixie")
OLDEST_PYTHON = min(TARGETS[g]["python"] for g in GENERATIONS)


class TargetError(RuntimeError):
    """The target cannot be used; the message says how to bring it up."""


def name_from_env(env=None):
    name = (env if env is not None else os.environ).get("VIRTFLEET_TARGET", "lab") or "lab"
    if name not in TARGETS:
        raise TargetError("VIRTFLEET_TARGET=%s is not a target (known: %s)" % (name, ", ".join(TARGETS)))
    return name


def _run(cmd, timeout=300, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kw)


def _mount_tags(path):
    """The propagation tags (``shared:N``, ``master:N``) of the topmost mount at ``path``; None when
    nothing is mounted there."""
    tags = None
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if fields[4] == path:
                tags = fields[6:fields.index("-")]
    return tags


def _mounted(path):
    return _mount_tags(path) is not None


@dataclass(frozen=True)
class Target:
    name: str

    # --- what it is -------------------------------------------------------------------------------

    @property
    def is_gen(self):
        return self.name != "lab"

    @property
    def expected(self):
        return TARGETS[self.name]

    @property
    def tree(self):
        """The host's root directory ('' for the lab: the machine itself)."""
        return os.path.join(GEN_STATE, self.name) if self.is_gen else ""

    @property
    def shared(self):
        """A directory with the same path for the test, the host's daemon and its Python (None: lab)."""
        return os.path.join(SHARED_BASE, self.name) if self.is_gen else None

    def path(self, inside):
        """The path, seen from here, of the absolute path ``inside`` on the target host."""
        return self.tree + inside if self.is_gen else inside

    def shared_dir(self, sub, lab_default):
        """``<shared>/<sub>`` on a generation, ``lab_default`` on the lab."""
        return os.path.join(self.shared, sub) if self.is_gen else lab_default

    @property
    def domain_type(self):
        return "qemu"   # TCG everywhere: a Linux guest never boots under this machine's nested KVM

    @property
    def system_uri(self):
        """The URI of the host's system libvirtd for the test's own connection."""
        if not self.is_gen:
            return "qemu:///system"
        return "qemu+unix:///system?socket=%s/run/libvirt/libvirt-sock" % self.tree

    module_uri = "qemu:///system"   # the same daemon, as the modules on the host see it

    def session_uri(self, home, for_module=False):
        """A session daemon's URI for a user whose home is ``home`` on the host (no XDG_RUNTIME_DIR)."""
        sock = home + "/.cache/libvirt/libvirt-sock"
        return "qemu+unix:///session?socket=%s" % (sock if for_module else self.path(sock))

    @property
    def ssh_port(self):
        return 22300 + self.expected["debian"]

    # --- set-up -----------------------------------------------------------------------------------

    def prepare(self, plugins=None):
        """Make the target usable: a generation host must be up (``generations.sh status``), its
        shared directory mounted into the tree, the module libraries copied (``plugins``: another
        plugins/ directory than the working tree's). Raises TargetError."""
        if not self.is_gen:
            return self
        problems = self.problems()
        if problems:
            res = _run(["bash", GEN_SH, "status"], 120)
            raise TargetError("generation host %s is not up (%s). Run:\n    %s\nscripts/generations.sh status said:\n%s"
                              % (self.name, "; ".join(problems), GEN_SETUP, res.stderr))
        os.makedirs(self.shared, mode=0o755, exist_ok=True)
        os.chmod(self.shared, 0o755)
        self._mount_shared()
        self._no_qemu_namespace()
        self._sync_pylib(plugins or os.path.join(ROOT, "plugins"))
        return self

    def _mount_shared(self):
        """``shared`` bind-mounted into the tree at the same path, as a slave of the machine's side,
        so that what a test mounts under it here (a full or read-only tmpfs) is also there inside."""
        def run(*argv):
            res = _run(["mount", *argv], 60)
            if res.returncode:
                raise TargetError("mount %s failed: %s" % (" ".join(argv), res.stderr.strip()))

        tags = _mount_tags(self.shared)
        if tags is None or not any(t.startswith("shared:") for t in tags):
            if tags is None:
                run("--bind", self.shared, self.shared)
            run("--make-shared", self.shared)
        inside = self.tree + self.shared
        tags = _mount_tags(inside)
        if tags is not None and not any(t.startswith("master:") for t in tags):
            _run(["umount", inside], 60)   # a private bind (made before S was shared): make it again
            tags = _mount_tags(inside)
        if tags is None:
            os.makedirs(inside, exist_ok=True)
            run("--bind", self.shared, inside)
            run("--make-slave", inside)

    def _no_qemu_namespace(self):
        """``namespaces = [ ]`` in the tree's qemu.conf. In these chroots libvirt's private /dev for
        each QEMU (its mount namespace) comes out EMPTY on 7.0, 9.0 and 11.3 alike (no /dev/null, no
        /dev/urandom: an rng backend, a block device or QEMU 10's own entropy fail to start); the
        machine's own 9.0 daemon does not do that. Until scripts/generations.sh writes the line itself
        (it rewrites qemu.conf at every ``up``), add it and restart that libvirtd."""
        conf = self.path("/etc/libvirt/qemu.conf")
        with open(conf, encoding="utf-8") as handle:
            text = handle.read()
        if any(line.replace(" ", "") == "namespaces=[]" for line in text.splitlines()):
            return
        with open(conf, "a", encoding="utf-8") as handle:
            handle.write("%snamespaces = [ ]\n" % ("" if text.endswith("\n") else "\n"))
        sys.stderr.write("[target] %s: added 'namespaces = [ ]' to %s (scripts/generations.sh should write it); "
                         "restarting its libvirtd\n" % (self.name, conf))
        self.restart_libvirtd()

    def problems(self):
        """What keeps the generation host from being used (empty when it is up): its tree mounted,
        its libvirtd answering on its socket, its sshd accepting connections."""
        if not os.path.isdir(os.path.join(self.tree, "usr", "bin")):
            return ["no tree %s" % self.tree]
        out = []
        if not _mounted(os.path.join(self.tree, "proc")):
            out.append("%s/proc is not mounted" % self.tree)
        res = _run(["virsh", "-q", "-c", self.system_uri, "version"], 30, env=dict(os.environ, LIBVIRT_AUTOSTART="0"))
        if res.returncode:
            out.append("libvirtd does not answer at %s: %s" % (self.system_uri, res.stderr.strip()[-200:]))
        try:
            socket.create_connection(("127.0.0.1", self.ssh_port), timeout=5).close()
        except OSError as exc:
            out.append("sshd on 127.0.0.1:%d: %s" % (self.ssh_port, exc))
        return out

    @property
    def pylib(self):
        return os.path.join(self.shared, "pylib")

    def _sync_pylib(self, plugins):
        """ansible.module_utils (the controller's ansible-core, as AnsiballZ ships it) and the
        collection's plugins/, fresh: what a module imports on a managed host, nothing more."""
        import ansible.module_utils  # noqa: PLC0415 - the controller's, wherever it is installed
        new = self.pylib + ".new"
        shutil.rmtree(new, ignore_errors=True)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(os.path.dirname(ansible.module_utils.__file__), os.path.join(new, "ansible", "module_utils"),
                        ignore=ignore)
        with open(os.path.join(new, "ansible", "__init__.py"), "w", encoding="utf-8"):
            pass
        shutil.copytree(plugins,
                        os.path.join(new, "ansible_collections", "virtfleet", "libvirt", "plugins"), ignore=ignore)
        old = self.pylib + ".old"
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(self.pylib):
            os.rename(self.pylib, old)
        os.rename(new, self.pylib)
        shutil.rmtree(old, ignore_errors=True)

    # --- running things on the host ---------------------------------------------------------------

    def python_argv(self, args, cwd=None):
        """argv that runs ``python3 ARGS`` as the target's Python (in ``cwd``, a shared path)."""
        if not self.is_gen:
            return [sys.executable, *args]
        env = ["env", "-i", "PATH=" + CHROOT_PATH, "HOME=/root", "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1",
               "PYTHONPATH=" + self.pylib]
        return ["chroot", self.tree, "env", "-C", cwd or "/", *env, "/usr/bin/python3", *args]

    def module_env(self, base_env):
        """Environment for ``python_argv`` (the chroot command clears it itself)."""
        return base_env if not self.is_gen else {"PATH": os.environ.get("PATH", CHROOT_PATH)}

    def in_host(self, argv, timeout=300, input_text=None):
        """Run ``argv`` as root on the target host (inside its tree); CompletedProcess."""
        if self.is_gen:
            argv = ["chroot", self.tree, "env", "-i", "PATH=" + CHROOT_PATH, "HOME=/root", "LANG=C.UTF-8", *argv]
        return _run(argv, timeout, input=input_text)

    def restart_libvirtd(self):
        """Restart the host's system libvirtd (it reads /etc/libvirt/qemu/*.xml only at start)."""
        cmd = ["bash", GEN_SH, "restart-libvirt", self.name] if self.is_gen else ["bash", LAB_SH, "restart"]
        res = _run(cmd, 600)
        if res.returncode:
            raise TargetError("%s failed (rc %d):\n%s%s" % (" ".join(cmd[1:]), res.returncode, res.stdout, res.stderr))

    def inventory_line(self, alias=None):
        """One INI inventory line reaching the host the way Ansible reaches it (AnsiballZ over SSH
        for a generation, the local connection with the test's interpreter for the lab)."""
        if not self.is_gen:
            return "%s ansible_connection=local ansible_python_interpreter=%s" % (alias or "localhost", sys.executable)
        return ("%s ansible_host=127.0.0.1 ansible_port=%d ansible_user=root ansible_connection=ssh "
                "ansible_ssh_private_key_file=%s ansible_python_interpreter=/usr/bin/python3 "
                "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'"
                % (alias or self.name, self.ssh_port, GEN_KEY))

    def python_version(self):
        res = self.in_host(["python3", "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"], 60) \
            if self.is_gen else None
        return res.stdout.strip() if res is not None else "%d.%d.%d" % sys.version_info[:3]

    def dpkg_version(self, package):
        """The version dpkg records on the host (its own database, read from here)."""
        cmd = ["dpkg-query", "-W", "-f=${Version}", package]
        if self.is_gen:
            cmd.insert(1, "--admindir=%s/var/lib/dpkg" % self.tree)
        res = _run(cmd, 60)
        return res.stdout.strip() if res.returncode == 0 else None

    def __str__(self):
        exp = self.expected
        return "%s (Debian %d, libvirt %d.%d, QEMU %d.%d, Python %d.%d)" % (
            self.name, exp["debian"], *exp["libvirt"], *exp["qemu"], *exp["python"])


def current():
    return Target(name_from_env())


def configure_basetemp(config, suite):
    """pytest_configure helper: on a generation target, pytest's basetemp (``tmp_path``) goes into
    the shared directory (``<shared>/pytest-<suite>``), so module work and backup dirs made there
    are the same path for the module inside the tree. An explicit ``--basetemp`` wins."""
    target = current()
    if target.is_gen and not config.option.basetemp:
        config.option.basetemp = os.path.join(target.shared, "pytest-%s" % suite)
        os.makedirs(target.shared, mode=0o755, exist_ok=True)


# --- messages that differ between generations (docs/generations.md, row 2) -------------------------

# libvirt 7.0: "native I/O needs either no disk cache or directsync cache mode, QEMU will fallback
# to aio=threads"; 9.0 and 11.3: "io='native' needs either no disk cache or directsync cache mode".
NATIVE_IO_WORDINGS = ("native I/O needs either no disk cache or directsync cache mode",
                      "io='native' needs either no disk cache or directsync cache mode")


def is_native_io_refusal(text):
    """True when ``text`` carries libvirt's refusal of io='native' with a cached disk, in the
    wording of any supported generation."""
    return any(w in text for w in NATIVE_IO_WORDINGS)


def refuses_long_vnc_password(target):
    """libvirt 7.0 accepts a VNC password longer than 8 characters at define; 9.0 and later
    refuse it (code 67 "VNC password is N characters long, only 8 permitted")."""
    return TARGETS[target.name]["libvirt"] >= (9, 0)
