# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One virtfleet run at a time per libvirt URI on a host (private; no libvirt, no Ansible).

Two virtfleet runs against one daemon (an alias run and a disk-io run started together, two
AWX jobs) would each re-read and find the other's change: nothing is lost (the engine's re-read
guard reports ``conflict``), but half the work is not done. The lock makes the second run wait
for the first instead. It is an advisory ``flock`` on a file keyed by the URI, so it is released
by the kernel when the module process dies (SIGKILL included): a stale lock cannot exist.

Other tools (virsh, virt-manager, Nova) do not take it; against them the re-read guard alone
protects the definitions.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import tempfile
import time

from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import HostLocked


def lock_dir():
    """Where lock files live: /run/lock/virtfleet for root, the user's runtime or temp dir otherwise."""
    if os.geteuid() == 0 and os.path.isdir("/run/lock"):
        return "/run/lock/virtfleet"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "virtfleet")
    return os.path.join(tempfile.gettempdir(), "virtfleet-%d" % os.geteuid())


def lock_path(uri):
    return os.path.join(lock_dir(), "lock-%s" % hashlib.sha256(uri.encode("utf-8")).hexdigest()[:16])


class HostLock:
    """``with HostLock(uri, timeout):`` waits up to ``timeout`` s for other runs on ``uri``."""

    def __init__(self, uri, timeout=300.0, poll=0.05, clock=time.monotonic, sleep=time.sleep):
        self.uri = uri
        self.timeout = timeout
        self.poll = poll
        self.path = lock_path(uri)
        self.waited = 0.0
        self._clock, self._sleep = clock, sleep
        self._fd = None

    def __enter__(self):
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.lstat(directory)
        if not os.path.isdir(directory) or os.path.islink(directory) or st.st_uid != os.geteuid():
            raise HostLocked("Lock directory %s is not a directory owned by this user (uid %d). Nothing was "
                             "changed; remove it or set TMPDIR/XDG_RUNTIME_DIR to a private directory."
                             % (directory, os.geteuid()), lock=self.path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
        start = self._clock()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
            if self._clock() - start >= self.timeout:
                holder = _holder(fd)
                os.close(fd)
                raise HostLocked(
                    "Another virtfleet run (%s) has been changing domains at %s for more than %.0f s (lock %s). "
                    "Nothing was changed; let it finish and rerun, or raise lock_timeout."
                    % (holder, self.uri, self.timeout, self.path), lock=self.path)
            self._sleep(self.poll)
        self.waited = self._clock() - start
        os.ftruncate(fd, 0)
        os.write(fd, ("%d\n" % os.getpid()).encode("ascii"))
        self._fd = fd
        return self

    def __exit__(self, *_exc):
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None
        return False


def _holder(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        pid = os.read(fd, 32).decode("ascii", "replace").strip()
    except OSError:
        pid = ""
    return "pid %s" % pid if pid else "pid unknown"
