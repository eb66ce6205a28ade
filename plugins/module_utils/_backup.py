# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups of domain definitions before every define (private, no libvirt).

The inactive XML is read with VIR_DOMAIN_XML_SECURE, so a backup can hold graphics passwords:
files are 0600 in a 0700 directory.

Rules for ``backup_dir`` (the last path component; its ancestors may be symlinks):

* a symlink is refused, never followed (it could point at a shared directory);
* a missing directory, and every missing ancestor, is created 0700 whatever the umask;
* an existing directory is never re-permissioned: it is used only if it is private
  (no group/other bits) and writable, otherwise refused with what to do.

A backup is written to a temporary file in ``backup_dir`` (O_EXCL, O_NOFOLLOW, 0600), fsynced,
published under its final name without ever replacing a file, and the directory is fsynced:
when :func:`write_backup` returns, the backup is durable; when it raises, no file named like a
backup was left behind.
"""

from __future__ import annotations

import binascii
import datetime
import errno
import hashlib
import os
import re
import stat

from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import BackupFailed, InvalidRequest

DEFAULT_BACKUP_DIR = "/var/lib/virtfleet/backups"

NAME_MAX = 255  # bytes, the limit of (nearly) every Linux file system; a smaller fpathconf wins
_HASH_CHARS = 10  # hex digits of sha256(full domain name) appended to a truncated name
_MAX_ATTEMPTS = 100  # same name, uuid and microsecond: suffixes -1 .. -99
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_TMP_PREFIX = ".virtfleet-tmp-"

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_DIR_FLAGS = os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC
_LINK_UNSUPPORTED = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS}


def _unusable(backup_dir, reason, todo="point backup_dir at a writable absolute directory"):
    return InvalidRequest("Cannot use backup_dir %s (%s). Nothing was changed; %s." % (backup_dir, reason, todo),
                          backup_dir=backup_dir)


def _checked_path(backup_dir):
    """``backup_dir`` without redundant slashes and '.', or InvalidRequest."""
    if not backup_dir or not isinstance(backup_dir, str) or not os.path.isabs(backup_dir):
        raise InvalidRequest("backup_dir must be an absolute path, got %r. Nothing was changed." % (backup_dir,))
    if "\0" in backup_dir or ".." in backup_dir.split("/"):
        raise InvalidRequest("backup_dir must be an absolute path without '..' components or NUL bytes, got %r. "
                             "Nothing was changed." % (backup_dir,))
    return os.path.normpath(backup_dir)  # safe without '..': only drops '//', '/./' and trailing '/'


def _check_existing(backup_dir, fd):
    """Refuse an existing directory that is not private to us or not writable (never chmod it)."""
    st = os.fstat(fd)
    perms, uid, euid = stat.S_IMODE(st.st_mode), st.st_uid, os.geteuid()
    if perms & 0o077:
        if uid != euid:
            raise _unusable(backup_dir, "it exists with mode %04o, is owned by uid %d, not by uid %d running "
                            "virtfleet, and is accessible to group/others" % (perms, uid, euid),
                            "backups can hold graphics passwords and virtfleet does not re-permission a directory "
                            "it did not create; point backup_dir at a directory of your own with mode 0700, or "
                            "at a path that does not exist yet (it is created 0700)")
        raise _unusable(backup_dir, "it exists with mode %04o and is accessible to group/others" % perms,
                        "backups can hold graphics passwords and virtfleet does not re-permission a directory it "
                        "did not create; run 'chmod 0700 %s' if it is yours alone, or point backup_dir at a path "
                        "that does not exist yet (it is created 0700)" % backup_dir)
    if not os.access(backup_dir, os.W_OK | os.X_OK):
        raise _unusable(backup_dir, "not writable")


def _open_backup_dir(backup_dir):
    """Open (creating it 0700 if missing) the backup directory; returns (dir fd, normalised path)."""
    path = _checked_path(backup_dir)
    missing, head = [], path
    while True:
        try:
            st = os.lstat(head)
        except FileNotFoundError:
            parent = os.path.dirname(head)
            if parent == head:
                raise _unusable(backup_dir, "no such file system root")
            missing.append(os.path.basename(head))
            head = parent
            continue
        except OSError as exc:
            raise _unusable(backup_dir, str(exc))
        break
    if not missing:
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            raise _unusable(backup_dir, "it is a symbolic link to %s; virtfleet never follows a symlink for "
                            "backup_dir" % target,
                            "set backup_dir to the real directory, or replace the link by a directory owned by "
                            "the user running virtfleet with mode 0700")
        if not stat.S_ISDIR(st.st_mode):
            raise _unusable(backup_dir, "it exists and is not a directory")
    # The last component is opened with O_NOFOLLOW, existing ancestors may be symlinks.
    try:
        fd = os.open(head, _DIR_FLAGS | (0 if missing else _O_NOFOLLOW))
    except OSError as exc:
        raise _unusable(backup_dir, "a symbolic link appeared, refused" if exc.errno == errno.ELOOP else str(exc))
    try:
        if not missing:
            _check_existing(backup_dir, fd)
        created = False
        while missing:
            name = missing.pop()
            created = True
            try:
                os.mkdir(name, 0o700, dir_fd=fd)
            except FileExistsError:  # created concurrently: treat it like any existing directory
                created = False
            last = not missing
            child = os.open(name, _DIR_FLAGS | (_O_NOFOLLOW if created or last else 0), dir_fd=fd)
            os.close(fd)
            fd = child
            if created:
                os.fchmod(fd, 0o700)  # umask-proof, and by fd: no path to race on
            elif last:
                _check_existing(backup_dir, fd)
        if created and not os.access(path, os.W_OK | os.X_OK):
            raise _unusable(backup_dir, "not writable")
    except InvalidRequest:
        os.close(fd)
        raise
    except OSError as exc:
        os.close(fd)
        raise _unusable(backup_dir, "a symbolic link appeared, refused" if exc.errno == errno.ELOOP else str(exc))
    return fd, path


def prepare_backup_dir(backup_dir):
    """Create ``backup_dir`` (0700) or fail, before anything is changed."""
    fd, _path = _open_backup_dir(backup_dir)
    os.close(fd)
    return backup_dir


def _name_max(dir_fd):
    try:
        limit = os.fpathconf(dir_fd, "PC_NAME_MAX")
    except (OSError, ValueError):
        return NAME_MAX
    return min(NAME_MAX, limit) if limit and limit > 0 else NAME_MAX


def backup_file_name(name, uuid, stamp, attempt=0, limit=NAME_MAX):
    """``<name>-<uuid>-<stamp>[-<attempt>].xml``, at most ``limit`` bytes.

    The name part is sanitised to ``[A-Za-z0-9_.-]`` (so bytes == characters); when it does not
    fit it is truncated and ``_<hash>`` of the full (unsanitised) name is appended.
    """
    safe_uuid = _UNSAFE.sub("_", str(uuid))[:64]
    tail = "-%s-%s%s.xml" % (safe_uuid, stamp, "-%d" % attempt if attempt else "")
    safe = _UNSAFE.sub("_", name) or "_"
    budget = limit - len(tail)
    if len(safe) > budget:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
        safe = "%s_%s" % (safe[:max(0, budget - _HASH_CHARS - 1)], digest)
    return safe + tail


def _unlink_quietly(name, dir_fd):
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.EIO, "short write")
        view = view[written:]


def _write_temp(dir_fd, data):
    """Write ``data`` durably to a new temporary file in ``dir_fd``; returns its name."""
    for _attempt in range(_MAX_ATTEMPTS):
        tmp = _TMP_PREFIX + binascii.hexlify(os.urandom(8)).decode("ascii")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o600,
                         dir_fd=dir_fd)
        except FileExistsError:
            continue
        try:
            try:
                os.fchmod(fd, 0o600)  # umask-proof
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            _unlink_quietly(tmp, dir_fd)
            raise
        return tmp
    raise OSError(errno.EEXIST, "no free temporary file name")


def _publish(dir_fd, tmp, final):
    """Give ``tmp`` the name ``final`` without replacing an existing file; False if ``final`` exists."""
    try:
        os.link(tmp, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _LINK_UNSUPPORTED:
            raise
        # No hard links here: the directory is private to us, so check-then-rename is enough.
        try:
            os.lstat(final, dir_fd=dir_fd)
        except FileNotFoundError:
            os.rename(tmp, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            return True
        return False
    os.unlink(tmp, dir_fd=dir_fd)
    return True


def _fsync_dir(dir_fd):
    """fsync the directory entry; a file system that cannot sync directories at all (EINVAL) is accepted."""
    try:
        os.fsync(dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise


def write_backup(backup_dir, name, uuid, xml_text):
    """Write one backup file durably and return its path (never overwrites an existing file)."""
    dir_fd, path = _open_backup_dir(backup_dir)
    tmp = final = None
    try:
        data = xml_text.encode("utf-8")
        tmp = _write_temp(dir_fd, data)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        limit = _name_max(dir_fd)
        for attempt in range(_MAX_ATTEMPTS):
            candidate = backup_file_name(name, uuid, stamp, attempt, limit)
            if _publish(dir_fd, tmp, candidate):
                final, tmp = candidate, None
                break
        else:
            raise OSError(errno.EEXIST, "%d backups of this domain with timestamp %s already exist"
                          % (_MAX_ATTEMPTS, stamp))
        _fsync_dir(dir_fd)
    except (OSError, UnicodeError) as exc:
        if tmp is not None:
            _unlink_quietly(tmp, dir_fd)
        if final is not None:  # published but its directory entry is not durable: do not keep it
            _unlink_quietly(final, dir_fd)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if isinstance(exc, OSError) and exc.errno is not None:
            reason = "%s: %s" % (errno.errorcode.get(exc.errno, exc.errno), reason)
        raise BackupFailed(
            "Cannot write the backup of domain %s to backup_dir %s (%s). Nothing was changed: the domain was "
            "not redefined and no partial backup was left. Free space on that file system or fix the directory's "
            "permissions (or point backup_dir elsewhere), then run again." % (name, backup_dir, reason),
            backup_dir=backup_dir, domain=name, errno=getattr(exc, "errno", None))
    finally:
        os.close(dir_fd)
    return os.path.join(path, final)


def read_backup(path):
    """The text of the backup file at ``path``; refuses symlinks and anything but a regular file."""
    if not path or not isinstance(path, str) or not os.path.isabs(path) or "\0" in path:
        raise InvalidRequest("A backup path must be an absolute path, got %r." % (path,))
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) or os.path.islink(path):
            raise InvalidRequest("Refusing to read the backup %s: it is a symbolic link, which virtfleet never "
                                 "follows for a backup. Give the path of the backup file itself." % path,
                                 backup=path)
        raise InvalidRequest("Cannot read the backup %s (%s). Check the path and its permissions." % (path, exc),
                             backup=path)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidRequest("Refusing to read the backup %s: it is not a regular file. Give the path of the "
                                 "backup file itself." % path, backup=path)
        if stat.S_IMODE(st.st_mode) & 0o022:
            raise InvalidRequest("Refusing to read the backup %s: it is writable by group/others (mode %04o), so it "
                                 "may have been altered. Check its content, 'chmod 0600' it, then run again."
                                 % (path, stat.S_IMODE(st.st_mode)), backup=path)
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as exc:
        raise InvalidRequest("Cannot read the backup %s (%s). Check the path and its permissions." % (path, exc),
                             backup=path)
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest("The backup %s is not UTF-8 text (%s); it is not a virtfleet backup." % (path, exc),
                             backup=path)
