"""_backup: 0700 directory, 0600 files, refusals that name backup_dir.

Also: symlinked or shared backup_dir refused and never re-permissioned, atomic durable writes
(nothing named like a backup after a failure), names that always fit NAME_MAX, no overwrite
within one microsecond, read_backup refusing symlinks.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import os
import shutil
import stat
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _backup
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import BackupFailed, InvalidRequest

UUID = "5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11"


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def loose_umask():
    old = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(old)


def test_new_dir_is_0700_and_file_0600(tmp_path, loose_umask):
    target = str(tmp_path / "a" / "b" / "backups")
    path = _backup.write_backup(target, "web01", "5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11", "<domain passwd='x'/>")
    assert mode(target) == 0o700
    assert mode(path) == 0o600
    assert os.path.dirname(path) == target
    with open(path, encoding="utf-8") as fh:
        assert fh.read() == "<domain passwd='x'/>"
    assert os.path.basename(path).startswith("web01-5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11-")
    assert path.endswith(".xml")


def test_file_is_0600_even_with_permissive_umask(tmp_path, loose_umask):
    path = _backup.write_backup(str(tmp_path), "x", "u", "<domain/>")
    assert mode(path) == 0o600


def test_unsafe_name_is_sanitised_and_stays_in_dir(tmp_path):
    path = _backup.write_backup(str(tmp_path), "../../etc/evil name", "u", "<domain/>")
    assert os.path.dirname(path) == str(tmp_path)
    assert "/" not in os.path.basename(path) and " " not in os.path.basename(path)


def test_two_backups_never_overwrite_each_other(tmp_path):
    a = _backup.write_backup(str(tmp_path), "d", "u", "<domain>1</domain>")
    b = _backup.write_backup(str(tmp_path), "d", "u", "<domain>2</domain>")
    assert a != b
    assert open(a).read() == "<domain>1</domain>" and open(b).read() == "<domain>2</domain>"


@pytest.mark.parametrize("bad", ["backups", "./backups", "~/backups", "", None])
def test_relative_or_empty_path_refused(bad, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidRequest) as err:
        _backup.prepare_backup_dir(bad)
    assert "backup_dir must be an absolute path" in err.value.msg
    assert repr(bad) in err.value.msg
    assert "Nothing was changed" in err.value.msg
    assert os.listdir(str(tmp_path)) == []


def test_dir_below_a_file_is_refused_naming_backup_dir(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    target = str(blocker / "backups")
    with pytest.raises(InvalidRequest) as err:
        _backup.prepare_backup_dir(target)
    assert "Cannot use backup_dir %s" % target in err.value.msg
    assert "writable absolute directory" in err.value.msg
    assert err.value.details == {"backup_dir": target}


def test_existing_file_as_backup_dir_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(InvalidRequest) as err:
        _backup.write_backup(str(target), "d", "u", "<domain/>")
    assert "Cannot use backup_dir %s" % target in err.value.msg


def test_unwritable_dir_is_refused_naming_backup_dir(tmp_path, monkeypatch):
    target = tmp_path / "ro"
    target.mkdir(mode=0o700)
    if os.geteuid() != 0:
        os.chmod(str(target), 0o500)
    else:  # root can write anywhere: make the access check say what it would for anyone else
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, m: False if p == str(target) else real_access(p, m))
    with pytest.raises(InvalidRequest) as err:
        _backup.write_backup(str(target), "d", "u", "<domain/>")
    assert "Cannot use backup_dir %s (not writable)" % target in err.value.msg
    assert err.value.details["backup_dir"] == str(target)


# --- 1. backup_dir: symlinks, directories the run did not create, umask ---------------------------


@pytest.fixture
def shared_dir(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(str(shared), 0o1777)
    return shared


@pytest.mark.parametrize("trailing", ["", "/"])
def test_symlinked_backup_dir_is_refused_and_its_target_keeps_its_mode(tmp_path, shared_dir, trailing):
    link = tmp_path / "backups"
    link.symlink_to(shared_dir)
    target = str(link) + trailing
    for call in (lambda: _backup.prepare_backup_dir(target), lambda: _backup.write_backup(target, "d", "u", "<x/>")):
        with pytest.raises(InvalidRequest) as err:
            call()
        assert "Cannot use backup_dir %s" % target in err.value.msg
        assert "symbolic link to %s" % shared_dir in err.value.msg
        assert "Nothing was changed" in err.value.msg and "real directory" in err.value.msg
        assert err.value.details == {"backup_dir": target}
    assert mode(str(shared_dir)) == 0o1777
    assert os.listdir(str(shared_dir)) == []


def test_dangling_symlink_backup_dir_is_refused_and_nothing_is_created(tmp_path):
    link = tmp_path / "backups"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InvalidRequest) as err:
        _backup.write_backup(str(link), "d", "u", "<x/>")
    assert "symbolic link" in err.value.msg
    assert not os.path.lexists(str(tmp_path / "elsewhere"))


def test_symlinked_ancestor_is_fine(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "alias").symlink_to(real)
    path = _backup.write_backup(str(tmp_path / "alias" / "backups"), "d", "u", "<x/>")
    assert os.listdir(str(real / "backups")) == [os.path.basename(path)]
    assert mode(str(real / "backups")) == 0o700


def test_shared_dir_itself_is_refused_and_not_repermissioned(shared_dir):
    with pytest.raises(InvalidRequest) as err:
        _backup.prepare_backup_dir(str(shared_dir))
    assert "Cannot use backup_dir %s (it exists with mode 1777" % shared_dir in err.value.msg
    assert "chmod 0700 %s" % shared_dir in err.value.msg and "Nothing was changed" in err.value.msg
    assert mode(str(shared_dir)) == 0o1777


def test_preexisting_0755_dir_of_ours_is_refused_not_tightened(tmp_path):
    target = tmp_path / "backups"
    target.mkdir()
    os.chmod(str(target), 0o755)
    with pytest.raises(InvalidRequest) as err:
        _backup.write_backup(str(target), "d", "u", "<x/>")
    assert "mode 0755" in err.value.msg and "group/others" in err.value.msg
    assert mode(str(target)) == 0o755
    assert os.listdir(str(target)) == []


@pytest.mark.parametrize("perms", [0o755, 0o750, 0o705])
def test_open_dir_of_someone_else_is_refused_naming_the_owner(tmp_path, monkeypatch, perms):
    target = tmp_path / "theirs"
    target.mkdir()
    os.chmod(str(target), perms)
    owner = os.stat(str(target)).st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)  # the directory is not ours
    with pytest.raises(InvalidRequest) as err:
        _backup.prepare_backup_dir(str(target))
    assert "owned by uid %d, not by uid %d" % (owner, owner + 1) in err.value.msg
    assert "Nothing was changed" in err.value.msg
    assert mode(str(target)) == perms


def test_existing_private_dir_is_used_as_is(tmp_path):
    target = tmp_path / "backups"
    target.mkdir(mode=0o700)
    path = _backup.write_backup(str(target), "d", "u", "<x/>")
    assert mode(str(target)) == 0o700 and os.path.dirname(path) == str(target)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077, 0o777])
def test_every_missing_directory_is_created_0700_whatever_the_umask(tmp_path, umask):
    target = tmp_path / "a" / "b" / "backups"
    old = os.umask(umask)
    try:
        path = _backup.write_backup(str(target), "d", "u", "<x/>")
    finally:
        os.umask(old)
    for made in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert mode(str(made)) == 0o700, made
    assert mode(path) == 0o600


@pytest.mark.parametrize("bad", ["/tmp/../etc/backups", "/tmp/x/..", "/tmp/x\0y"])
def test_dotdot_or_nul_is_refused(bad):
    with pytest.raises(InvalidRequest) as err:
        _backup.prepare_backup_dir(bad)
    assert "backup_dir must be an absolute path" in err.value.msg and "Nothing was changed" in err.value.msg


def test_redundant_slashes_are_fine_and_the_path_is_normalised(tmp_path):
    path = _backup.write_backup(str(tmp_path) + "//./bk/", "d", "u", "<x/>")
    assert os.path.dirname(path) == str(tmp_path / "bk")


# --- 2 and 4. atomic, durable writes; nothing named like a backup after a failure ---------------


def assert_backup_failed(err, name, backup_dir, *needles):
    msg = err.value.msg
    assert isinstance(err.value, BackupFailed)
    assert "domain %s" % name in msg and "backup_dir %s" % backup_dir in msg
    assert "Nothing was changed" in msg and "Free space" in msg and "permissions" in msg
    for needle in needles:
        assert needle in msg
    assert err.value.details["backup_dir"] == backup_dir and err.value.details["domain"] == name


def raising(code):
    def fail(*_a, **_k):
        raise OSError(code, os.strerror(code))
    return fail


@pytest.mark.parametrize("where", ["write", "fsync", "link", "fsync-dir"])
def test_enospc_anywhere_leaves_no_file_and_says_what_to_do(tmp_path, monkeypatch, where):
    target = str(tmp_path / "bk")
    _backup.prepare_backup_dir(target)
    real_fsync = os.fsync
    if where == "write":
        monkeypatch.setattr(os, "write", raising(errno.ENOSPC))
    elif where == "fsync":
        monkeypatch.setattr(os, "fsync", raising(errno.ENOSPC))
    elif where == "link":
        monkeypatch.setattr(os, "link", raising(errno.ENOSPC))
    else:
        def fsync(fd):
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            real_fsync(fd)
        monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(BackupFailed) as err:
        _backup.write_backup(target, "web01", UUID, "<domain/>")
    code = "EIO" if where == "fsync-dir" else "ENOSPC"
    assert_backup_failed(err, "web01", target, code, os.strerror(errno.EIO if code == "EIO" else errno.ENOSPC))
    assert os.listdir(target) == []


def test_a_file_system_that_cannot_sync_directories_still_gets_backups(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    path = _backup.write_backup(str(tmp_path), "web01", UUID, "<domain/>")
    assert _backup.read_backup(path) == "<domain/>"


def test_unwritable_at_write_time_is_backup_failed_and_leaves_nothing(tmp_path, monkeypatch):
    """access() said yes (as on NFS with root_squash), but creating the file is refused."""
    target = str(tmp_path / "bk")
    _backup.prepare_backup_dir(target)
    real_open = os.open

    def deny_create(path, flags, *a, **k):
        if flags & os.O_CREAT:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        return real_open(path, flags, *a, **k)
    monkeypatch.setattr(os, "open", deny_create)
    with pytest.raises(BackupFailed) as err:
        _backup.write_backup(target, "web01", UUID, "<domain/>")
    assert_backup_failed(err, "web01", target, "EACCES")
    assert os.listdir(target) == []


def test_unencodable_xml_is_backup_failed(tmp_path):
    with pytest.raises(BackupFailed) as err:
        _backup.write_backup(str(tmp_path), "web01", UUID, "<domain>\udc80</domain>")
    assert_backup_failed(err, "web01", str(tmp_path))
    assert os.listdir(str(tmp_path)) == []


def test_file_and_directory_are_fsynced_before_write_backup_returns(tmp_path, monkeypatch):
    target = str(tmp_path / "bk")
    _backup.prepare_backup_dir(target)
    synced, real_fsync = [], os.fsync

    def fsync(fd):
        st_ = os.fstat(fd)
        synced.append(("dir" if stat.S_ISDIR(st_.st_mode) else "file", st_.st_ino))
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    path = _backup.write_backup(target, "web01", UUID, "<domain/>")
    assert ("file", os.stat(path).st_ino) in synced
    assert ("dir", os.stat(target).st_ino) in synced
    assert synced.index(("file", os.stat(path).st_ino)) < synced.index(("dir", os.stat(target).st_ino))


def test_success_leaves_exactly_the_backup_and_no_temporary_file(tmp_path):
    path = _backup.write_backup(str(tmp_path), "web01", UUID, "x" * 200000)
    assert os.listdir(str(tmp_path)) == [os.path.basename(path)]
    assert os.path.getsize(path) == 200000


@contextlib.contextmanager
def mounted(where, *mount_args):
    where.mkdir(mode=0o700, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root and mount(8) for a real file system")
    res = subprocess.run(["mount", *mount_args, str(where)], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        pytest.skip("cannot mount here: %s" % res.stderr.strip())
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_really_full_file_system_leaves_no_file(tmp_path):
    with mounted(tmp_path / "fs", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs") as fs:
        target = str(fs / "bk")
        _backup.prepare_backup_dir(target)
        filler = fs / "filler"
        fd = os.open(str(filler), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
        with pytest.raises(BackupFailed) as err:
            _backup.write_backup(target, "web01", UUID, "<domain>%s</domain>" % ("x" * 100000))
        assert_backup_failed(err, "web01", target, "ENOSPC")
        assert os.listdir(target) == []


def test_really_read_only_file_system_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "bk"
    target.mkdir(mode=0o700)
    with mounted(target, "--bind", str(target)):
        res = subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], capture_output=True, text=True, check=False)
        if res.returncode != 0:
            pytest.skip("cannot remount read-only: %s" % res.stderr.strip())
        monkeypatch.setattr(os, "access", lambda *a, **k: True)  # a stale check: the write itself must fail
        with pytest.raises(BackupFailed) as err:
            _backup.write_backup(str(target), "web01", UUID, "<domain/>")
        assert_backup_failed(err, "web01", str(target), "EROFS")
        assert os.listdir(str(target)) == []


# --- 3. names that always fit, no overwrite within one microsecond -------------------------------


class Frozen(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2026, 1, 2, 3, 4, 5, 678901, tzinfo=tz)


@pytest.fixture
def frozen_clock(monkeypatch):
    monkeypatch.setattr(_backup.datetime, "datetime", Frozen)


def test_same_microsecond_backups_get_suffixes_and_keep_their_content(tmp_path, frozen_clock):
    paths = [_backup.write_backup(str(tmp_path), "web01", UUID, "<domain>%d</domain>" % i) for i in range(3)]
    assert len(set(paths)) == 3
    for i, path in enumerate(paths):
        assert open(path, encoding="utf-8").read() == "<domain>%d</domain>" % i
    stamp = "20260102T030405.678901Z"
    assert [os.path.basename(p) for p in paths] == [
        "web01-%s-%s.xml" % (UUID, stamp), "web01-%s-%s-1.xml" % (UUID, stamp), "web01-%s-%s-2.xml" % (UUID, stamp)]


def test_a_planted_symlink_with_the_backup_name_is_neither_followed_nor_replaced(tmp_path, frozen_clock):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    target = tmp_path / "bk"
    target.mkdir(mode=0o700)
    planted = target / ("web01-%s-20260102T030405.678901Z.xml" % UUID)
    planted.symlink_to(victim)
    path = _backup.write_backup(str(target), "web01", UUID, "<domain/>")
    assert path != str(planted) and os.path.islink(str(planted))
    assert victim.read_text() == "precious"


def test_without_hard_links_rename_still_never_overwrites(tmp_path, frozen_clock, monkeypatch):
    monkeypatch.setattr(os, "link", raising(errno.EPERM))
    a = _backup.write_backup(str(tmp_path), "web01", UUID, "<domain>1</domain>")
    b = _backup.write_backup(str(tmp_path), "web01", UUID, "<domain>2</domain>")
    assert a != b and open(a).read() == "<domain>1</domain>" and open(b).read() == "<domain>2</domain>"
    assert sorted(os.listdir(str(tmp_path))) == sorted([os.path.basename(a), os.path.basename(b)])


@pytest.mark.parametrize("name", ["x" * 300, "é" * 200, "虚拟机" * 100, "d" * 218, "a-" * 150 + "😀" * 50])
def test_long_and_multibyte_names_fit_and_stay_distinct(tmp_path, name):
    path = _backup.write_backup(str(tmp_path), name, UUID, "<domain/>")
    other = _backup.write_backup(str(tmp_path), name + "2", UUID, "<domain/>")
    for p in (path, other):
        base = os.path.basename(p)
        assert len(os.fsencode(base)) <= 255
        assert "-%s-" % UUID in base and base.endswith("Z.xml")
    assert os.path.basename(path).split("-" + UUID)[0] != os.path.basename(other).split("-" + UUID)[0]


def test_a_name_that_fits_is_not_changed(tmp_path):
    base = os.path.basename(_backup.write_backup(str(tmp_path), "web01.prod_a-b", UUID, "<domain/>"))
    assert base.startswith("web01.prod_a-b-%s-" % UUID)


@settings(max_examples=300, deadline=None)
@given(name=st.text(min_size=0, max_size=400), uuid=st.text(min_size=0, max_size=100),
       attempt=st.integers(min_value=0, max_value=99), limit=st.sampled_from([255, 143]))
def test_file_name_always_fits_and_is_one_safe_component(name, uuid, attempt, limit):
    base = _backup.backup_file_name(name, uuid, "20260102T030405.678901Z", attempt, limit)
    raw = os.fsencode(base)
    assert len(raw) <= limit
    assert b"/" not in raw and b"\0" not in raw and base not in (".", "..")
    assert base.endswith("20260102T030405.678901Z%s.xml" % ("-%d" % attempt if attempt else ""))


def test_a_smaller_name_max_of_the_file_system_is_honoured(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fpathconf", lambda fd, n: 143)
    base = os.path.basename(_backup.write_backup(str(tmp_path), "n" * 200, UUID, "<domain/>"))
    assert len(base) <= 143 and UUID in base


# --- 5. read_backup -------------------------------------------------------------------------------


def test_read_backup_round_trip(tmp_path):
    text = "<domain><name>vm-é</name><graphics passwd='s3cret'/></domain>"
    assert _backup.read_backup(_backup.write_backup(str(tmp_path), "vm-é", UUID, text)) == text


def test_read_backup_refuses_a_symlink(tmp_path):
    real = _backup.write_backup(str(tmp_path), "d", "u", "<domain/>")
    link = tmp_path / "link.xml"
    link.symlink_to(real)
    with pytest.raises(InvalidRequest) as err:
        _backup.read_backup(str(link))
    assert "symbolic link" in err.value.msg and str(link) in err.value.msg


@pytest.mark.parametrize("bad", ["relative.xml", "", None])
def test_read_backup_needs_an_absolute_path(bad):
    with pytest.raises(InvalidRequest):
        _backup.read_backup(bad)


def test_read_backup_refuses_a_fifo_without_blocking(tmp_path):
    fifo = str(tmp_path / "fifo.xml")
    os.mkfifo(fifo, 0o600)
    with pytest.raises(InvalidRequest) as err:
        _backup.read_backup(fifo)
    assert "not a regular file" in err.value.msg


def test_read_backup_refuses_a_file_others_could_have_altered(tmp_path):
    path = _backup.write_backup(str(tmp_path), "d", "u", "<domain/>")
    os.chmod(path, 0o666)
    with pytest.raises(InvalidRequest) as err:
        _backup.read_backup(path)
    assert "writable by group/others" in err.value.msg


def test_read_backup_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(InvalidRequest) as err:
        _backup.read_backup(str(tmp_path / "gone.xml"))
    assert str(tmp_path / "gone.xml") in err.value.msg
